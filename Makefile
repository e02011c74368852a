# Two commands set this repository up on a fresh machine (README):
#   make demo   create .venv, install, train + test on the demo data
#   make test   create/update .venv, install, lint, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mmcsn-installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: install test lint demo clean

# torch first and pinned: an unpinned torch (or torchvision) pulls GBs of
# CUDA wheels. The constraints file keeps every later step on it.
$(STAMP): setup.cfg setup.py pyproject.toml $(wildcard requirements/*.txt)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(CONSTRAINTS) 'setuptools>=77.0.3,<82' wheel
	$(PIP) install -q -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install -q -c $(CONSTRAINTS) -r requirements/runtime.txt
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[tests,lint]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check mmcsn tools tests configs

test: install lint
	$(PY) -m pytest -q

demo: install
	$(PY) tools/demo.py

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
