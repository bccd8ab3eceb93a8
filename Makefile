# certbound — `make run` and `make test` work on a fresh clone (virtualenv, dependencies, dev PKI).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
BENCH_ARGS ?= --workers 2

.PHONY: run test lint typecheck unit certs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

certs/server.pem: | $(STAMP)
	$(BIN)/certbound certs dev --out certs

certs: $(STAMP)
	$(BIN)/certbound certs dev --out certs

run: $(STAMP) certs/server.pem
	$(BIN)/certbound serve --host 127.0.0.1 --port 8443

lint: $(STAMP)
	$(BIN)/ruff check server tests scripts
	$(BIN)/ruff format --check server tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) certs/server.pem lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# certbound vs node-oidc-provider in one run (scripts/README.md); e.g. make bench BENCH_ARGS="--quick"
bench: $(STAMP)
	$(BIN)/python scripts/bench_anchor.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
