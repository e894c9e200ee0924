#!/usr/bin/env bash
# One-time, idempotent set-up on a Debian machine: Java 17+, Chromium (the UI test), a Python 3.11 venv with the
# project, the Airflow home.
# Quick when already done: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.setup-done"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}
apt_install() {
  echo "setup: installing $* with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  echo "setup: need Python 3.11 as \$PYTHON (found: $("$PYTHON" --version 2>&1)); torch==2.13.0 is pinned for it" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  apt_install python3-venv python3-dev
fi

java_major() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1])}'; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
  apt_install openjdk-17-jre-headless   # pyspark 4 needs Java 17+
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver   # the UI test drives headless Chromium through its driver
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ constraints.txt -nt "$STAMP" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # constraints.txt locks every transitive dependency at a tested version (scripts/lock.sh)
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$STAMP"
fi

# checkov (the Terraform policy checks) pins older boto3 and friends: it gets a venv of its own
CHECKOV_VENV="$VENV/tools/checkov"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install -q 'checkov>=3.2,<4'
fi

"$VENV/bin/edgerec" airflow init >/dev/null
echo "setup: ready (venv $VENV, state ${EDGEREC_HOME:-.edgerec})"
