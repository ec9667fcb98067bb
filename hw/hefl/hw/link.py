"""Framing layer of the board link: requests from a byte stream to memory and registers.

The protocol (frames, commands, status codes, CRC) is defined in
:mod:`hefl.hw.link_proto`; this component implements the device side. It
sits between a byte PHY (:class:`hefl.hw.uart.Uart`, or the byte bridge of
the Verilator harness) and

* a **memory port** of 64-bit limbs (``mem_*``): a request is held
  (``mem_req``) until ``mem_ack``; read data is on ``mem_rdata`` the cycle
  after the ack (one-cycle synchronous RAM behind an arbiter). The link
  writes it only for a ``WRITE_MEM`` whose header and payload CRCs both
  matched: the payload waits in a **write buffer** (block RAM of
  ``max_write_len`` limbs) until its PCRC is checked, and is then copied;
* an **AXI4-Lite master** (``axil``) onto the kernel's ``s_axi_control``,
  so the register commands have exactly the kernel's register semantics
  (clear-on-read ``ap_done``, ``ap_start`` …, :mod:`hefl.hw.regmap`).

Sequence per request (one at a time; the host waits for each reply)::

    HUNT  --SYNC-->  HDR (7 bytes + HCRC)  -->  CHECK
    CHECK: bad HCRC / unknown CMD / bad range  -->  DRAIN (discard until quiet) --> reply error
           INFO       --> reply 1 limb (version, max WRITE_MEM LEN, max LEN, memory size)
           READ_MEM   --> reply header, then per limb: memory read, 8 bytes
           WRITE_MEM  --> per limb: 8 bytes into the write buffer; then PCRC:
                          good --> per limb: buffer read, memory write --> reply OK
                          bad  --> reply BAD_CRC (memory untouched)
           READ_REG   --> AXI-Lite read --> reply 4 bytes
           WRITE_REG  --> 4 bytes + PCRC (checked first) --> AXI-Lite write --> reply
    any receive state with no byte for ``timeout_cycles`` --> reply TIMEOUT

Bytes are handled one per cycle at most; at 1 Mbaud and 100 MHz that is
one byte per 100 cycles, so nothing here needs to be fast: every memory and
buffer port is driven from registers (the buffer's read data, registered in
the RAM, goes straight to ``mem_wdata``), and the copy takes two cycles per
limb plus the memory's wait, far below the 8 byte times a limb took to
arrive. The reply's CRCs are computed as its bytes leave.
"""

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.hw.axil_ctrl import AxiLiteSignature
from hefl.hw.link_proto import (
    HEADER_BYTES,
    MAX_LEN,
    MAX_WRITE_BUFFER_LIMBS,
    REPLY_HEADER_BYTES,
    SYNC,
    UNIT_BYTES,
    WRITE_BUFFER_LIMBS,
    Cmd,
    Status,
    crc8,
    info_payload,
)
from hefl.hw.regmap import LAYOUT, REGMAP

__all__ = ["Link", "crc8_step"]


def crc8_step(crc, byte):
    """Amaranth expression of the CRC-8 (:data:`~hefl.hw.link_proto.CRC_POLY`) after one more byte.

    One step is linear over GF(2) in ``x = crc ^ byte``: bit ``i`` of the
    result is the XOR of the bits ``x_j`` whose unit byte ``1 << j`` has a
    CRC with bit ``i`` set. The columns come from the host's
    :func:`hefl.hw.link_proto.crc8`, so both sides use one definition. (The
    bit-serial shift-and-reduce form, as nested ``Mux``, repeats its input
    2^8 times in the elaborated netlist: seconds per elaboration.)
    """
    x = (crc ^ byte)[:8]
    cols = [crc8(bytes([1 << j])) for j in range(8)]
    return Cat(*(reduce(operator.xor, (x[j] for j in range(8) if cols[j] >> i & 1))
                 for i in range(8)))


class Link(wiring.Component):
    """Device side of the framed link protocol.

    Parameters
    ----------
    mem_limbs : int
        Size of the memory behind ``mem_*`` in 64-bit limbs.
    timeout_cycles : int
        Quiet time that ends a truncated request or a drained bad one.
    max_len : int
        Largest LEN accepted for the memory commands (≤ 65535).
    write_buffer_limbs : int
        Depth of the WRITE_MEM buffer (≤ 255, the ``INFO`` field). The
        buffer holds ``max_write_len = min(write_buffer_limbs, max_len)``
        limbs, the largest LEN accepted for ``WRITE_MEM``.

    Attributes
    ----------
    i_stream : In(stream.Signature(8))
        Request bytes.
    o_stream : Out(stream.Signature(8))
        Reply bytes.
    mem_req, mem_we, mem_addr, mem_wdata : Out
        Memory request, held until ``mem_ack``.
    mem_ack, mem_rdata : In
        Grant; read data the cycle after the grant.
    axil : In(AxiLiteSignature)
        AXI4-Lite master onto the register map.
    errors : Out(16)
        Requests answered with a non-OK status (saturating), for a LED or debug.
    """

    def __init__(self, *, mem_limbs, timeout_cycles, max_len=MAX_LEN,
                 write_buffer_limbs=WRITE_BUFFER_LIMBS):
        try:
            for name, v in (("Memory size", mem_limbs), ("Timeout", timeout_cycles),
                            ("Maximum length", max_len), ("Write buffer size", write_buffer_limbs)):
                if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                    raise TypeError(f"{name} must be a positive integer, not {v!r}")
            if max_len > MAX_LEN:
                raise TypeError(f"Maximum length must be at most {MAX_LEN}, not {max_len}")
            if write_buffer_limbs > MAX_WRITE_BUFFER_LIMBS:
                raise TypeError(f"Write buffer size must be at most {MAX_WRITE_BUFFER_LIMBS}, "
                                f"not {write_buffer_limbs}")
        except TypeError:
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise
        self._mem_limbs = mem_limbs
        self._timeout = timeout_cycles
        self._max_len = max_len
        # A buffer deeper than the longest frame would never fill.
        self._max_write_len = min(write_buffer_limbs, max_len)
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_stream": Out(stream.Signature(8)),
            "mem_req": Out(1), "mem_we": Out(1),
            "mem_addr": Out(range(mem_limbs)), "mem_wdata": Out(LAYOUT.limb_bits),
            "mem_ack": In(1), "mem_rdata": In(LAYOUT.limb_bits),
            "axil": In(AxiLiteSignature(REGMAP.addr_bits)),
            "errors": Out(16),
        })

    @property
    def mem_limbs(self):
        return self._mem_limbs

    @property
    def max_len(self):
        return self._max_len

    @property
    def max_write_len(self):
        """Largest WRITE_MEM LEN: the write buffer's depth in limbs."""
        return self._max_write_len

    def elaborate(self, platform):
        m = Module()
        rx, bus = self.i_stream, self.axil
        r = _LinkRegs(self._max_write_len)
        m.d.comb += r.got.eq(rx.valid & rx.ready)
        self._elab_quiet_timer(m, r)
        self._elab_decode(m, r)
        buf_wr, buf_rd = self._elab_write_buffer(m, r)
        m.d.comb += [self.mem_addr.eq(r.addr), self.mem_wdata.eq(buf_rd.data),
                     bus.awaddr.eq(r.addr), bus.araddr.eq(r.addr),
                     bus.wdata.eq(r.limb[32:]), bus.wstrb.eq(0xF)]
        with m.FSM(name="link"):
            self._fsm_request(m, r)
            self._fsm_write_payload(m, r, buf_wr)
            self._fsm_copy(m, r)
            self._fsm_register(m, r)
            self._fsm_reply(m, r)
        return m

    def _elab_quiet_timer(self, m, r):
        """Cycles since the last request byte taken, saturating at the timeout.

        ``timed_out`` is high from ``timeout_cycles`` cycles after the last
        byte until the next one.
        """
        quiet = Signal(range(self._timeout + 1))
        m.d.comb += r.timed_out.eq(quiet == self._timeout)
        with m.If(r.got):
            m.d.sync += quiet.eq(0)
        with m.Elif(~r.timed_out):
            m.d.sync += quiet.eq(quiet + 1)

    def _elab_write_buffer(self, m, r):
        """The WRITE_MEM buffer: ``max_write_len`` limbs, both ports addressed by ``r.bidx``.

        The write port is enabled by the FSM (BUF_WR); the read port is
        synchronous and always enabled, so its data is the limb at the
        previous cycle's ``bidx``: the copy waits one cycle (COPY_RD) after
        each ``bidx`` change. Returns the write and the read port.
        """
        m.submodules.wbuf = mem = Memory(shape=LAYOUT.limb_bits, depth=self._max_write_len,
                                         init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(r.bidx), wr.data.eq(r.limb), rd.addr.eq(r.bidx)]
        return wr, rd

    def _elab_decode(self, m, r):
        """The received header's command class (combinational) and range check (registered).

        ``range_ok`` is registered: the adder and comparisons end in a
        flip-flop instead of feeding CHECK's dispatch in the same cycle.
        It is valid in CHECK because CMD, ADDR and LEN are complete a cycle
        earlier, when the HCRC byte is taken.
        """
        is_mem, is_reg = r.is_mem, r.is_reg
        m.d.comb += [
            is_mem.eq((r.cmd == Cmd.READ_MEM) | (r.cmd == Cmd.WRITE_MEM)),
            is_reg.eq((r.cmd == Cmd.READ_REG) | (r.cmd == Cmd.WRITE_REG)),
            r.known.eq(is_mem | is_reg | (r.cmd == Cmd.INFO)),
            r.unit.eq(Mux(is_reg, UNIT_BYTES[Cmd.READ_REG], UNIT_BYTES[Cmd.READ_MEM])),
        ]
        end = Signal(34)
        m.d.comb += end.eq(r.addr + r.length)
        length = r.length
        # WRITE_MEM is also held to the write buffer (max_write_len <= max_len).
        fits = (length <= self._max_len) & ((r.cmd != Cmd.WRITE_MEM) | (length <= self._max_write_len))
        m.d.sync += r.range_ok.eq(
            Mux(is_mem, (length != 0) & fits & (end <= self._mem_limbs),
                Mux(is_reg, (length == 1) & (r.addr[:2] == 0)
                    & (r.addr < (1 << REGMAP.addr_bits)), 1)))

    def _fsm_request(self, m, r):
        """States HUNT, HDR, CHECK, DRAIN: find SYNC, take and check the header.

        One request byte a cycle at most. HDR takes CMD, ADDR, LEN and HCRC
        (8 bytes), CHECK (1 cycle) compares the HCRC and dispatches; a bad
        header is drained (every byte taken until ``timed_out``) and then
        answered. A header cut short is answered ``TIMEOUT`` at once.
        """
        rx, byte = self.i_stream, self.i_stream.payload
        with m.State("HUNT"):
            m.d.comb += rx.ready.eq(1)
            with m.If(r.got & (byte == SYNC)):
                m.d.sync += [r.idx.eq(0), r.crc.eq(0), r.status.eq(Status.OK)]
                m.next = "HDR"
        with m.State("HDR"):
            m.d.comb += rx.ready.eq(1)
            with m.If(r.got):
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.idx < HEADER_BYTES - 1):
                    m.d.sync += r.crc.eq(crc8_step(r.crc, byte))
                with m.Switch(r.idx):
                    with m.Case(0):
                        m.d.sync += r.cmd.eq(byte)
                    for i in range(4):
                        with m.Case(1 + i):
                            m.d.sync += r.addr[8 * i:8 * i + 8].eq(byte)
                    for i in range(2):
                        with m.Case(5 + i):
                            m.d.sync += r.length[8 * i:8 * i + 8].eq(byte)
                    with m.Case(HEADER_BYTES - 1):
                        m.d.sync += r.limb[:8].eq(byte)     # the HCRC, compared next
                        m.next = "CHECK"
            with m.Elif(r.timed_out):
                m.d.sync += [r.cmd.eq(Mux(r.idx == 0, 0, r.cmd))]
                r.fail(m, Status.TIMEOUT, drain=False)
        with m.State("CHECK"):
            m.d.sync += [r.left.eq(r.length), r.nbyte.eq(0), r.crc.eq(0), r.limb.eq(0),
                         r.bidx.eq(0), r.aw_done.eq(0), r.w_done.eq(0)]
            with m.If(r.limb[:8] != r.crc):
                r.fail(m, Status.BAD_CRC, drain=True)
            with m.Elif(~r.known):
                r.fail(m, Status.BAD_CMD, drain=True)
            with m.Elif(~r.range_ok):
                r.fail(m, Status.BAD_RANGE, drain=True)
            with m.Elif(r.cmd == Cmd.INFO):
                info = info_payload(mem_limbs=self._mem_limbs, max_len=self._max_len,
                                    max_write_len=self._max_write_len)
                m.d.sync += [r.limb.eq(Const(int.from_bytes(info, "little"), LAYOUT.limb_bits)),
                             r.left.eq(1)]
                r.start_reply(m, 1)
            with m.Elif(r.cmd == Cmd.READ_MEM):
                r.start_reply(m, r.length)
            with m.Elif(r.cmd == Cmd.READ_REG):
                m.next = "REG_AR"
            with m.Else():
                m.next = "WPAY"
        with m.State("DRAIN"):
            m.d.comb += rx.ready.eq(1)
            with m.If(r.timed_out & ~r.got):
                r.start_reply(m, 0)

    def _fsm_write_payload(self, m, r, buf_wr):
        """States WPAY, BUF_WR, PCRC: the WRITE_MEM limbs or the WRITE_REG word.

        WPAY shifts the bytes of one unit into ``limb`` (one per byte taken);
        a WRITE_MEM limb is then stored in the write buffer at ``bidx``
        (BUF_WR, one cycle). After the last unit the PCRC is checked: a
        match starts the copy to memory (COPY_RD, WRITE_MEM) or the register
        write (REG_W, WRITE_REG); a mismatch is answered ``BAD_CRC`` with
        nothing written. A payload cut short is answered ``TIMEOUT``, with
        nothing written either.
        """
        rx, byte = self.i_stream, self.i_stream.payload
        with m.State("WPAY"):
            m.d.comb += rx.ready.eq(1)
            with m.If(r.got):
                with m.If(r.payload_byte(m, byte, Cat(r.limb[8:], byte))):
                    with m.If(r.is_mem):
                        m.next = "BUF_WR"
                    with m.Else():
                        m.next = "PCRC"
            with m.Elif(r.timed_out):
                r.fail(m, Status.TIMEOUT, drain=False)
        with m.State("BUF_WR"):
            m.d.comb += buf_wr.en.eq(1)
            m.d.sync += [r.bidx.eq(r.bidx + 1), r.left.eq(r.left - 1)]
            with m.If(r.left == 1):
                m.next = "PCRC"
            with m.Else():
                m.next = "WPAY"
        with m.State("PCRC"):
            m.d.comb += rx.ready.eq(1)
            with m.If(r.got):
                with m.If(byte != r.crc):
                    r.fail(m, Status.BAD_CRC, drain=False)
                with m.Elif(r.is_reg):
                    m.next = "REG_W"
                with m.Else():
                    m.d.sync += [r.bidx.eq(0), r.left.eq(r.length)]
                    m.next = "COPY_RD"
            with m.Elif(r.timed_out):
                r.fail(m, Status.TIMEOUT, drain=False)

    def _fsm_copy(self, m, r):
        """States COPY_RD, COPY_WR: the checked WRITE_MEM buffer into memory, then OK.

        COPY_RD lets the buffer's registered read catch up with ``bidx``;
        COPY_WR holds the memory write (data: the buffer's read port) until
        ``mem_ack``, then moves to the next limb or the reply.
        """
        with m.State("COPY_RD"):
            m.next = "COPY_WR"
        with m.State("COPY_WR"):
            m.d.comb += [self.mem_req.eq(1), self.mem_we.eq(1)]
            with m.If(self.mem_ack):
                m.d.sync += [r.addr.eq(r.addr + 1), r.bidx.eq(r.bidx + 1), r.left.eq(r.left - 1)]
                with m.If(r.left == 1):
                    r.start_reply(m, 0)
                with m.Else():
                    m.next = "COPY_RD"

    def _fsm_register(self, m, r):
        """States REG_W, REG_B, REG_AR, REG_R: one AXI4-Lite write or read.

        The write offers AW and W together and holds each until accepted,
        then waits for B; the read offers AR, then waits for R. A non-OKAY
        response is answered ``BUS_ERROR``.
        """
        bus = self.axil
        with m.State("REG_W"):
            m.d.comb += [bus.awvalid.eq(~r.aw_done), bus.wvalid.eq(~r.w_done)]
            with m.If(bus.awready):
                m.d.sync += r.aw_done.eq(1)
            with m.If(bus.wready):
                m.d.sync += r.w_done.eq(1)
            with m.If((r.aw_done | bus.awready) & (r.w_done | bus.wready)):
                m.next = "REG_B"
        with m.State("REG_B"):
            m.d.comb += bus.bready.eq(1)
            with m.If(bus.bvalid):
                with m.If(bus.bresp != 0):
                    m.d.sync += r.status.eq(Status.BUS_ERROR)
                r.start_reply(m, 0)
        with m.State("REG_AR"):
            m.d.comb += bus.arvalid.eq(1)
            with m.If(bus.arready):
                m.next = "REG_R"
        with m.State("REG_R"):
            m.d.comb += bus.rready.eq(1)
            with m.If(bus.rvalid):
                m.d.sync += [r.limb.eq(bus.rdata), r.left.eq(1)]
                with m.If(bus.rresp != 0):
                    m.d.sync += r.status.eq(Status.BUS_ERROR)
                    r.start_reply(m, 0)
                with m.Else():
                    r.start_reply(m, 1)

    def _fsm_reply(self, m, r):
        """States REPLY, MEM_RD, MEM_RD_Q, MEM_RD_DATA, TX_PAY, TX_PCRC: send the reply.

        One byte per cycle of ``o_stream`` readiness: the 6 header bytes
        (SYNC, CMD, STATUS, LEN, HCRC; the CRCs computed as the bytes
        leave), then, for an OK reply with payload, per unit the bytes of
        ``limb`` (a READ_MEM limb is fetched first: MEM_RD until
        ``mem_ack``, then MEM_RD_Q and MEM_RD_DATA one cycle each), then
        the PCRC. An error reply counts in ``errors``.
        """
        tx = self.o_stream
        rdata_q = Signal.like(self.mem_rdata, reset_less=True)
        m.d.sync += rdata_q.eq(self.mem_rdata)
        with m.State("REPLY"):
            n = Mux(r.status == Status.OK, r.rlen, 0)
            out = Signal(8)
            with m.Switch(r.idx):
                for i, value in enumerate((SYNC, r.cmd, r.status, n[:8], n[8:])):
                    with m.Case(i):
                        m.d.comb += out.eq(value)
                with m.Default():
                    m.d.comb += out.eq(r.crc)
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(out)]
            with m.If(tx.ready):
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.idx == 0):
                    m.d.sync += r.crc.eq(0)
                with m.Elif(r.idx < REPLY_HEADER_BYTES):
                    m.d.sync += r.crc.eq(crc8_step(r.crc, out))
                with m.Else():
                    m.d.sync += [r.crc.eq(0), r.nbyte.eq(0)]
                    with m.If(r.status != Status.OK):
                        m.d.sync += self.errors.eq(self.errors + (self.errors != 0xFFFF))
                        m.next = "HUNT"
                    with m.Elif(n == 0):
                        m.next = "HUNT"
                    with m.Elif(r.cmd == Cmd.READ_MEM):
                        m.next = "MEM_RD"
                    with m.Else():
                        m.next = "TX_PAY"
        with m.State("MEM_RD"):
            m.d.comb += self.mem_req.eq(1)
            with m.If(self.mem_ack):
                m.d.sync += r.addr.eq(r.addr + 1)
                m.next = "MEM_RD_Q"
        with m.State("MEM_RD_Q"):
            # mem_rdata (the memory's block RAM outputs, spread over the die)
            # into rdata_q before the limb's multiplexer: block RAM → mux →
            # limb was on the ECP5 board's 100 MHz edge (10.5 ns).
            m.next = "MEM_RD_DATA"
        with m.State("MEM_RD_DATA"):
            m.d.sync += r.limb.eq(rdata_q)
            m.next = "TX_PAY"
        with m.State("TX_PAY"):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(r.limb[:8])]
            with m.If(tx.ready):
                with m.If(r.payload_byte(m, r.limb[:8], r.limb >> 8)):
                    m.d.sync += r.left.eq(r.left - 1)
                    with m.If(r.left == 1):
                        m.next = "TX_PCRC"
                    with m.Elif(r.cmd == Cmd.READ_MEM):
                        m.next = "MEM_RD"
        with m.State("TX_PCRC"):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(r.crc)]
            with m.If(tx.ready):
                m.next = "HUNT"


class _LinkRegs:
    """The request's fields and the registers the link's FSM state groups share.

    ``buf_limbs`` is the write buffer's depth (``bidx`` indexes it).
    """

    def __init__(self, buf_limbs):
        self.got = Signal()                  # a request byte is taken this cycle
        self.timed_out = Signal()            # no byte taken for timeout_cycles
        self.cmd = Signal(8)
        self.addr = Signal(32)
        self.length = Signal(16)
        self.crc = Signal(8)
        self.idx = Signal(4)
        self.status = Signal(8)
        self.left = Signal(17)               # units left to move
        self.limb = Signal(LAYOUT.limb_bits)
        self.bidx = Signal(range(buf_limbs + 1))   # write-buffer limb (one past: after the last)
        self.nbyte = Signal(4)               # byte within a unit
        self.aw_done = Signal()
        self.w_done = Signal()
        self.rlen = Signal(16)               # LEN of the reply
        self.unit = Signal(4)                # bytes per unit of this command
        self.known = Signal()
        self.is_mem = Signal()
        self.is_reg = Signal()
        self.range_ok = Signal()             # registered each cycle; read in CHECK only

    def fail(self, m, code, drain):
        """Answer with status ``code`` and no payload, after draining if ``drain``."""
        m.d.sync += [self.status.eq(code), self.rlen.eq(0), self.idx.eq(0)]
        m.next = "DRAIN" if drain else "REPLY"

    def start_reply(self, m, n_units):
        """Send the reply header (REPLY next), announcing ``n_units`` if the status is OK."""
        m.d.sync += [self.rlen.eq(n_units), self.idx.eq(0)]
        m.next = "REPLY"

    def payload_byte(self, m, byte, next_limb):
        """One payload byte in or out: ``limb`` shifted, ``byte`` into the PCRC.

        Returns the condition "this byte ends its unit" (``nbyte`` then
        restarts from 0), for the caller to act on the complete unit.
        """
        unit_done = self.nbyte == self.unit - 1
        m.d.sync += [self.limb.eq(next_limb), self.crc.eq(crc8_step(self.crc, byte)),
                     self.nbyte.eq(Mux(unit_done, 0, self.nbyte + 1))]
        return unit_done
