"""MontMul on Verilator through cocotb: random, directed and timing tests.

One Verilator build per configuration (``build/sim/montmul_L<L>_w<w>/``),
reused across runs while the generated Verilog is unchanged. The bench is
``sim/montmul/montmul_tb.py``; it checks every result word for word against
the bit-accurate model and against the specification, and checks the
measured latency and cycles/op against the model's prediction.
"""

from pathlib import Path

import pytest

from hefl.hw.build import run_cocotb, to_verilog
from hefl.hw.montmul import MontMul
from hefl.hw.params import TILE_A_BITS, TILE_B_BITS, ECP5_TILE_BITS

pytestmark = pytest.mark.sim

SIM_DIR = Path(__file__).resolve().parents[1] / "sim" / "montmul"

DSP = (TILE_A_BITS, TILE_B_BITS)
ECP5 = (ECP5_TILE_BITS, ECP5_TILE_BITS)

#: (operand bits, word bits, tiles, knobs); w = 51 on DSP48E2 tiles and
#: w = 36 on ECP5 tiles (two word widths, two multiplier trees).
CONFIGS = [
    pytest.param(256, 51, DSP, {"MM_OPS": 8, "MM_MODULI": 3}, id="L256-w51"),
    pytest.param(256, 36, ECP5, {"MM_OPS": 8, "MM_MODULI": 3}, id="L256-w36"),
    pytest.param(1024, 36, ECP5, {"MM_OPS": 4, "MM_MODULI": 2}, id="L1024-w36"),
    pytest.param(1024, 51, DSP, {"MM_OPS": 4, "MM_MODULI": 2}, id="L1024-w51"),
    pytest.param(2048, 51, DSP, {"MM_OPS": 3, "MM_MODULI": 1, "MM_QUICK": 1},
                 id="L2048-w51", marks=pytest.mark.slow),
    pytest.param(4096, 51, DSP, {"MM_OPS": 2, "MM_MODULI": 1, "MM_QUICK": 1},
                 id="L4096-w51", marks=pytest.mark.slow),
]


def montmul_verilog(operand_bits, word_bits, tiles):
    """Verilog of one MontMul configuration; returns (path, top name, core)."""
    core = MontMul(operand_bits=operand_bits, word_bits=word_bits, tile_bits=tiles)
    top = f"montmul_L{operand_bits}_w{word_bits}"
    return to_verilog(core, name=top), top, core


@pytest.mark.parametrize("operand_bits,word_bits,tiles,knobs", CONFIGS)
def test_montmul_cocotb(operand_bits, word_bits, tiles, knobs, seed):
    verilog, top, core = montmul_verilog(operand_bits, word_bits, tiles)
    env = {"MM_L": operand_bits, "MM_W": word_bits,
           "MM_TILE_A": tiles[0], "MM_TILE_B": tiles[1], "HEFL_SEED": seed, **knobs}
    out = run_cocotb(verilog, toplevel=top, test_module="montmul_tb", test_dir=SIM_DIR,
                     build_name=top, env=env, seed=seed)
    rep = out["report"]
    # The bench asserts these too; check here that the report carries them.
    assert rep["latency_cycles"] == core.timing.latency_cycles
    assert rep["cycles_per_op"] == core.timing.cycles_per_op
