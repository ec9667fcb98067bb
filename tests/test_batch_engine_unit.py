"""Amaranth-simulator tests of ModExp and BatchEngine control at tiny widths.

The multiplier is the behavioural stand-in of ``_montmul_standin`` so these
tests exercise the controller, table, window fetch, product corrections,
final reduction, dispatcher and arbiter quickly; the cocotb/Verilator tests
(``test_batch_engine_sim.py``) run the same scoreboard on the real MontMul.
"""


import pytest
from _engine_sim import load_constants
from _montmul_standin import StandinMontMul
from amaranth.sim import Simulator

from hefl.golden import batch as gb
from hefl.golden.montgomery import from_words, mont_constants
from hefl.hw.batch_engine import BatchEngine
from hefl.hw.jobs import JobOp
from hefl.sim.jobgen import random_jobs, random_modulus


def run_engine(dut, n, jobs, rng, *, w, s, idle_p=0.3, stall_p=0.3):
    """Drive ``jobs`` through ``dut`` (ModExp or BatchEngine); return {tag: value}."""
    c = mont_constants(n, w, s)
    results, cur = {}, {}
    done = []

    async def driver(ctx):
        await load_constants(ctx, dut, c)
        for job in jobs:
            for i, word in enumerate(job.words):
                while rng.random() < idle_p:
                    ctx.set(dut.i_stream.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i_stream.payload, {
                    "data": word, "first": i == 0, "last": i == len(job.words) - 1,
                    "op": JobOp(job.op), "tag": job.tag, "count": job.count})
                ctx.set(dut.i_stream.valid, 1)
                await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)
        done.append(True)

    async def monitor(ctx):
        while len(results) < len(jobs):
            ready = rng.random() >= stall_p
            ctx.set(dut.o_stream.ready, ready)
            await ctx.tick()
        ctx.set(dut.o_stream.ready, 0)

    async def sampler(ctx):
        async for _, _, valid, ready, data, tag, last in ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload.data,
                dut.o_stream.payload.tag, dut.o_stream.payload.last):
            if valid and ready:
                cur.setdefault(tag, []).append(data)
                if last:
                    assert len(cur[tag]) == s, f"tag {tag}: {len(cur[tag])} words"
                    assert tag not in results, f"tag {tag} returned twice"
                    results[tag] = from_words(cur.pop(tag), w)
            if len(results) == len(jobs):
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.add_testbench(sampler, background=True)
    sim.run()
    return results


@pytest.mark.parametrize("L,w,k,lanes", [(16, 8, 2, 1), (20, 8, 3, 3)])
def test_engine_standin_scoreboard(rng, L, w, k, lanes):
    X = 2 * L + 3                      # exponents longer than the modulus
    dut = BatchEngine(operand_bits=L, word_bits=w, lanes=lanes, window_bits=k,
                      max_exp_bits=X, multiplier=StandinMontMul)
    s = dut.words
    n = random_modulus(rng, L)
    jobs = random_jobs(rng, n, w=w, s=s, max_exp_bits=X, count=30)
    got = run_engine(dut, n, jobs, rng, w=w, s=s)
    assert sorted(got) == [j.tag for j in sorted(jobs, key=lambda j: j.tag)]
    for j in jobs:
        assert got[j.tag] == gb.expected_result(j, n), (j.op, j.count, j.operands)
