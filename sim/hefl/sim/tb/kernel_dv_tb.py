"""cocotb cases of the ``hefl_kernel`` nobody had run: control backpressure, read errors, resets.

Reuses the kernel bench's :class:`hefl.sim.tb.kernel_tb.KernelTB` (clock,
reset, AXI4-Lite master, AXI RAM with random stalls, descriptors, the run
protocol and the checks against ``pow``) and adds:

* random B and R backpressure (and AW/W/AR gaps) on ``s_axi_control``,
  which the kernel bench never applies (its master takes every response
  at once);
* RRESP SLVERR and DECERR injected on ``m_axi_gmem`` reads (header,
  constants, job stream): the run still ends with ``ap_done`` and a result
  header whose status has ``bus_error``, and the next batch is exact;
* ``ap_rst_n`` asserted in the middle of a read burst, of a write burst
  and of a job: afterwards the registers read their reset values and the
  next batch is exact;
* ``test_random_batch``: one seeded random batch, the unit of the seed
  sweep and of the run at the Alveo configuration.

Knobs (environment, set by ``tests/test_kernel_dv.py``): those of
:mod:`hefl.sim.tb.kernel_tb` (``HEFL_KERNEL_CFG``, ``HEFL_TB_SEED``) and
``HEFL_DV_JOBS`` (jobs of ``test_random_batch``), ``HEFL_DV_SHORT_EXP``
(1: POWMOD exponents of at most a word, for the 4096-bit kernel).
"""

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from hefl.hw.regmap import LAYOUT, REGMAP
from hefl.sim.runner import write_tb_report
from hefl.sim.tb.kernel_tb import CFG, SEED, KernelTB, bit

JOBS = int(os.environ.get("HEFL_DV_JOBS", "6"))
SHORT_EXP = os.environ.get("HEFL_DV_SHORT_EXP", "0") == "1"
POWMOD, MULMOD, PRODUCT = (LAYOUT.op(n) for n in ("powmod", "mulmod", "product"))
#: AXI response codes (AXI4 spec): what the RAM model answers on a failed read.
SLVERR, DECERR = 2, 3
#: Cycles a wait for a bus event may take before the bench gives up.
EVENT_TIMEOUT = 200_000


def _stalls(seed, p):
    """Pause generator: stall with probability ``p``, in runs of 1-4 cycles."""
    rng = random.Random(seed)
    while True:
        if rng.random() < p:
            for _ in range(rng.randrange(1, 5)):
                yield True
        yield False


def control_backpressure(tb, seed, p=0.3):
    """Random gaps on AW/W/AR and random B/R backpressure on ``s_axi_control``."""
    wr, rd = tb.axil.write_if, tb.axil.read_if
    for i, ch in enumerate((wr.aw_channel, wr.w_channel, wr.b_channel, rd.ar_channel,
                            rd.r_channel)):
        ch.set_pause_generator(_stalls(seed * 11 + i, p))


async def wait_for(dut, cond, what):
    """Wait, cycle by cycle, until ``cond()`` holds; fail after :data:`EVENT_TIMEOUT` cycles."""
    for _ in range(EVENT_TIMEOUT):
        await RisingEdge(dut.ap_clk)
        if cond():
            return
    raise AssertionError(f"no {what} within {EVENT_TIMEOUT} cycles")


def mem(dut, name):
    return getattr(dut, f"{REGMAP.memory_port}_{name}")


class ReadErrors:
    """Answers chosen R beats of ``m_axi_gmem`` with an error response.

    ``arm(code, skip)`` makes the ``skip``-th R beat from now (and every
    ``every``-th after it, if given) carry ``code``; its data are zeros,
    as the RAM model returns them for a failed read.
    """

    def __init__(self, tb):
        self.ch = tb.ram.read_if.r_channel
        self._send = self.ch.send
        self.code, self.skip, self.every, self.injected = None, 0, 0, 0
        self.ch.send = self._intercept

    def arm(self, code, skip=0, every=0):
        self.code, self.skip, self.every = code, skip, every

    def disarm(self):
        self.code = None

    async def _intercept(self, r):
        if self.code is not None:
            if self.skip == 0:
                r.rresp = self.code
                r.rdata = 0
                self.injected += 1
                self.skip = self.every - 1 if self.every else -1
            elif self.skip > 0:
                self.skip -= 1
        await self._send(r)


async def assert_reset_values(tb):
    """After a reset: idle, nothing pending, arguments and status cleared."""
    ctrl = await tb.rd("ctrl")
    assert ctrl == bit("ctrl", "ap_idle"), f"ctrl after reset {ctrl:#x}"
    for name in ("gie", "ier", "isr", "desc_lo", "desc_hi", "result_lo", "result_hi", "status"):
        v = await tb.rd(name)
        assert v == 0, f"{name} after reset {v:#x}"


async def reset_during(tb, wait):
    """Start a batch of POWMOD and MULMOD jobs, ``await wait()``, then pulse ``ap_rst_n``.

    Two of the POWMODs have full-length exponents (about 15k cycles each on
    the bench's lanes), so the lanes are still computing whatever the
    random ones drew: the batch cannot be over before the reset.
    """
    n = tb.modulus()
    x = CFG["max_exp_bits"]
    jobs = [(POWMOD, [b, e], x, pow(b, e, n))
            for b, e in ((tb.rng.randrange(n), tb.rng.getrandbits(x)) for _ in range(2))]
    jobs += tb.random_jobs(n, 2, ops=(POWMOD, MULMOD))
    tb.write_limbs(0x4000, tb.descriptor(n, jobs))
    await tb.start(0x4000, 0x9000)
    await wait()
    await tb.reset()
    await assert_reset_values(tb)


async def clean_batch(tb, count=4):
    """A random batch, checked exactly against ``pow``."""
    n = tb.modulus()
    jobs = tb.random_jobs(n, count)
    header, results = await tb.run_batch(n, jobs, 0x20000, 0x30000)
    tb.check(header, results, len(jobs))
    return header


@cocotb.test()
async def test_control_backpressure(dut):
    """Batches with random B/R backpressure on the control port, RAM stalls as well."""
    tb = KernelTB(dut, SEED + 100)
    control_backpressure(tb, SEED + 100)
    await tb.reset()
    await assert_reset_values(tb)
    for _ in range(2):
        await clean_batch(tb)
    # ap_done is clear-on-read even when R waits: one read shows it, the next does not.
    ctrl = await tb.rd("ctrl")
    assert not ctrl & bit("ctrl", "ap_done"), f"ap_done survived its read: {ctrl:#x}"
    # Register writes under B backpressure land exactly once (isr toggles on 1).
    await tb.wr("isr", 0)
    for want in (1, 0, 1):
        await tb.wr("isr", 1)
        got = await tb.rd("isr")
        assert got & 1 == want, f"isr toggled wrongly under backpressure: {got:#x}"
    await tb.wr("isr", 1)


@cocotb.test()
async def test_read_errors(dut):
    """SLVERR/DECERR on descriptor reads: bus_error in the status, ap_done, then a clean batch."""
    tb = KernelTB(dut, SEED + 101)
    await tb.reset()
    errs = ReadErrors(tb)
    flag = LAYOUT.status_flag("bus_error")
    n = tb.modulus()
    # (code, R beats to let pass first): the header's first beat, a constant, the job stream.
    hdr_beats = LAYOUT.desc.limbs * LAYOUT.limb_bytes * 8 // int(CFG["data_bits"])
    cases = [(SLVERR, 0), (DECERR, 0), (SLVERR, hdr_beats), (DECERR, hdr_beats + 1)]
    for code, skip in cases:
        jobs = tb.random_jobs(n, 3, ops=(MULMOD, PRODUCT))
        tb.write_limbs(0x4000, tb.descriptor(n, jobs))
        before = errs.injected
        errs.arm(code, skip)
        await tb.start(0x4000, 0x9000)
        ctrl = await tb.wait_done(500_000)
        errs.disarm()
        assert errs.injected == before + 1, "the error was not injected"
        assert ctrl & bit("ctrl", "ap_idle"), f"ap_done without ap_idle: {ctrl:#x}"
        status = tb.read_limbs(0x9000, 1)[0]
        assert status & flag, f"RRESP {code} at beat {skip}: status {LAYOUT.decode_status(status)}"
        reg = await tb.rd("status")
        assert reg == status, f"status register {reg:#x} != result header {status:#x}"
    # The flag is per run: the next batch is clean and exact.
    header = await clean_batch(tb)
    assert header["status"] == 0


@cocotb.test()
async def test_reset_mid_burst(dut):
    """``ap_rst_n`` during a read burst and during a write burst; the next batch is exact."""
    tb = KernelTB(dut, SEED + 102)
    await tb.reset()

    def high(name):
        return int(mem(dut, name).value) == 1

    async def mid_read():
        await wait_for(dut, lambda: high("rvalid") and high("rready") and not high("rlast"),
                       "an R beat inside a burst")

    async def mid_write():
        await wait_for(dut, lambda: high("wvalid") and not high("wready"),
                       "a W beat waiting for WREADY")
    for wait in (mid_read, mid_write):
        await reset_during(tb, wait)
        await clean_batch(tb)


@cocotb.test()
async def test_reset_mid_job(dut):
    """``ap_rst_n`` while the engine computes; the next batch is exact."""
    tb = KernelTB(dut, SEED + 103)
    await tb.reset()

    async def computing():
        # Long enough for the descriptor to be read and the lanes to be busy.
        await ClockCycles(dut.ap_clk, 3000)
        ctrl = await tb.rd("ctrl")
        assert not ctrl & (bit("ctrl", "ap_idle") | bit("ctrl", "ap_done")), \
            f"the batch is not running: ctrl={ctrl:#x}"
    await reset_during(tb, computing)
    await clean_batch(tb)


@cocotb.test()
async def test_random_batch(dut):
    """One seeded random batch with random stalls everywhere (the seed sweep's unit)."""
    tb = KernelTB(dut, SEED)
    control_backpressure(tb, SEED)
    await tb.reset()
    n = tb.modulus()
    if SHORT_EXP:
        jobs = tb.random_jobs(n, JOBS, ops=(MULMOD, PRODUCT), max_k=2)
        e = tb.rng.getrandbits(tb.w)
        b = tb.rng.randrange(n)
        jobs.append((POWMOD, [b, e], tb.w, pow(b, e, n)))
    else:
        jobs = tb.random_jobs(n, JOBS)
    header, results = await tb.run_batch(n, jobs, 0x4000, 0x40000, max_cycles=20_000_000)
    tb.check(header, results, len(jobs))
    write_tb_report({"seed": SEED, "jobs": len(jobs), "cycles": header["cycles"]})
    await ClockCycles(dut.ap_clk, 2)
