# One command each: `make lab` (set up + open the tutorial), `make test` (set up + all tests).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup lab serve test test-quick lint bench bench-replicas image-test clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

setup: $(BIN)/.installed

# JupyterLab on 127.0.0.1 only; it prints the URL with its token. As root (containers,
# CI, hosted notebooks) jupyter refuses to start without --allow-root; as a user it is
# not passed. LAB_ARGS adds options, e.g. `make lab LAB_ARGS=--no-browser`.
LAB_HOST ?= 127.0.0.1
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab --ServerApp.ip=$(LAB_HOST) $(ALLOW_ROOT) $(LAB_ARGS) notebooks/

serve: setup
	$(BIN)/python -m mirror_kit serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy mirror_kit

test: setup lint
	$(BIN)/pytest

# Everything but the JupyterLab-in-Chromium tests (tests/browser, marker `browser`).
test-quick: setup lint
	$(BIN)/pytest -m "not browser"

bench: setup
	$(BIN)/python bench/bench_mirror.py
	$(BIN)/python bench/bench_prometheus.py

# Build the Containerfile on a base made from Debian's packages and run the image with
# a read-only root (root, buildah and debootstrap needed; minutes: not part of `test`).
image-test: setup
	$(BIN)/python deploy/image/test.py

# Two replicas behind haproxy vs one (needs haproxy and wrk from Debian's packages).
bench-replicas: setup
	$(BIN)/python bench/replicas.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
