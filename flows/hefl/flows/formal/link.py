"""Properties of the board link's framing (:class:`hefl.hw.link.Link`).

The host side is free: any bytes, with any gaps (stream rule assumed),
reply bytes taken with arbitrary backpressure. The memory and the
register bus answer within two cycles (without such fairness no bound on
the reply could hold); their data and response codes are free.

The wrapper follows the protocol of :mod:`hefl.hw.link_proto` on the
observable bytes, independently of the link's FSM: a request starts with a
``SYNC`` taken while no reply is owed and lasts until its reply's last
byte (reply length from its own header), the header CRC and the payload
CRC are computed here from ``CRC_POLY`` bit by bit (not with the link's
``crc8_step``). Asserted:

* **Back to idle within the timeout**: once a request's last byte was
  taken, its reply starts within ``timeout_cycles`` + :data:`SLACK`
  cycles, whatever the bytes were (a cut-short or bad request included);
  no reply byte is ever sent without a request owed, and each reply starts
  with ``SYNC``.
* **No memory write for a bad header**: a memory write happens only
  inside a request whose header CRC matched, for command WRITE_MEM, at
  the header's address plus the limbs written so far (never outside
  ``[ADDR, ADDR + LEN)``), with the limb just received as data; a bad
  header CRC is answered BAD_CRC.
* **No register write for a bad payload**: AW/W are raised only for a
  WRITE_REG whose header and payload CRCs both matched.

* **No memory write for a bad payload**: a memory write happens only
  after the frame's payload CRC matched (WRITE_MEM payloads wait in the
  link's write buffer, :data:`hefl.hw.link_proto.WRITE_BUFFER_LIMBS`), so a
  frame with a bad payload CRC writes nothing.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal

from hefl.flows.formal.props import Props
from hefl.hw.link import Link
from hefl.hw.link_proto import (
    CRC_POLY,
    HEADER_BYTES,
    REPLY_HEADER_BYTES,
    SYNC,
    Cmd,
    Status,
)

__all__ = ["LinkFormal", "crc8_bitwise", "SLACK", "LINK_PARAMS"]

#: Cycles the link may take, after the quiet time, to start its reply
#: (decode, a memory write or a register access with a two-cycle answer).
SLACK = 12
#: Small link: two limbs of memory, LEN at most 2, a 4-cycle timeout.
LINK_PARAMS = dict(mem_limbs=2, timeout_cycles=4, max_len=2)


def crc8_bitwise(m, crc, byte):
    """CRC-8 (``CRC_POLY``, MSB first, as in CRC-8/SMBUS) of ``crc`` after ``byte``, bit by bit."""
    x = crc ^ byte
    for i in range(8):
        nxt = Signal(8, name=f"crc_bit{i}")
        shifted = Cat(Const(0, 1), x[:7])
        m.d.comb += nxt.eq(Mux(x[7], shifted ^ CRC_POLY, shifted))
        x = nxt
    return x


class LinkFormal(Elaboratable):
    """Formal wrapper of :class:`~hefl.hw.link.Link` (see the module docstring).

    Parameters
    ----------
    dut : Link, optional
        Defaults to ``Link(**LINK_PARAMS)``.
    timeout_cycles : int, optional
        The timeout the properties assume (default: the link's own).
    parts : tuple of str
        ``"reply"`` (the timeout and reply properties, over arbitrary
        bytes) and/or ``"writes"`` (the CRC-gated writes).
    byte_limit : int, optional
        Request bytes other than the two CRC bytes are below this value.
        The ``writes`` part needs it: relating the link's CRC to the
        wrapper's is a parity problem that grows hard for the solver with
        every free header bit, while the CRC bytes themselves stay free, so
        every way a CRC can mismatch is still reached.
    """

    PARTS = ("reply", "writes")

    def __init__(self, dut=None, *, timeout_cycles=None, parts=PARTS,
                 byte_limit=None):
        self.dut = dut if dut is not None else Link(**LINK_PARAMS)
        if not set(parts) <= set(self.PARTS):
            raise ValueError(f"Parts must be among {self.PARTS}, not {parts!r}")
        self.parts = tuple(parts)
        self.byte_limit = byte_limit
        self.timeout = timeout_cycles if timeout_cycles is not None else self.dut._timeout

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        p = Props(m)
        rx, tx = dut.i_stream, dut.o_stream
        m.d.comb += [rx.valid.eq(p.free(1, "rx_valid")), rx.payload.eq(p.free(8, "rx_byte")),
                     tx.ready.eq(p.free(1, "tx_ready"))]
        got = p.source_rules("rx", rx.valid, rx.ready, [rx.payload], by_dut=False)
        p.source_rules("tx", tx.valid, tx.ready, [tx.payload], by_dut=True)
        self._memory(m, p, dut)
        self._register_slave(m, p, dut.axil)
        req = _Request()
        self._request(m, p, dut, got, req)
        self._reply(m, p, dut, req)
        return m

    # --- the environment: memory and register bus ----------------------------
    def _fair(self, p, name, waiting, answer):
        """Assume ``answer`` comes after at most two cycles of ``waiting``."""
        w1 = p.was(waiting, f"{name}_w1")
        w2 = p.was(waiting & w1, f"{name}_w2")
        p.assume(f"{name}_within_2", ~(waiting & w2) | answer)

    def _memory(self, m, p, dut):
        m.d.comb += [dut.mem_ack.eq(p.free(1, "mem_ack")),
                     dut.mem_rdata.eq(p.free(len(dut.mem_rdata), "mem_rdata"))]
        p.assume("ack_only_for_request", ~dut.mem_ack | dut.mem_req)
        self._fair(p, "mem", dut.mem_req, dut.mem_ack)

    def _register_slave(self, m, p, bus):
        """A protocol-abiding AXI4-Lite slave with free timing, data and responses."""
        for n in ("awready", "wready", "arready", "bvalid", "bresp", "rvalid", "rdata", "rresp"):
            m.d.comb += getattr(bus, n).eq(p.free(len(getattr(bus, n)), f"s_{n}"))
        aw = p.source_rules("aw", bus.awvalid, bus.awready, [bus.awaddr], by_dut=True)
        wh = p.source_rules("w", bus.wvalid, bus.wready, [bus.wdata, bus.wstrb], by_dut=True)
        ar = p.source_rules("ar", bus.arvalid, bus.arready, [bus.araddr], by_dut=True)
        b = p.source_rules("b", bus.bvalid, bus.bready, [bus.bresp], by_dut=False)
        r = p.source_rules("r", bus.rvalid, bus.rready, [bus.rdata, bus.rresp], by_dut=False)
        aw_got, w_got, r_owed = Signal(), Signal(), Signal()
        with m.If(aw):
            m.d.sync += aw_got.eq(1)
        with m.If(wh):
            m.d.sync += w_got.eq(1)
        with m.If(b):
            m.d.sync += [aw_got.eq(0), w_got.eq(0)]
        with m.If(ar):
            m.d.sync += r_owed.eq(1)
        with m.If(r):
            m.d.sync += r_owed.eq(0)
        p.assume("b_only_for_write", ~bus.bvalid | (aw_got & w_got))
        p.assume("r_only_for_read", ~bus.rvalid | r_owed)
        for name, valid, ready in (("awready", bus.awvalid, bus.awready),
                                   ("wready", bus.wvalid, bus.wready),
                                   ("arready", bus.arvalid, bus.arready)):
            self._fair(p, name, valid & ~ready, ready)
        self._fair(p, "bvalid", aw_got & w_got & ~bus.bvalid, bus.bvalid)
        self._fair(p, "rvalid", r_owed & ~bus.rvalid, bus.rvalid)

    # --- the request, as the protocol defines it ------------------------------
    def _request(self, m, p, dut, got, req):
        """Track the request bytes (and assert the writes they allow: :meth:`_writes`)."""
        byte = dut.i_stream.payload
        idx = req.idx
        owed = req.owed
        start = got & ~owed & (byte == SYNC)
        with m.If(start):
            m.d.sync += [owed.eq(1), idx.eq(0), req.crc.eq(0), req.pcrc.eq(0),
                         req.writes.eq(0)]
        with m.Elif(got & owed & (idx != req.IDX_MAX)):
            m.d.sync += idx.eq(idx + 1)
        taken = got & owed                       # a byte of the request after SYNC
        # Header: bytes 0..HEADER_BYTES-1 after SYNC; the last one is HCRC.
        with m.If(taken & (idx < HEADER_BYTES - 1)):
            m.d.sync += req.crc.eq(crc8_bitwise(m, req.crc, byte))
            with m.Switch(idx):
                with m.Case(0):
                    m.d.sync += req.cmd.eq(byte)
                for i in range(4):
                    with m.Case(1 + i):
                        m.d.sync += req.addr[8 * i:8 * i + 8].eq(byte)
                for i in range(2):
                    with m.Case(5 + i):
                        m.d.sync += req.length[8 * i:8 * i + 8].eq(byte)
        with m.If(taken & (idx == HEADER_BYTES - 1)):
            m.d.sync += req.hdr_ok.eq(byte == req.crc)
        hdr_done = owed & (idx >= HEADER_BYTES)
        hdr_good = hdr_done & req.hdr_ok
        # Payload: unit bytes per LEN, then the PCRC byte.
        unit = Mux((req.cmd == Cmd.READ_REG) | (req.cmd == Cmd.WRITE_REG), 4, 8)
        pay_end = Signal(20)
        m.d.comb += pay_end.eq(HEADER_BYTES + req.length * unit)
        in_payload = taken & hdr_done & (idx < pay_end)
        with m.If(in_payload):
            m.d.sync += [req.pcrc.eq(crc8_bitwise(m, req.pcrc, byte)),
                         req.limb.eq(Cat(req.limb[8:], byte))]
        pcrc_byte = taken & hdr_done & (idx == pay_end)
        with m.If(pcrc_byte):
            m.d.sync += req.pay_ok.eq(byte == req.pcrc)

        if "writes" in self.parts:
            # Back-to-back bytes: the write properties do not depend on the
            # gaps (the reply part covers those), and each gap the solver may
            # choose multiplies its search.
            p.assume("bytes_back_to_back", dut.i_stream.valid)
        if self.byte_limit is not None:
            crc_byte = (idx == HEADER_BYTES - 1) | pcrc_byte
            limit = Mux(idx == 0, 8, self.byte_limit)       # CMD: every command code
            p.assume("small_bytes", ~taken | crc_byte | (byte < limit))
        if "writes" in self.parts:
            self._writes(m, p, dut, req, hdr_good, pay_end)
        return req

    def _writes(self, m, p, dut, req, hdr_good, pay_end):
        """Memory writes for a good WRITE_MEM header only; register writes after both CRCs."""
        idx = req.idx
        # --- memory writes only for a good WRITE_MEM header, in range --------
        wr = dut.mem_req & dut.mem_we
        p.assert_("mem_write_needs_good_header", ~wr | (hdr_good & (req.cmd == Cmd.WRITE_MEM)))
        p.assert_("mem_write_in_order_in_range",
                  ~wr | ((dut.mem_addr == req.addr + req.writes) & (req.writes < req.length)))
        p.assert_("mem_write_data_is_payload", ~wr | (dut.mem_wdata == req.limb))
        with m.If(wr & dut.mem_ack):
            m.d.sync += req.writes.eq(req.writes + 1)
        # --- register writes only after both CRCs matched --------------------
        bus = dut.axil
        p.assert_("reg_write_needs_good_crcs", ~(bus.awvalid | bus.wvalid)
                  | (hdr_good & (req.cmd == Cmd.WRITE_REG) & (idx > pay_end) & req.pay_ok))
        # --- ... and memory writes only after the payload CRC matched --------
        p.assert_("mem_write_after_good_pcrc",
                  ~wr | (hdr_good & (req.cmd == Cmd.WRITE_MEM) & (idx > pay_end) & req.pay_ok))
        p.cover("mem_written", wr & dut.mem_ack)
        p.cover("reg_written", bus.awvalid & bus.awready)
        p.cover("bad_header_drained", req.owed & (idx > HEADER_BYTES + 1) & ~req.hdr_ok)
        tx = dut.o_stream
        p.assert_("bad_header_answered_bad_crc",
                  ~(tx.valid & (req.reply_n == 2) & (idx >= HEADER_BYTES) & ~req.hdr_ok)
                  | (tx.payload == Status.BAD_CRC))

    def _reply(self, m, p, dut, req):
        """The reply: only when owed, starting with SYNC, soon after the last byte."""
        tx = dut.o_stream
        sent = tx.valid & tx.ready
        n = req.reply_n
        status = Signal(8)
        rcmd = Signal(8)
        rlen = Signal(16)
        with m.If(sent):
            m.d.sync += n.eq(n + 1)
            with m.Switch(n):
                with m.Case(1):
                    m.d.sync += rcmd.eq(tx.payload)
                with m.Case(2):
                    m.d.sync += status.eq(tx.payload)
                with m.Case(3):
                    m.d.sync += rlen[:8].eq(tx.payload)
                with m.Case(4):
                    m.d.sync += rlen[8:].eq(tx.payload)
        unit = Mux((rcmd == Cmd.READ_REG) | (rcmd == Cmd.WRITE_REG), 4, 8)
        total = Signal(range(1 << 20))
        m.d.comb += total.eq(Mux((status != Status.OK) | (rlen == 0), 1 + REPLY_HEADER_BYTES,
                                 1 + REPLY_HEADER_BYTES + rlen * unit + 1))
        last = sent & (n >= REPLY_HEADER_BYTES) & (n == total - 1)
        with m.If(last):
            m.d.sync += [req.owed.eq(0), n.eq(0)]
        if "reply" not in self.parts:
            return
        p.assert_("reply_only_when_owed", ~tx.valid | req.owed)
        p.assert_("reply_starts_with_sync", ~tx.valid | (n != 0) | (tx.payload == SYNC))
        # Quiet time since the request's last byte, while its reply has not started.
        quiet = Signal(range(self.timeout + SLACK + 2))
        with m.If(dut.i_stream.valid & dut.i_stream.ready | ~req.owed | (n != 0) | tx.valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.timeout + SLACK + 1):
            m.d.sync += quiet.eq(quiet + 1)
        p.assert_("reply_within_timeout", quiet <= self.timeout + SLACK)
        p.cover("timeout_reply", p.was(sent & (n == 2), "status_sent")
                & (status == Status.TIMEOUT))
        p.cover("bad_crc_reply", p.was(sent & (n == 2), "status_sent2")
                & (status == Status.BAD_CRC))
        p.cover("ok_reply_done", p.was(last, "was_last") & (status == Status.OK))


class _Request:
    """The wrapper's record of the request in progress."""

    IDX_MAX = 63

    def __init__(self):
        self.owed = Signal()                 # SYNC taken, reply not finished
        self.idx = Signal(range(self.IDX_MAX + 1))   # bytes taken after SYNC (saturating)
        self.cmd = Signal(8)
        self.addr = Signal(32)
        self.length = Signal(16)
        self.crc = Signal(8)
        self.hdr_ok = Signal()
        self.pcrc = Signal(8)
        self.pay_ok = Signal()
        self.limb = Signal(64)               # the last eight payload bytes
        self.writes = Signal(17)             # limbs written by this request
        self.reply_n = Signal(range(64))     # reply bytes sent
