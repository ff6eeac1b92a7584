#!/usr/bin/env bash
# Sets up .venv with the pinned stack and mel installed in editable mode. Idempotent: a stamp of
# the requirement files' hash skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "setup: Python 3.11 is required (the pinned TensorFlow 2.20 stack); set PYTHON=..." >&2
  exit 1
fi

# The browser test of `mel serve`'s page drives Debian's chromium through its driver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; }; then
    echo "setup: installing chromium and chromium-driver (apt) for the page's browser test"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null
  else
    echo "setup: warning: chromium / chromedriver missing and apt-get unavailable: the browser" \
         "test is skipped (and fails under CI=true)" >&2
  fi
fi

stamp_hash=$(cat requirements.txt requirements-test.txt constraints.txt setup.py | sha256sum | cut -c1-16)
stamp=".venv/.mel-setup-$stamp_hash"
if [ -f "$stamp" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip<26" "setuptools<82" wheel
echo "setup: installing the pinned stack into .venv (about 2 minutes, ~1 GB download)"
.venv/bin/python -m pip install --quiet --progress-bar off -c constraints.txt -r requirements-test.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
rm -f .venv/.mel-setup-*
touch "$stamp"
echo "setup: done ($(.venv/bin/python --version))"
