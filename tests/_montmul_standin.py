"""A behavioural stand-in with MontMul's interface, for Amaranth-simulator unit tests.

It is *not* a hardware design (one wide combinational REDC): it lets the
ModExp controller be exercised at tiny widths in Amaranth's simulator, fast
and independently of the real multiplier, which the cocotb/Verilator tests
use. Like :class:`hefl.hw.montmul.MontMul` it reads ``a``, ``b`` and ``N``
through its caller's memory port (``3s`` reads; ``a`` is the constant 1 in
mode ONE, ``b = a`` in mode SQR), computes ``delay`` cycles, writes the
``s`` result words to ``op_dst`` and pulses ``done`` on the last; it takes
the next op only when idle (it has no ``chain_safe``).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for
from hefl.hw.montmul import MODE

__all__ = ["StandinMontMul"]


class StandinMontMul(wiring.Component):
    def __init__(self, *, operand_bits, word_bits, addr_bits, delay=5):
        self._w = w = word_bits
        self._s = words_for(operand_bits, word_bits)
        self._delay = delay
        super().__init__({
            "nprime": In(w),
            "start": In(1), "ready": Out(1), "idle": Out(1), "done": Out(1),
            "op_a": In(addr_bits), "op_b": In(addr_bits), "op_n": In(addr_bits),
            "op_dst": In(addr_bits), "op_mode": In(MODE),
            "rd_addr": Out(addr_bits), "rd_en": Out(1), "rd_data": In(w),
            "wr_en": Out(1), "wr_addr": Out(addr_bits), "wr_data": Out(w),
        })

    def elaborate(self, platform):
        m = Module()
        w, s = self._w, self._s
        aw = len(self.rd_addr)
        base = [Signal(aw, name=f"base{i}") for i in range(3)]   # a, b, n
        dst = Signal(aw)
        mode = Signal(MODE)
        regs = [Signal(w * s, name=n) for n in ("a", "b", "n")]
        cnt = Signal(range(3 * s + self._delay + 2))
        which = Signal(range(3))
        res = Signal(w * s + 2)
        prev = Signal(range(3))
        got = Signal()                          # a read was addressed last cycle
        a = Mux(mode == MODE.ONE, 1, regs[0])
        b = Mux(mode == MODE.SQR, regs[0], regs[1])
        t = a * b
        for _ in range(s):
            mi = (t[:w] * self.nprime)[:w]
            t = (t + mi * regs[2]) >> w
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.ready.eq(1), self.idle.eq(1)]
                with m.If(self.start):
                    m.d.sync += [base[0].eq(self.op_a), base[1].eq(self.op_b),
                                 base[2].eq(self.op_n), dst.eq(self.op_dst),
                                 mode.eq(self.op_mode), cnt.eq(0), which.eq(0), got.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                # Word cnt of operand `which` is addressed now; its data arrives
                # next cycle, shifted in from the top.
                m.d.comb += [self.rd_en.eq(1),
                             self.rd_addr.eq(Mux(which == 0, base[0],
                                                 Mux(which == 1, base[1], base[2])) + cnt)]
                m.d.sync += [prev.eq(which), got.eq(1), cnt.eq(cnt + 1)]
                with m.If(cnt == s - 1):
                    m.d.sync += [cnt.eq(0), which.eq(which + 1)]
                    with m.If(which == 2):
                        m.next = "LAST"
                with m.If(got):
                    for i in range(3):
                        with m.If(prev == i):
                            m.d.sync += regs[i].eq((regs[i] >> w) | (self.rd_data << (w * (s - 1))))
            with m.State("LAST"):
                m.d.sync += regs[2].eq((regs[2] >> w) | (self.rd_data << (w * (s - 1))))
                m.next = "CALC"
            with m.State("CALC"):
                m.d.sync += [cnt.eq(cnt + 1), res.eq(t)]
                with m.If(cnt == self._delay - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [self.wr_en.eq(1), self.wr_addr.eq(dst + cnt),
                             self.wr_data.eq(res[:w]), self.done.eq(cnt == s - 1)]
                m.d.sync += [res.eq(res >> w), cnt.eq(cnt + 1)]
                with m.If(cnt == s - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "IDLE"
        return m
