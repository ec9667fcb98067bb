"""Packet arbiters and routers for tagged result and job streams, as trees of registered stages.

A *packet* is the run of beats up to ``last`` (a result: ``s`` words; a
job: its beats). An N:1 arbiter over a few inputs is cheap; over hundreds
of lanes a flat one is a wide mux and a ``ready`` fan-out whose delay grows
with N. Both are therefore built as trees of small nodes, every node's
output a registered skid buffer (:mod:`hefl.hw.skid`), so no path spans
more than one node.

* :class:`PacketArbiter` — ``n`` inputs to one output: when idle it grants
  the lowest-index input with a beat (one cycle), then passes that input's
  beats until ``last``. Results are rare next to the work behind them (one
  per thousands of cycles per lane), so fixed priority starves no one.
* :func:`arbiter_tree` — any number of streams to one through nodes of
  ``fan_in`` inputs.
* :class:`PacketRouter` — one input to ``n`` outputs: on a packet's first
  beat it picks the lowest-index output whose subtree reports a ``best``
  (else a ``free``) leaf, spends one cycle choosing, then passes the
  packet's beats to it until ``last``. ``free``/``best`` of the node are
  registered ORs of its children's, so the choice never waits on a path
  through the whole tree; a stale ``free`` only makes a job wait one level
  down until a lane frees, it never loses or misroutes one.
* :class:`AddressRouter` / :func:`address_router_tree` — packets to the
  output their ``lane`` field names (a base-``F`` digit per level), for
  answers that must reach the group of lanes that asked.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hefl.hw.checks import check_int
from hefl.hw.half_rate import HalfRateStage
from hefl.hw.skid import SkidBuffer

__all__ = ["PacketArbiter", "arbiter_tree", "PacketRouter", "AddressRouter",
           "address_router_tree"]


class PacketArbiter(wiring.Component):
    """``n`` packet streams (payloads with a ``last`` field) into one, registered.

    Parameters
    ----------
    shape : data.StructLayout
        Payload layout; must have a ``last`` field.
    n : int
        Inputs.
    half_rate : bool
        The output stage a :class:`~hefl.hw.half_rate.HalfRateStage` (one
        beat every two cycles, no payload mux) instead of a skid buffer: for
        packets whose beats never come in consecutive cycles, where the
        timing is the same.

    Attributes
    ----------
    i{k} : In(stream) for ``k < n``
    o_stream : Out(stream), through a skid buffer (or the half-rate stage)
    busy : Out(1)
        A packet is passing (between the grant and its ``last`` beat) or a
        beat waits in the output buffer.
    """

    def __init__(self, shape, n, *, half_rate=False):
        check_int("Input count", n)
        self._shape, self._n, self._half = shape, n, bool(half_rate)
        members = {f"i{k}": In(stream.Signature(shape)) for k in range(n)}
        members.update({"o_stream": Out(stream.Signature(shape)), "busy": Out(1)})
        super().__init__(members)

    @property
    def inputs(self):
        return [getattr(self, f"i{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        ins = self.inputs
        m.submodules.out = out = (HalfRateStage if self._half else SkidBuffer)(self._shape)
        wiring.connect(m, out.o_stream, wiring.flipped(self.o_stream))
        o = out.i_stream
        if self._n == 1:
            wiring.connect(m, wiring.flipped(ins[0]), o)
            m.d.comb += self.busy.eq(out.o_stream.valid)
            return m
        locked = Signal()
        cur = Signal(range(self._n))
        m.d.comb += self.busy.eq(locked | out.o_stream.valid)
        valid = Array(i.valid for i in ins)
        payload = Array(i.payload for i in ins)
        # The payload follows cur whether or not a packet is passing (valid is
        # low otherwise): a 4:1 mux is one LUT6 per bit, gated by locked two.
        m.d.comb += o.payload.eq(payload[cur])
        with m.If(locked):
            m.d.comb += o.valid.eq(valid[cur])
            for k, i in enumerate(ins):
                m.d.comb += i.ready.eq((cur == k) & o.ready)
            with m.If(o.valid & o.ready & o.payload.last):
                m.d.sync += locked.eq(0)
        with m.Else():
            for k in reversed(range(self._n)):
                with m.If(ins[k].valid):
                    m.d.sync += [locked.eq(1), cur.eq(k)]
        return m


def arbiter_tree(m, name, shape, sources, sink, fan_in=4, *, half_rate=False):
    """Connect packet ``sources`` (stream interfaces) to ``sink`` through a tree of arbiters.

    Each level groups up to ``fan_in`` streams into a :class:`PacketArbiter`
    (``half_rate`` passed to each); a single source still passes one
    (registered) stage. Returns the arbiters' ``busy`` signals.
    """
    check_int("Arbiter fan-in", fan_in, 2)
    level, busy, depth = list(sources), [], 0
    while True:
        nxt = []
        for g in range(0, len(level), fan_in):
            group = level[g:g + fan_in]
            arb = PacketArbiter(shape, len(group), half_rate=half_rate)
            m.submodules[f"{name}_l{depth}_{g // fan_in}"] = arb
            for k, src in enumerate(group):
                wiring.connect(m, src, getattr(arb, f"i{k}"))
            nxt.append(arb.o_stream)
            busy.append(arb.busy)
        level, depth = nxt, depth + 1
        if len(level) == 1:
            break
    wiring.connect(m, level[0], sink)
    return busy


class _Router(wiring.Component):
    """What both routers share: ``i_stream``, outputs ``o0`` … ``o{n-1}``, their buffers.

    ``extra`` adds members (PacketRouter's free/best/busy).
    """

    def __init__(self, shape, n, registered, extra=None):
        check_int("Output count", n)
        self._shape, self._n, self._registered = shape, n, registered
        members = {"i_stream": In(stream.Signature(shape))}
        members.update({f"o{k}": Out(stream.Signature(shape)) for k in range(n)})
        members.update(extra or {})
        super().__init__(members)

    @property
    def outputs(self):
        return [getattr(self, f"o{k}") for k in range(self._n)]

    def _output_sinks(self, m):
        """What the node drives for each output: a skid buffer's input, or the port itself."""
        sinks = []
        for k, port in enumerate(self.outputs):
            if self._registered:
                m.submodules[f"skid{k}"] = sb = SkidBuffer(self._shape)
                wiring.connect(m, sb.o_stream, wiring.flipped(port))
                sinks.append(sb.i_stream)
            else:
                sinks.append(wiring.flipped(port))
        return sinks


class PacketRouter(_Router):
    """One packet stream (payloads with ``first``/``last``) to ``n`` outputs (module docstring).

    Parameters
    ----------
    shape : data.StructLayout
        Payload layout, with ``first`` and ``last`` fields.
    n : int
        Outputs.
    registered : bool
        Put a skid buffer on every output (between tree levels); without,
        the outputs are combinational from the input (a leaf node driving
        FIFO write ports, whose ``ready`` is a register).

    Attributes
    ----------
    i_stream : In(stream)
        A beat outside a packet (no ``first`` while idle) is dropped.
    o{k} : Out(stream) for ``k < n``
    child_free, child_best : In(n)
        Per output: its subtree has a lane that can take a job (``best``:
        and is idle).
    free, best : Out(1)
        Registered ORs of ``child_free`` / ``child_best``.
    busy : Out(1)
        A packet is passing, or a beat waits in an output buffer.
    """

    def __init__(self, shape, n, *, registered=True):
        check_int("Output count", n)
        super().__init__(shape, n, registered, {
            "child_free": In(n), "child_best": In(n), "free": Out(1), "best": Out(1),
            "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n, i = self._n, self.i_stream
        outs = self._output_sinks(m)
        m.d.sync += [self.free.eq(self.child_free.any()), self.best.eq(self.child_best.any())]
        locked = Signal()
        route = Signal(range(max(2, n)))
        waiting = [sb.o_stream.valid for sb in (getattr(m.submodules, f"skid{k}") for k in range(n))
                   ] if self._registered else []
        m.d.comb += self.busy.eq(Cat(locked, *waiting).any())
        pick = Signal(range(max(2, n)))
        for k in reversed(range(n)):
            with m.If(self.child_free[k]):
                m.d.comb += pick.eq(k)
        for k in reversed(range(n)):
            with m.If(self.child_best[k]):
                m.d.comb += pick.eq(k)
        # sel: locked & (route == k), one register per output, so that each
        # output's valid is one gate after the input's (it feeds the job
        # FIFOs' write and registered-ready logic).
        sel = Signal(n)
        for k, o in enumerate(outs):
            m.d.comb += [o.payload.eq(i.payload), o.valid.eq(sel[k] & i.valid)]
        with m.If(locked):
            m.d.comb += i.ready.eq(Array(o.ready for o in outs)[route])
            with m.If(i.valid & i.ready & i.payload.last):
                m.d.sync += [locked.eq(0), sel.eq(0)]
        with m.Else():
            # A stray beat outside a packet is dropped; a first beat waits for a free output.
            m.d.comb += i.ready.eq(~i.payload.first)
            with m.If(i.valid & i.payload.first & self.child_free.any()):
                m.d.sync += [locked.eq(1), route.eq(pick), sel.eq(Const(1, n) << pick)]
        return m


class AddressRouter(_Router):
    """One packet stream (payloads with ``lane`` and ``last``) to ``n`` outputs by address.

    A packet goes to output ``(lane // step) % fan`` (``n <= fan`` outputs
    exist; the others are never addressed), decided on its first beat (no
    choosing cycle) and held until ``last``.

    Parameters
    ----------
    shape : data.StructLayout
    n : int
        Outputs.
    step : int
        Lanes per output (``fan^level`` in a tree of fan-out ``fan``).
    fan : int
        The tree's fan-out (at least ``n``).
    registered : bool
        A skid buffer on every output (between tree levels); without, the
        outputs are combinational from the input (leaves, whose sinks are
        always ready).
    """

    def __init__(self, shape, n, step, fan=None, *, registered=True):
        check_int("Output count", n)
        check_int("Lane step", step)
        fan = n if fan is None else fan
        check_int("Fan-out", fan, n)
        self._step, self._fan = step, fan
        super().__init__(shape, n, registered)

    def elaborate(self, platform):
        m = Module()
        n, i = self._n, self.i_stream
        outs = self._output_sinks(m)
        in_packet = Signal()
        held = Signal(range(max(2, self._fan)))
        # Decided from the first beat: a constant step and fan (no divider).
        digit = Signal(range(max(2, self._fan)))
        m.d.comb += digit.eq((i.payload.lane // self._step) % self._fan)
        route = Signal(range(max(2, self._fan)))
        m.d.comb += route.eq(Mux(in_packet, held, digit))
        for k, o in enumerate(outs):
            m.d.comb += [o.payload.eq(i.payload), o.valid.eq(i.valid & (route == k))]
        readies = [o.ready for o in outs] + [1] * (self._fan - n)
        m.d.comb += i.ready.eq(Array(readies)[route])
        with m.If(i.valid & i.ready):
            m.d.sync += [in_packet.eq(~i.payload.last), held.eq(route)]
        return m


def address_router_tree(m, name, shape, source, sinks, fan_out):
    """Connect ``source`` to ``sinks[g]``, the streams of lane groups, through registered :class:`AddressRouter` s.

    Sink ``g`` takes the packets of lanes ``g·F … g·F + F − 1`` (``F`` =
    ``fan_out``; the lanes of one group share it, as a dispatcher leaf's
    lanes do). Nodes at level ``d ≥ 1`` each cover ``F`` nodes (or sinks)
    of the level below, so lane ``L`` is output ``(L // F^d) % F`` of its
    node; a single sink is fed by ``source`` directly.
    """
    check_int("Router fan-out", fan_out, 2)
    level, depth, step = list(sinks), 1, fan_out
    while len(level) > 1:
        nxt = []
        for g in range(0, len(level), fan_out):
            group = level[g:g + fan_out]
            r = AddressRouter(shape, len(group), step, fan_out, registered=True)
            m.submodules[f"{name}_l{depth}_{g // fan_out}"] = r
            for k, sink in enumerate(group):
                wiring.connect(m, getattr(r, f"o{k}"), sink)
            nxt.append(r.i_stream)
        level, depth, step = nxt, depth + 1, step * fan_out
    wiring.connect(m, source, level[0])
