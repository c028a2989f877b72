#!/usr/bin/env bash
# The test command: start a throwaway PostgreSQL on loopback for the Optuna tests, run pytest, stop it.
# Arguments go to pytest (e.g. tests/run.sh -x -k sweep).
set -uo pipefail
cd "$(dirname "$0")/.."
if url=$(bash .ci/postgres.sh); then
  export SUITE_TEST_POSTGRES_URL="$url"
  trap 'bash .ci/postgres.sh stop' EXIT
else
  echo "warning: could not start PostgreSQL; its test will be skipped" >&2
fi
python3 -m pytest "$@"
