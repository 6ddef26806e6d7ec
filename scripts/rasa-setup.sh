#!/usr/bin/env bash
# Create .rasa-venv (Python 3.10) with Rasa Open Source 3.6.21 for the Rasa NLU backend.
#
# Rasa 3.6 supports Python <= 3.10 and pins old aiohttp/pydantic/tensorflow, so it cannot share
# gridbot's Python 3.11 venv. Idempotent: does nothing if the venv already has rasa==3.6.21.
#
#   RASA_VENV=.rasa-venv   where to put the venv (relative to the repo root)
#   PYTHON310=...          a Python 3.10 interpreter to use instead of searching for one
#   --check-python         only say (exit status) whether a Python 3.10 is there
set -euo pipefail

RASA_VERSION=3.6.21
cd "$(dirname "$0")/.."
VENV=${RASA_VENV:-.rasa-venv}
start=$(date +%s)

if [[ -x "$VENV/bin/rasa" ]] \
    && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('rasa') != '$RASA_VERSION')" 2>/dev/null \
    && "$VENV/bin/python" -c "import jieba" 2>/dev/null; then
    echo "rasa-setup: $VENV already has rasa $RASA_VERSION and jieba; nothing to do"
    exit 0
fi

find_python310() {
    if [[ -n "${PYTHON310:-}" ]]; then echo "$PYTHON310"; return 0; fi
    local c
    for c in /root/.pyenv/versions/3.10.*/bin/python3.10 "${HOME:-/root}"/.pyenv/versions/3.10.*/bin/python3.10; do
        [[ -x "$c" ]] && { echo "$c"; return 0; }
    done
    for c in python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
            command -v "$c"; return 0
        fi
    done
    return 1
}

if ! PY=$(find_python310); then
    cat >&2 <<'MSG'
rasa-setup: no Python 3.10 found.
Rasa 3.6 runs only on Python 3.8-3.10; gridbot itself needs 3.11, so Rasa gets its own venv.
Install a Python 3.10 and re-run, for example:
  - pyenv:   pyenv install 3.10.13        (then this script finds ~/.pyenv/versions/3.10.*)
  - Debian:  Debian 12 ships only 3.11; use pyenv, or a distribution that packages python3.10
  - or point at one explicitly:  PYTHON310=/path/to/python3.10 make rasa-setup
Python 3.10 also needs the venv module (Debian: apt-get install python3.10-venv).
MSG
    exit 1
fi
if [[ "${1:-}" == "--check-python" ]]; then
    exit 0  # scripts/setup.sh only asks whether a Rasa venv can be made here
fi
echo "rasa-setup: using $PY ($("$PY" -V 2>&1))"

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# Old setuptools keeps pkg_resources (newer releases drop it, and rasa/tensorflow deps still import it).
"${PIP[@]}" install -q --upgrade "pip<25" "setuptools==70.3.0" wheel

# Explicit pins on top of rasa's own constraints, each for a breakage seen when resolving freshly:
PINS=(
    "rasa==$RASA_VERSION"
    "jieba==0.42.1"          # JiebaTokenizer imports it; rasa does not depend on it
    "setuptools==70.3.0"     # rasa 3.6.21 pins >=70.3,<70.4; keeps pkg_resources, which rasa imports
    "six>=1.16"              # imported by tensorflow/keras deps but not always declared
    "aiogram==2.15"          # rasa wants aiogram<2.26; the newer 2.x need another aiohttp: pip walks
                             # back release by release to 2.15, so name it
    "jax==0.4.13"            # tensorflow 2.12 wants jax>=0.3.15 unbounded: pip backtracks through
                             # every jax/jaxlib release (100 MB each) looking for one that suits numpy<1.25
)
"${PIP[@]}" install "${PINS[@]}"

"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
import jieba  # noqa: F401
import rasa
from rasa.nlu.classifiers.diet_classifier import DIETClassifier  # noqa: F401  (imports tensorflow)
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer  # noqa: F401
for name in ("rasa", "tensorflow", "aiohttp", "pydantic", "protobuf", "numpy", "jieba", "setuptools"):
    try:
        print(f"  {name}=={m.version(name)}")
    except m.PackageNotFoundError:
        print(f"  {name}: not installed")
PY
echo "rasa-setup: done in $(( $(date +%s) - start )) s"
