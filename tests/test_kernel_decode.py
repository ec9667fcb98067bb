"""The kernel's constant divider: POWMOD exponent words ceil(count / w) = floor((count + w - 1) / w)."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hefl.hw.jobs import COUNT_BITS
from hefl.hw.kernel import div_const, div_const_parts
from hefl.hw.params import MONTMUL_ECP5_WORD_BITS, MONTMUL_WORD_BITS, TILE_B_BITS
from hefl.hw.regmap import LAYOUT


# Word widths w: the two designs', 32, one tile, a whole limb.
@pytest.mark.parametrize("divisor", [MONTMUL_WORD_BITS, MONTMUL_ECP5_WORD_BITS, 32, TILE_B_BITS,
                                     LAYOUT.limb_bits])
def test_div_const_gives_the_ceiling(divisor, rng):
    # As the job decode uses it: the dividend count + divisor - 1 registered
    # on COUNT_BITS + 1 bits, then div_const.
    m = Module()
    x = Signal(COUNT_BITS + 1)
    y = Signal(COUNT_BITS + 1)
    m.d.comb += y.eq(div_const(x, divisor, COUNT_BITS + 1))
    top = (1 << COUNT_BITS) - 1
    counts = [0, 1, divisor - 1, divisor, divisor + 1, top, top - divisor]
    counts += [rng.randrange(1 << COUNT_BITS) for _ in range(300)]
    seen = []

    async def tb(ctx):
        for c in counts:
            ctx.set(x, c + divisor - 1)
            seen.append((c, ctx.get(y)))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert seen and all(got == -(-c // divisor) for c, got in seen), \
        [(c, got) for c, got in seen if got != -(-c // divisor)][:5]


@pytest.mark.parametrize("divisor", [MONTMUL_WORD_BITS, MONTMUL_ECP5_WORD_BITS, 32, TILE_B_BITS,
                                     LAYOUT.limb_bits])
@pytest.mark.parametrize("s", [1, 29, 57])
def test_split_ceiling_is_exact(divisor, s):
    # The decode's POWMOD operand count, with the multiply in stage 1 and a
    # constant add and shift in stage 2: every count of COUNT_BITS bits.
    recip, shift = div_const_parts(divisor, COUNT_BITS + 1)
    add = (divisor - 1) * recip + (s << shift)
    bad = [c for c in range(1 << COUNT_BITS)
           if (c * recip + add) >> shift != s - (-c // divisor)]
    assert not bad, bad[:5]
