# The two set-up commands of the README: `make run` and `make test`. Each creates .venv and
# installs the project on first use, so both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint

# The Python client (clients/python) is its own distribution; the tests drive it against a
# real server, so it is installed beside the service.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' -e ./clients/python
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/listserve serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest
