"""A behavioural stand-in with MontMul's interface, for Amaranth-simulator unit tests.

It is *not* a hardware design (one wide combinational REDC): it lets the
ModExp controller be exercised at tiny widths in Amaranth's simulator, fast
and independently of the real multiplier, which the cocotb/Verilator tests
use. Inputs are collected for ``s`` beats, the result appears ``delay``
cycles later and leaves word by word (``last`` on word ``s - 1``), like
:class:`hefl.hw.montmul.MontMul`.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for

__all__ = ["StandinMontMul"]


class StandinMontMul(wiring.Component):
    def __init__(self, *, operand_bits, word_bits, delay=5):
        self._w = w = word_bits
        self._s = s = words_for(operand_bits, word_bits)
        self._delay = delay
        super().__init__({
            "nprime": In(w),
            "n_wr_en": In(1), "n_wr_addr": In(range(s)), "n_wr_data": In(w),
            "i_stream": In(stream.Signature(data.StructLayout({"a": w, "b": w}))),
            "o_stream": Out(stream.Signature(data.StructLayout({"data": w, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        w, s = self._w, self._s
        n_words = [Signal(w, name=f"n{i}") for i in range(s)]
        for i in range(s):
            with m.If(self.n_wr_en & (self.n_wr_addr == i)):
                m.d.sync += n_words[i].eq(self.n_wr_data)
        n = Signal(w * s)
        m.d.comb += n.eq(sum((n_words[i] << (w * i)) for i in range(s)))
        a = Signal(w * s)
        b = Signal(w * s)
        # Word-serial REDC written out in one combinational expression.
        t = a * b
        for _ in range(s):
            mi = (t[:w] * self.nprime)[:w]
            t = (t + mi * n) >> w
        res = Signal(w * s + 2)
        cnt = Signal(range(max(s, self._delay) + 1))
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.i_stream.ready.eq(1)
                with m.If(self.i_stream.valid):
                    m.d.sync += [a.eq((a >> w) | (self.i_stream.payload.a << (w * (s - 1)))),
                                 b.eq((b >> w) | (self.i_stream.payload.b << (w * (s - 1)))),
                                 cnt.eq(cnt + 1)]
                    with m.If(cnt == s - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "CALC"
            with m.State("CALC"):
                m.d.sync += [cnt.eq(cnt + 1), res.eq(t)]
                with m.If(cnt == self._delay - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += [self.o_stream.valid.eq(1),
                             self.o_stream.payload.data.eq(res[:w]),
                             self.o_stream.payload.last.eq(cnt == s - 1)]
                with m.If(self.o_stream.ready):
                    m.d.sync += [res.eq(res >> w), cnt.eq(cnt + 1)]
                    with m.If(cnt == s - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "IN"
        return m
