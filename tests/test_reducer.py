"""The sub-engine's Reducer in Amaranth's simulator: ``x mod N`` for ``x < 2N``, in constant time.

At several word widths and word counts (small top words included): the
corners 0, 1, N − 1, N, N + 1, 2N − 1, values equal to N but in one word,
and random values below 2N, each against ``x % N``; the tag passes
unchanged; every result takes the same cycles from its last word in to its
last word out, :func:`hefl.golden.batch.reducer_latency`, whatever the value
(whether N is subtracted or not); and beats offered back to back are taken
one every two cycles.
"""

import pytest
from amaranth.sim import Simulator

from hefl.golden import batch as gb
from hefl.golden.montgomery import from_words, to_words
from hefl.hw.jobs import CONST_SEL
from hefl.hw.reducer import Reducer


def _corners(n, w, s, rng):
    top = (n >> (w * (s - 1))) << (w * (s - 1))
    vals = [0, 1, n - 1, n, n + 1, 2 * n - 1, top, n - 1 - (n & ((1 << w) - 1))]
    # N with one word changed by one: the borrow chain decides at that word.
    for j in range(s):
        for d in (-1, 1):
            v = n + d * (1 << (w * j))
            if 0 <= v < 2 * n:
                vals.append(v)
    vals += [rng.randrange(2 * n) for _ in range(24)]
    return vals


def _run(n, w, s, values, *, gap):
    """Feed ``values`` (one result each, ``gap`` idle cycles after each beat).

    Returns, per result, ``(value out, tags seen, cycles from the last beat in
    to the last beat out, cycles each beat waited for ready)``.
    """
    dut = Reducer(words=s, word_bits=w, tag_bits=4)
    out = []

    async def tb(ctx):
        for j, word in enumerate(to_words(n, w, s)):
            ctx.set(dut.const_wr_en, 1)
            ctx.set(dut.const_wr_sel, CONST_SEL["n"])
            ctx.set(dut.const_wr_addr, j)
            ctx.set(dut.const_wr_data, word)
            await ctx.tick()
        ctx.set(dut.const_wr_en, 0)
        await ctx.tick().repeat(2)
        ctx.set(dut.o_stream.ready, 1)
        for t, v in enumerate(values):
            taken = []
            for j, word in enumerate(to_words(v, w, s)):
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.payload.data, word)
                ctx.set(dut.i_stream.payload.tag, t % 16)
                ctx.set(dut.i_stream.payload.last, j == s - 1)
                cycle = 0
                while not ctx.get(dut.i_stream.ready):
                    await ctx.tick()
                    cycle += 1
                taken.append(cycle)
                await ctx.tick()
                ctx.set(dut.i_stream.valid, 0)
                if gap:
                    await ctx.tick().repeat(gap)
            # The last beat's handshake was `gap + 1` cycles ago.
            waited, words, tags = gap + 1, [], set()
            while len(words) < s:
                if ctx.get(dut.o_stream.valid):
                    words.append(ctx.get(dut.o_stream.payload.data))
                    tags.add(ctx.get(dut.o_stream.payload.tag))
                    last = ctx.get(dut.o_stream.payload.last)
                    assert last == (len(words) == s)
                    if len(words) == s:
                        break
                await ctx.tick()
                waited += 1
            await ctx.tick()
            out.append((from_words(words, w), tags, waited, taken))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("w, s, top_bits", [(8, 5, 6), (8, 5, 1), (12, 7, 9), (51, 3, 40),
                                            (36, 4, 2)])
def test_reducer_subtracts_n_when_due_in_constant_time(rng, w, s, top_bits):
    n = (1 << (w * (s - 1) + top_bits - 1)) | rng.getrandbits(w * (s - 1) + top_bits - 1) | 1
    values = _corners(n, w, s, rng)
    out = _run(n, w, s, values, gap=1)
    for t, (v, (got, tags, waited, taken)) in enumerate(zip(values, out)):
        assert got == v % n, (v, got)
        assert tags == {t % 16}
        # From the last word in to the last word out: the model, for every value.
        assert waited == gb.reducer_latency(s), (v, waited)
        assert taken == [0] * s          # a beat every 2 cycles is never kept waiting


def test_reducer_takes_a_beat_every_two_cycles(rng):
    w, s = 8, 5
    n = (1 << 37) | rng.getrandbits(37) | 1
    v = rng.randrange(2 * n)
    ((got, _, _, taken),) = _run(n, w, s, [v], gap=0)
    # Offered every cycle: each beat after the first waits one cycle (SUB).
    assert got == v % n and taken == [0] + [1] * (s - 1)
