# Two entry points: `make demo` (train the default agent and show its result) and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint clean

# The package and what the demo needs. torch comes first and pinned: on a CPU machine this is the
# local CPU wheel, so no CUDA packages are pulled.
$(BIN)/wm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e .
	@touch $@

# Test tools and every optional suite (dm_control, Atari, Box2D, MinAtar, PointMaze), so no suite test is skipped.
$(VENV)/.dev: $(BIN)/wm
	$(BIN)/python -m pip install -q -e ".[dev,all]"
	@touch $@

demo: $(BIN)/wm
	$(BIN)/wm train latent_mlp --run-dir runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(VENV)/.dev
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs bench_runs
