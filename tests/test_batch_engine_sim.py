"""BatchEngine (ModExp lanes on the real MontMul) on Verilator through cocotb.

One Verilator build per configuration (``build/sim/batch_engine_*``), reused
across runs while the generated Verilog is unchanged. The bench is
``sim/batch_engine/batch_engine_tb.py``: a golden scoreboard for random and
directed jobs under random idle/backpressure, the constant-time test (same
declared exponent length, different exponents and bases: identical cycle
counts, equal to the exact model) and Paillier-sized jobs.
"""

from pathlib import Path

import pytest

from hefl.hw.batch_engine import BatchEngine
from hefl.hw.build import run_cocotb, to_verilog

pytestmark = pytest.mark.sim

SIM_DIR = Path(__file__).resolve().parents[1] / "sim" / "batch_engine"


#: One C++ file per model: the wheel's verilated.mk leaves the precompiled-header
#: include flag empty, which breaks the split (parallel) build of larger models.
BUILD_ARGS = ("--output-split", "0")


def engine_verilog(L, w, k, x, lanes):
    """Verilog of one BatchEngine configuration; returns (path, top name)."""
    top = f"batch_engine_L{L}_w{w}_k{k}_x{x}_e{lanes}"
    be = BatchEngine(operand_bits=L, word_bits=w, lanes=lanes, window_bits=k, max_exp_bits=x)
    return to_verilog(be, name=top), top


def run_engine_bench(L, w, k, x, lanes, knobs, seed):
    """Build and run the bench for one configuration; returns the bench's report."""
    verilog, top = engine_verilog(L, w, k, x, lanes)
    env = {"BE_L": L, "BE_W": w, "BE_K": k, "BE_X": x, "BE_LANES": lanes,
           "HEFL_SEED": seed, **knobs}
    return run_cocotb(verilog, toplevel=top, test_module="batch_engine_tb", test_dir=SIM_DIR,
                      build_name=top, env=env, seed=seed, build_args=BUILD_ARGS)["report"]


#: (L, w, k, max_exp_bits, lanes, knobs). Two word widths (16 and the DSP48E2
#: default 51), two window widths, several lanes; exponents longer than the
#: modulus (X > L).
SMALL = [
    pytest.param(64, 16, 4, 150, 3,
                 {"BE_JOBS": 40, "BE_MODULI": 2, "BE_CT_BITS": "0,1,64,150"}, id="L64-w16-k4-e3"),
    pytest.param(256, 51, 5, 300, 2,
                 {"BE_JOBS": 24, "BE_MODULI": 2, "BE_CT_BITS": "5,256,300"}, id="L256-w51-k5-e2"),
]


@pytest.mark.parametrize("L,w,k,x,lanes,knobs", SMALL)
def test_batch_engine_small(L, w, k, x, lanes, knobs, seed):
    rep = run_engine_bench(L, w, k, x, lanes, knobs, seed)
    assert rep["random_jobs"] == knobs["BE_JOBS"] * knobs["BE_MODULI"]
    assert sorted(rep["constant_time_cycles"]) == sorted(knobs["BE_CT_BITS"].split(","))


#: Paillier-1024 (2048-bit modulus n²) and Paillier-2048 (4096-bit n²) lanes.
PAILLIER = [
    pytest.param(2048, 51, 4, 2048, 1024, id="paillier1024", marks=pytest.mark.slow),
    pytest.param(4096, 51, 4, 4096, 2048, id="paillier2048", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("L,w,k,x,nbits", PAILLIER)
def test_batch_engine_paillier(L, w, k, x, nbits, seed):
    rep = run_engine_bench(L, w, k, x, 1, {"BE_PAILLIER_BITS": nbits, "BE_CT_BITS": "64"}, seed)
    p = rep["paillier"]
    assert p["n_bits"] == nbits
    for key in ("encrypt_modexp", "mulmod", "decrypt_half"):
        assert p[f"{key}_cycles"] == p[f"{key}_model"]
