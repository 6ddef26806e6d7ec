#!/usr/bin/env bash
# Install everything gridbot needs on a fresh Debian machine: Redis (Debian's redis-server)
# when none is installed, and a venv with the project and its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing Debian's redis-server"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
fi

# The console's browser tests (tests/browser) drive Debian's Chromium, never a downloaded one;
# the CJK fonts make their screenshots readable.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  echo "setup: installing Debian's chromium and CJK fonts for the browser tests"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk
fi

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup: gridbot needs Python 3.11 or newer (apt-get install python3 python3-venv on Debian 12+)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# The real Rasa server (an optional NLU backend) needs its own Python 3.10 venv.
if bash scripts/rasa-setup.sh --check-python >/dev/null 2>&1; then
  bash scripts/rasa-setup.sh
else
  echo "setup: no Python 3.10 here, so no Rasa venv: the embedded NLU works; see README 'Rasa'"
fi
echo "setup: done ($(.venv/bin/python --version)); next: make run"
