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
result FIFO of ``2s`` words, and an operation starts only when fewer than
two results are pending (accepted and not yet read out), so its words fit. Cycle counts: :func:`hefl.golden.montmul_hw.op_timing`
(``latency_cycles``, ``first_out_cycles``, ``cycles_per_op``).

Core address map (``H`` = the power of two ≥ ``s``, ``S2 = 2H``): ``a`` banks
at 0 and ``H``, ``b`` banks at ``S2`` and ``S2 + H``, ``N`` at ``2·S2``, each a
distributed-RAM memory of its own: every address is a concatenation of bit
fields, no adder, and every read a short LUT-RAM path into a register.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
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
        self._h = 1 << (max(s, 2) - 1).bit_length()
        self._s2 = 2 * self._h
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
        w, s, s2, h = self._w, self._s, self._s2, self._h
        m.submodules.core = core = self._core
        # Distributed RAM: an ECP5 DP16KD without its output register has a
        # ~5.8 ns clock-to-out, more than a 150 MHz cycle's worth with routing.
        lut = {"ram_style": "distributed"}
        # One memory per bank and operand (a0, a1, b0, b1) and N: each H deep,
        # so each read is a short LUT-RAM mux; region = address >> log2(H).
        mems = []
        for name, depth in (("a0", h), ("a1", h), ("b0", h), ("b1", h), ("n", h)):
            mem = Memory(shape=w, depth=depth, init=[], attrs=lut)
            m.submodules[f"{name}_mem"] = mem
            mems.append((mem.write_port(), mem.read_port()))
        sh = h.bit_length() - 1
        region, region_q = Signal(3), Signal(3)
        m.d.comb += [region.eq(core.rd_addr >> sh), core.nprime.eq(self.nprime)]
        m.d.sync += region_q.eq(region)
        with m.Switch(region_q):
            for i, (_, rd) in enumerate(mems):
                m.d.comb += rd.addr.eq(core.rd_addr[:sh])
                with m.Case(i):
                    m.d.comb += core.rd_data.eq(rd.data)
        n_wr = mems[4][0]
        m.d.comb += [n_wr.en.eq(self.n_wr_en), n_wr.addr.eq(self.n_wr_addr),
                     n_wr.data.eq(self.n_wr_data)]

        # --- loader: i_stream → bank load_bank, one word pair per cycle --------
        full = [Signal(name="bank0_full"), Signal(name="bank1_full")]
        sq = [Signal(name="bank0_square"), Signal(name="bank1_square")]
        load_bank, load_j = Signal(), Signal(range(h))
        in_hs = self.i_stream.valid & self.i_stream.ready
        m.d.comb += self.i_stream.ready.eq(~Mux(load_bank, full[1], full[0]))
        # The memory writes are registered (the core reads a bank three cycles
        # after it is full at the earliest, its last word much later).
        for k in range(2):
            for (wr, _), val in ((mems[k], self.i_stream.payload.a),
                                 (mems[2 + k], self.i_stream.payload.b)):
                m.d.sync += [wr.addr.eq(load_j), wr.data.eq(val),
                             wr.en.eq(in_hs & (load_bank == k))]
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
        pending = Signal(range(3))              # results accepted and not yet read out
        nb = Signal()
        can_start = Signal()
        nb_full = Mux(nb, full[1], full[0])
        nb_sq = Mux(nb, sq[1], sq[0])
        m.d.comb += [
            nb.eq(Mux(running, ~cur, cur)),
            can_start.eq(nb_full & (pending != 2) & core.ready),
            core.start.eq(can_start),
            core.op_a.eq(Mux(nb, h, 0)),
            core.op_b.eq(Mux(nb_sq, Mux(nb, h, 0), s2 + Mux(nb, h, 0))),
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
        out_last = self.o_stream.valid & self.o_stream.ready & self.o_stream.payload.last
        m.d.sync += pending.eq(pending + can_start - out_last)

        self._elab_result_fifo(m, core, lut)
        m.d.comb += self.idle.eq(core.idle & ~full[0] & ~full[1] & (load_j == 0) & (pending == 0))
        return m

    def _elab_result_fifo(self, m, core, attrs):
        """Result words → a distributed-RAM FIFO → an output register → ``o_stream``.

        A word written in cycle ``c`` is valid on ``o_stream`` from ``c + 2``
        (:data:`hefl.golden.montmul_hw.OUT_FIFO_LATENCY`). ``2s`` words (two
        results) fit, which the start rule (two results pending at most)
        never exceeds.
        """
        w, s = self._w, self._s
        depth = 1 << (2 * s - 1).bit_length()
        m.submodules.res_mem = res_mem = Memory(shape=w + 1, depth=depth, init=[], attrs=attrs)
        wr, rd = res_mem.write_port(), res_mem.read_port(domain="comb")
        wp, rp = Signal(range(depth)), Signal(range(depth))
        count = Signal(range(depth + 1))
        o_valid = Signal()
        take = Signal()
        m.d.comb += [
            wr.en.eq(core.wr_en), wr.addr.eq(wp), wr.data.eq(Cat(core.wr_data, core.done)),
            rd.addr.eq(rp),
            take.eq((count != 0) & (~o_valid | self.o_stream.ready)),
            self.o_stream.valid.eq(o_valid),
        ]
        with m.If(core.wr_en):
            m.d.sync += wp.eq(wp + 1)
        m.d.sync += count.eq(count + core.wr_en - take)
        with m.If(take):
            m.d.sync += [rp.eq(rp + 1), self.o_stream.payload.eq(rd.data), o_valid.eq(1)]
        with m.Elif(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
