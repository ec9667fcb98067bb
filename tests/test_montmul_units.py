"""Amaranth-simulator unit tests of the MontMul's small parts.

* :class:`MulPipe`: one product per cycle, exactly ``latency`` cycles later,
  for the DSP48E2 (26×17) and ECP5 (18×18) tilings, a one-tile and a
  many-tile case; random and extreme operands, back to back.
* :class:`MontMul` constructor checks and its published properties.
"""

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hefl.golden.montgomery import words_for
from hefl.golden.montmul_hw import mul_latency, op_timing
from hefl.hw.montmul import MontMul
from hefl.hw.mulpipe import MulPipe, tile_plan
from hefl.hw.params import (
    ECP5_TILE_BITS,
    MONTMUL_ECP5_WORD_BITS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)
from hefl.hw.regmap import LAYOUT

W = MONTMUL_WORD_BITS
TA, TB = DSP = (TILE_A_BITS, TILE_B_BITS)
ECP5 = (ECP5_TILE_BITS, ECP5_TILE_BITS)


# The two designs' words, one tile, the widest word (a limb), two tiles wide.
@pytest.mark.parametrize("w,ta,tb", [(W, *DSP), (MONTMUL_ECP5_WORD_BITS, *ECP5), (TB, *DSP),
                                     (LAYOUT.limb_bits, *DSP), (2 * TB, *DSP)])
def test_mulpipe_products(w, ta, tb, rng):
    dut = MulPipe(a_bits=w, b_bits=w, tile_a=ta, tile_b=tb)
    lat = dut.latency
    assert lat == mul_latency(w, ta, tb)
    top = (1 << w) - 1
    vals = [(top, top), (0, top), (top, 0), (1, top), (top, 1), (1 << (w - 1), 1 << (w - 1))]
    vals += [(rng.getrandbits(w), rng.getrandbits(w)) for _ in range(60)]
    seen = []

    async def bench(ctx):
        for k in range(len(vals) + lat):
            a, b = vals[k] if k < len(vals) else (0, 0)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            src = k + 1 - lat   # input presented `lat` cycles ago
            if 0 <= src < len(vals):
                seen.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [a * b for a, b in vals]


def test_tile_plan_covers_operands():
    tiles, levels = tile_plan(W, W, TA, TB)
    assert len(tiles) == 6 and levels == 3
    # Every bit pair (i, j) of a × b is covered by exactly one tile.
    cover = {}
    for ao, aw, bo, bw in tiles:
        assert aw <= TA and bw <= TB
        for i in range(ao, ao + aw):
            for j in range(bo, bo + bw):
                cover[(i, j)] = cover.get((i, j), 0) + 1
    assert len(cover) == W * W and set(cover.values()) == {1}


def test_mulpipe_bad_params():
    with pytest.raises(TypeError, match="a_bits must be a positive integer"):
        MulPipe(a_bits=0, b_bits=8, tile_a=TA, tile_b=TB)
    with pytest.raises(TypeError):
        MulPipe(a_bits=8, b_bits=8.0, tile_a=TA, tile_b=TB)


def test_montmul_params():
    mm = MontMul(operand_bits=4096, word_bits=W)
    assert mm.words == words_for(4096, W) == 81
    assert mm.mul_latency == 5
    assert mm.timing == op_timing(81, 5)
    assert mm.timing.cycles_per_op == 81 * 163
    assert mm.i_stream.payload.shape().size == 2 * W          # a and b words
    assert mm.o_stream.payload.shape().size == W + 1          # result word and last
    Fragment.get(mm, None)  # elaborates
    with pytest.raises(TypeError, match="Word width"):
        MontMul(operand_bits=256, word_bits=0)
    with pytest.raises(TypeError, match="at most 64"):
        MontMul(operand_bits=256, word_bits=65)
    with pytest.raises(TypeError, match="Operand width"):
        MontMul(operand_bits="256", word_bits=W)
    with pytest.raises(ValueError, match="at least"):
        MontMul(operand_bits=64, word_bits=W)
    with pytest.raises(TypeError, match="Tile"):
        MontMul(operand_bits=256, word_bits=W, tile_bits=(TA,))
