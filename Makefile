# All set-up happens here: a fresh Debian machine with python3 needs nothing else.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SPEC    ?= specs/vm102.yaml
PYTEST_ARGS ?=

.PHONY: plan validate test fast e2e check fmt lint typecheck bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q python3-venv && python3 -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)" >&2; exit 1; fi; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## plan: what the reconciler would do to THIS machine for the seed spec (read-only, host-name check off)
plan: venv
	$(VENV)/bin/reconciler plan $(SPEC) --host-check=off

validate: venv
	$(VENV)/bin/reconciler validate specs/*.yaml

## test: every test (fast suite, then the systemd-nspawn suite, which skips without root)
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

fast: venv
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

e2e: venv
	$(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

check: lint typecheck

lint: venv
	$(VENV)/bin/ruff format --check reconciler tests bench
	$(VENV)/bin/ruff check reconciler tests bench

fmt: venv
	$(VENV)/bin/ruff format reconciler tests bench
	$(VENV)/bin/ruff check --fix reconciler tests bench

typecheck: venv
	$(VENV)/bin/mypy reconciler

bench: venv
	$(PY) bench/plan_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
