"""Properties of the AXI4-Lite control slave (:class:`hefl.hw.axil_ctrl.AxilCtrl`).

The wrapper plays an AXI4-Lite master that obeys the protocol (AW, W, AR
VALID held until READY, payloads stable: assumed) with arbitrary B/R
backpressure, and drives every hardware-side field input (RO values,
``set`` and ``clear`` pulses) freely. Asserted:

* B and R: VALID held until READY, BRESP / RDATA / RRESP stable meanwhile;
  responses are OKAY (the slave never answers an error).
* Exactly one response per request: a B only for an accepted AW *and* W
  not yet answered, an R only for an accepted AR not yet answered; an AW
  and W pair is answered the next cycle unless a B is pending, an AR the
  next cycle; at most one AW (W) waits unconsumed (the one-entry holding
  registers), so none is lost.
* The register map, read from :data:`hefl.hw.regmap.REGMAP` (no offset or
  field typed here): for every field, its next value from its access kind
  (``RW`` byte-strobed write, ``W1S`` with the hardware clear,
  ``RC`` set by the hardware and cleared by a read of its register,
  ``TOW`` toggled by writing 1 and set by the hardware; a hardware set or
  a host W1S wins), nothing else changes it (unmapped writes are
  ignored), and every read returns the fields at the AR cycle in their
  places (unmapped offsets read 0).

``interrupt = gie & |isr`` and the ``ap_start`` clear on accept are wired in
:mod:`hefl.hw.kernel`, around this slave; :mod:`hefl.flows.formal.kernel_ctrl`
checks them there.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal

from hefl.flows.formal.props import Props
from hefl.hw.axil_ctrl import AxilCtrl, field_port
from hefl.hw.regmap import REGMAP, Access

__all__ = ["AxilFormal", "field_update"]


def field_update(access, q, *, write_bits, write_mask, write_hit, read_hit, hw_set, hw_clear):
    """The next value of a field of kind ``access`` (the register map's semantics, as spec).

    ``write_bits``/``write_mask`` are the field's bits of the written word
    and of the byte-strobe mask; ``write_hit``/``read_hit`` say that the
    write or read of this cycle addresses the field's register.
    """
    w = len(q)
    hit = write_hit.replicate(w)
    if access is Access.RW:
        return Mux(write_hit, (q & ~write_mask) | (write_bits & write_mask), q)
    if access is Access.W1S:
        return (q & ~hw_clear) | (write_bits & write_mask & hit)
    if access is Access.RC:
        return (q & ~read_hit.replicate(w)) | hw_set
    if access is Access.TOW:
        return (q ^ (write_bits & write_mask & hit)) | hw_set
    raise ValueError(f"Field access {access} has no stored value")


class AxilFormal(Elaboratable):
    """Formal wrapper of :class:`~hefl.hw.axil_ctrl.AxilCtrl` (see the module docstring).

    Parameters
    ----------
    dut : AxilCtrl, optional
        The slave to check (a deliberately broken subclass in the mutation
        tests); by default ``AxilCtrl(regmap=regmap)``.
    regmap : RegisterMap
        The map the properties are derived from.
    parts : tuple of str
        ``"bus"`` (handshakes and responses; k-induction closes) and/or
        ``"regmap"`` (field semantics and read data; bounded: the write
        captured by the wrapper is not linked to the slave's holding
        register by any output, so induction cannot close).
    """

    PARTS = ("bus", "regmap")

    def __init__(self, dut=None, *, regmap=REGMAP, parts=PARTS):
        self.regmap = regmap
        self.dut = dut if dut is not None else AxilCtrl(regmap=regmap)
        if not set(parts) <= set(self.PARTS):
            raise ValueError(f"Parts must be among {self.PARTS}, not {parts!r}")
        self.parts = tuple(parts)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        bus = dut.bus
        p = Props(m)
        ab = self.regmap.addr_bits

        # --- the master: free, within the protocol --------------------------
        for n in ("awvalid", "awaddr", "wvalid", "wdata", "wstrb", "bready",
                  "arvalid", "araddr", "rready"):
            m.d.comb += getattr(bus, n).eq(p.free(len(getattr(bus, n)), f"m_{n}"))
        aw = p.source_rules("aw", bus.awvalid, bus.awready, [bus.awaddr], by_dut=False)
        wh = p.source_rules("w", bus.wvalid, bus.wready, [bus.wdata, bus.wstrb], by_dut=False)
        ar = p.source_rules("ar", bus.arvalid, bus.arready, [bus.araddr], by_dut=False)
        b = p.source_rules("b", bus.bvalid, bus.bready, [bus.bresp], by_dut=True)
        r = p.source_rules("r", bus.rvalid, bus.rready, [bus.rdata, bus.rresp], by_dut=True)
        p.assert_("b_okay", ~bus.bvalid | (bus.bresp == 0))
        p.assert_("r_okay", ~bus.rvalid | (bus.rresp == 0))

        # --- hardware side: every input free ----------------------------------
        for reg in self.regmap:
            for f in reg.fields:
                port = field_port(reg, f)
                for suffix in ("", "_set", "_clear"):
                    sig = getattr(dut, port + suffix, None)
                    if sig is not None and (suffix or f.access is Access.RO):
                        m.d.comb += sig.eq(p.free(f.width, f"hw_{port}{suffix}"))

        if "bus" in self.parts:
            self._responses(m, p, bus, aw, wh, b, ar, r)
        if "regmap" in self.parts:
            self._register_map(m, p, bus, aw, wh, ar, ab)
        return m

    def _responses(self, m, p, bus, aw, wh, b, ar, r):
        """Exactly one B per AW+W pair and one R per AR, in bounded time."""
        # Requests accepted and not yet answered (small counters: the slave
        # holds one of each; overflow shows as a failed bound first).
        aw_open = Signal(range(4))
        w_open = Signal(range(4))
        ar_open = Signal(range(4))
        m.d.sync += [aw_open.eq(aw_open + aw - b), w_open.eq(w_open + wh - b),
                     ar_open.eq(ar_open + ar - r)]
        p.assert_("b_only_for_request", ~bus.bvalid | ((aw_open != 0) & (w_open != 0)))
        p.assert_("r_only_for_request", ar_open == bus.rvalid.as_unsigned())
        # The occupancy, exactly: one holding register per channel (READY low
        # while full) plus the request whose B is pending. This bounds the
        # counts (nothing piles up, nothing is lost) and is what lets
        # induction close.
        p.assert_("aw_occupancy", aw_open == (~bus.awready).as_unsigned() + bus.bvalid)
        p.assert_("w_occupancy", w_open == (~bus.wready).as_unsigned() + bus.bvalid)
        p.assert_("ar_occupancy", bus.arready == ~bus.rvalid)
        # A complete pair with no B pending is answered the next cycle.
        pair_waits = (aw_open != 0) & (w_open != 0) & ~bus.bvalid
        p.assert_("b_next_cycle", ~p.was(pair_waits, "pair_waits") | bus.bvalid)
        p.cover("two_writes_outstanding", (aw_open == 2) & (w_open == 2))
        p.cover("b_backpressure", p.was(bus.bvalid & ~bus.bready, "b_stalled") & bus.bvalid)
        p.cover("r_backpressure", p.was(bus.rvalid & ~bus.rready, "r_stalled") & bus.rvalid)

    def _register_map(self, m, p, bus, aw, wh, ar, ab):
        """Every field's next value and every read word, from the register map."""
        dut = self.dut
        # The write being applied: AW and W captured at their handshakes; the
        # write takes effect in the cycle B rises.
        cap_addr = Signal(ab)
        cap_data = Signal(32)
        cap_strb = Signal(4)
        with m.If(aw):
            m.d.sync += cap_addr.eq(bus.awaddr)
        with m.If(wh):
            m.d.sync += [cap_data.eq(bus.wdata), cap_strb.eq(bus.wstrb)]
        wrote = bus.bvalid & ~p.was(bus.bvalid, "bvalid_before") & ~p.past_rst
        # cap_* still hold the applied write: no new AW/W is accepted in the
        # cycle the pair is consumed (awready/wready are low while held), so
        # the values seen now are the last cycle's.
        w_addr, w_data, w_strb = p.past(cap_addr, "w_addr"), p.past(cap_data, "w_data"), \
            p.past(cap_strb, "w_strb")
        w_mask = Cat(*(w_strb[i].replicate(8) for i in range(4)))
        rd_addr = p.past(bus.araddr, "rd_addr")
        read = p.was(ar, "read")

        def hit(addr, reg):
            return addr[2:] == reg.offset >> 2

        word = Const(0, 32)
        for reg in self.regmap:
            reg_word = Const(0, 32)
            for f in reg.fields:
                port = field_port(reg, f)
                q = getattr(dut, port)
                reg_word = reg_word | (q.as_unsigned() << f.lsb)
                if f.access is Access.RO:
                    continue
                sl = slice(f.lsb, f.lsb + f.width)
                prev = p.past(q, f"prev_{port}")
                nxt = field_update(
                    f.access, prev,
                    write_bits=w_data[sl], write_mask=w_mask[sl],
                    write_hit=wrote & hit(w_addr, reg),
                    read_hit=read & hit(rd_addr, reg),
                    hw_set=p.past(getattr(dut, f"{port}_set", Const(0, f.width)), f"set_{port}"),
                    hw_clear=p.past(getattr(dut, f"{port}_clear", Const(0, f.width)),
                                    f"clear_{port}"))
                p.assert_(f"field_{port}", p.past_rst | (q == nxt))
            word = Mux(hit(bus.araddr, reg), reg_word, word)
        # Unmapped offsets read 0 (`word` keeps its 0 when no register hits).
        p.assert_("read_word", ~read | (bus.rdata == p.past(word, "word_at_ar")))
        for reg in self.regmap:
            p.cover(f"read_{reg.name}", read & hit(rd_addr, reg))
        ctrl = self.regmap.reg("ctrl")
        p.cover("write_ap_start", wrote & hit(w_addr, ctrl) & w_data[ctrl.field("ap_start").lsb])
        p.cover("write_isr", wrote & hit(w_addr, self.regmap.reg("isr")) & (w_data != 0))
