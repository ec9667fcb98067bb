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
atomic rename), so no other user ever sees it, even briefly; and one that
group or others may access is refused on loading, with the ``chmod`` that
fixes it (as ssh refuses such a key).

Reading a key file
------------------
A key file is at most :data:`MAX_KEY_FILE_BYTES`, strict JSON
(:func:`hefl.safejson.loads`), and holds exactly the fields of its kind and
version, each of its type: ``format``, ``kind``, ``version`` (1 or 2, an
integer), ``bits`` (= the bit length of ``n``, between :data:`MIN_KEY_BITS`
and :data:`MAX_KEY_BITS`), ``fingerprint`` (of ``n``), ``n``; version 2
adds ``h_s`` and ``djn_fingerprint`` (of ``n`` and ``h_s``); a private key
adds ``p`` and ``q``. Numbers are lowercase hex without leading zeros, as
:meth:`PublicKey.to_json` writes them. The fingerprints are required: they
are what makes an altered ``n`` or ``h_s`` an error instead of a different
key. Anything else raises :class:`~hefl.errors.SerializationError`, and
nothing else (``hefl fuzz`` checks it).

Key sizes
---------
:func:`generate_keypair` accepts :data:`MIN_KEY_BITS` and up, for tests.
The command line is stricter (:mod:`hefl.paillier.cli`): below
:data:`RECOMMENDED_KEY_BITS` it prints the security level
(:func:`security_level`), below :data:`INSECURE_KEY_BITS` it refuses unless
``--insecure-test-key`` is given.
"""

import hashlib
import json
import operator
import os
import secrets
import shlex
import stat

import gmpy2

from hefl import safejson
from hefl.errors import (
    InsecureKeyFileError,
    KeyFileError,
    KeySizeError,
    ModulusError,
    OutputPathError,
    SerializationError,
)

__all__ = ["PublicKey", "PrivateKey", "generate_keypair", "djn_base", "security_level", "MIN_KEY_BITS",
           "MAX_KEY_BITS", "INSECURE_KEY_BITS", "RECOMMENDED_KEY_BITS", "MAX_KEY_FILE_BYTES"]

#: Smallest key accepted (for tests only; real keys are 2048 bits or more).
MIN_KEY_BITS = 32
#: Largest key accepted: far beyond any use (15360 bits give 256-bit security),
#: and small enough that checking a key file's primes stays quick.
MAX_KEY_BITS = 16384
#: Below this the command line refuses a key unless told it is for a test or demo.
INSECURE_KEY_BITS = 1024
#: Below this the command line warns (NIST's minimum for use after 2030 is 3072).
RECOMMENDED_KEY_BITS = 2048
#: A 16384-bit private key file is ~17 KB.
MAX_KEY_FILE_BYTES = 1 << 16
# Security of a factoring modulus of this many bits, NIST SP 800-57 Part 1
# Rev. 5, Table 2.
_SECURITY = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
_FORMAT = "hefl-paillier"
#: Key-file versions: 1 without ``h_s``, 2 with it.
_VERSION_PLAIN, _VERSION_DJN = 1, 2
_VERSIONS = (_VERSION_PLAIN, _VERSION_DJN)
# Extra Miller-Rabin rounds on top of next_prime's own test.
_MR_ROUNDS = 40


def _as_int(x, what):
    """``x`` as an int if it is an integer (int, numpy integer, mpz; not bool, not float)."""
    try:
        if not isinstance(x, bool):
            return operator.index(x)
    except TypeError:
        pass
    raise ModulusError(f"{what} must be an integer, not {type(x).__name__}")


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


def security_level(bits):
    """Bits of security of a ``bits``-bit modulus (NIST SP 800-57); ``None`` below 1024 bits (< 80)."""
    return next((level for size, level in _SECURITY if bits >= size), None)


_PUBLIC_FIELDS = {_VERSION_PLAIN: {"format", "kind", "version", "bits", "fingerprint", "n"}}
_PUBLIC_FIELDS[_VERSION_DJN] = _PUBLIC_FIELDS[_VERSION_PLAIN] | {"h_s", "djn_fingerprint"}


def _parse(text, kind):
    """The dict of a key file of ``kind``: strict JSON, its version's fields, nothing else."""
    d = safejson.loads(text, what=f"{kind} key", max_bytes=MAX_KEY_FILE_BYTES)
    if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("kind") != kind:
        raise SerializationError(f"not a hefl Paillier {kind} key (format/kind fields)")
    v = d.get("version")
    if type(v) is not int or v not in _VERSIONS:
        raise SerializationError(f"unsupported {kind} key version {v!r}; this build reads "
                                 f"{' and '.join(map(str, _VERSIONS))}")
    want = _PUBLIC_FIELDS[v] | ({"p", "q"} if kind == "private" else set())
    if set(d) != want:
        missing, extra = ", ".join(sorted(want - set(d))), ", ".join(sorted(set(d) - want))
        raise SerializationError(f"{kind} key version {v} fields: missing [{missing}], unexpected [{extra}]")
    return d


def djn_base(n):
    """A fresh ``h_s = (-x²)^n mod n²`` for a random unit ``x`` (from :mod:`secrets`)."""
    return _djn_base(n, secrets.randbelow)


def _djn_base(n, randbelow):
    while True:
        x = randbelow(n)
        if x > 1 and gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    return int(gmpy2.powmod(h, n, n * n))


def _int_field(d, name, kind, max_bits):
    """Field ``name`` as an int: lowercase hex, no sign, prefix or leading zeros, at most ``max_bits``."""
    v = d.get(name)
    if not isinstance(v, str):
        raise SerializationError(f"{kind} key field {name!r} is missing or not a hex string")
    if len(v) > -(-max_bits // 4):
        raise SerializationError(f"{kind} key field {name!r} has {len(v)} hex digits; "
                                 f"at most {-(-max_bits // 4)} fit")
    try:
        x = int(v, 16)
    except ValueError:
        raise SerializationError(f"{kind} key field {name!r} is not a hex number") from None
    # int() also takes "0x", "+", "_" and spaces: one spelling per number.
    if format(x, "x") != v:
        raise SerializationError(f"{kind} key field {name!r} is not lowercase hex without "
                                 "sign, prefix or leading zeros")
    return x


def _str_field(d, name, kind, want):
    """Check that string field ``name`` equals ``want`` (a fingerprint computed from the key)."""
    v = d.get(name)
    if not isinstance(v, str):
        raise SerializationError(f"{kind} key field {name!r} is missing or not a string")
    if v != want:
        raise SerializationError(f"{kind} key {name} {v[:40]!r} does not match its numbers "
                                 f"({want}): the file was altered")


class _KeyFile:
    """``save``/``load`` of a key's JSON form (``to_json``/``from_json``); ``_MODE`` caps the file's mode."""

    __slots__ = ()
    _KIND = "public"
    _MODE = 0o644

    def save(self, path):
        """Write the JSON form to ``path`` atomically (mode 0644 for a public key, 0600 for a private one).

        Raises
        ------
        OutputPathError
            The folder is missing or not writable, or ``path`` is a folder.
        """
        try:
            _write_private(path, self.to_json() + "\n", self._MODE)
        except OSError as e:
            raise OutputPathError(f"cannot write key file {os.fspath(path)}: {e.strerror or e}") from None

    @classmethod
    def load(cls, path):
        """Read a key :meth:`save` wrote (checked as :meth:`from_json` checks it).

        Raises
        ------
        KeyFileError
            The file cannot be read or is larger than :data:`MAX_KEY_FILE_BYTES`.
        InsecureKeyFileError
            A private key file that group or others may access.
        SerializationError
            Not a key file of this kind (:meth:`from_json`).
        """
        kind = cls._KIND
        try:
            with open(path, "rb") as f:
                if kind == "private":
                    _check_private_mode(path, os.fstat(f.fileno()).st_mode)
                data = f.read(MAX_KEY_FILE_BYTES + 1)
        except InsecureKeyFileError:
            raise
        except OSError as e:
            raise KeyFileError(f"cannot read {kind} key file {os.fspath(path)}: {e.strerror or e}") from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{kind} key file {os.fspath(path)} is larger than "
                               f"{MAX_KEY_FILE_BYTES} bytes; it is not a key file")
        return cls.from_json(data)


def _check_private_mode(path, mode):
    """Refuse a private key file that group or others may access (as ssh does)."""
    if os.name != "posix" or not stat.S_ISREG(mode) or not mode & 0o077:
        return
    p = shlex.quote(os.fspath(path))
    raise InsecureKeyFileError(f"permissions {stat.S_IMODE(mode):04o} of private key file {os.fspath(path)} "
                               f"are too open (group or others may access it); fix with: chmod 600 {p}")


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
        n = _as_int(n, "a Paillier modulus")
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
            d["djn_fingerprint"] = self.djn_fingerprint
        return d

    def to_json(self):
        """JSON text: format, version, bits, fingerprints, ``n`` and ``h_s`` (if any) in hex."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text):
        """Parse :meth:`to_json` output (str or UTF-8 bytes), checked as the module docstring says.

        Raises
        ------
        SerializationError
            Not a public key file of a version this build reads, or altered.
        """
        return cls._from_dict(_parse(text, "public"))

    @classmethod
    def _from_dict(cls, d, kind="public", check_djn=True):
        # n first, so that an unusable n says so whatever else is wrong.
        n = _int_field(d, "n", kind, MAX_KEY_BITS)
        try:
            key = cls(n)
        except ModulusError as e:
            raise SerializationError(f"{kind} key holds an unusable modulus: {e}") from None
        bits = d.get("bits")
        if type(bits) is not int or bits != key.bits:
            raise SerializationError(f"{kind} key says bits={bits!r} but its n has {key.bits} bits")
        if not MIN_KEY_BITS <= bits <= MAX_KEY_BITS:
            raise SerializationError(f"{kind} key of {bits} bits; this build reads "
                                     f"{MIN_KEY_BITS} to {MAX_KEY_BITS}")
        _str_field(d, "fingerprint", kind, key.fingerprint)
        if "h_s" not in d:
            return key
        try:
            key = cls(n, _int_field(d, "h_s", kind, 2 * MAX_KEY_BITS))
        except ModulusError as e:
            raise SerializationError(f"{kind} key holds an unusable h_s: {e}") from None
        if check_djn:
            _str_field(d, "djn_fingerprint", kind, key.djn_fingerprint)
        return key



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
    _KIND = "private"
    _MODE = 0o600

    def __init__(self, public_key, p, q):
        p, q = sorted((_as_int(p, "p"), _as_int(q, "q")))
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
        # djn_base and would encrypt to values nobody can decrypt. The
        # exponents are secret: constant-time powmod_sec.
        if h_s is not None and (gmpy2.powmod_sec(h_s, p - 1, self.p2) != 1
                                or gmpy2.powmod_sec(h_s, q - 1, self.q2) != 1):
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
        """Parse :meth:`to_json` output (str or UTF-8 bytes), checking ``p·q = n``, primality and ``h_s``.

        Raises
        ------
        SerializationError
            Not a private key file of a version this build reads, or altered.
        """
        d = _parse(text, "private")
        pub = PublicKey._from_dict(d, "private", check_djn=False)
        p, q = _int_field(d, "p", "private", MAX_KEY_BITS), _int_field(d, "q", "private", MAX_KEY_BITS)
        if p * q != pub.n:
            raise SerializationError("private key: p·q does not equal n; the file was altered")
        if not (gmpy2.is_prime(p, 25) and gmpy2.is_prime(q, 25)):
            raise SerializationError("private key: p or q is not prime")
        try:
            key = cls(pub, p, q)
        except ModulusError as e:
            raise SerializationError(f"private key is unusable: {e}") from None
        # After the n-th power check, which names the likelier fault.
        if pub.h_s is not None:
            _str_field(d, "djn_fingerprint", "private", pub.djn_fingerprint)
        return key



def _random_prime(bits, randbits):
    while True:
        # Top two bits set: the product of two such primes has exactly 2·bits bits.
        start = randbits(bits) | (3 << (bits - 2)) | 1
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

    Raises
    ------
    KeySizeError
        ``bits`` is not an even integer in ``[MIN_KEY_BITS, MAX_KEY_BITS]``.
    """
    return _generate(bits, djn, secrets.randbits, secrets.randbelow)


def _generate(bits, djn, randbits, randbelow):
    # The randomness is a parameter only so that hefl.fuzz can rebuild its
    # corpus from a seed; every real key comes from generate_keypair.
    if (not isinstance(bits, int) or isinstance(bits, bool) or not MIN_KEY_BITS <= bits <= MAX_KEY_BITS
            or bits % 2):
        raise KeySizeError(f"key size must be an even number of bits from {MIN_KEY_BITS} to "
                           f"{MAX_KEY_BITS}, not {bits!r}")
    half = bits // 2
    while True:
        p = _random_prime(half, randbits)
        q = _random_prime(half, randbits)
        n = p * q
        # gcd(n, (p-1)(q-1)) = 1 holds for equal-length primes unless p | q-1
        # or q | p-1, impossible at equal length; p ≠ q is all that is left.
        if p != q and n.bit_length() == bits:
            pub = PublicKey(n, _djn_base(n, randbelow) if djn else None)
            return pub, PrivateKey(pub, p, q)
