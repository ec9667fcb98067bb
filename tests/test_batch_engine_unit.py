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


async def _send_jobs(ctx, dut, c, jobs, rng, w, idle_p):
    """Load the constants, then offer every job's words with random idle cycles."""
    await load_constants(ctx, dut, c)
    for job in jobs:
        for i, word in enumerate(job.words):
            while rng.random() < idle_p:
                ctx.set(dut.i_stream.valid, 0)
                await ctx.tick()
            ctx.set(dut.i_stream.payload, {
                "data": word & ((1 << w) - 1), "first": i == 0, "last": i == len(job.words) - 1,
                "op": JobOp(job.op), "tag": job.tag, "count": job.count})
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)


def _result_sampler(dut, jobs, results, w, s):
    """A testbench collecting whole results into ``results`` ({tag: value}), each once, s words."""
    cur = {}

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
    return sampler


def run_engine(dut, n, jobs, rng, *, w, s, idle_p=0.3, stall_p=0.3):
    """Drive ``jobs`` through ``dut`` (ModExp or BatchEngine); return {tag: value}."""
    c = mont_constants(n, w, s)
    results = {}

    async def driver(ctx):
        await _send_jobs(ctx, dut, c, jobs, rng, w, idle_p)

    async def monitor(ctx):
        while len(results) < len(jobs):
            ready = rng.random() >= stall_p
            ctx.set(dut.o_stream.ready, ready)
            await ctx.tick()
        ctx.set(dut.o_stream.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.add_testbench(_result_sampler(dut, jobs, results, w, s), background=True)
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


def run_table_engine(dut, n, jobs, table_limbs, rng, *, w, s, entries, stall_p=0.3):
    """Drive compact TABLE_PRODUCT (and other) jobs; serve the table port from ``table_limbs``."""
    c = mont_constants(n, w, s)
    results = {}
    base = 0x1000

    async def driver(ctx):
        ctx.set(dut.table_base, base)
        ctx.set(dut.table_entries, entries)
        await _send_jobs(ctx, dut, c, jobs, rng, w, 0.2)

    async def memory(ctx):
        # The AXI master read port: a command {addr, limbs}, then its limbs in order.
        pending = []
        while len(results) < len(jobs):
            ctx.set(dut.rd_cmd.ready, rng.random() >= stall_p)
            if pending:
                ctx.set(dut.rd_data.payload, pending[0])
            ctx.set(dut.rd_data.valid, bool(pending) and rng.random() >= stall_p)
            await ctx.delay(1e-9)
            if ctx.get(dut.rd_cmd.valid) and ctx.get(dut.rd_cmd.ready):
                addr, limbs = ctx.get(dut.rd_cmd.payload.addr), ctx.get(dut.rd_cmd.payload.limbs)
                assert limbs == s and (addr - base) % (8 * s) == 0
                i = (addr - base) // 8
                assert 0 <= i and i + s <= len(table_limbs), f"read outside the table at {addr:#x}"
                pending += table_limbs[i:i + s]
            if ctx.get(dut.rd_data.valid) and ctx.get(dut.rd_data.ready):
                pending.pop(0)
            await ctx.tick()

    async def ready(ctx):
        ctx.set(dut.o_stream.ready, 1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(memory)
    sim.add_testbench(ready)
    sim.add_testbench(_result_sampler(dut, jobs, results, w, s), background=True)
    sim.run_until(2e-3)
    assert len(results) == len(jobs), f"{len(results)} of {len(jobs)} results (hang?)"
    return results


@pytest.mark.parametrize("lanes", [1, 2, 3, 6])
def test_engine_table_port(rng, lanes):
    # Compact TABLE_PRODUCT jobs: each lane's expander fetches the entries
    # through the sub-engine's fetcher (request and response trees), mixed
    # with ordinary jobs, the table port stalling at random.
    from hefl.golden.montgomery import to_words
    L, w = 40, 16
    dut = BatchEngine(operand_bits=L, word_bits=w, lanes=lanes, window_bits=2, max_exp_bits=L,
                      multiplier=StandinMontMul, table_max=12)
    s = dut.words
    n = random_modulus(rng, L)
    entries = 11
    plain = [rng.randrange(n) for _ in range(entries)]
    limbs = [x for v in plain for x in to_words(gb.mont_form(v, n, word_bits=w, words=s), w, s)]
    jobs, want = [], {}
    for tag in range(16):
        if tag % 4 == 3:
            a, b = rng.randrange(n), rng.randrange(n)
            jobs.append(gb.mulmod_job(a, b, n, word_bits=w, words=s, tag=tag))
            want[tag] = a * b % n
            continue
        idx = [rng.randrange(entries) for _ in range(rng.randrange(1, 13))]
        f = rng.randrange(n)
        jobs.append(gb.compact_table_job(f, idx, n, word_bits=w, words=s, tag=tag))
        p = f
        for i in idx:
            p = p * plain[i] % n
        want[tag] = p
    got = run_table_engine(dut, n, jobs, limbs, rng, w=w, s=s, entries=entries)
    assert got == want
