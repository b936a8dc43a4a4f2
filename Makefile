# Lectern: two commands a newcomer needs — `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test check bench clean help

help:
	@echo "make run   - install into .venv, migrate and serve on http://127.0.0.1:8080 (embedded mode)"
	@echo "make test  - install everything the tests need, start throwaway services, run checks and all tests"
	@echo "make check - ruff, mypy --strict, import-linter, tsc --checkJs"

$(BIN)/activate:
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed; on Debian: apt-get install python3-venv"; exit 1; }

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@ $(VENV)/.installed

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

run: $(VENV)/.installed
	$(BIN)/lectern migrate
	$(BIN)/lectern serve

test:
	bash scripts/test

# The pieces `scripts/test` runs, usable on their own once installed.
install-test: $(VENV)/.installed-test node_modules/.installed

check: install-test
	bash scripts/check

bench: install-test
	@echo "benchmarks: see bench/*.py and docs/performance.md"

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
