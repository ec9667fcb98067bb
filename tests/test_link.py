"""The link's framing layer in Amaranth's simulator, against the real register slave.

DUT: :class:`hefl.hw.link.Link` wired to :class:`hefl.hw.axil_ctrl.AxilCtrl`
(the kernel's own ``s_axi_control`` slave, register map REGMAP). The
testbench plays the host (frames from :mod:`hefl.hw.link_proto`, bytes
with random gaps, reply bytes taken with random back-pressure) and the
memory (a dict, acks after random delays). Expected replies come from the
protocol codec and a Python model of the memory, never from the DUT.

The write-buffer tests use a link whose buffer (:data:`WBUF` limbs) is
shorter than its ``max_len``, so the WRITE_MEM limit and the READ_MEM limit
are told apart.
"""

import struct

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hefl.hw.axil_ctrl import AxilCtrl
from hefl.hw.link import Link
from hefl.hw.link_proto import (
    HEADER_BYTES,
    MAX_WRITE_BUFFER_LIMBS,
    VERSION,
    WRITE_BUFFER_LIMBS,
    Cmd,
    ReplyParser,
    Status,
    crc8,
    encode_request,
    parse_info,
)
from hefl.hw.regmap import LAYOUT, REGMAP

MEM_LIMBS = 64
TIMEOUT = 60
MAX_LEN = 16
WBUF = 8       # write buffer of the buffer tests: below MAX_LEN
HW_WORDS = 37  # a value driven on the read-only hw_words register


class _Top(wiring.Component):
    def __init__(self, **link_params):
        self.link = Link(mem_limbs=MEM_LIMBS, timeout_cycles=TIMEOUT, max_len=MAX_LEN,
                         **link_params)
        self.ctrl = AxilCtrl(regmap=REGMAP)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.submodules.ctrl = self.ctrl
        wiring.connect(m, self.link.axil, self.ctrl.bus)
        m.d.comb += self.ctrl.hw_words.eq(HW_WORDS)
        return m


def _simulate(script, rng, *, init=None, writes=None, **link_params):
    """Run ``script`` (a list of ("send", bytes) / ("quiet", cycles)) and return the reply bytes.

    The memory model is returned too (dict limb index -> value), starting
    from ``init``; every acknowledged write is appended to ``writes`` (a
    list of (limb index, value)) when given. ``link_params`` go to
    :class:`Link`.
    """
    top = _Top(**link_params)
    link = top.link
    mem = dict(init or {})
    writes = [] if writes is None else writes
    out = bytearray()
    done = []

    async def host(ctx):
        for kind, arg in script:
            if kind == "quiet":
                await ctx.tick().repeat(arg)
                continue
            for b in arg:
                for _ in range(rng.choice((0, 0, 1, 3))):
                    await ctx.tick()
                ctx.set(link.i_stream.payload, b)
                ctx.set(link.i_stream.valid, 1)
                await ctx.tick().until(link.i_stream.ready)
                ctx.set(link.i_stream.valid, 0)
            # Like the host transport: wait for the reply before the next frame.
            await ctx.tick().repeat(3 * TIMEOUT)
        done.append(1)

    async def sink(ctx):
        while True:
            ready = rng.random() < 0.7
            ctx.set(link.o_stream.ready, ready)
            await ctx.tick()
            if ready and ctx.get(link.o_stream.valid):
                pass
        # (collection happens in `monitor`, which sees the handshake)

    async def monitor(ctx):
        async for _clk, _rst, valid, ready, data in ctx.tick().sample(
                link.o_stream.valid, link.o_stream.ready, link.o_stream.payload):
            if valid and ready:
                out.append(data)

    async def memory(ctx):
        pending_read = None
        while True:
            if ctx.get(link.mem_req):
                for _ in range(rng.choice((0, 0, 1, 4))):
                    await ctx.tick()
                    if pending_read is not None:
                        ctx.set(link.mem_rdata, pending_read)
                        pending_read = None
                ctx.set(link.mem_ack, 1)
                a = ctx.get(link.mem_addr)
                if ctx.get(link.mem_we):
                    mem[a] = ctx.get(link.mem_wdata)
                    writes.append((a, mem[a]))
                else:
                    pending_read = mem.get(a, 0)
                await ctx.tick()
                ctx.set(link.mem_ack, 0)
                if pending_read is not None:
                    ctx.set(link.mem_rdata, pending_read)
                    pending_read = None
            else:
                await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(sink, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(memory, background=True)
    # Ends when the host script does (the other benches run in the background).
    sim.run()
    assert done, "host script did not finish"
    return bytes(out), mem


def _replies(data):
    return ReplyParser().feed(data)


def test_info_write_read_memory_and_registers(rng):
    base = rng.randrange(0, MEM_LIMBS - 16)
    n = rng.randrange(1, 17)
    limbs = [rng.getrandbits(LAYOUT.limb_bits) for _ in range(n)]
    payload = b"".join(struct.pack("<Q", v) for v in limbs)
    desc_lo = REGMAP.reg("desc_lo").offset
    hw_words = REGMAP.reg("hw_words").offset
    word = rng.getrandbits(32)
    script = [
        ("send", encode_request(Cmd.INFO)),
        ("send", encode_request(Cmd.WRITE_MEM, base, n, payload)),
        ("send", encode_request(Cmd.READ_MEM, base, n)),
        ("send", encode_request(Cmd.WRITE_REG, desc_lo, 1, struct.pack("<I", word))),
        ("send", encode_request(Cmd.READ_REG, desc_lo, 1)),
        ("send", encode_request(Cmd.READ_REG, hw_words, 1)),
    ]
    out, mem = _simulate(script, rng)
    r = _replies(out)
    assert [x.cmd for x in r] == [Cmd.INFO, Cmd.WRITE_MEM, Cmd.READ_MEM, Cmd.WRITE_REG,
                                  Cmd.READ_REG, Cmd.READ_REG]
    assert all(x.status == Status.OK for x in r), [x.describe() for x in r]
    # The default buffer is deeper than max_len: WRITE_MEM takes max_len limbs.
    assert parse_info(r[0].payload) == {"version": VERSION, "max_write_len": MAX_LEN,
                                        "max_len": MAX_LEN, "mem_limbs": MEM_LIMBS}
    assert [mem[base + i] for i in range(n)] == limbs
    assert r[2].payload == payload
    assert r[4].payload == struct.pack("<I", word)
    assert r[5].payload == struct.pack("<I", HW_WORDS)


def test_bad_frames_get_error_replies_and_the_parser_recovers(rng):
    limb = rng.getrandbits(LAYOUT.limb_bits)
    good = encode_request(Cmd.WRITE_MEM, 3, 1, struct.pack("<Q", limb))
    bad_hcrc = bytearray(encode_request(Cmd.WRITE_MEM, 5, 1, struct.pack("<Q", 0xDEAD)))
    bad_hcrc[HEADER_BYTES] ^= 0x40                          # corrupt HCRC (after SYNC)
    bad_pcrc = bytearray(encode_request(Cmd.WRITE_REG, REGMAP.reg("result_lo").offset, 1,
                                        struct.pack("<I", 0x1234)))
    bad_pcrc[-1] ^= 1
    # An unknown command whose "payload" is full of SYNC bytes and a valid-looking frame.
    unknown = encode_request(0x7E, 0, 0) + encode_request(Cmd.READ_MEM, 0, 1)[:-1] + b"\xa5" * 5
    truncated = encode_request(Cmd.WRITE_MEM, 0, 2, bytes(2 * LAYOUT.limb_bytes))[:12]
    out_of_range = encode_request(Cmd.READ_MEM, MEM_LIMBS - 1, 2)
    reg_len = encode_request(Cmd.READ_REG, 0, 2)
    reg_unaligned = encode_request(Cmd.READ_REG, 2, 1)
    script = [("send", bytes(bad_hcrc)), ("send", good), ("send", bytes(bad_pcrc)),
              ("send", unknown), ("send", truncated), ("send", out_of_range),
              ("send", reg_len), ("send", reg_unaligned),
              ("send", encode_request(Cmd.READ_MEM, 3, 1)),
              ("send", encode_request(Cmd.READ_REG, REGMAP.reg("result_lo").offset, 1))]
    out, mem = _simulate(script, rng)
    r = _replies(out)
    got = [(x.cmd, Status(x.status)) for x in r]
    assert got == [
        (Cmd.WRITE_MEM, Status.BAD_CRC),
        (Cmd.WRITE_MEM, Status.OK),
        (Cmd.WRITE_REG, Status.BAD_CRC),
        (0x7E, Status.BAD_CMD),
        (Cmd.WRITE_MEM, Status.TIMEOUT),
        (Cmd.READ_MEM, Status.BAD_RANGE),
        (Cmd.READ_REG, Status.BAD_RANGE),
        (Cmd.READ_REG, Status.BAD_RANGE),
        (Cmd.READ_MEM, Status.OK),
        (Cmd.READ_REG, Status.OK),
    ]
    assert 5 not in mem, "a frame with a bad header checksum must not write"
    assert r[8].payload == struct.pack("<Q", limb)
    assert r[9].payload == bytes(4), "a register write with a bad payload CRC must not apply"
    assert all(len(x.payload) == 0 for x in r if x.status != Status.OK)


def _limbs_bytes(values):
    return b"".join(struct.pack("<Q", v) for v in values)


def _corrupt_payload(frame, rng, where):
    """``frame`` with one bit flipped in its PCRC (``where="pcrc"``) or in a payload byte."""
    bad = bytearray(frame)
    i = len(bad) - 1 if where == "pcrc" else rng.randrange(1 + HEADER_BYTES, len(bad) - 1)
    bad[i] ^= 1 << rng.randrange(8)
    return bytes(bad)


def test_write_mem_with_bad_payload_crc_writes_nothing(rng):
    """Issue 14: no memory write at all for a WRITE_MEM whose PCRC fails, at LEN 1 … max."""
    init = {a: rng.getrandbits(LAYOUT.limb_bits) for a in range(MEM_LIMBS)}
    cases = [(n, where) for n in (1, rng.randrange(2, WBUF), WBUF) for where in ("pcrc", "payload")]
    script, ranges = [], []
    for n, where in cases:
        addr = rng.randrange(0, MEM_LIMBS - n + 1)
        values = [rng.getrandbits(LAYOUT.limb_bits) for _ in range(n)]
        frame = encode_request(Cmd.WRITE_MEM, addr, n, _limbs_bytes(values))
        script += [("send", _corrupt_payload(frame, rng, where)),
                   ("send", encode_request(Cmd.READ_MEM, addr, n))]
        ranges.append((addr, n))
    # Then a good frame of the maximum length is written exactly, in order.
    addr = rng.randrange(0, MEM_LIMBS - WBUF + 1)
    good = [rng.getrandbits(LAYOUT.limb_bits) for _ in range(WBUF)]
    script += [("send", encode_request(Cmd.WRITE_MEM, addr, WBUF, _limbs_bytes(good))),
               ("send", encode_request(Cmd.READ_MEM, addr, WBUF)),
               ("quiet", 4 * WBUF * LAYOUT.limb_bytes)]
    writes = []
    out, mem = _simulate(script, rng, init=init, writes=writes, write_buffer_limbs=WBUF)
    r = _replies(out)
    assert [(x.cmd, Status(x.status)) for x in r] == \
        [(Cmd.WRITE_MEM, Status.BAD_CRC), (Cmd.READ_MEM, Status.OK)] * len(cases) \
        + [(Cmd.WRITE_MEM, Status.OK), (Cmd.READ_MEM, Status.OK)]
    for k, ((a, n), case) in enumerate(zip(ranges, cases)):
        assert r[2 * k + 1].payload == _limbs_bytes(init[a + i] for i in range(n)), \
            f"memory changed by a WRITE_MEM with a bad payload CRC {case} at {a}"
    assert writes == [(addr + i, v) for i, v in enumerate(good)], \
        "memory written other than by the good frame, or not exactly once per limb"
    assert r[-1].payload == _limbs_bytes(good)
    assert mem == {**init, **{addr + i: v for i, v in enumerate(good)}}


def test_write_mem_longer_than_the_buffer_is_refused(rng):
    """WRITE_MEM of max_write_len + 1 is drained and refused, READ_MEM keeps max_len.

    A WRITE_MEM cut short after a whole limb writes nothing either.
    """
    init = {a: rng.getrandbits(LAYOUT.limb_bits) for a in range(MEM_LIMBS)}
    over = [rng.getrandbits(LAYOUT.limb_bits) for _ in range(WBUF + 1)]
    # A payload that also hides a complete, valid frame: draining must not take it.
    hidden = encode_request(Cmd.WRITE_MEM, 0, 1, _limbs_bytes([0xDEAD]))
    too_long = encode_request(Cmd.WRITE_MEM, 1, WBUF + 1, _limbs_bytes(over))
    too_long = too_long[:1 + HEADER_BYTES] + hidden + too_long[1 + HEADER_BYTES + len(hidden):]
    # Cut short after one whole limb and part of the next.
    cut = encode_request(Cmd.WRITE_MEM, 4, 2, _limbs_bytes([1, 2]))[:1 + HEADER_BYTES + 11]
    script = [("send", encode_request(Cmd.INFO)), ("send", too_long), ("send", cut),
              ("send", encode_request(Cmd.READ_MEM, 0, MAX_LEN)),
              ("quiet", 4 * MAX_LEN * LAYOUT.limb_bytes)]      # the long reply leaves
    writes = []
    out, mem = _simulate(script, rng, init=init, writes=writes, write_buffer_limbs=WBUF)
    r = _replies(out)
    assert [(x.cmd, Status(x.status)) for x in r] == [
        (Cmd.INFO, Status.OK), (Cmd.WRITE_MEM, Status.BAD_RANGE),
        (Cmd.WRITE_MEM, Status.TIMEOUT), (Cmd.READ_MEM, Status.OK)]
    assert parse_info(r[0].payload)["max_write_len"] == WBUF
    assert writes == [] and mem == init
    assert r[3].payload == _limbs_bytes(init[a] for a in range(MAX_LEN))


def test_crc8_reference():
    # CRC-8/SMBUS check value of "123456789" is 0xF4 (the catalogue's test vector).
    assert crc8(b"123456789") == 0xF4
    with pytest.raises(ValueError):
        encode_request(Cmd.WRITE_MEM, 0, 2, bytes(LAYOUT.limb_bytes))    # one limb, not two


def test_bad_parameters_are_typed_errors():
    from hefl.hw.board_mem import BoardMem
    from hefl.hw.ecp5_top import BoardCore
    with pytest.raises(TypeError, match="Memory size"):
        Link(mem_limbs=0, timeout_cycles=10)
    with pytest.raises(TypeError, match="Maximum length"):
        Link(mem_limbs=64, timeout_cycles=10, max_len=1 << 16)
    for bad in (0, MAX_WRITE_BUFFER_LIMBS + 1):
        with pytest.raises(TypeError, match="Write buffer size"):
            Link(mem_limbs=64, timeout_cycles=10, write_buffer_limbs=bad)
    for link, expect in ((Link(mem_limbs=64, timeout_cycles=10, max_len=5), 5),
                         (Link(mem_limbs=64, timeout_cycles=10), WRITE_BUFFER_LIMBS)):
        link._MustUse__silence = True       # built to read a property, never elaborated
        assert link.max_write_len == expect
    with pytest.raises(TypeError, match="power of two"):
        BoardMem(limbs=100)
    with pytest.raises(TypeError, match="PHY"):
        BoardCore(operand_bits=128, word_bits=32, timeout_cycles=10, phy="uart")
