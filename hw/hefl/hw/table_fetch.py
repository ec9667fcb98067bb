"""TableFetch: table entries from card memory for the lanes of one sub-engine.

A lane's :class:`~hefl.hw.table_expand.TableExpander` asks for one entry at
a time (``{index, lane}``, through a tree of request arbiters); this block
reads the entry (``s`` limbs at ``table + 8·s·index``) on the sub-engine's
own read port of the AXI master and sends its ``s`` words back tagged with
the lane (through a tree of address routers), ``last`` on the final word.
One block per sub-engine, so the sub-engines fetch in parallel, each at one
word per cycle.

Pipeline (valid flags, one request per cycle at best)::

    request ─► index register ─► address register (table + index·8s; a
    constant multiply) ─► read command ──(AXI master port)──► limbs ─► response
                                 └─► lane FIFO (the lanes of the commands in flight)

Commands run ahead of the data (the port queues them), so the memory
latency of one request hides behind the words of the previous one. An index
``>= entries`` (the descriptor's ``table_entries``) is never read: entry 0
is read in its place and ``bad_index`` is set, so a bad descriptor can
neither read outside the table nor hang a lane (it still gets its ``s``
words; the kernel reports ``bad_job``). ``bad_index`` is cleared by
``clear`` (the kernel's run start).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hefl.hw.axi_master import CommandLayout
from hefl.hw.checks import check_int
from hefl.hw.jobs import INDEX_BITS, table_request_layout, table_response_layout
from hefl.hw.regmap import LAYOUT

__all__ = ["TableFetch"]

LIMB = LAYOUT.limb_bits


class TableFetch(wiring.Component):
    """Entry fetcher of one sub-engine (see the module docstring).

    Parameters
    ----------
    words : int
        Words per operand ``s`` (limbs per entry).
    word_bits : int
        Word width ``w``.
    lanes : int
        Lanes of the sub-engine (the width of the lane numbers).
    in_flight : int
        Requests between their read command and their last word.

    Attributes
    ----------
    i_req : In(stream(table_request_layout))
    o_resp : Out(stream(table_response_layout))
    rd_cmd : Out(stream(CommandLayout))
    rd_data : In(stream(64))
        The AXI master read port.
    base : In(64)
        The table's byte address (for the run).
    entries : In(INDEX_BITS + 1)
        Entries in the table (for the run).
    clear : In(1)
        Pulse: clears ``bad_index``.
    bad_index : Out(1)
        Sticky: an index was not below ``entries``.
    busy : Out(1)
        A request is in the pipeline or in flight.
    """

    def __init__(self, *, words, word_bits, lanes, in_flight=4):
        check_int("Word count", words)
        check_int("Word width", word_bits)
        check_int("Lane count", lanes)
        check_int("Requests in flight", in_flight, 2)
        self._s, self._w, self._lanes, self._in_flight = words, word_bits, lanes, in_flight
        super().__init__({
            "i_req": In(stream.Signature(table_request_layout(lanes))),
            "o_resp": Out(stream.Signature(table_response_layout(word_bits, lanes))),
            "rd_cmd": Out(stream.Signature(CommandLayout)),
            "rd_data": In(stream.Signature(LIMB)),
            "base": In(64), "entries": In(INDEX_BITS + 1), "clear": In(1),
            "bad_index": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self._s
        entry_bytes = s * LAYOUT.limb_bytes
        lane_w = len(self.i_req.payload.lane)
        m.submodules.lanes = lanes = SyncFIFO(width=lane_w, depth=self._in_flight)

        a_valid, a_index = Signal(name="a_valid"), Signal(INDEX_BITS, name="a_index")
        a_lane = Signal(lane_w, name="a_lane")
        b_valid, b_addr = Signal(name="b_valid"), Signal(64, name="b_addr")
        b_lane = Signal(lane_w, name="b_lane")
        a_free, b_free = Signal(), Signal()
        word = Signal(range(max(2, s)), name="word")

        # Index register (stage A).
        req = self.i_req
        m.d.comb += req.ready.eq(a_free)
        with m.If(a_free):
            m.d.sync += [a_valid.eq(req.valid), a_index.eq(req.payload.index),
                         a_lane.eq(req.payload.lane)]
        # Address register (stage B): the checked index times the entry size, plus the base.
        bad = a_index >= self.entries
        with m.If(b_free):
            m.d.sync += [b_valid.eq(a_valid), b_lane.eq(a_lane),
                         b_addr.eq(self.base + Mux(bad, 0, a_index) * entry_bytes)]
            with m.If(a_valid & bad):
                m.d.sync += self.bad_index.eq(1)
        with m.If(self.clear):
            m.d.sync += self.bad_index.eq(0)
        issue = self.rd_cmd.valid & self.rd_cmd.ready
        m.d.comb += [b_free.eq(~b_valid | issue), a_free.eq(~a_valid | b_free),
                     self.rd_cmd.valid.eq(b_valid & lanes.w_rdy),
                     self.rd_cmd.payload.addr.eq(b_addr), self.rd_cmd.payload.limbs.eq(s),
                     lanes.w_en.eq(issue), lanes.w_data.eq(b_lane)]

        # Entry words out, tagged with the lane that asked.
        o, d = self.o_resp, self.rd_data
        m.d.comb += [o.valid.eq(d.valid & lanes.r_rdy), o.payload.data.eq(d.payload),
                     o.payload.lane.eq(lanes.r_data), o.payload.last.eq(word == s - 1),
                     d.ready.eq(o.ready & lanes.r_rdy)]
        with m.If(o.valid & o.ready):
            m.d.sync += word.eq(Mux(word == s - 1, 0, word + 1))
            with m.If(word == s - 1):
                m.d.comb += lanes.r_en.eq(1)
        m.d.comb += self.busy.eq(a_valid | b_valid | lanes.r_rdy)
        return m
