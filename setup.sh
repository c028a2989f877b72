#!/usr/bin/env bash
# Set up the suite on a Debian/Ubuntu machine with Python 3.10+.
#   bash setup.sh          the suite and the embedded dataset (Debian's Fashion-MNIST)
#   bash setup.sh --test   plus what the tests need (pytest, a PostgreSQL server for the Optuna tests,
#                          g++ for torch.compile on the CPU)
set -euo pipefail
cd "$(dirname "$0")"

packages=(dataset-fashion-mnist)
[[ "${1:-}" == "--test" ]] && packages+=(postgresql g++)   # g++: torch.compile's CPU code in the compile tests
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if (( ${#missing[@]} )); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

extra=""; [[ "${1:-}" == "--test" ]] && extra="[test]"
python3 -m pip install -q -e ".${extra}"
echo "setup done: try 'suite --help'"
