# The two set-up commands a user needs: `make sweep` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
CONFIG ?= configs/quickstart.yaml
TARGET ?= local
STORE  ?=
CLUSTER ?=

.PHONY: sweep test test-fast lint lock bench validate-k8s checkov cluster-up cluster-down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Installs take the exact versions in constraints.txt (the lock), so a fresh clone gets the
# libraries the README's figures were measured with.
$(VENV)/.installed-run: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

## lock: refresh constraints.txt from a fresh environment that resolves pyproject.toml's ranges anew
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q -e '.[test]'
	{ echo "# Exact versions that \`make sweep\` and \`make test\` install (pip constraints). Refresh: make lock"; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -v '^cas-harness'; } > constraints.txt
	rm -rf .venv-lock

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
test: $(VENV)/.installed-test $(CHECKOV_VENV)/bin/checkov browser
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
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_train_memory.py
	$(BIN)/python bench/bench_shard_format.py
	$(BIN)/python bench/bench_materialize.py

## validate-k8s: every manifest and generated RayJob against the KubeRay v1.7.0 CRDs, offline
validate-k8s: $(VENV)/.installed-test
	$(BIN)/python tools/validate_k8s.py

## checkov: checkov's security checks of k8s/ and ray_cluster.yaml (tools/checkov.yaml), in an
## environment of its own: checkov pins botocore and packaging below what the harness needs
$(CHECKOV_VENV)/bin/checkov: tools/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r tools/checkov-requirements.txt
	touch $@

checkov: $(CHECKOV_VENV)/bin/checkov $(VENV)/.installed-test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(CHECKOV_VENV)/bin/checkov --config-file tools/checkov.yaml --compact --quiet

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
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache
