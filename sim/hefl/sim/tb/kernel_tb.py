"""cocotb bench of the ``hefl_kernel`` Vitis RTL kernel.

The TB class owns the clock, reset, an AXI4-Lite master on
``s_axi_control`` and an AXI RAM on ``m_axi_gmem`` (cocotbext-axi), both with
seeded random pauses on every channel. Each test builds descriptors from
:data:`hefl.hw.regmap.LAYOUT` (independently of the host runtime), runs them
through the control registers exactly as a host does, and checks every result
against Python's ``pow`` / products (the specification), plus the result
header and the ``ap_ctrl_hs`` bits. TABLE_PRODUCT jobs read a table of
Montgomery-form entries the bench writes into the RAM (``T·R mod N``, built
here from the plain values: the result must be the plain product).

Knobs (environment, set by ``tests/test_kernel_sim.py``):
``HEFL_KERNEL_CFG`` JSON of the hardware parameters; ``HEFL_TB_SEED``;
``HEFL_TB_PAUSES`` (1 = random AXI stalls, default).
"""

import json
import logging
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hefl.golden import batch as gb
from hefl.golden.montgomery import mont_constants, to_words
from hefl.golden.montmul_hw import mul_latency, op_timing
from hefl.hw.params import TILE_A_BITS, TILE_B_BITS
from hefl.hw.regmap import HWCFG_REGS, LAYOUT, REGMAP
from hefl.sim.runner import write_tb_report

CFG = json.loads(os.environ["HEFL_KERNEL_CFG"])
SEED = int(os.environ.get("HEFL_TB_SEED", "1"))
PAUSES = os.environ.get("HEFL_TB_PAUSES", "1") == "1"
MEM_SIZE = 1 << 20
LIMB_BYTES = LAYOUT.limb_bytes
POWMOD, MULMOD, PRODUCT, TABLE = (LAYOUT.op(n) for n in
                                  ("powmod", "mulmod", "product", "table_product"))


def bit(reg, name):
    return REGMAP.reg(reg).field(name).mask


class KernelTB:
    """Clock, reset, AXI-Lite master, AXI RAM and the run protocol."""

    def __init__(self, dut, seed, pauses=PAUSES):
        self.dut = dut
        self.rng = random.Random(seed)
        self.s = CFG["words"]
        self.w = CFG["word_bits"]
        cocotb.start_soon(Clock(dut.ap_clk, 4, unit="ns").start())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, REGMAP.control_port),
                                  dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, REGMAP.memory_port), dut.ap_clk,
                          dut.ap_rst_n, reset_active_level=False, size=MEM_SIZE)
        # cocotbext-axi logs every transaction at INFO: far too much here.
        for log in (self.axil.write_if.log, self.axil.read_if.log, self.ram.write_if.log,
                    self.ram.read_if.log):
            log.setLevel(logging.WARNING)
        if pauses:
            chans = [self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                     self.ram.write_if.b_channel, self.ram.read_if.ar_channel,
                     self.ram.read_if.r_channel]
            for i, ch in enumerate(chans):
                ch.set_pause_generator(self._pauses(seed * 7 + i))

    @staticmethod
    def _pauses(seed):
        rng = random.Random(seed)
        while True:
            # Bursts of stalls as well as single ones.
            if rng.random() < 0.15:
                for _ in range(rng.randrange(1, 6)):
                    yield True
            yield False

    async def reset(self):
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 5)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    async def rd(self, name):
        return await self.axil.read_dword(REGMAP.reg(name).offset)

    async def wr(self, name, value):
        await self.axil.write_dword(REGMAP.reg(name).offset, value)

    async def set_arg(self, name, value):
        arg = REGMAP.arg(name)
        lo, hi = arg.registers
        await self.wr(lo, value & 0xFFFFFFFF)
        await self.wr(hi, value >> 32)

    def write_limbs(self, addr, limbs):
        self.ram.write(addr, b"".join(x.to_bytes(LIMB_BYTES, "little") for x in limbs))

    def read_limbs(self, addr, n):
        raw = self.ram.read(addr, n * LIMB_BYTES)
        return [int.from_bytes(raw[i:i + LIMB_BYTES], "little") for i in range(0, len(raw), LIMB_BYTES)]

    async def start(self, desc, result, table=0):
        await self.set_arg("desc", desc)
        await self.set_arg("result", result)
        await self.set_arg("table", table)
        await self.wr("ctrl", bit("ctrl", "ap_start"))

    def table(self, n, addr, entries):
        """Write ``entries`` random table values in Montgomery form at ``addr``; return the plain ones."""
        plain = [self.rng.choice([0, 1, n - 1, self.rng.randrange(n)]) for _ in range(entries)]
        limbs = []
        for v in plain:
            limbs += to_words(gb.mont_form(v, n, word_bits=self.w, words=self.s), self.w, self.s)
        self.write_limbs(addr, limbs)
        return plain

    async def wait_done(self, max_cycles):
        """Poll ``ctrl`` until ap_done; return the ctrl word that showed it."""
        t0 = cocotb.utils.get_sim_time("ns")
        while True:
            v = await self.rd("ctrl")
            if v & bit("ctrl", "ap_done"):
                return v
            now = cocotb.utils.get_sim_time("ns")
            assert (now - t0) / 4 < max_cycles, f"no ap_done within {max_cycles} cycles"
            await ClockCycles(self.dut.ap_clk, 20)

    # --- descriptors ----------------------------------------------------

    def modulus(self, bits=None):
        bits = bits or CFG["operand_bits"]
        return self.rng.getrandbits(bits) | (1 << (bits - 1)) | 1

    def random_jobs(self, n, count, ops=(POWMOD, MULMOD, PRODUCT), max_k=4, table=None):
        """``count`` random jobs ``(op, operands, declared count, expected)``.

        TABLE_PRODUCT jobs (in ``ops``) need ``table``, the plain values of
        the entries; their operands are ``(factor, indices)``.
        """
        jobs = []
        x = CFG["max_exp_bits"]
        for _ in range(count):
            op = self.rng.choice(ops)
            if op == TABLE:
                # Up to 9 entries: index limbs with one to four indices in the last.
                k = self.rng.randrange(1, 10)
                idx = [self.rng.randrange(len(table)) for _ in range(k)]
                f = self.rng.choice([0, 1, n - 1, self.rng.randrange(n)])
                p = f
                for i in idx:
                    p = p * table[i] % n
                jobs.append((op, (f, idx), k, p))
                continue
            if op == POWMOD:
                ebits = self.rng.choice([0, 1, 2, self.w, self.w + 1, x, self.rng.randrange(1, x + 1)])
                e = self.rng.choice([0, 1 % (1 << ebits), (1 << ebits) - 1, self.rng.getrandbits(ebits)])
                b = self.rng.choice([0, 1, n - 1, self.rng.randrange(n)])
                jobs.append((op, [b, e], ebits, pow(b, e, n)))
            elif op == MULMOD:
                a, b = self.rng.randrange(n), self.rng.choice([1, n - 1, self.rng.randrange(n)])
                jobs.append((op, [a, b], 2, a * b % n))
            else:
                k = self.rng.randrange(1, max_k + 1)
                xs = [self.rng.randrange(n) for _ in range(k)]
                p = 1
                for v in xs:
                    p = p * v % n
                jobs.append((op, xs, k, p))
        return jobs

    def descriptor(self, n, jobs, tags=None, *, magic=None, words=None, word_bits=None,
                   stream_delta=0, job_hook=None, table_entries=0):
        """Limbs of a descriptor for ``jobs`` (tag order ``tags``)."""
        s, w = self.s, self.w
        c = mont_constants(n, w, s)
        tags = tags if tags is not None else list(range(len(jobs)))
        stream = []
        for t, (op, operands, count, _) in zip(tags, jobs):
            hdr = LAYOUT.pack_job_header(op, t, count)
            if job_hook:
                hdr = job_hook(t, hdr)
            stream.append(hdr)
            if op == POWMOD:
                stream += to_words(operands[0], w, s) + to_words(operands[1], w, -(-count // w))
            elif op == TABLE:
                stream += gb.table_job_operands(operands[0], operands[1], word_bits=w, words=s)
            else:
                for v in operands:
                    stream += to_words(v, w, s)
        head = [0] * LAYOUT.desc.limbs
        head[LAYOUT.desc.index("magic")] = LAYOUT.magic_word if magic is None else magic
        head[LAYOUT.desc.index("jobs")] = len(jobs)
        head[LAYOUT.desc.index("words")] = s if words is None else words
        head[LAYOUT.desc.index("word_bits")] = w if word_bits is None else word_bits
        head[LAYOUT.desc.index("nprime")] = c.nprime
        head[LAYOUT.desc.index("stream_limbs")] = len(stream) + stream_delta
        head[LAYOUT.desc.index("table_entries")] = table_entries
        consts = {"n": c.n, "r2_mod_n": c.r2_mod_n, "r_mod_n": c.r_mod_n}
        body = []
        for name in LAYOUT.constants:
            body += to_words(consts[name], w, s)
        return head + body + stream

    async def run_batch(self, n, jobs, desc_addr, result_addr, *, max_cycles=2_000_000, table=0,
                        **kw):
        """Run one batch; return (header dict, results by tag, cycles from poll)."""
        tags = list(range(len(jobs)))
        self.rng.shuffle(tags)          # job order ≠ tag order: slots must follow tags
        desc = self.descriptor(n, jobs, tags, **kw)
        self.write_limbs(desc_addr, desc)
        res_limbs = LAYOUT.result_buffer_limbs(len(jobs), self.s)
        # Poison the result buffer so stale or missing writes show, and guard
        # limbs on both sides so writes outside it show too.
        guard = 4
        poison = 0xDEADBEEF_0BADF00D
        self.write_limbs(result_addr - guard * LIMB_BYTES, [poison] * (res_limbs + 2 * guard))
        await self.start(desc_addr, result_addr, table)
        ctrl = await self.wait_done(max_cycles)
        assert ctrl & bit("ctrl", "ap_idle"), f"ap_done without ap_idle: ctrl={ctrl:#x}"
        around = (self.read_limbs(result_addr - guard * LIMB_BYTES, guard)
                  + self.read_limbs(result_addr + res_limbs * LIMB_BYTES, guard))
        assert around == [poison] * (2 * guard), "kernel wrote outside the result buffer"
        raw = self.read_limbs(result_addr, res_limbs)
        header = {name: raw[LAYOUT.result.index(name)] for name in ("status", "cycles", "jobs_done")}
        hwcfg = LAYOUT.unpack_hwcfg([raw[i] for i in LAYOUT.hwcfg_limbs])
        assert hwcfg == {name: CFG[name[3:]] for name in HWCFG_REGS}, f"result header HWCFG {hwcfg}"
        results = {}
        for t, job in zip(tags, jobs):
            i = LAYOUT.result_limb(t, self.s)
            words = raw[i:i + self.s]
            results[t] = (job, words)
        return header, results

    def check(self, header, results, n_jobs):
        assert header["status"] == 0, f"status {LAYOUT.decode_status(header['status'])}"
        assert header["jobs_done"] == n_jobs
        bad = 0
        for t, ((op, operands, count, expect), words) in results.items():
            got = 0
            for i, v in enumerate(words):
                assert v >> self.w == 0, f"tag {t}: limb {i} not zero-extended: {v:#x}"
                got |= v << (self.w * i)
            if got != expect:
                bad += 1
                self.dut._log.error(f"tag {t} op {op} count {count}: got {got:#x}, want {expect:#x}")
        assert bad == 0, f"{bad} of {len(results)} results wrong"


@cocotb.test()
async def test_registers_after_reset(dut):
    """HWCFG registers, ap_idle after reset, nothing pending."""
    tb = KernelTB(dut, SEED)
    await tb.reset()
    ctrl = await tb.rd("ctrl")
    assert ctrl == bit("ctrl", "ap_idle"), f"ctrl after reset {ctrl:#x}"
    for name in HWCFG_REGS:
        key = name[3:]
        assert await tb.rd(name) == CFG[key], name
    # Argument registers hold what is written, byte strobes honoured.
    await tb.set_arg("desc", 0x12345678_9ABCDEF0)
    assert await tb.rd("desc_lo") == 0x9ABCDEF0 and await tb.rd("desc_hi") == 0x12345678
    await tb.axil.write(REGMAP.reg("desc_lo").offset + 1, b"\x55")
    assert await tb.rd("desc_lo") == 0x9ABC55F0
    # Unmapped offsets read 0.
    assert await tb.axil.read_dword((1 << REGMAP.addr_bits) - 4) == 0


@cocotb.test()
async def test_batches_back_to_back(dut):
    """Mixed POWMOD/MULMOD/PRODUCT batches, fresh modulus each, ap_ctrl_hs bits."""
    tb = KernelTB(dut, SEED + 1)
    await tb.reset()
    t_wall = time.perf_counter()
    t_sim0 = cocotb.utils.get_sim_time("ns")
    cycles = []
    # Buffers straddling 4 KiB boundaries and at odd limb offsets.
    places = [(0x10000, 0x20000), (0x30FC8, 0x41FF8), (0x50000 - 8 * 5, 0x60000 + 8)]
    for b, (d_addr, r_addr) in enumerate(places * 1):
        bits = CFG["operand_bits"] - (0 if b != 1 else tb.w + 3)   # one with a small top word
        n = tb.modulus(bits)
        jobs = tb.random_jobs(n, tb.rng.randrange(3, 8))
        header, results = await tb.run_batch(n, jobs, d_addr, r_addr)
        tb.check(header, results, len(jobs))
        # ap_done was cleared by the read that saw it.
        ctrl = await tb.rd("ctrl")
        assert ctrl == bit("ctrl", "ap_idle"), f"ctrl after done read {ctrl:#x}"
        assert (await tb.rd("cycles_lo")) | (await tb.rd("cycles_hi")) << 32 == header["cycles"]
        assert await tb.rd("status") == 0
        cycles.append(header["cycles"])
    sim_cycles = (cocotb.utils.get_sim_time("ns") - t_sim0) / 4
    write_tb_report({"batch_cycles": cycles,
                     "sim_cycles_per_s": sim_cycles / (time.perf_counter() - t_wall)})


@cocotb.test()
async def test_start_handshake_and_interrupt(dut):
    """ap_start cleared on accept, ap_ready clear-on-read, GIE/IER/ISR, interrupt."""
    tb = KernelTB(dut, SEED + 2)
    await tb.reset()
    n = tb.modulus()
    jobs = tb.random_jobs(n, 2, ops=(POWMOD,))
    desc = tb.descriptor(n, jobs)
    tb.write_limbs(0x1000, desc)
    await tb.wr("gie", REGMAP.reg("gie").field("enable").mask)
    await tb.wr("ier", bit("ier", "done"))
    await tb.start(0x1000, 0x8000)
    ctrl = await tb.rd("ctrl")
    assert not ctrl & bit("ctrl", "ap_start"), f"ap_start not cleared on accept: {ctrl:#x}"
    assert ctrl & bit("ctrl", "ap_ready"), f"ap_ready not set: {ctrl:#x}"
    assert not ctrl & bit("ctrl", "ap_idle"), f"ap_idle during a run: {ctrl:#x}"
    ctrl = await tb.rd("ctrl")
    assert not ctrl & bit("ctrl", "ap_ready"), f"ap_ready not clear-on-read: {ctrl:#x}"
    assert dut.interrupt.value == 0
    # Wait for the interrupt rather than polling ctrl.
    for _ in range(2_000_000 // 16):
        await ClockCycles(dut.ap_clk, 16)
        if dut.interrupt.value == 1:
            break
    assert dut.interrupt.value == 1, "no interrupt"
    assert await tb.rd("isr") == bit("isr", "done")
    await tb.wr("isr", bit("isr", "done"))      # toggle-on-write acknowledges
    assert await tb.rd("isr") == 0
    await RisingEdge(dut.ap_clk)
    assert dut.interrupt.value == 0
    ctrl = await tb.rd("ctrl")
    assert ctrl == bit("ctrl", "ap_idle") | bit("ctrl", "ap_done"), f"{ctrl:#x}"
    raw = tb.read_limbs(0x8000, LAYOUT.result_buffer_limbs(2, tb.s))
    header = {k: raw[LAYOUT.result.index(k)] for k in ("status", "cycles", "jobs_done")}
    results = {t: (jobs[t], raw[LAYOUT.result_limb(t, tb.s):][:tb.s]) for t in range(2)}
    tb.check(header, results, 2)
    await tb.wr("gie", 0)


@cocotb.test()
async def test_batch_larger_than_queues(dut):
    """More jobs than the engine and AXI engine can hold: flow control end to end."""
    tb = KernelTB(dut, SEED + 3)
    await tb.reset()
    n = tb.modulus()
    count = CFG.get("big_batch", 40)
    jobs = tb.random_jobs(n, count, ops=(MULMOD, PRODUCT, POWMOD), max_k=3)
    header, results = await tb.run_batch(n, jobs, 0x20000, 0x80000, max_cycles=5_000_000)
    tb.check(header, results, count)
    write_tb_report({"big_batch_jobs": count, "big_batch_cycles": header["cycles"]})


@cocotb.test()
async def test_bad_descriptors(dut):
    """Each malformed descriptor → its status bit, ap_done, no hang; then a good batch."""
    tb = KernelTB(dut, SEED + 4)
    await tb.reset()
    n = tb.modulus()
    flag = LAYOUT.status_flag

    def bad_op(t, hdr):
        return hdr | LAYOUT.job_field("op").mask if t == 1 else hdr

    def bad_tag(t, hdr):
        f = LAYOUT.job_field("tag")
        return (hdr & ~f.mask) | (0xFFFF << f.lsb) if t == 2 else hdr

    def long_exp(t, hdr):
        f = LAYOUT.job_field("count")
        return (hdr & ~f.mask) | ((CFG["max_exp_bits"] + 1) << f.lsb) if t == 0 else hdr

    cases = [
        ("bad magic", dict(magic=LAYOUT.magic ^ 1), flag("bad_magic"), False),
        ("bad version", dict(magic=LAYOUT.magic | (LAYOUT.version + 1) << 32), flag("bad_magic"), False),
        ("wrong s", dict(words=tb.s + 1), flag("geometry"), False),
        ("wrong w", dict(word_bits=tb.w - 1), flag("geometry"), False),
        ("bad op", dict(job_hook=bad_op), flag("bad_job"), True),
        ("tag >= J", dict(job_hook=bad_tag), flag("bad_job"), True),
        ("stream too short", dict(stream_delta=-3), flag("stream_length"), True),
        ("stream too long", dict(stream_delta=+5), flag("stream_length"), True),
    ]
    for name, kw, want, partial in cases:
        jobs = tb.random_jobs(n, 4, ops=(MULMOD,))
        header, results = await tb.run_batch(n, jobs, 0x4000, 0x9000, max_cycles=500_000, **kw)
        assert header["status"] == want, f"{name}: status {header['status']:#x}, want {want:#x}"
        assert await tb.rd("status") == want
        if not partial:
            assert header["jobs_done"] == 0, f"{name}: jobs ran after a header error"
        # Jobs that did run before the error are correct and in place.
        done = 0
        for t, ((op, operands, count, expect), words) in results.items():
            got = sum(v << (tb.w * i) for i, v in enumerate(words))
            if got == expect:
                done += 1
        assert done >= header["jobs_done"], f"{name}: {done} correct < {header['jobs_done']} done"
    # POWMOD declaring more exponent bits than the hardware holds.
    jobs = tb.random_jobs(n, 2, ops=(POWMOD,))
    header, _ = await tb.run_batch(n, jobs, 0x4000, 0x9000, max_cycles=500_000, job_hook=long_exp)
    assert header["status"] == flag("bad_job")
    # AXI error responses (SLVERR on the result slots' writes): the run
    # completes, the header still lands and reports bus_error.
    jobs = tb.random_jobs(n, 2, ops=(MULMOD,))
    tb.write_limbs(0x4000, tb.descriptor(n, jobs))
    slots = 0x9000 + LAYOUT.result_limb(0, tb.s) * LIMB_BYTES
    good_write = tb.ram.write_if._write

    async def failing_write(address, data):
        if address >= slots:
            raise OSError("injected write error")
        await good_write(address, data)

    tb.ram.write_if._write = failing_write
    await tb.start(0x4000, 0x9000)
    await tb.wait_done(500_000)
    tb.ram.write_if._write = good_write
    status, _, done = tb.read_limbs(0x9000, 3)
    assert status == flag("bus_error"), f"status {status:#x} after SLVERR"
    assert done == 2
    # An empty batch: constants only, no jobs; a header and ap_done.
    header, _ = await tb.run_batch(n, [], 0x4000, 0x9000, max_cycles=100_000)
    assert header == {"status": 0, "cycles": header["cycles"], "jobs_done": 0}
    # The kernel is clean afterwards: a good batch runs normally.
    jobs = tb.random_jobs(n, 5)
    header, results = await tb.run_batch(n, jobs, 0x4000, 0x9000)
    tb.check(header, results, len(jobs))


@cocotb.test()
async def test_auto_restart(dut):
    """auto_restart keeps ap_start set on accept: runs repeat until it is cleared."""
    tb = KernelTB(dut, SEED + 5)
    await tb.reset()
    n = tb.modulus()
    jobs = tb.random_jobs(n, 3, ops=(MULMOD, PRODUCT))
    tb.write_limbs(0x1000, tb.descriptor(n, jobs))
    await tb.set_arg("desc", 0x1000)
    await tb.set_arg("result", 0x8000)
    await tb.wr("ctrl", bit("ctrl", "ap_start") | bit("ctrl", "auto_restart"))
    dones = 0
    for _ in range(20000):
        ctrl = await tb.rd("ctrl")
        assert ctrl & bit("ctrl", "ap_start"), f"ap_start cleared under auto_restart: {ctrl:#x}"
        dones += bool(ctrl & bit("ctrl", "ap_done"))
        if dones >= 2:
            break
    assert dones >= 2, "the kernel did not restart by itself"
    # Writing 0 clears auto_restart (ap_start ignores 0): the next accept clears ap_start.
    await tb.wr("ctrl", 0)
    for _ in range(20000):
        ctrl = await tb.rd("ctrl")
        if not ctrl & bit("ctrl", "ap_start") and ctrl & bit("ctrl", "ap_idle"):
            break
    else:
        raise AssertionError(f"kernel kept restarting: ctrl={ctrl:#x}")
    raw = tb.read_limbs(0x8000, LAYOUT.result_buffer_limbs(3, tb.s))
    header = {k: raw[LAYOUT.result.index(k)] for k in ("status", "cycles", "jobs_done")}
    tb.check(header, {t: (jobs[t], raw[LAYOUT.result_limb(t, tb.s):][:tb.s]) for t in range(3)}, 3)


@cocotb.test()
async def test_kernel_overhead(dut):
    """Kernel cycles of one-job batches vs the engine's exact cycle model (no stalls).

    The difference is what the kernel adds around the engine: header and
    constants fetch, job parsing, the result and header writes and their
    responses. It is reported, and bounded so a regression shows.
    """
    tb = KernelTB(dut, SEED + 6, pauses=False)
    await tb.reset()
    s, w = tb.s, tb.w
    timing = op_timing(s, mul_latency(w, TILE_A_BITS, TILE_B_BITS))
    mm_tail = gb.montmul_tail_latency(timing, s)
    n = tb.modulus()
    x = CFG["max_exp_bits"]
    b, e = tb.rng.randrange(n), tb.rng.getrandbits(x)
    a2 = tb.rng.randrange(n)
    table = tb.table(n, 0x30000, 8)
    idx = [tb.rng.randrange(8) for _ in range(6)]
    prod = b
    for i in idx:
        prod = prod * table[i] % n
    cases = {"powmod": (POWMOD, [b, e], x, pow(b, e, n)),
             "mulmod": (MULMOD, [b, a2], 2, b * a2 % n),
             "table_product": (TABLE, (b, idx), len(idx), prod)}
    report = {}
    for name, job in cases.items():
        header, results = await tb.run_batch(n, [job], 0x1000, 0x8000, table=0x30000,
                                             table_entries=8)
        tb.check(header, results, 1)
        # The engine's view of a table product: the factor and the W entries.
        count = job[2] + 1 if job[0] == TABLE else job[2]
        engine = gb.engine_job_cycles(job[0], count, lanes=CFG["lanes"] // CFG["engines"],
                                      words=s, word_bits=w, window_bits=CFG["window_bits"],
                                      mm_latency=mm_tail).total
        overhead = header["cycles"] - engine
        report[name] = {"kernel_cycles": header["cycles"], "engine_model_cycles": engine,
                        "overhead_cycles": overhead}
        # Fetch of 8 + 3s + 1 limbs, write of s + 8 limbs, a few handshakes:
        # at most ~3 cycles per limb moved plus a fixed part.
        moved = LAYOUT.desc.limbs + LAYOUT.constants_limbs(s) + 1 + s + LAYOUT.result.limbs
        if job[0] == TABLE:
            # The entries come from the table, not the descriptor: s limbs each,
            # fetched ahead of the lane's multiplies (their latency hides).
            moved += -(-len(job[1][1]) // LAYOUT.indices_per_limb(w))
        assert 0 < overhead <= 64 + 3 * moved, f"{name}: kernel overhead {overhead} cycles"
    write_tb_report({"overhead": report})


@cocotb.test()
async def test_table_product(dut):
    """TABLE_PRODUCT jobs mixed with the others: entries from the table, stalls, no stray reads."""
    tb = KernelTB(dut, SEED + 7)
    await tb.reset()
    # The table straddles 4 KiB boundaries at an odd limb offset; reads are
    # recorded so a read outside it (and outside the descriptor) shows.
    t_addr, entries = 0x40FF8 - 8 * 3, 37
    t_end = t_addr + entries * tb.s * LIMB_BYTES
    reads = []
    good_read = tb.ram.read_if._read

    async def recording_read(address, length):
        reads.append((address, length))
        return await good_read(address, length)

    tb.ram.read_if._read = recording_read
    rows = []
    for b in range(3):
        n = tb.modulus()
        table = tb.table(n, t_addr, entries)
        # Batch 0: table products only; then at least two among the others.
        jobs = tb.random_jobs(n, 2, ops=(TABLE,), table=table)
        jobs += tb.random_jobs(n, tb.rng.randrange(2, 7),
                               ops=(TABLE,) if b == 0 else (TABLE, POWMOD, MULMOD, PRODUCT),
                               table=table)
        tb.rng.shuffle(jobs)
        header, results = await tb.run_batch(n, jobs, 0x10000, 0x60000, table=t_addr,
                                             table_entries=entries)
        tb.check(header, results, len(jobs))
        rows.append((len(jobs), sum(op == TABLE for op, *_ in jobs), header["cycles"]))
    desc_end = 0x10000 + 0x8000
    bus = tb.ram.read_if.byte_lanes
    for address, length in reads:
        inside = (t_addr - bus < address < t_end) or (0x10000 - bus < address < desc_end)
        assert inside, f"read of {length} bytes at {address:#x}, outside the table and descriptor"
    tb.ram.read_if._read = good_read

    # An index past the table: the job still completes (entry 0 read
    # instead, never past the table), the run reports bad_job.
    n = tb.modulus()
    table = tb.table(n, t_addr, entries)
    jobs = tb.random_jobs(n, 3, ops=(TABLE,), table=table)
    op, (f, idx), k, _ = jobs[1]
    jobs[1] = (op, (f, idx[:-1] + [entries]), k, None)
    reads.clear()
    tb.ram.read_if._read = recording_read
    header, _ = await tb.run_batch(n, jobs, 0x10000, 0x60000, table=t_addr, table_entries=entries)
    tb.ram.read_if._read = good_read
    assert header["status"] == LAYOUT.status_flag("bad_job"), f"status {header['status']:#x}"
    assert all(a + length <= t_end + bus for a, length in reads if a >= t_addr - bus)
    # A table product without a table (T = 0) is a bad job, before any beat is sent.
    jobs = tb.random_jobs(n, 2, ops=(TABLE,), table=table)
    header, _ = await tb.run_batch(n, jobs, 0x10000, 0x60000, table=t_addr, table_entries=0)
    assert header["status"] == LAYOUT.status_flag("bad_job") and header["jobs_done"] == 0
    # And the kernel is clean afterwards.
    jobs = tb.random_jobs(n, 4, ops=(TABLE, MULMOD), table=table)
    header, results = await tb.run_batch(n, jobs, 0x10000, 0x60000, table=t_addr,
                                         table_entries=entries)
    tb.check(header, results, len(jobs))
    write_tb_report({"table_batches": rows})
