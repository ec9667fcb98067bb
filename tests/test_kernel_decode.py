"""The kernel's constant divider (POWMOD exponent words = ceil(count / w))."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hefl.hw.jobs import COUNT_BITS
from hefl.hw.kernel import ceil_div_const
from hefl.hw.params import MONTMUL_ECP5_WORD_BITS, MONTMUL_WORD_BITS, TILE_B_BITS
from hefl.hw.regmap import LAYOUT


# Word widths w: the two designs', 32, one tile, a whole limb.
@pytest.mark.parametrize("divisor", [MONTMUL_WORD_BITS, MONTMUL_ECP5_WORD_BITS, 32, TILE_B_BITS,
                                     LAYOUT.limb_bits])
def test_ceil_div_const(divisor, rng):
    m = Module()
    x = Signal(COUNT_BITS)
    y = Signal(COUNT_BITS)
    m.d.comb += y.eq(ceil_div_const(x, divisor, COUNT_BITS))
    top = (1 << COUNT_BITS) - 1
    values = [0, 1, divisor - 1, divisor, divisor + 1, top, top - divisor]
    values += [rng.randrange(1 << COUNT_BITS) for _ in range(300)]
    seen = []

    async def tb(ctx):
        for v in values:
            ctx.set(x, v)
            seen.append((v, ctx.get(y)))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert seen and all(got == -(-v // divisor) for v, got in seen), \
        [(v, got) for v, got in seen if got != -(-v // divisor)][:5]
