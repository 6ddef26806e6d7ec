#!/usr/bin/env bash
# Serve the trained Rasa NLU model in the foreground: POST /model/parse on 127.0.0.1:5005.
#
#   RASA_HOST=127.0.0.1  RASA_PORT=5005
#   RASA_MODEL=var/rasa-models/gridbot-nlu.tar.gz
#   RASA_VENV=.rasa-venv
# Extra arguments go to `rasa run` (e.g. --auth-token TOKEN, --debug).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RASA_VENV:-.rasa-venv}
MODEL=${RASA_MODEL:-var/rasa-models/gridbot-nlu.tar.gz}

if [[ ! -x "$VENV/bin/rasa" ]]; then
    echo "rasa-serve: $VENV/bin/rasa not found; run 'make rasa-setup' first" >&2
    exit 1
fi
if [[ ! -f "$MODEL" ]]; then
    echo "rasa-serve: model $MODEL not found; run 'make rasa-train' first" >&2
    exit 1
fi
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
# Rasa caches trained components in ./.rasa/cache by default; keep it under var/ (git-ignored).
export RASA_CACHE_DIRECTORY=${RASA_CACHE_DIRECTORY:-var/rasa-cache}
exec "$VENV/bin/rasa" run --enable-api \
    -i "${RASA_HOST:-127.0.0.1}" -p "${RASA_PORT:-5005}" \
    --model "$MODEL" \
    "$@"
