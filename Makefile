# Two entry points (README): `make run` and `make test`. Both set up .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp names the hash of pyproject.toml, so a dependency change re-installs.
STAMP := $(VENV)/.stamp-$(shell sha256sum pyproject.toml | cut -c1-12)
# llama-cpp-python has no wheel for this platform: it builds from source (~5 min on 2 cores).
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run browser test test-fast test-integration lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -e ".[dev,llm]"
	rm -f $(VENV)/.stamp-* && touch $@

# The chat window on http://127.0.0.1:7860 with the embedded LLM (HOST/PORT to change).
run: setup
	$(PY) app.py $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

# The real-browser test drives Debian's Chromium; install it when we may (CI runs as root).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the browser test will be skipped"

test: setup browser
	$(PY) -m pytest -q -m "not integration" -p no:cacheprovider
	$(PY) -m pytest -q -m integration -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -m "not integration and not slow" -p no:cacheprovider

test-integration: setup
	$(PY) -m pytest -q -m integration -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/runner_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
