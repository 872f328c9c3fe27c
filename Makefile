# odqa: `make run` (the main job on embedded defaults) and `make test` (the whole suite) do all set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.odqa-installed
# Extra arguments for `make run`, e.g. make run ARGS="--epochs 1"
ARGS ?=

.PHONY: venv run test test-unit lint format bench compile clean cluster-check stack kubectl lucene chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/odqa pipeline run --local $(ARGS)

test: venv kubectl lucene chromium
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
	$(BIN)/python bench/serving.py

# kubectl (kustomize inside) builds manifests/ for cluster-check, the stack and tests/deploy. Missing, it
# is installed from Debian when we are root (CI); otherwise say how, and stop.
kubectl:
	@command -v kubectl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing kubectl (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null; \
	  else \
	    echo "kubectl not found: install it (Debian: sudo apt-get install -y kubectl)" >&2; exit 1; \
	  fi; }

# Lucene's nori and shingle factories (Debian's liblucene8-java) and a JDK: tests/retrieval/test_elastic_analysis.py
# runs the Elasticsearch analysis chains odqa deploys on them. Installed like kubectl.
lucene:
	@{ test -f /usr/share/java/lucene-analyzers-nori-8.7.0.jar && command -v javac >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing liblucene8-java (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liblucene8-java default-jdk-headless >/dev/null; \
	  else \
	    echo "Lucene's nori not found: sudo apt-get install -y liblucene8-java default-jdk-headless" >&2; exit 1; \
	  fi; }

# Debian's Chromium + chromedriver (and Korean fonts for the screenshot) for the page's browser test in
# tests/service, installed like kubectl when we are root; otherwise that one test skips and says why.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium, chromium-driver, fonts-noto-cjk (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null; \
	  else \
	    echo "chromium not found: the browser test will skip (Debian: sudo apt-get install -y chromium chromium-driver fonts-noto-cjk)" >&2; \
	  fi; }

# manifests/ against themselves, the compiled pipeline and the installed clients (one line per problem).
cluster-check: venv kubectl
	$(BIN)/python -m odqa.deploy.check

# The manifests' MLflow (+ PostgreSQL database, S3 stand-in, buckets) on this machine; Ctrl-C stops it.
stack: venv kubectl
	$(BIN)/python -m odqa.deploy.stack

clean:
	rm -rf local_outputs .pytest_cache .ruff_cache
