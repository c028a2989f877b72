#!/usr/bin/env bash
# Set up the suite on a Debian/Ubuntu machine with Python 3.10+.
#   bash setup.sh          the suite and the embedded dataset (Debian's Fashion-MNIST)
#   bash setup.sh --test   plus what the tests need (pytest, a PostgreSQL server for the Optuna tests,
#                          Slurm and munge for a one-node cluster: .ci/slurm.sh)
# System packages are installed with apt-get as root, or with sudo where it works without a
# password; otherwise they are skipped with a note (nothing here needs them: see the README's
# "Without root" paragraph) and only the Python package is installed.
set -euo pipefail
cd "$(dirname "$0")"

packages=(dataset-fashion-mnist)
[[ "${1:-}" == "--test" ]] && packages+=(postgresql slurm-wlm munge)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
else
  missing=("${packages[@]}")
fi
if (( ${#missing[@]} )); then
  SUDO=none
  if command -v apt-get >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"   # never prompts
    fi
  fi
  if [[ "$SUDO" == none ]]; then
    echo "note: not installing ${missing[*]} (needs apt-get as root or passwordless sudo)." >&2
    echo "      Fine without them: Fashion-MNIST downloads through torchvision into ./data when online" >&2
    echo "      (or copy it there); the PostgreSQL and Slurm tests skip." >&2
    echo "      An administrator can install them with: apt-get install ${missing[*]}" >&2
  else
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

extra=""; [[ "${1:-}" == "--test" ]] && extra="[test]"
if ! python3 -m pip install -q -e ".${extra}"; then
  if [[ -z "${VIRTUAL_ENV:-}" ]]; then
    echo "error: pip could not install into this Python; use a virtual environment (no root needed):" >&2
    echo "       python3 -m venv .venv && . .venv/bin/activate && bash setup.sh ${1:-}" >&2
  fi
  exit 1
fi
echo "setup done: try 'suite --help'"
