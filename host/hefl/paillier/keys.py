"""Paillier keys (g = n + 1): generation, JSON form, files.

A public key may carry ``h_s``, the fixed base of short-exponent
encryption (Damgård, Jurik and Nielsen; docs/design.md §1.6):
``h_s = h^n mod n²`` with ``h = -x² mod n`` for a random unit ``x``. It is
public and the same for every party of a federation, so it is made once,
with the key pair (:func:`generate_keypair`), or added to an existing key
pair explicitly (:meth:`PrivateKey.with_djn_base`, ``hefl keygen
--upgrade DIR``), never silently: parties holding different ``h_s`` would
still decrypt each other's ciphertexts, but would no longer share one
precomputed table. Key files without ``h_s`` (format version 1) still load.

``n = p·q`` with ``|p| = |q| = bits/2`` and ``n`` exactly ``bits`` bits.
Primes come from :mod:`secrets` randomness: a random odd start with its two
top bits set (so the product has exactly ``bits`` bits), then
``gmpy2.next_prime``, confirmed with extra Miller-Rabin rounds.

The private key file is written with mode 0600 from the moment it exists
(``os.open(..., O_CREAT | O_EXCL, 0o600)`` on a temporary name, then an
atomic rename), so no other user ever sees it, even briefly.
"""

import hashlib
import json
import os
import secrets

import gmpy2

from hefl.errors import ModulusError, SerializationError

__all__ = ["PublicKey", "PrivateKey", "generate_keypair", "djn_base", "MIN_KEY_BITS"]

#: Smallest key accepted (for tests only; real keys are 2048 bits or more).
MIN_KEY_BITS = 32
_FORMAT = "hefl-paillier"
#: Key-file versions: 1 without ``h_s``, 2 with it.
_VERSION_PLAIN, _VERSION_DJN = 1, 2
_VERSIONS = (_VERSION_PLAIN, _VERSION_DJN)
# Extra Miller-Rabin rounds on top of next_prime's own test.
_MR_ROUNDS = 40


def _fingerprint(n):
    nbytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return hashlib.sha256(b"hefl-paillier-n:" + nbytes).hexdigest()[:16]


def _write_private(path, text, mode):
    """Write ``text`` to ``path`` atomically, the file never wider than ``mode``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd = None
    for _ in range(100):
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            break
        except FileExistsError:
            continue
    if fd is None:
        raise OSError(f"could not create a temporary file in {directory}")
    try:
        # The umask may have narrowed the mode further; never widen it.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = None
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _parse(text, kind):
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as e:
        raise SerializationError(f"{kind} key is not valid JSON: {e}") from None
    if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("kind") != kind:
        raise SerializationError(f"not a hefl Paillier {kind} key (format/kind fields)")
    v = d.get("version")
    if isinstance(v, bool) or v not in _VERSIONS:
        raise SerializationError(f"unsupported {kind} key version {v!r}; this build reads "
                                 f"{' and '.join(map(str, _VERSIONS))}")
    if (v == _VERSION_DJN) != ("h_s" in d):
        raise SerializationError(f"{kind} key version {v} {'needs' if v == _VERSION_DJN else 'has no'} "
                                 "field 'h_s'")
    return d


def djn_base(n):
    """A fresh ``h_s = (-x²)^n mod n²`` for a random unit ``x`` (from :mod:`secrets`)."""
    while True:
        x = secrets.randbelow(n)
        if x > 1 and gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    return int(gmpy2.powmod(h, n, n * n))


def _int_field(d, name, kind):
    v = d.get(name)
    if not isinstance(v, str):
        raise SerializationError(f"{kind} key field {name!r} is missing or not a hex string")
    try:
        return int(v, 16)
    except ValueError:
        raise SerializationError(f"{kind} key field {name!r} is not a hex number") from None


class _KeyFile:
    """``save``/``load`` of a key's JSON form (``to_json``/``from_json``); ``_MODE`` caps the file's mode."""

    __slots__ = ()
    _MODE = 0o644

    def save(self, path):
        """Write the JSON form to ``path`` atomically (mode 0644 for a public key, 0600 for a private one)."""
        _write_private(path, self.to_json() + "\n", self._MODE)

    @classmethod
    def load(cls, path):
        """Read a key :meth:`save` wrote (checked as :meth:`from_json` checks it)."""
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())


class PublicKey(_KeyFile):
    """A Paillier public key with ``g = n + 1``.

    Attributes
    ----------
    n : int
        The modulus.
    n2 : int
        ``n²``, the ciphertext modulus.
    bits : int
        Bit length of ``n``.
    fingerprint : str
        16 hex digits identifying ``n`` (SHA-256 of its bytes). Ciphertexts
        carry it; ``h_s`` does not enter it, since it does not change what a
        ciphertext means.
    h_s : int or None
        The fixed base of short-exponent encryption, an ``n``-th power mod
        ``n²``; ``None`` for a key made before it existed (textbook
        encryption only, until upgraded).
    """

    __slots__ = ("n", "n2", "bits", "fingerprint", "h_s")

    def __init__(self, n, h_s=None):
        n = int(n)
        if n < 15 or n % 2 == 0:
            raise ModulusError(f"a Paillier modulus must be an odd composite ≥ 15, not a {n.bit_length()}-bit "
                               f"{'even' if n % 2 == 0 else 'small'} number")
        self.n = n
        self.n2 = n * n
        self.bits = n.bit_length()
        self.fingerprint = _fingerprint(n)
        if h_s is not None and (not isinstance(h_s, int) or isinstance(h_s, bool)
                                or not 1 < h_s < self.n2 or gmpy2.gcd(h_s, n) != 1):
            raise ModulusError("h_s must be a unit in (1, n²)")
        self.h_s = h_s

    @property
    def djn_fingerprint(self):
        """16 hex digits identifying ``(n, h_s)``: what a fixed-base table is built for."""
        if self.h_s is None:
            return None
        hs = self.h_s.to_bytes((self.n2.bit_length() + 7) // 8, "big")
        return hashlib.sha256(b"hefl-paillier-hs:" + bytes.fromhex(self.fingerprint) + hs).hexdigest()[:16]

    @property
    def ciphertext_bytes(self):
        """Bytes of one ciphertext in fixed-width form (``2·bits/8`` rounded up)."""
        return (2 * self.bits + 7) // 8

    def __eq__(self, other):
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self):
        return hash(self.n)

    def __repr__(self):
        djn = "" if self.h_s is None else f", djn={self.djn_fingerprint!r}"
        return f"PublicKey(bits={self.bits}, fingerprint={self.fingerprint!r}{djn})"

    def to_dict(self):
        d = {"format": _FORMAT, "kind": "public",
             "version": _VERSION_PLAIN if self.h_s is None else _VERSION_DJN,
             "bits": self.bits, "fingerprint": self.fingerprint, "n": format(self.n, "x")}
        if self.h_s is not None:
            d["h_s"] = format(self.h_s, "x")
        return d

    def to_json(self):
        """JSON text: format, version, bits, fingerprint, ``n`` and ``h_s`` (if any) in hex."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text):
        """Parse :meth:`to_json` output; raise :class:`SerializationError` if it is not one."""
        d = _parse(text, "public")
        return cls._from_dict(d)

    @classmethod
    def _from_dict(cls, d, kind="public"):
        n = _int_field(d, "n", kind)
        try:
            key = cls(n)
        except ModulusError as e:
            raise SerializationError(f"{kind} key holds an unusable modulus: {e}") from None
        if d.get("fingerprint") not in (None, key.fingerprint):
            raise SerializationError(f"{kind} key fingerprint {d.get('fingerprint')!r} does not match its n "
                                     f"({key.fingerprint}): the file was altered")
        if "h_s" not in d:
            return key
        try:
            return cls(n, _int_field(d, "h_s", kind))
        except ModulusError as e:
            raise SerializationError(f"{kind} key holds an unusable h_s: {e}") from None



class PrivateKey(_KeyFile):
    """A Paillier private key: the factors of ``n`` and the CRT constants.

    Attributes
    ----------
    public_key : PublicKey
    p, q : int
        The prime factors, ``p < q``.
    """

    __slots__ = ("public_key", "p", "q", "p2", "q2", "hp", "hq", "p_inv_q",
                 "q2_inv_p2", "q_mod_pm1", "p_mod_qm1")
    _MODE = 0o600

    def __init__(self, public_key, p, q):
        p, q = sorted((int(p), int(q)))
        if p * q != public_key.n:
            raise ModulusError("p·q does not equal the public modulus n")
        if p == q:
            raise ModulusError("p and q must differ")
        self.public_key = public_key
        self.p, self.q = p, q
        self.p2, self.q2 = p * p, q * q
        n = public_key.n
        # h_p = L_p(g^(p-1) mod p²)^-1 mod p, with g = n + 1 (Paillier 1999, §7).
        self.hp = self._h(p, self.p2, n)
        self.hq = self._h(q, self.q2, n)
        self.p_inv_q = int(gmpy2.invert(p, q))
        # CRT encryption (scheme.py): r^n mod p² = ((r mod p)^(q mod p-1) mod p)^p mod p²,
        # likewise for q, joined into mod n².
        self.q2_inv_p2 = int(gmpy2.invert(self.q2, self.p2))
        self.q_mod_pm1 = q % (p - 1)
        self.p_mod_qm1 = p % (q - 1)
        h_s = public_key.h_s
        # An n-th power mod n² is a p-th power mod p², so its order there
        # divides p - 1 (likewise for q). Anything else was not made by
        # djn_base and would encrypt to values nobody can decrypt.
        if h_s is not None and (gmpy2.powmod(h_s, p - 1, self.p2) != 1
                                or gmpy2.powmod(h_s, q - 1, self.q2) != 1):
            raise ModulusError("h_s is not an n-th power mod n²: the public key does not match "
                               "this private key")

    @staticmethod
    def _h(p, p2, n):
        gp = (1 + (p - 1) * n) % p2          # (n + 1)^(p-1) mod p², binomially
        lp = (gp - 1) // p
        try:
            return int(gmpy2.invert(lp, p))
        except ZeroDivisionError:
            raise ModulusError("g = n + 1 has no inverse L value for this key; n is not a valid Paillier modulus") from None

    def __eq__(self, other):
        return isinstance(other, PrivateKey) and (other.p, other.q) == (self.p, self.q)

    def __hash__(self):
        return hash((self.p, self.q))

    def __repr__(self):
        return f"PrivateKey(bits={self.public_key.bits}, fingerprint={self.public_key.fingerprint!r})"

    def with_djn_base(self, h_s=None):
        """This key pair with ``h_s`` added: the explicit upgrade of a version-1 key.

        Raises
        ------
        SerializationError
            The key already has an ``h_s`` (replacing it would split the
            federation onto two bases).
        """
        if self.public_key.h_s is not None:
            raise SerializationError(f"key {self.public_key.fingerprint} already has h_s "
                                     f"({self.public_key.djn_fingerprint}); keep it")
        n = self.public_key.n
        return PrivateKey(PublicKey(n, djn_base(n) if h_s is None else h_s), self.p, self.q)

    def crt(self, mp, mq):
        """The ``x mod n`` with ``x ≡ mp (mod p)`` and ``x ≡ mq (mod q)`` (Garner)."""
        return mp + self.p * ((mq - mp) * self.p_inv_q % self.q)

    def to_json(self):
        d = self.public_key.to_dict()
        d.update(kind="private", p=format(self.p, "x"), q=format(self.q, "x"))
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text):
        """Parse :meth:`to_json` output, checking ``p·q = n`` and primality."""
        d = _parse(text, "private")
        pub = PublicKey._from_dict(d, "private")
        p, q = _int_field(d, "p", "private"), _int_field(d, "q", "private")
        if p * q != pub.n:
            raise SerializationError("private key: p·q does not equal n; the file was altered")
        if not (gmpy2.is_prime(p, 25) and gmpy2.is_prime(q, 25)):
            raise SerializationError("private key: p or q is not prime")
        try:
            return cls(pub, p, q)
        except ModulusError as e:
            raise SerializationError(f"private key is unusable: {e}") from None



def _random_prime(bits):
    while True:
        # Top two bits set: the product of two such primes has exactly 2·bits bits.
        start = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        p = int(gmpy2.next_prime(start))
        if p.bit_length() == bits and gmpy2.is_prime(p, _MR_ROUNDS):
            return p


def generate_keypair(bits=2048, *, djn=True):
    """A fresh key pair with ``n`` of exactly ``bits`` bits.

    Parameters
    ----------
    bits : int
        Even, at least :data:`MIN_KEY_BITS`. Use 2048 or more for real data;
        256/512 are for tests.
    djn : bool
        Give the public key an ``h_s`` (short-exponent encryption). ``False``
        makes a version-1 key, as older hefl did.

    Returns
    -------
    (PublicKey, PrivateKey)
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < MIN_KEY_BITS or bits % 2:
        raise ModulusError(f"key size must be an even number of bits ≥ {MIN_KEY_BITS}, not {bits!r}")
    half = bits // 2
    while True:
        p = _random_prime(half)
        q = _random_prime(half)
        n = p * q
        # gcd(n, (p-1)(q-1)) = 1 holds for equal-length primes unless p | q-1
        # or q | p-1, impossible at equal length; p ≠ q is all that is left.
        if p != q and n.bit_length() == bits:
            pub = PublicKey(n, djn_base(n) if djn else None)
            return pub, PrivateKey(pub, p, q)
