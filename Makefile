# Two commands set everything up on a fresh clone: `make demo` and `make test`.
# Each (re)builds .venv when it is missing or older than the pinned requirements.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIPQ   := $(PY) -m pip install --quiet --disable-pip-version-check
# GPU=1 where nvidia-smi lists a GPU: the environment also gets requirements-gpu.txt (CuPy for the
# CUDA 13 that the pinned torch is built for, NVRTC from pip); `make GPU=0 ...` or GPU=1 forces it.
# The stamp names the choice, so switching rebuilds the environment.
GPU    ?= $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && echo 1 || echo 0)
STAMP  := $(VENV)/.installed$(if $(filter 1,$(GPU)),-gpu)

.PHONY: demo test test-numpy2 test-slow fuzz bench docs venv clean

$(STAMP): requirements.lock requirements-nodeps.txt requirements-gpu.txt pyproject.toml
	@echo "[make] building $(VENV) from requirements.lock$(if $(filter 1,$(GPU)), and requirements-gpu.txt (GPU=1))"
	@rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIPQ) -r requirements.lock
	$(if $(filter 1,$(GPU)),$(PY) -m pip uninstall --quiet -y cupy-cuda12x && $(PIPQ) -r requirements-gpu.txt)
	$(PIPQ) --no-deps --ignore-requires-python -r requirements-nodeps.txt
	$(PIPQ) --no-deps --no-build-isolation -e .
	$(if $(filter 1,$(GPU)),$(PY) -m neurosim backends)
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m neurosim demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=20 tests

# the same tests under numpy 2 in a second environment without the mapping peers (their tests skip):
# a numpy-2 break of the core, the simulators or training shows here (requirements-numpy2.lock)
NP2       := .venv-numpy2
NP2_STAMP := $(NP2)/.installed

$(NP2_STAMP): requirements-numpy2.lock pyproject.toml
	@echo "[make] building $(NP2) from requirements-numpy2.lock"
	@rm -rf $(NP2)
	$(PYTHON) -m venv $(NP2)
	$(NP2)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-numpy2.lock
	$(NP2)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(NP2_STAMP)

test-numpy2: $(NP2_STAMP)
	$(NP2)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider tests

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
	rm -rf $(VENV) $(NP2) runs .pytest_cache docs/_build
