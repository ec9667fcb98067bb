"""Paillier (g = n + 1) on vectors, every modular operation through an Accelerator.

=================  ====================================================  ==========================
operation          formula                                               accelerator calls
=================  ====================================================  ==========================
encrypt (DJN)      ``c = (1 + m·n) · h_s^α mod n²``, α of ⌈|n|/2⌉ bits   fixed_base n²
encrypt (DJN, key  the same mod ``p²`` and ``q²``, joined by CRT         fixed_base p², q²
holder)
encrypt (textbook) ``c = (1 + m·n) · r^n mod n²``                        powmod n², mulmod n²
encrypt (textbook, ``r^n mod p² = u_p^p mod p²`` (below), same for q     powmod_secret p², q²;
key holder)                                                              mulmod n²
decrypt (CRT)      ``m_p = L_p(c^(p-1) mod p²)·h_p mod p``, same for q   powmod_secret p², q²
add                ``c1 · c2 mod n²``                                    mulmod n²
aggregate          ``Π_k c_k mod n²`` per slot                           product n²
scalar multiply    ``c^k mod n²``, ``(c^-1)^|k|`` for ``k < 0``          powmod n²
=================  ====================================================  ==========================

The small glue (``1 + m·n``, the CRT joins, ``L``) stays on the host; all
exponentiations and ciphertext products go to the accelerator so that the
same code runs on the CPU, the Verilator model or a card.

Encryption methods
------------------
``"djn"`` (the default when the public key carries ``h_s``) is the
short-exponent, fixed-base form of Damgård, Jurik and Nielsen [DJN]:
``h_s = (-x²)^n mod n²`` is published with the key
(:mod:`hefl.paillier.keys`), ``α`` is uniform in ``[0, 2^B)`` with
``B = ⌈|n|/2⌉`` from :mod:`secrets`, and ``h_s^α`` is a product of ``W =
⌈B/k⌉`` entries of a precomputed table (:mod:`hefl.paillier.djn`,
:meth:`~hefl.accel.base.Accelerator.fixed_base`): no squarings at all. Its
security rests on DCR and on DJN's short-exponent assumption, that
``h_s^α`` for such an ``α`` is indistinguishable from a uniform ``n``-th
residue (docs/design.md §1.6). The ciphertexts are ordinary Paillier
ciphertexts: any Paillier decryptor (python-paillier's included) reads
them, and they mix freely with textbook ones in sums.

``"textbook"`` is Paillier's own ``r^n``, ``r`` uniform in ``Z*_n`` from
:mod:`secrets`. It is the only method for a key without ``h_s`` (a
version-1 key file): then a warning, once per key, names the explicit
upgrade (``hefl keygen --upgrade DIR``); nothing is regenerated silently.
Explicit ``randomness=`` (tests, interoperability) means textbook;
explicit ``alphas=`` means DJN.

[DJN] I. Damgård, M. Jurik and J. B. Nielsen, "A generalization of
Paillier's public-key system with applications to electronic voting",
*Int. J. Inf. Secur.* 9 (2010) 371–385; first as I. Damgård and M. Jurik,
*PKC 2001*, LNCS 1992, 119–136.

Secret exponents
----------------
Exponents derived from the private key (decryption's ``p - 1``, ``q -
1``; the key holder's textbook CRT exponents ``q mod (p-1)``, ``p``, ...)
go to the accelerator's ``powmod_secret`` with their length declared from
the key size (``|p|``), never from their values: the ``cpu`` backend runs
``gmpy2.powmod_sec``; the device backends run the fixed schedule of
docs/design.md §1.4 at the declared length. The caller cannot choose the
variable-time path for them. Public exponents
(``n``, scalars) use ``powmod``.

Ciphertext vectors are validated once, where they are received
(:meth:`CipherVector.from_bytes`, see :mod:`hefl.paillier.serial`); every
operation here checks the key and validates only a vector not yet validated
(:meth:`Paillier.validate`). Results are marked valid by construction, so a
chain of operations checks nothing twice.

CRT encryption (textbook)
-------------------------
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
public-key one bit for bit. The DJN key holder's ciphertext likewise equals
the public-key DJN one for the same ``α``: ``c mod p²`` and ``c mod q²``
determine ``c``.
"""

import numbers
import secrets
import threading
import warnings

import gmpy2

from hefl.accel import Accelerator, get_accelerator
from hefl.errors import (
    KeyMismatchError,
    ModulusError,
    OperandRangeError,
    PrivateKeyRequired,
    VectorLengthError,
)
from hefl.paillier import djn
from hefl.paillier.keys import PrivateKey, PublicKey
from hefl.paillier.serial import CipherVector, check_key, valid_by_construction

__all__ = ["Paillier", "METHODS", "TextbookFallbackWarning"]

#: Encryption methods by name (see the module docstring).
METHODS = ("djn", "textbook")


class TextbookFallbackWarning(UserWarning):
    """A key without ``h_s`` encrypts the slow textbook way; ``hefl keygen --upgrade`` adds it."""


# Fingerprints of the keys already warned about: one warning per key and process.
_warned = set()
_warned_lock = threading.Lock()


def _warn_textbook(public_key):
    with _warned_lock:
        if public_key.fingerprint in _warned:
            return
        _warned.add(public_key.fingerprint)
    warnings.warn(f"key {public_key.fingerprint} has no h_s (a version-1 key file): encrypting with textbook "
                  "r^n, about 10x slower than short-exponent DJN encryption. Upgrade the key pair once, "
                  "for every party, with `hefl keygen --upgrade DIR`", TextbookFallbackWarning, stacklevel=4)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown encryption method {method!r}; known: {', '.join(METHODS)}")
    return method


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
        Needed for decryption; when present, encryption works modulo ``p²``
        and ``q²`` and joins by CRT (DJN: half-size tables, about 1.4× the
        public-key rate; textbook: about four times less work than ``r^n
        mod n²``). An aggregator has none.
    accel : Accelerator, optional
        Backend for the modular arithmetic; defaults to
        ``get_accelerator("cpu")``, which this object then owns and closes.
    method : {"djn", "textbook"}, optional
        Default encryption method. ``None``: ``"djn"`` when the public key
        has ``h_s``, else ``"textbook"`` with one
        :class:`TextbookFallbackWarning` per key. ``"djn"`` with a key
        without ``h_s`` raises :class:`~hefl.errors.ModulusError`.
    tables : hefl.paillier.djn.EncryptionTables, optional
        Fixed-base tables to use for DJN encryption (the holder's if a
        private key is given); default: built on first use and cached per
        key (:func:`hefl.paillier.djn.tables_for`). Tables built for
        another key raise :class:`~hefl.errors.KeyMismatchError`.
    window_bits : int, optional
        ``k`` of the tables built when ``tables`` is not given; default
        :func:`hefl.paillier.djn.window_bits_for` the key's size and this
        party's role (key holder or not).
    """

    def __init__(self, public_key, private_key=None, accel=None, *, method=None, tables=None,
                 window_bits=None):
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
        if method is not None:
            _check_method(method)
            if method == "djn":
                self._no_h_s_check(public_key)
        if tables is not None:
            if not isinstance(tables, djn.EncryptionTables):
                raise TypeError(f"tables must be EncryptionTables, not {type(tables).__name__}")
            tables.check(public_key, private_key)
        self.public_key = public_key
        self.private_key = private_key
        self._method = method
        self._tables = tables
        self._window_bits = window_bits
        self._own_accel = accel is None
        self.accel = get_accelerator("cpu") if accel is None else accel

    @property
    def method(self):
        """The default encryption method: ``"djn"`` or ``"textbook"``."""
        if self._method is not None:
            return self._method
        return "textbook" if self.public_key.h_s is None else "djn"

    @staticmethod
    def _no_h_s_check(public_key):
        if public_key.h_s is None:
            raise ModulusError(f"key {public_key.fingerprint} has no h_s (a version-1 key file), so it cannot "
                               "encrypt by DJN; upgrade the key pair with `hefl keygen --upgrade DIR`")

    def tables(self):
        """This party's fixed-base tables (built on first use, then cached per key).

        Raises
        ------
        ModulusError
            The key has no ``h_s``.
        """
        if self._tables is None:
            self._no_h_s_check(self.public_key)
            self._tables = djn.tables_for(self.public_key, self.private_key, self._window_bits)
        return self._tables

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

    def random_alphas(self, count):
        """``count`` DJN exponents uniform in ``[0, 2^B)``, ``B = ⌈|n|/2⌉``, from :mod:`secrets`."""
        return djn.random_alphas(count, djn.exponent_bits(self.public_key.bits))

    def _join(self, xp, xq):
        # The x mod n² with x ≡ xp (mod p²), x ≡ xq (mod q²).
        priv = self.private_key
        p2, q2, inv = priv.p2, priv.q2, gmpy2.mpz(priv.q2_inv_p2)
        return [int(b + q2 * ((a - b) * inv % p2)) for a, b in zip(xp, xq)]

    def _obfuscators(self, rs, count):
        """``r^n mod n²`` for each ``r`` (fresh random ones if ``rs`` is None).

        By CRT when the private key is here (see the module docstring), its
        exponents on the constant-time path.
        """
        pub, priv = self.public_key, self.private_key
        if priv is None:
            if rs is None:
                rs = self.random_r(count)
            return self.accel.powmod(rs, [pub.n] * len(rs), pub.n2)
        p, q, p2, q2 = priv.p, priv.q, priv.p2, priv.q2
        secret = self._powmod_secret
        if rs is None:
            up = [secrets.randbelow(p - 1) + 1 for _ in range(count)]
            uq = [secrets.randbelow(q - 1) + 1 for _ in range(count)]
        else:
            up = secret([r % p for r in rs], [priv.q_mod_pm1] * len(rs), p)
            uq = secret([r % q for r in rs], [priv.p_mod_qm1] * len(rs), q)
        xp = secret(up, [p] * count, p2)
        xq = secret(uq, [q] * count, q2)
        return self._join(xp, xq)

    def _powmod_secret(self, bases, exps, modulus):
        # Exponents derived from p and q (p - 1, q mod (p - 1), p): the
        # backend's constant-time path, their declared length |p| = |q| from
        # the key size (module docstring, "Secret exponents").
        bits = self.private_key.p.bit_length()
        return self.accel.powmod_secret(bases, exps, modulus, exp_bits=bits)

    def _encrypt_textbook(self, ms, rs):
        obf = self._obfuscators(rs, len(ms))
        n = self.public_key.n
        # 1 + m·n < n² for m < n: already reduced.
        return self.accel.mulmod([1 + m * n for m in ms], obf, self.public_key.n2)

    def _encrypt_djn(self, ms, alphas):
        tables = self.tables()
        if alphas is None:
            alphas = djn.random_alphas(len(ms), tables.exp_bits)
        n = self.public_key.n
        factors = [1 + m * n for m in ms]
        t = tables.tables
        if self.private_key is None:
            return self.accel.fixed_base(t["n2"], alphas, factors)
        p2, q2 = self.private_key.p2, self.private_key.q2
        xp = self.accel.fixed_base(t["p2"], alphas, [f % p2 for f in factors])
        xq = self.accel.fixed_base(t["q2"], alphas, [f % q2 for f in factors])
        return self._join(xp, xq)

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

    def encrypt(self, ms, meta=None, *, method=None, randomness=None, alphas=None):
        """Encrypt each plaintext of ``ms``.

        By default the short-exponent fixed-base method of Damgård, Jurik
        and Nielsen (``c = (1 + m·n)·h_s^α``, ``α`` of ``⌈|n|/2⌉`` bits,
        secure under DCR and DJN's short-exponent assumption; see the module
        docstring and docs/design.md §1.6); textbook ``r^n`` for a key
        without ``h_s`` (with a warning) or when asked by name. Key holders
        compute either by CRT; the ciphertext is the same number.

        Parameters
        ----------
        ms : sequence of int
            Plaintexts in ``[0, n)``.
        meta : dict, optional
            JSON-serialisable metadata carried with the vector.
        method : {"djn", "textbook"}, optional
            Overrides this object's :attr:`method` for this call.
        randomness : sequence of int, optional
            Textbook only: the ``r`` values to use, each in ``Z*_n``; for
            tests and interoperability checks. Default: fresh from :mod:`secrets`.
        alphas : sequence of int, optional
            DJN only: the exponents ``α`` to use, each in ``[0, 2^⌈|n|/2⌉)``;
            for tests. Default: fresh from :mod:`secrets`.

        Returns
        -------
        CipherVector

        Raises
        ------
        OperandRangeError
            A plaintext outside ``[0, n)`` or not an integer; ``randomness``
            or ``alphas`` out of range.
        ModulusError
            ``method="djn"`` (or ``alphas``) with a key without ``h_s``.
        ValueError
            An unknown method, or ``randomness`` with ``"djn"`` / ``alphas``
            with ``"textbook"``.
        """
        pub = self.public_key
        n = pub.n
        ms = _ints(ms, "plaintext")
        for i, m in enumerate(ms):
            if not 0 <= m < n:
                raise OperandRangeError(f"plaintext {i} is outside [0, n): "
                                        f"{'negative' if m < 0 else f'{m.bit_length()} bits, n has {pub.bits}'}")
        method = self._resolve_method(method, randomness, alphas)
        if method == "textbook":
            rs = None if randomness is None else self._check_randomness(randomness, len(ms))
            if not ms:
                return self._result([], meta)
            return self._result(self._encrypt_textbook(ms, rs), meta)
        if alphas is not None:
            alphas = djn.check_alphas(alphas, djn.exponent_bits(pub.bits))
            if len(alphas) != len(ms):
                raise VectorLengthError(f"{len(alphas)} exponents for {len(ms)} plaintexts")
        if not ms:
            return self._result([], meta)
        return self._result(self._encrypt_djn(ms, alphas), meta)

    def _resolve_method(self, method, randomness, alphas):
        if method is not None:
            _check_method(method)
        if randomness is not None and alphas is not None:
            raise ValueError("give randomness (textbook r) or alphas (DJN exponents), not both")
        if randomness is not None:
            if method == "djn":
                raise ValueError("randomness gives textbook r values; DJN takes alphas")
            return "textbook"
        if alphas is not None:
            if method == "textbook":
                raise ValueError("alphas are DJN exponents; textbook encryption takes randomness")
            method = "djn"
        if method is None:
            method = self.method
            if method == "textbook" and self._method is None:
                _warn_textbook(self.public_key)
        if method == "djn":
            self._no_h_s_check(self.public_key)
        return method

    def _check_randomness(self, randomness, count):
        n = self.public_key.n
        rs = _ints(randomness, "randomness")
        if len(rs) != count:
            raise VectorLengthError(f"{len(rs)} random values for {count} plaintexts")
        for i, r in enumerate(rs):
            if not 0 < r < n or gmpy2.gcd(r, n) != 1:
                raise OperandRangeError(f"randomness {i} is not in Z*_n")
        return rs

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
        # p - 1 and q - 1 are secret: the constant-time path.
        xp = self._powmod_secret([c % p2 for c in cts], [p - 1] * len(cts), p2)
        xq = self._powmod_secret([c % q2 for c in cts], [q - 1] * len(cts), q2)
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
