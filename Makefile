# tunerflow — `make demo` runs the main job (make demo ARGS="--help" lists its flags), `make test` runs the tests.
# Both create .venv with pinned dependencies on first use (torch 2.13.0, CPU build where available).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install test test-all lint demo clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu and not docker"

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not gpu and not docker"

lint: $(STAMP)
	$(VENV)/bin/ruff check src executors tests
	$(VENV)/bin/ruff format --check src executors tests

demo: $(STAMP)
	$(VENV)/bin/tunerflow demo $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache
