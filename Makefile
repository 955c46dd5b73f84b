# emgate developer entry points (GNU make).
#   make test    system peers (scripts/install-services.sh), the venv, then pytest
#   make demo    the simulated plant end to end; needs no root and no server
# On a fresh Debian 12 machine, as root, `make test` installs everything it needs.

PY ?= python3
VENV := .venv
PYTEST_ARGS ?= -q -ra
ARGS ?=

# `test` installs python3-venv (services) before it creates the venv: keep that order.
.NOTPARALLEL:
.DEFAULT_GOAL := help
.PHONY: help venv demo services test bench lint wheel clean

help:
	@echo "make test      install peers + venv, run pytest (PYTEST_ARGS='$(PYTEST_ARGS)')"
	@echo "make demo      run 'emgate demo \$$ARGS' (no root, no server)"
	@echo "make services  install mosquitto, socat, chromium, ... and build influxd (root for apt)"
	@echo "make bench     run 'python -m bench \$$ARGS'"
	@echo "make lint      ruff check . and mypy (the files and strictness are in pyproject.toml)"
	@echo "make wheel     build dist/emgate-*.whl (with the native walk when gcc and headers are here)"
	@echo "make clean     remove the venv, caches and test logs"

$(VENV)/bin/python:
	$(PY) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "'$(PY) -m venv' failed; on Debian install python3-venv (make services does, as root)"; exit 1; }

# Re-install whenever the dependency declarations or the native ledger walk change.
$(VENV)/.installed: pyproject.toml constraints.txt setup.py gateway/ledger/_walk.c | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/emgate demo $(ARGS)

services:
	bash scripts/install-services.sh

# pytest's own exit status decides: failures (1) and "no tests collected" (5) both fail make.
test: services venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Telegraf is the benchmark's peer; without it the comparison is reported as missing.
bench: services venv
	bash scripts/build-telegraf.sh || echo "telegraf could not be built; the benchmark runs without the comparison"
	$(VENV)/bin/python -m bench $(ARGS)

# mypy also runs in `make test` (tests/unit/test_typecheck.py), so CI checks the types too.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The wheel to install on another machine of the same Debian and Python (docs/operator-guide.md),
# built offline with the venv's setuptools (the test extra pins it).
wheel: venv
	$(VENV)/bin/pip wheel --no-deps --no-build-isolation --wheel-dir dist .

clean:
	rm -rf $(VENV) .test-logs .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info gateway/ledger/_walk.*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
