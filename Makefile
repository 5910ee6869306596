# Mamori: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_DIR := tests/micropython
NODE_STAMP := $(NODE_DIR)/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs
DURATION ?= 0
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_STAMP := $(VENV)/.fuzz-installed
STATE_DIR ?= $(HOME)/.local/share/mamori/sim
# pytest-xdist workers for `make test`: one per core (JOBS=0: no workers, one process).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test test-board test-python test-micropython lint bench bench-smoke deps system-deps test-system-deps clean fuzz fuzz-smoke fuzz-deps

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

## test: lint, type-check, the full test suite (in parallel: JOBS workers; tests marked
## `serial` share one; skips listed with their reasons, -ra), and the portable core on MicroPython
test: test-system-deps deps
	$(VENV)/bin/ruff check firmware host_tools provisioning tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(MAKE) test-micropython
	$(VENV)/bin/pytest -q -m "not board" -n $(JOBS) --dist loadgroup --durations=15

## test-board: the rpi4 image run from its own files in an arm64 Debian root under qemu-user
test-board: deps
	@bash .ci/system-deps.sh --best-effort ext4 netns systemd-analyze mmdebstrap qemu-arm64
	@bash .ci/binfmt.sh
	$(VENV)/bin/pytest -q -s -p no:cacheprovider -m board tests/board

test-micropython: deps
	$(PY) tests/micropython/run_core_tests.py

## bench: every benchmark, one JSON line per figure with its same-run baseline and ratio
bench: deps
	$(PY) bench/run.py

## bench-smoke: every benchmark at tiny sizes (a minute or two), so none silently rots; CI runs it
bench-smoke: deps
	MAMORI_BENCH_SMOKE=1 $(PY) bench/run.py

# atheris (coverage-guided, libFuzzer) where a wheel exists for this Python; hypothesis otherwise.
$(FUZZ_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[fuzz]' || echo "atheris does not install here: fuzzing with hypothesis"
	touch $(FUZZ_STAMP)

fuzz-deps: $(FUZZ_STAMP)

## fuzz: every parser the outside world reaches, FUZZ_SECONDS (600) each, one after the other
fuzz: deps fuzz-deps
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

## fuzz-smoke: a few seconds per target (CI)
fuzz-smoke: deps fuzz-deps
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SMOKE_SECONDS) --out build/fuzz-smoke/results.json

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules build *.egg-info
