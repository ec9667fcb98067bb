"""The kernel's constant divider (POWMOD exponent words = ceil(count / w))."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hefl.hw.kernel import ceil_div_const


@pytest.mark.parametrize("divisor", [51, 36, 32, 17, 64])
def test_ceil_div_const(divisor, rng):
    m = Module()
    x = Signal(16)
    y = Signal(16)
    m.d.comb += y.eq(ceil_div_const(x, divisor, 16))
    values = [0, 1, divisor - 1, divisor, divisor + 1, 65535, 65535 - divisor]
    values += [rng.randrange(1 << 16) for _ in range(300)]
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
