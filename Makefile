# `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The server on 127.0.0.1:8000 (SQLite in ./.authbridge), with the sandbox provider beside it on
# 127.0.0.1:8400; --allow-loopback lets the bundled sandbox connectors reach it. For local work
# /metrics is open and GraphiQL is served (both closed by default).
run: $(STAMP)
	@$(BIN)/authbridge sandbox --port 8400 & sandbox=$$!; \
	trap 'kill $$sandbox 2>/dev/null' EXIT INT TERM; \
	AUTHBRIDGE_PUBLIC_METRICS=1 AUTHBRIDGE_GRAPHIQL=1 \
		$(BIN)/authbridge serve --host 127.0.0.1 --port 8000 --allow-loopback

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
