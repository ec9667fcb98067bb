"""AXI4 burst master moving 64-bit limbs between streams and memory.

The kernel thinks in 64-bit limbs (:data:`hefl.hw.regmap.LAYOUT`); the bus
is ``DW`` bits wide (64 in simulation, 512 on Alveo). This component turns a
*command* ``{addr, limbs}`` (``addr`` a byte address, limb-aligned) into
bursts and converts between beats and limbs on the way.

Read side
---------
``rd_cmd`` → bursts on AR; R beats are unpacked into ``rd_data`` limbs in
address order (leading limbs of the first beat and trailing limbs of the
last are dropped). One command at a time: ``rd_cmd.ready`` is high only when
the previous command has been delivered completely. ARs are issued ahead of
the consumer, but never more than ``read_credit`` beats beyond what has been
received, so a bad descriptor cannot make the kernel read far past its
buffer. ``rd_abort`` stops the command: no new AR is issued and the beats
still in flight are received and dropped before ``rd_busy`` falls.

Write side
----------
``wr_cmd`` + ``wr_data`` limbs → for each burst one AW, then its W beats
(limbs packed into beats, ``wstrb`` covering exactly the limbs written, so
a result need not start on a beat boundary). B responses are counted;
``wr_busy`` stays high until every B of every command has arrived, which is
what the kernel waits for before raising ``ap_done``.

Bursts
------
INCR bursts of full-width beats (``axsize = log2(DW/8)``), at most
``max_burst`` beats (≤ 256) and never crossing a 4 KiB boundary (AXI4
rule): burst beats = min(max_burst, beats left, beats to the next 4 KiB
boundary). All transactions use ID 0, so R data returns in order.
``bresp``/``rresp`` errors are recorded in the sticky ``bus_error`` output
(cleared by ``clear_error``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Axi4Signature", "AxiMaster", "axi4_members", "CommandLayout"]

#: Limb width: the buffer format's unit (hefl.hw.regmap.LAYOUT.limb_bits).
LIMB_BITS = 64
#: AXI4: no burst may cross a 4 KiB boundary.
BOUNDARY = 4096


def axi4_members(data_bits, addr_bits=64):
    """``(name, direction seen by the master, width)`` of the AXI4 signals used.

    The 1-bit IDs are tied to 0 (one ID, in-order responses); they are there
    because AXI verification IP (cocotbext-axi) and interconnects expect them.
    """
    return (
        ("awid", "out", 1), ("bid", "in", 1), ("arid", "out", 1), ("rid", "in", 1),
        ("awvalid", "out", 1), ("awready", "in", 1), ("awaddr", "out", addr_bits),
        ("awlen", "out", 8), ("awsize", "out", 3), ("awburst", "out", 2),
        ("wvalid", "out", 1), ("wready", "in", 1), ("wdata", "out", data_bits),
        ("wstrb", "out", data_bits // 8), ("wlast", "out", 1),
        ("bvalid", "in", 1), ("bready", "out", 1), ("bresp", "in", 2),
        ("arvalid", "out", 1), ("arready", "in", 1), ("araddr", "out", addr_bits),
        ("arlen", "out", 8), ("arsize", "out", 3), ("arburst", "out", 2),
        ("rvalid", "in", 1), ("rready", "out", 1), ("rdata", "in", data_bits),
        ("rresp", "in", 2), ("rlast", "in", 1),
    )


class Axi4Signature(wiring.Signature):
    """An AXI4 bus (1-bit IDs tied to 0; no cache, prot, qos or lock) as seen by the master."""

    def __init__(self, data_bits, addr_bits=64):
        super().__init__({n: (Out if d == "out" else In)(w)
                          for n, d, w in axi4_members(data_bits, addr_bits)})


#: A transfer command: byte address (limb-aligned) and number of 64-bit limbs.
CommandLayout = data.StructLayout({"addr": 64, "limbs": 32})


class AxiMaster(wiring.Component):
    """Limb-stream ↔ AXI4 burst engine (see the module docstring).

    Parameters
    ----------
    data_bits : int
        AXI data width ``DW``: a power of two, 64 … 1024.
    max_burst : int
        Longest burst in beats, 1 … 256.
    read_credit : int, optional
        Most beats requested but not yet received; defaults to
        ``2 * max_burst``.

    Attributes
    ----------
    bus : Axi4Signature
        The ``m_axi`` port.
    rd_cmd, wr_cmd : stream of CommandLayout, in
    rd_data : stream of 64-bit limbs, out
    wr_data : stream of 64-bit limbs, in
    rd_abort : In(1)
        Pulse: abandon the read command in progress.
    rd_busy, wr_busy : Out(1)
    bus_error : Out(1)
        Sticky: some response was not OKAY.
    clear_error : In(1)
    """

    def __init__(self, *, data_bits=64, max_burst=256, read_credit=None):
        if (not isinstance(data_bits, int) or data_bits < LIMB_BITS or data_bits > 1024
                or data_bits & (data_bits - 1)):
            raise TypeError(f"Data width must be a power of two from 64 to 1024, not {data_bits!r}")
        if not isinstance(max_burst, int) or not 1 <= max_burst <= 256:
            raise TypeError(f"Burst length must be an integer from 1 to 256, not {max_burst!r}")
        if read_credit is None:
            read_credit = 2 * max_burst
        if not isinstance(read_credit, int) or read_credit < max_burst:
            raise TypeError(f"Read credit must be an integer of at least max_burst, not {read_credit!r}")
        self._data_bits = data_bits
        self._max_burst = max_burst
        self._read_credit = read_credit
        super().__init__({
            "bus": Out(Axi4Signature(data_bits)),
            "rd_cmd": In(stream.Signature(CommandLayout)),
            "rd_data": Out(stream.Signature(LIMB_BITS)),
            "rd_abort": In(1),
            "rd_busy": Out(1),
            "wr_cmd": In(stream.Signature(CommandLayout)),
            "wr_data": In(stream.Signature(LIMB_BITS)),
            "wr_busy": Out(1),
            "bus_error": Out(1),
            "clear_error": In(1),
        })

    @property
    def data_bits(self):
        return self._data_bits

    @property
    def max_burst(self):
        return self._max_burst

    def _burst_len(self, m, addr, beats_left, name):
        """Beats of the next burst from ``addr`` with ``beats_left`` to go."""
        bb = self._data_bits // 8
        to_boundary = Signal(range(BOUNDARY // bb + 1), name=f"{name}_to_4k")
        m.d.comb += to_boundary.eq((BOUNDARY - addr[:12]) >> (bb.bit_length() - 1))
        length = Signal(range(self._max_burst + 1), name=f"{name}_len")
        capped = Mux(beats_left > self._max_burst, self._max_burst, beats_left)
        m.d.comb += length.eq(Mux(capped > to_boundary, to_boundary, capped))
        return length

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        dw = self._data_bits
        bb = dw // 8
        lpb = dw // LIMB_BITS                  # limbs per beat
        lb = (lpb - 1).bit_length()            # log2(limbs per beat)
        bb_log = bb.bit_length() - 1
        size = bb_log

        m.d.comb += [
            bus.awid.eq(0), bus.arid.eq(0),
            bus.awsize.eq(size), bus.arsize.eq(size),
            bus.awburst.eq(1), bus.arburst.eq(1),   # INCR
            bus.bready.eq(1),
        ]

        def limb_offset(addr):
            # Limb index of a byte address inside its beat.
            return addr[3:3 + lb] if lb else Const(0, 1)

        # ------------------------------------------------------------ reads
        ar_active = Signal()
        ar_addr = Signal(64)
        ar_left = Signal(33)
        outstanding = Signal(range(self._read_credit + 1))
        r_active = Signal()
        r_skip = Signal(max(lb, 1))
        r_left = Signal(32)
        aborting = Signal()
        buf = Signal(dw)
        buf_valid = Signal()
        buf_idx = Signal(max(lb, 1))

        m.d.comb += self.rd_busy.eq(ar_active | bus.arvalid | r_active | buf_valid
                                    | (outstanding != 0) | aborting)
        m.d.comb += self.rd_cmd.ready.eq(~self.rd_busy)
        with m.If(self.rd_cmd.valid & self.rd_cmd.ready):
            cmd = self.rd_cmd.payload
            off = limb_offset(cmd.addr)
            beats = (cmd.limbs + off + (lpb - 1)) >> lb
            m.d.sync += [
                ar_addr.eq(Cat(Const(0, bb_log), cmd.addr[bb_log:])),
                ar_left.eq(beats),
                ar_active.eq(cmd.limbs != 0),
                r_skip.eq(off),
                r_left.eq(cmd.limbs),
                r_active.eq(cmd.limbs != 0),
            ]

        # The burst length is registered: address → 4 KiB distance → length →
        # credit check → next address was the kernel's longest path on ECP5.
        # ar_len_ok drops for the cycle after ar_addr/ar_left change, while the
        # registered length still describes the old values (one cycle per burst).
        ar_len_c = self._burst_len(m, ar_addr, ar_left, "ar")
        ar_len = Signal.like(ar_len_c, name="ar_len_r")
        ar_last = Signal()           # registered ar_left == ar_len
        ar_len_ok = Signal()
        issue = Signal()
        m.d.sync += [ar_len.eq(ar_len_c), ar_last.eq(ar_left == ar_len_c),
                     ar_len_ok.eq(~((self.rd_cmd.valid & self.rd_cmd.ready) | issue))]
        m.d.comb += issue.eq(ar_active & ar_len_ok & ~bus.arvalid & ~aborting & ~self.rd_abort
                             & (outstanding + ar_len <= self._read_credit))
        r_beat = Signal()
        m.d.comb += r_beat.eq(bus.rvalid & bus.rready)
        m.d.sync += outstanding.eq(outstanding + Mux(issue, ar_len, 0) - r_beat)
        with m.If(issue):
            # Registered AR: address and length are stable while arvalid is high.
            m.d.sync += [
                bus.arvalid.eq(1), bus.araddr.eq(ar_addr), bus.arlen.eq(ar_len - 1),
                ar_addr.eq(ar_addr + (ar_len << bb_log)),
                ar_left.eq(ar_left - ar_len),
            ]
            with m.If(ar_last):
                m.d.sync += ar_active.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.arvalid.eq(0)

        m.d.comb += bus.rready.eq(~buf_valid | aborting)
        with m.If(r_beat):
            with m.If(bus.rresp != 0):
                m.d.sync += self.bus_error.eq(1)
            with m.If(~aborting):
                m.d.sync += [buf.eq(bus.rdata), buf_valid.eq(1)]

        limb = buf.word_select(buf_idx, LIMB_BITS) if lb else buf[:LIMB_BITS]
        with m.If(buf_valid & ~aborting):
            with m.If(r_skip != 0):
                # Leading limbs of the first beat, before the command's address.
                m.d.sync += [r_skip.eq(r_skip - 1), buf_idx.eq(buf_idx + 1)]
            with m.Else():
                m.d.comb += [self.rd_data.valid.eq(1), self.rd_data.payload.eq(limb)]
                with m.If(self.rd_data.ready):
                    m.d.sync += [r_left.eq(r_left - 1), buf_idx.eq(buf_idx + 1)]
                    with m.If((buf_idx == lpb - 1) | (r_left == 1)):
                        m.d.sync += [buf_valid.eq(0), buf_idx.eq(0)]
                    with m.If(r_left == 1):
                        m.d.sync += r_active.eq(0)

        with m.If(self.rd_abort & self.rd_busy):
            m.d.sync += [aborting.eq(1), ar_active.eq(0), r_active.eq(0),
                         buf_valid.eq(0), buf_idx.eq(0), r_skip.eq(0)]
        with m.If(aborting & ~bus.arvalid & ~issue & (outstanding == 0)):
            m.d.sync += aborting.eq(0)

        # ----------------------------------------------------------- writes
        w_active = Signal()          # a command is being transferred
        aw_addr = Signal(64)
        w_left_beats = Signal(33)    # beats of the command not yet covered by an AW
        w_phase = Signal()           # the AW of the current burst was accepted
        burst_left = Signal(range(self._max_burst + 1))
        w_left = Signal(32)          # limbs still to accept
        w_pos = Signal(max(lb, 1))
        wbuf = Signal(dw)
        wstrb = Signal(bb)
        b_pending = Signal(16)

        m.d.comb += [bus.wdata.eq(wbuf), bus.wstrb.eq(wstrb)]
        m.d.comb += self.wr_cmd.ready.eq(~w_active)
        with m.If(self.wr_cmd.valid & self.wr_cmd.ready):
            cmd = self.wr_cmd.payload
            off = limb_offset(cmd.addr)
            m.d.sync += [
                aw_addr.eq(Cat(Const(0, bb_log), cmd.addr[bb_log:])),
                w_left_beats.eq((cmd.limbs + off + (lpb - 1)) >> lb),
                w_left.eq(cmd.limbs),
                w_pos.eq(off),
                w_active.eq(cmd.limbs != 0),
                w_phase.eq(0),
            ]

        # Registered like ar_len (see above).
        aw_len_c = self._burst_len(m, aw_addr, w_left_beats, "aw")
        aw_len = Signal.like(aw_len_c, name="aw_len_r")
        aw_len_ok = Signal()
        aw_issue = Signal()
        m.d.sync += [aw_len.eq(aw_len_c),
                     aw_len_ok.eq(~((self.wr_cmd.valid & self.wr_cmd.ready) | aw_issue))]
        m.d.comb += aw_issue.eq(w_active & aw_len_ok & ~w_phase & ~bus.awvalid)
        with m.If(aw_issue):
            m.d.sync += [
                bus.awvalid.eq(1), bus.awaddr.eq(aw_addr), bus.awlen.eq(aw_len - 1),
                aw_addr.eq(aw_addr + (aw_len << bb_log)),
                w_left_beats.eq(w_left_beats - aw_len),
                burst_left.eq(aw_len),
            ]
        aw_hs = Signal()
        m.d.comb += aw_hs.eq(bus.awvalid & bus.awready)
        with m.If(aw_hs):
            m.d.sync += [bus.awvalid.eq(0), w_phase.eq(1)]

        m.d.comb += self.wr_data.ready.eq(w_phase & ~bus.wvalid & (w_left != 0))
        with m.If(self.wr_data.valid & self.wr_data.ready):
            if lb:
                m.d.sync += [wbuf.word_select(w_pos, LIMB_BITS).eq(self.wr_data.payload),
                             wstrb.word_select(w_pos, 8).eq(0xFF)]
            else:
                m.d.sync += [wbuf.eq(self.wr_data.payload), wstrb.eq(0xFF)]
            m.d.sync += [w_left.eq(w_left - 1), w_pos.eq(w_pos + 1)]
            with m.If((w_pos == lpb - 1) | (w_left == 1)):
                m.d.sync += [bus.wvalid.eq(1), bus.wlast.eq(burst_left == 1), w_pos.eq(0)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [bus.wvalid.eq(0), bus.wlast.eq(0), wstrb.eq(0),
                         burst_left.eq(burst_left - 1)]
            with m.If(burst_left == 1):
                m.d.sync += w_phase.eq(0)
                with m.If(w_left_beats == 0):
                    m.d.sync += w_active.eq(0)

        b_hs = Signal()
        m.d.comb += b_hs.eq(bus.bvalid & bus.bready)
        m.d.sync += b_pending.eq(b_pending + aw_hs - b_hs)
        with m.If(b_hs & (bus.bresp != 0)):
            m.d.sync += self.bus_error.eq(1)
        m.d.comb += self.wr_busy.eq(w_active | bus.awvalid | (b_pending != 0))

        with m.If(self.clear_error):
            m.d.sync += self.bus_error.eq(0)
        return m
