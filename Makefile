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

.PHONY: demo test test-all lint bench models nile-red-model clean

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

# Reproduce the bundled models: simulate their datasets, train the epi models, fine-tune the
# Airyscan ones from them (transfer learning). `subcell train` resumes an interrupted run and
# skips a model already trained with the same config and data.
MODEL_DATA ?= build/model-data
BUNDLED := src/subcell/models/bundled
EPI_IMAGES ?= 1500
AIRY_IMAGES ?= 400
WORKERS ?= 2
DEVICE ?= auto

models: $(STAMP)
	$(BIN)/subcell simulate configs/sim/epi1-mito-live.yaml --out $(MODEL_DATA)/epi1-mito-live.zarr --n $(EPI_IMAGES) --workers $(WORKERS)
	$(BIN)/subcell simulate configs/sim/epi1-vesicles-train.yaml --out $(MODEL_DATA)/epi1-vesicles-train.zarr --n $(EPI_IMAGES) --workers $(WORKERS)
	$(BIN)/subcell simulate configs/sim/airy1-mito.yaml --out $(MODEL_DATA)/airy1-mito.zarr --n $(AIRY_IMAGES) --workers $(WORKERS)
	$(BIN)/subcell simulate configs/sim/airy1-vesicles.yaml --out $(MODEL_DATA)/airy1-vesicles.zarr --n $(AIRY_IMAGES) --workers $(WORKERS)
	$(BIN)/subcell train configs/train/mitochondria-epi.yaml --data $(MODEL_DATA)/epi1-mito-live.zarr --out $(BUNDLED)/mitochondria-epi --device $(DEVICE)
	$(BIN)/subcell train configs/train/vesicles-epi.yaml --data $(MODEL_DATA)/epi1-vesicles-train.zarr --out $(BUNDLED)/vesicles-epi --device $(DEVICE)
	$(BIN)/subcell train configs/train/mitochondria-airyscan.yaml --data $(MODEL_DATA)/airy1-mito.zarr --out $(BUNDLED)/mitochondria-airyscan --init-from $(BUNDLED)/mitochondria-epi --device $(DEVICE)
	$(BIN)/subcell train configs/train/vesicles-airyscan.yaml --data $(MODEL_DATA)/airy1-vesicles.zarr --out $(BUNDLED)/vesicles-airyscan --init-from $(BUNDLED)/vesicles-epi --device $(DEVICE)

# The bundled Nile Red model (nile-red-multilabel-cpu): 24 simulated cells, the small
# multi-label network trained on a CPU. With a GPU, train configs/nile_red/train-multilabel.yaml
# or run configs/pipelines/nile-red.yaml instead.
NILE_RED_CELLS ?= 24

nile-red-model: $(STAMP)
	$(BIN)/subcell simulate configs/nile_red/sim-cell.yaml --out $(MODEL_DATA)/nile-red-cells.zarr --n $(NILE_RED_CELLS) --workers $(WORKERS)
	$(BIN)/subcell train configs/nile_red/train-multilabel-cpu.yaml --data $(MODEL_DATA)/nile-red-cells.zarr --out $(BUNDLED)/nile-red-multilabel-cpu --device $(DEVICE)

clean:
	rm -rf $(VENV) subcell-demo .pytest_cache .ruff_cache build src/*.egg-info
