"""Encrypt a Flower ArrayRecord, and decrypt an encrypted one: the client-side API.

Any Flower App can use these two functions directly, or let
:func:`hefl.flower.mod.homomorphic_mod` call them around its ClientApp::

    from hefl.flower.records import encrypt_arrays, decrypt_arrays

    # in a ClientApp's train function, after local training
    record = encrypt_arrays(ArrayRecord(model.state_dict()), num_examples=len(trainset),
                            public_key=pub, private_key=priv, server_round=rnd, node_id=nid)
    # the next round: the encrypted global the server sent back
    arrays = decrypt_arrays(msg.content["arrays"], priv)      # an ordinary ArrayRecord

The record format is defined in :mod:`hefl.flower.protocol`. Arrays of any
number, shape and float dtype (float16/32/64) are kept with their names,
shapes and dtypes (:class:`ArrayLayout`); integer arrays (a PyTorch
``num_batches_tracked`` buffer) are refused with their name, since
averaging them is not FedAvg's business; leave them out of the record.

Files: :func:`save_encrypted` / :func:`load_encrypted` store an encrypted
record (an ``.npz`` of raw bytes, read with ``allow_pickle=False``);
:func:`save_decrypted` is the key holder's one call from an encrypted
global (``Result.arrays`` or such a file) to a plaintext ``.npz`` model.
"""

import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord

from hefl.encoding import Encoder, EncodingParams
from hefl.errors import (
    EncodingError,
    FlowerConfigError,
    KeyMismatchError,
    MetadataMismatchError,
    SerializationError,
)
from hefl.flower.protocol import (
    CIPHER_DTYPE,
    CIPHER_PREFIX,
    CIPHER_STYPE,
    FORMAT,
    GLOBAL_META,
    UPDATE_META,
    EncodingSettings,
    cipher_key,
)
from hefl.paillier import CipherVector, Paillier, PrivateKey

__all__ = [
    "ArrayLayout", "EncryptedInfo", "encrypt_arrays", "decrypt_arrays", "is_encrypted",
    "read_vector", "cipher_array", "inspect_encrypted", "save_encrypted", "load_encrypted",
    "save_arrays", "load_arrays", "save_decrypted", "count_clipped", "max_vector_bytes",
]

# CipherVector header (24 bytes) and checksum (32); see hefl.paillier.serial.
_FRAME_BYTES = 24 + 32


@dataclass(frozen=True)
class ArrayLayout:
    """Names, dtypes and shapes of a model's arrays, in record order.

    Attributes
    ----------
    entries : tuple of (str, str, tuple of int)
        ``(name, dtype, shape)`` per array; dtype is a numpy float dtype name.
    """

    entries: tuple

    def __post_init__(self):
        names = set()
        for name, dtype, shape in self.entries:
            if not isinstance(name, str) or name in names:
                raise EncodingError(f"array names must be distinct strings, not {name!r}")
            names.add(name)
            try:
                kind = np.dtype(dtype).kind
            except TypeError:
                kind = None
            if kind != "f":
                raise EncodingError(
                    f"array {name!r} has dtype {dtype!r}: only float arrays are averaged "
                    f"(leave integer buffers such as a step counter out of the record)")
            if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
                raise EncodingError(f"array {name!r} has an invalid shape {shape!r}")

    @classmethod
    def of(cls, record):
        """The layout of a plaintext ArrayRecord."""
        if not isinstance(record, ArrayRecord):
            raise TypeError(f"expected an ArrayRecord, not {type(record).__name__}")
        if is_encrypted(record):
            raise EncodingError("this ArrayRecord is already encrypted")
        return cls(tuple((k, str(a.dtype), tuple(int(d) for d in a.shape))
                         for k, a in record.items()))

    @classmethod
    def from_meta(cls, value):
        """Inverse of :meth:`to_meta` (for received metadata).

        Raises
        ------
        SerializationError
            Not a list of ``[name, dtype, shape]`` triples describing float arrays.
        """
        try:
            entries = tuple((name, dtype, tuple(shape)) for name, dtype, shape in value)
            return cls(entries)
        except (TypeError, ValueError, EncodingError) as e:
            raise SerializationError(f"array layout in the metadata is malformed: {e}") from None

    def to_meta(self):
        """JSON-safe form: ``[[name, dtype, [shape...]], ...]``."""
        return [[name, dtype, list(shape)] for name, dtype, shape in self.entries]

    @property
    def size(self):
        """Number of scalar values over all arrays."""
        return int(sum(int(np.prod(shape, dtype=np.int64)) for _, _, shape in self.entries))

    def flatten(self, record):
        """The record's values as one float64 vector, in layout order.

        Raises
        ------
        EncodingError
            The record's names, dtypes or shapes differ from this layout.
        """
        got = ArrayLayout.of(record)
        if got != self:
            raise EncodingError(f"arrays {got.to_meta()} do not match the layout {self.to_meta()}")
        parts = [np.asarray(record[name].numpy(), dtype=np.float64).ravel()
                 for name, _, _ in self.entries]
        return np.concatenate(parts) if parts else np.zeros(0)

    def unflatten(self, vector):
        """An ArrayRecord with this layout's names, shapes and dtypes from ``vector``."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self.size,):
            raise EncodingError(f"{vector.size} values for a layout of {self.size}")
        out, offset = {}, 0
        for name, dtype, shape in self.entries:
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = Array(vector[offset:offset + size].reshape(shape).astype(dtype))
            offset += size
        return ArrayRecord(out)


def is_encrypted(record):
    """Whether ``record`` is an encrypted ArrayRecord (every entry a ciphertext vector)."""
    return (isinstance(record, ArrayRecord) and len(record) > 0
            and all(k.startswith(CIPHER_PREFIX) and a.stype == CIPHER_STYPE
                    for k, a in record.items()))


def count_clipped(record, alpha):
    """How many values of a plaintext record lie outside ``[-alpha, alpha]``."""
    return int(sum(np.count_nonzero(np.abs(a.numpy()) > alpha) for a in record.values()))


def cipher_array(cv):
    """The Flower Array carrying CipherVector ``cv``."""
    return Array(dtype=CIPHER_DTYPE, shape=(len(cv),), stype=CIPHER_STYPE, data=cv.to_bytes())


def read_vector(array, public_key, *, max_bytes=None):
    """Parse and validate the CipherVector of one encrypted entry.

    Parameters
    ----------
    array : flwr.app.Array
    public_key : PublicKey
        The receiver's key; the vector must be made under it.
    max_bytes : int, optional
        Refuse larger data before parsing it.

    Raises
    ------
    SerializationError
        Not a ciphertext entry, too large, or bytes that do not parse
        (truncated, checksum, metadata).
    CiphertextError
        Made under another key, or a ciphertext out of range.
    """
    if getattr(array, "stype", None) != CIPHER_STYPE or array.dtype != CIPHER_DTYPE:
        raise SerializationError(
            f"entry is not a ciphertext vector (stype {getattr(array, 'stype', None)!r}, "
            f"dtype {getattr(array, 'dtype', None)!r})")
    data = array.data
    if not isinstance(data, bytes):
        raise SerializationError(f"ciphertext entry holds {type(data).__name__}, not bytes")
    if max_bytes is not None and len(data) > max_bytes:
        raise SerializationError(f"ciphertext entry of {len(data)} bytes exceeds the "
                                 f"{max_bytes} this vector can take (oversized metadata?)")
    cv = CipherVector.from_bytes(data, public_key)
    if tuple(array.shape) != (len(cv),):
        raise SerializationError(f"entry shape {tuple(array.shape)} does not match its "
                                 f"{len(cv)} ciphertexts")
    return cv


def max_vector_bytes(public_key, count, meta_bytes):
    """Largest ``CipherVector.to_bytes()`` of ``count`` ciphertexts and ``meta_bytes`` metadata."""
    return _FRAME_BYTES + int(meta_bytes) + count * public_key.ciphertext_bytes


def _positive_int(name, value, limit=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise EncodingError(f"{name} must be a positive integer, not {value!r}")
    if limit is not None and value > limit:
        raise EncodingError(f"{name} is {value}; one vector carries at most {limit} "
                            f"(2**guard-bits): raise hefl-guard-bits")
    return int(value)


def encrypt_arrays(arrays, num_examples, public_key, *, private_key=None,
                   settings=EncodingSettings(), accel=None, server_round=0, node_id=0):
    """Encrypt a plaintext ArrayRecord, weighted by ``num_examples``.

    Parameters
    ----------
    arrays : flwr.app.ArrayRecord
        Float arrays of any number and shape.
    num_examples : int
        ``n_k``, the weight of this client in FedAvg (the same count the
        reply's MetricRecord sends as ``num-examples``).
    public_key : PublicKey
    private_key : PrivateKey, optional
        When given, encryption uses the CRT (faster); a client has it anyway.
    settings : EncodingSettings
        Clipping bound and bit widths (the run's ``hefl-*`` settings).
    accel : hefl.accel.Accelerator, optional
        Backend for the encryption (default: a cpu accelerator for this call).
    server_round, node_id : int
        Written into the metadata; the server checks both.

    Returns
    -------
    flwr.app.ArrayRecord
        The encrypted record (one entry, :mod:`hefl.flower.protocol`).

    Raises
    ------
    NonFiniteUpdateError
        A value is NaN or infinite; nothing is encrypted.
    EncodingError
        Non-float arrays, or ``num_examples`` not in ``1 … 2**guard_bits``.
    """
    layout = ArrayLayout.of(arrays)
    encoder = settings.encoder(public_key)
    n = _positive_int("num-examples", num_examples, encoder.max_summands)
    # Each slot becomes n·(q + Q): n summands of the encoder, so the product
    # of the clients' vectors decodes with summands = Σ n_k (module docstring).
    plaintexts = [n * m for m in encoder.encode(layout.flatten(arrays))]
    meta = {"format": FORMAT, "encoding": encoder.params.to_dict(), "layout": layout.to_meta(),
            "length": layout.size, "round": int(server_round), "node": int(node_id),
            "examples": n}
    with Paillier(public_key, private_key, accel) as he:
        cv = he.encrypt(plaintexts, meta=meta)
    return ArrayRecord({cipher_key(0): cipher_array(cv)})


@dataclass(frozen=True)
class EncryptedInfo:
    """What the (public) metadata of an encrypted record says.

    Attributes
    ----------
    vectors : list of CipherVector
        One per group, validated under the key.
    layout : ArrayLayout
    encoding : EncodingParams
    round : int
    examples : list of int
        Summands (``Σ n_k``) of each group.
    total_examples : int
        The divisor of the FedAvg mean.
    clients : int
        Client vectors multiplied into the record (1 for an update).
    """

    vectors: list
    layout: ArrayLayout
    encoding: EncodingParams
    round: int
    examples: list
    total_examples: int
    clients: int

    @property
    def encoder(self):
        """An :class:`~hefl.encoding.Encoder` for these parameters."""
        return Encoder.from_params(self.encoding)

    def error_bound(self):
        """Largest |decrypted mean − mean of the clipped client arrays| per value."""
        enc = self.encoder
        return float(sum(enc.quantisation_bound(k) for k in self.examples)) / self.total_examples


def _int(meta, key):
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise MetadataMismatchError(f"metadata {key!r} must be an integer, not {v!r}")
    return v


def inspect_encrypted(record, public_key):
    """Parse and check an encrypted record with the public key only.

    Raises
    ------
    SerializationError, CiphertextError
        Not an encrypted record, unparseable vectors, or metadata that is
        inconsistent (groups missing, counts that do not add up).
    """
    if not is_encrypted(record):
        what = list(record.keys()) if isinstance(record, ArrayRecord) else type(record).__name__
        raise SerializationError(f"not an encrypted ArrayRecord ({what})")
    keys = sorted(record.keys(), key=lambda k: (len(k), k))
    if keys != [cipher_key(i) for i in range(len(keys))]:
        raise SerializationError(f"encrypted record entries {keys} are not "
                                 f"{CIPHER_PREFIX}0 … {CIPHER_PREFIX}{len(keys) - 1}")
    vectors = [read_vector(record[k], public_key) for k in keys]
    metas = [cv.meta for cv in vectors]
    first = metas[0]
    for m in metas:
        if m.get("format") != FORMAT:
            raise SerializationError(f"vector format {m.get('format')!r}, this hefl reads "
                                     f"{FORMAT!r}")
        for key in ("encoding", "layout", "length", "round"):
            if m.get(key) != first.get(key):
                raise MetadataMismatchError(f"the vectors of one record disagree on {key!r}")
    if set(first) == UPDATE_META and len(vectors) == 1:
        examples, total, clients = [_int(first, "examples")], _int(first, "examples"), 1
    elif all(set(m) == GLOBAL_META for m in metas):
        examples = [_int(m, "examples") for m in metas]
        total, clients = _int(first, "total-examples"), sum(_int(m, "clients") for m in metas)
        for i, m in enumerate(metas):
            if _int(m, "group") != i or _int(m, "groups") != len(vectors):
                raise MetadataMismatchError(f"group {i} of {len(vectors)} is labelled "
                                            f"{m.get('group')!r} of {m.get('groups')!r}")
            if _int(m, "total-examples") != total:
                raise MetadataMismatchError("the groups disagree on the total example count")
        if sum(examples) != total:
            raise MetadataMismatchError(f"group counts {examples} do not add up to {total}")
    else:
        raise MetadataMismatchError(f"unexpected vector metadata keys {sorted(first)}")
    layout = ArrayLayout.from_meta(first["layout"])
    if _int(first, "length") != layout.size:
        raise MetadataMismatchError(f"length {first['length']} does not match the layout "
                                    f"({layout.size} values)")
    encoding = EncodingParams.from_dict(first["encoding"])
    return EncryptedInfo(vectors=vectors, layout=layout, encoding=encoding,
                         round=_int(first, "round"), examples=examples,
                         total_examples=total, clients=clients)


def decrypt_arrays(record, private_key, *, accel=None, settings=None):
    """Decrypt an encrypted ArrayRecord into the sample-weighted mean it holds.

    Parameters
    ----------
    record : flwr.app.ArrayRecord
        An encrypted global (or a single client's update).
    private_key : PrivateKey
    accel : hefl.accel.Accelerator, optional
        Backend for the decryption (default: a cpu accelerator for this call).
    settings : EncodingSettings, optional
        When given, the record must use exactly these settings.

    Returns
    -------
    flwr.app.ArrayRecord
        Plaintext arrays with the original names, shapes and dtypes:
        ``Σ n_k·θ_k / Σ n_k`` of the clipped client arrays, within
        :meth:`EncryptedInfo.error_bound` per value.

    Raises
    ------
    SerializationError, CiphertextError
        See :func:`inspect_encrypted`.
    PackingOverflowError
        A decrypted slot is out of range (garbled data or a wrong count).
    """
    if not isinstance(private_key, PrivateKey):
        raise TypeError(f"private_key must be a PrivateKey, not {type(private_key).__name__}")
    info = inspect_encrypted(record, private_key.public_key)
    encoder = info.encoder
    if settings is not None and settings.encoder(private_key.public_key).params != info.encoding:
        raise MetadataMismatchError(f"the record was encoded with {info.encoding}, this run "
                                    f"uses {settings}")
    total = np.zeros(info.layout.size)
    with Paillier(private_key.public_key, private_key, accel) as he:
        for cv, summands in zip(info.vectors, info.examples):
            total += encoder.decode(he.decrypt(cv), info.layout.size, summands,
                                    modulus=private_key.public_key.n)
    return info.layout.unflatten(total / info.total_examples)


# --- files -------------------------------------------------------------------

def save_encrypted(path, record):
    """Write an encrypted record to ``path`` (``.npz`` of raw vector bytes); returns the path."""
    if not is_encrypted(record):
        raise SerializationError("save_encrypted takes an encrypted ArrayRecord")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **{k: np.frombuffer(a.data, dtype=np.uint8) for k, a in record.items()})
    return path


def load_encrypted(path):
    """Read a file of :func:`save_encrypted` back into an encrypted ArrayRecord.

    Only the container is read here; the vectors are validated when
    decrypted or inspected with a key.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            out = {}
            for k in z.files:
                data = z[k].tobytes()
                count = _peek_count(data)
                out[k] = Array(dtype=CIPHER_DTYPE, shape=(count,), stype=CIPHER_STYPE, data=data)
    except (OSError, ValueError) as e:
        raise SerializationError(f"{path}: not an encrypted record file: {e}") from None
    return ArrayRecord(out)


def _peek_count(data):
    # The ciphertext count sits at bytes 16..20 of the CipherVector header.
    if len(data) < _FRAME_BYTES:
        raise SerializationError("ciphertext vector truncated")
    return int.from_bytes(data[16:20], "big")


def save_arrays(path, record):
    """Write a plaintext ArrayRecord as ``.npz`` (one array per name, dtype kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **{k: a.numpy() for k, a in record.items()})
    return path


def load_arrays(path):
    """Read a file of :func:`save_arrays` back into an ArrayRecord (order kept)."""
    with np.load(Path(path), allow_pickle=False) as z:
        return ArrayRecord({k: Array(z[k]) for k in z.files})


def save_decrypted(encrypted, keys, path, *, accel=None):
    """Decrypt an encrypted global and save the plaintext model: one call for a key holder.

    Parameters
    ----------
    encrypted : flwr.app.ArrayRecord or str or Path
        ``Result.arrays`` of a :class:`~hefl.flower.strategy.HomomorphicFedAvg`
        run, or a file written by :func:`save_encrypted`.
    keys : PrivateKey or str or Path
        The private key, or a key directory (``public.json`` + ``private.json``).
    path : str or Path
        Where to write the model (``.npz``, :func:`save_arrays`).

    Returns
    -------
    flwr.app.ArrayRecord
        The decrypted model (also written to ``path``).
    """
    from hefl.flower.keys import load_keypair
    record = encrypted if isinstance(encrypted, ArrayRecord) else load_encrypted(encrypted)
    if isinstance(keys, PrivateKey):
        private_key = keys
    elif isinstance(keys, (str, Path)):
        _, private_key = load_keypair(keys)
    else:
        raise FlowerConfigError(f"keys must be a PrivateKey or a key directory, not {keys!r}")
    try:
        arrays = decrypt_arrays(record, private_key, accel=accel)
    except KeyMismatchError as e:
        raise KeyMismatchError(f"the encrypted model was made under another key: {e}") from None
    save_arrays(path, arrays)
    return arrays

