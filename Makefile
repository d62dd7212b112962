# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install subcell, run the demo pipeline
#   make test   - create .venv, install subcell with dev tools, lint, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.subcell-installed
# The CPU build of PyTorch unless an NVIDIA GPU is present (pyproject keeps torch a range).
TORCH_CONSTRAINT := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints/cpu.txt)
PYTEST_ARGS ?=

.PHONY: demo test test-all lint bench clean

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_CONSTRAINT) -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/subcell demo --out subcell-demo

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet $(TORCH_CONSTRAINT) -e '.[dev,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) subcell-demo .pytest_cache .ruff_cache build src/*.egg-info
