# Two commands on a fresh machine: `make run` (the whole job) and `make test` (lint + tests).
# Each creates the virtual environment with scripts/setup.sh first when it is missing or older than
# pyproject.toml / scripts/setup.sh. VENV=DIR picks another environment (CI uses .venv-ci);
# ARGS="..." passes arguments on, e.g. make run ARGS="--limit 2000 --epochs 2", make test ARGS="-k audit".
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.agefair-setup

.PHONY: run test lint setup

$(STAMP): pyproject.toml scripts/setup.sh
	env -u VIRTUAL_ENV AGEFAIR_VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m agefair.run $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check agefair tests benchmarks scripts
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q $(ARGS)
