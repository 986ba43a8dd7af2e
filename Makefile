# The two set-up commands a user needs: `make sweep` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/quickstart.yaml
TARGET ?= local
STORE  ?=
CLUSTER ?=

.PHONY: sweep test test-fast lint bench validate-k8s cluster-up cluster-down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

## sweep: run CONFIG (default: the quickstart) on a local Ray, or TARGET=k8s to submit a RayJob
sweep: $(VENV)/.installed-run
ifeq ($(TARGET),k8s)
	$(BIN)/harness submit $(CONFIG) $(if $(STORE),--store $(STORE)) $(if $(CLUSTER),--cluster $(CLUSTER))
else ifeq ($(TARGET),local)
	$(BIN)/harness sweep $(CONFIG) $(if $(STORE),--store $(STORE))
else
	$(error TARGET must be local or k8s, got '$(TARGET)')
endif

## test: lint and the whole test suite (what CI runs)
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/pytest

## test-fast: the suite without the slow integration tests
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

## bench: the benchmarks whose figures are in BENCHMARKS.md
bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench_quickstart.py
	$(BIN)/python bench/bench_fid.py

## validate-k8s: every manifest and generated RayJob against the KubeRay v1.7.0 CRDs, offline
validate-k8s: $(VENV)/.installed-test
	$(BIN)/python -m harness.k8s_validate

## cluster-up / cluster-down: the lab's shared autoscaling RayCluster (needs kubectl and the KubeRay operator)
cluster-up:
	kubectl apply -k k8s/
	kubectl apply -f ray_cluster.yaml
	kubectl wait raycluster/cas-shared -n cas --for=jsonpath='{.status.state}'=ready --timeout=10m

cluster-down:
	kubectl delete -f ray_cluster.yaml --ignore-not-found

## browser: headless Chromium for the report's browser tests (Debian package, as root); else they are skipped
.PHONY: browser
browser:
	@command -v chromium >/dev/null || ( [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium ) \
		|| echo "chromium not installed: the report's browser tests will be skipped"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
