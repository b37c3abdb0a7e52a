# One runner for the project: set-up, the main job, tests, benchmarks, lint.
# The virtual environment is created with the first Python >= 3.12 found:
# PATH first, then pyenv's installed versions.
SHELL := /bin/bash
VENV ?= .venv
REPO ?= data/demo-repo
PRESET ?= demo
# make run PORT=8081 serves on another port (default: $RECREATE_PORT, else 8080).
PORT ?=

PYTHON_BOOT := $(shell \
  for p in python3.14 python3.13 python3.12 python3 python; do \
    c=$$(command -v $$p 2>/dev/null) || continue; \
    $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
      && { echo $$c; exit 0; }; \
  done; \
  root=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
  for c in $$(ls -d $$root/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do \
    $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
      && { echo $$c; exit 0; }; \
  done)

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: init run test bench lint clean print-python

$(STAMP): pyproject.toml
	@test -n "$(PYTHON_BOOT)" || { echo "error: no Python >= 3.12 on PATH or in pyenv"; exit 1; }
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint,helm]'
	@# Compile the numba kernels once, into the package's __pycache__,
	@# so that the first recreation after set-up compiles nothing.
	$(PY) -c 'from recreate.pipeline.warmup import warm_up; warm_up()'
	@touch $(STAMP)

init: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/recreate run --repo $(REPO) --preset $(PRESET) $(if $(PORT),--port $(PORT))

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/diffim.py --recipe dp1
	$(PY) bench/diffim.py --recipe dp2
	$(PY) bench/solution.py --recipe dp1
	$(PY) bench/solution.py --recipe dp2
	$(PY) bench/anysurvey.py
	$(PY) bench/service.py
	$(PY) bench/viewer.py
	$(PY) bench/ivoa.py
	$(PY) bench/regions.py

lint: $(STAMP)
	$(VENV)/bin/ruff check recreate cache workers tests bench
	$(VENV)/bin/ruff format --check recreate cache workers tests bench
	$(VENV)/bin/mypy recreate cache workers

print-python:
	@test -n "$(PYTHON_BOOT)" && echo $(PYTHON_BOOT)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
