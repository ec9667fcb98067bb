"""BatchEngine: E ModExp lanes behind one job stream and one result stream.

Interface (the kernel codes against it)::

    from hefl.hw.batch_engine import BatchEngine, JobOp
    be = BatchEngine(operand_bits=L, word_bits=w, lanes=E, window_bits=k,
                     max_exp_bits=X, tag_bits=TAG_BITS)
    nprime        In(w)      -N^-1 mod 2^w, stable for the batch
    const_wr_en   In(1)      constant load, one word per cycle, while idle:
    const_wr_sel  In(2)        0 = N, 1 = R² mod N, 2 = R mod N (3 ignored)
    const_wr_addr In(range(s))
    const_wr_data In(w)      broadcast to every lane
    i_stream      In(stream)  {data: w, first, last, op: JobOp, tag, count: COUNT_BITS}
    o_stream      Out(stream) {data: w, tag, last}: s beats per result, < N,
                              out of order across lanes (tagged)
    idle          Out(1)     nothing queued, computing or waiting to leave

Job formats: :mod:`hefl.hw.jobs` (POWMOD: s base words + ceil(count/w)
exponent words; MULMOD: 2s words; PRODUCT: K·s words, count = K ≥ 1). Two
additions to the brief's interface, both optional keywords: ``fifo_depth``
(per-lane job FIFO, default ``2·s`` words) and ``multiplier`` (the MontMul
class; e.g. ``functools.partial(MontMul, tile_bits=(ECP5_TILE_BITS,) * 2)`` for ECP5
tiles, or a stand-in in unit tests).

Structure::

    i_stream ─► dispatcher ─┬─► job FIFO 0 ─► ModExp 0 (+MontMul) ─┐
                            ├─► job FIFO 1 ─► ModExp 1 (+MontMul) ─┼─► arbiter ─► o_stream
                            └─► ...                                ┘

* Dispatcher: on a job's first beat it picks a lane whose FIFO is empty,
  preferring a lane that is also idle (lowest index first), spends one cycle
  choosing, then forwards every beat up to ``last`` to that FIFO at one beat
  per cycle. A lane can thus hold its running job plus one queued job; a job
  longer than the FIFO (a large PRODUCT) holds the input until the lane has
  consumed enough of it.
* Each lane (:class:`hefl.hw.modexp.ModExp`) runs any job type.
* Arbiter: when no result is in transfer it grants the lowest-index lane with
  a result ready (one cycle), then passes its ``s`` beats through until
  ``last``. Results are rare next to the work behind them (a result per
  thousands of cycles per lane), so fixed priority does not starve anyone.
"""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered

from hefl.hw.jobs import TAG_BITS, JobOp, engine_ports, job_layout
from hefl.hw.modexp import ModExp
from hefl.hw.params import MODEXP_WINDOW_BITS

__all__ = ["BatchEngine", "JobOp"]


class BatchEngine(wiring.Component):
    """E ModExp lanes sharing a modulus, a job queue and a result queue.

    Parameters
    ----------
    operand_bits, word_bits, window_bits, max_exp_bits, tag_bits
        As for :class:`hefl.hw.modexp.ModExp`.
    lanes : int
        Number of lanes ``E``.
    fifo_depth : int, optional
        Words of each lane's job FIFO; default ``2·s`` (a POWMOD job whose
        exponent is no longer than the modulus fits whole).
    multiplier : callable, optional
        MontMul class (default :class:`hefl.hw.montmul.MontMul`).
    """

    def __init__(self, *, operand_bits, word_bits, lanes=1, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, tag_bits=TAG_BITS, fifo_depth=None, multiplier=None):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            self._MustUse__silence = True       # never built: no "unused" warning
            raise TypeError(f"Lane count must be a positive integer, not {lanes!r}")
        self._lane_args = dict(operand_bits=operand_bits, word_bits=word_bits,
                               window_bits=window_bits, max_exp_bits=max_exp_bits,
                               tag_bits=tag_bits, multiplier=multiplier)
        # Validates the shared parameters once.
        try:
            proto = ModExp(**self._lane_args)
        except TypeError:
            self._MustUse__silence = True
            raise
        self._s = s = proto.words
        self._w = word_bits
        self._lanes = lanes
        self._tag_bits = tag_bits
        if fifo_depth is None:
            fifo_depth = 2 * s
        if not isinstance(fifo_depth, int) or isinstance(fifo_depth, bool) or fifo_depth < 2:
            self._MustUse__silence = True
            proto._MustUse__silence = True
            raise TypeError(f"FIFO depth must be an integer ≥ 2, not {fifo_depth!r}")
        self._fifo_depth = fifo_depth
        self._proto = proto
        super().__init__(engine_ports(word_bits, s, tag_bits))

    lanes = property(lambda self: self._lanes)
    words = property(lambda self: self._s)
    word_bits = property(lambda self: self._w)
    fifo_depth = property(lambda self: self._fifo_depth)

    def elaborate(self, platform):
        m = Module()
        E = self._lanes
        jl = job_layout(self._w, self._tag_bits)

        lanes, fifos = [], []
        for i in range(E):
            lane = self._proto if i == 0 else ModExp(**self._lane_args)
            fifo = SyncFIFOBuffered(width=jl.size, depth=self._fifo_depth)
            m.submodules[f"lane{i}"] = lane
            m.submodules[f"fifo{i}"] = fifo
            lanes.append(lane)
            fifos.append(fifo)
            m.d.comb += [
                lane.nprime.eq(self.nprime),
                lane.const_wr_en.eq(self.const_wr_en),
                lane.const_wr_sel.eq(self.const_wr_sel),
                lane.const_wr_addr.eq(self.const_wr_addr),
                lane.const_wr_data.eq(self.const_wr_data),
                lane.i_stream.valid.eq(fifo.r_rdy),
                lane.i_stream.payload.eq(fifo.r_data),
                fifo.r_en.eq(lane.i_stream.ready),
            ]

        # --- dispatcher -----------------------------------------------------
        routing = Signal()
        route = Signal(range(E))
        free = Signal(E)                 # FIFO empty: the lane can take a job
        best = Signal(E)                 # ... and the lane is idle as well
        for i in range(E):
            m.d.comb += [free[i].eq(fifos[i].level == 0),
                         best[i].eq(free[i] & lanes[i].idle)]
        pick = Signal(range(E))
        for i in reversed(range(E)):
            with m.If(free[i]):
                m.d.comb += pick.eq(i)
        for i in reversed(range(E)):
            with m.If(best[i]):
                m.d.comb += pick.eq(i)

        w_rdy = Array(f.w_rdy for f in fifos)
        beat = self.i_stream.payload
        for i in range(E):
            m.d.comb += [fifos[i].w_data.eq(beat.as_value()),
                         fifos[i].w_en.eq(routing & (route == i) & self.i_stream.valid)]
        with m.If(routing):
            m.d.comb += self.i_stream.ready.eq(w_rdy[route])
            with m.If(self.i_stream.valid & self.i_stream.ready & beat.last):
                m.d.sync += routing.eq(0)
        with m.Else():
            # A stray beat outside a job is dropped; a first beat waits for a lane.
            m.d.comb += self.i_stream.ready.eq(~beat.first)
            with m.If(self.i_stream.valid & beat.first & free.any()):
                m.d.sync += [routing.eq(1), route.eq(pick)]

        # --- result arbiter -------------------------------------------------
        locked = Signal()
        cur = Signal(range(E))
        o_valid = Array(l.o_stream.valid for l in lanes)
        o_payload = Array(l.o_stream.payload for l in lanes)
        with m.If(locked):
            m.d.comb += [self.o_stream.valid.eq(o_valid[cur]),
                         self.o_stream.payload.eq(o_payload[cur])]
            for i in range(E):
                m.d.comb += lanes[i].o_stream.ready.eq((cur == i) & self.o_stream.ready)
            with m.If(self.o_stream.valid & self.o_stream.ready & self.o_stream.payload.last):
                m.d.sync += locked.eq(0)
        with m.Else():
            for i in reversed(range(E)):
                with m.If(lanes[i].o_stream.valid):
                    m.d.sync += [locked.eq(1), cur.eq(i)]

        all_idle = Signal()
        m.d.comb += all_idle.eq(~routing & ~locked)
        for i in range(E):
            with m.If(~free[i] | ~lanes[i].idle):
                m.d.comb += all_idle.eq(0)
        m.d.comb += self.idle.eq(all_idle)
        return m
