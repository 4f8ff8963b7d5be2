# clipsim: two commands on a fresh machine.
#   make demo   installs into .venv, trains one model, reproduces the paper's figures (quick mode)
#   make test   installs the dev extras into .venv and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/clipsim train experiments/configs/onehot_linear.toml --out $(OUT)/train
	$(BIN)/clipsim reproduce all --quick --out $(OUT)/reproduce

# Both cores: one xdist worker per core, whole files per worker (a module's session
# fixtures and compiled programs stay in one process), a shared compilation cache.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile -m slow $(PYTEST_ARGS)

test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check clipsim tests experiments benchmarks

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis .jax_cache
