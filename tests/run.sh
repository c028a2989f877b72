#!/usr/bin/env bash
# The test command: start a throwaway PostgreSQL on loopback for the Optuna tests and a throwaway
# one-node Slurm for the cluster tests, run pytest, stop both.
# Arguments go to pytest (e.g. tests/run.sh -x -k sweep).
set -uo pipefail
cd "$(dirname "$0")/.."
stops=()
trap 'for s in "${stops[@]}"; do $s; done' EXIT
if url=$(bash .ci/postgres.sh); then
  export SUITE_TEST_POSTGRES_URL="$url"
  stops+=("bash .ci/postgres.sh stop")
else
  echo "warning: could not start PostgreSQL; its test will be skipped" >&2
fi
if conf=$(bash .ci/slurm.sh); then
  export SLURM_CONF="$conf" SUITE_TEST_SLURM=1
  stops+=("bash .ci/slurm.sh stop")
else
  echo "warning: could not start Slurm (reason above); the tests/experiments/test_slurm.py tests will be skipped" >&2
fi
python3 -m pytest "$@"
