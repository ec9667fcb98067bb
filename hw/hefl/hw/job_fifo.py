"""JobFifo: a lane's job queue in block RAM, the job header stored once per job.

A job's ``op``, ``tag`` and ``count`` are read on its first beat only
(:mod:`hefl.hw.jobs`), so only ``{data, last}`` (``w + 1`` bits) go
into the memory, one word per beat, and the header goes into a register
when the first beat is written. The queue holds at most one first beat
(see below), so its ``first`` flag is not stored either: the first beat's
address is kept, and the output's flag is a register set when that address
is read (a block RAM output is slow on ECP5, and the flag drives the
queue's own ready). The register drives the header fields of
every beat leaving the queue; they are the job's own on its first beat and
unspecified (the latest header written) on the others. Once a job's last
beat is in while its first beat still waits, the queue takes nothing more
until that first beat has left, so a header is never overwritten before
its first beat has been read (``i_stream.ready`` is a register of its
own, computed from the next state). The BatchEngine sends a job only to an empty queue, so this
never stalls it.

The memory carries ``ram_style = "block"``: yosys maps it to RAMB18E2 /
RAMB36E2 on UltraScale+ and to DP16KD on ECP5 instead of LUT-RAM (about
250 LUTs of a 2s-deep queue of 87-bit beats at ``w = 51``).

Timing is :class:`amaranth.lib.fifo.SyncFIFOBuffered`'s, cycle for cycle:
a memory holding ``depth − 1`` beats with a registered read (a power of
two deep, so its pointers wrap without logic), and an output register; a beat written to an empty queue can be read two cycles later,
and ``level`` counts the beats in the memory plus the one in the output
register. So the engine's cycle model (:func:`hefl.golden.batch.engine_overhead`)
is unchanged.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.hw.checks import check_int
from hefl.hw.jobs import JobOp, job_layout

__all__ = ["JobFifo", "RAM_STYLE"]

#: ``ram_style`` attribute of the queue's memory (yosys: block RAM on xcup and ECP5).
RAM_STYLE = "block"


class JobFifo(wiring.Component):
    """A lane's job queue of ``depth`` beats (see the module docstring).

    Parameters
    ----------
    word_bits, tag_bits : int
        The job stream's ``w`` and tag width (:func:`hefl.hw.jobs.job_layout`).
    depth : int
        Beats the queue holds (at least 2).

    Attributes
    ----------
    i_stream : In(stream(job_layout))
    o_stream : Out(stream(job_layout))
        Header fields valid on ``first`` beats only.
    level : Out(range(depth + 1))
        Beats queued (as :class:`~amaranth.lib.fifo.SyncFIFOBuffered`'s ``level``).
    """

    def __init__(self, *, word_bits, tag_bits, depth):
        try:
            check_int("Word width", word_bits)
            check_int("Tag width", tag_bits)
            check_int("FIFO depth", depth, 2)
        except TypeError:
            self._MustUse__silence = True   # never built: no "unused" warning
            raise
        self._w, self._depth = word_bits, depth
        jl = job_layout(word_bits, tag_bits)
        super().__init__({"i_stream": In(stream.Signature(jl)),
                          "o_stream": Out(stream.Signature(jl)),
                          "level": Out(range(depth + 1))})

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        inner = self._depth - 1
        beat = data.StructLayout({"data": self._w, "last": 1})
        # The memory is a power of two deep, so the pointers wrap by overflow
        # (no compare and mux behind each increment); it still holds at most
        # ``inner`` beats. A block RAM has the room (512 words of 72 bits).
        words = 1 << max(1, (inner - 1).bit_length())
        m.submodules.mem = mem = Memory(shape=beat, depth=words, init=[],
                                        attrs={"ram_style": RAM_STYLE})
        wp, rp = mem.write_port(), mem.read_port()
        produce, consume = Signal(range(words)), Signal(range(words))
        inner_level = Signal(range(inner + 1))
        first_queued = Signal()             # a first beat is in the queue, not yet read
        closed = Signal()                   # ... and its job's last beat is in too: no writes
        first_in_mem = Signal()             # ... and it is in the memory, at first_addr
        first_addr = Signal.like(produce)
        out_first = Signal()                # the output register's first flag
        header = Signal(data.StructLayout({"op": JobOp, "tag": len(i.payload.tag),
                                           "count": len(i.payload.count)}))

        # ready = (inner_level != inner) & ~closed, kept as a register of its
        # own (computed from the next state below): the dispatcher's ready
        # and the write logic behind it start from one flop, not a compare.
        can_take = Signal(init=1)
        m.d.comb += i.ready.eq(can_take)
        do_write = i.valid & i.ready
        do_read = o.valid & o.ready
        # inner_level != 0 as a register of its own: the compare in front of
        # the read, the block RAM's enable and the level's update was on the
        # ECP5 board's 100 MHz edge.
        inner_any = Signal()
        do_inner_read = inner_any & (~o.valid | o.ready)
        m.d.comb += [wp.addr.eq(produce), wp.en.eq(do_write),
                     wp.data.data.eq(i.payload.data), wp.data.last.eq(i.payload.last),
                     rp.addr.eq(consume), rp.en.eq(do_inner_read),
                     o.payload.data.eq(rp.data.data), o.payload.first.eq(out_first),
                     o.payload.last.eq(rp.data.last), o.payload.op.eq(header.op),
                     o.payload.tag.eq(header.tag), o.payload.count.eq(header.count),
                     self.level.eq(inner_level + o.valid)]
        with m.If(do_write):
            m.d.sync += produce.eq(produce + 1)
            with m.If(i.payload.first):
                m.d.sync += [header.op.eq(i.payload.op), header.tag.eq(i.payload.tag),
                             header.count.eq(i.payload.count)]
        with m.If(do_inner_read):
            m.d.sync += [consume.eq(consume + 1), o.valid.eq(1)]
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)
        next_level = Signal.like(inner_level)
        m.d.comb += next_level.eq(inner_level)
        with m.If(do_write & ~do_inner_read):
            m.d.comb += next_level.eq(inner_level + 1)
        with m.If(do_inner_read & ~do_write):
            m.d.comb += next_level.eq(inner_level - 1)
        # inner_any's next value without the level's adder: the lane's ready
        # (a decode of its state) -> read -> adder -> compare was the ECP5
        # board's 100 MHz critical path (10.16 ns). A write leaves a beat; a
        # read empties the memory only from one beat (a register compare).
        one_left = inner_level == 1
        m.d.sync += [inner_level.eq(next_level),
                     inner_any.eq(do_write | (inner_any & ~(one_left & (~o.valid | o.ready))))]
        # Full next cycle (in _next_ready): the level's two top compares are
        # made from registers, beside the read and write decisions.
        at_top, below_top = inner_level == inner, inner_level == inner - 1

        # At most one first beat is queued: a job's beats arrive together, so
        # the next job's first beat comes after this job's last, and then the
        # queue is closed until this first beat has left. Its address is kept
        # and compared with the read pointer (registers only); the output's
        # flag is a register, so the flag -> closed -> ready logic below
        # starts from flops (the flag read from the block RAM was the ECP5
        # board's 100 MHz critical path: DP16KD output, 5.6 ns, then three
        # LUT levels).
        new_first = do_write & i.payload.first
        reads_first = do_inner_read & first_in_mem & (consume == first_addr)
        with m.If(new_first):
            m.d.sync += first_addr.eq(produce)
        m.d.sync += first_in_mem.eq(new_first | (first_in_mem & ~reads_first))
        with m.If(do_inner_read):
            m.d.sync += out_first.eq(reads_first)
        leaves = do_read & out_first
        still_closed = (new_first | first_queued) & (closed | (do_write & i.payload.last)) & ~leaves
        m.d.sync += [first_queued.eq(new_first | (first_queued & ~leaves)),
                     closed.eq(still_closed),
                     can_take.eq(self._next_ready(m, platform, do_write, at_top, below_top,
                                                  do_inner_read, leaves, first_queued, closed))]
        return m

    def _next_ready(self, m, platform, do_write, at_top, below_top, reads, leaves, queued, closed):
        """The registered ready's next value, as a choice by ``do_write`` of two precomputed values.

        The write (the input's valid, from the dispatcher's router, and
        this ready) arrives last: router -> write -> closed -> ready was the
        ECP5 board's 100 MHz critical path, across the die. So the value for
        "written" and the value for "not written" are computed beside it from
        everything else, and the write only selects. On ECP5 both are kept as
        wires (``keep``), or yosys's ABC merges the write back into the first
        LUT level; elsewhere they are left free.
        """
        keep = {"keep": 1} if getattr(platform, "family", None) == "ecp5" else {}
        i = self.i_stream.payload
        if_write, if_not = Signal(name="ready_if_write", attrs=keep), \
            Signal(name="ready_if_not", attrs=keep)
        # Written: full if one below the top and nothing read (a write at
        # the top cannot happen: ready is low there); closed if the job's
        # first beat stays queued and its last beat is in.
        full_w = below_top & ~reads
        closed_w = (i.first | queued) & (closed | i.last) & ~leaves
        closed_n = queued & closed & ~leaves
        m.d.comb += [if_write.eq(~full_w & ~closed_w), if_not.eq(~(at_top & ~reads) & ~closed_n)]
        return Mux(do_write, if_write, if_not)

