# hefl — thin Makefile; the real logic lives in Python (hefl CLI) and pytest.
# Every target depends on `setup`, so a fresh clone needs nothing but
# Python, gcc and make.

PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.hefl-installed
JOBS      ?= 2
PYTEST_ARGS ?=
BUILD     ?= build

# Keep tool caches inside the build tree, never in $HOME.
export YOWASP_CACHE_DIR := $(abspath $(BUILD))/cache/yowasp
export XDG_CACHE_HOME   := $(abspath $(BUILD))/cache/xdg
export MPLBACKEND       := Agg

.PHONY: setup test test-fast demo demo-flower sim hw-report bench fuzz bitstream xo xclbin formal clean distclean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,flower]'
	touch $@

## test: the whole regression (golden models, Amaranth, cocotb/Verilator, host, FL)
test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

## test-fast: everything but the tests marked slow
test-fast: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

## demo: federated training with homomorphic aggregation (the main job)
demo: setup
	$(BIN)/hefl demo --out $(BUILD)/demo

## demo-flower: examples/flower-multitensor with homomorphic FedAvg on a SuperLink + 3 SuperNodes on 127.0.0.1 (TLS, SuperNode auth, no plaintext sent)
demo-flower: setup
	$(BIN)/hefl flower --out $(BUILD)/flower

## hw-report: cycle counts and resource reports for the hardware cores
hw-report: setup
	$(BIN)/hefl hw-report --out $(BUILD)/reports

## sim: the Verilator model of the kernel on random Paillier-shaped jobs
sim: setup
	$(BIN)/hefl sim --json $(BUILD)/reports/sim.json

## bench: the benchmark suite (writes JSON under build/reports)
bench: setup
	$(BIN)/hefl bench paillier --key-bits 2048 --json $(BUILD)/reports/paillier.json

## fuzz: 100,000 mutated vectors, key files and encoding parameters against the readers
fuzz: setup
	$(BIN)/hefl fuzz --cases 100000 --json $(BUILD)/reports/fuzz.json

## formal: SymbiYosys proofs of the bus interfaces and stream ports, and the mutants they catch
formal: setup
	$(BIN)/hefl formal --mutants -j $(JOBS) --json $(BUILD)/reports/formal.json

## bitstream: ECP5 (ULX3S 85F) bitstream + build/reports/ecp5.json with the open tools
bitstream: setup
	$(BIN)/hefl bitstream --out $(BUILD)

## xo / xclbin: the Alveo flow under build/alveo (Vivado/Vitis where installed, else a one-line error)
xo: setup
	$(BIN)/hefl alveo xo --out $(BUILD)/alveo

xclbin: setup
	$(BIN)/hefl alveo xclbin --platform "$(PLATFORM)" --out $(BUILD)/alveo

clean:
	rm -rf $(BUILD) sim_build .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV)
