"""MontMul: word-serial lazy CIOS Montgomery multiplier (with a squaring mode) on one pipelined multiplier.

The core owns no operand storage: it reads ``a``, ``b`` and ``N`` in place
from its caller's memory (one synchronous read port, e.g. a ModExp lane's
block RAM) and writes the result words back through one write port. Only the
accumulator ``t`` (``s`` words) is its own.

Interface (contract with ModExp; :mod:`hefl.hw.montmul_stream` wraps it in streams)
-----------------------------------------------------------------------------------
``MontMul(operand_bits=L, word_bits=w, addr_bits=aw)`` (keyword-only;
optional ``tile_bits``, ``hard_mult``, ``t_ram_style``), ``s = words_for(L, w)`` words,
``R = 2^(w·s) > 4N``.

* ``nprime`` In(w): ``N' = -N^-1 mod 2^w``, stable while operations run.
* ``start`` In(1), ``ready`` Out(1): an operation is accepted in a cycle with
  both high; it reads ``op_a``, ``op_b``, ``op_dst`` (base addresses of
  ``s``-word slots: streamed operand ``a``, row operand ``b``, result) and
  ``op_mode`` (:data:`MODE`: ``mul``, ``sqr`` with ``op_a = op_b``, or
  ``one``: ``a`` is the constant 1 and is not read). ``op_n`` (the
  modulus slot) is read throughout, like ``nprime``: hold it stable.
  ``ready`` is high from the cycle after the op's last issue, so a next
  operation may start before this one's result is written.
* ``rd_addr`` Out(aw), ``rd_en`` Out(1), ``rd_data`` In(w): the caller's
  memory, synchronous: ``rd_data`` holds the word at the previous cycle's
  ``rd_addr``. ``rd_addr`` is a register; the core reads in every cycle
  with ``rd_en`` high (from the cycle after an accept to the cycle after
  its last issue) and the caller may use the port otherwise.
* ``wr_en`` Out(1), ``wr_addr`` Out(aw), ``wr_data`` Out(w) (registers):
  result word ``j`` goes to ``op_dst + j``; ``done`` Out(1) marks the cycle
  of the last.
  The result is ``≡ a·b·R^-1 (mod N)`` and ``< 2N`` for ``a, b < 2N``.
* ``idle`` Out(1): nothing accepted, issuing or waiting to be written.

The result may overwrite ``a`` or ``b`` (``op_dst = op_a``): every operand
word is read before the first result word is written. A next operation that
reads this one's result may start at ``ready`` when ``s ≥ D + 2``
(:attr:`MontMul.chain_safe`); otherwise it must wait for ``idle``.

Algorithm, bounds, modes and the exact schedule: :mod:`hefl.golden.montmul_hw`
(the bit-exact model and the cycle model). In short, per row ``i``::

    pass 1  j = j0..s-1 : p = f·b_i·a_j ; u = t_j + lo(p) + hi(p_{j-1}) + c
                          (j0 = i and f = 2 for j > i in sqr mode; else 0, 1)
    m slot             : m = lo(t_0 · N')
    pass 2  j = 0..s-1 : q = m·N_j ; u = t_j + lo(q) + hi(q_{j-1}) + c ; t_{j-1} ← u
    tail               : t_{s-1} ← T.hi + T.c + hi(q_{s-1}) + c

``t < 3N`` between rows (``< 5N`` for squarings: the top word then needs
``w + 1`` bits and lives in the ``tlast`` register), ``c ≤ 3``, result
``< 2N``. A squaring needs ``s(s+1)/2 + s² + s`` slots instead of
``2s² + s``.

Datapath and schedule
---------------------
One :class:`~hefl.hw.mulpipe.MulPipe` of ``(w+1) × w`` bits, latency ``P``
(the doubled row word ``2·b_i`` is the ``w + 1``-bit side: on DSP48E2 its two
26-bit chunks hold 52 bits, so 51 × 51 and 52 × 51 both take six tiles).
A slot issued at cycle ``k`` presents its read address at ``k``::

    cycle  k        sequencer picks the slot (B | M | P1 j | P2 j), its address
    cycle  k+1      rd_addr register → memory
    cycle  k+2      memory output
    cycle  k+3      rd_q (the read registered before any logic); operand mux
                    (P1: b_i or 2·b_i × a_j | M: t_0 × N' | P2: m × N_j) → MulPipe
    cycle  k+D-2    t-memory read address j (output registered at k+D-1)
    cycle  k+D      v = t_j + lo + hi_prev (carry-free; M: m ← lo)   D = P + 3
    cycle  k+D+1    u = v + c → t-write / result registers; c ← u >> w
    cycle  k+D+2    (P2 j = s-1 only) tail T.hi + T.c + hi + c → t-write / result registers
                    (words reach the t memory and the result port one cycle later)

The only cycle-to-cycle loop is ``u = v + c``: one add of a 2-bit carry.
Pass-1 step 0 writes no t word (its sum is ``t_0``, kept in a register for
the m slot) and pass-2 step 0 needs only ``t_0 ≠ 0`` for its carry: the tail
uses that write cycle to put ``t_{s-1}`` into the t memory, so no mux sits in
front of the adders.
The row word ``b_i`` comes from the caller's memory too: the ``B`` slot
reads ``b_0``, each row's ``M`` slot reads ``b_{i+1}`` into ``b_next``, which
moves to ``b_cur`` when the row's pass 2 begins. ``mul``: ``s(2s+1) + 2``
issue cycles per operation for ``s ≥ 2D + 2`` (L = 4096, w = 51: s = 81,
13,205; 99.98 % multiplier utilisation); ``sqr``: ``s(s+1)/2 + s² + s + 2``
plus the waits of the last few rows. Exact counts:
:func:`hefl.golden.montmul_hw.op_schedule`.

Measured (``make hw-report`` → ``build/reports/montmul.json``): see
:mod:`hefl.flows.report`.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for
from hefl.golden.montmul_hw import MEM_STAGES, MODES, hold_cycles, op_timing
from hefl.golden.montmul_hw import mul_latency as model_mul_latency
from hefl.hw.checks import check_int
from hefl.hw.mulpipe import MulPipe
from hefl.hw.params import (
    MONTMUL_MIN_WORDS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)

__all__ = ["MontMul", "MODE", "T_RAM_STYLES"]

#: ``t_ram_style`` values: None (the tool's choice, LUT-RAM) or ``"block"``.
T_RAM_STYLES = (None, "block")


class MODE(enum.Enum, shape=2):
    """``op_mode``: the operation's mode, from the caller's schedule (never from data)."""

    MUL = 0
    SQR = 1
    ONE = 2


#: MODE member of each golden-model mode name.
MODE_OF = dict(zip(MODES, (MODE.MUL, MODE.SQR, MODE.ONE)))


class MontMul(wiring.Component):
    """One word-serial Montgomery multiplier reading its operands in place (module docstring).

    Parameters
    ----------
    operand_bits : int
        ``L``: modulus width the core serves (``N < 2^L``).
    word_bits : int
        ``w``: word width (≤ 64).
    addr_bits : int, optional
        Width of the caller's memory addresses; default: enough for four
        ``s``-word slots.
    tile_bits : (int, int)
        Hard-multiplier tile widths: ``(26, 17)`` for DSP48E2 (default),
        ``(18, 18)`` for ECP5 MULT18X18D.
    hard_mult : str, optional
        Passed to :class:`~hefl.hw.mulpipe.MulPipe` (``"ecp5"``: instantiate
        the registered MULT18X18D primitive).
    t_ram_style : str, optional
        ``"block"``: the ``t`` memory's ``ram_style`` attribute, one block RAM
        (a RAMB36E2 on UltraScale+) instead of LUT-RAM (64 LUTs at
        ``s = 41``, ``w = 51``). Default: the tool's choice (LUT-RAM).
        Worth it where block RAM is not the scarce resource, e.g. with the
        lane memories in UltraRAM (:data:`hefl.hw.modexp.RAM_STYLES`).
    """

    def __init__(self, *, operand_bits, word_bits=MONTMUL_WORD_BITS, addr_bits=None,
                 tile_bits=(TILE_A_BITS, TILE_B_BITS), hard_mult=None, t_ram_style=None):
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
            if addr_bits is None:
                addr_bits = (4 * words - 1).bit_length()
            check_int("Address width", addr_bits)
            if t_ram_style not in T_RAM_STYLES:
                raise TypeError(f"t RAM style must be one of {T_RAM_STYLES}, not {t_ram_style!r}")
            if words < MONTMUL_MIN_WORDS:
                raise ValueError(f"MontMul needs at least {MONTMUL_MIN_WORDS} words; "
                                 f"{operand_bits} bits at w = {word_bits} give {words}")
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise
        self._L, self._w, self._s, self._aw = operand_bits, word_bits, words, addr_bits
        self._tiles = tile_bits
        self._hard = hard_mult
        self._t_style = t_ram_style
        super().__init__({
            "nprime": In(word_bits),
            "start": In(1),
            "ready": Out(1),
            "op_a": In(addr_bits),
            "op_b": In(addr_bits),
            "op_n": In(addr_bits),
            "op_dst": In(addr_bits),
            "op_mode": In(MODE),
            "rd_addr": Out(addr_bits),
            "rd_en": Out(1),
            "rd_data": In(word_bits),
            "wr_en": Out(1),
            "wr_addr": Out(addr_bits),
            "wr_data": Out(word_bits),
            "done": Out(1),
            "idle": Out(1),
        })

    operand_bits = property(lambda self: self._L)
    word_bits = property(lambda self: self._w)
    addr_bits = property(lambda self: self._aw)
    tile_bits = property(lambda self: self._tiles)

    @property
    def words(self):
        """``s``: words per operand and result."""
        return self._s

    @property
    def mul_latency(self):
        """Latency ``P`` of the multiplier pipeline."""
        return model_mul_latency(self._w, *self._tiles)

    @property
    def chain_safe(self):
        """A dependent op may start at ``ready`` (not only at ``idle``): ``s ≥ D + 2``."""
        return self._s >= self.mul_latency + MEM_STAGES + 2

    @property
    def timing(self):
        """Predicted cycle counts of a multiply (:class:`hefl.golden.montmul_hw.OpTiming`)."""
        return self.timing_of("mul")

    def timing_of(self, mode):
        """Predicted cycle counts in ``mode`` (``"mul"``, ``"sqr"``, ``"one"``)."""
        return op_timing(self._s, self.mul_latency, mode)

    def elaborate(self, platform):
        m = Module()
        w = self._w
        m.submodules.mul = mul = MulPipe(a_bits=w + 1, b_bits=w, tile_a=self._tiles[0],
                                         tile_b=self._tiles[1], hard_mult=self._hard)
        assert mul.latency == self.mul_latency
        d = mul.latency + MEM_STAGES   # issue → product

        # t: w + 1 bits, the top word of a squaring's partial sum needs them.
        attrs = {"ram_style": self._t_style} if self._t_style else {}
        m.submodules.t_mem = t_mem = Memory(shape=w + 1, depth=self._s, init=[], attrs=attrs)
        t_wr, t_rd = t_mem.write_port(), t_mem.read_port()

        st = _CoreState(w, self._s, self._aw)
        self._elab_sequencer(m, st)
        ctl = self._elab_control_pipe(m, st, d)
        self._elab_operands(m, st, mul, ctl)
        self._elab_accumulator(m, st, mul, ctl, t_rd, t_wr)
        m.d.comb += [self.ready.eq(~st.active), self.idle.eq(~st.active & ~st.drain)]
        return m

    def _elab_sequencer(self, m, st):
        """Accept, then one slot per cycle: B, an idle cycle, then rows of M | P1 j | P2 j.

        Within a row: ``M`` as soon as ``t_0`` is registered (``t0_valid``),
        else the next pass-1 slot unless ``hold`` (the t-memory hazard wait,
        :func:`hefl.golden.montmul_hw.hold_cycles`) is running, and pass 2
        once ``m`` is registered (``m_valid``). The read address is a base
        (``op_a``, ``op_b`` latched at accept; ``op_n``, held by the caller)
        plus an offset: ``j`` for P1/P2, ``b_off`` (the next row word) for B/M.
        """
        s = self._s
        sq = st.mode == MODE.SQR
        with m.If(self.start & ~st.active):
            m.d.sync += [
                st.active.eq(1), st.b_pend.eq(1), st.row.eq(0), st.j.eq(0), st.pass2.eq(0),
                st.m_issued.eq(0), st.p1_first.eq(1), st.hold.eq(0), st.mode.eq(self.op_mode),
                st.a_base.eq(self.op_a), st.b_base.eq(self.op_b), st.b_off.eq(0),
                st.dst.eq(self.op_dst), st.last_row.eq(s == 1),
            ]
        with m.If(st.hold != 0):
            m.d.sync += st.hold.eq(st.hold - 1)

        # The three candidate addresses are summed from registers in parallel
        # with the decision, which only selects: a short path to rd_addr.
        is_b = (st.kind == _Slot.B) | (st.kind == _Slot.M)
        a_addr, b_addr, n_addr = (Signal(self._aw, name=f"{x}_addr") for x in "abn")
        m.d.comb += [a_addr.eq(st.a_base + st.j), b_addr.eq(st.b_base + st.b_off),
                     n_addr.eq(self.op_n + st.j)]
        m.d.sync += [
            self.rd_addr.eq(Mux(is_b, b_addr, Mux(st.kind == _Slot.P1, a_addr, n_addr))),
            self.rd_en.eq(st.kind != _Slot.NONE),
        ]

        with m.If(~st.active):
            pass
        with m.Elif(st.b_pend):
            m.d.comb += st.kind.eq(_Slot.B)
            m.d.sync += [st.b_pend.eq(0), st.b_wait.eq(1), st.b_off.eq(1)]
        with m.Elif(st.b_wait):
            m.d.sync += st.b_wait.eq(0)
        with m.Elif(~st.pass2):
            with m.If(~st.m_issued & st.t0_valid):
                m.d.comb += st.kind.eq(_Slot.M)
                m.d.sync += [st.m_issued.eq(1), st.t0_valid.eq(0), st.b_off.eq(st.b_off + 1)]
                with m.If(st.j == s):
                    m.d.sync += [st.pass2.eq(1), st.j.eq(0)]
            with m.Elif((st.j != s) & (st.hold == 0)):
                m.d.comb += st.kind.eq(_Slot.P1)
                m.d.sync += st.p1_first.eq(0)
                with m.If((st.j == s - 1) & st.m_issued):
                    m.d.sync += [st.pass2.eq(1), st.j.eq(0)]
                with m.Else():
                    m.d.sync += st.j.eq(st.j + 1)
        with m.Elif(st.m_valid):
            m.d.comb += st.kind.eq(_Slot.P2)
            m.d.sync += st.j.eq(st.j + 1)
            with m.If(st.j == s - 1):
                # End of the row: the next row, or the end of the op's issue phase.
                m.d.sync += [st.m_issued.eq(0), st.m_valid.eq(0), st.pass2.eq(0),
                             st.p1_first.eq(1), st.hold.eq(st.hold_next)]
                with m.If(st.last_row):
                    m.d.sync += st.active.eq(0)
                    m.d.comb += st.drain_set.eq(1)
                with m.Else():
                    m.d.sync += [st.row.eq(st.row + 1), st.last_row.eq(st.row == s - 2),
                                 st.j.eq(Mux(sq, st.row + 1, 0))]
        # hold for the next row: a small table of constants on the rows left.
        q = Signal(range(s + 1))           # rows left after the next one
        m.d.comb += q.eq(s - 2 - st.row)
        m.d.comb += st.hold_next.eq(hold_cycles(s, "mul", 0))
        with m.If(sq):
            m.d.comb += st.hold_next.eq(hold_cycles(s, "sqr", s - 6) if s > 6 else 1)
            for rows_left in range(0, 5):
                r = s - 1 - rows_left
                if r >= 1:
                    with m.If(q == rows_left):
                        m.d.comb += st.hold_next.eq(hold_cycles(s, "sqr", r))

    def _elab_control_pipe(self, m, st, d):
        """What each slot is: ``ctl[k]`` describes the slot issued ``k`` cycles ago.

        Returns the ``d + 2`` stages ``ctl[0]`` (issue, combinational) …
        ``ctl[d + 1]``. Flags are decoded at issue so that no comparator sits
        in front of the accumulator's adders.
        """
        s = self._s
        ctl_layout = data.StructLayout({
            "b": 1, "p1": 1, "m": 1, "p2": 1, "j": range(s + 1),
            "start": 1,      # first slot of its carry chain (hi_prev = c = 0)
            "j0": 1, "jlast": 1, "first": 1, "last": 1,
            "one": 1,        # pass 1 of mode ONE: a_j is the constant (j == 0)
            "t0cap": 1,      # this slot's word-0 sum is t_0 for the next M and pass-2 step 0
            "bnext": 1,      # M slot whose read is the next row word
            "asel": _ASel,   # the multiplier's a operand; B2 (2·b_i): pass 1 of a
                             # squaring, off the diagonal
        })
        ctl = [Signal(ctl_layout, name=f"ctl{k}") for k in range(d + 2)]
        c0 = ctl[0]
        sq = st.mode == MODE.SQR
        is_p1, is_p2 = st.kind == _Slot.P1, st.kind == _Slot.P2
        m.d.comb += [
            c0.b.eq(st.kind == _Slot.B),
            c0.p1.eq(is_p1),
            c0.m.eq(st.kind == _Slot.M),
            c0.p2.eq(is_p2),
            c0.j.eq(st.j),
            c0.start.eq((is_p1 & st.p1_first) | (is_p2 & (st.j == 0))),
            c0.j0.eq(st.j == 0),
            c0.jlast.eq(st.j == s - 1),
            c0.first.eq(st.row == 0),
            c0.last.eq(st.last_row),
            c0.one.eq(is_p1 & (st.mode == MODE.ONE)),
            c0.t0cap.eq((is_p1 & (st.j == 0)) | (is_p2 & (st.j == 1) & sq & ~st.last_row)),
            c0.bnext.eq(~st.last_row),
            c0.asel.eq(Mux(is_p1, Mux(sq & ~st.p1_first, _ASel.B2, _ASel.B),
                           Mux(st.kind == _Slot.M, _ASel.T0, _ASel.M))),
        ]
        for k in range(1, d + 2):
            m.d.sync += ctl[k].eq(ctl[k - 1])
        return ctl

    def _elab_operands(self, m, st, mul, ctl):
        """Read data register, row-word registers and the multiplier's operand mux.

        ``rd_q`` registers the caller's memory output before any logic. The
        B slot's and the M slots' words go to ``b_next``; ``b_cur`` takes it
        one cycle after B's word and when a row's pass 2 begins (after the
        row's last pass-1 operand, before the next row's first). The mux
        (control stage ``ctl[MEM_STAGES]``): P1 ``b_cur`` (``2·b_cur`` when
        doubling) × ``a_j`` (the constant ``j == 0`` in mode ONE), M
        ``t_0 × N'``, P2 ``m × N_j``.
        """
        w = self._w
        c2, c3 = ctl[MEM_STAGES], ctl[MEM_STAGES + 1]
        rd_q = Signal(w)
        m.d.sync += rd_q.eq(self.rd_data)
        with m.If(c2.b | (c2.m & c2.bnext)):
            m.d.sync += st.b_next.eq(rd_q)
        with m.If(c3.b | (c2.p2 & c2.start)):
            m.d.sync += st.b_cur.eq(st.b_next)
        # a: selected by the slot's registered 2-bit code, one LUT6 per bit (as
        # nested muxes on the p1, dbl and m flags it took two).
        with m.Switch(c2.asel):
            with m.Case(_ASel.B):
                m.d.comb += mul.a.eq(st.b_cur)
            with m.Case(_ASel.B2):
                m.d.comb += mul.a.eq(st.b_cur << 1)
            with m.Case(_ASel.T0):
                m.d.comb += mul.a.eq(st.t0_reg)
            with m.Case(_ASel.M):
                m.d.comb += mul.a.eq(st.m_reg)
        with m.If(c2.p1):
            m.d.comb += mul.b.eq(Mux(c2.one, c2.j0, rd_q))
        with m.Elif(c2.m):
            m.d.comb += mul.b.eq(self.nprime)
        with m.Else():
            m.d.comb += mul.b.eq(rd_q)

    def _elab_accumulator(self, m, st, mul, ctl, t_rd, t_wr):
        """The accumulator's two stages and the tail; result words to the write port.

        Stage 1 (cycle k+D, ``ctl[d]``): ``v = t_j + lo + hi_prev``, with
        ``t_j`` read two cycles ahead into ``t_q`` (reset to 0 in row 0's
        pass 1) and ``hi_prev`` reset before a chain's first slot; an M slot
        registers ``m``. Stage 2 (k+D+1, ``ctl[d+1]``): ``u = v + c``, the
        only loop-carried add, written to t (P1 at ``j ≥ 1``, P2 at
        ``j - 1``); pass-2 step 0 only sets the carry, ``t_0 ≠ 0``; pass-1
        step 0 only sets ``t_0``. Tail (k+D+2 after P2 ``j = s-1``):
        ``t_{s-1} = (T.hi + T.c) + hi + c`` (the first sum formed while pass 2
        runs, the second at P2 ``s-1``'s stage 1) into the t memory (its ``w+1``-th bit
        for squarings). In the last row pass 2's words and the tail are the
        result; one mux feeds both the t memory and the result port.

        Built in four parts, in the order the words flow:
        :meth:`_elab_acc_stage1` (t read, ``v``, the tail's first sums),
        :meth:`_elab_acc_stage2` (the carry loop, ``u``),
        :meth:`_elab_acc_t_write` (the tail's last add, the word mux, the t
        write) and :meth:`_elab_acc_result` (the result port and ``drain``).
        """
        v, t_c, y = self._elab_acc_stage1(m, st, mul, ctl, t_rd)
        u, tq_c, tail_pend, tail_last = self._elab_acc_stage2(m, st, ctl, v, t_c)
        word = self._elab_acc_t_write(m, ctl, t_wr, u, y, tq_c, tail_pend)
        self._elab_acc_result(m, st, ctl, word, tail_pend, tail_last)

    def _elab_acc_stage1(self, m, st, mul, ctl, t_rd):
        """Stage 1 (cycle k+D, ``ctl[d]``): the carry-free sum ``v = t_j + lo + hi_prev``.

        The t memory is addressed at ``ctl[d-2]`` so that ``t_j`` is in the
        register ``t_q`` by stage 1 (0 in row 0's pass 1: t starts at 0, and
        the memory is never cleared). ``hi_prev`` is reset before a chain's
        first slot. An M slot registers ``m = lo(t_0·N')``. Alongside, the
        tail's first two sums are formed off the loop: ``T.hi + T.c`` while
        pass 2 runs and ``y = T.hi + T.c + hi(q_{s-1})`` at P2 ``s-1``.

        Returns ``(v, t_c, y)``; ``t_c`` (pass 1's top carry ``T.c``) is
        driven by :meth:`_elab_acc_stage2`.
        """
        w = self._w
        d = len(ctl) - 2
        m.d.comb += t_rd.addr.eq(ctl[d - 2].j)
        t_q = Signal(w + 1)
        with m.If(ctl[d - 1].p1 & ctl[d - 1].first):
            m.d.sync += t_q.eq(0)                # row 0 reads t = 0
        with m.Else():
            m.d.sync += t_q.eq(t_rd.data)
        c = ctl[d]
        lo, hi = mul.o[:w], mul.o[w:2 * w + 1]
        hi_prev = Signal(w + 1)
        t_hi = Signal(w + 1)
        t_c = Signal(3)
        th_c = Signal(w + 2)                # T.hi + T.c, summed while pass 2 runs
        v = Signal(w + 3)
        y = Signal(w + 2)                   # T.hi + T.c + hi(q_{s-1}): the tail but its last carry
        m.d.sync += v.eq(t_q + lo + hi_prev)
        with m.If(ctl[d - 1].start):
            m.d.sync += hi_prev.eq(0)           # the next slot starts a chain
        with m.Elif(c.p1 | c.p2):
            m.d.sync += hi_prev.eq(hi)
        with m.If(c.p1 & c.jlast):
            m.d.sync += t_hi.eq(hi)
        m.d.sync += th_c.eq(t_hi + t_c)
        with m.If(c.p2 & c.jlast):
            m.d.sync += y.eq(th_c + hi)
        with m.If(c.m):
            m.d.sync += [st.m_reg.eq(lo), st.m_valid.eq(1)]
        return v, t_c, y

    def _elab_acc_stage2(self, m, st, ctl, v, t_c):
        """Stage 2 (cycle k+D+1, ``ctl[d+1]``): ``u = v + c``, the loop-carried 2-bit carry.

        This is the core's only cycle-to-cycle loop, so the next carry is
        computed without the full-width add (see below). The carry restarts
        at 0 for a chain's first slot and at ``t_0 ≠ 0`` for pass-2 step 0.
        Pass 1's last word leaves its top bits in ``t_c`` (``T.c``); the
        t_0-capturing slots register ``t_0`` for the M slot and raise
        ``t0_valid``; P2 ``s-1`` arms the tail (``tail_pend``, one cycle) with
        its carry ``tq_c`` and whether it is the last row (``tail_last``).

        Returns ``(u, tq_c, tail_pend, tail_last)``.
        """
        w = self._w
        d = len(ctl) - 2
        c = ctl[d]
        e = ctl[d + 1]
        carry = Signal(2)
        tq_c = Signal(2)
        tail_pend = Signal()
        tail_last = Signal()
        u = Signal(w + 3)
        m.d.comb += u.eq(v + carry)
        # The loop's carry without the full-width chain: v_lo + c overflows only
        # if bits 2..w-1 of v are all ones (c ≤ 3), so the next carry is
        # v >> w plus that overflow, from v's register and c alone.
        ones = Signal()
        c_next = Signal(2)
        m.d.comb += [ones.eq(v[2:w].all()),
                     c_next.eq((v[w:] + (ones & ((v[:2] + carry) >> 2)))[:2])]
        with m.If(c.start):
            m.d.sync += carry.eq(0)             # the next slot starts a chain
        with m.Elif(e.p2 & e.j0):
            m.d.sync += carry.eq(st.t0_reg != 0)  # t_0 + lo(m·N_0) is 0 or 2^w
        with m.Elif(e.p1 | e.p2):
            m.d.sync += carry.eq(c_next)
        with m.If(e.p1 & e.jlast):
            m.d.sync += t_c.eq(u[w:w + 3])
        with m.If(e.t0cap):
            m.d.sync += [st.t0_reg.eq(u[:w]), st.t0_valid.eq(1)]
        m.d.sync += tail_pend.eq(e.p2 & e.jlast)
        with m.If(e.p2 & e.jlast):
            m.d.sync += [tq_c.eq(u[w:w + 2]), tail_last.eq(e.last)]
        return u, tq_c, tail_pend, tail_last

    def _elab_acc_t_write(self, m, ctl, t_wr, u, y, tq_c, tail_pend):
        """Tail (cycle k+D+2 of P2 ``s-1``) and the t-memory write.

        The tail's last add ``t_{s-1} = y + tq_c`` (``w + 1`` bits: a
        squaring's top word needs the extra bit). One mux picks the word of
        the cycle, the tail's or stage 2's ``u``, for both the t memory and
        the result port; it is written to t at ``s - 1`` (tail), ``j`` (P1)
        or ``j - 1`` (P2). Step 0 of either pass writes nothing: P2's frees
        the cycle the tail uses. Returns the word.
        """
        w = self._w
        e = ctl[-1]                         # stage 2, ctl[d + 1]
        ut = Signal(w + 2)
        m.d.comb += ut.eq(y + tq_c)
        word = Signal(w + 1)
        m.d.comb += word.eq(Mux(tail_pend, ut[:w + 1], u[:w]))
        # The t write is registered (one cycle after the word is formed): the
        # adder's output meets a register, not the memory's write port.
        m.d.sync += [t_wr.en.eq(tail_pend | ((e.p1 | e.p2) & ~e.j0)), t_wr.data.eq(word)]
        with m.If(tail_pend):
            m.d.sync += t_wr.addr.eq(self._s - 1)
        with m.Elif(e.p1):
            m.d.sync += t_wr.addr.eq(e.j)
        with m.Else():
            m.d.sync += t_wr.addr.eq(e.j - 1)
        return word

    def _elab_acc_result(self, m, st, ctl, word, tail_pend, tail_last):
        """Result words: P2 of the last row (words ``0 .. s-2``), then the tail (``s-1``).

        ``wdst`` latches the op's destination when the last row's pass 2 is
        issued (``st.dst`` may already belong to the next op by the time its
        words come out). The port's registers take the same word as the t
        write; ``done`` marks the tail of the last row, which also ends
        ``drain`` (set by the sequencer when the last row's last slot issues).
        """
        w = self._w
        e = ctl[-1]                         # stage 2, ctl[d + 1]
        wdst = Signal(self._aw)
        with m.If(ctl[0].p2 & ctl[0].j0 & ctl[0].last):
            m.d.sync += wdst.eq(st.dst)
        # The result port is registered: one cycle after the word is formed.
        res = (e.p2 & ~e.j0 & e.last) | (tail_pend & tail_last)
        m.d.sync += [
            self.wr_en.eq(res),
            self.wr_addr.eq(wdst + Mux(tail_pend, self._s - 1, e.j - 1)),
            self.wr_data.eq(word[:w]),
            self.done.eq(tail_pend & tail_last),
        ]
        with m.If(st.drain_set):
            m.d.sync += st.drain.eq(1)
        with m.Elif(self.done):
            m.d.sync += st.drain.eq(0)


class _Slot(enum.Enum, shape=3):
    """Slot kinds the sequencer issues."""

    NONE = 0
    B = 1
    P1 = 2
    M = 3
    P2 = 4


class _ASel(enum.Enum, shape=2):
    """The multiplier's ``a`` operand of a slot: ``b_i``, ``2·b_i`` (pass 1), ``t_0`` (M), ``m`` (P2)."""

    B = 0
    B2 = 1
    T0 = 2
    M = 3


class _CoreState:
    """Registers shared by MontMul's sequencer and datapath.

    Parameters
    ----------
    w, s, aw : int
        Word width, words per operand, address width.
    """

    def __init__(self, w, s, aw):
        # Sequencer.
        self.active = Signal()
        self.drain = Signal()                # last row issued, tail not yet written
        self.drain_set = Signal()
        self.b_pend = Signal()               # the B slot is next
        self.b_wait = Signal()               # the idle cycle after B
        self.mode = Signal(MODE)
        self.row = Signal(range(s))
        self.last_row = Signal()             # row == s - 1
        self.pass2 = Signal()
        self.j = Signal(range(s + 1))
        self.p1_first = Signal()             # the next P1 slot starts the row's carry chain
        self.m_issued = Signal()
        self.hold = Signal(range(8))
        self.hold_next = Signal(range(8))
        self.t0_valid = Signal()             # t_0 of this row registered (M may issue)
        self.m_valid = Signal()              # m of this row registered (P2 may issue)
        self.kind = Signal(_Slot)
        # Addresses.
        self.a_base = Signal(aw)
        self.b_base = Signal(aw)
        self.b_off = Signal(range(s + 1))    # offset of the next row word to read
        self.dst = Signal(aw)
        # Datapath values the operand mux reads back.
        self.t0_reg = Signal(w)
        self.m_reg = Signal(w)
        self.b_next = Signal(w)
        self.b_cur = Signal(w)
