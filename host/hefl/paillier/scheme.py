"""Paillier (g = n + 1) on vectors, every modular operation through an Accelerator.

================  =====================================================  ======================
operation         formula                                                accelerator calls
================  =====================================================  ======================
encrypt (public)  ``c = (1 + m·n) · r^n mod n²``                         powmod n², mulmod n²
encrypt (CRT)     ``r^n mod p² = u_p^p mod p²`` (below), same for q      powmod p², q²; mulmod
decrypt (CRT)     ``m_p = L_p(c^(p-1) mod p²)·h_p mod p``, same for q    powmod p², q²
add               ``c1 · c2 mod n²``                                     mulmod n²
aggregate         ``Π_k c_k mod n²`` per slot                            product n²
scalar multiply   ``c^k mod n²``, ``(c^-1)^|k|`` for ``k < 0``           powmod n²
================  =====================================================  ======================

The small glue (``1 + m·n``, the CRT joins, ``L``) stays on the host; all
exponentiations and ciphertext products go to the accelerator so that the
same code runs on the CPU, the Verilator model or a card. ``r`` comes from
:mod:`secrets`, uniform in ``Z*_n``.

Ciphertext vectors are validated once, where they are received
(:meth:`CipherVector.from_bytes`, see :mod:`hefl.paillier.serial`); every
operation here checks the key and validates only a vector not yet validated
(:meth:`Paillier.validate`). Results are marked valid by construction, so a
chain of operations checks nothing twice.

CRT encryption
--------------
``Z*_{p²} ≅ Z_p × Z_{p-1}``; raising to ``n = p·q`` kills the ``Z_p`` part, so
``r^n mod p²`` lies in the subgroup ``T_p = {x : x^(p-1) ≡ 1 (mod p²)}`` of
order ``p - 1``. ``x ↦ x^p mod p²`` depends only on ``x mod p`` and maps
``Z*_p`` one-to-one onto ``T_p``; so with ``u_p = r^q mod p``::

    r^n = (r^q)^p ≡ u_p^p   (mod p²)

One ``|p|``-bit exponentiation mod ``p²`` (plus a cheap one mod ``p`` for
``u_p``) replaces the ``2|p|``-bit one of ``r^(n mod p(p-1)) mod p²``. For
fresh randomness ``u_p`` itself is drawn uniformly from ``Z*_p`` (``r ↦
r^q mod p`` is a bijection of ``Z*_p`` as ``gcd(q, p-1) = 1``), which gives
exactly the distribution of ``r^n mod n²`` for uniform ``r ∈ Z*_n``. With
explicit ``r`` (tests, interoperability) the ciphertext equals the
public-key one bit for bit.
"""

import numbers
import secrets

import gmpy2

from hefl.accel import Accelerator, get_accelerator
from hefl.errors import (
    KeyMismatchError,
    OperandRangeError,
    PrivateKeyRequired,
    VectorLengthError,
)
from hefl.paillier.keys import PrivateKey, PublicKey
from hefl.paillier.serial import CipherVector, check_key, valid_by_construction

__all__ = ["Paillier"]


def _ints(values, what):
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise OperandRangeError(f"{what} {i} is a {type(v).__name__}, not an integer")
        out.append(int(v))
    return out


class Paillier:
    """Vectorised Paillier operations under one key.

    Parameters
    ----------
    public_key : PublicKey
    private_key : PrivateKey, optional
        Needed for decryption; when present, encryption uses the CRT (about
        four times less work than ``r^n mod n²``). An aggregator has none.
    accel : Accelerator, optional
        Backend for the modular arithmetic; defaults to
        ``get_accelerator("cpu")``, which this object then owns and closes.
    """

    def __init__(self, public_key, private_key=None, accel=None):
        if not isinstance(public_key, PublicKey):
            raise TypeError(f"public_key must be a PublicKey, not {type(public_key).__name__}")
        if private_key is not None:
            if not isinstance(private_key, PrivateKey):
                raise TypeError(f"private_key must be a PrivateKey, not {type(private_key).__name__}")
            if private_key.public_key != public_key:
                raise KeyMismatchError(f"the private key ({private_key.public_key.fingerprint}) does not "
                                       f"belong to the public key ({public_key.fingerprint})")
        if accel is not None and not isinstance(accel, Accelerator):
            raise TypeError(f"accel must be an Accelerator, not {type(accel).__name__}")
        self.public_key = public_key
        self.private_key = private_key
        self._own_accel = accel is None
        self.accel = get_accelerator("cpu") if accel is None else accel

    def close(self):
        """Close the accelerator if this object created it."""
        if self._own_accel:
            self.accel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- helpers ------------------------------------------------------------

    def _need_private(self, what):
        if self.private_key is None:
            raise PrivateKeyRequired(f"{what} needs the private key; this party holds only the public key "
                                     f"({self.public_key.fingerprint})")
        return self.private_key

    def random_r(self, count):
        """``count`` values uniform in ``Z*_n`` from :mod:`secrets`."""
        n = self.public_key.n
        out = []
        while len(out) < count:
            r = secrets.randbelow(n - 1) + 1
            if gmpy2.gcd(r, n) == 1:
                out.append(r)
        return out

    def _obfuscators(self, rs, count):
        """``r^n mod n²`` for each ``r`` (fresh random ones if ``rs`` is None).

        By CRT when the private key is here (see the module docstring).
        """
        pub, priv = self.public_key, self.private_key
        if priv is None:
            if rs is None:
                rs = self.random_r(count)
            return self.accel.powmod(rs, [pub.n] * len(rs), pub.n2)
        p, q, p2, q2 = priv.p, priv.q, priv.p2, priv.q2
        if rs is None:
            up = [secrets.randbelow(p - 1) + 1 for _ in range(count)]
            uq = [secrets.randbelow(q - 1) + 1 for _ in range(count)]
        else:
            up = self.accel.powmod([r % p for r in rs], [priv.q_mod_pm1] * len(rs), p)
            uq = self.accel.powmod([r % q for r in rs], [priv.p_mod_qm1] * len(rs), q)
        xp = self.accel.powmod(up, [p] * count, p2)
        xq = self.accel.powmod(uq, [q] * count, q2)
        inv = gmpy2.mpz(priv.q2_inv_p2)
        return [int(b + q2 * ((a - b) * inv % p2)) for a, b in zip(xp, xq)]

    def _result(self, cts, meta):
        return valid_by_construction(self.public_key, cts, meta)

    # --- public API -----------------------------------------------------------

    def validate(self, cv, what="ciphertext vector"):
        """Raise unless ``cv`` is usable under this key; returns ``cv``.

        The key's fingerprint is compared every time; the values
        (``0 < c < n²``, ``gcd(c, n) = 1``) only if ``cv`` is not yet
        :attr:`~CipherVector.validated` (it is once received through
        :meth:`CipherVector.from_bytes`, or made by this class).

        Raises
        ------
        TypeError
            ``cv`` is not a :class:`CipherVector`.
        KeyMismatchError
            Made under another key.
        CiphertextRangeError
            A ciphertext outside ``0 < c < n²`` or sharing a factor with ``n``
            (the message names its index).
        """
        if not isinstance(cv, CipherVector):
            raise TypeError(f"{what} must be a CipherVector, not {type(cv).__name__}")
        check_key(self.public_key, cv.fingerprint)
        return cv.validate()

    def encrypt(self, ms, meta=None, *, randomness=None):
        """Encrypt each plaintext of ``ms``.

        Parameters
        ----------
        ms : sequence of int
            Plaintexts in ``[0, n)``.
        meta : dict, optional
            JSON-serialisable metadata carried with the vector.
        randomness : sequence of int, optional
            The ``r`` values to use, each in ``Z*_n``; only for tests and
            interoperability checks. Default: fresh from :mod:`secrets`.

        Returns
        -------
        CipherVector

        Raises
        ------
        OperandRangeError
            A plaintext outside ``[0, n)`` or not an integer.
        """
        pub = self.public_key
        n, n2 = pub.n, pub.n2
        ms = _ints(ms, "plaintext")
        for i, m in enumerate(ms):
            if not 0 <= m < n:
                raise OperandRangeError(f"plaintext {i} is outside [0, n): "
                                        f"{'negative' if m < 0 else f'{m.bit_length()} bits, n has {pub.bits}'}")
        if randomness is None:
            rs = None
        else:
            rs = _ints(randomness, "randomness")
            if len(rs) != len(ms):
                raise VectorLengthError(f"{len(rs)} random values for {len(ms)} plaintexts")
            for i, r in enumerate(rs):
                if not 0 < r < n or gmpy2.gcd(r, n) != 1:
                    raise OperandRangeError(f"randomness {i} is not in Z*_n")
        if not ms:
            return self._result([], meta)
        obf = self._obfuscators(rs, len(ms))
        # 1 + m·n < n² for m < n: already reduced.
        cts = self.accel.mulmod([1 + m * n for m in ms], obf, n2)
        return self._result(cts, meta)

    def decrypt(self, cv):
        """Decrypt every ciphertext of ``cv`` (validated first, if not yet) into ``[0, n)``.

        Raises
        ------
        PrivateKeyRequired
            This object holds no private key.
        KeyMismatchError, CiphertextRangeError
            See :meth:`validate`.
        """
        priv = self._need_private("decryption")
        self.validate(cv)
        cts = cv.ciphertexts
        if not cts:
            return []
        p, q, p2, q2 = priv.p, priv.q, priv.p2, priv.q2
        xp = self.accel.powmod([c % p2 for c in cts], [p - 1] * len(cts), p2)
        xq = self.accel.powmod([c % q2 for c in cts], [q - 1] * len(cts), q2)
        hp, hq = gmpy2.mpz(priv.hp), gmpy2.mpz(priv.hq)
        out = []
        for a, b in zip(xp, xq):
            mp = (gmpy2.mpz(a) - 1) // p * hp % p
            mq = (gmpy2.mpz(b) - 1) // q * hq % q
            out.append(int(priv.crt(mp, mq)))
        return out

    def add(self, cv1, cv2):
        """Homomorphic sum, element by element: ``Enc(m1 + m2 mod n)``."""
        self.validate(cv1, "cv1")
        self.validate(cv2, "cv2")
        if len(cv1) != len(cv2):
            raise VectorLengthError(f"cannot add vectors of {len(cv1)} and {len(cv2)} ciphertexts")
        cts = self.accel.mulmod(cv1.ciphertexts, cv2.ciphertexts, self.public_key.n2)
        return self._result(cts, _common_meta([cv1, cv2]))

    def aggregate(self, cvs):
        """Homomorphic sum of K vectors: one ``product`` group per slot.

        The result's metadata keeps the entries on which all inputs agree
        (encoding parameters, typically) and drops per-sender ones.
        """
        cvs = list(cvs)
        if not cvs:
            raise VectorLengthError("nothing to aggregate: no ciphertext vectors given")
        for k, cv in enumerate(cvs):
            self.validate(cv, f"vector {k}")
        length = len(cvs[0])
        for k, cv in enumerate(cvs):
            if len(cv) != length:
                raise VectorLengthError(f"vector {k} has {len(cv)} ciphertexts, vector 0 has {length}")
        groups = [list(g) for g in zip(*(cv.ciphertexts for cv in cvs))]
        cts = self.accel.product(groups, self.public_key.n2) if groups else []
        return self._result(cts, _common_meta(cvs))

    def scalar_mul(self, cv, ks):
        """``Enc(k_i · m_i mod n)`` for each ciphertext; ``ks`` may be negative.

        Parameters
        ----------
        cv : CipherVector
        ks : int or sequence of int
            One scalar for every ciphertext, or a single one for all.
        """
        self.validate(cv)
        if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
            ks = [int(ks)] * len(cv)
        ks = _ints(ks, "scalar")
        if len(ks) != len(cv):
            raise VectorLengthError(f"{len(ks)} scalars for {len(cv)} ciphertexts")
        n2 = self.public_key.n2
        bases = [c if k >= 0 else int(gmpy2.invert(c, n2)) for c, k in zip(cv.ciphertexts, ks)]
        cts = self.accel.powmod(bases, [abs(k) for k in ks], n2) if bases else []
        return self._result(cts, cv.meta)


def _common_meta(cvs):
    first = cvs[0].meta
    return {k: v for k, v in first.items() if all(k in cv.meta and cv.meta[k] == v for cv in cvs[1:])}
