# Every target bootstraps .venv itself: a fresh machine needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := .demo

.PHONY: demo test lint bench notebooks screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trailguard demo --dir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.scan --events 1000000
	$(BIN)/python -m bench.ingest --events 1000000
	$(BIN)/python -m bench.cross_account
	$(BIN)/python -m bench.scale --events 10000000 --days 10

# Jupyter on the investigation notebooks; TRAILGUARD_LAKE / TRAILGUARD_STATE choose the lake (default: the demo's)
TRAILGUARD_LAKE ?= $(abspath $(DEMO_DIR)/lake)
TRAILGUARD_STATE ?= $(abspath $(DEMO_DIR)/state.db)
notebooks: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,notebooks]'
	TRAILGUARD_LAKE=$(TRAILGUARD_LAKE) TRAILGUARD_STATE=$(TRAILGUARD_STATE) $(BIN)/jupyter lab notebooks/

# the README's notebook images, from the notebooks executed on a fresh demo
screenshots: $(STAMP)
	$(BIN)/trailguard demo --dir $(DEMO_DIR) > /dev/null
	$(BIN)/python notebooks/screenshots.py $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench/out
