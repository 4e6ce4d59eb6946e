# Two entry points: `make demo` (train the default agent and show its result) and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test install lint clean

$(BIN)/wm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: on a CPU machine this is the local CPU wheel, so no CUDA packages are pulled
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,all]"
	@touch $@

install: $(BIN)/wm

demo: install
	$(BIN)/wm train latent_mlp --run-dir runs/demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs
