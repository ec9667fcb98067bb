"""Word-level Montgomery multiplication: CIOS and FIOS with w-bit words.

These are the algorithms a word-serial datapath runs (Koç, Acar and
Kaliski, "Analyzing and comparing Montgomery multiplication algorithms",
IEEE Micro 1996). They are written on lists of ``w``-bit words exactly as
hardware sees them, and they count the word operations so that a design's
multiplier utilisation can be predicted. The bit-exact model of one specific
hardware schedule lives in ``montmul_hw.py``; this module is the generic
algorithm, tested against :func:`hefl.golden.montgomery.montmul_spec`.

Inputs and ranges
-----------------
``N`` odd, ``s`` words of ``w`` bits, ``R = 2^(w·s)``, ``N' = -N^-1 mod 2^w``.

* ``final_subtract=True`` (default): ``0 <= a, b < N`` and ``R > N``; the
  result is ``a·b·R^-1 mod N``, in ``[0, N)``.
* ``final_subtract=False`` (lazy reduction): ``0 <= a, b < 2N`` and
  ``R > 4N``; the result ``t ≡ a·b·R^-1 (mod N)`` lies in ``[0, 2N)`` and
  can feed the next multiplication unchanged (Walter 1999): since
  ``t = (a·b + m·N)/R < 4N²/R + N <= 2N``.

CIOS, one outer iteration ``i`` (``t`` has ``s + 2`` words)::

    (C, t[j]) = t[j] + a[j]·b[i] + C        for j = 0 .. s-1     s mul, 2s add
    (C, t[s]) = t[s] + C ; t[s+1] = C                            1 add
    m = t[0]·N' mod 2^w                                          1 mul
    (C, _)    = t[0] + m·N[0]                                    1 mul, 1 add
    (C, t[j-1]) = t[j] + m·N[j] + C         for j = 1 .. s-1     s-1 mul, 2(s-1) add
    (C, t[s-1]) = t[s] + C ; t[s] = t[s+1] + C                   2 add

FIOS merges the two inner loops into one (``m`` is computed from the first
partial product before the loop), which suits a single pipelined
multiply-accumulate unit. Both use ``2s² + s`` word multiplications.

The final subtraction, when asked for, is word-serial and always executed
(``s`` word subtractions with borrow, then a select), so the operation count
does not depend on the operands.
"""

from dataclasses import dataclass

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.montgomery import from_words, to_words

__all__ = ["WordOps", "cios_montmul", "fios_montmul", "cios_word_ops", "fios_word_ops"]


@dataclass
class WordOps:
    """Word operations spent by one (or several) Montgomery multiplications.

    Attributes
    ----------
    mul : int
        ``w × w → 2w`` bit multiplications.
    add : int
        ``w``-bit additions with carry (each accumulation into a double word
        counts as one addition of a word-sized operand).
    sub : int
        ``w``-bit subtractions with borrow (final subtraction).
    """

    mul: int = 0
    add: int = 0
    sub: int = 0

    def __iadd__(self, other):
        self.mul += other.mul
        self.add += other.add
        self.sub += other.sub
        return self


def _check(a, b, c, final_subtract):
    n = c.n
    if final_subtract:
        if c.r <= n:
            raise ModulusError(f"R = 2^{c.word_bits * c.words} must exceed N")
        bound, what = n, "N"
    else:
        if c.r <= 4 * n:
            raise ModulusError(
                f"lazy reduction needs R > 4N; 2^{c.word_bits * c.words} is too small for a "
                f"{n.bit_length()}-bit N (use words_for(bits, w, headroom=2))")
        bound, what = 2 * n, "2N"
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, int) or not 0 <= v < bound:
            raise OperandRangeError(f"MontMul operand {name} must lie in [0, {what})")


def _final(t, c, ops, final_subtract):
    """Word-serial conditional subtraction (always computed, then selected)."""
    if not final_subtract:
        return from_words(t[:c.words + 1], c.word_bits)
    w, s = c.word_bits, c.words
    mask = (1 << w) - 1
    nw = to_words(c.n, w, s)
    diff, borrow = [], 0
    for j in range(s):
        d = t[j] - nw[j] - borrow
        borrow = 1 if d < 0 else 0
        diff.append(d & mask)
        ops.sub += 1
    # t < 2N < 2R: t[s] is the one bit above the s words.
    d = t[s] - borrow
    keep_t = d < 0
    return from_words(t[:s + 1] if keep_t else diff, w)


def cios_montmul(a, b, consts, *, final_subtract=True):
    """Coarsely Integrated Operand Scanning Montgomery multiplication.

    Parameters
    ----------
    a, b : int
        Operands, in ``[0, N)`` (or ``[0, 2N)`` when ``final_subtract`` is false).
    consts : MontConstants
        From :func:`hefl.golden.montgomery.mont_constants`.
    final_subtract : bool
        Reduce the result below ``N`` (true) or leave it below ``2N``.

    Returns
    -------
    (int, WordOps)
        The result and the word operations spent.
    """
    _check(a, b, consts, final_subtract)
    w, s = consts.word_bits, consts.words
    mask = (1 << w) - 1
    aw, bw, nw = to_words(a, w, s), to_words(b, w, s), to_words(consts.n, w, s)
    np0 = consts.nprime
    t = [0] * (s + 2)
    ops = WordOps()
    for i in range(s):
        carry = 0
        bi = bw[i]
        for j in range(s):
            x = t[j] + aw[j] * bi + carry
            t[j], carry = x & mask, x >> w
        ops.mul += s
        ops.add += 2 * s
        x = t[s] + carry
        t[s], t[s + 1] = x & mask, x >> w
        ops.add += 1
        m = (t[0] * np0) & mask
        ops.mul += 1
        x = t[0] + m * nw[0]
        carry = x >> w           # low word is zero by construction of m
        ops.mul += 1
        ops.add += 1
        for j in range(1, s):
            x = t[j] + m * nw[j] + carry
            t[j - 1], carry = x & mask, x >> w
        ops.mul += s - 1
        ops.add += 2 * (s - 1)
        x = t[s] + carry
        t[s - 1], carry = x & mask, x >> w
        t[s] = t[s + 1] + carry
        t[s + 1] = 0
        ops.add += 2
    return _final(t, consts, ops, final_subtract), ops


def fios_montmul(a, b, consts, *, final_subtract=True):
    """Finely Integrated Operand Scanning Montgomery multiplication.

    Same contract as :func:`cios_montmul`. Each inner step does both
    products ``a[j]·b[i]`` and ``m·N[j]`` and one accumulation, the shape of
    a single multiply-accumulate pipeline.
    """
    _check(a, b, consts, final_subtract)
    w, s = consts.word_bits, consts.words
    mask = (1 << w) - 1
    aw, bw, nw = to_words(a, w, s), to_words(b, w, s), to_words(consts.n, w, s)
    np0 = consts.nprime
    t = [0] * (s + 2)
    ops = WordOps()
    for i in range(s):
        bi = bw[i]
        # j = 0: compute m from the first partial sum, then drop the zero word.
        x = t[0] + aw[0] * bi
        ops.mul += 1
        ops.add += 1
        m = ((x & mask) * np0) & mask
        ops.mul += 1
        x += m * nw[0]
        ops.mul += 1
        ops.add += 1
        carry = x >> w
        for j in range(1, s):
            x = t[j] + aw[j] * bi + m * nw[j] + carry
            t[j - 1], carry = x & mask, x >> w
            ops.mul += 2
            ops.add += 3
        x = t[s] + carry
        t[s - 1], carry = x & mask, x >> w
        t[s] = t[s + 1] + carry
        t[s + 1] = 0
        ops.add += 2
    return _final(t, consts, ops, final_subtract), ops


def cios_word_ops(words, *, final_subtract=True):
    """Word operations of one CIOS multiplication with ``s = words`` words.

    The counts depend on ``s`` only, never on the operands; the model's
    counters are tested against this formula.
    """
    s = words
    return WordOps(mul=2 * s * s + s, add=s * (4 * s + 2),
                   sub=s if final_subtract else 0)


def fios_word_ops(words, *, final_subtract=True):
    """Word operations of one FIOS multiplication with ``s = words`` words."""
    s = words
    return WordOps(mul=2 * s * s + s, add=s * (3 * s + 1),
                   sub=s if final_subtract else 0)
