"""TableFetch: the table entries of a TABLE_PRODUCT job, from card memory to the engine.

A descriptor TABLE_PRODUCT job (:data:`hefl.hw.regmap.LAYOUT`) names ``W``
entries of the table at ``table`` by 16-bit index, four to a limb. The
kernel forwards the job's plain factor to its sub-engine itself, starts this
block with ``W`` and hands it the index limbs; this block reads each entry
(``s`` limbs at ``table + 8·s·index``) on its own read port of the AXI
master and streams the ``W·s`` words to the sub-engine behind the factor,
``last`` on the final word. One block per sub-engine, so the sub-engines'
fetches run in parallel, each at one word per cycle.

Pipeline (valid flags, one index per cycle at best)::

    index FIFO ─► unpack (4 indices per limb) ─► index register
               ─► address register (table + index·8s; a constant multiply)
               ─► read command ──(AXI master port)──► limbs ─► o_stream

Commands run ahead of the data (the port queues them), so the memory
latency of entry ``i + 1`` hides behind the words of entry ``i``. An index
``>= entries`` (the descriptor's ``table_entries``) is never read: entry 0
is read in its place and ``bad_index`` is set, so a
bad descriptor can neither read outside the table nor hang the engine (the
job still gets its ``W·s`` words; the kernel reports ``bad_job``).
``bad_index`` is cleared by ``clear`` (the kernel's run start), not by
``start``, so a bad index of one job is still seen after the next begins.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hefl.hw.axi_master import CommandLayout
from hefl.hw.checks import check_int
from hefl.hw.jobs import COUNT_BITS, TAG_BITS, job_layout
from hefl.hw.regmap import LAYOUT

__all__ = ["TableFetch"]

LIMB = LAYOUT.limb_bits
IDX_BITS = LAYOUT.table_index_bits
PER_LIMB = LAYOUT.indices_per_limb


class TableFetch(wiring.Component):
    """Entry fetcher of one sub-engine (see the module docstring).

    Parameters
    ----------
    words : int
        Words per operand ``s`` (limbs per entry).
    word_bits : int
        Word width ``w`` of the engine's job stream.
    tag_bits : int
        Tag width of the job stream.
    fifo_limbs : int
        Index limbs the block holds ahead of the fetch: with ``4·fifo_limbs``
        indices or more per job the kernel moves on to the next job at once.

    Attributes
    ----------
    clear : In(1)
        Pulse: clears ``bad_index`` (a run begins).
    start : In(1)
        Pulse: a job of ``count`` entries begins (while ``busy`` is low).
    count : In(COUNT_BITS)
        ``W`` of that job.
    base : In(64)
        The table's byte address (for the run).
    entries : In(IDX_BITS + 1)
        Entries in the table (for the run).
    i_index : In(stream(64))
        The job's ``ceil(W/4)`` index limbs.
    rd_cmd : Out(stream(CommandLayout))
    rd_data : In(stream(64))
        The AXI master read port.
    o_stream : Out(stream(job_layout))
        Entry words (``first`` low, ``last`` on the job's final word).
    busy : Out(1)
        From ``start`` until the final word has left.
    bad_index : Out(1)
        Sticky until ``clear``: an index was not below ``entries``.
    """

    def __init__(self, *, words, word_bits, tag_bits=TAG_BITS, fifo_limbs=32):
        check_int("Word count", words)
        check_int("Word width", word_bits)
        check_int("Tag width", tag_bits)
        check_int("Index FIFO depth", fifo_limbs, 2)
        self._s, self._w, self._tag_bits, self._fifo = words, word_bits, tag_bits, fifo_limbs
        super().__init__({
            "clear": In(1), "start": In(1), "count": In(COUNT_BITS), "base": In(64), "entries": In(IDX_BITS + 1),
            "i_index": In(stream.Signature(LIMB)),
            "rd_cmd": Out(stream.Signature(CommandLayout)),
            "rd_data": In(stream.Signature(LIMB)),
            "o_stream": Out(stream.Signature(job_layout(word_bits, tag_bits))),
            "busy": Out(1), "bad_index": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self._s
        entry_bytes = s * LAYOUT.limb_bytes
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=LIMB, depth=self._fifo)
        m.d.comb += [fifo.w_data.eq(self.i_index.payload), fifo.w_en.eq(self.i_index.valid),
                     self.i_index.ready.eq(fifo.w_rdy)]

        to_unpack = Signal(COUNT_BITS, name="to_unpack")    # indices not yet taken from limbs
        to_send = Signal(COUNT_BITS, name="to_send")        # entries whose words remain to send
        limb = Signal(LIMB, name="idx_limb")
        limb_n = Signal(range(PER_LIMB + 1), name="idx_limb_n")   # indices left in ``limb``
        a_valid, a_index = Signal(name="a_valid"), Signal(IDX_BITS, name="a_index")
        b_valid, b_addr = Signal(name="b_valid"), Signal(64, name="b_addr")
        a_free, b_free = Signal(), Signal()
        word = Signal(range(s), name="word")                # word of the entry being sent

        m.d.comb += self.busy.eq(to_send != 0)
        with m.If(self.start):
            m.d.sync += [to_unpack.eq(self.count), to_send.eq(self.count), word.eq(0)]
        with m.If(self.clear):
            m.d.sync += self.bad_index.eq(0)

        # Unpack: a limb from the FIFO once the previous one is used up.
        with m.If((limb_n == 0) & (to_unpack != 0) & fifo.r_rdy):
            m.d.comb += fifo.r_en.eq(1)
            m.d.sync += [limb.eq(fifo.r_data),
                         limb_n.eq(Mux(to_unpack > PER_LIMB, PER_LIMB, to_unpack))]
        # Index register (stage A).
        with m.If(a_free & (limb_n != 0)):
            m.d.sync += [a_valid.eq(1), a_index.eq(limb[:IDX_BITS]), limb.eq(limb >> IDX_BITS),
                         limb_n.eq(limb_n - 1), to_unpack.eq(to_unpack - 1)]
        with m.Elif(a_free):
            m.d.sync += a_valid.eq(0)
        # Address register (stage B): checked index times the entry size, plus the base.
        bad = a_index >= self.entries
        with m.If(b_free):
            m.d.sync += [b_valid.eq(a_valid),
                         b_addr.eq(self.base + Mux(bad, 0, a_index) * entry_bytes)]
            with m.If(a_valid & bad):
                m.d.sync += self.bad_index.eq(1)
        m.d.comb += [b_free.eq(~b_valid | self.rd_cmd.ready), a_free.eq(~a_valid | b_free),
                     self.rd_cmd.valid.eq(b_valid), self.rd_cmd.payload.addr.eq(b_addr),
                     self.rd_cmd.payload.limbs.eq(s)]

        # Entry words out, behind the factor the kernel sent.
        o, d = self.o_stream, self.rd_data
        m.d.comb += [o.valid.eq(d.valid & (to_send != 0)), o.payload.data.eq(d.payload),
                     o.payload.last.eq((to_send == 1) & (word == s - 1)),
                     d.ready.eq(o.ready & (to_send != 0))]
        with m.If(o.valid & o.ready):
            m.d.sync += word.eq(Mux(word == s - 1, 0, word + 1))
            with m.If(word == s - 1):
                m.d.sync += to_send.eq(to_send - 1)
        return m
