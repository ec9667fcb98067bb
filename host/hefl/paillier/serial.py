"""Ciphertext vectors, their binary form, and the checks on received ones.

Binary layout (all integers big-endian)::

    offset  size   field
    0       4      magic b"HECV"
    4       1      format version (1)
    5       1      flags (0; reserved)
    6       8      key fingerprint (the 16 hex digits of PublicKey.fingerprint, as bytes)
    14      2      key bits (bit length of n)
    16      4      count of ciphertexts
    20      4      length of the metadata
    24      M      metadata: UTF-8 JSON object (encoding parameters, ...)
    24+M    C·W    ciphertexts, each W = ceil(2·bits/8) bytes, fixed width
    end-32  32     SHA-256 of everything before it

The checksum catches truncation and accidental corruption (a deliberate
forger can recompute it; the range and key checks below are what stop
unusable values). No pickle anywhere: the receiver parses bytes it chose.

Every value has exactly one encoding, and a reader accepts nothing else:
the metadata must be the canonical JSON of what it parses to (sorted keys,
no spaces, ASCII escapes; what :meth:`CipherVector.to_bytes` writes), at
most 1 MiB (checked on the header's length field, before anything is read),
and strict (:func:`hefl.safejson.loads`: UTF-8, finite numbers, bounded
nesting and integers, no duplicate keys). The count of ciphertexts is
bounded by the bytes present: each is exactly ``ceil(2·bits/8)`` bytes of
the receiver's key. So every malformed vector raises a
:class:`~hefl.errors.SerializationError` (or, for well-formed data under the
wrong key or with unusable values, a :class:`~hefl.errors.CiphertextError`),
never another exception; ``hefl fuzz`` checks this on mutated vectors.

Every received ciphertext is checked: ``0 < c < n²``, ``gcd(c, n) = 1``, and
the vector's fingerprint equals the receiver's key.

Validated once
--------------
This module owns that check (:func:`check_ciphertexts`), and a vector
remembers that it passed it (:attr:`CipherVector.validated`). Vectors become
validated on the receiving path only: :meth:`CipherVector.from_bytes` (the
default) or an explicit :meth:`CipherVector.validate` for values that came
some other way; the results of :class:`hefl.paillier.Paillier`'s operations
on validated vectors are valid by construction and marked so. The layers
above and below (the aggregator, ``Paillier.aggregate``/``decrypt``) then
check only the key fingerprint, never the values again; the accelerator
keeps its own cheap range check of raw operands. The mark does not follow
in-place edits of :attr:`CipherVector.ciphertexts`: only local code can make
those, never the party that sent the bytes.
"""

import hashlib
import json
import operator
import struct

import gmpy2

from hefl import safejson
from hefl.errors import CiphertextRangeError, KeyMismatchError, SerializationError

__all__ = ["CipherVector", "check_ciphertexts", "check_key", "MAGIC", "FORMAT_VERSION", "MAX_META_BYTES"]

MAGIC = b"HECV"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">4sBB8sHII")
_DIGEST = 32
#: Largest metadata a vector may carry, on writing and on reading (so a
#: garbled length field cannot make a reader parse gigabytes).
MAX_META_BYTES = 1 << 20


def _json_default(o):
    # numpy scalars and arrays in metadata: store their plain Python value.
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _meta_bytes(meta):
    """The canonical form of ``meta``: the only one :meth:`CipherVector.from_bytes` accepts."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=_json_default,
                      allow_nan=False).encode()


def _integer(i, c):
    """``c`` as an int if it is an integer (int, numpy integer, mpz; not bool)."""
    try:
        if not isinstance(c, bool):
            return operator.index(c)
    except TypeError:
        pass
    raise CiphertextRangeError(f"ciphertext {i} is a {type(c).__name__}, not an integer")


def check_key(public_key, fingerprint):
    """Raise :class:`KeyMismatchError` unless ``fingerprint`` is ``public_key``'s."""
    if fingerprint != public_key.fingerprint:
        raise KeyMismatchError(
            f"ciphertexts were made under key {fingerprint}, not this key ({public_key.fingerprint})")


def check_ciphertexts(public_key, ciphertexts, fingerprint=None, *, coprime=True):
    """Raise unless every ciphertext is usable under ``public_key``.

    Parameters
    ----------
    public_key : PublicKey
    ciphertexts : sequence of int
    fingerprint : str, optional
        Fingerprint the data claims; compared with the key's.
    coprime : bool
        Also check ``gcd(c, n) = 1``. Done for the whole vector at once: the
        product of all ``c`` mod ``n`` is coprime to ``n`` exactly when every
        factor is (``n``'s primes divide a product only through a factor),
        which costs one modular multiplication per ciphertext instead of one
        gcd; only a failing vector is scanned to name the culprit.

    Raises
    ------
    KeyMismatchError
        ``fingerprint`` is not the key's.
    CiphertextRangeError
        A ciphertext is not an integer, is ``<= 0`` or ``>= n²``, or shares a
        factor with ``n``; the message names its index.
    """
    if fingerprint is not None:
        check_key(public_key, fingerprint)
    n, n2 = public_key.n, public_key.n2
    for i, c in enumerate(ciphertexts):
        if not isinstance(c, int):
            raise CiphertextRangeError(f"ciphertext {i} is a {type(c).__name__}, not an integer")
        if not 0 < c < n2:
            if c >= n2:
                raise CiphertextRangeError(f"ciphertext {i} is not below n² ({c.bit_length()} bits, "
                                           f"n² has {n2.bit_length()})")
            raise CiphertextRangeError(f"ciphertext {i} is {'zero' if c == 0 else 'negative'}; "
                                       f"a ciphertext lies in 0 < c < n²")
    if not coprime:
        return
    nm = gmpy2.mpz(n)
    acc = gmpy2.mpz(1)
    for c in ciphertexts:
        acc = acc * c % nm
    if gmpy2.gcd(acc, nm) == 1:
        return
    for i, c in enumerate(ciphertexts):
        if gmpy2.gcd(c, nm) != 1:
            raise CiphertextRangeError(f"ciphertext {i} shares a factor with n; it is not a valid "
                                       f"ciphertext (and reveals the key's factors)")


class CipherVector:
    """A vector of Paillier ciphertexts under one key, with metadata.

    Parameters
    ----------
    public_key : PublicKey
        The key the ciphertexts were made under.
    ciphertexts : sequence of int
    meta : dict, optional
        JSON-serialisable metadata (encoding parameters, client id, ...).

    Attributes
    ----------
    ciphertexts : list of int
    meta : dict

    A vector made here starts unvalidated; see :attr:`validated`.
    """

    __slots__ = ("public_key", "ciphertexts", "meta", "_validated")

    def __init__(self, public_key, ciphertexts, meta=None):
        self.public_key = public_key
        # Integers only (int, numpy integers, mpz): int(3.9) would quietly make a 3.
        self.ciphertexts = [_integer(i, c) for i, c in enumerate(ciphertexts)]
        self.meta = dict(meta) if meta else {}
        self._validated = False

    @property
    def validated(self):
        """True once every ciphertext passed :func:`check_ciphertexts` under :attr:`public_key`.

        Set by :meth:`from_bytes` and :meth:`validate`, and on the results of
        Paillier operations (see the module docstring); never by the constructor.
        """
        return self._validated

    def validate(self):
        """Check every ciphertext under the vector's key, once; returns ``self``.

        Raises
        ------
        CiphertextRangeError
            A ciphertext outside ``0 < c < n²`` or sharing a factor with ``n``
            (the message names its index); the vector stays unvalidated.
        """
        if not self._validated:
            check_ciphertexts(self.public_key, self.ciphertexts)
            self._validated = True
        return self

    @property
    def fingerprint(self):
        """Fingerprint of the key the ciphertexts were made under."""
        return self.public_key.fingerprint

    def __len__(self):
        return len(self.ciphertexts)

    def __iter__(self):
        return iter(self.ciphertexts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            part = CipherVector(self.public_key, self.ciphertexts[i], self.meta)
            part._validated = self._validated
            return part
        return self.ciphertexts[i]

    def __eq__(self, other):
        return (isinstance(other, CipherVector) and other.public_key == self.public_key
                and other.ciphertexts == self.ciphertexts and other.meta == self.meta)

    def __repr__(self):
        return f"CipherVector(len={len(self)}, fingerprint={self.fingerprint!r}, meta={self.meta!r})"

    # --- binary form ------------------------------------------------------

    def to_bytes(self):
        """The compact binary form described in the module docstring."""
        try:
            meta = _meta_bytes(self.meta)
        except (TypeError, ValueError, RecursionError) as e:
            raise SerializationError(f"ciphertext metadata is not JSON-serialisable: {e}") from None
        if len(meta) > MAX_META_BYTES:
            raise SerializationError(f"ciphertext metadata is {len(meta)} bytes; "
                                     f"the limit is {MAX_META_BYTES}")
        _read_meta(meta)     # never send what a receiver would refuse (nesting, huge integers)
        pk = self.public_key
        width = pk.ciphertext_bytes
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, bytes.fromhex(pk.fingerprint), pk.bits,
                            len(self.ciphertexts), len(meta))
        try:
            body = b"".join(c.to_bytes(width, "big") for c in self.ciphertexts)
        except OverflowError:
            raise SerializationError("a ciphertext is negative or wider than n²; validate before sending") from None
        data = head + meta + body
        return data + hashlib.sha256(data).digest()

    @classmethod
    def from_bytes(cls, data, public_key, *, validate=True):
        """Parse and check a received vector.

        Parameters
        ----------
        data : bytes-like
        public_key : PublicKey
            The receiver's key; the vector must have been made under it.
        validate : bool
            Check every ciphertext (:meth:`validate`), so that later layers
            need not. Leave on for anything that came from another party.

        Raises
        ------
        SerializationError
            Bad magic or version, truncated, trailing bytes, checksum
            mismatch, metadata over :data:`MAX_META_BYTES` or not the
            canonical strict JSON of an object.
        KeyMismatchError
            Made under another key.
        CiphertextRangeError
            A ciphertext outside ``0 < c < n²`` or sharing a factor with ``n``.
        """
        try:
            data = memoryview(data).cast("B")
        except TypeError:
            raise SerializationError(f"expected bytes, got {type(data).__name__}") from None
        if len(data) < _HEADER.size + _DIGEST:
            raise SerializationError(f"ciphertext vector truncated: {len(data)} bytes, "
                                     f"the header and checksum alone need {_HEADER.size + _DIGEST}")
        magic, version, flags, fp, bits, count, meta_len = _HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            raise SerializationError(f"not a hefl ciphertext vector (magic {bytes(magic)!r})")
        if version != FORMAT_VERSION:
            raise SerializationError(f"ciphertext vector format version {version}; this build reads {FORMAT_VERSION}")
        if flags != 0:
            raise SerializationError(f"unknown flags 0x{flags:02x} in ciphertext vector")
        if meta_len > MAX_META_BYTES:
            raise SerializationError(f"ciphertext vector claims {meta_len} bytes of metadata; "
                                     f"the limit is {MAX_META_BYTES}")
        width = (2 * bits + 7) // 8
        expected = _HEADER.size + meta_len + count * width + _DIGEST
        if len(data) < expected:
            raise SerializationError(f"ciphertext vector truncated: {len(data)} bytes, the header says {expected}")
        if len(data) > expected:
            raise SerializationError(f"ciphertext vector has {len(data) - expected} trailing bytes")
        if hashlib.sha256(data[:-_DIGEST]).digest() != bytes(data[-_DIGEST:]):
            raise SerializationError("ciphertext vector checksum mismatch: the data was corrupted in transit")
        fingerprint = bytes(fp).hex()
        if fingerprint != public_key.fingerprint or bits != public_key.bits:
            raise KeyMismatchError(f"ciphertext vector was made under key {fingerprint} ({bits} bits), "
                                   f"not this key ({public_key.fingerprint}, {public_key.bits} bits)")
        off = _HEADER.size
        meta = _read_meta(data[off:off + meta_len])
        off += meta_len
        cts = [int.from_bytes(data[off + i * width:off + (i + 1) * width], "big") for i in range(count)]
        cv = cls(public_key, cts, meta)
        return cv.validate() if validate else cv


def _read_meta(raw):
    """The metadata object of a received vector; SerializationError unless canonical strict JSON."""
    meta = safejson.loads(raw, what="ciphertext vector metadata", max_bytes=MAX_META_BYTES)
    if not isinstance(meta, dict):
        raise SerializationError("ciphertext vector metadata is not a JSON object")
    # One encoding per value: anything else was not written by to_bytes.
    if _meta_bytes(meta) != bytes(raw):
        raise SerializationError("ciphertext vector metadata is not in canonical form "
                                 "(sorted keys, no spaces); it was not written by hefl")
    return meta


def valid_by_construction(public_key, ciphertexts, meta=None):
    """A :class:`CipherVector` marked validated without checking it.

    For :class:`hefl.paillier.Paillier` only, on the results of its
    operations: fresh encryptions, and products and powers of validated
    vectors, lie in ``Z*_{n²}`` by construction. Not exported.
    """
    cv = CipherVector(public_key, ciphertexts, meta)
    cv._validated = True
    return cv
