"""Fixed-window modular exponentiation with a constant schedule (docs/design.md §1.4).

The golden model of the hardware ModExp. It runs on any Montgomery
multiplication given as a callable, so the same schedule can be checked with
the specification model, the word-level CIOS model or the bit-exact model of
the hardware datapath.

Schedule for ``base^exp mod N`` with window ``k`` over a *declared* exponent
length ``L`` (rounded up to ``W = ceil(L/k)`` windows of ``k`` bits)::

    conversions in   one = MontMul(R² mod N, 1)        = R mod N  (Montgomery 1)
                     T[1] = MontMul(base, R² mod N)     (base in the Montgomery domain)
    table            T[0] = one; T[j] = MontMul(T[j-1], T[1])   j = 2 .. 2^k - 1
    windows          acc = one
                     for each window d (most significant first):
                         k × acc = MontMul(acc, acc)
                         acc = MontMul(acc, T[d])        entry 0 included
    conversion out   result = MontMul(acc, 1)

so the number of Montgomery multiplications is ``2 + (2^k - 2) + W·(k + 1) + 1``
whatever the exponent's or the base's value: decryption exponents are secret,
and the hardware's cycle count must not reveal them. Only ``N``, ``N'`` and
``R² mod N`` are needed as constants; ``R mod N`` is computed by the first
conversion, or, with ``one_loaded=True``, loaded as a fourth constant (one
Montgomery multiplication fewer; the hardware ModExp does this).

A Montgomery multiplication that keeps results lazily reduced (below ``2N``)
works too: every value it produces is fed back to it unchanged, and the final
``MontMul(acc, 1)`` is ``<= N``, equal to ``N`` only for a zero result, which
the last line maps to 0.
"""

from typing import NamedTuple

from hefl.errors import OperandRangeError
from hefl.golden.montgomery import check_modulus, mont_constants
from hefl.hw.params import MODEXP_WINDOW_BITS

__all__ = ["ScheduleCounts", "ModexpResult", "modexp_schedule_counts", "window_digits",
           "spec_montmul", "modexp"]

#: Default window width: the hardware's (:data:`hefl.hw.params.MODEXP_WINDOW_BITS`;
#: docs/design.md §1.4).
DEFAULT_K = MODEXP_WINDOW_BITS
#: Default word width for the constants when none are given.
DEFAULT_WORD_BITS = 64


class ScheduleCounts(NamedTuple):
    """Montgomery multiplications of one exponentiation, by phase.

    Attributes
    ----------
    windows : int
        ``ceil(exp_bits / k)``.
    table : int
        ``2^k - 2`` multiplications building ``T[2] .. T[2^k - 1]``.
    squarings : int
        ``windows · k``.
    multiplies : int
        ``windows`` (one table multiply per window, entry 0 included).
    conversions : int
        3: two in (Montgomery one and the base), one out; 2 when the
        Montgomery one is a loaded constant.
    total : int
        Sum of the four phases.
    """

    windows: int
    table: int
    squarings: int
    multiplies: int
    conversions: int
    total: int


class ModexpResult(NamedTuple):
    """``value = base^exp mod N`` and the Montgomery multiplications spent."""

    value: int
    modmuls: int


def _check_k(k):
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise TypeError(f"Window width must be a positive integer, not {k!r}")


def modexp_schedule_counts(exp_bits, k=DEFAULT_K, *, one_loaded=False):
    """Montgomery multiplications for a declared exponent length of ``exp_bits``.

    Parameters
    ----------
    exp_bits : int
        Declared exponent length in bits (≥ 0); rounded up to a multiple of ``k``.
    k : int
        Window width.
    one_loaded : bool
        ``R mod N`` is a loaded constant rather than ``MontMul(R² mod N, 1)``.

    Returns
    -------
    ScheduleCounts
    """
    _check_k(k)
    if not isinstance(exp_bits, int) or exp_bits < 0:
        raise OperandRangeError(f"declared exponent length must be a non-negative integer, not {exp_bits!r}")
    windows = -(-exp_bits // k)
    table = (1 << k) - 2
    squarings = windows * k
    multiplies = windows
    conversions = 2 if one_loaded else 3
    return ScheduleCounts(windows, table, squarings, multiplies, conversions,
                          table + squarings + multiplies + conversions)


def window_digits(exp, exp_bits, k=DEFAULT_K):
    """The ``k``-bit digits of ``exp``, most significant first, over ``exp_bits`` bits.

    Raises
    ------
    OperandRangeError
        ``exp`` negative or longer than ``exp_bits``.
    """
    _check_k(k)
    if exp < 0:
        raise OperandRangeError("exponent is negative")
    if exp.bit_length() > exp_bits:
        raise OperandRangeError(
            f"exponent has {exp.bit_length()} bits, more than the declared {exp_bits}")
    windows = -(-exp_bits // k)
    mask = (1 << k) - 1
    return [(exp >> (k * i)) & mask for i in reversed(range(windows))]


def spec_montmul(consts):
    """``MontMul`` of the specification for ``consts``, as a two-argument callable.

    Equal to :func:`hefl.golden.montgomery.montmul_spec` with ``R^-1``
    computed once instead of per call.
    """
    n = consts.n
    rinv = pow(consts.r, -1, n)

    def montmul(a, b):
        if not (0 <= a < n and 0 <= b < n):
            raise OperandRangeError("MontMul operands must lie in [0, N)")
        return a * b * rinv % n
    return montmul


def modexp(base, exp, n, *, k=DEFAULT_K, exp_bits=None, montmul=None, consts=None, one_loaded=False):
    """``base^exp mod n`` with the constant fixed-window schedule.

    Parameters
    ----------
    base : int
        In ``[0, n)``.
    exp : int
        Non-negative, at most ``exp_bits`` bits.
    n : int
        Odd modulus ≥ 3.
    k : int
        Window width.
    exp_bits : int, optional
        Declared exponent length; defaults to ``exp.bit_length()`` (which
        makes the count depend on the value: give it explicitly whenever the
        exponent is secret).
    montmul : callable, optional
        ``montmul(a, b) -> a·b·R^-1 mod n`` (or a lazily reduced value below
        ``2n``); defaults to :func:`spec_montmul` ``(consts)``.
    consts : MontConstants, optional
        Constants matching ``montmul`` (``R² mod N`` is read from it);
        defaults to ``mont_constants(n, DEFAULT_WORD_BITS)``.
    one_loaded : bool
        Take the Montgomery one ``R mod N`` from ``consts`` instead of
        computing it (one multiplication fewer).

    Returns
    -------
    ModexpResult
        ``(value, modmuls)``; ``modmuls`` equals
        ``modexp_schedule_counts(exp_bits, k, one_loaded=one_loaded).total``.
    """
    check_modulus(n, min_bits=2)
    if not 0 <= base < n:
        raise OperandRangeError(f"base must lie in [0, N): it has {base.bit_length()} bits, N {n.bit_length()}")
    if exp_bits is None:
        exp_bits = exp.bit_length()
    digits = window_digits(exp, exp_bits, k)
    if consts is None:
        consts = mont_constants(n, DEFAULT_WORD_BITS)
    elif consts.n != n:
        raise OperandRangeError("constants were computed for another modulus")
    if montmul is None:
        montmul = spec_montmul(consts)

    count = 0

    def mm(a, b):
        nonlocal count
        count += 1
        return montmul(a, b)

    one = consts.r_mod_n if one_loaded else mm(consts.r2_mod_n, 1)
    table = [one, mm(base, consts.r2_mod_n)]
    for _ in range(2, 1 << k):
        table.append(mm(table[-1], table[1]))
    acc = one
    for d in digits:
        for _ in range(k):
            acc = mm(acc, acc)
        acc = mm(acc, table[d])
    result = mm(acc, 1)
    # A lazily reducing MontMul may return N for a zero result.
    if result >= n:
        result -= n
    return ModexpResult(result, count)
