"""A registered skid buffer: a stream stage that cuts every combinational path.

Between two blocks that may sit far apart on the die (lane and engine,
engine and kernel, one SLR and the next), a plain pipeline register on a
valid/ready stream still leaves ``ready`` combinational from the sink back to
the source. A skid buffer registers both directions::

    i_stream ──► [main] ──► o_stream        o_stream.valid, payload: registers
                   ▲
                [skid]                      i_stream.ready = ~skid_valid: a register

Two entries: ``main`` drives the output; ``skid`` catches the beat the
source sent in the cycle the sink dropped ``ready`` (the source saw the old,
registered ``ready``). Throughput one beat per cycle, latency one cycle.

With ``flush=True`` the buffer has a ``flush`` input: a cycle with it high
empties both entries (a beat the source hands over in that cycle is
dropped too), for a stream whose consumer abandons what is in flight.

Usage::

    m.submodules.sb = sb = SkidBuffer(layout)
    wiring.connect(m, producer.o_stream, sb.i_stream)
    wiring.connect(m, sb.o_stream, consumer.i_stream)
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "PipeStage", "skid_chain"]


class SkidBuffer(wiring.Component):
    """Two-entry registered stream buffer (see the module docstring).

    Parameters
    ----------
    shape : shape-castable
        Payload shape of both streams.
    flush : bool
        Add the ``flush`` input (see the module docstring).
    """

    def __init__(self, shape, *, flush=False):
        self._shape = shape
        self._flush = bool(flush)
        members = {"i_stream": In(stream.Signature(shape)),
                   "o_stream": Out(stream.Signature(shape))}
        if self._flush:
            members["flush"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        skid = Signal.like(i.payload, name="skid")
        skid_valid = Signal()
        m.d.comb += i.ready.eq(~skid_valid)
        with m.If(~o.valid | o.ready):
            # The output register is free (or frees this cycle): refill it,
            # from the skid entry first, which holds the older beat.
            with m.If(skid_valid):
                m.d.sync += [o.payload.eq(skid), o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [o.payload.eq(i.payload), o.valid.eq(i.valid)]
        with m.Elif(i.valid & i.ready):
            # The output is stalled: the beat the source sent anyway waits aside.
            m.d.sync += [skid.eq(i.payload), skid_valid.eq(1)]
        if self._flush:
            # Last, so it wins over the refill above.
            with m.If(self.flush):
                m.d.sync += [o.valid.eq(0), skid_valid.eq(0)]
        return m


class PipeStage(wiring.Component):
    """One registered stream stage: payload and ``valid`` registered, ``ready`` passed back.

    Half a :class:`SkidBuffer` (one entry, no second register or mux): the
    output starts from a flop, ``i_stream.ready = ~o_stream.valid |
    o_stream.ready`` is combinational. For a source whose data comes from a
    block RAM (a lane's result words) and a sink whose ``ready`` is itself a
    register, where a full skid buffer would only cost area.
    Throughput one beat per cycle, latency one cycle.

    Parameters
    ----------
    shape : shape-castable
    """

    def __init__(self, shape):
        super().__init__({"i_stream": In(stream.Signature(shape)),
                          "o_stream": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        m.d.comb += i.ready.eq(~o.valid | o.ready)
        with m.If(i.ready):
            m.d.sync += [o.valid.eq(i.valid), o.payload.eq(i.payload)]
        return m


def skid_chain(m, name, shape, stages, source, sink):
    """Connect ``source`` to ``sink`` (stream interfaces) through ``stages`` skid buffers.

    ``stages = 0`` connects them directly. Returns the buffers.
    """
    bufs = []
    prev = source
    for i in range(stages):
        sb = SkidBuffer(shape)
        m.submodules[f"{name}_skid{i}"] = sb
        wiring.connect(m, prev, sb.i_stream)
        prev = sb.o_stream
        bufs.append(sb)
    wiring.connect(m, prev, sink)
    return bufs
