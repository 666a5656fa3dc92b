# Two commands set everything up on a fresh clone: `make demo` and `make test`.
# Each (re)builds .venv when it is missing or older than the pinned requirements.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIPQ   := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-slow fuzz bench docs venv clean

$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	@echo "[make] building $(VENV) from requirements.lock"
	@rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIPQ) -r requirements.lock
	$(PIPQ) --no-deps --ignore-requires-python -r requirements-nodeps.txt
	$(PIPQ) --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m neurosim demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=20 tests

# the slow cases too (Brian2 cpp_standalone builds, extra Lava networks): several more minutes
test-slow: $(STAMP)
	$(PY) -m pytest -q tests

# every file loader under thousands of hypothesis cases each (tests/fuzzing.py; make test runs 100 per loader)
fuzz: $(STAMP)
	$(PY) tests/fuzzing.py --examples 2000

bench: $(STAMP)
	$(PY) bench/cuba.py

# the guide and the API reference (Sphinx autodoc + myst-parser, pinned in requirements.lock) into
# docs/_build/html; every warning is an error (-W), all of them reported (--keep-going), and -E
# rereads every source so a second build cannot pass on a cached page
docs: $(STAMP)
	$(PY) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
	@echo "[make] docs/_build/html/index.html"

clean:
	rm -rf $(VENV) runs .pytest_cache docs/_build
