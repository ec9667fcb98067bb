"""AxilCtrl in Amaranth's simulator: AXI4-Lite handshakes and every access type.

The corner cases the kernel-level bench cannot time exactly: AW and W in
either order, byte strobes, a hardware set in the same cycle as a clearing
read (the event must not be lost), a W1S write against a hardware clear,
toggle-on-write, and reads of RO inputs and unmapped addresses.
"""

import pytest
from amaranth.sim import Simulator

from hefl.hw.axil_ctrl import AxilCtrl
from hefl.hw.regmap import REGMAP


def off(name):
    return REGMAP.reg(name).offset


def mask(reg, field):
    return REGMAP.reg(reg).field(field).mask


class Lite:
    """A cycle-level AXI4-Lite master for the testbench."""

    def __init__(self, dut, ctx):
        self.bus, self.ctx = dut.bus, ctx

    async def write(self, addr, data, strb=0xF, w_delay=0, aw_delay=0):
        b, ctx = self.bus, self.ctx
        ctx.set(b.bready, 1)
        aw_done = w_done = False
        cycle = 0
        while not (aw_done and w_done):
            ctx.set(b.awvalid, not aw_done and cycle >= aw_delay)
            ctx.set(b.awaddr, addr)
            ctx.set(b.wvalid, not w_done and cycle >= w_delay)
            ctx.set(b.wdata, data)
            ctx.set(b.wstrb, strb)
            aw_hs = ctx.get(b.awvalid) and ctx.get(b.awready)
            w_hs = ctx.get(b.wvalid) and ctx.get(b.wready)
            assert not ctx.get(b.bvalid), "B before AW and W were both accepted"
            await ctx.tick()
            aw_done |= aw_hs
            w_done |= w_hs
            cycle += 1
        ctx.set(b.awvalid, 0)
        ctx.set(b.wvalid, 0)
        for _ in range(10):
            if ctx.get(b.bvalid):
                assert ctx.get(b.bresp) == 0
                await ctx.tick()
                return
            await ctx.tick()
        raise AssertionError("no write response")

    async def read(self, addr, on_accept=None):
        """Read; ``on_accept(ctx)`` runs in the cycle the address is accepted."""
        b, ctx = self.bus, self.ctx
        ctx.set(b.rready, 1)
        ctx.set(b.arvalid, 1)
        ctx.set(b.araddr, addr)
        for _ in range(10):
            if ctx.get(b.arready):
                if on_accept:
                    on_accept(ctx)
                await ctx.tick()
                break
            await ctx.tick()
        else:
            raise AssertionError("AR not accepted")
        ctx.set(b.arvalid, 0)
        if on_accept:
            on_accept(None)
        for _ in range(10):
            if ctx.get(b.rvalid):
                v = ctx.get(b.rdata)
                await ctx.tick()
                return v
            await ctx.tick()
        raise AssertionError("no read data")


def simulate(body):
    dut = AxilCtrl()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    finished = []

    async def tb(ctx):
        await body(dut, Lite(dut, ctx), ctx)
        finished.append(True)

    sim.add_testbench(tb)
    sim.run_until(1e-4)
    assert finished


@pytest.mark.parametrize("aw_delay,w_delay", [(0, 0), (0, 3), (3, 0)])
def test_write_channel_order_and_strobes(aw_delay, w_delay):
    async def body(dut, bus, ctx):
        await bus.write(off("desc_lo"), 0x11223344, aw_delay=aw_delay, w_delay=w_delay)
        assert ctx.get(dut.desc_lo) == 0x11223344
        await bus.write(off("desc_lo"), 0xAABBCCDD, strb=0b0101)
        assert ctx.get(dut.desc_lo) == 0x11BB33DD
        assert await bus.read(off("desc_lo")) == 0x11BB33DD
        # Writes to read-only registers are ignored.
        ctx.set(dut.hw_words, 7)
        await bus.write(off("hw_words"), 0xFFFF)
        assert await bus.read(off("hw_words")) == 7
        assert await bus.read(0xFFC) == 0

    simulate(body)


def test_ctrl_bits():
    async def body(dut, bus, ctx):
        start, done, idle = mask("ctrl", "ap_start"), mask("ctrl", "ap_done"), mask("ctrl", "ap_idle")
        ctx.set(dut.ctrl_ap_idle, 1)
        assert await bus.read(off("ctrl")) == idle
        # W1S: writing 0 does not clear ap_start; the hardware clear does.
        await bus.write(off("ctrl"), start)
        assert ctx.get(dut.ctrl_ap_start)
        await bus.write(off("ctrl"), 0)
        assert ctx.get(dut.ctrl_ap_start)
        ctx.set(dut.ctrl_ap_start_clear, 1)
        await ctx.tick()
        ctx.set(dut.ctrl_ap_start_clear, 0)
        assert not ctx.get(dut.ctrl_ap_start)
        # RC: a set pulse makes ap_done sticky; a read returns and clears it.
        ctx.set(dut.ctrl_ap_done_set, 1)
        await ctx.tick()
        ctx.set(dut.ctrl_ap_done_set, 0)
        await ctx.tick()
        assert await bus.read(off("ctrl")) == done | idle
        assert await bus.read(off("ctrl")) == idle
        # A set in the very cycle a read is accepted: the read shows the old
        # value, the event survives for the next read.
        def pulse(c):
            if c is not None:
                c.set(dut.ctrl_ap_done_set, 1)
            else:
                ctx.set(dut.ctrl_ap_done_set, 0)
        assert await bus.read(off("ctrl"), on_accept=pulse) == idle
        assert await bus.read(off("ctrl")) == done | idle
        # Reading another register does not clear ap_done.
        ctx.set(dut.ctrl_ap_done_set, 1)
        await ctx.tick()
        ctx.set(dut.ctrl_ap_done_set, 0)
        await bus.read(off("gie"))
        assert ctx.get(dut.ctrl_ap_done)
        # auto_restart is plain read/write.
        await bus.write(off("ctrl"), mask("ctrl", "auto_restart"))
        assert ctx.get(dut.ctrl_auto_restart)

    simulate(body)


def test_interrupt_status_toggle():
    async def body(dut, bus, ctx):
        d, r = mask("isr", "done"), mask("isr", "ready")
        ctx.set(dut.isr_done_set, 1)
        ctx.set(dut.isr_ready_set, 1)
        await ctx.tick()
        ctx.set(dut.isr_done_set, 0)
        ctx.set(dut.isr_ready_set, 0)
        assert await bus.read(off("isr")) == d | r
        # Reading does not clear; writing 1 toggles only that bit.
        assert await bus.read(off("isr")) == d | r
        await bus.write(off("isr"), d)
        assert await bus.read(off("isr")) == r
        await bus.write(off("isr"), r | d)
        assert await bus.read(off("isr")) == d
        await bus.write(off("ier"), 0b11)
        assert (ctx.get(dut.ier_done), ctx.get(dut.ier_ready)) == (1, 1)

    simulate(body)
