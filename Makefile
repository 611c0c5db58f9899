# Quick start (see README): `make run` serves the platform, `make test` runs every test.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test bench install clean

run: $(VENV)/.installed
	scripts/ensure-cjk-font
	$(BIN)/medpay serve

test: $(VENV)/.installed
	scripts/ensure-postgres
	scripts/ensure-chromium
	scripts/ensure-axe
	scripts/ensure-cjk-font
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	scripts/ensure-postgres
	$(BIN)/python -m benchmarks.core

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
