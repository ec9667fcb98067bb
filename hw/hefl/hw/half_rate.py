"""HalfRateStage: a one-entry registered stream stage whose ``ready`` is a register too.

For streams that never carry a beat in two consecutive cycles — a lane's
result words (one every 3 cycles, :mod:`hefl.hw.modexp`) and the table
requests of :class:`~hefl.hw.table_expand.TableExpander` (one per ``s``-word
entry) — a :class:`~hefl.hw.skid.SkidBuffer` buys a throughput nobody uses
with a second register and a payload-wide mux (a LUT per bit). This stage
keeps what the skid buffer gives timing (payload, ``valid`` and ``ready``
all from flops, no combinational path through it) with one entry::

    i_stream.ready = ~o_stream.valid        (a register)
    a beat taken at cycle t is on o_stream from t + 1 until taken

Latency one cycle, like the skid buffer; throughput one beat every two
cycles. A source whose beats are at least two cycles apart sees exactly the
skid buffer's timing, so every cycle count through it is unchanged.
"""

from amaranth.hdl import Module

from hefl.hw.skid import PipeStage

__all__ = ["HalfRateStage"]


class HalfRateStage(PipeStage):
    """One-entry registered stage with a registered ``ready`` (module docstring).

    A :class:`~hefl.hw.skid.PipeStage` (same ports) whose ``ready`` does not
    pass the sink's back: it is high only while the entry is empty.

    Parameters
    ----------
    shape : shape-castable
        Payload shape of both streams.
    """

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        m.d.comb += i.ready.eq(~o.valid)
        with m.If(o.valid & o.ready):
            m.d.sync += o.valid.eq(0)
        # i.ready implies the entry is empty: never a beat taken and one leaving at once.
        with m.If(i.valid & i.ready):
            m.d.sync += [o.valid.eq(1), o.payload.eq(i.payload)]
        return m
