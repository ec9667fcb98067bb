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
from hefl.hw.jobs import COUNT_BITS, JobOp, engine_ports
from hefl.hw.params import MODEXP_WINDOW_BITS

__all__ = ["ModExp"]


def _check_pos_int(name, v, minimum=1):
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise TypeError(f"{name} must be an integer ≥ {minimum}, not {v!r}")


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
        _check_pos_int("Operand width", operand_bits, 4)
        _check_pos_int("Word width", word_bits, 2)
        _check_pos_int("Window width", window_bits)
        _check_pos_int("Tag width", tag_bits)
        if max_exp_bits is None:
            max_exp_bits = operand_bits
        _check_pos_int("Maximum exponent width", max_exp_bits)
        if window_bits >= word_bits:
            raise TypeError(f"Window width must be below the word width {word_bits}, "
                            f"not {window_bits!r}")
        if max_exp_bits >= 1 << COUNT_BITS:
            raise TypeError(f"Maximum exponent width must fit the {COUNT_BITS}-bit count "
                            f"field, not {max_exp_bits!r}")
        return max_exp_bits

    def __init__(self, *, operand_bits, word_bits, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, tag_bits=16, multiplier=None):
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
        return ((1 << self._k) + 5) * self._s + self.exp_words

    def elaborate(self, platform):
        m = Module()
        w, s, k = self._w, self._s, self._k
        T = 1 << k
        # Slot base addresses (word addresses in the lane memory).
        SL_R2, SL_N, SL_ACC, SL_D, SL_X = ((T + i) * s for i in range(5))
        EXP_BASE = SL_X + s
        depth = self.mem_depth
        aw = max(1, (depth - 1).bit_length())

        m.submodules.mm = mm = self._multiplier(operand_bits=self._L, word_bits=w)
        m.submodules.mem = mem = Memory(shape=unsigned(w), depth=depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()

        # --- constants: N goes to MontMul and to our N slot -------------------
        m.d.comb += [
            mm.nprime.eq(self.nprime),
            mm.n_wr_en.eq(self.const_wr_en & (self.const_wr_sel == 0)),
            mm.n_wr_addr.eq(self.const_wr_addr),
            mm.n_wr_data.eq(self.const_wr_data),
        ]
        const_base = Signal(aw)
        with m.Switch(self.const_wr_sel):
            with m.Case(0):
                m.d.comb += const_base.eq(SL_N)
            with m.Case(1):
                m.d.comb += const_base.eq(SL_R2)
            with m.Default():
                m.d.comb += const_base.eq(0)          # T[0] = R mod N

        # Write-port requests; the FSM drives at most one of the last three
        # in any cycle, constants are loaded only while idle.
        ld_en, ld_addr, ld_data = Signal(), Signal(aw), Signal(w)
        res_en, res_addr = Signal(), Signal(aw)
        d_en, d_addr, d_data = Signal(), Signal(aw), Signal(w)
        with m.If(self.const_wr_en & (self.const_wr_sel != 3)):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(const_base + self.const_wr_addr),
                         wr.data.eq(self.const_wr_data)]
        with m.Elif(ld_en):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(ld_addr), wr.data.eq(ld_data)]
        with m.Elif(res_en):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(res_addr),
                         wr.data.eq(mm.o_stream.payload.data)]
        with m.Elif(d_en):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(d_addr), wr.data.eq(d_data)]

        # --- job header -----------------------------------------------------
        job_op = Signal(JobOp)
        job_tag = Signal(self._tag_bits)
        job_count = Signal(COUNT_BITS)

        # --- MontMul operation "call" registers ------------------------------
        op_a = Signal(aw)               # slot base of operand a
        op_b = Signal(aw)               # slot base of operand b
        op_one = Signal()               # b is the constant 1
        op_dst = Signal(aw)             # slot base of the result
        op_ret = Signal(range(5))       # where to go when the result is written
        RET_TABLE, RET_SQ, RET_WIN, RET_FINAL, RET_PROD = range(5)
        j = Signal(range(s + 1))        # word counter of the operand reader
        a_reg = Signal(w)
        single = Signal()               # one read per word (squaring or times one)
        m.d.comb += single.eq(op_one | (op_a == op_b))

        # Result writer: MontMul output straight into the destination slot.
        wj = Signal(range(s))
        res_done = Signal()
        m.d.comb += [
            mm.o_stream.ready.eq(1),
            res_en.eq(mm.o_stream.valid),
            res_addr.eq(op_dst + wj),
            res_done.eq(mm.o_stream.valid & mm.o_stream.payload.last),
        ]
        with m.If(mm.o_stream.valid):
            m.d.sync += wj.eq(Mux(mm.o_stream.payload.last, 0, wj + 1))

        # --- POWMOD state ---------------------------------------------------
        ti = Signal(range(T + 1))       # next table entry to build
        acc_src = Signal(aw)            # slot holding acc (T[0] before the first window)
        pos = Signal(COUNT_BITS + 1)    # bit position just above the next bit to fetch
        widx = Signal(range(max(2, self.exp_words + 1)))
        boff = Signal(range(w))
        nwin = Signal(COUNT_BITS)       # windows left
        digit = Signal(k)
        fb = Signal(range(k + 1))       # bits of the digit fetched
        sq = Signal(range(k + 1))       # squarings done in this window
        # Slot addresses by table index: a constant lookup, not a multiplier
        # (yosys would map ``digit * s`` to a DSP48E2).
        slot_addr = Array(Const(i * s, aw) for i in range(T + 1))
        digit_base = Signal(aw)
        m.d.comb += digit_base.eq(slot_addr[digit])

        # --- PRODUCT state --------------------------------------------------
        nfac = Signal(COUNT_BITS)       # factors fully received
        ncorr = Signal(COUNT_BITS)      # R² corrections left
        in_done = Signal()              # the job's last beat was received
        fj = Signal(range(s))           # word within the factor being loaded

        # --- final reduction ------------------------------------------------
        rj = Signal(range(s))
        x_reg = Signal(w)
        borrow = Signal()
        out_src = Signal(aw)
        diff = Signal(w + 1)
        m.d.comb += diff.eq(x_reg - rd.data - borrow)

        beat = self.i_stream.payload

        def call(a, b, dst, ret, *, one=False):
            """Start MontMul(a, b) -> dst, then continue at ``ret``."""
            m.d.sync += [op_a.eq(a), op_b.eq(b), op_dst.eq(dst), op_ret.eq(ret),
                         op_one.eq(one), j.eq(0)]
            m.next = "RD_START"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.idle.eq(1), self.i_stream.ready.eq(~beat.first)]
                # A first beat is left on the stream and consumed by LOAD.
                with m.If(self.i_stream.valid & beat.first):
                    m.d.sync += [job_op.eq(beat.op), job_tag.eq(beat.tag),
                                 job_count.eq(beat.count),
                                 nfac.eq(0), fj.eq(0), in_done.eq(0)]
                    with m.If(beat.op == JobOp.POWMOD):
                        m.d.sync += ld_addr.eq(SL_X)
                    with m.Else():
                        m.d.sync += ld_addr.eq(SL_ACC)
                    m.next = "LOAD"

            with m.State("LOAD"):
                m.d.comb += [self.i_stream.ready.eq(1), ld_data.eq(beat.data)]
                with m.If(self.i_stream.valid):
                    # Words past the exponent memory are dropped.
                    m.d.comb += ld_en.eq(ld_addr < depth)
                    m.d.sync += ld_addr.eq(ld_addr + 1)
                    with m.If(job_op == JobOp.POWMOD):
                        with m.If(beat.last):
                            call(SL_X, SL_R2, s, RET_TABLE)   # T[1] = b·R
                            m.d.sync += ti.eq(2)
                    with m.Else():
                        m.d.sync += fj.eq(fj + 1)
                        with m.If(beat.last | (fj == s - 1)):
                            m.d.sync += [fj.eq(0), nfac.eq(nfac + 1), ld_addr.eq(SL_X),
                                         in_done.eq(beat.last), ncorr.eq(nfac)]
                            with m.If(nfac == 0):
                                with m.If(beat.last):
                                    m.next = "CORR"
                            with m.Else():
                                call(SL_ACC, SL_X, SL_ACC, RET_PROD)

            # --- POWMOD ---------------------------------------------------------
            with m.State("TABLE"):
                with m.If(ti == T):
                    m.d.sync += [pos.eq(0), widx.eq(0), boff.eq(0), nwin.eq(0),
                                 acc_src.eq(0)]
                    m.next = "SCAN"
                with m.Else():
                    call(slot_addr[ti - 1], s, slot_addr[ti], RET_TABLE)
                    m.d.sync += ti.eq(ti + 1)

            with m.State("SCAN"):
                # Count windows and find the bit position nwin·k (a loop of
                # ceil(count/k) cycles: public length, no divider).
                with m.If(pos < job_count):
                    m.d.sync += [pos.eq(pos + k), nwin.eq(nwin + 1)]
                    with m.If(boff >= w - k):
                        m.d.sync += [boff.eq(boff + k - w), widx.eq(widx + 1)]
                    with m.Else():
                        m.d.sync += boff.eq(boff + k)
                with m.Elif(nwin == 0):
                    m.next = "FINAL"
                with m.Else():
                    m.d.sync += [fb.eq(0), digit.eq(0)]
                    m.next = "FETCH_A"

            with m.State("FETCH_A"):
                # Step down one bit, then read its word.
                new_widx = Signal.like(widx)
                with m.If(boff == 0):
                    m.d.comb += new_widx.eq(widx - 1)
                    m.d.sync += boff.eq(w - 1)
                with m.Else():
                    m.d.comb += new_widx.eq(widx)
                    m.d.sync += boff.eq(boff - 1)
                m.d.sync += [widx.eq(new_widx), pos.eq(pos - 1)]
                m.d.comb += rd.addr.eq(EXP_BASE + new_widx)
                m.next = "FETCH_D"

            with m.State("FETCH_D"):
                # Bits at or above the declared length read as 0.
                bit = rd.data.bit_select(boff, 1) & (pos < job_count)
                m.d.sync += [digit.eq(((digit << 1) | bit)[:k]), fb.eq(fb + 1)]
                with m.If(fb == k - 1):
                    m.d.sync += sq.eq(0)
                    m.next = "SQ"
                with m.Else():
                    m.next = "FETCH_A"

            with m.State("SQ"):
                with m.If(sq == k):
                    call(SL_ACC, digit_base, SL_ACC, RET_WIN)
                with m.Else():
                    call(acc_src, acc_src, SL_ACC, RET_SQ)
                    m.d.sync += [acc_src.eq(SL_ACC), sq.eq(sq + 1)]

            with m.State("WIN_DONE"):
                m.d.sync += nwin.eq(nwin - 1)
                with m.If(nwin == 1):
                    m.next = "FINAL"
                with m.Else():
                    m.d.sync += [fb.eq(0), digit.eq(0)]
                    m.next = "FETCH_A"

            with m.State("FINAL"):
                call(acc_src, acc_src, SL_ACC, RET_FINAL, one=True)

            # --- PRODUCT corrections -------------------------------------------
            with m.State("CORR"):
                with m.If(ncorr == 0):
                    m.d.sync += [rj.eq(0), borrow.eq(0)]
                    m.next = "RED_A"
                with m.Else():
                    m.d.sync += ncorr.eq(ncorr - 1)
                    call(SL_ACC, SL_R2, SL_ACC, RET_PROD)

            # --- one MontMul operation -----------------------------------------
            with m.State("RD_START"):
                m.d.comb += rd.addr.eq(op_a + j)
                with m.If(single):
                    m.next = "RD_V"
                with m.Else():
                    m.next = "RD_B"

            with m.State("RD_B"):
                m.d.sync += a_reg.eq(rd.data)
                m.d.comb += rd.addr.eq(op_b + j)
                m.next = "RD_V"

            with m.State("RD_V"):
                p = mm.i_stream.payload
                m.d.comb += [
                    mm.i_stream.valid.eq(1),
                    p.a.eq(Mux(single, rd.data, a_reg)),
                    p.b.eq(Mux(op_one, j == 0, rd.data)),
                    # Hold the memory output while MontMul is not ready.
                    rd.en.eq(mm.i_stream.ready),
                    rd.addr.eq(op_a + j + 1),
                ]
                with m.If(mm.i_stream.ready):
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == s - 1):
                        m.next = "WAIT"
                    with m.Elif(~single):
                        m.next = "RD_B"

            with m.State("WAIT"):
                with m.If(res_done):
                    with m.Switch(op_ret):
                        with m.Case(RET_TABLE):
                            m.next = "TABLE"
                        with m.Case(RET_SQ):
                            m.next = "SQ"
                        with m.Case(RET_WIN):
                            m.next = "WIN_DONE"
                        with m.Case(RET_FINAL):
                            m.d.sync += [rj.eq(0), borrow.eq(0)]
                            m.next = "RED_A"
                        with m.Case(RET_PROD):
                            with m.If(in_done):
                                m.next = "CORR"
                            with m.Else():
                                m.next = "LOAD"

            # --- final reduction: D = ACC - N, then stream ACC or D ---------------
            with m.State("RED_A"):
                m.d.comb += rd.addr.eq(SL_ACC + rj)
                m.next = "RED_B"

            with m.State("RED_B"):
                m.d.sync += x_reg.eq(rd.data)
                m.d.comb += rd.addr.eq(SL_N + rj)
                m.next = "RED_C"

            with m.State("RED_C"):
                m.d.comb += [d_en.eq(1), d_addr.eq(SL_D + rj), d_data.eq(diff[:w]),
                             rd.addr.eq(SL_ACC + rj + 1)]
                m.d.sync += [borrow.eq(diff[w]), rj.eq(rj + 1)]
                with m.If(rj == s - 1):
                    m.d.sync += rj.eq(0)
                    m.next = "EMIT_A"
                with m.Else():
                    m.next = "RED_B"

            with m.State("EMIT_A"):
                # borrow = 1: ACC < N, keep it; otherwise ACC - N.
                src = Mux(borrow, SL_ACC, SL_D)
                m.d.sync += out_src.eq(src)
                m.d.comb += rd.addr.eq(src)
                m.next = "EMIT_V"

            with m.State("EMIT_V"):
                o = self.o_stream.payload
                m.d.comb += [
                    self.o_stream.valid.eq(1),
                    o.data.eq(rd.data),
                    o.tag.eq(job_tag),
                    o.last.eq(rj == s - 1),
                    rd.en.eq(self.o_stream.ready),
                    rd.addr.eq(out_src + rj + 1),
                ]
                with m.If(self.o_stream.ready):
                    m.d.sync += rj.eq(rj + 1)
                    with m.If(rj == s - 1):
                        m.d.sync += rj.eq(0)
                        m.next = "IDLE"

        return m
