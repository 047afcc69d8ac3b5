# `make demo` and `make test` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench services clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

services:
	bash .ci/services

demo: $(STAMP)
	$(VENV)/bin/ml-connector sandbox --demo

test: $(STAMP) services
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP) services
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
