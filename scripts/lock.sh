#!/usr/bin/env bash
# Regenerate constraints.txt, the lock of every package the venv holds, after a change of pyproject.toml's
# dependencies has been installed and tested. `make setup` installs through it, so a new release of a transitive
# dependency (Airflow has hundreds) cannot break a fresh set-up. Airflow publishes such a file per release and
# Python version; this one is ours, made from a venv that passed the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
{
  echo "# The lock of the venv's packages: scripts/lock.sh writes it from a venv that passed the tests."
  echo "# torch is the CPU build where the machine provides that wheel, a CUDA build from PyPI elsewhere."
  "$VENV/bin/python" -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -c '==' constraints.txt) packages)"
