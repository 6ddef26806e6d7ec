#!/usr/bin/env bash
# Train the Rasa NLU model from nlu/data with nlu/config.yml into var/rasa-models/gridbot-nlu.tar.gz.
#
# Only the NLU training files are passed to Rasa: the top-level *.yml/*.yaml files of the data folder
# that have an `nlu:` section. Other files (categories.yml, README, ...) and sub-folders such as eval/
# (the held-out set) are left out, so Rasa never trains on evaluation data.
#
#   NLU_DATA=nlu/data          training data folder
#   RASA_CONFIG=nlu/config.yml pipeline
#   RASA_MODELS=var/rasa-models
#   RASA_MODEL_NAME=gridbot-nlu   -> $RASA_MODELS/$RASA_MODEL_NAME.tar.gz (what rasa-serve.sh loads)
#   RASA_VENV=.rasa-venv
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RASA_VENV:-.rasa-venv}
DATA=${NLU_DATA:-nlu/data}
CONFIG=${RASA_CONFIG:-nlu/config.yml}
OUT=${RASA_MODELS:-var/rasa-models}
NAME=${RASA_MODEL_NAME:-gridbot-nlu}

if [[ ! -x "$VENV/bin/rasa" ]]; then
    echo "rasa-train: $VENV/bin/rasa not found; run 'make rasa-setup' first" >&2
    exit 1
fi
if [[ ! -d "$DATA" ]]; then
    echo "rasa-train: training data folder $DATA not found" >&2
    exit 1
fi

export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
# Rasa caches trained components in ./.rasa/cache by default; keep it under var/ (git-ignored).
export RASA_CACHE_DIRECTORY=${RASA_CACHE_DIRECTORY:-var/rasa-cache}

# Stage the NLU files into a clean folder (Rasa reads folders recursively and would pick up eval/).
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/gridbot-rasa-data.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
n=0
shopt -s nullglob
for f in "$DATA"/*.yml "$DATA"/*.yaml; do
    if grep -qE '^nlu[[:space:]]*:' "$f"; then
        cp "$f" "$STAGE/"
        n=$((n + 1))
    fi
done
if (( n == 0 )); then
    echo "rasa-train: no NLU training file (a YAML file with a top-level 'nlu:' key) in $DATA" >&2
    exit 1
fi
echo "rasa-train: $n NLU file(s) from $DATA: $(cd "$STAGE" && ls | tr '\n' ' ')"

mkdir -p "$OUT"
start=$(date +%s)
"$VENV/bin/rasa" train nlu \
    --config "$CONFIG" \
    --nlu "$STAGE" \
    --out "$OUT" \
    --fixed-model-name "$NAME" \
    "$@"
echo "rasa-train: $OUT/$NAME.tar.gz in $(( $(date +%s) - start )) s"
