"""Framing layer of the board link: requests from a byte stream to memory and registers.

The protocol (frames, commands, status codes, CRC) is defined in
:mod:`hefl.hw.link_proto`; this component implements the device side. It
sits between a byte PHY (:class:`hefl.hw.uart.Uart`, or the byte bridge of
the Verilator harness) and

* a **memory port** of 64-bit limbs (``mem_*``): a request is held
  (``mem_req``) until ``mem_ack``; read data is on ``mem_rdata`` the cycle
  after the ack (one-cycle synchronous RAM behind an arbiter);
* an **AXI4-Lite master** (``axil``) onto the kernel's ``s_axi_control``,
  so the register commands have exactly the kernel's register semantics
  (clear-on-read ``ap_done``, ``ap_start`` …, :mod:`hefl.hw.regmap`).

Sequence per request (one at a time; the host waits for each reply)::

    HUNT  --SYNC-->  HDR (7 bytes + HCRC)  -->  CHECK
    CHECK: bad HCRC / unknown CMD / bad range  -->  DRAIN (discard until quiet) --> reply error
           INFO       --> reply 1 limb (version, max LEN, memory size)
           READ_MEM   --> reply header, then per limb: memory read, 8 bytes
           WRITE_MEM  --> per limb: 8 bytes, memory write; then PCRC --> reply
           READ_REG   --> AXI-Lite read --> reply 4 bytes
           WRITE_REG  --> 4 bytes + PCRC (checked first) --> AXI-Lite write --> reply
    any receive state with no byte for ``timeout_cycles`` --> reply TIMEOUT

Bytes are handled one per cycle at most; at 1 Mbaud and 100 MHz that is
one byte per 100 cycles, so nothing here needs to be fast. The reply's CRCs
are computed as its bytes leave.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hefl.hw.axil_ctrl import AxiLiteSignature
from hefl.hw.link_proto import CRC_POLY, MAX_LEN, SYNC, VERSION, Cmd, Status
from hefl.hw.regmap import REGMAP

__all__ = ["Link", "crc8_step"]


def crc8_step(crc, byte):
    """Amaranth expression of the CRC-8 (:data:`CRC_POLY`) after one more byte."""
    c = (crc ^ byte)[:8]
    for _ in range(8):
        shifted = Cat(Const(0, 1), c[:7])
        c = Mux(c[7], shifted ^ CRC_POLY, shifted)
    return c


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

    def __init__(self, *, mem_limbs, timeout_cycles, max_len=MAX_LEN):
        try:
            for name, v in (("Memory size", mem_limbs), ("Timeout", timeout_cycles),
                            ("Maximum length", max_len)):
                if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                    raise TypeError(f"{name} must be a positive integer, not {v!r}")
            if max_len > MAX_LEN:
                raise TypeError(f"Maximum length must be at most {MAX_LEN}, not {max_len}")
        except TypeError:
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise
        self._mem_limbs = mem_limbs
        self._timeout = timeout_cycles
        self._max_len = max_len
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_stream": Out(stream.Signature(8)),
            "mem_req": Out(1), "mem_we": Out(1),
            "mem_addr": Out(range(mem_limbs)), "mem_wdata": Out(64),
            "mem_ack": In(1), "mem_rdata": In(64),
            "axil": In(AxiLiteSignature(REGMAP.addr_bits)),
            "errors": Out(16),
        })

    @property
    def mem_limbs(self):
        return self._mem_limbs

    @property
    def max_len(self):
        return self._max_len

    def elaborate(self, platform):
        m = Module()
        rx, tx, bus = self.i_stream, self.o_stream, self.axil
        byte = rx.payload
        got = Signal()                  # a request byte is taken this cycle
        m.d.comb += got.eq(rx.valid & rx.ready)

        # --- quiet timer: cycles since the last byte taken ----------------
        quiet = Signal(range(self._timeout + 1))
        timed_out = Signal()
        m.d.comb += timed_out.eq(quiet == self._timeout)
        with m.If(got):
            m.d.sync += quiet.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += quiet.eq(quiet + 1)

        cmd = Signal(8)
        addr = Signal(32)
        length = Signal(16)
        crc = Signal(8)
        idx = Signal(4)
        status = Signal(8)
        left = Signal(17)               # units left to move
        limb = Signal(64)
        nbyte = Signal(4)               # byte within a unit
        aw_done = Signal()
        w_done = Signal()
        rlen = Signal(16)               # LEN of the reply
        unit = Signal(4)                # bytes per unit of this command

        known = Signal()
        is_mem = Signal()
        is_reg = Signal()
        m.d.comb += [
            is_mem.eq((cmd == Cmd.READ_MEM) | (cmd == Cmd.WRITE_MEM)),
            is_reg.eq((cmd == Cmd.READ_REG) | (cmd == Cmd.WRITE_REG)),
            known.eq(is_mem | is_reg | (cmd == Cmd.INFO)),
            unit.eq(Mux(is_reg, 4, 8)),
        ]
        range_ok = Signal()
        end = Signal(34)
        m.d.comb += end.eq(addr + length)
        m.d.comb += range_ok.eq(
            Mux(is_mem, (length != 0) & (length <= self._max_len) & (end <= self._mem_limbs),
                Mux(is_reg, (length == 1) & (addr[:2] == 0) & (addr < (1 << REGMAP.addr_bits)),
                    1)))

        info_limb = Const(VERSION | (self._max_len << 16) | (self._mem_limbs << 32), 64)
        m.d.comb += [self.mem_addr.eq(addr), self.mem_wdata.eq(limb),
                     bus.awaddr.eq(addr), bus.araddr.eq(addr),
                     bus.wdata.eq(limb[32:]), bus.wstrb.eq(0xF)]

        def fail(code, drain):
            m.d.sync += [status.eq(code), rlen.eq(0), idx.eq(0)]
            m.next = "DRAIN" if drain else "REPLY"

        def start_reply(n_units):
            m.d.sync += [rlen.eq(n_units), idx.eq(0)]
            m.next = "REPLY"

        with m.FSM(name="link"):
            with m.State("HUNT"):
                m.d.comb += rx.ready.eq(1)
                with m.If(got & (byte == SYNC)):
                    m.d.sync += [idx.eq(0), crc.eq(0), status.eq(Status.OK)]
                    m.next = "HDR"
            with m.State("HDR"):
                m.d.comb += rx.ready.eq(1)
                with m.If(got):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx < 7):
                        m.d.sync += crc.eq(crc8_step(crc, byte))
                    with m.Switch(idx):
                        with m.Case(0):
                            m.d.sync += cmd.eq(byte)
                        for i in range(4):
                            with m.Case(1 + i):
                                m.d.sync += addr[8 * i:8 * i + 8].eq(byte)
                        for i in range(2):
                            with m.Case(5 + i):
                                m.d.sync += length[8 * i:8 * i + 8].eq(byte)
                        with m.Case(7):
                            m.d.sync += limb[:8].eq(byte)     # the HCRC, compared next
                            m.next = "CHECK"
                with m.Elif(timed_out):
                    m.d.sync += [cmd.eq(Mux(idx == 0, 0, cmd))]
                    fail(Status.TIMEOUT, drain=False)
            with m.State("CHECK"):
                m.d.sync += [left.eq(length), nbyte.eq(0), crc.eq(0), limb.eq(0),
                             aw_done.eq(0), w_done.eq(0)]
                with m.If(limb[:8] != crc):
                    fail(Status.BAD_CRC, drain=True)
                with m.Elif(~known):
                    fail(Status.BAD_CMD, drain=True)
                with m.Elif(~range_ok):
                    fail(Status.BAD_RANGE, drain=True)
                with m.Elif(cmd == Cmd.INFO):
                    m.d.sync += [limb.eq(info_limb), left.eq(1)]
                    start_reply(1)
                with m.Elif(cmd == Cmd.READ_MEM):
                    start_reply(length)
                with m.Elif(cmd == Cmd.READ_REG):
                    m.next = "REG_AR"
                with m.Else():
                    m.next = "WPAY"
            with m.State("DRAIN"):
                m.d.comb += rx.ready.eq(1)
                with m.If(timed_out & ~got):
                    start_reply(0)

            # --- write payloads: WRITE_MEM limbs, WRITE_REG word ---------
            with m.State("WPAY"):
                m.d.comb += rx.ready.eq(1)
                with m.If(got):
                    m.d.sync += [limb.eq(Cat(limb[8:], byte)), crc.eq(crc8_step(crc, byte)),
                                 nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == unit - 1):
                        m.d.sync += nbyte.eq(0)
                        with m.If(is_mem):
                            m.next = "MEM_WR"
                        with m.Else():
                            m.next = "PCRC"
                with m.Elif(timed_out):
                    fail(Status.TIMEOUT, drain=False)
            with m.State("MEM_WR"):
                m.d.comb += [self.mem_req.eq(1), self.mem_we.eq(1)]
                with m.If(self.mem_ack):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "PCRC"
                    with m.Else():
                        m.next = "WPAY"
            with m.State("PCRC"):
                m.d.comb += rx.ready.eq(1)
                with m.If(got):
                    with m.If(byte != crc):
                        fail(Status.BAD_CRC, drain=False)
                    with m.Elif(is_reg):
                        m.next = "REG_W"
                    with m.Else():
                        start_reply(0)
                with m.Elif(timed_out):
                    fail(Status.TIMEOUT, drain=False)

            # --- AXI4-Lite master ------------------------------------------
            with m.State("REG_W"):
                m.d.comb += [bus.awvalid.eq(~aw_done), bus.wvalid.eq(~w_done)]
                with m.If(bus.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(bus.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | bus.awready) & (w_done | bus.wready)):
                    m.next = "REG_B"
            with m.State("REG_B"):
                m.d.comb += bus.bready.eq(1)
                with m.If(bus.bvalid):
                    with m.If(bus.bresp != 0):
                        m.d.sync += status.eq(Status.BUS_ERROR)
                    start_reply(0)
            with m.State("REG_AR"):
                m.d.comb += bus.arvalid.eq(1)
                with m.If(bus.arready):
                    m.next = "REG_R"
            with m.State("REG_R"):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += [limb.eq(bus.rdata), left.eq(1)]
                    with m.If(bus.rresp != 0):
                        m.d.sync += status.eq(Status.BUS_ERROR)
                        start_reply(0)
                    with m.Else():
                        start_reply(1)

            # --- reply -------------------------------------------------------
            with m.State("REPLY"):
                # SYNC, CMD, STATUS, LEN lo, LEN hi, HCRC
                n = Mux(status == Status.OK, rlen, 0)
                out = Signal(8)
                with m.Switch(idx):
                    with m.Case(0):
                        m.d.comb += out.eq(SYNC)
                    with m.Case(1):
                        m.d.comb += out.eq(cmd)
                    with m.Case(2):
                        m.d.comb += out.eq(status)
                    with m.Case(3):
                        m.d.comb += out.eq(n[:8])
                    with m.Case(4):
                        m.d.comb += out.eq(n[8:])
                    with m.Default():
                        m.d.comb += out.eq(crc)
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(out)]
                with m.If(tx.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 0):
                        m.d.sync += crc.eq(0)
                    with m.Elif(idx < 5):
                        m.d.sync += crc.eq(crc8_step(crc, out))
                    with m.Else():
                        m.d.sync += [crc.eq(0), nbyte.eq(0)]
                        with m.If(status != Status.OK):
                            m.d.sync += self.errors.eq(self.errors + (self.errors != 0xFFFF))
                            m.next = "HUNT"
                        with m.Elif(n == 0):
                            m.next = "HUNT"
                        with m.Elif(cmd == Cmd.READ_MEM):
                            m.next = "MEM_RD"
                        with m.Else():
                            m.next = "TX_PAY"
            with m.State("MEM_RD"):
                m.d.comb += self.mem_req.eq(1)
                with m.If(self.mem_ack):
                    m.d.sync += addr.eq(addr + 1)
                    m.next = "MEM_RD_DATA"
            with m.State("MEM_RD_DATA"):
                m.d.sync += limb.eq(self.mem_rdata)
                m.next = "TX_PAY"
            with m.State("TX_PAY"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(limb[:8])]
                with m.If(tx.ready):
                    m.d.sync += [limb.eq(limb >> 8), crc.eq(crc8_step(crc, limb[:8])),
                                 nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == unit - 1):
                        m.d.sync += [nbyte.eq(0), left.eq(left - 1)]
                        with m.If(left == 1):
                            m.next = "TX_PCRC"
                        with m.Elif(cmd == Cmd.READ_MEM):
                            m.next = "MEM_RD"
            with m.State("TX_PCRC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(crc)]
                with m.If(tx.ready):
                    m.next = "HUNT"
        return m
