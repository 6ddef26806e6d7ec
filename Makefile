# The README's commands. `make setup` once, then `make run`; `make test` runs what CI runs.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint bench rasa-setup rasa-train rasa-serve

setup:
	bash scripts/setup.sh

run:
	bash scripts/ensure-redis.sh
	$(BIN)/gridbot serve

lint:
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

RASA_MODEL := var/rasa-models/gridbot-nlu.tar.gz
NLU_INPUTS := nlu/config.yml $(wildcard nlu/data/*.yml)

# One pytest run. With a Rasa venv (make setup makes one wherever Python 3.10 exists) the model is
# retrained when its data changed and the tests marked `rasa` run against the real server;
# without one they are deselected and the run says so.
test: lint
	bash scripts/ensure-redis.sh
	@if [ -x .rasa-venv/bin/rasa ]; then \
		$(MAKE) --no-print-directory $(RASA_MODEL) && \
		$(BIN)/pytest -q $(PYTEST_ARGS); \
	else \
		echo "test: no .rasa-venv (make rasa-setup needs Python 3.10): the tests marked rasa do NOT run" >&2; \
		$(BIN)/pytest -q -m "not rasa" $(PYTEST_ARGS); \
	fi || { status=$$?; [ $$status -eq 5 ] && echo 'test: pytest collected no tests' >&2; exit $$status; }

$(RASA_MODEL): $(NLU_INPUTS)
	bash scripts/rasa-train.sh

bench:
	bash scripts/ensure-redis.sh
	$(BIN)/python bench/rest_dialogue.py

rasa-setup:
	bash scripts/rasa-setup.sh

rasa-train:
	bash scripts/rasa-train.sh

rasa-serve:
	bash scripts/rasa-serve.sh
