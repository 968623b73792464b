# denseface — two commands do everything on a fresh clone:
#   make run    set up (venv, install, fetch + verify weights) and serve API + page on 127.0.0.1:8000
#   make test   the same set-up, then lint, type-check and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
NODE_DIR := tests/node

.PHONY: run test setup models browser redis node-sdk lint typecheck pytest bench clean containers image lock

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,parquet,ray,models]'
	touch $@

setup: $(VENV)/.installed models

models: $(VENV)/.installed
	$(PY) -m denseface models fetch

# Debian's Chromium for the page tests (Playwright's own browser download is impossible here).
# If it cannot be installed the browser tests are reported as skipped, with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null ) \
	    || echo "WARNING: could not install chromium; the browser tests will be skipped"; }

# Debian's redis-server for the shared-store tests (tests/redis_server.py starts one per test session on a
# free port in a temporary directory). If it cannot be installed those tests are reported as skipped.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing Debian redis-server for the shared-store tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null ) \
	    || echo "WARNING: could not install redis-server; the shared-store tests will be skipped"; }

# The official Node.js SDK for tests/test_node_sdk.py, pinned with every dependency in
# tests/node/package-lock.json (installed into the git-ignored tests/node/node_modules). Without npm
# (and no Debian nodejs/npm to install), or if the install fails, those tests are reported as skipped.
node-sdk: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian nodejs and npm for the Node.js SDK tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null ) \
	    || echo "WARNING: could not install npm; the Node.js SDK tests will be skipped"; }
	@if command -v npm >/dev/null 2>&1; then \
	  ( cd $(NODE_DIR) && npm ci --loglevel=error && touch node_modules/.installed ) \
	    || echo "WARNING: npm ci failed in $(NODE_DIR); the Node.js SDK tests will be skipped"; \
	fi

# Containers (docs/deploying.md): podman (+ buildah, runc, podman-compose, debootstrap) from Debian and
# /etc/containers/containers.conf for hosts without systemd; if they cannot be installed the container
# tests are reported as skipped. `make image` builds denseface:latest with podman or docker (a local
# Debian base made with debootstrap where the public python image cannot be pulled).
containers:
	@bash deploy/containers.sh setup

image: containers
	bash deploy/containers.sh image

# The image's pinned, hashed dependencies (requirements/*.lock) from pyproject.toml and requirements/*.in,
# for Python 3.11 on Linux. Run after changing dependencies; commit the locks.
UV_COMPILE = SSL_CERT_FILE=$${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt} $(VENV)/bin/uv pip compile \
	--quiet --python-version 3.11 --python-platform linux --generate-hashes --no-header
lock: $(VENV)/.installed
	$(PY) -m pip install --quiet uv
	$(UV_COMPILE) pyproject.toml requirements/serve.in -o requirements/serve.lock
	$(UV_COMPILE) -c requirements/serve.lock requirements/models.in -o requirements/models.lock

run: setup
	$(PY) -m denseface serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check denseface tests benchmarks
	$(VENV)/bin/ruff format --check denseface tests benchmarks

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

pytest: setup browser redis node-sdk containers
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: setup
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/accuracy90.py
	$(PY) benchmarks/precision.py
	$(PY) benchmarks/recall.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/http_load.py
	$(PY) benchmarks/http_load.py --metering
	$(PY) benchmarks/attack.py
	$(PY) benchmarks/video.py
	$(PY) benchmarks/stream.py
	$(PY) benchmarks/batch.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_DIR)/node_modules
