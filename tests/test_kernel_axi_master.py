"""AxiMaster in Amaranth's simulator against a Python AXI4 memory with random stalls.

The memory model checks the protocol rules the kernel relies on (no burst
crosses 4 KiB, bursts ≤ max_burst, W beats match AWLEN with WLAST on the
last, outstanding read beats ≤ the credit) and the data path (limb order,
unaligned starts and ends, byte strobes leave neighbours untouched, abort
drains everything in flight). DW = one limb (64) and the Alveo width (512).
"""


import pytest
from amaranth.sim import Simulator

from hefl.hw.axi_master import AxiMaster
from hefl.hw.params import ALVEO_DATA_BITS
from hefl.hw.regmap import LAYOUT

MEM = 1 << 16
LIMB = LAYOUT.limb_bytes


class AxiMemory:
    """Cycle-level AXI4 slave: call :meth:`drive` before and :meth:`sample` after settling."""

    def __init__(self, dut, rng, data_bits, max_burst, credit, stall=0.3):
        self.dut, self.rng, self.bb = dut, rng, data_bits // 8
        self.max_burst, self.credit, self.stall = max_burst, credit, stall
        self.mem = bytearray(rng.randbytes(MEM))
        self.r_queue = []          # pending read beats (data, last)
        self.aw_queue = []         # (addr, beats) of accepted AWs
        self.w_beat = 0            # beat index within aw_queue[0]
        self.b_pending = 0
        self.r_outstanding = 0     # beats requested and not yet delivered
        self.ar_bursts = []
        self.aw_bursts = []
        self.r_beats = 0

    def _check_burst(self, addr, beats):
        assert addr % self.bb == 0, f"unaligned burst address {addr:#x}"
        assert 1 <= beats <= self.max_burst, f"burst of {beats} beats"
        assert addr // 4096 == (addr + beats * self.bb - 1) // 4096, \
            f"burst {addr:#x}+{beats} beats crosses a 4 KiB boundary"

    def drive(self, ctx):
        b = self.dut.bus
        go = lambda: self.rng.random() >= self.stall
        ctx.set(b.arready, go())
        ctx.set(b.awready, go())
        ctx.set(b.wready, bool(self.aw_queue) and go())
        rv = bool(self.r_queue) and go()
        ctx.set(b.rvalid, rv)
        if self.r_queue:
            data, last = self.r_queue[0]
            ctx.set(b.rdata, data)
            ctx.set(b.rlast, last)
        ctx.set(b.rresp, 0)
        ctx.set(b.bvalid, self.b_pending > 0 and go())
        ctx.set(b.bresp, 0)

    def sample(self, ctx):
        b = self.dut.bus
        if ctx.get(b.arvalid) and ctx.get(b.arready):
            addr, beats = ctx.get(b.araddr), ctx.get(b.arlen) + 1
            assert ctx.get(b.arsize) == self.bb.bit_length() - 1 and ctx.get(b.arburst) == 1
            self._check_burst(addr, beats)
            self.ar_bursts.append((addr, beats))
            for i in range(beats):
                a = addr + i * self.bb
                self.r_queue.append((int.from_bytes(self.mem[a:a + self.bb], "little"), i == beats - 1))
            self.r_outstanding += beats
            assert self.r_outstanding <= self.credit + self.max_burst
        if ctx.get(b.rvalid) and ctx.get(b.rready):
            self.r_queue.pop(0)
            self.r_outstanding -= 1
            self.r_beats += 1
        if ctx.get(b.awvalid) and ctx.get(b.awready):
            addr, beats = ctx.get(b.awaddr), ctx.get(b.awlen) + 1
            self._check_burst(addr, beats)
            self.aw_queue.append((addr, beats))
            self.aw_bursts.append((addr, beats))
        if ctx.get(b.wvalid) and ctx.get(b.wready):
            addr, beats = self.aw_queue[0]
            a = addr + self.w_beat * self.bb
            data, strb = ctx.get(b.wdata), ctx.get(b.wstrb)
            for i in range(self.bb):
                if strb >> i & 1:
                    self.mem[a + i] = data >> (8 * i) & 0xFF
            last = self.w_beat == beats - 1
            assert ctx.get(b.wlast) == last, f"wlast {ctx.get(b.wlast)} on beat {self.w_beat}/{beats}"
            self.w_beat += 1
            if last:
                self.aw_queue.pop(0)
                self.w_beat = 0
                self.b_pending += 1
        if ctx.get(b.bvalid) and ctx.get(b.bready):
            self.b_pending -= 1


def limbs_at(mem, addr, n):
    return [int.from_bytes(mem[addr + LIMB * i:addr + LIMB * (i + 1)], "little") for i in range(n)]


def random_command(rng, max_limbs):
    n = rng.randrange(1, max_limbs + 1)
    # Half the commands start just below a 4 KiB boundary.
    if rng.random() < 0.5:
        addr = rng.randrange(1, MEM // 4096) * 4096 - LIMB * rng.randrange(1, 40)
    else:
        addr = LIMB * rng.randrange(0, (MEM - LIMB * n) // LIMB)
    addr = min(addr, MEM - LIMB * n)
    return addr, n


def run(dut, body, max_cycles):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    done = []

    async def tb(ctx):
        await body(ctx)
        done.append(True)

    sim.add_testbench(tb)
    sim.run_until(max_cycles * 1e-8)
    assert done, f"testbench did not finish within {max_cycles} cycles"


@pytest.mark.parametrize("data_bits", [LAYOUT.limb_bits, ALVEO_DATA_BITS])
def test_reads_and_writes(data_bits, rng):
    max_burst = 4
    dut = AxiMaster(data_bits=data_bits, max_burst=max_burst)
    model = AxiMemory(dut, rng, data_bits, max_burst, 2 * max_burst)
    cmds = [(rng.random() < 0.5,) + random_command(rng, 40) for _ in range(10)]

    async def body(ctx):
        for is_write, addr, n in cmds:
            if is_write:
                payload = [rng.getrandbits(64) for _ in range(n)]
                before = bytes(model.mem)
                ctx.set(dut.wr_cmd.payload.addr, addr)
                ctx.set(dut.wr_cmd.payload.limbs, n)
                ctx.set(dut.wr_cmd.valid, 1)
                sent, cmd_taken = 0, False
                for _ in range(20000):
                    model.drive(ctx)
                    ctx.set(dut.wr_data.valid, sent < n and rng.random() < 0.7)
                    ctx.set(dut.wr_data.payload, payload[sent] if sent < n else 0)
                    model.sample(ctx)
                    if not cmd_taken and ctx.get(dut.wr_cmd.ready):
                        cmd_taken = True
                    if ctx.get(dut.wr_data.valid) and ctx.get(dut.wr_data.ready):
                        sent += 1
                    await ctx.tick()
                    if cmd_taken:
                        ctx.set(dut.wr_cmd.valid, 0)
                    if sent == n and not ctx.get(dut.wr_busy):
                        break
                else:
                    raise AssertionError("write did not finish")
                assert model.b_pending == 0 and not model.aw_queue
                expect = bytearray(before)
                for i, v in enumerate(payload):
                    expect[addr + LIMB * i:addr + LIMB * (i + 1)] = v.to_bytes(LIMB, "little")
                assert model.mem == expect, f"write {n} limbs at {addr:#x}"
            else:
                want = limbs_at(model.mem, addr, n)
                got = []
                ctx.set(dut.rd_cmd.payload.addr, addr)
                ctx.set(dut.rd_cmd.payload.limbs, n)
                ctx.set(dut.rd_cmd.valid, 1)
                cmd_taken = False
                for _ in range(20000):
                    model.drive(ctx)
                    ctx.set(dut.rd_data.ready, rng.random() < 0.7)
                    model.sample(ctx)
                    if not cmd_taken and ctx.get(dut.rd_cmd.ready):
                        cmd_taken = True
                    if ctx.get(dut.rd_data.valid) and ctx.get(dut.rd_data.ready):
                        got.append(ctx.get(dut.rd_data.payload))
                    await ctx.tick()
                    if cmd_taken:
                        ctx.set(dut.rd_cmd.valid, 0)
                    if len(got) == n and not ctx.get(dut.rd_busy):
                        break
                else:
                    raise AssertionError("read did not finish")
                assert got == want, f"read {n} limbs at {addr:#x}"
                assert not model.r_queue and model.r_outstanding == 0

    run(dut, body, 400000)
    assert model.ar_bursts and model.aw_bursts
    print(f"{len(model.ar_bursts)} AR and {len(model.aw_bursts)} AW bursts checked")


def test_read_abort_drains(rng):
    data_bits, max_burst = 128, 8
    dut = AxiMaster(data_bits=data_bits, max_burst=max_burst)
    model = AxiMemory(dut, rng, data_bits, max_burst, 2 * max_burst, stall=0.2)

    async def body(ctx):
        # A long read (as a descriptor lying about its stream length would ask)...
        ctx.set(dut.rd_cmd.payload.addr, 0x100)
        ctx.set(dut.rd_cmd.payload.limbs, 100000)
        ctx.set(dut.rd_cmd.valid, 1)
        got = 0
        for _ in range(400):
            model.drive(ctx)
            ctx.set(dut.rd_data.ready, 1)
            model.sample(ctx)
            got += ctx.get(dut.rd_data.valid) and ctx.get(dut.rd_data.ready)
            await ctx.tick()
            ctx.set(dut.rd_cmd.valid, 0)
        assert got > 0
        # ...is abandoned: no more AR, the beats in flight are drained.
        ctx.set(dut.rd_data.ready, 0)
        model.drive(ctx)
        ctx.set(dut.rd_abort, 1)
        model.sample(ctx)
        await ctx.tick()
        ctx.set(dut.rd_abort, 0)
        issued = sum(b for _, b in model.ar_bursts)
        for _ in range(2000):
            model.drive(ctx)
            model.sample(ctx)
            assert not ctx.get(dut.rd_data.valid), "data delivered after abort"
            await ctx.tick()
            if not ctx.get(dut.rd_busy):
                break
        else:
            raise AssertionError("rd_busy stuck after abort")
        total = sum(b for _, b in model.ar_bursts)
        assert total <= issued + max_burst      # at most the AR that was already valid
        assert model.r_beats == total and not model.r_queue
        # Reading the whole 100000 limbs would be 50000 beats: the credit bounded it.
        assert total <= got // 2 + 2 * max_burst + max_burst + 1
        # A fresh command works afterwards.
        want = limbs_at(model.mem, 0x2000, 5)
        ctx.set(dut.rd_cmd.payload.addr, 0x2000)
        ctx.set(dut.rd_cmd.payload.limbs, 5)
        ctx.set(dut.rd_cmd.valid, 1)
        out = []
        for _ in range(500):
            model.drive(ctx)
            ctx.set(dut.rd_data.ready, 1)
            model.sample(ctx)
            if ctx.get(dut.rd_data.valid):
                out.append(ctx.get(dut.rd_data.payload))
            await ctx.tick()
            ctx.set(dut.rd_cmd.valid, 0)
            if len(out) == 5:
                break
        assert out == want

    run(dut, body, 10000)


# The rejected object was constructed before its check raised; Amaranth warns
# it was never elaborated.
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("kw,msg", [
    (dict(data_bits=96), "Data width"),
    (dict(data_bits=32), "Data width"),
    (dict(max_burst=0), "Burst length"),
    (dict(max_burst=257), "Burst length"),
    (dict(max_burst=16, read_credit=8), "Read credit"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(TypeError, match=msg):
        AxiMaster(**kw)


class IdMemory(AxiMemory):
    """:class:`AxiMemory` that echoes ARID on R (bursts answered in AR order)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.r_ids = []            # ARID of each beat of r_queue

    def drive(self, ctx):
        super().drive(ctx)
        if self.r_ids:
            ctx.set(self.dut.bus.rid, self.r_ids[0])

    def sample(self, ctx):
        b = self.dut.bus
        arid, popped = ctx.get(b.arid), ctx.get(b.rvalid) and ctx.get(b.rready)
        before = len(self.r_queue)
        super().sample(ctx)
        if popped:
            self.r_ids.pop(0)
        # Beats super() queued for an AR this cycle carry its ID.
        self.r_ids += [arid] * (len(self.r_queue) - before + popped)


@pytest.mark.parametrize("data_bits", [LAYOUT.limb_bits, ALVEO_DATA_BITS])
def test_read_ports_share_the_bus(data_bits, rng):
    # Port 0 streams a long read while ports 1 and 2 issue short commands
    # back to back (queued); every port gets its own limbs in order, whatever
    # the others' consumers do.
    max_burst = 4
    dut = AxiMaster(data_bits=data_bits, max_burst=max_burst, read_ports=3)
    model = IdMemory(dut, rng, data_bits, max_burst, 2 * max_burst * 3)
    plans = {0: [random_command(rng, 60)],
             1: [random_command(rng, 7) for _ in range(12)],
             2: [random_command(rng, 5) for _ in range(12)]}
    want = {p: [x for a, n in cmds for x in limbs_at(model.mem, a, n)] for p, cmds in plans.items()}

    async def body(ctx):
        got = {p: [] for p in plans}
        nxt = {p: 0 for p in plans}
        for _ in range(60000):
            model.drive(ctx)
            for p in plans:
                cmd, data, _ = dut.read_port(p)
                if nxt[p] < len(plans[p]):
                    a, n = plans[p][nxt[p]]
                    ctx.set(cmd.payload.addr, a)
                    ctx.set(cmd.payload.limbs, n)
                    ctx.set(cmd.valid, 1)
                else:
                    ctx.set(cmd.valid, 0)
                ctx.set(data.ready, rng.random() < (0.3 if p == 0 else 0.8))
            model.sample(ctx)
            for p in plans:
                cmd, data, _ = dut.read_port(p)
                if ctx.get(cmd.valid) and ctx.get(cmd.ready):
                    nxt[p] += 1
                if ctx.get(data.valid) and ctx.get(data.ready):
                    got[p].append(ctx.get(data.payload))
            await ctx.tick()
            if all(len(got[p]) == len(want[p]) for p in plans) and \
                    not any(ctx.get(dut.read_port(p)[2]) for p in plans):
                break
        else:
            raise AssertionError(f"reads did not finish: {[len(got[p]) for p in plans]}")
        for p in plans:
            assert got[p] == want[p], f"port {p}"
        assert not model.r_queue and model.r_outstanding == 0

    run(dut, body, 100000)


@pytest.mark.parametrize("data_bits,ports", [(LAYOUT.limb_bits, 1), (ALVEO_DATA_BITS, 8)])
def test_full_beat_per_cycle(data_bits, ports, rng):
    # With consumers that are always ready and a memory that never stalls,
    # R moves one full beat per cycle (8 ports of one limb per cycle each
    # fill a 512-bit beat), each port's limbs come with no bubble between
    # beats or commands, and W (one limb per beat at DW = 64) takes a beat
    # per cycle.
    max_burst = 16
    dut = AxiMaster(data_bits=data_bits, max_burst=max_burst, read_ports=ports)
    model = IdMemory(dut, rng, data_bits, max_burst, 2 * max_burst * ports, stall=0.0)
    lpb = data_bits // 64
    n = 4 * max_burst * lpb             # limbs per port: 4 KiB, four bursts
    # Port 0 takes one command at a time (a new one after the last limb of the
    # previous); the others queue theirs, so their two commands run back to back.
    cmds = {p: [(0x1000 * (1 + p), n)] if p == 0 else
            [(0x1000 * (1 + p), n // 2), (0x1000 * (1 + p) + 8 * (n // 2), n // 2)]
            for p in range(ports)}
    stats = {"r_beats": 0, "cycles": 0, "gaps": 0, "w_beats": 0, "w_cycles": 0}

    async def body(ctx):
        got = {p: 0 for p in range(ports)}
        nxt = {p: 0 for p in range(ports)}
        last_cycle = {p: None for p in range(ports)}
        for cycle in range(20000):
            model.drive(ctx)
            for p in range(ports):
                cmd, data, _ = dut.read_port(p)
                if nxt[p] < len(cmds[p]):
                    ctx.set(cmd.payload.addr, cmds[p][nxt[p]][0])
                    ctx.set(cmd.payload.limbs, cmds[p][nxt[p]][1])
                ctx.set(cmd.valid, nxt[p] < len(cmds[p]))
                ctx.set(data.ready, 1)
            model.sample(ctx)
            b = dut.bus
            # Steady state: from the first R beat until the first port is done.
            if any(got.values()) and all(v < n for v in got.values()):
                stats["cycles"] += 1
                stats["r_beats"] += ctx.get(b.rvalid) and ctx.get(b.rready)
            for p in range(ports):
                cmd, data, _ = dut.read_port(p)
                if ctx.get(cmd.valid) and ctx.get(cmd.ready):
                    nxt[p] += 1
                if ctx.get(data.valid) and ctx.get(data.ready):
                    if last_cycle[p] is not None and cycle - last_cycle[p] > 1 and got[p] < n:
                        stats["gaps"] += 1
                    last_cycle[p] = cycle
                    got[p] += 1
            await ctx.tick()
            if all(v == n for v in got.values()):
                break
        # Writes of n limbs, the data always valid.
        ctx.set(dut.wr_cmd.payload.addr, 0xA000)
        ctx.set(dut.wr_cmd.payload.limbs, n)
        ctx.set(dut.wr_cmd.valid, 1)
        sent = 0
        for _ in range(20000):
            model.drive(ctx)
            ctx.set(dut.wr_data.valid, sent < n)
            ctx.set(dut.wr_data.payload, sent)
            model.sample(ctx)
            if ctx.get(dut.bus.wvalid) and ctx.get(dut.bus.wready):
                stats["w_beats"] += 1
            if sent < n:
                stats["w_cycles"] += 1
            taken = ctx.get(dut.wr_cmd.valid) and ctx.get(dut.wr_cmd.ready)
            sent += ctx.get(dut.wr_data.valid) and ctx.get(dut.wr_data.ready)
            await ctx.tick()
            if taken:
                ctx.set(dut.wr_cmd.valid, 0)
            if sent == n and not ctx.get(dut.wr_busy):
                break

    run(dut, body, 100000)
    r_rate = stats["r_beats"] / stats["cycles"]
    print(f"DW={data_bits}, {ports} ports: {r_rate:.3f} R beats/cycle "
          f"({r_rate * data_bits / 8:.1f} B/cycle), {stats['gaps']} gaps, "
          f"W {stats['w_beats'] / max(1, stats['w_cycles']):.3f} beats/cycle")
    assert r_rate >= 0.9, f"{r_rate:.3f} R beats per cycle"
    assert stats["gaps"] == 0, f"{stats['gaps']} bubbles in the limb streams"
    # One limb per cycle in: W carries one beat per limbs-per-beat cycles.
    assert stats["w_beats"] / stats["w_cycles"] >= 0.9 / lpb


@pytest.mark.parametrize("data_bits,max_burst", [(LAYOUT.limb_bits, 16), (LAYOUT.limb_bits, 200),
                                                 (ALVEO_DATA_BITS, 64)])
def test_burst_length(data_bits, max_burst, rng):
    # The burst length and its "last burst" test, built from narrow compares,
    # against min(beats left, max_burst, beats to the 4 KiB boundary), at the
    # edges (around max_burst, the boundary, the top bits of beats_left) and at random.
    from amaranth.hdl import Module, Signal
    dut = AxiMaster(data_bits=data_bits, max_burst=max_burst)
    dut._MustUse__silence = True
    bb = data_bits // 8
    m = Module()
    addr, left = Signal(64), Signal(33)
    length, last = dut._burst_len(m, addr, left, "t")
    lefts = [0, 1, max_burst - 1, max_burst, max_burst + 1, 2 * max_burst, 1 << 32,
             (1 << 33) - 1, (1 << 32) + max_burst, (1 << len(length)) + 1]
    addrs = [0, 4096 - bb, 4096 - max_burst * bb, 8192 - (max_burst - 1) * bb]
    cases = [(a, n) for a in addrs for n in lefts]
    cases += [(rng.randrange(1 << 20) * bb, rng.choice([rng.randrange(4 * max_burst),
                                                        rng.randrange(1 << 33)]))
              for _ in range(300)]

    async def tb(ctx):
        for a, n in cases:
            ctx.set(addr, a)
            ctx.set(left, n)
            want = min(n, max_burst, (4096 - a % 4096) // bb)
            assert ctx.get(length) == want, (a, n)
            assert ctx.get(last) == (n == want), (a, n)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
