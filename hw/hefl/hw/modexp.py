"""ModExp: constant-time fixed-window exponentiation (and products) on one MontMul.

Algorithm (docs/design.md §1.4, golden model :func:`hefl.golden.modexp.modexp`)
-------------------------------------------------------------------------------
Inputs: odd ``N < R/4`` with ``R = 2^(w·s)``, ``N' = -N^-1 mod 2^w``, the
constants ``R² mod N`` and ``R mod N`` (loaded once per batch through
``const_wr_*``), and plain residues ``< N`` streamed in as jobs (see
:mod:`hefl.hw.jobs`). Every MontMul result is lazily reduced (``< 2N``) and fed
back unchanged; only the job's result is fully reduced.

POWMOD ``b^e mod N`` over a declared exponent length ``c`` bits,
``W = ceil(c / k)`` windows::

    T[0] = R mod N                          (the constant; Montgomery one)
    T[1] = MontMul(b, R² mod N)             (conversion in)
    T[j] = MontMul(T[j-1], T[1])            j = 2 .. 2^k - 1
    acc  = T[0]
    for each k-bit window d, most significant first:
        k × acc = MontMul(acc, acc)
        acc = MontMul(acc, T[d])            entry 0 included
    x = MontMul(acc, 1)                     (conversion out: x <= N)
    result = x - N if x >= N else x         (word-serial, two passes)

``2^k - 1 + W·(k + 1) + 1`` MontMuls: the golden model's count minus the one
that computes ``R mod N`` (here a loaded constant). Nothing in the schedule
depends on ``b`` or ``e``: memory addresses differ with the window digit, but
every memory access takes one cycle whatever its address, the operand reader
chooses its two-reads-per-word or one-read-per-word pattern from the schedule
position (squaring or multiply by one vs. multiply), never from a value or a
digit, and the window bits are fetched in a loop whose length is ``k``. The cycle count of a job is a
function of ``c`` alone.

PRODUCT ``a_1 · ... · a_K mod N`` (MULMOD is the case ``K = 2``)::

    acc = a_1
    acc = MontMul(acc, a_i)                 i = 2 .. K      (acc = Π·R^-(K-1))
    (K - 1) × acc = MontMul(acc, R² mod N)                  (each multiplies by R)
    result = acc - N if acc >= N else acc

``2K - 2`` MontMuls and only the batch constants: no per-K constant from the
host. (Converting every factor first costs the same ``2K - 2`` and would need
the factors buffered; this order consumes each factor as it arrives.)

Storage and schedule
--------------------
One on-chip memory of ``w``-bit words, one synchronous read port and one write
port (a simple dual-port BRAM/URAM), holding ``s``-word slots::

    T[0] .. T[2^k-1] | R² | N | ACC | D | X | exponent words (ceil(max_exp_bits / w))

``X`` receives the base (POWMOD) or the next factor; the exponent follows ``X``
directly so a POWMOD job loads with one incrementing address. ``N`` is kept
here as well as in MontMul for the final comparison.

One MontMul operation at a time (each depends on the previous one):

* operand reader: 2 cycles per word pair (read ``a_j``, read ``b_j``) for a
  multiply, 1 cycle per word for a squaring or a multiply by 1 (``b`` is then
  the constant word ``j == 0``), plus one cycle to start; MontMul back-pressure
  holds the memory output (read enable low);
* result writer: MontMul's output words go straight to the destination slot;
* window digit: ``k`` bits fetched MSB first, 2 cycles per bit;
* final reduction: pass 1 computes ``D = X - N`` word by word with a ``w``-bit
  subtractor and a 1-bit borrow (2 cycles per word), pass 2 streams ``X`` (if it
  borrowed) or ``D`` out (1 cycle per word at full ``o_stream`` readiness).

The exact cycle model, checked against simulation, is
:func:`hefl.golden.batch.modexp_job_cycles`.

Deviations and limits
---------------------
* Constants must be written while the engine is idle (``idle = 1``); they
  share the write port with job loading.
* A job with ``count > max_exp_bits`` or a malformed beat stream gives an
  unspecified result but never hangs the lane once its ``last`` beat came; the
  kernel validates jobs before they reach the engine.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hefl.golden.montgomery import words_for
from hefl.hw.checks import check_int
from hefl.hw.jobs import CONST_SEL, COUNT_BITS, TAG_BITS, JobOp, engine_ports
from hefl.hw.params import MODEXP_WINDOW_BITS

__all__ = ["ModExp"]


class ModExp(wiring.Component):
    """One lane: fixed-window modexp, product and mulmod jobs on one MontMul.

    Parameters
    ----------
    operand_bits : int
        Largest modulus width ``L``; ``s = words_for(L, w)`` words.
    word_bits : int
        Word width ``w``.
    window_bits : int
        Window width ``k`` (table of ``2^k`` entries).
    max_exp_bits : int
        Longest declared exponent accepted (sizes the exponent memory).
    tag_bits : int
        Width of the job tag carried to the result.
    multiplier : callable, optional
        Factory ``multiplier(operand_bits=L, word_bits=w)`` of a component with
        :class:`hefl.hw.montmul.MontMul`'s interface; defaults to ``MontMul``.

    Attributes
    ----------
    nprime : In(w)
        ``-N^-1 mod 2^w``, stable for the batch.
    const_wr_en, const_wr_sel, const_wr_addr, const_wr_data : In
        Constant load (``sel`` 0 = N, 1 = R² mod N, 2 = R mod N), word by word,
        while idle.
    i_stream : In(stream.Signature(job_layout(w, tag_bits)))
        Jobs (see :mod:`hefl.hw.jobs`).
    o_stream : Out(stream.Signature(result_layout(w, tag_bits)))
        Results, ``s`` beats each, ``< N``.
    idle : Out(1)
        No job loaded or in progress.
    """

    @staticmethod
    def _check(operand_bits, word_bits, window_bits, max_exp_bits, tag_bits):
        check_int("Operand width", operand_bits, 4)
        check_int("Word width", word_bits, 2)
        check_int("Window width", window_bits)
        check_int("Tag width", tag_bits)
        if max_exp_bits is None:
            max_exp_bits = operand_bits
        check_int("Maximum exponent width", max_exp_bits)
        if window_bits >= word_bits:
            raise TypeError(f"Window width must be below the word width {word_bits}, "
                            f"not {window_bits!r}")
        if max_exp_bits >= 1 << COUNT_BITS:
            raise TypeError(f"Maximum exponent width must fit the {COUNT_BITS}-bit count "
                            f"field, not {max_exp_bits!r}")
        return max_exp_bits

    def __init__(self, *, operand_bits, word_bits, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, tag_bits=TAG_BITS, multiplier=None):
        try:
            max_exp_bits = self._check(operand_bits, word_bits, window_bits, max_exp_bits,
                                       tag_bits)
        except TypeError:
            # A component that was never built must not warn "created but never used".
            self._MustUse__silence = True
            raise
        if multiplier is None:
            from hefl.hw.montmul import MontMul as multiplier
        self._L = operand_bits
        self._w = word_bits
        self._k = window_bits
        self._x = max_exp_bits
        self._tag_bits = tag_bits
        self._s = words_for(operand_bits, word_bits)
        self._multiplier = multiplier
        s = self._s
        super().__init__(engine_ports(word_bits, s, tag_bits))

    # Read-only parameters -------------------------------------------------
    operand_bits = property(lambda self: self._L)
    word_bits = property(lambda self: self._w)
    words = property(lambda self: self._s)
    window_bits = property(lambda self: self._k)
    max_exp_bits = property(lambda self: self._x)
    tag_bits = property(lambda self: self._tag_bits)

    @property
    def exp_words(self):
        """Words of exponent storage: ``ceil(max_exp_bits / w)``."""
        return -(-self._x // self._w)

    @property
    def mem_depth(self):
        """Words of the lane memory: ``(2^k + 5)·s`` slots plus the exponent."""
        return _Slots(self._s, self._k, self.exp_words).depth

    def elaborate(self, platform):
        m = Module()
        w, s = self._w, self._s
        lane = _LaneRegs(slots=_Slots(s, self._k, self.exp_words), w=w, k=self._k,
                         tag_bits=self._tag_bits)

        m.submodules.mm = mm = self._multiplier(operand_bits=self._L, word_bits=w)
        m.submodules.mem = mem = Memory(shape=unsigned(w), depth=lane.slots.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()

        # Combinational values the FSM states read.
        m.d.comb += [
            lane.single.eq(lane.op_one | (lane.op_a == lane.op_b)),
            lane.digit_base.eq(lane.slot_addr[lane.digit]),
            lane.diff.eq(lane.x_reg - rd.data - lane.borrow),
        ]
        self._elab_write_port(m, lane, mm, wr)
        self._elab_result_writer(m, lane, mm)
        with m.FSM():
            self._fsm_job_load(m, lane)
            self._fsm_powmod(m, lane, rd)
            self._fsm_product(m, lane)
            self._fsm_montmul_op(m, lane, rd, mm)
            self._fsm_reduce(m, lane, rd)
        return m

    def _elab_write_port(self, m, lane, mm, wr):
        """Constant loading and the lane memory's one write port.

        ``const_wr_sel`` 0 writes N both into MontMul's modulus memory and
        into the ``N`` slot, 1 R² mod N into ``R2``, 2 R mod N into ``T[0]``.
        The write port serves, by priority, the constant load (only while
        idle), then the FSM's three requests, of which it raises at most one
        in a cycle: job words (``ld_*``), MontMul result words (``res_*``)
        and the final reduction's difference (``d_*``). No request waits:
        each write takes the cycle it is requested in.
        """
        sl = lane.slots
        m.d.comb += [
            mm.nprime.eq(self.nprime),
            mm.n_wr_en.eq(self.const_wr_en & (self.const_wr_sel == CONST_SEL["n"])),
            mm.n_wr_addr.eq(self.const_wr_addr),
            mm.n_wr_data.eq(self.const_wr_data),
        ]
        const_base = Signal(sl.aw)
        with m.Switch(self.const_wr_sel):
            with m.Case(CONST_SEL["n"]):
                m.d.comb += const_base.eq(sl.n)
            with m.Case(CONST_SEL["r2_mod_n"]):
                m.d.comb += const_base.eq(sl.r2)
            with m.Default():
                m.d.comb += const_base.eq(0)          # T[0] = R mod N

        with m.If(self.const_wr_en & (self.const_wr_sel < len(CONST_SEL))):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(const_base + self.const_wr_addr),
                         wr.data.eq(self.const_wr_data)]
        with m.Elif(lane.ld_en):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(lane.ld_addr), wr.data.eq(lane.ld_data)]
        with m.Elif(lane.res_en):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(lane.res_addr),
                         wr.data.eq(mm.o_stream.payload.data)]
        with m.Elif(lane.d_en):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(lane.d_addr), wr.data.eq(lane.d_data)]

    def _elab_result_writer(self, m, lane, mm):
        """MontMul's output words straight into the destination slot ``op_dst``.

        Always ready: one word written per cycle that MontMul presents one;
        ``res_done`` marks the cycle of the result's last word.
        """
        o = mm.o_stream
        m.d.comb += [
            o.ready.eq(1),
            lane.res_en.eq(o.valid),
            lane.res_addr.eq(lane.op_dst + lane.wj),
            lane.res_done.eq(o.valid & o.payload.last),
        ]
        with m.If(o.valid):
            m.d.sync += lane.wj.eq(Mux(o.payload.last, 0, lane.wj + 1))

    def _fsm_job_load(self, m, lane):
        """States IDLE and LOAD: take a job header, then its operand words.

        IDLE leaves a ``first`` beat on the stream (one cycle) and LOAD takes
        one beat per cycle at full ``i_stream`` validity. POWMOD writes base
        and exponent words from slot ``X`` on, then converts the base in
        (``T[1]``). PRODUCT/MULMOD writes the first factor to ``ACC``, each
        next one to ``X``, and multiplies it in as soon as its ``s`` words (or
        its ``last`` beat) arrived, returning here for the next factor.
        """
        sl, s, beat = lane.slots, self._s, self.i_stream.payload
        with m.State("IDLE"):
            m.d.comb += [self.idle.eq(1), self.i_stream.ready.eq(~beat.first)]
            # A first beat is left on the stream and consumed by LOAD.
            with m.If(self.i_stream.valid & beat.first):
                m.d.sync += [lane.job_op.eq(beat.op), lane.job_tag.eq(beat.tag),
                             lane.job_count.eq(beat.count),
                             lane.nfac.eq(0), lane.fj.eq(0), lane.in_done.eq(0)]
                with m.If(beat.op == JobOp.POWMOD):
                    m.d.sync += lane.ld_addr.eq(sl.x)
                with m.Else():
                    m.d.sync += lane.ld_addr.eq(sl.acc)
                m.next = "LOAD"

        with m.State("LOAD"):
            m.d.comb += [self.i_stream.ready.eq(1), lane.ld_data.eq(beat.data)]
            with m.If(self.i_stream.valid):
                # Words past the exponent memory are dropped.
                m.d.comb += lane.ld_en.eq(lane.ld_addr < sl.depth)
                m.d.sync += lane.ld_addr.eq(lane.ld_addr + 1)
                with m.If(lane.job_op == JobOp.POWMOD):
                    with m.If(beat.last):
                        lane.call(m, sl.x, sl.r2, sl.t1, _Ret.TABLE)   # T[1] = b·R
                        m.d.sync += lane.ti.eq(2)
                with m.Else():
                    m.d.sync += lane.fj.eq(lane.fj + 1)
                    with m.If(beat.last | (lane.fj == s - 1)):
                        m.d.sync += [lane.fj.eq(0), lane.nfac.eq(lane.nfac + 1),
                                     lane.ld_addr.eq(sl.x), lane.in_done.eq(beat.last),
                                     # TABLE_PRODUCT: no R² corrections (w-kernel stand-in
                                     # for w-lane's op-3 mode).
                                     lane.ncorr.eq(Mux(lane.job_op == JobOp.TABLE_PRODUCT,
                                                       0, lane.nfac))]
                        with m.If(lane.nfac == 0):
                            with m.If(beat.last):
                                m.next = "CORR"
                        with m.Else():
                            lane.call(m, sl.acc, sl.x, sl.acc, _Ret.PROD)

    def _fsm_powmod(self, m, lane, rd):
        """States TABLE … FINAL: the table, the windows and the conversion out.

        TABLE issues ``T[j] = T[j-1]·T[1]`` for ``j = 2 .. 2^k-1`` (one cycle
        each, then one to leave). SCAN counts the windows, one cycle per
        window plus one (``ceil(c/k) + 1`` cycles, no divider). Per window, FETCH_A/FETCH_D read the ``k`` digit bits MSB
        first, 2 cycles per bit; SQ issues ``k`` squarings, then the multiply
        by ``T[digit]``; WIN_DONE (1 cycle) moves to the next window. FINAL
        issues the multiply by one. Each MontMul goes through RD_START … WAIT
        and returns here (see :meth:`_fsm_montmul_op`).
        """
        sl, w, k, job_count = lane.slots, self._w, self._k, lane.job_count
        slot_addr = lane.slot_addr
        with m.State("TABLE"):
            with m.If(lane.ti == sl.table):
                m.d.sync += [lane.pos.eq(0), lane.widx.eq(0), lane.boff.eq(0),
                             lane.nwin.eq(0), lane.acc_src.eq(0)]
                m.next = "SCAN"
            with m.Else():
                lane.call(m, slot_addr[lane.ti - 1], sl.t1, slot_addr[lane.ti], _Ret.TABLE)
                m.d.sync += lane.ti.eq(lane.ti + 1)

        with m.State("SCAN"):
            # Count windows and find the bit position nwin·k (a loop of
            # ceil(count/k) cycles: public length, no divider).
            with m.If(lane.pos < job_count):
                m.d.sync += [lane.pos.eq(lane.pos + k), lane.nwin.eq(lane.nwin + 1)]
                with m.If(lane.boff >= w - k):
                    m.d.sync += [lane.boff.eq(lane.boff + k - w), lane.widx.eq(lane.widx + 1)]
                with m.Else():
                    m.d.sync += lane.boff.eq(lane.boff + k)
            with m.Elif(lane.nwin == 0):
                m.next = "FINAL"
            with m.Else():
                m.d.sync += [lane.fb.eq(0), lane.digit.eq(0)]
                m.next = "FETCH_A"

        with m.State("FETCH_A"):
            # Step down one bit, then read its word.
            new_widx = Signal.like(lane.widx)
            with m.If(lane.boff == 0):
                m.d.comb += new_widx.eq(lane.widx - 1)
                m.d.sync += lane.boff.eq(w - 1)
            with m.Else():
                m.d.comb += new_widx.eq(lane.widx)
                m.d.sync += lane.boff.eq(lane.boff - 1)
            m.d.sync += [lane.widx.eq(new_widx), lane.pos.eq(lane.pos - 1)]
            m.d.comb += rd.addr.eq(sl.exp + new_widx)
            m.next = "FETCH_D"

        with m.State("FETCH_D"):
            # Bits at or above the declared length read as 0.
            bit = rd.data.bit_select(lane.boff, 1) & (lane.pos < job_count)
            m.d.sync += [lane.digit.eq(((lane.digit << 1) | bit)[:k]), lane.fb.eq(lane.fb + 1)]
            with m.If(lane.fb == k - 1):
                m.d.sync += lane.sq.eq(0)
                m.next = "SQ"
            with m.Else():
                m.next = "FETCH_A"

        with m.State("SQ"):
            with m.If(lane.sq == k):
                lane.call(m, sl.acc, lane.digit_base, sl.acc, _Ret.WIN)
            with m.Else():
                lane.call(m, lane.acc_src, lane.acc_src, sl.acc, _Ret.SQ)
                m.d.sync += [lane.acc_src.eq(sl.acc), lane.sq.eq(lane.sq + 1)]

        with m.State("WIN_DONE"):
            m.d.sync += lane.nwin.eq(lane.nwin - 1)
            with m.If(lane.nwin == 1):
                m.next = "FINAL"
            with m.Else():
                m.d.sync += [lane.fb.eq(0), lane.digit.eq(0)]
                m.next = "FETCH_A"

        with m.State("FINAL"):
            lane.call(m, lane.acc_src, lane.acc_src, sl.acc, _Ret.FINAL, one=True)

    def _fsm_product(self, m, lane):
        """State CORR: the ``K - 1`` multiplies by R² of a PRODUCT job, then the reduction.

        One cycle per correction issued (each a MontMul returning here), one
        more to go on to RED_A.
        """
        sl = lane.slots
        with m.State("CORR"):
            with m.If(lane.ncorr == 0):
                m.d.sync += [lane.rj.eq(0), lane.borrow.eq(0)]
                m.next = "RED_A"
            with m.Else():
                m.d.sync += lane.ncorr.eq(lane.ncorr - 1)
                lane.call(m, sl.acc, sl.r2, sl.acc, _Ret.PROD)

    def _fsm_montmul_op(self, m, lane, rd, mm):
        """States RD_START … WAIT: one MontMul operation, started by :meth:`_LaneRegs.call`.

        RD_START (1 cycle) reads ``a_0``. A multiply then alternates RD_B
        (read ``b_j``) and RD_V (present the word pair, read ``a_{j+1}``): 2
        cycles per word; a squaring or a multiply by one stays in RD_V, 1
        cycle per word. MontMul back-pressure holds RD_V with the memory
        output held (read enable low). WAIT lasts until the result's last
        word is written, then goes to the state ``op_ret`` names.
        """
        s = self._s
        with m.State("RD_START"):
            m.d.comb += rd.addr.eq(lane.op_a + lane.j)
            with m.If(lane.single):
                m.next = "RD_V"
            with m.Else():
                m.next = "RD_B"

        with m.State("RD_B"):
            m.d.sync += lane.a_reg.eq(rd.data)
            m.d.comb += rd.addr.eq(lane.op_b + lane.j)
            m.next = "RD_V"

        with m.State("RD_V"):
            p = mm.i_stream.payload
            m.d.comb += [
                mm.i_stream.valid.eq(1),
                p.a.eq(Mux(lane.single, rd.data, lane.a_reg)),
                p.b.eq(Mux(lane.op_one, lane.j == 0, rd.data)),
                # Hold the memory output while MontMul is not ready.
                rd.en.eq(mm.i_stream.ready),
                rd.addr.eq(lane.op_a + lane.j + 1),
            ]
            with m.If(mm.i_stream.ready):
                m.d.sync += lane.j.eq(lane.j + 1)
                with m.If(lane.j == s - 1):
                    m.next = "WAIT"
                with m.Elif(~lane.single):
                    m.next = "RD_B"

        with m.State("WAIT"):
            with m.If(lane.res_done):
                with m.Switch(lane.op_ret):
                    with m.Case(_Ret.TABLE):
                        m.next = "TABLE"
                    with m.Case(_Ret.SQ):
                        m.next = "SQ"
                    with m.Case(_Ret.WIN):
                        m.next = "WIN_DONE"
                    with m.Case(_Ret.FINAL):
                        m.d.sync += [lane.rj.eq(0), lane.borrow.eq(0)]
                        m.next = "RED_A"
                    with m.Case(_Ret.PROD):
                        with m.If(lane.in_done):
                            m.next = "CORR"
                        with m.Else():
                            m.next = "LOAD"

    def _fsm_reduce(self, m, lane, rd):
        """States RED_A … EMIT_V: ``D = ACC - N``, then stream ACC or D out.

        Pass 1: RED_A (1 cycle), then RED_B/RED_C per word (2 cycles per
        word: read ``N_j``, write ``D_j`` and read ``ACC_{j+1}``) with a
        ``w``-bit subtractor and a 1-bit borrow. Pass 2: EMIT_A (1 cycle)
        picks the source, EMIT_V sends one word per cycle at full
        ``o_stream`` readiness, holding the memory output otherwise, then
        back to IDLE.
        """
        sl, s, w = lane.slots, self._s, self._w
        with m.State("RED_A"):
            m.d.comb += rd.addr.eq(sl.acc + lane.rj)
            m.next = "RED_B"

        with m.State("RED_B"):
            m.d.sync += lane.x_reg.eq(rd.data)
            m.d.comb += rd.addr.eq(sl.n + lane.rj)
            m.next = "RED_C"

        with m.State("RED_C"):
            m.d.comb += [lane.d_en.eq(1), lane.d_addr.eq(sl.d + lane.rj),
                         lane.d_data.eq(lane.diff[:w]), rd.addr.eq(sl.acc + lane.rj + 1)]
            m.d.sync += [lane.borrow.eq(lane.diff[w]), lane.rj.eq(lane.rj + 1)]
            with m.If(lane.rj == s - 1):
                m.d.sync += lane.rj.eq(0)
                m.next = "EMIT_A"
            with m.Else():
                m.next = "RED_B"

        with m.State("EMIT_A"):
            # borrow = 1: ACC < N, keep it; otherwise ACC - N.
            src = Mux(lane.borrow, sl.acc, sl.d)
            m.d.sync += lane.out_src.eq(src)
            m.d.comb += rd.addr.eq(src)
            m.next = "EMIT_V"

        with m.State("EMIT_V"):
            o = self.o_stream.payload
            m.d.comb += [
                self.o_stream.valid.eq(1),
                o.data.eq(rd.data),
                o.tag.eq(lane.job_tag),
                o.last.eq(lane.rj == s - 1),
                rd.en.eq(self.o_stream.ready),
                rd.addr.eq(lane.out_src + lane.rj + 1),
            ]
            with m.If(self.o_stream.ready):
                m.d.sync += lane.rj.eq(lane.rj + 1)
                with m.If(lane.rj == s - 1):
                    m.d.sync += lane.rj.eq(0)
                    m.next = "IDLE"


class _Ret:
    """Where the FSM continues when a MontMul operation's result is written (``op_ret``)."""

    TABLE, SQ, WIN, FINAL, PROD = range(5)
    COUNT = 5


class _Slots:
    """Word addresses of the lane memory's slots (see "Storage and schedule").

    ``table`` entries ``T[0] .. T[2^k-1]`` from 0, then ``r2``, ``n``,
    ``acc``, ``d``, ``x`` (``s`` words each) and the exponent words at
    ``exp``; ``depth`` words in all, ``aw`` address bits.
    """

    def __init__(self, s, k, exp_words):
        self.words = s
        self.table = 1 << k
        self.t1 = s                          # T[1], the converted base
        self.r2, self.n, self.acc, self.d, self.x = ((self.table + i) * s for i in range(5))
        self.exp = self.x + s
        self.exp_words = exp_words
        self.depth = self.exp + exp_words
        self.aw = max(1, (self.depth - 1).bit_length())


class _LaneRegs:
    """The registers and requests the lane's FSM state groups share.

    Parameters
    ----------
    slots : _Slots
    w, k, tag_bits : int
        Word width, window width, tag width.
    """

    def __init__(self, *, slots, w, k, tag_bits):
        s, aw, T = slots.words, slots.aw, slots.table
        self.slots = slots
        # Write-port requests (see ModExp._elab_write_port).
        self.ld_en = Signal()                # job words
        self.ld_addr = Signal(aw)
        self.ld_data = Signal(w)
        self.res_en = Signal()               # MontMul result words
        self.res_addr = Signal(aw)
        self.d_en = Signal()                 # the final reduction's D = ACC - N
        self.d_addr = Signal(aw)
        self.d_data = Signal(w)

        # Job header.
        self.job_op = Signal(JobOp)
        self.job_tag = Signal(tag_bits)
        self.job_count = Signal(COUNT_BITS)

        # MontMul operation "call" registers.
        self.op_a = Signal(aw)               # slot base of operand a
        self.op_b = Signal(aw)               # slot base of operand b
        self.op_one = Signal()               # b is the constant 1
        self.op_dst = Signal(aw)             # slot base of the result
        self.op_ret = Signal(range(_Ret.COUNT))  # where to go when the result is written
        self.j = Signal(range(s + 1))        # word counter of the operand reader
        self.a_reg = Signal(w)
        self.single = Signal()               # one read per word (squaring or times one)
        self.wj = Signal(range(s))           # word counter of the result writer
        self.res_done = Signal()

        # POWMOD.
        self.ti = Signal(range(T + 1))       # next table entry to build
        self.acc_src = Signal(aw)            # slot holding acc (T[0] before the first window)
        self.pos = Signal(COUNT_BITS + 1)    # bit position just above the next bit to fetch
        self.widx = Signal(range(max(2, slots.exp_words + 1)))
        self.boff = Signal(range(w))
        self.nwin = Signal(COUNT_BITS)       # windows left
        self.digit = Signal(k)
        self.fb = Signal(range(k + 1))       # bits of the digit fetched
        self.sq = Signal(range(k + 1))       # squarings done in this window
        # Slot addresses by table index: a constant lookup, not a multiplier
        # (yosys would map ``digit * s`` to a DSP48E2).
        self.slot_addr = Array(Const(i * s, aw) for i in range(T + 1))
        self.digit_base = Signal(aw)

        # PRODUCT.
        self.nfac = Signal(COUNT_BITS)       # factors fully received
        self.ncorr = Signal(COUNT_BITS)      # R² corrections left
        self.in_done = Signal()              # the job's last beat was received
        self.fj = Signal(range(s))           # word within the factor being loaded

        # Final reduction.
        self.rj = Signal(range(s))
        self.x_reg = Signal(w)
        self.borrow = Signal()
        self.out_src = Signal(aw)
        self.diff = Signal(w + 1)

    def call(self, m, a, b, dst, ret, *, one=False):
        """Start MontMul(a, b) -> dst (RD_START next), then continue at ``ret``."""
        m.d.sync += [self.op_a.eq(a), self.op_b.eq(b), self.op_dst.eq(dst),
                     self.op_ret.eq(ret), self.op_one.eq(one), self.j.eq(0)]
        m.next = "RD_START"
