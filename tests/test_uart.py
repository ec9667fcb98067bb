"""UART PHY in Amaranth's simulator: TX waveform, RX at skewed baud rates, framing errors, glitches.

The reference here is the 8N1 line format itself: the testbench bit-bangs
(or samples) the line with its own timing, independent of the PHY's
counters.
"""

import pytest
from amaranth.sim import Simulator

from hefl.hw.uart import Uart, UartRx, UartTx


def _run(dut, bench, *, deadline_cycles):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run_until(deadline_cycles * 1e-8)


async def _drive_byte(ctx, line, byte, period, *, stop=1, glitch=None):
    """Bit-bang one 8N1 frame on ``line`` with ``period`` cycles per bit (a float)."""
    bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
    t = 0.0
    done = 0
    for b in bits:
        t += period
        ctx.set(line, b)
        while done < round(t):
            await ctx.tick()
            done += 1
    ctx.set(line, 1)


@pytest.mark.parametrize("divisor", [8, 16, 27])
def test_tx_waveform(divisor, rng):
    """Sample the TX line at bit centres; every frame is start, 8 LSB-first bits, stop."""
    data = [rng.randrange(256) for _ in range(6)]
    dut = UartTx(divisor=divisor)
    got = []

    async def send(ctx):
        for b in data:
            ctx.set(dut.i_stream.payload, b)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)

    async def watch(ctx):
        while len(got) < len(data):
            await ctx.tick().until(~dut.tx)           # start edge
            await ctx.tick().repeat(divisor // 2)     # to the centre of the start bit
            assert ctx.get(dut.tx) == 0
            bits = []
            for _ in range(9):
                await ctx.tick().repeat(divisor)
                bits.append(ctx.get(dut.tx))
            assert bits[8] == 1, "stop bit must be 1"
            got.append(sum(b << i for i, b in enumerate(bits[:8])))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send)
    sim.add_testbench(watch)
    sim.run_until(12 * divisor * (len(data) + 2) * 1e-8)
    assert got == data


@pytest.mark.parametrize("divisor,skew", [(16, 1.0), (16, 1.025), (16, 0.975), (100, 1.025),
                                          (100, 0.975), (11, 1.0)])
def test_rx_bytes_with_baud_skew(divisor, skew, rng):
    """Back-to-back frames from a sender whose bit period is off by up to ±2.5 %."""
    data = [rng.randrange(256) for _ in range(12)] + [0x00, 0xFF, 0x55]
    dut = UartRx(divisor=divisor)
    got = []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        for b in data:
            await _drive_byte(ctx, dut.rx, b, divisor * skew)

    async def collect(ctx):
        ctx.set(dut.o_stream.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(dut.o_stream.valid):
                got.append(ctx.get(dut.o_stream.payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run_until((10 * divisor * skew * len(data) + 4 * divisor) * 1e-8)
    assert got == data


def test_rx_framing_error_and_recovery(rng):
    """A zero stop bit drops the byte, pulses framing_error, counts it; the next byte is fine.

    Also a break (line held low for several frames) is one error, and a glitch
    shorter than the vote spacing produces nothing.
    """
    divisor = 16
    dut = UartRx(divisor=divisor)
    good = [rng.randrange(256) for _ in range(3)]
    got, pulses, errors = [], [], []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        await _drive_byte(ctx, dut.rx, good[0], divisor)
        await _drive_byte(ctx, dut.rx, 0x3C, divisor, stop=0)      # framing error
        await ctx.tick().repeat(2 * divisor)
        await _drive_byte(ctx, dut.rx, good[1], divisor)
        ctx.set(dut.rx, 0)                                          # break: 3 frames low
        await ctx.tick().repeat(30 * divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        ctx.set(dut.rx, 0)                                          # 1-cycle glitch
        await ctx.tick()
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        await _drive_byte(ctx, dut.rx, good[2], divisor)
        await ctx.tick().repeat(2 * divisor)
        errors.append(ctx.get(dut.errors))

    async def collect(ctx):
        ctx.set(dut.o_stream.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(dut.o_stream.valid):
                got.append(ctx.get(dut.o_stream.payload))
            if ctx.get(dut.framing_error):
                pulses.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run_until(100 * divisor * 1e-8)
    assert got == good
    assert len(pulses) == 2
    assert errors == [2]


def test_loopback_and_bad_divisor(rng):
    """Uart TX wired to its own RX delivers a random byte sequence unchanged."""
    divisor = 10
    dut = Uart(divisor=divisor)
    data = [rng.randrange(256) for _ in range(20)]
    got = []

    async def send(ctx):
        for b in data:
            ctx.set(dut.i_stream.payload, b)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)

    async def loop(ctx):
        async for tx, in ctx.changed(dut.tx):
            ctx.set(dut.rx, tx)

    async def collect(ctx):
        ctx.set(dut.o_stream.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(dut.o_stream.valid):
                got.append(ctx.get(dut.o_stream.payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send)
    sim.add_process(loop)
    sim.add_testbench(collect, background=True)
    sim.run_until(10 * divisor * (len(data) + 3) * 1e-8)
    assert got == data

    for bad in (7, 0, 12.5, True):
        with pytest.raises(TypeError, match="Divisor"):
            UartRx(divisor=bad)
