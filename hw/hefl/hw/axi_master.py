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

from hefl.hw.regmap import LAYOUT

__all__ = ["Axi4Signature", "AxiMaster", "axi4_members", "CommandLayout"]

#: Limb width: the buffer format's unit (hefl.hw.regmap.LAYOUT.limb_bits).
LIMB_BITS = LAYOUT.limb_bits
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
        beat = _Beat(self._data_bits)
        m.d.comb += [
            bus.awid.eq(0), bus.arid.eq(0),
            bus.awsize.eq(beat.size), bus.arsize.eq(beat.size),
            bus.awburst.eq(1), bus.arburst.eq(1),   # INCR
            bus.bready.eq(1),
        ]
        rd = _ReadRegs(self._data_bits, beat, self._read_credit)
        self._elab_read_address(m, beat, rd)
        self._elab_read_data(m, beat, rd)
        wr = _WriteRegs(self._data_bits, beat, self._max_burst)
        self._elab_write_address(m, beat, wr)
        self._elab_write_data(m, beat, wr)
        with m.If(self.clear_error):
            m.d.sync += self.bus_error.eq(0)
        return m

    def _elab_read_address(self, m, beat, rd):
        """Read command → ARs: one burst issued at most every other cycle.

        A command is taken when nothing of the previous one is left
        (``rd_busy`` low). A burst is issued once its registered length is
        up to date, the previous AR was accepted and the beats requested but
        not received stay within ``read_credit``; AR is registered (address
        and length stable while ``arvalid``).
        """
        bus, cmd = self.bus, self.rd_cmd.payload
        m.d.comb += self.rd_busy.eq(rd.ar_active | bus.arvalid | rd.r_active | rd.buf_valid
                                    | (rd.outstanding != 0) | rd.aborting)
        m.d.comb += self.rd_cmd.ready.eq(~self.rd_busy)
        taken = self.rd_cmd.valid & self.rd_cmd.ready
        with m.If(taken):
            off = beat.limb_offset(cmd.addr)
            m.d.sync += [
                rd.ar_addr.eq(beat.align(cmd.addr)),
                rd.ar_left.eq(beat.count(cmd.limbs, off)),
                rd.ar_active.eq(cmd.limbs != 0),
                rd.r_skip.eq(off),
                rd.r_left.eq(cmd.limbs),
                rd.r_active.eq(cmd.limbs != 0),
            ]

        # The burst length is registered: address → 4 KiB distance → length →
        # credit check → next address was the kernel's longest path on ECP5.
        # ar_len_ok drops for the cycle after ar_addr/ar_left change, while the
        # registered length still describes the old values (one cycle per burst).
        ar_len_c = self._burst_len(m, rd.ar_addr, rd.ar_left, "ar")
        ar_len = Signal.like(ar_len_c, name="ar_len_r")
        ar_last = Signal()           # registered ar_left == ar_len
        ar_len_ok = Signal()
        m.d.sync += [ar_len.eq(ar_len_c), ar_last.eq(rd.ar_left == ar_len_c),
                     ar_len_ok.eq(~(taken | rd.issue))]
        m.d.comb += rd.issue.eq(rd.ar_active & ar_len_ok & ~bus.arvalid & ~rd.aborting
                                & ~self.rd_abort
                                & (rd.outstanding + ar_len <= self._read_credit))
        m.d.sync += rd.outstanding.eq(rd.outstanding + Mux(rd.issue, ar_len, 0) - rd.r_beat)
        with m.If(rd.issue):
            m.d.sync += [
                bus.arvalid.eq(1), bus.araddr.eq(rd.ar_addr), bus.arlen.eq(ar_len - 1),
                rd.ar_addr.eq(rd.ar_addr + (ar_len << beat.size)),
                rd.ar_left.eq(rd.ar_left - ar_len),
            ]
            with m.If(ar_last):
                m.d.sync += rd.ar_active.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.arvalid.eq(0)

    def _elab_read_data(self, m, beat, rd):
        """R beats → ``rd_data`` limbs, and ``rd_abort``.

        A beat is taken into ``buf`` when it is empty, then its limbs leave
        one per cycle of ``rd_data`` readiness (leading limbs of the first
        beat skipped at one per cycle; the buffer frees after its last
        limb, so beats come at most every ``limbs per beat + 1`` cycles).
        While aborting, R beats are taken at once and dropped until none is
        outstanding.
        """
        bus = self.bus
        m.d.comb += rd.r_beat.eq(bus.rvalid & bus.rready)
        m.d.comb += bus.rready.eq(~rd.buf_valid | rd.aborting)
        with m.If(rd.r_beat):
            with m.If(bus.rresp != 0):
                m.d.sync += self.bus_error.eq(1)
            with m.If(~rd.aborting):
                m.d.sync += [rd.buf.eq(bus.rdata), rd.buf_valid.eq(1)]

        if beat.limb_bits:
            limb = rd.buf.word_select(rd.buf_idx, LIMB_BITS)
        else:
            limb = rd.buf[:LIMB_BITS]
        with m.If(rd.buf_valid & ~rd.aborting):
            with m.If(rd.r_skip != 0):
                # Leading limbs of the first beat, before the command's address.
                m.d.sync += [rd.r_skip.eq(rd.r_skip - 1), rd.buf_idx.eq(rd.buf_idx + 1)]
            with m.Else():
                m.d.comb += [self.rd_data.valid.eq(1), self.rd_data.payload.eq(limb)]
                with m.If(self.rd_data.ready):
                    m.d.sync += [rd.r_left.eq(rd.r_left - 1), rd.buf_idx.eq(rd.buf_idx + 1)]
                    with m.If((rd.buf_idx == beat.limbs - 1) | (rd.r_left == 1)):
                        m.d.sync += [rd.buf_valid.eq(0), rd.buf_idx.eq(0)]
                    with m.If(rd.r_left == 1):
                        m.d.sync += rd.r_active.eq(0)

        with m.If(self.rd_abort & self.rd_busy):
            m.d.sync += [rd.aborting.eq(1), rd.ar_active.eq(0), rd.r_active.eq(0),
                         rd.buf_valid.eq(0), rd.buf_idx.eq(0), rd.r_skip.eq(0)]
        with m.If(rd.aborting & ~bus.arvalid & ~rd.issue & (rd.outstanding == 0)):
            m.d.sync += rd.aborting.eq(0)

    def _elab_write_address(self, m, beat, wr):
        """Write command → AWs: the next burst's AW once the previous burst's W beats are out.

        A command is taken when the previous one has sent all its W beats
        (``w_active`` low). The burst length is registered as on the read
        side; AW is registered and its acceptance opens the W phase.
        """
        bus, cmd = self.bus, self.wr_cmd.payload
        m.d.comb += self.wr_cmd.ready.eq(~wr.w_active)
        taken = self.wr_cmd.valid & self.wr_cmd.ready
        with m.If(taken):
            off = beat.limb_offset(cmd.addr)
            m.d.sync += [
                wr.aw_addr.eq(beat.align(cmd.addr)),
                wr.w_left_beats.eq(beat.count(cmd.limbs, off)),
                wr.w_left.eq(cmd.limbs),
                wr.w_pos.eq(off),
                wr.w_active.eq(cmd.limbs != 0),
                wr.w_phase.eq(0),
            ]

        # Registered like ar_len (see _elab_read_address).
        aw_len_c = self._burst_len(m, wr.aw_addr, wr.w_left_beats, "aw")
        aw_len = Signal.like(aw_len_c, name="aw_len_r")
        aw_len_ok = Signal()
        aw_issue = Signal()
        m.d.sync += [aw_len.eq(aw_len_c), aw_len_ok.eq(~(taken | aw_issue))]
        m.d.comb += aw_issue.eq(wr.w_active & aw_len_ok & ~wr.w_phase & ~bus.awvalid)
        with m.If(aw_issue):
            m.d.sync += [
                bus.awvalid.eq(1), bus.awaddr.eq(wr.aw_addr), bus.awlen.eq(aw_len - 1),
                wr.aw_addr.eq(wr.aw_addr + (aw_len << beat.size)),
                wr.w_left_beats.eq(wr.w_left_beats - aw_len),
                wr.burst_left.eq(aw_len),
            ]
        m.d.comb += wr.aw_hs.eq(bus.awvalid & bus.awready)
        with m.If(wr.aw_hs):
            m.d.sync += [bus.awvalid.eq(0), wr.w_phase.eq(1)]

    def _elab_write_data(self, m, beat, wr):
        """``wr_data`` limbs → W beats, and the B responses.

        Limbs are packed into ``wbuf`` one per cycle (``wstrb`` marking
        each); the beat is sent when full or at the command's last limb, and
        packing waits until it was accepted. ``wr_busy`` stays high until
        every AW's B has arrived.
        """
        bus = self.bus
        m.d.comb += [bus.wdata.eq(wr.wbuf), bus.wstrb.eq(wr.wstrb)]
        m.d.comb += self.wr_data.ready.eq(wr.w_phase & ~bus.wvalid & (wr.w_left != 0))
        with m.If(self.wr_data.valid & self.wr_data.ready):
            if beat.limb_bits:
                m.d.sync += [wr.wbuf.word_select(wr.w_pos, LIMB_BITS).eq(self.wr_data.payload),
                             wr.wstrb.word_select(wr.w_pos, 8).eq(0xFF)]
            else:
                m.d.sync += [wr.wbuf.eq(self.wr_data.payload), wr.wstrb.eq(0xFF)]
            m.d.sync += [wr.w_left.eq(wr.w_left - 1), wr.w_pos.eq(wr.w_pos + 1)]
            with m.If((wr.w_pos == beat.limbs - 1) | (wr.w_left == 1)):
                m.d.sync += [bus.wvalid.eq(1), bus.wlast.eq(wr.burst_left == 1),
                             wr.w_pos.eq(0)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [bus.wvalid.eq(0), bus.wlast.eq(0), wr.wstrb.eq(0),
                         wr.burst_left.eq(wr.burst_left - 1)]
            with m.If(wr.burst_left == 1):
                m.d.sync += wr.w_phase.eq(0)
                with m.If(wr.w_left_beats == 0):
                    m.d.sync += wr.w_active.eq(0)

        b_hs = Signal()
        m.d.comb += b_hs.eq(bus.bvalid & bus.bready)
        m.d.sync += wr.b_pending.eq(wr.b_pending + wr.aw_hs - b_hs)
        with m.If(b_hs & (bus.bresp != 0)):
            m.d.sync += self.bus_error.eq(1)
        m.d.comb += self.wr_busy.eq(wr.w_active | bus.awvalid | (wr.b_pending != 0))


class _Beat:
    """A ``DW``-bit beat in bytes and limbs, and the command arithmetic on it."""

    def __init__(self, data_bits):
        self.bytes = data_bits // 8
        self.limbs = data_bits // LIMB_BITS             # limbs per beat
        self.limb_bits = (self.limbs - 1).bit_length()  # log2(limbs per beat)
        self.size = self.bytes.bit_length() - 1         # log2(bytes per beat): axsize

    def limb_offset(self, addr):
        """Limb index of a byte address inside its beat."""
        return addr[3:3 + self.limb_bits] if self.limb_bits else Const(0, 1)

    def align(self, addr):
        """``addr`` rounded down to its beat."""
        return Cat(Const(0, self.size), addr[self.size:])

    def count(self, limbs, off):
        """Beats covering ``limbs`` limbs from limb ``off`` of the first beat."""
        return (limbs + off + (self.limbs - 1)) >> self.limb_bits


class _ReadRegs:
    """State of the read side, shared by its address and data sub-blocks."""

    def __init__(self, data_bits, beat, read_credit):
        lb = max(beat.limb_bits, 1)
        self.ar_active = Signal()
        self.ar_addr = Signal(64)
        self.ar_left = Signal(33)                # beats not yet covered by an AR
        self.outstanding = Signal(range(read_credit + 1))
        self.issue = Signal()                    # an AR is issued this cycle
        self.r_beat = Signal()                   # an R beat is taken this cycle
        self.r_active = Signal()
        self.r_skip = Signal(lb)
        self.r_left = Signal(32)                 # limbs still to deliver
        self.aborting = Signal()
        self.buf = Signal(data_bits)
        self.buf_valid = Signal()
        self.buf_idx = Signal(lb)


class _WriteRegs:
    """State of the write side, shared by its address and data sub-blocks."""

    def __init__(self, data_bits, beat, max_burst):
        self.w_active = Signal()                 # a command is being transferred
        self.aw_addr = Signal(64)
        self.w_left_beats = Signal(33)           # beats of the command not yet covered by an AW
        self.w_phase = Signal()                  # the AW of the current burst was accepted
        self.burst_left = Signal(range(max_burst + 1))
        self.w_left = Signal(32)                 # limbs still to accept
        self.w_pos = Signal(max(beat.limb_bits, 1))
        self.wbuf = Signal(data_bits)
        self.wstrb = Signal(beat.bytes)
        self.b_pending = Signal(16)
        self.aw_hs = Signal()                    # an AW is accepted this cycle
