"""Bit-accurate, cycle-predicting model of the MontMul gateware (hefl.hw.montmul).

This follows the hardware's words, slot order and schedule exactly; it is
tested against :func:`hefl.golden.montgomery.montmul_spec`, and the cocotb
scoreboard compares the RTL with it word for word and cycle for cycle.

Arithmetic (lazy CIOS, ``R = 2^(w·s) > 4N``, ``a, b < 2N`` → result ``< 2N``)
-------------------------------------------------------------------------------
Each of the ``s`` rows ``i`` runs two word-serial passes through one
pipelined ``w × w`` multiplier and one accumulator whose loop-carried state
is only a ``w``-bit high half and a 2-bit carry::

    pass 1, j = 0..s-1 : p = a_j·b_i
                          u = t_j + lo(p) + hi(p_{j-1}) + c    (c ≤ 2 bits)
                          t_j ← u mod 2^w ; c ← u >> w
                          (after j = s-1 the top word t_s = hi(p_{s-1}) + c
                           is kept as the pair T = (hi, c), never added)
    m slot             : m = lo(t_0 · N')                       (t_0 after pass-1 step 0)
    pass 2, j = 0..s-1 : q = m·N_j
                          u = t_j + lo(q) + hi(q_{j-1}) + c
                          t_{j-1} ← u mod 2^w (j ≥ 1; for j = 0, u mod 2^w = 0)
    tail               : t_{s-1} ← T.hi + T.c + hi(q_{s-1}) + c  (< 2^w by the bound)

With ``t < a + N`` before a row (true for ``t = 0``), after it
``t < (a + N + a(2^w-1) + N(2^w-1)) / 2^w = a + N < 3N < R``, so ``t`` fits
``s`` words between rows, the pass-1 sum fits ``s + 1`` words, and the final
``t = (a·b + M·N)/R < 4N²/R + N < 2N``. No final subtraction.

Schedule
--------
One slot per cycle enters the multiplier. ``D = mul_latency + 2`` cycles
separate a slot's issue (operand memory read address) from its product
(synchronous memory read, memory output register, then the multiplier
pipeline). The
accumulator takes two cycles: at ``D`` the carry-free part
``v = t_j + lo(p) + hi(p_{j-1})``, at ``D + 1`` the loop-carried
``u = v + c`` (so the only cycle-to-cycle loop is one ``w``-bit add of a
2-bit carry); the tail follows at ``D + 2``. Within a row, the sequencer
issues pass-1 slots ``0, 1, ...`` and inserts the m slot as soon as ``t_0``
is registered (issue of ``P1_0`` + ``D`` + 2); pass-2 slots start once ``m``
is registered (issue of ``M`` + ``D`` + 1). When ``s + 1 ≥ 2D + 3`` the row
has no idle slot: ``2s + 1`` cycles, and
``s·(2s + 1)`` cycles per operation in steady state. The next row (or the
next operation, when its operands are loaded and the output FIFO has room
for ``s`` words) follows with no bubble. See :func:`row_schedule` and
:func:`op_timing` for the exact cycle counts, including the load of the
operands and the output FIFO.
"""

from dataclasses import dataclass

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.montgomery import MontConstants, from_words, to_words

__all__ = ["mul_latency", "row_schedule", "OpTiming", "op_timing",
           "montmul_hw", "MontMulHwTrace", "OUT_FIFO_LATENCY", "START_LATENCY",
           "MEM_STAGES"]

#: Cycles from a slot's issue to its operands entering the multiplier:
#: synchronous memory read, then the memory output register.
MEM_STAGES = 2

#: Cycles from the accumulator writing a result word into the output FIFO
#: (``SyncFIFOBuffered``: memory, then output register) to ``o_stream.valid``.
OUT_FIFO_LATENCY = 2
#: Cycles from the last input beat's handshake to the first slot issue of an
#: operation on an idle engine (bank-full flag register, then the sequencer's
#: start cycle).
START_LATENCY = 2


def _chunks(bits, tile):
    return -(-bits // tile)


def mul_latency(word_bits, tile_a, tile_b):
    """Latency of :class:`hefl.hw.mulpipe.MulPipe` for ``w × w`` with the given tiles.

    Input register, tile-product register, then ``ceil(log2(tiles))``
    registered adder-tree levels.
    """
    tiles = _chunks(word_bits, tile_a) * _chunks(word_bits, tile_b)
    return 2 + (tiles - 1).bit_length()


def row_schedule(words, latency):
    """Issue order of one row: a list of slots, one per cycle.

    Parameters
    ----------
    words : int
        ``s``.
    latency : int
        Multiplier latency (:func:`mul_latency`); ``D = latency + MEM_STAGES``.

    Returns
    -------
    list of (str, int)
        ``("P1", j)``, ``("M", 0)``, ``("P2", j)`` or ``("-", 0)`` (idle cycle),
        in issue order; its length is the row's cycle count.
    """
    d = latency + MEM_STAGES
    slots = []
    j, m_issued, t0_at, m_at = 0, False, None, None
    # Pass 1 with the m slot inserted as soon as t_0 is registered.
    while j < words or not m_issued:
        k = len(slots)
        if not m_issued and t0_at is not None and k >= t0_at:
            slots.append(("M", 0))
            m_issued, m_at = True, k + d + 1       # m = lo(product), registered at D
        elif j < words:
            if j == 0:
                t0_at = k + d + 2                  # t_0 = u, registered at D + 1
            slots.append(("P1", j))
            j += 1
        else:
            slots.append(("-", 0))
    # Pass 2 once m is registered.
    j = 0
    while j < words:
        if len(slots) >= m_at:
            slots.append(("P2", j))
            j += 1
        else:
            slots.append(("-", 0))
    return slots


@dataclass(frozen=True)
class OpTiming:
    """Cycle counts of one MontMul operation (all predicted, see :func:`op_timing`).

    Attributes
    ----------
    row_cycles : int
        Cycles per row (``2s + 1`` when no slot is idle).
    cycles_per_op : int
        Steady state, operands always ready and output always accepted.
    latency_cycles : int
        Idle engine, operands streamed one beat per cycle, output always
        accepted: cycles from the first input beat's handshake to the last
        output beat's handshake.
    first_out_cycles : int
        Same origin, to the first output beat.
    mul_slots : int
        Multiplier slots per op (``2s² + s``); utilisation is
        ``mul_slots / cycles_per_op``.
    """

    row_cycles: int
    cycles_per_op: int
    latency_cycles: int
    first_out_cycles: int
    mul_slots: int


def op_timing(words, latency):
    """Predict latency and throughput of the MontMul for ``s`` words."""
    if words < 1:
        raise ValueError(f"Word count must be positive, not {words!r}")
    d = latency + MEM_STAGES
    row = row_schedule(words, latency)
    rc = len(row)
    # Input beats at cycles 0 .. s-1, first issue START_LATENCY after the last.
    first_issue = (words - 1) + START_LATENCY
    last_row = first_issue + (words - 1) * rc
    p2_issue = {j: last_row + k for k, (kind, j) in enumerate(row) if kind == "P2"}
    # Word j-1 is written by pass-2 step j (j ≥ 1) at issue + D; word s-1 by
    # the tail one cycle after step s-1.
    first_write = p2_issue[1] + d + 1
    last_write = p2_issue[words - 1] + d + 2
    return OpTiming(
        row_cycles=rc,
        cycles_per_op=words * rc,
        latency_cycles=last_write + OUT_FIFO_LATENCY,
        first_out_cycles=first_write + OUT_FIFO_LATENCY,
        mul_slots=words * (2 * words + 1),
    )


@dataclass
class MontMulHwTrace:
    """Result of :func:`montmul_hw` and what it saw.

    Attributes
    ----------
    value : int
        ``a·b·R⁻¹ mod N`` up to one ``N``: ``≡`` that, and ``< 2N``.
    words : list of int
        The ``s`` output words, least significant first (the o_stream beats).
    max_carry : int
        Largest 2-bit carry seen (≤ 2 by construction).
    mul_slots : int
        Multiplier slots used.
    """

    value: int
    words: list
    max_carry: int
    mul_slots: int


def montmul_hw(a, b, consts, *, latency=5):
    """Run the MontMul gateware's word-level algorithm in its slot order.

    Parameters
    ----------
    a, b : int
        Operands, ``0 <= a, b < 2N`` (lazily reduced inputs accepted).
    consts : MontConstants
        Needs ``R = 2^(w·s) > 4N``.
    latency : int
        Multiplier latency; it sets where the m slot falls within pass 1
        (the arithmetic does not depend on it, the order of slots does).

    Raises
    ------
    OperandRangeError
        An operand outside ``[0, 2N)``.
    ModulusError
        ``R <= 4N``.
    """
    if not isinstance(consts, MontConstants):
        raise TypeError(f"consts must be MontConstants, not {type(consts).__name__}")
    n, w, s = consts.n, consts.word_bits, consts.words
    if consts.r <= 4 * n:
        raise ModulusError(f"Lazy MontMul needs R = 2^{w * s} > 4N; use more words")
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, int) or not 0 <= x < 2 * n:
            raise OperandRangeError(f"MontMul operand {name} must lie in [0, 2N)")
    mask = (1 << w) - 1
    aw, bw, nw = to_words(a, w, s), to_words(b, w, s), to_words(n, w, s)
    t = [0] * s
    tlast = 0  # tail register: t_{s-1} of the previous row
    max_carry = 0
    slots = 0
    row = row_schedule(s, latency)
    for i in range(s):
        first = i == 0
        hi_prev = c = 0
        t_hi = t_c = m = 0
        for kind, j in row:
            if kind == "-":
                continue
            slots += 1
            if kind == "M":
                m = (t[0] * consts.nprime) & mask
                continue
            if j == 0:
                hi_prev = c = 0
            if kind == "P1":
                p = aw[j] * bw[i]
                if first:
                    t_in = 0
                elif j == s - 1:
                    t_in = tlast
                else:
                    t_in = t[j]
            else:
                p = m * nw[j]
                t_in = t[j]
            u = t_in + (p & mask) + hi_prev + c
            hi_prev, c = p >> w, u >> w
            max_carry = max(max_carry, c)
            if kind == "P1":
                t[j] = u & mask
                if j == s - 1:
                    t_hi, t_c = hi_prev, c
            elif j == 0:
                assert u & mask == 0, "pass-2 step 0 must clear the low word"
            else:
                t[j - 1] = u & mask
        tail = t_hi + t_c + hi_prev + c
        assert tail >> w == 0, "tail word overflowed: R > 4N bound violated"
        t[s - 1] = tlast = tail
    value = from_words(t, w)
    return MontMulHwTrace(value=value, words=list(t), max_carry=max_carry, mul_slots=slots)
