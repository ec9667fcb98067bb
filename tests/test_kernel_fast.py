"""The whole kernel in Amaranth's simulator, on stand-in multipliers: fast, every signal visible.

A small kernel (the real parser, AXI master, sub-engines, table ports and
trees) around lanes whose MontMul is the behavioural stand-in of
``_montmul_standin``, driven over AXI4-Lite and answered by a Python AXI4
memory that echoes IDs and stalls at random. It checks the job paths the
cocotb bench checks on the real MontMul (``test_kernel_sim.py``), TABLE_PRODUCT
jobs above all, in seconds rather than minutes.
"""

import math

import pytest
from _montmul_standin import StandinMontMul
from amaranth.sim import Simulator

from hefl.golden import batch as gb
from hefl.golden.montgomery import mont_constants, to_words
from hefl.hw.batch_engine import BatchEngine
from hefl.hw.kernel import Kernel
from hefl.hw.regmap import LAYOUT, REGMAP

LIMB = LAYOUT.limb_bytes
TABLE, MULMOD = LAYOUT.op("table_product"), LAYOUT.op("mulmod")


class Bus:
    """AXI4-Lite master and AXI4 memory (IDs echoed, bursts in AR order) around the kernel."""

    def __init__(self, dut, rng, size=1 << 18, stall=0.2):
        self.dut, self.rng, self.stall = dut, rng, stall
        self.mem = bytearray(size)
        self.bb = len(dut.m_axi_gmem_wdata) // 8
        self.r = []         # (data, last, id)
        self.aw = []        # (addr, beats)
        self.w_beat = 0
        self.b = 0

    def p(self, name):
        return getattr(self.dut, f"m_axi_gmem_{name}")

    def drive(self, ctx):
        def go():
            return self.rng.random() >= self.stall

        ctx.set(self.p("arready"), go())
        ctx.set(self.p("awready"), go())
        ctx.set(self.p("wready"), bool(self.aw) and go())
        ctx.set(self.p("rvalid"), bool(self.r) and go())
        if self.r:
            d, last, i = self.r[0]
            ctx.set(self.p("rdata"), d)
            ctx.set(self.p("rlast"), last)
            ctx.set(self.p("rid"), i)
        ctx.set(self.p("bvalid"), self.b > 0 and go())

    def sample(self, ctx):
        def g(n):
            return ctx.get(self.p(n))

        if g("arvalid") and g("arready"):
            a, n = g("araddr"), g("arlen") + 1
            for k in range(n):
                x = a + k * self.bb
                self.r.append((int.from_bytes(self.mem[x:x + self.bb], "little"), k == n - 1,
                               g("arid")))
        if g("rvalid") and g("rready"):
            self.r.pop(0)
        if g("awvalid") and g("awready"):
            self.aw.append((g("awaddr"), g("awlen") + 1))
        if g("wvalid") and g("wready"):
            a, n = self.aw[0]
            x = a + self.w_beat * self.bb
            d, s = g("wdata"), g("wstrb")
            for k in range(self.bb):
                if s >> k & 1:
                    self.mem[x + k] = d >> (8 * k) & 0xFF
            self.w_beat += 1
            if self.w_beat == n:
                self.aw.pop(0)
                self.w_beat = 0
                self.b += 1
        if g("bvalid") and g("bready"):
            self.b -= 1

    async def cycle(self, ctx):
        self.drive(ctx)
        self.sample(ctx)
        await ctx.tick()

    async def reg_write(self, ctx, name, value):
        def c(n):
            return getattr(self.dut, f"s_axi_control_{n}")

        ctx.set(c("awaddr"), REGMAP.reg(name).offset)
        ctx.set(c("wdata"), value)
        ctx.set(c("wstrb"), 0xF)
        ctx.set(c("awvalid"), 1)
        ctx.set(c("wvalid"), 1)
        ctx.set(c("bready"), 1)
        aw = w = False
        for _ in range(200):
            self.drive(ctx)
            aw |= ctx.get(c("awready")) and ctx.get(c("awvalid"))
            w |= ctx.get(c("wready")) and ctx.get(c("wvalid"))
            b = ctx.get(c("bvalid"))
            self.sample(ctx)
            await ctx.tick()
            if aw:
                ctx.set(c("awvalid"), 0)
            if w:
                ctx.set(c("wvalid"), 0)
            if b:
                break
        ctx.set(c("bready"), 0)

    async def reg_read(self, ctx, name):
        def c(n):
            return getattr(self.dut, f"s_axi_control_{n}")

        ctx.set(c("araddr"), REGMAP.reg(name).offset)
        ctx.set(c("arvalid"), 1)
        ctx.set(c("rready"), 1)
        for _ in range(200):
            self.drive(ctx)
            if ctx.get(c("arready")):
                self.sample(ctx)
                await ctx.tick()
                ctx.set(c("arvalid"), 0)
                break
            self.sample(ctx)
            await ctx.tick()
        for _ in range(200):
            self.drive(ctx)
            v = ctx.get(c("rvalid")) and ctx.get(c("rdata"))
            done = ctx.get(c("rvalid"))
            self.sample(ctx)
            await ctx.tick()
            if done:
                ctx.set(c("rready"), 0)
                return v
        raise AssertionError(f"no read response for {name}")

    def limbs(self, addr, values):
        for i, v in enumerate(values):
            self.mem[addr + LIMB * i:addr + LIMB * (i + 1)] = v.to_bytes(LIMB, "little")

    def read_limbs(self, addr, n):
        return [int.from_bytes(self.mem[addr + LIMB * i:addr + LIMB * (i + 1)], "little")
                for i in range(n)]


def descriptor(n, jobs, *, w, s, entries):
    c = mont_constants(n, w, s)
    stream = []
    for tag, (op, ops, count) in enumerate(jobs):
        stream.append(LAYOUT.pack_job_header(op, tag, count))
        if op == TABLE:
            stream += gb.table_job_operands(ops[0], ops[1], word_bits=w, words=s)
        else:
            for v in ops:
                stream += to_words(v, w, s)
    head = [0] * LAYOUT.desc.limbs
    for name, v in (("magic", LAYOUT.magic_word), ("jobs", len(jobs)), ("words", s),
                    ("word_bits", w), ("nprime", c.nprime), ("stream_limbs", len(stream)),
                    ("table_entries", entries)):
        head[LAYOUT.desc.index(name)] = v
    body = [x for name in LAYOUT.constants for x in to_words(getattr(c, name), w, s)]
    return head + body + stream


@pytest.mark.parametrize("L,w,lanes,engines", [(64, 16, 2, 1), (96, 32, 3, 2), (128, 51, 2, 1)])
def test_table_products_through_the_kernel(rng, L, w, lanes, engines):
    engine = None if engines > 1 else BatchEngine(
        operand_bits=L, word_bits=w, lanes=lanes, window_bits=2, max_exp_bits=L,
        multiplier=StandinMontMul, table_max=12)
    kw = dict(engine=engine) if engine else dict(multiplier=StandinMontMul, table_max=12)
    dut = Kernel(operand_bits=L, word_bits=w, lanes=lanes, engines=engines, window_bits=2,
                 max_exp_bits=L, max_burst=4, **kw)
    s = dut.words
    n = rng.getrandbits(L - 2) | 1 | 1 << (L - 3)
    entries = 10
    plain = [rng.randrange(n) for _ in range(entries)]
    t_addr, d_addr, r_addr = 0x8000, 0x1000, 0x20000
    jobs, want = [], []
    for tag in range(9):
        if tag % 3 == 2:
            a, b = rng.randrange(n), rng.randrange(n)
            jobs.append((MULMOD, (a, b), 2))
            want.append(a * b % n)
        else:
            idx = [rng.randrange(entries) for _ in range(rng.randrange(1, 13))]
            f = rng.randrange(n)
            jobs.append((TABLE, (f, idx), len(idx)))
            want.append(f * math.prod(plain[i] for i in idx) % n)
    bus = Bus(dut, rng)
    bus.limbs(t_addr, [x for v in plain
                       for x in to_words(gb.mont_form(v, n, word_bits=w, words=s), w, s)])
    bus.limbs(d_addr, descriptor(n, jobs, w=w, s=s, entries=entries))
    out = {}

    async def tb(ctx):
        ctx.set(dut.ap_rst_n, 0)
        for _ in range(5):
            await bus.cycle(ctx)
        ctx.set(dut.ap_rst_n, 1)
        for _ in range(5):
            await bus.cycle(ctx)
        for arg, addr in (("desc", d_addr), ("result", r_addr), ("table", t_addr)):
            lo, hi = REGMAP.arg(arg).registers
            await bus.reg_write(ctx, lo, addr)
            await bus.reg_write(ctx, hi, 0)
        await bus.reg_write(ctx, "ctrl", REGMAP.reg("ctrl").field("ap_start").mask)
        for _ in range(4000):
            for _ in range(50):
                await bus.cycle(ctx)
            if await bus.reg_read(ctx, "ctrl") & REGMAP.reg("ctrl").field("ap_done").mask:
                out["done"] = True
                break

    async def clock(ctx):
        # The kernel makes its clock domain from the ap_clk pin.
        while True:
            ctx.set(dut.ap_clk, 0)
            await ctx.delay(5e-9)
            ctx.set(dut.ap_clk, 1)
            await ctx.delay(5e-9)

    sim = Simulator(dut)
    sim.add_process(clock)
    sim.add_testbench(tb)
    sim.run()
    assert out.get("done"), "no ap_done"
    raw = bus.read_limbs(r_addr, LAYOUT.result_buffer_limbs(len(jobs), s))
    assert raw[LAYOUT.result.index("status")] == 0
    assert raw[LAYOUT.result.index("jobs_done")] == len(jobs)
    got = [sum(v << (w * i) for i, v in enumerate(raw[LAYOUT.result_limb(t, s):][:s]))
           for t in range(len(jobs))]
    assert got == want
