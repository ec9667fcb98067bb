"""cocotb 2.x testbench of the BatchEngine (hefl.hw.batch_engine) on Verilator.

Run by ``tests/test_batch_engine_sim.py`` and ``hefl hw-report`` through
:func:`hefl.sim.runner.run_cocotb`. Knobs (environment):

``BE_L``, ``BE_W``, ``BE_K``, ``BE_X``, ``BE_LANES``, ``BE_TAG``
    the configuration the Verilog was built for
``BE_JOBS``          random + directed jobs per modulus (0: skip the random test)
``BE_MODULI``        moduli for the random test (the second has a small top word)
``BE_IDLE``, ``BE_BP``  probability of an idle input cycle / of ``ready = 0``
``BE_CT_BITS``       comma-separated declared exponent lengths for the constant-time test
``HEFL_SEED``        the seed (logged)

The TB class owns clock, reset, the constant loader, an input driver with
random idle cycles, an output monitor with random backpressure and a
scoreboard against :func:`hefl.golden.batch.expected_result` (Python ``pow``
and plain products). Every job's cycles (first input handshake to last result
handshake) are recorded; with no idle and no backpressure they must equal
:func:`hefl.golden.batch.engine_job_cycles`. While the engine computes, the
driver and the monitor wait on signal edges, not on every clock. Paillier-sized
jobs run in the C++ harness instead (:mod:`hefl.sim.engine_model`).
"""

import os
import random
from collections import deque

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, ReadOnly, RisingEdge

from hefl.golden import batch as gb
from hefl.golden.montgomery import from_words, mont_constants, words_for
from hefl.golden.montmul_hw import mul_latency, op_timing
from hefl.hw.jobs import TAG_BITS, job_layout, result_layout
from hefl.hw.params import MODEXP_WINDOW_BITS, TILE_A_BITS, TILE_B_BITS
from hefl.sim.jobgen import random_jobs, random_modulus
from hefl.sim.runner import tb_start, write_tb_report

CLK_NS = 10


def _knob(name, default, cast=int):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


def _offsets(layout):
    return {name: field.offset for name, field in layout}


class EngineTB:
    """Drivers, monitor and scoreboard around one BatchEngine."""

    def __init__(self, dut):
        self.dut = dut
        self.L = _knob("BE_L", None)
        self.w = _knob("BE_W", None)
        self.k = _knob("BE_K", MODEXP_WINDOW_BITS)
        self.x = _knob("BE_X", self.L)
        self.lanes = _knob("BE_LANES", 1)
        self.tag_bits = _knob("BE_TAG", TAG_BITS)
        self.s = words_for(self.L, self.w)
        self.jo = _offsets(job_layout(self.w, self.tag_bits))
        self.ro = _offsets(result_layout(self.w, self.tag_bits))
        timing = op_timing(self.s, mul_latency(self.w, TILE_A_BITS, TILE_B_BITS))
        self.mm_tail = gb.montmul_tail_latency(timing, self.s)
        seed = _knob("HEFL_SEED", random.getrandbits(32))
        self.rng = random.Random(f"{seed}:{self.L}:{self.w}:{self.lanes}")
        dut._log.info("BatchEngine TB: L=%d w=%d s=%d k=%d X=%d lanes=%d seed=%d",
                      self.L, self.w, self.s, self.k, self.x, self.lanes, seed)
        self.idle_p = 0.0
        self.bp_p = 0.0
        self.n = None
        self.pending = deque()
        self.expected = {}          # tag -> (job, n)
        self.first_in = {}          # tag -> cycle of the first input handshake
        self.last_out = {}          # tag -> cycle of the last result handshake
        self.errors = []
        self._wake = Event()
        self._done = Event()

    # --- clock, reset, constants ------------------------------------------
    async def start(self):
        await tb_start(self.dut, clk_ns=CLK_NS, idle_inputs=("i_stream__valid", "o_stream__ready", "const_wr_en"))
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._monitor())

    @property
    def cycle(self):
        return int(get_sim_time(unit="ns")) // CLK_NS

    async def load_constants(self, n):
        """Write N, R² mod N, R mod N and N' (waits for the engine to be idle)."""
        await self.wait_all()
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            if int(d.idle.value):
                break
        await RisingEdge(d.clk)
        c = mont_constants(n, self.w, self.s)
        d.nprime.value = c.nprime
        for sel, addr, word in gb.constant_writes(c):
            d.const_wr_en.value = 1
            d.const_wr_sel.value = sel
            d.const_wr_addr.value = addr
            d.const_wr_data.value = word
            await RisingEdge(d.clk)
        d.const_wr_en.value = 0
        self.n = n

    # --- stimulus ----------------------------------------------------------
    def submit(self, job):
        assert job.tag not in self.expected, f"tag {job.tag} already in flight"
        self.expected[job.tag] = (job, self.n)
        self.pending.append(job)
        self._done.clear()
        self._wake.set()

    async def wait_all(self):
        if self.expected:
            await self._done.wait()

    def _beat(self, job, i):
        o = self.jo
        return (job.words[i] << o["data"] | int(i == 0) << o["first"]
                | int(i == len(job.words) - 1) << o["last"] | job.op << o["op"]
                | job.tag << o["tag"] | job.count << o["count"])

    async def _drive(self):
        d = self.dut
        beats = deque()
        await RisingEdge(d.clk)
        while True:
            if not beats and self.pending:
                job = self.pending.popleft()
                beats.extend((job, i) for i in range(len(job.words)))
            if not beats:
                d.i_stream__valid.value = 0
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(d.clk)
                continue
            if self.rng.random() < self.idle_p:
                d.i_stream__valid.value = 0
                await RisingEdge(d.clk)
                continue
            job, i = beats[0]
            d.i_stream__payload.value = self._beat(job, i)
            d.i_stream__valid.value = 1
            await ReadOnly()
            if int(d.i_stream__ready.value):
                beats.popleft()
                if i == 0:
                    self.first_in[job.tag] = self.cycle
            elif self.idle_p == 0:
                await RisingEdge(d.i_stream__ready)
                continue
            await RisingEdge(d.clk)

    async def _monitor(self):
        d, o = self.dut, self.ro
        mask = (1 << self.w) - 1
        tmask = (1 << self.tag_bits) - 1
        partial = {}
        await RisingEdge(d.clk)
        while True:
            ready = self.rng.random() >= self.bp_p
            d.o_stream__ready.value = int(ready)
            await ReadOnly()
            if ready and int(d.o_stream__valid.value):
                p = int(d.o_stream__payload.value)
                tag = (p >> o["tag"]) & tmask
                partial.setdefault(tag, []).append((p >> o["data"]) & mask)
                if (p >> o["last"]) & 1:
                    self.last_out[tag] = self.cycle
                    self._score(tag, partial.pop(tag))
            elif ready and self.bp_p == 0:
                await RisingEdge(d.o_stream__valid)
                continue
            await RisingEdge(d.clk)

    def _score(self, tag, words):
        if tag not in self.expected:
            self.errors.append(f"result with unknown tag {tag}")
            return
        job, n = self.expected.pop(tag)
        want = gb.expected_result(job, n)
        got = from_words(words, self.w)
        if len(words) != self.s:
            self.errors.append(f"tag {tag}: {len(words)} result beats, want {self.s}")
        elif got != want:
            self.errors.append(f"tag {tag}: op {job.op} count {job.count}: got {got:#x}, "
                               f"want {want:#x} (N = {n:#x})")
        if not self.expected:
            self._done.set()

    # --- helpers -----------------------------------------------------------
    def predicted(self, job):
        return gb.engine_job_cycles(job.op, job.count, lanes=self.lanes, words=self.s,
                                    word_bits=self.w, window_bits=self.k,
                                    mm_latency=self.mm_tail).total

    async def run_alone(self, job):
        """Run one job on an otherwise idle engine; return its cycles."""
        self.submit(job)
        await self.wait_all()
        return self.last_out[job.tag] - self.first_in[job.tag]

    def check(self):
        assert not self.errors, "\n".join(self.errors[:10])


def table_product_jobs(rng, n, *, w, s, count, first_tag):
    """TABLE_PRODUCT jobs as the kernel sends them: a plain factor, then Montgomery-form entries."""
    jobs = []
    for i in range(count):
        k = rng.randrange(1, 7)
        plain = [rng.choice([0, 1, n - 1, rng.randrange(n)]) for _ in range(k)]
        jobs.append(gb.table_product_job(plain[1:], plain[0], n, word_bits=w, words=s,
                                         tag=first_tag + i))
    return jobs


def _table_product_of(values, n, **kw):
    """A TABLE_PRODUCT job of ``values``: the first the plain factor, the rest table entries."""
    return gb.table_product_job(values[1:], values[0], n, **kw)


async def _tb(dut):
    """A fresh TB per test (cocotb ends a test's tasks with the test)."""
    tb = EngineTB(dut)
    await tb.start()
    return tb


@cocotb.test()
async def random_jobs_scoreboard(dut):
    """Directed and random jobs with random idle input and output backpressure."""
    tb = await _tb(dut)
    jobs_per = _knob("BE_JOBS", 0)
    if not jobs_per:
        return
    tb.idle_p = _knob("BE_IDLE", 0.3, float)
    tb.bp_p = _knob("BE_BP", 0.3, float)
    for i in range(_knob("BE_MODULI", 2)):
        n = random_modulus(tb.rng, tb.L, small_top=(i == 1))
        await tb.load_constants(n)
        jobs = random_jobs(tb.rng, n, w=tb.w, s=tb.s, max_exp_bits=tb.x, count=jobs_per)
        jobs += table_product_jobs(tb.rng, n, w=tb.w, s=tb.s, count=max(1, jobs_per // 4),
                                   first_tag=max(j.tag for j in jobs) + 1)
        for job in jobs:
            tb.submit(job)
        await tb.wait_all()
        dut._log.info("modulus %d: %d jobs checked", i, len(jobs))
    tb.idle_p = tb.bp_p = 0.0
    tb.check()
    write_tb_report({"random_jobs": jobs_per * _knob("BE_MODULI", 2),
                     "table_product_jobs": max(1, jobs_per // 4) * _knob("BE_MODULI", 2)})


@cocotb.test()
async def constant_time(dut):
    """Same declared exponent length, different exponents and bases: same cycles."""
    tb = await _tb(dut)
    lengths = [int(b) for b in os.environ.get("BE_CT_BITS", "").split(",") if b]
    if not lengths:
        return
    tb.idle_p = tb.bp_p = 0.0
    n = random_modulus(tb.rng, tb.L)
    await tb.load_constants(n)
    kw = dict(word_bits=tb.w, words=tb.s)
    seen = {}
    tag = 0
    for bits in lengths:
        variants = [(0, 0), (1, 1), (n - 1, (1 << bits) - 1),
                    (tb.rng.randrange(n), tb.rng.getrandbits(bits)),
                    (tb.rng.randrange(n), 1 << (bits - 1) if bits else 0)]
        cycles = []
        for base, e in variants:
            tag += 1
            job = gb.powmod_job(base, e & ((1 << bits) - 1), bits, n, tag=tag, **kw)
            cycles.append(await tb.run_alone(job))
        want = tb.predicted(job)
        dut._log.info("declared %d bits: cycles %s (model %d)", bits, cycles, want)
        assert len(set(cycles)) == 1, f"{bits}-bit exponents took {cycles} cycles"
        assert cycles[0] == want, f"{bits}-bit exponent: {cycles[0]} cycles, model {want}"
        seen[str(bits)] = cycles[0]
    # Products and table products: cycles depend on K only.
    products = {}
    for make in (gb.product_job, _table_product_of):
        for kf in (1, 2, 3):
            cycles = []
            for vals in ([0] * kf, [n - 1] * kf, [tb.rng.randrange(n) for _ in range(kf)]):
                tag += 1
                job = make(vals, n, tag=tag, **kw)
                cycles.append(await tb.run_alone(job))
            assert len(set(cycles)) == 1, f"op {job.op} K={kf} took {cycles} cycles"
            assert cycles[0] == tb.predicted(job), \
                f"op {job.op} K={kf}: {cycles[0]} vs model {tb.predicted(job)}"
            products[f"op{job.op}_k{kf}"] = cycles[0]
    tb.check()
    write_tb_report({"constant_time_cycles": seen, "product_cycles": products})
