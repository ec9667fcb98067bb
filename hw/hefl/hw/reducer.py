"""Reducer: a sub-engine's one final subtraction, ``x mod N`` for every result its lanes send.

A lane (:class:`hefl.hw.modexp.ModExp`) ends a job with its accumulator
``x ≡ result (mod N)``, ``x < 2N`` (lazily reduced Montgomery products;
``x ≤ N`` after a POWMOD's conversion out), and streams its ``s`` words as
they are. The lanes of a sub-engine share one modulus, and results are rare
next to the work behind them (one per thousands of cycles per lane), so the
conditional subtraction ``x ≥ N ? x − N : x`` is done once per sub-engine
here, at the root of the result tree, instead of by an adder and a
two-pass read in every lane.

Per result (the ``s`` beats of one tag, word 0 first)::

    IN    beat j taken; the next cycle d_j = x_j − N_j − borrow (N_j read
          ahead into a register) and {x_j, d_j} written to the result
          memory, the borrow kept: a beat every 2 cycles, faster than a
          lane sends them (one every 3), so a result never waits here
          until its last word has come
    OUT   x ≥ N (no borrow out of word s−1): send d_0 … d_{s−1}, else
          x_0 … x_{s−1}; 3 cycles a word (read, register, hold until taken)

Neither phase's timing depends on the values: ``ge`` only selects a
register's input. The result's last word leaves
:func:`hefl.golden.batch.reducer_latency` cycles after its last word came
in (on a free output); one result keeps it busy
:func:`hefl.golden.batch.reducer_cycles_per_result` cycles.

The modulus arrives with the sub-engine's constant broadcast
(``const_wr_*`` with ``sel`` = N), registered once more here.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.hw.checks import check_int
from hefl.hw.jobs import CONST_SEL, result_layout

__all__ = ["Reducer"]


class Reducer(wiring.Component):
    """``x mod N`` for results ``x < 2N`` streamed word by word (see the module docstring).

    Parameters
    ----------
    words, word_bits, tag_bits : int
        ``s``, ``w`` and the tag width of the result stream.

    Attributes
    ----------
    const_wr_en, const_wr_sel, const_wr_addr, const_wr_data : In
        The sub-engine's constant writes; ``sel`` = N words are kept.
    i_stream : In(stream(result_layout))
        Results ``< 2N``, ``s`` beats each.
    o_stream : Out(stream(result_layout))
        The same results reduced, ``< N``, tag unchanged.
    busy : Out(1)
        A result is inside.
    """

    def __init__(self, *, words, word_bits, tag_bits):
        check_int("Word count", words)
        check_int("Word width", word_bits)
        check_int("Tag width", tag_bits)
        self._s, self._w = words, word_bits
        rl = result_layout(word_bits, tag_bits)
        super().__init__({
            "const_wr_en": In(1), "const_wr_sel": In(2), "const_wr_addr": In(range(words)),
            "const_wr_data": In(word_bits),
            "i_stream": In(stream.Signature(rl)),
            "o_stream": Out(stream.Signature(rl)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s, w = self._s, self._w
        # N in LUT-RAM, read asynchronously into a register one word ahead,
        # so a beat is subtracted the cycle after it is taken (2 cycles a
        # beat, faster than a lane sends them). x and d in block RAM.
        # "distributed": without it yosys folds n_q into an ECP5 block RAM's
        # output (5.6 ns clock-to-out in front of the subtractor's carry chain,
        # the board's longest path at 100 MHz).
        m.submodules.nmem = nmem = Memory(shape=unsigned(w), depth=s, init=[],
                                          attrs={"ram_style": "distributed"})
        m.submodules.rmem = rmem = Memory(shape=unsigned(2 * w), depth=s, init=[])
        n_wr, n_rd = nmem.write_port(), nmem.read_port(domain="comb")
        r_wr, r_rd = rmem.write_port(), rmem.read_port()
        # The modulus, registered from the broadcast (its last register drives
        # only this memory's write port).
        m.d.sync += [n_wr.en.eq(self.const_wr_en & (self.const_wr_sel == CONST_SEL["n"])),
                     n_wr.addr.eq(self.const_wr_addr), n_wr.data.eq(self.const_wr_data)]

        i, o = self.i_stream, self.o_stream
        j = Signal(range(s))
        x = Signal(w)
        n_q = Signal(w)                      # N_j, for the beat taken next
        borrow = Signal()
        ge = Signal()
        tag = Signal.like(i.payload.tag)
        last_in = Signal()
        sub = Signal()                       # the SUB state
        # x − N_j − borrow as x + ~N_j + ~borrow: carry out = no borrow.
        diff = Signal(w + 1)
        m.d.comb += [diff.eq((Cat(Const(1, 1), x) + Cat(~borrow, ~n_q))[1:]),
                     n_rd.addr.eq(Mux(sub, j + 1, j)), r_rd.addr.eq(j),
                     r_wr.addr.eq(j), r_wr.data.eq(Cat(x, diff[:w])),
                     o.payload.tag.eq(tag)]
        m.d.sync += n_q.eq(n_rd.data)
        with m.FSM():
            with m.State("IN"):
                m.d.comb += [i.ready.eq(1), self.busy.eq(j != 0)]
                with m.If(i.valid):
                    m.d.sync += [x.eq(i.payload.data), tag.eq(i.payload.tag),
                                 last_in.eq(i.payload.last)]
                    m.next = "SUB"
            with m.State("SUB"):
                m.d.comb += [self.busy.eq(1), sub.eq(1), r_wr.en.eq(1)]
                m.d.sync += borrow.eq(~diff[w])
                with m.If(last_in | (j == s - 1)):
                    # ge: x ≥ N, no borrow out of the top word.
                    m.d.sync += [ge.eq(diff[w]), j.eq(0), borrow.eq(0)]
                    m.next = "OUT_READ"
                with m.Else():
                    m.d.sync += j.eq(j + 1)
                    m.next = "IN"
            self._elab_out(m, j, ge, r_rd)
        return m

    def _elab_out(self, m, j, ge, r_rd):
        """OUT_READ, OUT_LOAD, OUT_HOLD: one word every 3 cycles, ``d_j`` if ``x ≥ N`` else ``x_j``.

        The memory's word is registered as it is (no logic behind the block
        RAM's output); ``ge``, a register, selects its half at the output.
        """
        s, w, o = self._s, self._w, self.o_stream
        word = Signal(2 * w)
        m.d.comb += o.payload.data.eq(Mux(ge, word[w:], word[:w]))
        with m.State("OUT_READ"):
            m.d.comb += self.busy.eq(1)
            m.next = "OUT_LOAD"
        with m.State("OUT_LOAD"):
            m.d.comb += self.busy.eq(1)
            m.d.sync += [word.eq(r_rd.data), o.payload.last.eq(j == s - 1), o.valid.eq(1)]
            m.next = "OUT_HOLD"
        with m.State("OUT_HOLD"):
            m.d.comb += self.busy.eq(1)
            with m.If(o.ready):
                m.d.sync += o.valid.eq(0)
                with m.If(j == s - 1):
                    m.d.sync += j.eq(0)
                    m.next = "IN"
                with m.Else():
                    m.d.sync += j.eq(j + 1)
                    m.next = "OUT_READ"
