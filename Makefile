# deblur: two commands do everything on a fresh machine: `make train` and `make test`.
# Both create .venv and install the suite (editable, with dev tools) the first time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# extra arguments for deblur-train / pytest, e.g. make train ARGS="model=msfs ablation=msfs/no_fsm"
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test test-fast bench lint clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

train: install
	$(BIN)/deblur-train $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick loop while editing: everything but the tests marked slow (real command subprocesses, DDP,
# sweeps, compile).
test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

# The benchmark (README "Performance"): bench.json + bench.md in logs/bench/runs/<time>/.
# A quicker run: make bench ARGS="timed=[msfs_small] tiling.enabled=false precision_run.enabled=false"
bench: install
	$(BIN)/deblur-bench $(ARGS)

lint: install
	$(BIN)/ruff check src tests experiments

clean:
	rm -rf logs multirun outputs .pytest_cache .ruff_cache
