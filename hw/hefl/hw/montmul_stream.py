"""MontMulStream: the MontMul core behind operand and result streams (benches and reports).

:class:`hefl.hw.montmul.MontMul` reads its operands in place from its
caller's memory, as a ModExp lane uses it. This wrapper gives it memories of
its own so that it can be tested and measured alone, back to back:

* ``nprime`` In(w); ``n_wr_en``, ``n_wr_addr`` In(range(s)), ``n_wr_data``
  In(w): the modulus, written while :attr:`idle`.
* ``i_stream`` In(stream, payload ``{a: w, b: w, square: 1}``): ``s`` beats
  per operation, word 0 first; ``square`` (read on word 0) asks for the
  squaring mode, then ``b`` is ignored and ``a·a`` computed. ``a, b < 2N``.
* ``o_stream`` Out(stream, payload ``{data: w, last: 1}``): ``s`` beats per
  result, in input order, ``≡ a·b·R^-1 (mod N)``, ``< 2N``.
* ``idle`` Out(1).

Two operand banks (the next operation loads while the core computes), a
result FIFO of ``2s`` words, and an operation starts only when ``s`` of them
are free (credits). Cycle counts: :func:`hefl.golden.montmul_hw.op_timing`
(``latency_cycles``, ``first_out_cycles``, ``cycles_per_op``).

Core address map (``S2`` = the power of two ≥ ``2s``): ``a`` banks at 0 and
``s``, ``b`` banks at ``S2`` and ``S2 + s``, ``N`` at ``2·S2``.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for
from hefl.hw.montmul import MODE, MontMul
from hefl.hw.params import MONTMUL_WORD_BITS, TILE_A_BITS, TILE_B_BITS

__all__ = ["MontMulStream", "input_layout", "output_layout"]


def input_layout(word_bits):
    """Payload of ``i_stream``: one word of each operand and the squaring flag."""
    return data.StructLayout({"a": word_bits, "b": word_bits, "square": 1})


def output_layout(word_bits):
    """Payload of ``o_stream``: one result word, ``last`` on word ``s-1``."""
    return data.StructLayout({"data": word_bits, "last": 1})


class MontMulStream(wiring.Component):
    """The MontMul core with two operand banks, a modulus memory and a result FIFO.

    Parameters
    ----------
    operand_bits, word_bits, tile_bits, hard_mult
        As for :class:`hefl.hw.montmul.MontMul`.
    """

    def __init__(self, *, operand_bits, word_bits=MONTMUL_WORD_BITS,
                 tile_bits=(TILE_A_BITS, TILE_B_BITS), hard_mult=None):
        s = words_for(operand_bits, word_bits) if isinstance(word_bits, int) and word_bits > 0 else 1
        self._s2 = 1 << (2 * max(s, 1) - 1).bit_length()
        self._aw = (3 * self._s2 - 1).bit_length()
        # Validates the parameters (and raises) before the signature is built.
        self._core = MontMul(operand_bits=operand_bits, word_bits=word_bits, addr_bits=self._aw,
                             tile_bits=tile_bits, hard_mult=hard_mult)
        self._w, self._s = word_bits, self._core.words
        super().__init__({
            "nprime": In(word_bits),
            "n_wr_en": In(1),
            "n_wr_addr": In(range(self._s)),
            "n_wr_data": In(word_bits),
            "i_stream": In(stream.Signature(input_layout(word_bits))),
            "o_stream": Out(stream.Signature(output_layout(word_bits))),
            "idle": Out(1),
        })

    core = property(lambda self: self._core)
    words = property(lambda self: self._s)
    word_bits = property(lambda self: self._w)
    operand_bits = property(lambda self: self._core.operand_bits)
    tile_bits = property(lambda self: self._core.tile_bits)
    mul_latency = property(lambda self: self._core.mul_latency)

    @property
    def timing(self):
        """Predicted cycle counts of a multiply (:class:`hefl.golden.montmul_hw.OpTiming`)."""
        return self.timing_of("mul")

    def timing_of(self, mode):
        """Predicted cycle counts in ``mode`` (``"mul"``, ``"sqr"``, ``"one"``)."""
        return self._core.timing_of(mode)

    def elaborate(self, platform):
        m = Module()
        w, s, s2 = self._w, self._s, self._s2
        m.submodules.core = core = self._core
        m.submodules.a_mem = a_mem = Memory(shape=w, depth=2 * s, init=[])
        m.submodules.b_mem = b_mem = Memory(shape=w, depth=2 * s, init=[])
        m.submodules.n_mem = n_mem = Memory(shape=w, depth=s, init=[])
        m.submodules.ofifo = ofifo = SyncFIFOBuffered(width=w + 1, depth=2 * s)
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        b_wr, b_rd = b_mem.write_port(), b_mem.read_port()
        n_wr, n_rd = n_mem.write_port(), n_mem.read_port()

        # --- core memory port: region = address >> log2(S2) -------------------
        sh = s2.bit_length() - 1
        region, region_q = Signal(2), Signal(2)
        m.d.comb += [
            region.eq(core.rd_addr >> sh),
            a_rd.addr.eq(core.rd_addr[:sh]), b_rd.addr.eq(core.rd_addr[:sh]),
            n_rd.addr.eq(core.rd_addr[:sh]),
            core.rd_data.eq(Mux(region_q == 0, a_rd.data,
                                Mux(region_q == 1, b_rd.data, n_rd.data))),
            core.nprime.eq(self.nprime),
            n_wr.en.eq(self.n_wr_en), n_wr.addr.eq(self.n_wr_addr),
            n_wr.data.eq(self.n_wr_data),
        ]
        m.d.sync += region_q.eq(region)

        # --- loader: i_stream → bank load_bank, one word pair per cycle --------
        full = [Signal(name="bank0_full"), Signal(name="bank1_full")]
        sq = [Signal(name="bank0_square"), Signal(name="bank1_square")]
        load_bank, load_j = Signal(), Signal(range(s))
        in_hs = self.i_stream.valid & self.i_stream.ready
        m.d.comb += [
            self.i_stream.ready.eq(~Mux(load_bank, full[1], full[0])),
            a_wr.addr.eq(Mux(load_bank, s, 0) + load_j), b_wr.addr.eq(Mux(load_bank, s, 0) + load_j),
            a_wr.data.eq(self.i_stream.payload.a), b_wr.data.eq(self.i_stream.payload.b),
            a_wr.en.eq(in_hs), b_wr.en.eq(in_hs),
        ]
        with m.If(in_hs):
            m.d.sync += load_j.eq(load_j + 1)
            with m.If(load_j == 0):
                for k in range(2):
                    with m.If(load_bank == k):
                        m.d.sync += sq[k].eq(self.i_stream.payload.square)
            with m.If(load_j == s - 1):
                m.d.sync += [load_j.eq(0), load_bank.eq(~load_bank)]
                for k in range(2):
                    with m.If(load_bank == k):
                        m.d.sync += full[k].eq(1)

        # --- start and bank release, output credits -------------------------------
        cur, running = Signal(), Signal()
        credits = Signal(range(2 * s + 1), init=2 * s)
        nb = Signal()
        can_start = Signal()
        nb_full = Mux(nb, full[1], full[0])
        nb_sq = Mux(nb, sq[1], sq[0])
        m.d.comb += [
            nb.eq(Mux(running, ~cur, cur)),
            can_start.eq(nb_full & (credits >= s) & core.ready),
            core.start.eq(can_start),
            core.op_a.eq(Mux(nb, s, 0)),
            core.op_b.eq(Mux(nb_sq, Mux(nb, s, 0), s2 + Mux(nb, s, 0))),
            core.op_n.eq(2 * s2),
            core.op_dst.eq(0),
            core.op_mode.eq(Mux(nb_sq, MODE.SQR, MODE.MUL)),
        ]
        with m.If(running & core.ready):
            # The running op has issued its last slot: its bank is free.
            m.d.sync += [cur.eq(~cur), running.eq(can_start)]
            for k in range(2):
                with m.If(cur == k):
                    m.d.sync += full[k].eq(0)
        with m.Elif(can_start):
            m.d.sync += running.eq(1)
        out_hs = self.o_stream.valid & self.o_stream.ready
        m.d.sync += credits.eq(credits - Mux(can_start, s, 0) + out_hs)

        m.d.comb += [
            ofifo.w_en.eq(core.wr_en),
            ofifo.w_data.eq(Cat(core.wr_data, core.done)),
            self.o_stream.payload.eq(ofifo.r_data),
            self.o_stream.valid.eq(ofifo.r_rdy),
            ofifo.r_en.eq(self.o_stream.ready),
            self.idle.eq(core.idle & ~full[0] & ~full[1] & (load_j == 0) & (credits == 2 * s)),
        ]
        return m
