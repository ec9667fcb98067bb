"""TableExpander: a lane's compact TABLE_PRODUCT job turned into the lane's job of factors.

Sits between a lane's dispatcher leaf and its job FIFO (only in a
BatchEngine built with a table port). A compact TABLE_PRODUCT job, as the
kernel forwards it from the descriptor (:data:`hefl.hw.regmap.LAYOUT`),
is ``count = W`` and ``s`` words of the plain factor followed by
``ceil(W/p)`` index words (``p`` 16-bit indices each); the lane
(:class:`hefl.hw.modexp.ModExp`) wants ``W + 1`` factors of ``s`` words.
This block

1. passes every other job through unchanged;
2. writes the factor words into the FIFO, op, tag and count unchanged
   (the FIFO keeps a job's header from its first beat only; ``count`` stays
   ``W``, not the ``W + 1`` factors the lane multiplies: a lane never reads
   a TABLE_PRODUCT's count, whose factors end at ``last``, so rewriting it
   would be a 16-bit adder in every lane for nothing),
3. takes the index words into its index memory, so the dispatcher is free
   again after the compact job's ``s + ceil(W/p)`` beats, and
4. asks :class:`~hefl.hw.table_fetch.TableFetch` for the entries one by one,
   writing each entry's ``s`` words into the FIFO (``last`` on the job's
   final word). A request goes out only when the FIFO has room for the whole
   entry, so responses are always taken at once and never stall the
   response tree; with the FIFO ``2s`` deep, entry ``j + 1`` arrives while
   the lane multiplies by entry ``j``, so the fetch latency (a few tens of
   cycles) hides behind the MontMul (thousands).

The lane's cycles are therefore those of a TABLE_PRODUCT job whose factors
arrive when it asks for them, plus the first entry's fetch.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.hw.checks import check_int
from hefl.hw.jobs import (
    INDEX_BITS,
    JobOp,
    job_layout,
    table_request_layout,
    table_response_layout,
)
from hefl.hw.regmap import LAYOUT

__all__ = ["TableExpander", "write_bus"]


class TableExpander(wiring.Component):
    """One lane's TABLE_PRODUCT expander (see the module docstring).

    Parameters
    ----------
    words, word_bits, tag_bits : int
        ``s``, ``w`` and the tag width of the job stream.
    lane : int
        This lane's number (the ``lane`` of its requests).
    lanes : int
        Lanes of the sub-engine (the width of lane numbers).
    max_count : int
        Most entries a job may name (sizes the index memory).
    fifo_depth : int
        Words of the job FIFO this block writes (at least ``2s``).

    Attributes
    ----------
    i_stream : In(stream(job_layout))
    o_stream : Out(stream(job_layout))
        To the lane's job FIFO.
    fifo_level : In(range(fifo_depth + 1))
    req : Out(stream(table_request_layout))
    resp : In(stream(table_response_layout))
        ``valid`` only for this lane's words.
    bus : In(w)
        The data every beat this block writes carries: the response word on
        its group's response stream while ``bus_resp``, else the job beat's
        ``data`` (one mux per group of lanes sharing a dispatcher leaf and a
        response stream, :func:`write_bus`, instead of one per lane).
    bus_resp : In(1)
        A response word (for any lane of the group) is on ``bus``: job beats
        wait; a response is always taken at once.
    busy : Out(1)
        Between a compact job's first beat and its last entry word.
    """

    def __init__(self, *, words, word_bits, tag_bits, lane, lanes, max_count, fifo_depth):
        check_int("Word count", words)
        check_int("Lane count", lanes)
        check_int("Maximum table count", max_count)
        if not 0 <= lane < lanes:
            raise TypeError(f"Lane must be in [0, {lanes}), not {lane!r}")
        if fifo_depth < 2 * words:
            raise TypeError(f"FIFO depth must be at least 2s = {2 * words}, not {fifo_depth!r}")
        per = LAYOUT.indices_per_limb(word_bits)
        if per < 1:
            raise TypeError(f"Word width must be at least {INDEX_BITS} for table indices, "
                            f"not {word_bits!r}")
        self._s, self._w, self._per = words, word_bits, per
        self._lane, self._max = lane, max_count
        self._depth = fifo_depth
        jl = job_layout(word_bits, tag_bits)
        super().__init__({
            "i_stream": In(stream.Signature(jl)),
            "o_stream": Out(stream.Signature(jl)),
            "fifo_level": In(range(fifo_depth + 1)),
            "req": Out(stream.Signature(table_request_layout(lanes))),
            "resp": In(stream.Signature(table_response_layout(word_bits, lanes))),
            "bus": In(word_bits), "bus_resp": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s, per = self._s, self._per
        depth_words = -(-self._max // per)
        # Only the index bits of a word are kept (``p`` 16-bit indices, not ``w`` bits).
        m.submodules.idx = mem = Memory(shape=unsigned(per * INDEX_BITS), depth=depth_words,
                                        init=[])
        wp, rp = mem.write_port(), mem.read_port()
        i, o = self.i_stream, self.o_stream
        fj = Signal(range(s + 1))           # factor words written
        iw = Signal(range(depth_words + 1))  # index words stored
        # Entries still to fetch: sized by max_count (the kernel rejects larger
        # counts; a larger one gives a wrong job, never a hang).
        left = Signal(range(self._max + 1))
        jw = Signal(range(max(2, depth_words)))  # index word of the next request
        jsub = Signal(range(max(2, per)))   # ... and its slot

        # The job FIFO keeps op, tag and count from a job's first beat only
        # (hefl.hw.job_fifo), so they pass from i_stream unchanged on every
        # beat: only data, first and last differ.
        m.d.comb += [o.payload.eq(i.payload), o.payload.data.eq(self.bus), rp.addr.eq(jw),
                     wp.addr.eq(iw), wp.data.eq(i.payload.data)]
        # A job beat goes to the FIFO only while no response holds the bus.
        job_valid, job_ready = i.valid & ~self.bus_resp, o.ready & ~self.bus_resp
        with m.FSM():
            with m.State("IDLE"):
                with m.If(i.valid & i.payload.first & (i.payload.op == JobOp.TABLE_PRODUCT)):
                    m.d.sync += [left.eq(i.payload.count), fj.eq(0), iw.eq(0)]
                    m.next = "FACTOR"
                with m.Else():
                    # Any other job (or a stray beat) passes unchanged.
                    m.d.comb += [o.valid.eq(job_valid), i.ready.eq(job_ready)]
            with m.State("FACTOR"):
                m.d.comb += [self.busy.eq(1), o.valid.eq(job_valid), i.ready.eq(job_ready),
                             o.payload.last.eq(0)]
                with m.If(job_valid & job_ready):
                    m.d.sync += fj.eq(fj + 1)
                    with m.If(fj == s - 1):
                        m.next = "INDEX"
            with m.State("INDEX"):
                m.d.comb += [self.busy.eq(1), i.ready.eq(1), wp.en.eq(i.valid & (iw < depth_words))]
                with m.If(i.valid):
                    m.d.sync += iw.eq(iw + 1)
                    with m.If(i.payload.last):
                        m.d.sync += [jw.eq(0), jsub.eq(0)]
                        m.next = "READ"
            with m.State("READ"):
                # One cycle for the index memory's registered read.
                m.d.comb += self.busy.eq(1)
                m.next = "ASK"
            with m.State("ASK"):
                m.d.comb += self.busy.eq(1)
                room = self.fifo_level <= self._depth - s
                # The whole payload in one place: constant-only assignments to
                # parts of it become `always @*` blocks Verilator never runs.
                m.d.comb += [self.req.valid.eq(room),
                             self.req.payload.index.eq(rp.data.word_select(jsub, INDEX_BITS)),
                             self.req.payload.lane.eq(self._lane), self.req.payload.last.eq(1)]
                with m.If(self.req.valid & self.req.ready):
                    m.next = "TAKE"
            with m.State("TAKE"):
                r = self.resp
                last_entry = left == 1
                # r.valid implies bus_resp: the bus carries r's word.
                m.d.comb += [self.busy.eq(1), o.valid.eq(r.valid), r.ready.eq(o.ready),
                             o.payload.first.eq(0), o.payload.last.eq(last_entry & r.payload.last)]
                with m.If(r.valid & r.ready & r.payload.last):
                    m.d.sync += left.eq(left - 1)
                    with m.If(jsub == per - 1):
                        m.d.sync += [jsub.eq(0), jw.eq(jw + 1)]
                    with m.Else():
                        m.d.sync += jsub.eq(jsub + 1)
                    with m.If(last_entry):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "READ"
        return m


def write_bus(m, expanders, resp, fan):
    """Share one response stream and one FIFO write mux among a group of expanders.

    ``expanders`` are the lanes of one dispatcher leaf (their ``i_stream``
    payloads are the leaf's, one signal); ``resp`` is the group's response
    stream (:func:`hefl.hw.jobs.table_response_layout`), every word carrying
    its lane, which is ``expanders[lane % fan]``. Each word is offered to
    that lane only; the bus carries it, else the leaf's job data.
    """
    bus = Signal(len(resp.payload.data), name="write_bus")
    m.d.comb += bus.eq(Mux(resp.valid, resp.payload.data, expanders[0].i_stream.payload.data))
    slot = Signal(range(max(2, fan)))
    m.d.comb += slot.eq(resp.payload.lane % fan)
    ready = []
    for k, x in enumerate(expanders):
        mine = slot == k
        m.d.comb += [x.bus.eq(bus), x.bus_resp.eq(resp.valid), x.resp.payload.eq(resp.payload),
                     x.resp.valid.eq(resp.valid & mine)]
        ready.append(x.resp.ready & mine)
    m.d.comb += resp.ready.eq(Cat(*ready).any())
