"""MontMul on Verilator through cocotb: random, directed and timing tests.

One Verilator build per configuration (``build/sim/montmul_L<L>_w<w>.../``),
reused across runs while the generated Verilog is unchanged. The bench is
``sim/hefl/sim/tb/montmul_tb.py`` (the core in its stream wrapper); it checks
every result word for word against the bit-accurate model and against the
specification (random operands < 2N, multiplies and squarings, with random
idle cycles and backpressure; corners 0, 1, N−1, R mod N, a = b, 2N−1,
R² mod N on all-ones, small-top-word, short and tiny moduli, each also
squared), and checks the measured latency and cycles/op of both modes
against the model.
"""

import pytest

from hefl.golden.montgomery import words_for
from hefl.golden.montmul_hw import SQR, mul_latency, op_timing
from hefl.hw.params import (
    ECP5_TILE_BITS,
    MONTMUL_ECP5_WORD_BITS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)
from hefl.sim.montmul_bench import run_montmul_bench

pytestmark = pytest.mark.sim

DSP = (TILE_A_BITS, TILE_B_BITS)
ECP5 = (ECP5_TILE_BITS, ECP5_TILE_BITS)
W, WE = MONTMUL_WORD_BITS, MONTMUL_ECP5_WORD_BITS


def _config(bits, w, tiles, knobs, **kw):
    return pytest.param(bits, w, tiles, knobs, id=f"L{bits}-w{w}", **kw)


#: (operand bits, word bits, tiles, knobs); w = 51 on DSP48E2 tiles and
#: w = 36 on ECP5 tiles (two word widths, two multiplier trees).
CONFIGS = [
    _config(256, W, DSP, {"MM_OPS": 8, "MM_MODULI": 3}),
    _config(256, WE, ECP5, {"MM_OPS": 8, "MM_MODULI": 3}),
    _config(1024, WE, ECP5, {"MM_OPS": 4, "MM_MODULI": 2}),
    _config(1024, W, DSP, {"MM_OPS": 4, "MM_MODULI": 2}),
    _config(2048, W, DSP, {"MM_OPS": 3, "MM_MODULI": 1, "MM_QUICK": 1}, marks=pytest.mark.slow),
    _config(4096, W, DSP, {"MM_OPS": 2, "MM_MODULI": 1, "MM_QUICK": 1}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("operand_bits,word_bits,tiles,knobs", CONFIGS)
def test_montmul_cocotb(operand_bits, word_bits, tiles, knobs, seed):
    rep = run_montmul_bench(operand_bits, word_bits, tiles, seed=seed, knobs=knobs)
    # The bench asserts these against the model; check the report carries them.
    s, lat = words_for(operand_bits, word_bits), mul_latency(word_bits, *tiles)
    timing, square = op_timing(s, lat), op_timing(s, lat, SQR)
    assert rep["latency_cycles"] == timing.latency_cycles
    assert rep["cycles_per_op"] == timing.cycles_per_op
    assert rep["square"]["latency_cycles"] == square.latency_cycles
    assert rep["square"]["cycles_per_op"] == square.cycles_per_op
    # A squaring takes s(s+1)/2 + s² + s slots instead of 2s² + s.
    assert square.mul_slots == s * (s + 1) // 2 + s * s + s
    assert square.cycles_per_op < timing.cycles_per_op
