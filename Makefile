# All set-up happens here: a fresh Debian machine with python3 needs nothing else.
VENV    ?= .venv
PY      := $(VENV)/bin/python
# Exact versions (with hashes) for the venv: pyproject.toml keeps compatible ranges, `make lock`
# re-resolves them. Resolved for CPython 3.11 (Debian bookworm's python3).
LOCK    := requirements/ci.lock
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
SPEC    ?= specs/vm102.yaml
PYTEST_ARGS ?=

.PHONY: plan validate test fast e2e check fmt lint typecheck bench clean venv dist lock schema

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || python3 -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q python3-venv && python3 -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)" >&2; exit 1; fi; }
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	@# setuptools warns on every editable install of a flat layout (a folder named like the
	@# package shadows it): that is exactly what we want here, so keep the first run quiet.
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

## lock: re-resolve requirements/ci.lock from pyproject.toml's ranges (newest matching releases)
lock: venv
	$(VENV)/bin/pip-compile --quiet --extra dev --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

## dist: the wheel and the sdist to install on a gateway host (dist/reconciler-<version>*)
dist: venv
	rm -rf dist
	$(PY) -m build --quiet --no-isolation --outdir dist .

## plan: what the reconciler would do to THIS machine for the seed spec (read-only, host-name check off)
plan: venv
	$(VENV)/bin/reconciler plan $(SPEC) --host-check=off

validate: venv
	$(VENV)/bin/reconciler validate specs/*.yaml

## test: every test: the fast suite, then the systemd-nspawn suite (which skips without root)
test: fast e2e

# One pytest-xdist worker per core: the laws alone are minutes of CPU each (docs/testing.md).
fast: venv
	$(PY) -m pytest -m "not e2e" -n auto $(PYTEST_ARGS)

# The real-systemd suite mostly waits (containers booting, npm, gateways starting): two
# workers, one test file at a time each (a scenario's steps share a module container: they
# stay together, in order). Not `--dist loadgroup`: pytest-xdist 3.8 marks groups in
# `item._nodeid`, which pytest 9 no longer reads, so every group is split (docs/testing.md).
E2E_WORKERS ?= 2
e2e: venv
	$(PY) -m pytest -m e2e tests/e2e -n $(E2E_WORKERS) --dist loadfile $(PYTEST_ARGS)

check: lint typecheck

lint: venv
	$(VENV)/bin/ruff format --check reconciler tests bench
	$(VENV)/bin/ruff check reconciler tests bench

fmt: venv
	$(VENV)/bin/ruff format reconciler tests bench
	$(VENV)/bin/ruff check --fix reconciler tests bench

# schemas/spec.schema.json from the core schema and the sections' fragments (reconciler/spec/sections/)
schema: venv
	$(VENV)/bin/python -c 'from reconciler.spec.sections import assembled_text; print(assembled_text(), end="")' > schemas/spec.schema.json.tmp
	mv schemas/spec.schema.json.tmp schemas/spec.schema.json

typecheck: venv
	$(VENV)/bin/mypy reconciler

bench: venv
	$(PY) bench/plan_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
