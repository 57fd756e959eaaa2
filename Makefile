# Every target bootstraps .venv itself: a fresh machine needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
STAMP := $(VENV)/.installed
JUPYTER := $(VENV)/.installed-notebooks
DEMO_DIR := .demo

.PHONY: demo test lint docs bench notebooks screenshots constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# what the demo needs: TrailGuard and its runtime dependencies only
# (runtime packages at the versions in deploy/constraints.txt, as the container gets them)
PIP := $(BIN)/python -m pip install --quiet -c deploy/constraints.txt
$(BASE): pyproject.toml deploy/constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $(BASE)

# the tests, linters and local servers too
$(STAMP): pyproject.toml deploy/constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $(STAMP) $(BASE)

demo: $(BASE)
	$(BIN)/trailguard demo --dir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the guide as a site in site/; strict: a broken link or anchor fails the build (a test runs it too)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m bench.scan --events 1000000
	$(BIN)/python -m bench.ingest --events 1000000
	$(BIN)/python -m bench.fetch --latency-ms 30
	$(BIN)/python -m bench.fetch --latency-ms 30 --split 20
	$(BIN)/python -m bench.cross_account
	$(BIN)/python -m bench.sigma --events 1000000
	$(BIN)/python -m bench.detection --events 1000000
	$(BIN)/python -m bench.incidents --days 30 --accounts 20 --events 5000
	$(BIN)/python -m bench.hotpath scan
	$(BIN)/python -m bench.hotpath ingest
	$(BIN)/python -m bench.sparse --events 20000
	$(BIN)/python -m bench.scale --events 10000000 --days 10
	$(BIN)/python -m bench.compact --events 10000000

# Jupyter on the investigation notebooks; TRAILGUARD_LAKE / TRAILGUARD_STATE choose the lake (default: the demo's)
TRAILGUARD_LAKE ?= $(abspath $(DEMO_DIR)/lake)
TRAILGUARD_STATE ?= $(abspath $(DEMO_DIR)/state.db)
$(JUPYTER): pyproject.toml deploy/constraints.txt | $(BIN)/python
	$(PIP) -e '.[notebooks]'
	touch $(JUPYTER) $(BASE)

notebooks: $(JUPYTER)
	$(BIN)/trailguard notebooks --lake $(TRAILGUARD_LAKE) --state $(TRAILGUARD_STATE)

# the README's notebook images, from the notebooks executed on a fresh demo
screenshots: $(STAMP)
	$(BIN)/trailguard demo --dir $(DEMO_DIR) > /dev/null
	$(BIN)/python docs/notebooks/screenshots.py $(DEMO_DIR)

# move the pins to the newest releases pyproject.toml allows (then run the tests, and commit both)
constraints: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	$(BIN)/python deploy/constraints.py
	touch $(STAMP) $(BASE)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .demo-live site bench/out
