"""Short-exponent fixed-base encryption (Damgård, Jurik and Nielsen): α, tables, their cache.

Encryption of ``m`` under a public key with ``h_s`` (docs/design.md §1.6)::

    c = (1 + m·n) · h_s^α  mod n²,     α uniform in [0, 2^B),  B = ceil(|n| / 2)

``h_s^α`` is a fixed-base power: the product of ``W = ceil(B / k)`` entries
of a table of powers of ``h_s`` (:mod:`hefl.golden.fixedbase`, offset
digits), built once per key and kept here, keyed by the key's
:attr:`~hefl.paillier.keys.PublicKey.djn_fingerprint`. A key holder, who has
``p`` and ``q``, keeps two half-size tables instead, of ``h_s mod p²`` and
``h_s mod q²``, and joins the two products by CRT; the ciphertext is the
same number bit for bit.

Security rests on the decisional composite residuosity assumption (as
textbook Paillier does) together with the *short-exponent* assumption of
Damgård, Jurik and Nielsen: a random power ``h_s^α`` with ``α`` of
``|n|/2`` bits cannot be told apart from a random ``n``-th residue
``r^n mod n²``. python-paillier, or any Paillier decryptor, reads these
ciphertexts unchanged: ``h_s^α`` is an ``n``-th residue, so it is an
ordinary Paillier ciphertext of ``m``.

The window width ``k`` (:func:`window_bits_for`) was chosen by
measurement (``hefl bench paillier`` surveys it): the time of an
encryption is ``W`` multiplications, ``W = ceil(B / k)``, while the table
grows as ``2^k / k``; past the cache, each multiplication also waits for
its entry from memory, which takes back part of the gain. The ``make
bench`` survey at 2048-bit keys, one core, ``k`` = 8 / 10 / 11 / 12 (16 /
52 / 94 / 172 MiB; the key holder's two tables together are as large):
on the cpu backend's AVX-512 IFMA kernels (docs/design.md §1.7) 6,680 /
7,982 / 8,467 / 9,207 public and 8,637 / 9,575 / 9,682 / 10,084
key-holder encryptions per second; on gmpy2 (no IFMA) 1,749 / 1,873 /
2,034 public and 2,045 / 2,228 / 2,187 key-holder for ``k`` = 10 / 11 /
12. The rule: the widest ``k <= 12`` (``<= 11`` for a key holder, for
whom 12 gains 4 % on the kernels and nothing on gmpy2, for twice the
memory) whose tables fit :data:`TABLE_BUDGET_BYTES` (192 MiB): at
2048-bit keys ``k = 12`` for the public table (172 MiB, built in about
2 s) and 11 for the key holder's (94 MiB, about 1 s); 10 at 3072 and 9 at
4096. A party short of memory passes ``window_bits``
(:class:`hefl.paillier.Paillier`, :func:`tables_for`): ``k = 10`` takes
52 MiB at 2048 bits and is about 13 % slower. The tables
are built with gmpy2, equal entry for entry to
:func:`hefl.golden.fixedbase.build_table` (tested).
"""

import numbers
import secrets
import threading
import time
from collections import OrderedDict

import gmpy2

from hefl.errors import KeyMismatchError, ModulusError, OperandRangeError
from hefl.golden.fixedbase import FixedBaseTable, offset_total, table_bytes, windows

__all__ = ["TABLE_BUDGET_BYTES", "MAX_WINDOW_BITS", "MAX_HOLDER_WINDOW_BITS", "window_bits_for", "exponent_bits", "random_alphas",
           "check_alphas", "build_table", "EncryptionTables", "build", "tables_for", "clear_cache"]

#: Bytes one party's tables may take (the public table mod n², or the key
#: holder's two mod p² and q², which together are as large).
TABLE_BUDGET_BYTES = 192 << 20
#: Widest default window: past it the tables grow faster than the gain.
MAX_WINDOW_BITS = 12
#: A key holder's: its half-size entries gain 4 % from k = 12 over 11 on
#: the IFMA kernels (10,084 vs 9,682/s, one core) and nothing on gmpy2
#: (2,187 vs 2,228/s), for twice the memory.
MAX_HOLDER_WINDOW_BITS = 11
# Keys whose tables stay cached (a federation has one; tests make many).
_CACHE_KEYS = 4


def exponent_bits(n_bits):
    """``B = ceil(n_bits / 2)``: the bit length of DJN's short exponent ``α``."""
    return -(-n_bits // 2)


def window_bits_for(n_bits, holder=False):
    """The default window width ``k`` for keys of ``n_bits`` bits (see the module docstring).

    ``holder``: for a key holder's two tables, whose widest default is
    :data:`MAX_HOLDER_WINDOW_BITS`.
    """
    bits = exponent_bits(n_bits)
    for k in range(MAX_HOLDER_WINDOW_BITS if holder else MAX_WINDOW_BITS, 0, -1):
        if table_bytes(2 * n_bits, bits, k) <= TABLE_BUDGET_BYTES:
            return k
    return 1


def build_table(base, modulus, exp_bits, k):
    """:func:`hefl.golden.fixedbase.build_table`'s table, computed with gmpy2 (about 6x faster).

    Same entries, same layout, plain ints; the golden model stays the
    specification (tests compare the two).
    """
    if not isinstance(modulus, int) or modulus < 3:
        raise ModulusError(f"modulus must be an integer >= 3, not {modulus!r}")
    if not isinstance(base, int) or not 0 < base < modulus or gmpy2.gcd(base, modulus) != 1:
        raise OperandRangeError("the base must be a unit in [1, modulus)")
    m = gmpy2.mpz(modulus)
    g_i = gmpy2.mpz(base)
    rows = []
    for _ in range(windows(exp_bits, k)):
        row = [g_i]
        for _ in range((1 << k) - 1):
            row.append(row[-1] * g_i % m)
        rows.append(row)
        g_i = row[-1]
    cancel = gmpy2.powmod(gmpy2.invert(base, m), offset_total(exp_bits, k), m)
    rows[0] = [t * cancel % m for t in rows[0]]
    return FixedBaseTable(base, modulus, exp_bits, k, tuple(tuple(int(x) for x in r) for r in rows))


def random_alphas(count, bits):
    """``count`` exponents uniform in ``[0, 2^bits)``, from :mod:`secrets`."""
    return [secrets.randbits(bits) for _ in range(count)]


def check_alphas(alphas, bits):
    """Plain ints in ``[0, 2^bits)``, or :class:`OperandRangeError` naming the first that is not."""
    out = []
    for i, a in enumerate(alphas):
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise OperandRangeError(f"exponent {i} is a {type(a).__name__}, not an integer")
        a = int(a)
        if not 0 <= a < 1 << bits:
            raise OperandRangeError(f"exponent {i} is outside [0, 2^{bits})")
        out.append(a)
    return out


class EncryptionTables:
    """The fixed-base tables of one key, and what they were built for.

    Attributes
    ----------
    djn_fingerprint : str
        The key's :attr:`~hefl.paillier.keys.PublicKey.djn_fingerprint`
        (``n`` and ``h_s``) the tables were built for.
    holder : bool
        True for a key holder's tables (mod ``p²`` and ``q²``), False for
        the public one (mod ``n²``).
    tables : dict of str to FixedBaseTable
        ``{"n2": ...}`` or ``{"p2": ..., "q2": ...}``.
    exp_bits, window_bits : int
        ``B`` and ``k``.
    build_s : float
        Seconds it took to build them.
    """

    __slots__ = ("djn_fingerprint", "holder", "tables", "exp_bits", "window_bits", "build_s")

    def __init__(self, djn_fingerprint, holder, tables, exp_bits, window_bits, build_s):
        self.djn_fingerprint = djn_fingerprint
        self.holder = holder
        self.tables = dict(tables)
        self.exp_bits = exp_bits
        self.window_bits = window_bits
        self.build_s = build_s

    def __repr__(self):
        return (f"EncryptionTables({self.djn_fingerprint!r}, {'holder' if self.holder else 'public'}, "
                f"k={self.window_bits}, {self.nbytes / 2 ** 20:.1f} MiB)")

    @property
    def nbytes(self):
        """Bytes of all entries (each ``ceil(|modulus| / 8)`` bytes)."""
        return sum(t.windows * (1 << t.k) * -(-t.modulus.bit_length() // 8) for t in self.tables.values())

    def check(self, public_key, private_key=None):
        """Raise :class:`KeyMismatchError` unless these tables are ``public_key``'s (and ``private_key``'s).

        The fingerprint is compared, and then what every table holds: its
        base (``h_s`` reduced mod the table's modulus) and its modulus
        (``n²``, or ``p²`` and ``q²`` for a key holder), so a table can be
        used for no other key even if fingerprints collided.
        """
        if public_key.h_s is None or self.djn_fingerprint != public_key.djn_fingerprint:
            raise KeyMismatchError(f"fixed-base tables built for key {self.djn_fingerprint} cannot encrypt "
                                   f"under key {public_key.djn_fingerprint or public_key.fingerprint}")
        if self.holder != (private_key is not None):
            raise KeyMismatchError(f"{'key-holder' if self.holder else 'public'} tables given to a party "
                                   f"{'without' if self.holder else 'with'} the private key")
        for name, modulus in _moduli(public_key, private_key).items():
            t = self.tables.get(name)
            if (not isinstance(t, FixedBaseTable) or t.modulus != modulus or t.base != public_key.h_s % modulus
                    or t.exp_bits != exponent_bits(public_key.bits) or t.k != self.window_bits):
                raise KeyMismatchError(f"fixed-base table {name!r} was not built for key "
                                       f"{public_key.djn_fingerprint}")
        return self


def _moduli(public_key, private_key):
    if private_key is None:
        return {"n2": public_key.n2}
    return {"p2": private_key.p2, "q2": private_key.q2}


def build(public_key, private_key=None, window_bits=None):
    """New :class:`EncryptionTables` for ``public_key`` (no cache; see :func:`tables_for`)."""
    if public_key.h_s is None:
        raise ModulusError(f"key {public_key.fingerprint} has no h_s (a version-1 key file); short-exponent "
                           "encryption needs it: upgrade the key pair with `hefl keygen --upgrade DIR`")
    bits = exponent_bits(public_key.bits)
    if window_bits is None:
        window_bits = window_bits_for(public_key.bits, holder=private_key is not None)
    t0 = time.perf_counter()
    tables = {name: build_table(public_key.h_s % m, m, bits, window_bits)
              for name, m in _moduli(public_key, private_key).items()}
    return EncryptionTables(public_key.djn_fingerprint, private_key is not None, tables, bits, window_bits,
                            time.perf_counter() - t0)


_cache = OrderedDict()
_lock = threading.Lock()


def tables_for(public_key, private_key=None, window_bits=None):
    """The tables of ``public_key`` (the key holder's if ``private_key`` is given), built once and cached.

    Kept in memory for the last few keys used, keyed by the key's
    ``djn_fingerprint``; a cached entry is checked against the key
    (:meth:`EncryptionTables.check`) every time it is handed out.

    Raises
    ------
    ModulusError
        The key has no ``h_s``.
    """
    if public_key.h_s is None:
        return build(public_key, private_key, window_bits)   # raises the upgrade message
    if window_bits is None:
        window_bits = window_bits_for(public_key.bits, holder=private_key is not None)
    key = (public_key.djn_fingerprint, private_key is not None, window_bits)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        else:
            hit = _cache[key] = build(public_key, private_key, window_bits)
            while len(_cache) > _CACHE_KEYS * 2:
                _cache.popitem(last=False)
    return hit.check(public_key, private_key)


def clear_cache():
    """Forget every cached table (they hold key material derived from ``p`` and ``q``)."""
    with _lock:
        _cache.clear()
