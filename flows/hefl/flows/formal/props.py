"""Named properties and the handshake rules every wrapper reuses.

A formal wrapper is an ordinary Amaranth elaboratable around one DUT. It
states its properties through a :class:`Props` object, which gives each
``Assert``/``Assume``/``Cover`` a name (carried in the property's message
and so in the RTLIL ``$check`` cell), and offers the pieces every bus
check needs::

    p = Props(m)
    prev = p.past(sig)                   # sig one cycle ago (reset-less register)
    p.assert_("flag_sticky", ~p.was(flag) | flag)
    hs = p.source_rules("ar", valid, ready, [addr, length], by_dut=True)

Reset: the ``sync`` domain's reset is a free input of the model, so a
check also covers resets at any cycle. :meth:`Props.was` ("in the previous
cycle, and no reset came between") gates every property that looks back,
since a reset legitimately drops a VALID or clears a sticky flag. The
registers behind :meth:`Props.past` are reset-less for the same reason.
"""

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Cat, Cover, ResetSignal, Signal

__all__ = ["Props"]


class Props:
    """Named properties of one wrapper module ``m``.

    Every property's message is its name; :mod:`hefl.flows.formal.sby`
    reads the names back from the RTLIL to report results by name.
    """

    def __init__(self, m):
        self.m = m
        self.names = {"assert": [], "assume": [], "cover": []}
        self._n = 0
        # Reset in the previous cycle: looking back across it is meaningless.
        self.past_rst = Signal(reset_less=True, name="past_rst")
        m.d.sync += self.past_rst.eq(ResetSignal())

    # --- properties --------------------------------------------------------
    def _add(self, kind, make, name, test):
        if name in self.names[kind]:
            raise ValueError(f"Duplicate {kind} name {name!r}")
        self.names[kind].append(name)
        self.m.d.comb += make(test, name)

    def assert_(self, name, test):
        """``test`` must hold in every reachable cycle."""
        self._add("assert", Assert, name, test)

    def assume(self, name, test):
        """The environment promises ``test`` in every cycle."""
        self._add("assume", Assume, name, test)

    def cover(self, name, test):
        """Some trace reaches a cycle where ``test`` holds (the flow fails otherwise)."""
        self._add("cover", Cover, name, test)

    def check(self, name, test, *, by_dut):
        """An assertion on the DUT's outputs, or an assumption on the environment's."""
        (self.assert_ if by_dut else self.assume)(name, test)

    # --- free values --------------------------------------------------------
    def free(self, shape, name):
        """A signal whose value the solver picks anew every cycle (the environment)."""
        s = Signal(shape, name=name)
        self.m.d.comb += s.eq(AnySeq(s.shape()))
        return s

    def free_const(self, shape, name):
        """A signal whose value the solver picks once and holds."""
        s = Signal(shape, name=name)
        self.m.d.comb += s.eq(AnyConst(s.shape()))
        return s

    # --- looking back ------------------------------------------------------
    def past(self, value, name=None):
        """``value`` one cycle ago (a reset-less register; 0 at the first cycle)."""
        self._n += 1
        r = Signal(len(value), name=name or f"past{self._n}", reset_less=True)
        self.m.d.sync += r.eq(value)
        return r

    def was(self, cond, name=None):
        """``cond`` held in the previous cycle and no reset came since."""
        return self.past(cond, name) & ~self.past_rst

    # --- handshakes --------------------------------------------------------
    def source_rules(self, chan, valid, ready, payload, *, by_dut):
        """VALID held until READY and the payload stable meanwhile (AXI and stream rule).

        Asserted when the DUT drives the channel (``by_dut``), assumed
        when the environment does. Returns the handshake ``valid & ready``.
        """
        stall = self.was(valid & ~ready, name=f"{chan}_stall")
        pay = Cat(*payload)
        prev = self.past(pay, name=f"{chan}_prev")
        self.check(f"{chan}_valid_held", ~stall | valid, by_dut=by_dut)
        self.check(f"{chan}_payload_stable", ~stall | (pay == prev), by_dut=by_dut)
        return valid & ready
