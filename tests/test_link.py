"""The link's framing layer in Amaranth's simulator, against the real register slave.

DUT: :class:`hefl.hw.link.Link` wired to :class:`hefl.hw.axil_ctrl.AxilCtrl`
(the kernel's own ``s_axi_control`` slave, register map REGMAP). The
testbench plays the host (frames from :mod:`hefl.hw.link_proto`, bytes
with random gaps, reply bytes taken with random back-pressure) and the
memory (a dict, acks after random delays). Expected replies come from the
protocol codec and a Python model of the memory, never from the DUT.
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
HW_WORDS = 37  # a value driven on the read-only hw_words register


class _Top(wiring.Component):
    def __init__(self):
        self.link = Link(mem_limbs=MEM_LIMBS, timeout_cycles=TIMEOUT, max_len=16)
        self.ctrl = AxilCtrl(regmap=REGMAP)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.submodules.ctrl = self.ctrl
        wiring.connect(m, self.link.axil, self.ctrl.bus)
        m.d.comb += self.ctrl.hw_words.eq(HW_WORDS)
        return m


def _simulate(script, rng):
    """Run ``script`` (a list of ("send", bytes) / ("quiet", cycles)) and return the reply bytes.

    The memory model is returned too (dict limb index -> value).
    """
    top = _Top()
    link = top.link
    mem = {}
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
    assert parse_info(r[0].payload) == {"version": 1, "max_len": 16, "mem_limbs": MEM_LIMBS}
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
    with pytest.raises(TypeError, match="power of two"):
        BoardMem(limbs=100)
    with pytest.raises(TypeError, match="PHY"):
        BoardCore(operand_bits=128, word_bits=32, timeout_cycles=10, phy="uart")
