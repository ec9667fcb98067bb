"""UART PHY: 8N1 receiver with a majority-voted centre sample, and transmitter.

Bit timing comes from one parameter, ``divisor`` = clock cycles per bit
(``round(f_clk / baud)``; 100 at 100 MHz and 1 Mbaud). Both directions are
byte streams (``amaranth.lib.stream``), so the framing layer
(:mod:`hefl.hw.link`) sees bytes only.

Receiver (oversampling)
-----------------------
The line passes two flip-flops (metastability). In ``IDLE`` a high→low edge
starts a bit timer at 0; the timer counts ``divisor`` cycles per bit. Within
each bit the line is sampled three times, at ``c - d``, ``c`` and ``c + d``
with ``c = divisor // 2`` and ``d = max(1, divisor // 8)``; the bit is the
majority of the three (a glitch shorter than ``d`` cycles is voted away).
Sequence: start bit (must vote 0, else it was a glitch and the receiver
returns to ``IDLE``), 8 data bits LSB first, stop bit. The stop bit is judged
at its centre, on its first two samples (both must be 1), and the receiver is
back in ``IDLE`` from there on: a sender whose bit period is shorter by a few
per cent starts its next byte before our stop bit would have ended. Tolerated
baud mismatch: about ±3 % (tested at ±2.5 %). A stop bit that is not 1 is a
**framing error**: the byte is dropped, ``framing_error`` pulses for
one cycle, ``errors`` counts it, and the receiver waits for the line to be
high again (a break holds it low) before looking for the next start bit.
When ``o_stream`` is not taken before the next byte completes, that byte is
lost and counted as an ``overrun``.

Transmitter
-----------
Accepts a byte when idle, sends start, 8 data bits LSB first and one stop
bit, ``divisor`` cycles each; ``tx`` idles high.

``divisor`` must be at least 8 so the three samples are distinct cycles.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "Uart"]


def _check_divisor(component, divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 8:
        component._MustUse__silence = True  # a rejected component is not "unused"
        raise TypeError(f"Divisor must be an integer of at least 8, not {divisor!r}")


class UartRx(wiring.Component):
    """8N1 receiver (see the module docstring).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (≥ 8).

    Attributes
    ----------
    rx : In(1)
        The serial line (idles high).
    o_stream : Out(stream.Signature(8))
        Received bytes.
    framing_error : Out(1)
        One-cycle pulse per byte dropped for a bad stop bit.
    errors, overruns : Out(16)
        Saturating counts of framing errors and of bytes lost to a full output.
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    framing_error: Out(1)
    errors: Out(16)
    overruns: Out(16)

    def __init__(self, *, divisor):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        c = div // 2
        d = max(1, div // 8)

        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(div))
        votes = Signal(2)      # ones seen among the samples of this bit
        bit = Signal()
        m.d.comb += bit.eq(votes >= 2)
        nbit = Signal(range(10))
        shift = Signal(8)
        valid = Signal()
        data = Signal(8)
        m.d.comb += [self.o_stream.valid.eq(valid), self.o_stream.payload.eq(data)]
        with m.If(self.o_stream.ready):
            m.d.sync += valid.eq(0)

        def sample():
            with m.If((timer == c - d) | (timer == c) | (timer == c + d)):
                m.d.sync += votes.eq(votes + line)

        prev = Signal(init=1)
        m.d.sync += prev.eq(line)
        stop_at = c + 1        # the stop bit is judged on its first two votes

        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(prev & ~line):
                    # The edge is seen one cycle after `line` fell: start at 1.
                    m.d.sync += [timer.eq(1), votes.eq(0), nbit.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                sample()
                m.d.sync += timer.eq(timer + 1)
                with m.If((nbit == 9) & (timer == stop_at)):
                    # Judge the stop bit at its centre so a sender whose clock
                    # runs a little fast cannot start its next byte unseen.
                    with m.If(votes == 2):
                        with m.If(valid & ~self.o_stream.ready):
                            m.d.sync += self.overruns.eq(self.overruns + (self.overruns != 0xFFFF))
                        m.d.sync += [valid.eq(1), data.eq(shift)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.d.sync += self.errors.eq(self.errors + (self.errors != 0xFFFF))
                        m.next = "BREAK"
                with m.Elif(timer == div - 1):
                    m.d.sync += [timer.eq(0), votes.eq(0), nbit.eq(nbit + 1)]
                    with m.If(nbit == 0):
                        with m.If(bit):          # a glitch, not a start bit
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += shift.eq(Cat(shift[1:], bit))
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (≥ 8).

    Attributes
    ----------
    i_stream : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line (idles high).
    busy : Out(1)
        A byte is being shifted out.
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, *, divisor):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        frame = Signal(10, init=0x3FF)   # stop, data[7:0], start, shifted out LSB first
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.busy.eq(left != 0),
                     self.i_stream.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i_stream.valid):
                m.d.sync += [frame.eq(Cat(Const(0, 1), self.i_stream.payload, Const(1, 1))),
                             left.eq(10), timer.eq(0)]
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
            with m.If(timer == div - 1):
                m.d.sync += [timer.eq(0), frame.eq(Cat(frame[1:], Const(1, 1))),
                             left.eq(left - 1)]
        return m


class Uart(wiring.Component):
    """Receiver and transmitter sharing one divisor.

    Attributes
    ----------
    rx : In(1), tx : Out(1)
        The serial lines.
    o_stream, i_stream
        Received bytes out, bytes to send in.
    framing_error, errors, overruns
        From :class:`UartRx`.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    o_stream: Out(stream.Signature(8))
    i_stream: In(stream.Signature(8))
    framing_error: Out(1)
    errors: Out(16)
    overruns: Out(16)

    def __init__(self, *, divisor):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UartRx(divisor=self._divisor)
        m.submodules.tx = tx = UartTx(divisor=self._divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.framing_error.eq(rx.framing_error),
                     self.errors.eq(rx.errors), self.overruns.eq(rx.overruns)]
        wiring.connect(m, wiring.flipped(self.o_stream), rx.o_stream)
        wiring.connect(m, wiring.flipped(self.i_stream), tx.i_stream)
        return m
