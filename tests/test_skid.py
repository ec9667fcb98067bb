"""SkidBuffer in Amaranth's simulator: order, no loss, one beat per cycle, and ``flush``.

Random source validity and sink readiness; the model is a queue of the
beats the buffer accepted, emptied by a flush (with the beat handed over in
the flush cycle). Randomness from the ``rng`` fixture (seed printed).
"""

import pytest
from amaranth.sim import Simulator

from hefl.hw.skid import SkidBuffer

WIDTH = 16


def run(flush, rng, cycles=3000):
    """Drive a SkidBuffer for ``cycles`` cycles; return counts of beats in and out, flushes
    and beats out during the full-rate stretch."""
    dut = SkidBuffer(WIDTH, flush=flush)
    stats = {"in": 0, "out": 0, "flushes": 0, "full_rate": 0}

    async def tb(ctx):
        queue, nxt = [], 0
        for cyc in range(cycles):
            burst = cyc < 200      # a stretch at full validity and readiness
            valid = burst or rng.random() < 0.7
            ready = burst or rng.random() < 0.6
            fl = flush and not burst and rng.random() < 0.03
            ctx.set(dut.i_stream.valid, valid)
            ctx.set(dut.i_stream.payload, nxt)
            ctx.set(dut.o_stream.ready, ready)
            if flush:
                ctx.set(dut.flush, fl)
            took = valid and ctx.get(dut.i_stream.ready)
            if ctx.get(dut.o_stream.valid):
                got = ctx.get(dut.o_stream.payload)
                assert queue, f"cycle {cyc}: a beat out of an empty buffer"
                if ready:
                    assert got == queue.pop(0), f"cycle {cyc}: beat {got} out of order"
                    stats["out"] += 1
                    stats["full_rate"] += burst
            if took:
                queue.append(nxt)
                nxt = (nxt + 1) % (1 << WIDTH)
                stats["in"] += 1
            if fl:
                queue.clear()
                stats["flushes"] += 1
            await ctx.tick()
            if fl:
                assert not ctx.get(dut.o_stream.valid), f"cycle {cyc}: valid after a flush"
                assert ctx.get(dut.i_stream.ready), f"cycle {cyc}: not ready after a flush"
        assert len(queue) <= 2, "more than two beats held"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return stats


@pytest.mark.parametrize("flush", [False, True], ids=["plain", "flush"])
def test_skid_order_and_flush(flush, rng):
    stats = run(flush, rng)
    # 200 cycles at full validity and readiness: one beat per cycle after the first.
    assert stats["full_rate"] >= 199
    assert stats["out"] > 1000
    if flush:
        assert stats["flushes"] > 20
    else:
        assert stats["in"] - stats["out"] <= 2
