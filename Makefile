# odqa: `make run` (the main job on embedded defaults) and `make test` (the whole suite) do all set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.odqa-installed
# Extra arguments for `make run`, e.g. make run ARGS="--epochs 1"
ARGS ?=

.PHONY: venv run test test-unit lint format bench compile clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/odqa pipeline run --local $(ARGS)

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The fast edit loop: no training, no DAG, no servers.
test-unit: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -m unit

lint: venv
	$(BIN)/ruff check src tests bench components pipelines
	$(BIN)/ruff format --check src tests bench components pipelines

format: venv
	$(BIN)/ruff format src tests bench components pipelines
	$(BIN)/ruff check --fix src tests bench components pipelines

compile: venv
	$(BIN)/odqa pipeline compile

bench: venv
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/reader.py
	$(BIN)/python bench/retrievers.py
	$(BIN)/python bench/pipeline_overhead.py
	$(BIN)/python bench/ablation.py

clean:
	rm -rf local_outputs .pytest_cache .ruff_cache
