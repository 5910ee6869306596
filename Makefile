# Mamori: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_DIR := tests/micropython
NODE_STAMP := $(NODE_DIR)/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs
DURATION ?= 0
STATE_DIR ?= $(HOME)/.local/share/mamori/sim

.PHONY: run test test-python test-micropython lint bench bench-smoke deps system-deps test-system-deps clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The MicroPython WebAssembly port for the portable-core tests (skipped, with the reason, without npm).
$(NODE_STAMP): $(NODE_DIR)/package.json
	@if command -v npm >/dev/null; then cd $(NODE_DIR) && npm install --no-audit --no-fund --silent; \
	else echo "npm is missing: the MicroPython tests will be skipped (apt-get install nodejs npm)"; fi

deps: $(STAMP) $(NODE_STAMP)

# Mosquitto is the embedded platform broker on the sim board (installed when missing and we may).
system-deps:
	@bash .ci/system-deps.sh mosquitto

# Every real component the tests use (tests/components.py); without root they skip with the reason.
test-system-deps:
	@bash .ci/system-deps.sh --best-effort

## run: a gateway on the simulated board with simulated devices and an embedded broker
run: $(STAMP) system-deps
	$(VENV)/bin/mamori demo --state-dir $(STATE_DIR) $(if $(filter-out 0,$(DURATION)),--duration $(DURATION))

## test: lint, type-check, the full test suite, and the portable core on MicroPython
test: test-system-deps deps
	$(VENV)/bin/ruff check firmware host_tools provisioning tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(MAKE) test-micropython
	$(VENV)/bin/pytest -q

test-micropython: deps
	$(PY) tests/micropython/run_core_tests.py

## bench: every benchmark, one JSON line per figure with its same-run baseline and ratio
bench: deps
	$(PY) bench/run.py

## bench-smoke: every benchmark at tiny sizes (a minute or two), so none silently rots; CI runs it
bench-smoke: deps
	MAMORI_BENCH_SMOKE=1 $(PY) bench/run.py

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules build *.egg-info
