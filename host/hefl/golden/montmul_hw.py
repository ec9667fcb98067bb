"""Bit-accurate, cycle-predicting model of the MontMul gateware (hefl.hw.montmul).

This follows the hardware's words, modes and schedule exactly; it is tested
against :func:`hefl.golden.montgomery.montmul_spec`, and the benches compare
the RTL with it word for word (:func:`montmul_hw`) and cycle for cycle
(:func:`op_schedule`, :func:`op_timing`).

Operands and modes
------------------
``MontMul(a, b)`` with ``R = 2^(w·s) > 4N`` and ``a, b < 2N``: ``a`` is the
*streamed* operand (one word ``a_j`` per slot), ``b`` the *row* operand (one
word ``b_i`` per row). The caller chooses the mode from its schedule, never
from the data, so the cycle count is a function of ``s`` and the mode:

``mul``      any ``a``, ``b``.
``sqr``      ``a = b`` (a squaring): row ``i`` uses only the products
             ``a_j·a_i`` for ``j ≥ i``, doubled for ``j > i`` (the products
             below the diagonal are the doubled ones above it).
``one``      ``a = 1`` (the Montgomery-domain exit ``MontMul(1, b)``): the
             streamed words are the constant ``1, 0, 0, ...``, not read.

Arithmetic (lazy CIOS; every row ``i`` of ``s``)
-----------------------------------------------
One pipelined multiplier of ``(w+1) × w`` bits (the doubled row word
``2·b_i`` has ``w + 1`` bits) and an accumulator whose loop-carried state is
a ``(w+1)``-bit high half and a 2-bit carry::

    pass 1, j = j0..s-1 : p = f_j·b_i·a_j        f_j = 2 if sqr and j > i else 1
                           u = t_j + lo(p) + hi(p_{j-1}) + c   (hi: w+1 bits, c ≤ 3)
                           t_j ← u mod 2^w ; c ← u >> w
                           (after j = s-1 the top word is kept as the pair
                            T = (hi(p_{s-1}), c), never added; j0 = i if sqr else 0)
    m slot              : m = lo(t_0 · N')
    pass 2, j = 0..s-1  : q = m·N_j ; u = t_j + lo(q) + hi(q_{j-1}) + c
                           t_{j-1} ← u mod 2^w (j ≥ 1; for j = 0, u mod 2^w = 0)
    tail                : t_{s-1} ← T.hi + T.c + hi(q_{s-1}) + c

Bounds (``a, b < 2N``, ``R > 4N``), with ``A_{<i} = a mod 2^(wi)`` and
``B_{<i}`` likewise:

* ``mul``/``one``: after ``i`` rows ``t·2^(wi) = a·B_{<i} + M_i·N`` with
  ``M_i < 2^(wi)``, so ``t < a + N < 3N < R``: ``s`` words, ``t_{s-1} < 2^w``.
* ``sqr``: the rows before ``i`` hold exactly the products with one index
  below ``i``: ``a² − (a − A_{<i})² = A_{<i}·(2a − A_{<i}) < 2^(wi)·2a``, so
  ``t < 2a + N < 5N < 1.25·R``: the top word ``t_{s-1} < 1.25·2^w`` needs
  ``w + 1`` bits (the hardware's t memory is ``w + 1`` bits wide), every
  other word stays below ``2^w``.
* Carry: ``hi(p) ≤ 2^(w+1) − 4`` (``p ≤ 2(2^w−1)²``), so for ``t_j < 2^w``
  ``u ≤ 2^(w+2) − 6 + c`` and ``c ≤ 3`` by induction (2 bits). At ``j = s−1``
  of pass 1, ``t_{s-1} < 1.25·2^w`` makes ``u < 4.25·2^w + 3``: ``T.c ≤ 4``
  (3 bits, used only by the tail). The accumulator's sums need ``w + 3``
  bits.
* Result: ``t = (a·b + M·N)/R < 4N²/R + N < 2N`` in every mode (``a·b = a²``
  for ``sqr``); no final subtraction. ``one``: ``t < (2N + R·N)/R``, so
  ``t ≤ N``, ``= N`` only for a zero result.

The squaring uses ``s(s+1)/2`` products in pass 1 instead of ``s²``;
pass 2 and the tail are the same in every mode.

Schedule (:func:`op_schedule`)
-----------------------------
One slot per cycle: ``B`` (read ``b_0``), ``M`` (the m product; it also reads
the next row word ``b_{i+1}``), ``P1 j`` (read ``a_j``) or ``P2 j`` (read
``N_j``). ``D = mul_latency + MEM_STAGES`` cycles separate a slot's issue
(the sequencer's decision; the read address is registered the cycle after)
from its product. The op is accepted at cycle 0;
``B`` issues at 1, cycle 2 is idle (``b_0`` reaches the row register), row 0
starts at 3. Within a row the sequencer issues, by priority, ``M`` as soon
as ``t_0`` is registered (``D + 2`` after its source slot: pass-1 step 0, or
in ``sqr`` rows ``i ≥ 1`` pass-2 step 1 of row ``i − 1``, so ``M`` comes
first in those rows), else the next pass-1 slot unless the hazard hold
forbids it, and pass 2 once ``m`` is registered (``M`` + ``D`` + 1). The
last pass-2 issue of the last row ends the op's issue phase; the next op
may be accepted in the following cycle.

Hazards (all resolved by the schedule, which is a function of ``s`` and the
mode only):

* pass 1 of row ``i`` reads ``t_j`` (address ``D − 2`` after issue), written
  by pass-2 step ``j + 1`` of row ``i − 1`` (through the t-write register,
  ``D + 2`` after its issue), or for ``j = s − 1`` by the tail (``D + 3``
  after the last pass-2 issue): the first pass-1 slot of row ``i`` waits
  until ``need`` cycles after the previous row's last pass-2 issue,
  ``need = j0 − s + 7``. In ``mul``/``one`` mode ``need ≤ 1`` for ``s ≥ 6``;
  ``s = 5`` (``MONTMUL_MIN_WORDS``) waits one cycle per row.
* The tail writes ``t_{s-1}`` into the t memory in the cycle where pass-1
  step 0 of the next row would write ``t_0``: that write is not needed, as
  step 0's word goes to the ``t_0`` register (for ``M``) and pass-2 step 0
  needs only its carry, ``t_0 ≠ 0`` (``t_0 + lo(m·N_0)`` is 0 or ``2^w``).
  A squaring's rows ``i ≥ 1`` start pass 1 at ``j = i ≥ 1``, a slot that
  writes, so it waits at least one cycle (``need ≥ 2``; ``M`` usually
  fills that cycle).
* Row 0 reads ``t = 0``: no clearing pass, no dependence on the previous op,
  so a next op can start right behind one; the ``T`` pair, ``m``, ``t_0``
  and the row registers are overwritten only after their last use.
"""

from dataclasses import dataclass

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.montgomery import MontConstants, from_words, to_words

__all__ = ["MUL", "SQR", "ONE", "MODES", "MEM_STAGES", "OUT_FIFO_LATENCY", "START_LATENCY",
           "mul_latency", "hold_cycles", "OpSchedule", "op_schedule", "OpTiming", "op_timing",
           "MontMulHwTrace", "montmul_hw"]

#: MontMul modes (chosen by the caller's schedule position).
MUL, SQR, ONE = "mul", "sqr", "one"
MODES = (MUL, SQR, ONE)

#: Cycles from a slot's issue to its operands entering the multiplier: the
#: address register, the synchronous memory read, then the core's read-data
#: register (no logic between a memory and a register on either side).
MEM_STAGES = 3

#: :class:`hefl.hw.montmul_stream.MontMulStream`: cycles from a result word
#: written into its output FIFO (``SyncFIFOBuffered``) to ``o_stream.valid``.
OUT_FIFO_LATENCY = 2
#: :class:`hefl.hw.montmul_stream.MontMulStream`: cycles from the last input
#: beat's handshake to the core accepting the op (the bank-full register).
START_LATENCY = 1


def _chunks(bits, tile):
    return -(-bits // tile)


def mul_latency(word_bits, tile_a, tile_b):
    """Latency of the MontMul's multiplier, a ``(w+1) × w`` :class:`hefl.hw.mulpipe.MulPipe`.

    Input register, tile-product register, then ``ceil(log2(tiles))``
    registered adder-tree levels; the ``w + 1``-bit side (the doubled row word)
    is cut into ``tile_a``-bit chunks.
    """
    tiles = _chunks(word_bits + 1, tile_a) * _chunks(word_bits, tile_b)
    return 2 + (tiles - 1).bit_length()


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"MontMul mode must be one of {MODES}, not {mode!r}")


def hold_cycles(words, mode, row):
    """Cycles after the previous row's last pass-2 issue during which pass 1 of ``row`` waits.

    ``need − 1`` with ``need = j0 − s + 7`` (see the module docstring,
    "Hazards"), never negative; at least 1 for a squaring's rows ``i ≥ 1``,
    whose first pass-1 slot writes t and must not meet the tail's write.
    """
    if mode == SQR and row >= 1:
        return max(1, row - words + 6)
    return max(0, -words + 6)


@dataclass(frozen=True)
class OpSchedule:
    """The issue schedule of one operation, cycle 0 being the cycle it was accepted.

    Attributes
    ----------
    slots : list of (int, str, int, int)
        ``(cycle, kind, row, j)``, kind ``"B"``, ``"M"``, ``"P1"`` or ``"P2"``.
    last_issue : int
        Cycle of the last pass-2 issue; the core is ready again at ``last_issue + 1``.
    first_write, done : int
        Cycles of the first and the last result word written (``done`` pulses).
    """

    slots: list
    last_issue: int
    first_write: int
    done: int


def op_schedule(words, latency, mode=MUL):
    """Cycle-by-cycle issue schedule of the MontMul sequencer (one operation).

    Parameters
    ----------
    words : int
        ``s``.
    latency : int
        Multiplier latency (:func:`mul_latency`); ``D = latency + MEM_STAGES``.
    mode : str
        ``MUL``, ``SQR`` or ``ONE``.
    """
    if words < 1:
        raise ValueError(f"Word count must be positive, not {words!r}")
    _check_mode(mode)
    s, d, sq = words, latency + MEM_STAGES, mode == SQR
    slots = []
    # Sequencer registers, as the gateware holds them during a cycle.
    b_pend, b_wait = True, False
    row, j, pass2, m_issued, hold = 0, 0, False, False, 0
    t0_at = m_at = None            # cycle from which t0_valid / m_valid read 1
    cycle = 1
    while True:
        t0_valid = t0_at is not None and cycle >= t0_at
        m_valid = m_at is not None and cycle >= m_at
        hold_now = hold
        if hold:
            hold -= 1
        if b_pend:
            slots.append((cycle, "B", 0, 0))
            b_pend, b_wait = False, True
        elif b_wait:
            b_wait = False
        elif not pass2:
            if not m_issued and t0_valid:
                slots.append((cycle, "M", row, 0))
                m_issued, t0_at, m_at = True, None, cycle + d + 1
                if j == s:
                    pass2, j = True, 0
            elif j != s and hold_now == 0:
                slots.append((cycle, "P1", row, j))
                if j == 0:
                    t0_at = cycle + d + 2
                if j == s - 1 and m_issued:
                    pass2, j = True, 0
                else:
                    j += 1
        elif m_valid:
            slots.append((cycle, "P2", row, j))
            if j == 1 and sq and row != s - 1:
                t0_at = cycle + d + 2
            if j == s - 1:
                if row == s - 1:
                    break
                m_at, m_issued, pass2 = None, False, False
                row += 1
                j = row if sq else 0
                hold = hold_cycles(s, mode, row)
            else:
                j += 1
        cycle += 1
    last = [c for c, kind, r, jj in slots if kind == "P2" and r == s - 1]
    # Result words leave through a register: one cycle after they are formed.
    return OpSchedule(slots=slots, last_issue=cycle,
                      first_write=(last[1] if s > 1 else last[0]) + d + 2, done=cycle + d + 3)


@dataclass(frozen=True)
class OpTiming:
    """Cycle counts of one MontMul operation (all predicted, see :func:`op_timing`).

    Core (:class:`hefl.hw.montmul.MontMul`), cycle 0 = the op accepted:

    Attributes
    ----------
    mode : str
    mul_latency : int
        The multiplier latency the counts are for.
    issue_cycles : int
        Until the core accepts the next op (its ``ready`` is high again).
    first_write_cycles, done_cycles : int
        Until the first and the last result word are written.
    mul_slots : int
        Multiplier slots (``2s² + s``; ``s(s+1)/2 + s² + s`` for ``sqr``).

    Stream wrapper (:class:`hefl.hw.montmul_stream.MontMulStream`), cycle 0 =
    the first input beat's handshake on an idle wrapper, output always ready:

    Attributes
    ----------
    latency_cycles, first_out_cycles : int
        To the last and the first output beat's handshake.
    cycles_per_op : int
        Steady state, operands always ready: ``issue_cycles``.
    """

    mode: str
    mul_latency: int
    issue_cycles: int
    first_write_cycles: int
    done_cycles: int
    mul_slots: int
    latency_cycles: int
    first_out_cycles: int
    cycles_per_op: int


def op_timing(words, latency, mode=MUL):
    """Predict the core's and the stream wrapper's cycle counts for ``s`` words."""
    sch = op_schedule(words, latency, mode)
    accept = (words - 1) + START_LATENCY          # input beats at 0 .. s-1
    return OpTiming(
        mode=mode, mul_latency=latency,
        issue_cycles=sch.last_issue + 1,
        first_write_cycles=sch.first_write,
        done_cycles=sch.done,
        mul_slots=sum(1 for _, kind, _, _ in sch.slots if kind != "B"),
        latency_cycles=accept + sch.done + OUT_FIFO_LATENCY,
        first_out_cycles=accept + sch.first_write + OUT_FIFO_LATENCY,
        cycles_per_op=sch.last_issue + 1,
    )


@dataclass
class MontMulHwTrace:
    """Result of :func:`montmul_hw` and what it saw.

    Attributes
    ----------
    value : int
        ``a·b·R⁻¹ mod N`` up to one ``N``: ``≡`` that, and ``< 2N``.
    words : list of int
        The ``s`` result words, least significant first.
    max_carry : int
        Largest loop-carried carry (≤ 3; ≤ 2 outside ``sqr``).
    max_top_carry : int
        Largest ``T.c`` (≤ 4).
    max_tlast : int
        Largest top word ``t_{s-1}`` between rows (``< 2^w`` outside ``sqr``,
        ``< 1.25·2^w`` in ``sqr``).
    mul_slots : int
        Multiplier slots used.
    """

    value: int
    words: list
    max_carry: int
    max_top_carry: int
    max_tlast: int
    mul_slots: int


def _check_operands(a, b, consts, mode):
    if not isinstance(consts, MontConstants):
        raise TypeError(f"consts must be MontConstants, not {type(consts).__name__}")
    _check_mode(mode)
    n, w, s = consts.n, consts.word_bits, consts.words
    if consts.r <= 4 * n:
        raise ModulusError(f"Lazy MontMul needs R = 2^{w * s} > 4N; use more words")
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, int) or not 0 <= x < 2 * n:
            raise OperandRangeError(f"MontMul operand {name} must lie in [0, 2N)")
    if mode == SQR and a != b:
        raise OperandRangeError("a squaring needs a = b")
    if mode == ONE and a != 1:
        raise OperandRangeError("mode 'one' streams the constant a = 1")


def montmul_hw(a, b, consts, *, mode=MUL, latency=None):
    """Run the MontMul gateware's word-level algorithm, row by row, in its mode.

    Parameters
    ----------
    a, b : int
        Streamed and row operand, ``0 <= a, b < 2N`` (lazily reduced inputs
        accepted); ``a = b`` for ``SQR``, ``a = 1`` for ``ONE``.
    consts : MontConstants
        Needs ``R = 2^(w·s) > 4N``.
    mode : str
        ``MUL``, ``SQR`` or ``ONE``.
    latency : int, optional
        Accepted for symmetry with :func:`op_schedule`; the arithmetic does
        not depend on where the m slot falls.

    Raises
    ------
    OperandRangeError
        An operand outside ``[0, 2N)``, or ``a`` not matching the mode.
    ModulusError
        ``R <= 4N``.
    """
    _check_operands(a, b, consts, mode)
    n, w, s = consts.n, consts.word_bits, consts.words
    mask = (1 << w) - 1
    aw, bw, nw = to_words(a, w, s), to_words(b, w, s), to_words(n, w, s)
    t = [0] * s
    tlast = 0                      # t_{s-1} of the previous row (w + 1 bits)
    max_carry = max_top = max_tlast = slots = 0
    for i in range(s):
        j0 = i if mode == SQR else 0
        hi_prev = c = 0
        # Pass 1.
        for j in range(j0, s):
            slots += 1
            p = bw[i] * aw[j] * (2 if mode == SQR and j > i else 1)
            t_in = 0 if i == 0 else (tlast if j == s - 1 else t[j])
            u = t_in + (p & mask) + hi_prev + c
            assert u >> (w + 3) == 0, "accumulator overflowed w + 3 bits"
            hi_prev, c = p >> w, u >> w
            t[j] = u & mask
            if j < s - 1:
                max_carry = max(max_carry, c)
        t_hi, t_c = hi_prev, c
        max_top = max(max_top, t_c)
        # m slot, pass 2, tail.
        slots += 1
        m = (t[0] * consts.nprime) & mask
        hi_prev = c = 0
        for j in range(s):
            slots += 1
            q = m * nw[j]
            u = t[j] + (q & mask) + hi_prev + c
            hi_prev, c = q >> w, u >> w
            max_carry = max(max_carry, c)
            if j == 0:
                assert u & mask == 0, "pass-2 step 0 must clear the low word"
            else:
                t[j - 1] = u & mask
        tail = t_hi + t_c + hi_prev + c
        assert tail >> (w + 1) == 0, "tail word overflowed w + 1 bits: R > 4N bound violated"
        t[s - 1] = tlast = tail
        max_tlast = max(max_tlast, tail)
    assert tlast >> w == 0, "result top word overflowed: result >= 2N"
    value = from_words(t, w)
    return MontMulHwTrace(value=value, words=list(t), max_carry=max_carry, max_top_carry=max_top,
                          max_tlast=max_tlast, mul_slots=slots)
