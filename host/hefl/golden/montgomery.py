"""Montgomery arithmetic: constants and the one-line specification.

For an odd modulus ``N`` and ``R = 2^(w·s)`` with ``R > N``::

    N'        = -N^-1 mod 2^w
    MontMul(a, b) = a · b · R^-1 mod N

Operands enter the Montgomery domain by ``MontMul(a, R² mod N)`` and leave
by ``MontMul(x, 1)``. Word-level models of the hardware algorithm live in
sibling modules and are tested against :func:`montmul_spec`.
"""

from dataclasses import dataclass

from hefl.errors import ModulusError, OperandRangeError

__all__ = ["MontConstants", "mont_constants", "words_for", "montmul_spec",
           "to_words", "from_words"]


def words_for(bits, word_bits, *, headroom=2):
    """Number of ``word_bits`` words so that ``2^(w·s) > 2^headroom · 2^bits``.

    ``headroom=2`` gives ``R > 4N``, the condition under which inputs and
    outputs below ``2N`` need no final subtraction (Walter, 1999).
    """
    if not isinstance(word_bits, int) or word_bits <= 0:
        raise TypeError(f"Word width must be a positive integer, not {word_bits!r}")
    return -(-(bits + headroom) // word_bits)


@dataclass(frozen=True)
class MontConstants:
    """Per-modulus constants the host computes once and the hardware loads.

    Attributes
    ----------
    n : int
        The odd modulus.
    word_bits : int
        Word width ``w``.
    words : int
        Number of words ``s``; ``R = 2^(w·s)``.
    nprime : int
        ``-N^-1 mod 2^w``.
    r_mod_n : int
        ``R mod N`` (one in the Montgomery domain).
    r2_mod_n : int
        ``R² mod N`` (the conversion constant).
    """

    n: int
    word_bits: int
    words: int
    nprime: int
    r_mod_n: int
    r2_mod_n: int

    @property
    def r(self):
        return 1 << (self.word_bits * self.words)


def check_modulus(n, *, min_bits=3):
    """Raise :class:`ModulusError` unless ``n`` is a usable odd modulus."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise ModulusError(f"Modulus must be an integer, not {type(n).__name__}")
    if n < (1 << (min_bits - 1)):
        raise ModulusError(f"Modulus must have at least {min_bits} bits, not {n.bit_length()}")
    if n % 2 == 0:
        raise ModulusError("Montgomery arithmetic needs an odd modulus; this one is even")


def mont_constants(n, word_bits, words=None):
    """Compute the Montgomery constants of ``n`` for ``w``-bit words.

    Parameters
    ----------
    n : int
        Odd modulus, at least 3.
    word_bits : int
        Word width ``w``.
    words : int, optional
        Word count ``s``; defaults to :func:`words_for` ``(n.bit_length(), w)``.
    """
    check_modulus(n, min_bits=2)
    if words is None:
        words = words_for(n.bit_length(), word_bits)
    r = 1 << (word_bits * words)
    if r <= n:
        raise ModulusError(f"R = 2^{word_bits * words} must exceed the {n.bit_length()}-bit modulus")
    nprime = (-pow(n, -1, 1 << word_bits)) % (1 << word_bits)
    return MontConstants(n=n, word_bits=word_bits, words=words, nprime=nprime,
                         r_mod_n=r % n, r2_mod_n=(r * r) % n)


def montmul_spec(a, b, n, r):
    """The specification: ``a · b · R^-1 mod N`` for ``0 <= a, b < N``."""
    if not (0 <= a < n and 0 <= b < n):
        raise OperandRangeError("MontMul operands must lie in [0, N)")
    return a * b * pow(r, -1, n) % n


def to_words(x, word_bits, words):
    """Little-endian list of ``words`` words of ``word_bits`` bits."""
    mask = (1 << word_bits) - 1
    if x < 0 or x >> (word_bits * words):
        raise OperandRangeError(f"{x.bit_length()}-bit value does not fit {words} × {word_bits}-bit words")
    return [(x >> (word_bits * i)) & mask for i in range(words)]


def from_words(ws, word_bits):
    """Inverse of :func:`to_words`."""
    x = 0
    for i, v in enumerate(ws):
        x |= v << (word_bits * i)
    return x
