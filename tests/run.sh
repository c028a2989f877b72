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
slurm_log=$(mktemp)
if conf=$(bash .ci/slurm.sh 2>"$slurm_log"); then
  cat "$slurm_log" >&2
  export SLURM_CONF="$conf" SUITE_TEST_SLURM=1
  stops+=("bash .ci/slurm.sh stop")
else
  cat "$slurm_log" >&2
  export SUITE_TEST_SLURM_SKIP="$(grep '^slurm.sh: ' "$slurm_log" | tail -n 1)"  # the skip reason the tests show
  echo "warning: could not start Slurm; the tests in tests/experiments/test_slurm.py will be skipped" >&2
fi
rm -f "$slurm_log"
python3 -m pytest "$@"
