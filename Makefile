PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Python's bytecode cache (__pycache__, ignored by git) is kept even where the environment turns it off:
# without it every `authserver` process, server worker and test worker compiles the package's modules
# (and pytest rewrites the tests) again, a fifth of a second or more per process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test lint init demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml verifier/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet -e './verifier[flask]'
	touch $@ $(STAMP)

## make run: install, initialise instance/ (schema, signing key, secrets) and serve on 127.0.0.1:8000
run: $(STAMP)
	$(BIN)/authserver serve --host 127.0.0.1 --port 8000

# One test worker more than there are cores: a fifth of the suite's time is spent waiting (servers
# starting and draining, timeouts, a browser), and the extra worker fills it (two cores: busy 79 % -> 94 %).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

## make test: install the test extras and run the whole suite
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

## make lint: ruff (pyproject.toml's rule set) and mypy (strict below the services); both must find nothing
lint: $(TEST_STAMP)
	$(BIN)/ruff check authserver tests bench verifier
	$(BIN)/mypy

init: $(STAMP)
	$(BIN)/authserver init

demo: $(STAMP)
	$(BIN)/authserver demo

bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache
