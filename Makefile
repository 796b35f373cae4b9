# Two commands for a newcomer: `make demo` and `make test`.
# Each creates .venv when missing and installs the package into it.
#
# torch: where no NVIDIA GPU is present, a CPU build is installed first
# (torch==2.13.0; on machines that keep that CPU wheel locally pip takes it
# from there). A bare `torch` requirement would pull a CUDA build of several GB.
# Override: make demo TORCH=torch                      (let pip choose)
#           make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HAS_NVIDIA_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH ?= $(if $(HAS_NVIDIA_GPU),torch,torch==2.13.0)
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test lint format bench install clean

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

demo: install
	$(BIN)/e2e-recon demo

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: install
	@for script in benchmarks/*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
