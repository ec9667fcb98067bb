"""MontMul: word-serial lazy CIOS Montgomery multiplier on one pipelined multiplier.

Interface (contract with ModExp / BatchEngine)
----------------------------------------------
``MontMul(operand_bits=L, word_bits=w)`` (keyword-only; optional ``tile_bits``),
``s = words_for(L, w)`` words, ``R = 2^(w·s) > 4N``.

* ``nprime`` In(w): ``N' = -N^-1 mod 2^w``, stable while operations run.
* ``n_wr_en`` In(1), ``n_wr_addr`` In(range(s)), ``n_wr_data`` In(w): write
  word ``n_wr_addr`` of ``N`` into the core's own modulus memory. Only
  while the core is :attr:`idle` (or between batches).
* ``i_stream`` In(stream, payload ``{a: w, b: w}``): ``s`` beats per
  operation, word 0 (least significant) first. ``a, b < 2N``.
* ``o_stream`` Out(stream, payload ``{data: w, last: 1}``): ``s`` beats per
  result, word 0 first, ``last`` on word ``s-1``. The result is
  ``≡ a·b·R^-1 (mod N)`` and ``< 2N`` (lazy reduction: no final
  subtraction; Walter 1999). Results come out in input order.
* ``idle`` Out(1): nothing loaded, running, or waiting to be read.

Two operand banks: the next operation loads while the current one runs, so
back-to-back operations keep the multiplier busy; the output FIFO holds two
results (``2s`` words) and an operation starts only when ``s`` words are free.

Algorithm (per row ``i`` of ``s``; model: :mod:`hefl.golden.montmul_hw`)
-----------------------------------------------------------------------
Loop-carried state is a ``w``-bit high half and a 2-bit carry, so each cycle
adds three ``w``-bit words and 2 bits, never a double word::

    pass 1  j = 0..s-1 : p = a_j·b_i ; u = t_j + lo(p) + hi(p_{j-1}) + c
                         t_j ← u mod 2^w ; c ← u >> w         (c ≤ 2)
                         T ← (hi(p_{s-1}), c) after j = s-1  (top word, kept unsummed)
    m slot             : m = lo(t_0 · N')                      (t_0 from pass-1 step 0)
    pass 2  j = 0..s-1 : q = m·N_j ; u = t_j + lo(q) + hi(q_{j-1}) + c
                         t_{j-1} ← u mod 2^w                  (j ≥ 1)
    tail               : t_{s-1} ← T.hi + T.c + hi(q_{s-1}) + c   (one cycle later)

``t < a + N < 3N < R`` between rows, so ``t`` needs ``s`` words in memory;
the result after row ``s-1`` is ``< 2N``.

Datapath and schedule
---------------------
One :class:`~hefl.hw.mulpipe.MulPipe` (latency ``P``; 51×51 from six 26×17
DSP48E2 tiles: ``P = 5``; 36×36 from four ECP5 18×18 tiles: ``P = 4``).
A slot issued at cycle ``k`` presents memory read addresses at ``k``, its operands reach the multiplier at ``k+2`` and its
product appears at ``k + D``, ``D = P + 2``::

    cycle  k        sequencer picks slot (P1 j | M | P2 j), reads a_j, b_i / N_j
    cycle  k+1      memory outputs registered (block RAM without logic behind it)
    cycle  k+2      operand mux (a_j,b_i | t_0,N' | m,N_j) → MulPipe
    cycle  k+D-2    t-memory read address j (output registered at k+D-1)
    cycle  k+D      v = t_j + lo + hi_prev  (carry-free; M: m ← lo)
    cycle  k+D+1    u = v + c → t memory / output FIFO; c ← u >> w
                    (P1 j=0 also → t0 register)
    cycle  k+D+2    (P2 j = s-1 only) tail T.hi + hi + T.c + c → tlast / FIFO

The only cycle-to-cycle loop is ``u = v + c``: one ``w``-bit add of a 2-bit
carry. The sequencer issues ``P1 0, 1, ...`` and inserts ``M`` once ``t0`` is
registered (``P1_0`` + D + 2); ``P2`` starts once ``m`` is registered
(``M`` + D + 1). For ``s + 1 ≥ 2D + 3`` no slot is idle: ``2s + 1`` cycles
per row, ``s(2s + 1)`` per operation (L = 4096, w = 51: s = 81, 13,203
cycles; 100 % multiplier utilisation), and the next row or operation
follows with no bubble. Smaller ``s`` wait for ``t0``/``m``; exact counts:
:func:`hefl.golden.montmul_hw.op_timing`.

Hazards
-------
* Pass 1 of row ``i+1`` reads ``t_j`` (address at ``k+D-2``), written by
  pass-2 step ``j+1`` of row ``i`` at ``k'+D+1``: at least ``s - 4`` cycles
  earlier (``s ≥`` ``MONTMUL_MIN_WORDS`` = 5); except ``t_{s-1}``, written by
  the tail, which pass 1 reads from the ``tlast`` register (the tail's cycle
  coincides with the next row's first write, so it does not use the
  memory's write port).
* Row 0 of an operation reads ``t = 0`` (no clearing pass).
* The ``T`` pair of row ``i`` is overwritten by pass-1 step ``s-1`` of row
  ``i+1``, well after row ``i``'s tail.

Deliberate deviations: results are ``< 2N``, not ``< N`` (the caller, e.g.
the Montgomery-domain exit of ModExp, reduces if it must).

Measured (``make hw-report`` → ``build/reports/montmul.json``)
--------------------------------------------------------------
L = 4096, yosys ``synth_xilinx -family xcup`` DSP48E2 × Verilator cycles/op:

=========  =====  ======  ==========  =========================
w          DSPs   s       cycles/op   DSP-cycles/op
=========  =====  ======  ==========  =========================
51 (2×3)   6      81      13,203      79,218  (chosen)
64 (3×4)   12     65      8,515       102,180
34 (2×2)   4      121     29,403      117,612
17 (1)     1      242     117,370     117,370
=========  =====  ======  ==========  =========================

(published systolic reference: 146,000; 26×17-tile floor ≈ 76,000).
ECP5-85F-6, w = 36 on four MULT18X18D, L = 1024 and 2048: 131 MHz
(nextpnr-ecp5, target 100 MHz).
"""

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for
from hefl.golden.montmul_hw import MEM_STAGES, op_timing
from hefl.golden.montmul_hw import mul_latency as model_mul_latency
from hefl.hw.checks import check_int
from hefl.hw.mulpipe import MulPipe
from hefl.hw.params import (
    MONTMUL_MIN_WORDS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)

__all__ = ["MontMul", "input_layout", "output_layout"]

# Slot kinds chosen by the sequencer.
_P1, _M, _P2 = 0, 1, 2


def input_layout(word_bits):
    """Payload of ``i_stream``: one word of each operand."""
    return data.StructLayout({"a": word_bits, "b": word_bits})


def output_layout(word_bits):
    """Payload of ``o_stream``: one result word, ``last`` on word ``s-1``."""
    return data.StructLayout({"data": word_bits, "last": 1})


class MontMul(wiring.Component):
    """One word-serial Montgomery multiplier (see the module docstring).

    Parameters
    ----------
    operand_bits : int
        ``L``: modulus width the core serves (``N < 2^L``).
    word_bits : int
        ``w``: word width (≤ 64).
    tile_bits : (int, int)
        Hard-multiplier tile widths: ``(26, 17)`` for DSP48E2 (default),
        ``(18, 18)`` for ECP5 MULT18X18D.
    """

    def __init__(self, *, operand_bits, word_bits=MONTMUL_WORD_BITS,
                 tile_bits=(TILE_A_BITS, TILE_B_BITS)):
        try:
            check_int("Operand width", operand_bits, 2)
            check_int("Word width", word_bits)
            if word_bits > 64:
                raise TypeError(f"Word width must be at most 64, not {word_bits!r}")
            if (not isinstance(tile_bits, tuple) or len(tile_bits) != 2):
                raise TypeError(f"Tile widths must be a pair of integers, not {tile_bits!r}")
            for t in tile_bits:
                check_int("Tile width", t)
            words = words_for(operand_bits, word_bits)
            if words < MONTMUL_MIN_WORDS:
                raise ValueError(f"MontMul needs at least {MONTMUL_MIN_WORDS} words; "
                                 f"{operand_bits} bits at w = {word_bits} give {words}")
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise
        self._L, self._w, self._s = operand_bits, word_bits, words
        self._tiles = tile_bits
        super().__init__({
            "nprime": In(word_bits),
            "n_wr_en": In(1),
            "n_wr_addr": In(range(words)),
            "n_wr_data": In(word_bits),
            "i_stream": In(stream.Signature(input_layout(word_bits))),
            "o_stream": Out(stream.Signature(output_layout(word_bits))),
            "idle": Out(1),
        })

    @property
    def operand_bits(self):
        return self._L

    @property
    def word_bits(self):
        return self._w

    @property
    def words(self):
        """``s``: words per operand and result."""
        return self._s

    @property
    def tile_bits(self):
        return self._tiles

    @property
    def mul_latency(self):
        """Latency ``P`` of the multiplier pipeline."""
        return model_mul_latency(self._w, *self._tiles)

    @property
    def timing(self):
        """Predicted cycle counts (:class:`hefl.golden.montmul_hw.OpTiming`)."""
        return op_timing(self._s, self.mul_latency)

    def elaborate(self, platform):
        m = Module()
        w, s = self._w, self._s

        m.submodules.mul = mul = MulPipe(a_bits=w, b_bits=w,
                                         tile_a=self._tiles[0], tile_b=self._tiles[1])
        assert mul.latency == self.mul_latency
        d = mul.latency + MEM_STAGES   # issue → product

        # --- memories: operands (two banks), modulus, accumulator t -----------
        m.submodules.a_mem = a_mem = Memory(shape=w, depth=2 * s, init=[])
        m.submodules.b_mem = b_mem = Memory(shape=w, depth=2 * s, init=[])
        m.submodules.n_mem = n_mem = Memory(shape=w, depth=s, init=[])
        m.submodules.t_mem = t_mem = Memory(shape=w, depth=s, init=[])
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        b_wr, b_rd = b_mem.write_port(), b_mem.read_port()
        n_wr, n_rd = n_mem.write_port(), n_mem.read_port()
        t_wr, t_rd = t_mem.write_port(), t_mem.read_port()
        m.submodules.ofifo = ofifo = SyncFIFOBuffered(width=w + 1, depth=2 * s)

        m.d.comb += [
            n_wr.en.eq(self.n_wr_en),
            n_wr.addr.eq(self.n_wr_addr),
            n_wr.data.eq(self.n_wr_data),
        ]

        st = _CoreState(w, s)
        self._elab_loader(m, st, a_wr, b_wr)
        self._elab_sequencer(m, st)
        bank_off = Mux(st.bank, s, 0)
        m.d.comb += [
            a_rd.addr.eq(bank_off + st.j),
            b_rd.addr.eq(bank_off + st.row),
            n_rd.addr.eq(st.j),
        ]
        ctl = self._elab_control_pipe(m, st, d)
        self._elab_operands(m, st, mul, ctl[2], a_rd, b_rd, n_rd)
        self._elab_accumulator(m, st, mul, ctl, t_rd, t_wr, ofifo)

        m.d.comb += [
            self.o_stream.payload.eq(ofifo.r_data),
            self.o_stream.valid.eq(ofifo.r_rdy),
            ofifo.r_en.eq(self.o_stream.ready),
            self.idle.eq(~st.active & ~st.full[0] & ~st.full[1] & (st.load_j == 0)
                         & (st.credits == 2 * s)),
        ]
        return m

    def _elab_loader(self, m, st, a_wr, b_wr):
        """``i_stream`` → operand bank ``load_bank``, one word pair per cycle.

        Ready while that bank is empty; its ``full`` flag rises after its
        ``s``-th word, and loading moves on to the other bank. The sequencer
        clears ``full`` when it has issued the operation's last slot.
        """
        s, full = self._s, st.full
        in_hs = self.i_stream.valid & self.i_stream.ready
        m.d.comb += [
            self.i_stream.ready.eq(~Mux(st.load_bank, full[1], full[0])),
            a_wr.addr.eq(Mux(st.load_bank, s, 0) + st.load_j),
            b_wr.addr.eq(Mux(st.load_bank, s, 0) + st.load_j),
            a_wr.data.eq(self.i_stream.payload.a),
            b_wr.data.eq(self.i_stream.payload.b),
            a_wr.en.eq(in_hs),
            b_wr.en.eq(in_hs),
        ]
        with m.If(in_hs):
            with m.If(st.load_j == s - 1):
                m.d.sync += [st.load_j.eq(0), st.load_bank.eq(~st.load_bank)]
                with m.If(st.load_bank):
                    m.d.sync += full[1].eq(1)
                with m.Else():
                    m.d.sync += full[0].eq(1)
            with m.Else():
                m.d.sync += st.load_j.eq(st.load_j + 1)

    def _elab_sequencer(self, m, st):
        """Output credits and the slot sequencer: at most one slot (P1 j | M | P2 j) a cycle.

        An operation starts when its bank is full and ``s`` output-FIFO words
        are free (it reserves them: ``credits``). Per row, P1 ``j = 0..s-1``
        issue on consecutive cycles; ``M`` is inserted the cycle ``t0`` is
        registered, and P2 ``j = 0..s-1`` follow once ``m`` is registered.
        After the last row's P2, the next operation (other bank) starts in
        the same cycle if it can, so there is no bubble.
        """
        s, full = self._s, st.full
        out_hs = self.o_stream.valid & self.o_stream.ready
        m.d.sync += st.credits.eq(st.credits - Mux(st.start, s, 0) + out_hs)

        cur_full = Mux(st.bank, full[1], full[0])
        other_full = Mux(st.bank, full[0], full[1])
        room = st.credits >= s

        def begin_op():
            m.d.sync += [st.active.eq(1), st.row.eq(0), st.pass2.eq(0), st.j.eq(0),
                         st.m_issued.eq(0)]
            m.d.comb += st.start.eq(1)

        def issue(kind):
            m.d.comb += [st.issue.eq(1), st.kind.eq(kind)]

        with m.If(~st.active):
            with m.If(cur_full & room):
                begin_op()
        with m.Elif(~st.pass2):
            with m.If(~st.m_issued & st.t0_valid):
                issue(_M)
                m.d.sync += [st.m_issued.eq(1), st.t0_valid.eq(0)]
                with m.If(st.j == s):
                    m.d.sync += [st.pass2.eq(1), st.j.eq(0)]
            with m.Elif(st.j != s):
                issue(_P1)
                m.d.sync += st.j.eq(st.j + 1)
                with m.If((st.j == s - 1) & st.m_issued):
                    m.d.sync += [st.pass2.eq(1), st.j.eq(0)]
        with m.Else():
            with m.If(st.m_valid):
                issue(_P2)
                m.d.sync += st.j.eq(st.j + 1)
                with m.If(st.j == s - 1):
                    m.d.sync += [st.m_valid.eq(0), st.j.eq(0), st.pass2.eq(0),
                                 st.m_issued.eq(0)]
                    with m.If(st.row == s - 1):
                        # Operation done issuing: free its bank, go on to the other.
                        m.d.sync += st.bank.eq(~st.bank)
                        with m.If(st.bank):
                            m.d.sync += full[1].eq(0)
                        with m.Else():
                            m.d.sync += full[0].eq(0)
                        with m.If(other_full & room):
                            begin_op()
                        with m.Else():
                            m.d.sync += st.active.eq(0)
                    with m.Else():
                        m.d.sync += st.row.eq(st.row + 1)

    def _elab_control_pipe(self, m, st, d):
        """What each product is: ``ctl[k]`` describes the slot issued ``k`` cycles ago.

        Returns the ``d + 2`` stages ``ctl[0]`` (issue, combinational) …
        ``ctl[d + 1]``. Flags are decoded at issue so that no comparator sits
        in front of the accumulator's adders.
        """
        s = self._s
        ctl_layout = data.StructLayout({
            "p1": 1, "m": 1, "p2": 1, "j": range(s + 1),
            "j0": 1, "jlast": 1, "first": 1, "last": 1})
        ctl = [Signal(ctl_layout, name=f"ctl{k}") for k in range(d + 2)]
        m.d.comb += [
            ctl[0].p1.eq(st.issue & (st.kind == _P1)),
            ctl[0].m.eq(st.issue & (st.kind == _M)),
            ctl[0].p2.eq(st.issue & (st.kind == _P2)),
            ctl[0].j.eq(st.j),
            ctl[0].j0.eq(st.j == 0),
            ctl[0].jlast.eq(st.j == s - 1),
            ctl[0].first.eq(st.row == 0),
            ctl[0].last.eq(st.row == s - 1),
        ]
        for k in range(1, d + 2):
            m.d.sync += ctl[k].eq(ctl[k - 1])
        return ctl

    def _elab_operands(self, m, st, mul, c2, a_rd, b_rd, n_rd):
        """Operand registers (cycle k+1) and the multiplier's operand mux (k+2).

        Block RAM outputs are registered before any logic: an ECP5 DP16KD
        without its output register has a ~5.6 ns clock-to-out. The mux
        picks ``a_j·b_i`` (P1), ``t_0·N'`` (M) or ``m·N_j`` (P2) by ``c2``,
        the control stage of the slot now entering the multiplier.
        """
        w = self._w
        a_q = Signal(w)
        b_q = Signal(w)
        n_q = Signal(w)
        m.d.sync += [a_q.eq(a_rd.data), b_q.eq(b_rd.data), n_q.eq(n_rd.data)]
        with m.If(c2.p1):
            m.d.comb += [mul.a.eq(a_q), mul.b.eq(b_q)]
        with m.Elif(c2.m):
            m.d.comb += [mul.a.eq(st.t0_reg), mul.b.eq(self.nprime)]
        with m.Else():
            m.d.comb += [mul.a.eq(st.m_reg), mul.b.eq(n_q)]

    def _elab_accumulator(self, m, st, mul, ctl, t_rd, t_wr, ofifo):
        """The accumulator's two stages and the tail; result words into ``ofifo``.

        Stage 1 (cycle k+D, control ``ctl[d]``): the carry-free sum
        ``v = t_j + lo + hi_prev``, with ``t_j`` read two cycles ahead (0 in
        row 0, the ``tlast`` register for ``j = s-1``); an M slot registers
        ``m``. Stage 2 (k+D+1, ``ctl[d+1]``): ``u = v + c``, the only
        loop-carried add, written to t (P1 at ``j``, P2 at ``j - 1``; P1
        ``j = 0`` also to ``t0_reg``). Tail (k+D+2 after P2 ``j = s-1``):
        ``t_{s-1} = T.hi + hi + T.c + c`` into ``tlast``. In the last row,
        P2's words and the tail go to the output FIFO.
        """
        w = self._w
        d = len(ctl) - 2
        # --- stage 1 (cycle k+D): carry-free three-word sum ------------------
        # t read two cycles ahead, output registered (as for the operands).
        m.d.comb += t_rd.addr.eq(ctl[d - 2].j)
        t_q = Signal(w)
        m.d.sync += t_q.eq(t_rd.data)
        c = ctl[d]
        lo, hi = mul.o[:w], mul.o[w:]
        hi_prev = Signal(w)
        tlast = Signal(w)
        t_hi = Signal(w)
        v = Signal(w + 2)
        y = Signal(w + 1)       # T.hi + hi(q_{s-1}): the tail without its carries
        t_in = Mux(c.p1 & c.first, 0, Mux(c.p1 & c.jlast, tlast, t_q))
        m.d.sync += v.eq(t_in + lo + Mux(c.j0, 0, hi_prev))
        with m.If(c.p1 | c.p2):
            m.d.sync += hi_prev.eq(hi)
        with m.If(c.p1 & c.jlast):
            m.d.sync += t_hi.eq(hi)
        with m.If(c.p2 & c.jlast):
            m.d.sync += y.eq(t_hi + hi)
        with m.If(c.m):
            m.d.sync += [st.m_reg.eq(lo), st.m_valid.eq(1)]

        # --- stage 2 (cycle k+D+1): the loop-carried 2-bit carry ---------------
        e = ctl[d + 1]
        carry = Signal(2)
        t_c = Signal(2)
        tq_c = Signal(2)
        tail_pend = Signal()
        tail_last = Signal()
        u = Signal(w + 2)
        m.d.comb += u.eq(v + Mux(e.j0, 0, carry))
        with m.If(e.p1 | e.p2):
            m.d.sync += carry.eq(u[w:])
        with m.If(e.p1):
            m.d.comb += [t_wr.en.eq(1), t_wr.addr.eq(e.j), t_wr.data.eq(u[:w])]
            with m.If(e.j0):
                m.d.sync += [st.t0_reg.eq(u[:w]), st.t0_valid.eq(1)]
            with m.If(e.jlast):
                m.d.sync += t_c.eq(u[w:])
        with m.If(e.p2 & ~e.j0):
            m.d.comb += [t_wr.en.eq(1), t_wr.addr.eq(e.j - 1), t_wr.data.eq(u[:w])]
        m.d.sync += tail_pend.eq(e.p2 & e.jlast)
        with m.If(e.p2 & e.jlast):
            m.d.sync += [tq_c.eq(u[w:]), tail_last.eq(e.last)]

        # --- tail (cycle k+D+2 of P2 s-1): t_{s-1} = T.hi + hi + T.c + c -------
        ut = Signal(w + 2)
        m.d.comb += ut.eq(y + (t_c + tq_c))
        with m.If(tail_pend):
            m.d.sync += tlast.eq(ut[:w])

        # --- result words → output FIFO ----------------------------------------
        m.d.comb += [
            ofifo.w_en.eq((e.p2 & ~e.j0 & e.last) | (tail_pend & tail_last)),
            ofifo.w_data.eq(Mux(tail_pend, Cat(ut[:w], C(1, 1)), Cat(u[:w], C(0, 1)))),
        ]


class _CoreState:
    """Registers shared by MontMul's loader, sequencer and datapath.

    Parameters
    ----------
    w, s : int
        Word width and words per operand.
    """

    def __init__(self, w, s):
        # Loader.
        self.full = [Signal(name="bank0_full"), Signal(name="bank1_full")]
        self.load_bank = Signal()
        self.load_j = Signal(range(s))
        # Output credits: an operation reserves s FIFO words at its start.
        self.credits = Signal(range(2 * s + 1), init=2 * s)
        self.start = Signal()
        # Sequencer.
        self.active = Signal()
        self.bank = Signal()
        self.row = Signal(range(s))
        self.pass2 = Signal()
        self.j = Signal(range(s + 1))
        self.m_issued = Signal()
        self.t0_valid = Signal()             # t_0 of this row registered (M may issue)
        self.m_valid = Signal()              # m of this row registered (P2 may issue)
        self.issue = Signal()
        self.kind = Signal(2)
        # Datapath values the operand mux reads back.
        self.t0_reg = Signal(w)
        self.m_reg = Signal(w)
