"""JobFifo (Amaranth simulator): beats in order, headers on first beats, SyncFIFOBuffered's timing.

Random jobs and stalls from the ``rng`` fixture (seed printed; ``HEFL_SEED``
reproduces a run).
"""

import pytest
from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from hefl.hw.job_fifo import JobFifo
from hefl.hw.jobs import JobOp, job_layout

W, TAG = 8, 4


def _jobs(rng, n, max_len):
    """``n`` random jobs: lists of beat dicts, header fields random on every beat."""
    jobs = []
    for _ in range(n):
        length = rng.randint(1, max_len)
        op, tag, count = rng.choice(list(JobOp)), rng.randrange(1 << TAG), rng.randrange(1 << 16)
        jobs.append([{"data": rng.randrange(1 << W), "first": i == 0, "last": i == length - 1,
                      # Header fields of later beats are junk the queue need not keep.
                      "op": op if i == 0 else rng.choice(list(JobOp)),
                      "tag": tag if i == 0 else rng.randrange(1 << TAG),
                      "count": count if i == 0 else rng.randrange(1 << 16)}
                     for i in range(length)])
    return jobs


def _run(dut, jobs, rng, *, wait_empty, ref=None, idle_p=0.3, stall_p=0.4):
    """Stream ``jobs`` through ``dut``; returns the beats read. ``ref``: a SyncFIFOBuffered
    driven alike whose ``level``, ``r_rdy`` (and ``w_rdy`` while a beat is offered) must
    equal the JobFifo's every cycle."""
    got, want = [], sum(len(j) for j in jobs)

    async def producer(ctx):
        for job in jobs:
            if wait_empty:             # the BatchEngine's dispatcher: a job enters an empty queue
                while ctx.get(dut.level) != 0:
                    await ctx.tick()
            for beat in job:
                while rng.random() < idle_p:
                    await ctx.tick()
                ctx.set(dut.i_stream.payload, beat)
                ctx.set(dut.i_stream.valid, 1)
                await ctx.tick().until(dut.i_stream.ready)
                ctx.set(dut.i_stream.valid, 0)

    async def consumer(ctx):
        while len(got) < want:
            ctx.set(dut.o_stream.ready, rng.random() >= stall_p)
            await ctx.tick()

    async def sampler(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload):
            if valid and ready:
                got.append(payload)

    async def compare(ctx):
        async for _ in ctx.tick():
            assert ctx.get(dut.level) == ctx.get(ref.level)
            if ctx.get(dut.i_stream.valid):
                assert ctx.get(dut.i_stream.ready) == ctx.get(ref.w_rdy)
            assert ctx.get(dut.o_stream.valid) == ctx.get(ref.r_rdy)

    top = Module()
    top.submodules.dut = dut
    if ref is not None:
        top.submodules.ref = ref
        top.d.comb += [ref.w_en.eq(dut.i_stream.valid), ref.w_data.eq(dut.i_stream.payload),
                       ref.r_en.eq(dut.o_stream.ready)]
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(sampler, background=True)
    if ref is not None:
        sim.add_testbench(compare, background=True)
    sim.run()
    return got


def _check(got, jobs):
    beats = [b for j in jobs for b in j]
    assert len(got) == len(beats)
    for g, b in zip(got, beats):
        assert (g.data, g.first, g.last) == (b["data"], b["first"], b["last"])
        if b["first"]:
            assert (g.op, g.tag, g.count) == (b["op"], b["tag"], b["count"])


@pytest.mark.parametrize("depth", [2, 3, 7])
def test_job_fifo_matches_sync_fifo_buffered(depth, rng):
    """Jobs into an empty queue (as the engine sends them): SyncFIFOBuffered's timing exactly."""
    jobs = _jobs(rng, 40, 2 * depth)
    ref = SyncFIFOBuffered(width=job_layout(W, TAG).size, depth=depth)
    got = _run(JobFifo(word_bits=W, tag_bits=TAG, depth=depth), jobs, rng, wait_empty=True,
               ref=ref)
    _check(got, jobs)


@pytest.mark.parametrize("depth", [2, 5, 16])
def test_job_fifo_back_to_back_jobs(depth, rng):
    """Jobs offered without waiting: beats in order, each first beat with its own header."""
    jobs = _jobs(rng, 60, 4)
    got = _run(JobFifo(word_bits=W, tag_bits=TAG, depth=depth), jobs, rng, wait_empty=False,
               idle_p=0.1, stall_p=0.5)
    _check(got, jobs)


def test_job_fifo_rejects_bad_depth():
    with pytest.raises(TypeError, match="FIFO depth"):
        JobFifo(word_bits=W, tag_bits=TAG, depth=1)
