# certbound — `make run` and `make test` work on a fresh clone (virtualenv, dependencies, dev PKI).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` needs only what serving needs; `make test` adds the dev tools (the `dev` extra).
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.installed-stamp
PORT ?= 8443
PYTEST_ARGS ?=
# Two test processes: most of the suite's time is spent waiting on servers it started, so two
# halve it on a 2-core machine (`make test PYTEST_PARALLEL=` runs it in one process).
PYTEST_PARALLEL ?= -n 2 --dist loadfile
# Both pairings: certbound serve (1 process) vs oidc-provider op1, and serve --workers 2 vs op2 (x2).
BENCH_ARGS ?= --pairings 1v1,2v2
BENCH_METHODS_ARGS ?=

.PHONY: run test lint typecheck unit certs bench bench-methods dist clean

# certbound installed editable with the extras in $(1), pip showing what it does. The package's
# source is server/ but it imports as `certbound` (SPEC §2). pip's editable install maps the name
# with an import hook, which mypy cannot follow; a symlink .venv/src/certbound -> server on a .pth
# path gives mypy and the interpreter the same files, new modules included. (PYTHONWARNINGS: the
# build backend's banner about editable installs is not for the person running `make run`.)
define install_certbound
	@echo '==> $(VENV): certbound$(1), editable (pip)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --disable-pip-version-check --no-input --progress-bar off -e '.$(1)'
	mkdir -p $(VENV)/src && ln -sfn ../../server $(VENV)/src/certbound
	$(BIN)/python -c 'import site, sys; open(site.getsitepackages()[0] + "/certbound-src.pth", "w").write(sys.argv[1] + "\n")' "$(CURDIR)/$(VENV)/src"
endef

$(RUN_STAMP): pyproject.toml setup.py
	$(call install_certbound,)
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml setup.py
	$(call install_certbound,[dev])
	touch $(RUN_STAMP) $(STAMP)

certs/server.pem: | $(RUN_STAMP)
	$(BIN)/certbound certs dev --out certs

certs: $(RUN_STAMP)
	$(BIN)/certbound certs dev --out certs

# Development only (dev PKI, SQLite in data/): serve prints the issuer and the next commands to try.
run: $(RUN_STAMP) certs/server.pem
	$(BIN)/certbound serve --host 127.0.0.1 --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check server tests scripts
	$(BIN)/ruff format --check server tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy scripts

test: $(STAMP) certs/server.pem lint typecheck
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# certbound vs node-oidc-provider in one run, ~18 min (scripts/README.md); e.g. make bench BENCH_ARGS="--quick"
bench: $(STAMP)
	$(BIN)/python scripts/bench_anchor.py $(BENCH_ARGS)

# Tokens/s per core for every client authentication method, certbound alone (scripts/README.md);
# e.g. make bench-methods BENCH_METHODS_ARGS="--quick"
bench-methods: $(STAMP)
	$(BIN)/python scripts/bench_methods.py $(BENCH_METHODS_ARGS)

# A wheel in dist/ (installs the `certbound` package and console script): pip install dist/certbound-*.whl
dist: $(RUN_STAMP)
	rm -rf dist build
	PYTHONWARNINGS=ignore $(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) data dist build .mypy_cache .ruff_cache .pytest_cache
