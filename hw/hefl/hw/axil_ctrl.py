"""AXI4-Lite control slave generated from the register map.

Every register and field of :data:`hefl.hw.regmap.REGMAP` becomes storage
and/or ports here according to its :class:`~hefl.hw.regmap.Access`; no
offset is written in this file. For a field ``f`` of register ``r`` the port
is called ``r`` when ``f`` spans the whole register (``f.name == r.name``)
and ``r_f`` otherwise:

==========  ==============================  ====================================
access      ports                           behaviour
==========  ==============================  ====================================
``RW``      ``Out(width)``                  host writes (byte strobes honoured)
``RO``      ``In(width)``                   host reads the input
``W1S``     ``Out(width)``, ``<p>_clear``   host writes 1 to set; ``clear`` pulse
                                            from the hardware clears it
``RC``      ``Out(width)``, ``<p>_set``     ``set`` pulse sets it; a host read of
                                            the register clears it
``TOW``     ``Out(width)``, ``<p>_set``     ``set`` pulse sets it; host writing 1
                                            toggles it
==========  ==============================  ====================================

A hardware ``set`` in the same cycle as a clearing read wins (the read
returned the old value, so the event is not lost); a host ``W1S`` write in
the same cycle as a hardware ``clear`` wins too.

Bus timing: AW and W are accepted independently (each into a one-entry
holding register); the write takes effect the cycle both are held and B is
answered the next cycle. A read is answered one cycle after AR; ``arready``
is low while R is waiting. Unmapped addresses read as 0 and ignore writes;
responses are always OKAY.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hefl.hw.regmap import REGMAP, Access

__all__ = ["AxiLiteSignature", "AxilCtrl", "axil_members", "field_port"]


def axil_members(addr_bits):
    """``(name, direction seen by the slave, width)`` of every AXI4-Lite signal."""
    return (
        ("awvalid", "in", 1), ("awready", "out", 1), ("awaddr", "in", addr_bits),
        ("wvalid", "in", 1), ("wready", "out", 1), ("wdata", "in", 32), ("wstrb", "in", 4),
        ("bvalid", "out", 1), ("bready", "in", 1), ("bresp", "out", 2),
        ("arvalid", "in", 1), ("arready", "out", 1), ("araddr", "in", addr_bits),
        ("rvalid", "out", 1), ("rready", "in", 1), ("rdata", "out", 32), ("rresp", "out", 2),
    )


class AxiLiteSignature(wiring.Signature):
    """The AXI4-Lite bus as seen by a slave (32-bit data)."""

    def __init__(self, addr_bits):
        super().__init__({n: (In if d == "in" else Out)(w) for n, d, w in axil_members(addr_bits)})


def field_port(reg, fld):
    """Port name of field ``fld`` of register ``reg`` (see the module docstring)."""
    return reg.name if fld.name == reg.name else f"{reg.name}_{fld.name}"


class AxilCtrl(wiring.Component):
    """AXI4-Lite slave holding the registers of a :class:`~hefl.hw.regmap.RegisterMap`.

    Parameters
    ----------
    regmap : RegisterMap, optional
        Defaults to :data:`hefl.hw.regmap.REGMAP`.

    Attributes
    ----------
    bus : AxiLiteSignature
        The slave's AXI4-Lite port.
    <field ports>
        One or two per field, named by :func:`field_port` (module docstring).
    """

    def __init__(self, *, regmap=REGMAP):
        self._regmap = regmap
        # The signature is written from the slave's side, hence Out (unflipped).
        members = {"bus": Out(AxiLiteSignature(regmap.addr_bits))}
        for reg in regmap:
            for f in reg.fields:
                p = field_port(reg, f)
                if f.access is Access.RO:
                    members[p] = In(f.width)
                else:
                    members[p] = Out(f.width)
                if f.access is Access.W1S:
                    members[f"{p}_clear"] = In(f.width)
                elif f.access in (Access.RC, Access.TOW):
                    members[f"{p}_set"] = In(f.width)
        super().__init__(members)

    @property
    def regmap(self):
        return self._regmap

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        ab = self._regmap.addr_bits

        # --- write channel: hold AW and W until both are here --------------
        aw_full = Signal()
        aw_addr = Signal(ab)
        w_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            bus.bresp.eq(0),
            bus.rresp.eq(0),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        do_write = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~bus.bvalid)
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.bvalid.eq(1)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        # Byte strobes as a bit mask.
        wmask = Signal(32)
        m.d.comb += wmask.eq(Cat(*(w_strb[i].replicate(8) for i in range(4))))
        wbits = Signal(32)
        m.d.comb += wbits.eq(w_data & wmask)

        # --- read channel ---------------------------------------------------
        rd_take = Signal()
        m.d.comb += [bus.arready.eq(~bus.rvalid), rd_take.eq(bus.arvalid & ~bus.rvalid)]
        with m.If(rd_take):
            m.d.sync += bus.rvalid.eq(1)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        def hit(addr, reg):
            return addr[2:] == (reg.offset >> 2)

        read_word = Signal(32)
        with m.Switch(bus.araddr[2:]):
            for reg in self._regmap:
                with m.Case(reg.offset >> 2):
                    parts = []
                    for f in reg.fields:
                        parts.append((f, getattr(self, field_port(reg, f))))
                    word = Const(0, 32)
                    for f, sig in parts:
                        word = word | (sig.as_unsigned() << f.lsb)
                    m.d.comb += read_word.eq(word)
            with m.Default():
                m.d.comb += read_word.eq(0)
        with m.If(rd_take):
            m.d.sync += bus.rdata.eq(read_word)

        # --- storage per field ---------------------------------------------
        for reg in self._regmap:
            wr_hit = Signal(name=f"wr_hit_{reg.name}")
            rd_hit = Signal(name=f"rd_hit_{reg.name}")
            m.d.comb += [wr_hit.eq(do_write & hit(aw_addr, reg)),
                         rd_hit.eq(rd_take & hit(bus.araddr, reg))]
            for f in reg.fields:
                p = field_port(reg, f)
                q = getattr(self, p)
                fbits = wbits[f.lsb:f.lsb + f.width]
                fmask = wmask[f.lsb:f.lsb + f.width]
                if f.access is Access.RO:
                    continue
                if f.access is Access.RW:
                    with m.If(wr_hit):
                        m.d.sync += q.eq((q & ~fmask) | fbits)
                elif f.access is Access.W1S:
                    clear = getattr(self, f"{p}_clear")
                    m.d.sync += q.eq((q & ~clear) | (fbits & wr_hit.replicate(f.width)))
                elif f.access is Access.RC:
                    setp = getattr(self, f"{p}_set")
                    keep = q & ~rd_hit.replicate(f.width)
                    m.d.sync += q.eq(keep | setp)
                elif f.access is Access.TOW:
                    setp = getattr(self, f"{p}_set")
                    tog = q ^ (fbits & wr_hit.replicate(f.width))
                    m.d.sync += q.eq(tog | setp)
        return m
