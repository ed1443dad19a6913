# Every target bootstraps .venv from the pinned lock file on its own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install format lint typecheck test check serve bench lock clean

$(STAMP): pyproject.toml requirements.lock sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip install --quiet --no-deps -e sdk/python
	touch $(STAMP)

install: $(STAMP)

format: $(STAMP)
	$(BIN)/ruff format herald tests bench sdk
	$(BIN)/ruff check --fix herald tests bench sdk

lint: $(STAMP)
	$(BIN)/ruff format --check herald tests bench sdk
	$(BIN)/ruff check herald tests bench sdk

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole test suite (README's test command). PostgreSQL tests read HERALD_TEST_DATABASE_URL.
test: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report --fail-under=95

check: lint typecheck test

serve: $(STAMP)
	$(BIN)/herald serve

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# Re-resolve the lock file from pyproject.toml (run after changing a dependency).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet --upgrade pip
	.lockvenv/bin/pip install --quiet '.[dev]'
	.lockvenv/bin/pip freeze --exclude herald > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage
