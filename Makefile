# Two commands do all set-up on a fresh machine (see README):
#   make train   creates .venv, installs customkeras, runs exercise 13 on Fashion-MNIST
#   make test    creates .venv, installs customkeras with its test extras, runs the test suite
#                (on TensorFlow, then the component tests on JAX)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The offline copy of the data beside this checkout, when there is one; otherwise the
# loaders use CUSTOMKERAS_DATA_DIR, the Keras / scikit-learn caches, then the downloads.
SHARED_DATA := $(wildcard ../shared/datasets)
ifneq ($(SHARED_DATA),)
export CUSTOMKERAS_DATA_DIR ?= $(abspath $(SHARED_DATA))
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install install-gpu train test bench bench-quick bench-report bench-distribute bench-startup \
	bench-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/customkeras train fashion-mnist $(ARGS)

# The whole suite on TensorFlow, then the component tests again on JAX (tests/conftest.py
# collects only those there; exit status 5, "no tests", is fine when PYTEST_ARGS names
# TensorFlow-only tests).
test: install
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	KERAS_BACKEND=jax $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS) || [ $$? -eq 5 ]

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

# The full benchmarks (about 20 minutes on 2 quiet cores), then the README's tables from
# benchmarks/results/. BENCH_ARGS passes options on, e.g. BENCH_ARGS="--rounds 3".
bench: install $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_training.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_custom_steps.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_input.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_datasets.py
	$(BIN)/python benchmarks/bench_iterator_release.py
	$(BIN)/python benchmarks/profile_calls.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/report.py

# Every contender once on a few samples (results in /tmp, README untouched): a smoke test.
bench-quick: install $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_training.py --quick
	$(BIN)/python benchmarks/bench_custom_steps.py --quick
	$(BIN)/python benchmarks/bench_input.py --quick

bench-report:
	$(BIN)/python benchmarks/report.py

bench-distribute: install $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_distribute.py
	$(BIN)/python benchmarks/report.py

# The GPU's run: on one NVIDIA GPU, at most 8 minutes, no network (install the CUDA builds
# once with `make install-gpu`, which needs it); benchmarks/results/gpu.json, then the
# README's tables. ARGS=--dry-run: the same script on the CPU at tiny sizes (under 2 minutes
# on 2 quiet cores), results in a temporary file: no CUDA build needed for that.
bench-gpu: install $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_gpu.py $(ARGS)
	$(BIN)/python benchmarks/report.py

$(VENV)/.gpu-installed: pyproject.toml | $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench,gpu]"
	touch $@

install-gpu: install $(VENV)/.gpu-installed

# `customkeras --help` and usage errors, whole processes: before (git cb355b8) and after.
bench-startup: install
	$(BIN)/python benchmarks/bench_cli_startup.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
