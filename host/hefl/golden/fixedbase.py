"""Fixed-base exponentiation from a table of powers, on one schedule for every exponent.

Pure Python on ints: the specification that the CPU backend, the device
driver and the hardware tests share (docs/design.md §1.6).

Algorithm
---------
A base ``g`` (a unit mod ``m``; in Paillier-DJN encryption ``g = h_s``),
exponents ``0 <= e < 2^B`` (``B = exp_bits``) and ``k``-bit windows give
``W = ceil(B / k)`` rows of ``2^k`` entries. Row ``i`` holds the powers of
``g_i = g^(2^(k·i))``, with *offset digits*: entry ``d`` is
``g_i^(d + 1)`` instead of ``g_i^d``::

    C        = sum_{i < W} 2^(k·i)                  (the offsets' total)
    T[0][d]  = g^(d + 1 - C)          mod m         (row 0 also cancels the offsets)
    T[i][d]  = g^((d + 1) · 2^(k·i))  mod m         1 <= i < W
    e        = sum_i d_i · 2^(k·i)                  (k-bit digits, d_i in [0, 2^k))
    g^e      = prod_i T[i][d_i]       mod m         (W - 1 multiplications)

Why offsets: with plain digits, entry ``d = 0`` is the number 1, and a
product that skips it, or a multiplication by a one-limb number, takes
less time on GMP (and a zero digit would be visible in the operation
count). Here every encryption multiplies exactly ``W`` full-size table
entries, whatever ``e`` is; only *which* entries are read depends on
``e`` (see docs/design.md §5.3 for the cache side channel that leaves).

Cost: ``W · 2^k`` entries of ``|m|`` bits (:func:`table_bytes`); one
``W - 1``-multiplication product per exponentiation, no squarings.
"""

from math import gcd
from typing import NamedTuple

from hefl.errors import ModulusError, OperandRangeError

__all__ = ["FixedBaseTable", "windows", "offset_total", "build_table", "digits",
           "entry_indices", "fixed_base_pow", "table_bytes"]


class FixedBaseTable(NamedTuple):
    """The powers of one base modulo one modulus (see the module docstring).

    Attributes
    ----------
    base, modulus : int
        ``g`` and ``m``.
    exp_bits : int
        ``B``: exponents must be below ``2^B``.
    k : int
        Window width; rows have ``2^k`` entries.
    rows : tuple of tuple of int
        ``rows[i][d] = T[i][d]``, ``W`` rows.
    """

    base: int
    modulus: int
    exp_bits: int
    k: int
    rows: tuple

    @property
    def windows(self):
        """``W``, the number of rows (and of factors per exponentiation)."""
        return len(self.rows)

    def entry(self, index):
        """Entry by flat index ``i · 2^k + d`` (the order of :func:`entry_indices`)."""
        return self.rows[index >> self.k][index & ((1 << self.k) - 1)]


def windows(exp_bits, k):
    """``W = ceil(exp_bits / k)``: rows of the table, factors of a product."""
    if not isinstance(exp_bits, int) or exp_bits < 1:
        raise OperandRangeError(f"exponent bits must be a positive integer, not {exp_bits!r}")
    if not isinstance(k, int) or not 1 <= k <= 16:
        raise OperandRangeError(f"window width must be an integer in [1, 16], not {k!r}")
    return -(-exp_bits // k)


def offset_total(exp_bits, k):
    """``C = sum_{i < W} 2^(k·i)``, the exponent the offset digits add."""
    return sum(1 << (k * i) for i in range(windows(exp_bits, k)))


def build_table(base, modulus, exp_bits, k):
    """The table of :class:`FixedBaseTable` for ``base`` mod ``modulus``.

    ``W · 2^k`` multiplications and one inversion.

    Raises
    ------
    ModulusError
        ``modulus`` below 3.
    OperandRangeError
        ``base`` outside ``[1, modulus)`` or sharing a factor with it.
    """
    if not isinstance(modulus, int) or modulus < 3:
        raise ModulusError(f"modulus must be an integer >= 3, not {modulus!r}")
    if not isinstance(base, int) or not 0 < base < modulus or gcd(base, modulus) != 1:
        raise OperandRangeError("the base must be a unit in [1, modulus)")
    w = windows(exp_bits, k)
    n_entries = 1 << k
    rows = []
    g_i = base                                    # g^(2^(k·i))
    for _ in range(w):
        row = [g_i]
        for _ in range(n_entries - 1):
            row.append(row[-1] * g_i % modulus)
        rows.append(row)
        g_i = row[-1]                             # g_i^(2^k) = g_(i+1), the next row's base
    # Row 0 cancels the offsets: T[0][d] = g^(d+1) · g^(-C).
    cancel = pow(base, -offset_total(exp_bits, k), modulus)
    rows[0] = [t * cancel % modulus for t in rows[0]]
    return FixedBaseTable(base, modulus, exp_bits, k, tuple(tuple(r) for r in rows))


def digits(e, exp_bits, k):
    """The ``W`` ``k``-bit digits of ``e``, least significant first.

    Raises
    ------
    OperandRangeError
        ``e`` is not an int in ``[0, 2^exp_bits)``.
    """
    if not isinstance(e, int) or isinstance(e, bool) or not 0 <= e < 1 << exp_bits:
        raise OperandRangeError(f"the exponent must be an integer in [0, 2^{exp_bits})")
    mask = (1 << k) - 1
    return [(e >> (k * i)) & mask for i in range(windows(exp_bits, k))]


def entry_indices(table, e):
    """Flat entry indices ``i · 2^k + d_i`` of the factors of ``g^e``, row 0 first."""
    return [(i << table.k) | d for i, d in enumerate(digits(e, table.exp_bits, table.k))]


def fixed_base_pow(table, e):
    """``table.base^e mod table.modulus`` as the product of its ``W`` table entries."""
    acc = 1
    for index in entry_indices(table, e):
        acc = acc * table.entry(index) % table.modulus
    return acc


def table_bytes(modulus_bits, exp_bits, k):
    """Bytes of a table's entries: ``W · 2^k`` entries of ``ceil(|m| / 8)`` bytes."""
    return windows(exp_bits, k) * (1 << k) * -(-modulus_bits // 8)
