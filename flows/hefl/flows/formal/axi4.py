"""Properties of the AXI4 burst master (:class:`hefl.hw.axi_master.AxiMaster`).

The wrapper plays the memory and the kernel, both free within their
rules: the slave's READYs are arbitrary; its R beats come only for beats
requested and not yet returned, its B responses only for bursts whose W
beats are complete, each held until taken with a stable payload and any
RRESP/BRESP; commands and write limbs obey the stream rule (held until
READY, payload stable), command addresses are limb-aligned (the master's
contract), everything else (lengths, addresses, ``rd_data`` readiness,
``rd_abort``, ``clear_error``) is arbitrary. Asserted, on the bus alone
(so the properties carry over to a master that moves a full beat a
cycle):

* AR, AW, W: VALID held until READY; address, length, size, burst, data,
  strobes and WLAST stable meanwhile.
* Every burst: INCR, full-width beats (``axsize = log2(DW/8)``), the
  address aligned to a beat, at most ``max_burst`` (≤ 256) beats, never
  crossing a 4 KiB boundary.
* W: beats only inside a burst whose AW was raised (W may precede its AW
  handshake, as AXI4 allows), in AW order, at most three bursts open,
  WLAST exactly on its last beat; each beat strobes whole limbs, and the strobed limbs add up
  to the limbs the write commands asked for.
* Outstanding counts: read beats requested and not yet returned stay within
  ``read_credit`` (never negative: the slave cannot return unasked beats,
  and the master never asks past the credit); ``rd_busy`` while any read
  beat or limb is owed, ``wr_busy`` while any W beat or B is owed.
* Reads deliver exactly the limbs commanded (unless aborted).
* Every error response reaches ``bus_error`` the next cycle (unless
  ``clear_error`` in that same cycle), which then stays set until
  ``clear_error``; it is never set without one.
"""

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal, Value

from hefl.flows.formal.props import Props
from hefl.hw.axi_master import BOUNDARY, AxiMaster

__all__ = ["AxiMasterFormal"]

#: Bytes of one limb (the command and data-stream unit).
_LIMB_BYTES = 8
#: Bursts accepted on AW whose W beats are not all sent: the master's
#: two-entry burst-length FIFO plus the last beat waiting in the W register.
_MAX_OPEN = 3


def _popcount(bits):
    return sum((bits[i].as_unsigned() for i in range(len(bits))), start=0)


class AxiMasterFormal(Elaboratable):
    """Formal wrapper of :class:`~hefl.hw.axi_master.AxiMaster` (see the module docstring).

    Parameters
    ----------
    side : str
        ``"read"`` (AR/R, ``rd_*``) or ``"write"`` (AW/W/B, ``wr_*``): one
        check per side, the other side idle (they share nothing but
        ``bus_error``), which keeps each tractable to a deeper bound.
    dut : AxiMaster, optional
        The master to check; by default ``AxiMaster(data_bits=data_bits,
        max_burst=max_burst)``.
    data_bits, max_burst : int
        Its parameters (read back from ``dut`` when given).
    max_limbs, addr_span : int
        Commands move fewer than ``max_limbs`` limbs within the first
        ``addr_span`` bytes: the solver's search stays tractable to a useful
        depth while every 4 KiB boundary case (page offsets, bursts split
        at the boundary and at ``max_burst``) remains reachable.
    """

    SIDES = ("read", "write")

    def __init__(self, dut=None, *, side, data_bits=64, max_burst=4, max_limbs=16,
                 addr_span=1 << 16):
        if side not in self.SIDES:
            raise ValueError(f"Side must be one of {self.SIDES}, not {side!r}")
        self.side = side
        self.dut = dut if dut is not None else AxiMaster(data_bits=data_bits, max_burst=max_burst)
        self.data_bits = self.dut.data_bits
        self.max_burst = self.dut.max_burst
        self.read_credit = self.dut._read_credit
        self.max_limbs = max_limbs
        self.addr_span = addr_span

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        bus = dut.bus
        p = Props(m)
        read = self.side == "read"
        # The other side is idle: no commands, its slave channels quiet.
        quiet = {"read": ("wr_cmd", "wr_data"), "write": ("rd_cmd",)}[self.side]
        for n in ("arready", "rvalid", "rdata", "rresp", "rlast") if read else \
                 ("awready", "wready", "bvalid", "bresp"):
            m.d.comb += getattr(bus, n).eq(p.free(len(getattr(bus, n)), f"s_{n}"))
        for name in ("rd_cmd", "wr_cmd", "wr_data"):
            st = getattr(dut, name)
            if name not in quiet:
                m.d.comb += [st.valid.eq(p.free(1, f"{name}_valid")),
                             st.payload.eq(p.free(len(Value.cast(st.payload)), f"{name}_payload"))]
        for sig, name in ((dut.rd_data.ready, "rd_ready"), (dut.rd_abort, "rd_abort"),
                          (dut.clear_error, "clear_error")):
            m.d.comb += sig.eq(p.free(1, name))
        m.d.comb += [bus.rid.eq(0), bus.bid.eq(0)]

        cmd = dut.rd_cmd if read else dut.wr_cmd
        took = p.source_rules("cmd", cmd.valid, cmd.ready, [Value.cast(cmd.payload)],
                              by_dut=False)
        p.assume("cmd_aligned", cmd.payload.addr[:3] == 0)
        p.assume("cmd_bounded", (cmd.payload.limbs < self.max_limbs)
                 & (cmd.payload.addr < self.addr_span))
        self._bursts(p, bus, "ar" if read else "aw")
        if read:
            ar = p.source_rules("ar", bus.arvalid, bus.arready,
                                [bus.araddr, bus.arlen, bus.arsize, bus.arburst], by_dut=True)
            r = p.source_rules("r", bus.rvalid, bus.rready, [bus.rdata, bus.rresp, bus.rlast],
                               by_dut=False)
            self._reads(m, p, dut, bus, ar, r, took)
            self._errors(m, p, dut, r & (bus.rresp != 0), "read")
        else:
            wd = p.source_rules("wr_data", dut.wr_data.valid, dut.wr_data.ready,
                                [dut.wr_data.payload], by_dut=False)
            aw = p.source_rules("aw", bus.awvalid, bus.awready,
                                [bus.awaddr, bus.awlen, bus.awsize, bus.awburst], by_dut=True)
            w = p.source_rules("w", bus.wvalid, bus.wready, [bus.wdata, bus.wstrb, bus.wlast],
                               by_dut=True)
            b = p.source_rules("b", bus.bvalid, bus.bready, [bus.bresp], by_dut=False)
            self._writes(m, p, dut, bus, aw, w, b, took, wd)
            self._errors(m, p, dut, b & (bus.bresp != 0), "write")
        return m

    def _bursts(self, p, bus, ch):
        """INCR, full beats, aligned, ≤ max_burst beats, inside one 4 KiB page."""
        size = (self.data_bits // 8).bit_length() - 1
        if True:
            valid, addr, length, asize, burst = (getattr(bus, f"{ch}{n}") for n in
                                                 ("valid", "addr", "len", "size", "burst"))
            end = addr[:12] + ((length + 1) << size)
            p.assert_(f"{ch}_incr_full_beats", ~valid | ((burst == 1) & (asize == size)))
            p.assert_(f"{ch}_aligned", ~valid | (addr[:size] == 0))
            p.assert_(f"{ch}_max_burst", ~valid | (length < self.max_burst))
            p.assert_(f"{ch}_no_4k_crossing", ~valid | (end <= BOUNDARY))
            p.cover(f"{ch}_ends_at_4k", valid & (end == BOUNDARY) & (length != 0))

    def _reads(self, m, p, dut, bus, ar, r, rc):
        """Beats owed by the slave, limbs owed to the kernel, and the read credit."""
        r_out = Signal(range(self.read_credit + 2 * 256 + 1))    # requested, not returned
        m.d.sync += r_out.eq(r_out + Mux(ar, bus.arlen + 1, 0) - r)
        p.assume("r_only_when_requested", ~bus.rvalid | (r_out != 0))
        p.assert_("read_credit", r_out <= self.read_credit)
        p.assert_("rd_busy_while_beats_owed", (r_out == 0) | dut.rd_busy)
        # Limbs owed to the kernel by the current command; an abort cancels them.
        rd_left = Signal(range(self.max_limbs + 1))
        aborting = Signal()
        got = dut.rd_data.valid & dut.rd_data.ready
        with m.If(got):
            m.d.sync += rd_left.eq(rd_left - 1)
        with m.If(rc):
            m.d.sync += rd_left.eq(dut.rd_cmd.payload.limbs)
        with m.If(dut.rd_abort & dut.rd_busy):
            m.d.sync += [rd_left.eq(0), aborting.eq(1)]
        with m.Elif(~dut.rd_busy):
            m.d.sync += aborting.eq(0)
        p.assert_("rd_cmd_ready_when_done", dut.rd_cmd.ready == ~dut.rd_busy)
        p.assert_("rd_no_extra_limb", ~dut.rd_data.valid | (rd_left != 0))
        p.assert_("rd_busy_while_limbs_owed", (rd_left == 0) | dut.rd_busy)
        p.cover("read_command_done", p.was(got & (rd_left == 1), "last_limb") & ~aborting)
        p.cover("read_aborted", p.was(aborting, "was_aborting") & ~dut.rd_busy)
        p.cover("second_ar_in_flight", ar & (r_out != 0))

    def _writes(self, m, p, dut, bus, aw, w, b, wc, wd):
        """W beats inside accepted bursts, WLAST, strobed limbs, B bookkeeping."""
        # W may run ahead of its AW's handshake (AXI4 allows W before AW; the
        # master raises W once it has raised the burst's AWVALID), so the
        # bursts are followed in issue order: W is in burst number "W lasts
        # so far"; open_bursts = AW handshakes - W lasts (-1: the burst on
        # AW has had all its W beats already). The lengths of accepted
        # bursts whose W is not complete wait in a queue, oldest first.
        open_bursts = Signal(range(-1, _MAX_OPEN + 2))
        # Lengths are at most max_burst (asserted on AW): narrow registers.
        qlen = [Signal(range(self.max_burst + 1), name=f"aw_q{i}") for i in range(_MAX_OPEN + 1)]
        wbeat = Signal(range(self.max_burst + 1))      # W beats sent in the current burst
        w_last = w & bus.wlast
        cur_len = Mux(open_bursts > 0, qlen[0], bus.awlen + 1)
        p.assert_("w_after_its_aw", ~bus.wvalid | (open_bursts > 0)
                  | ((open_bursts == 0) & bus.awvalid))
        p.assert_("at_most_three_bursts_open", open_bursts <= _MAX_OPEN)
        p.assert_("wlast_on_last_beat", ~bus.wvalid | (bus.wlast == (wbeat == cur_len - 1)))
        m.d.sync += open_bursts.eq(open_bursts + aw - w_last)
        with m.If(w):
            m.d.sync += wbeat.eq(Mux(bus.wlast, 0, wbeat + 1))
        pop = w_last & (open_bursts > 0)
        push = aw & ~((open_bursts < 0) | ((open_bursts == 0) & w_last))
        n_q = Mux(open_bursts > 0, open_bursts, 0)     # queue entries
        shifted = [Mux(pop, qlen[i + 1], qlen[i]) for i in range(_MAX_OPEN)] + [qlen[-1]]
        at = n_q - pop                                   # where a pushed length goes
        for i in range(_MAX_OPEN + 1):
            with m.If(push & (at == i)):
                m.d.sync += qlen[i].eq(bus.awlen + 1)
            with m.Else():
                m.d.sync += qlen[i].eq(shifted[i])
        b_owed = Signal(8)          # bursts with AW accepted and W done, B not received
        b_inc = (w_last & (open_bursts > 0)) | (aw & (open_bursts < 0)) \
            | (aw & w_last & (open_bursts == 0))
        m.d.sync += b_owed.eq(b_owed + b_inc - b)
        p.assume("b_only_after_aw_and_wlast", ~bus.bvalid | (b_owed != 0))
        p.assert_("wr_busy_while_owed", ((b_owed == 0) & (open_bursts == 0) & (wbeat == 0))
                  | dut.wr_busy)
        p.cover("w_before_its_aw", bus.wvalid & (open_bursts == 0) & bus.awvalid)
        # Strobes: whole limbs, adding up to the limbs commanded.
        limbs = self.data_bits // 64
        strb_limbs = [bus.wstrb[8 * i:8 * i + 8] for i in range(limbs)]
        p.assert_("w_whole_limbs", ~bus.wvalid | Cat(*((s == 0) | (s == 0xFF)
                                                         for s in strb_limbs)).all())
        p.assert_("w_not_empty", ~bus.wvalid | (bus.wstrb != 0))
        # Limbs commanded and not yet strobed on W (one command at a time:
        # wr_cmd is ready only once the previous one's W beats are out).
        wr_left = Signal(range(2 * self.max_limbs))
        strobed = Signal(range(limbs + 1))
        m.d.comb += strobed.eq(_popcount(Cat(*(s[0] for s in strb_limbs))))
        m.d.sync += wr_left.eq(wr_left + Mux(wc, dut.wr_cmd.payload.limbs, 0)
                               - Mux(w, strobed, 0))
        p.assert_("w_no_extra_limb", ~bus.wvalid | (strobed <= wr_left))
        p.assert_("wr_busy_until_written", (wr_left == 0) | dut.wr_busy)
        p.cover("second_burst", aw & p.was(b_owed != 0, "b_owed_before"))
        p.cover("write_done", p.was(dut.wr_busy, "was_wr_busy") & ~dut.wr_busy)

    def _errors(self, m, p, dut, err, side):
        """SLVERR/DECERR → ``bus_error`` the next cycle, sticky until ``clear_error``."""
        cleared = p.was(dut.clear_error, "was_clear")
        p.assert_("error_reaches_flag", ~p.was(err, "was_err") | cleared | dut.bus_error)
        p.assert_("flag_sticky", ~p.was(dut.bus_error, "was_flag") | cleared | dut.bus_error)
        p.assert_("flag_only_from_error", ~dut.bus_error | p.was(dut.bus_error | err, "flag_src"))
        p.cover(f"{side}_error_flagged", p.was(err, "err_seen") & dut.bus_error)
