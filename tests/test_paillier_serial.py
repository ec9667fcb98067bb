"""Binary ciphertext vectors: round trip, layout, and every way a received one can be bad."""

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hefl.accel.cpu import CpuAccelerator
from hefl.errors import CiphertextRangeError, KeyMismatchError, SerializationError
from hefl.paillier import CipherVector, Paillier, generate_keypair
from hefl.paillier.serial import MAGIC

KEY = generate_keypair(256)
OTHER = generate_keypair(256)
META = {"scheme": "offset-binary/1", "value_bits": 16, "alpha": 0.5, "client": 3}


@pytest.fixture(scope="module")
def he():
    acc = CpuAccelerator(workers=1)
    yield Paillier(*KEY, acc)
    acc.close()


@pytest.fixture(scope="module")
def blob(he):
    cv = he.encrypt([0, 1, 2, 3, KEY[0].n - 1], meta=META)
    return cv, cv.to_bytes()


def _reseal(data):
    """Recompute the checksum, as a forger (or a buggy sender) would."""
    body = data[:-32]
    return body + hashlib.sha256(body).digest()


def test_roundtrip_and_layout(he, blob):
    cv, data = blob
    pub = KEY[0]
    back = CipherVector.from_bytes(data, pub)
    assert back == cv and back.meta == META and he.decrypt(back) == [0, 1, 2, 3, pub.n - 1]
    width = (2 * pub.bits + 7) // 8
    assert pub.ciphertext_bytes == width == 64
    magic, version, flags, fp, bits, count, meta_len = struct.unpack_from(">4sBB8sHII", data)
    assert (magic, version, flags, bits, count) == (MAGIC, 1, 0, 256, 5)
    assert fp.hex() == pub.fingerprint
    assert len(data) == 24 + meta_len + count * width + 32
    # Fixed-width big-endian ciphertexts right after the metadata.
    first = data[24 + meta_len:24 + meta_len + width]
    assert int.from_bytes(first, "big") == cv.ciphertexts[0]
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_empty_vector_and_numpy_meta(he):
    cv = he.encrypt([], meta={"shape": np.array([2, 3]), "alpha": np.float32(0.25), "n": np.int64(7)})
    back = CipherVector.from_bytes(cv.to_bytes(), KEY[0])
    assert len(back) == 0 and back.meta == {"shape": [2, 3], "alpha": 0.25, "n": 7}


@pytest.mark.parametrize("cut", [0, 1, 10, 23, 24, 60, -33, -32, -1])
def test_truncated(blob, cut):
    _, data = blob
    with pytest.raises(SerializationError, match="truncated|checksum"):
        CipherVector.from_bytes(data[:cut] if cut else b"", KEY[0])


def test_trailing_bytes(blob):
    with pytest.raises(SerializationError, match="trailing"):
        CipherVector.from_bytes(blob[1] + b"\0", KEY[0])


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_is_caught(blob, pos, bit):
    _, data = blob
    garbled = bytearray(data)
    garbled[pos % len(data)] ^= 1 << bit
    with pytest.raises(SerializationError):
        CipherVector.from_bytes(bytes(garbled), KEY[0])


def test_wrong_key(he):
    data = Paillier(*OTHER, he.accel).encrypt([1, 2]).to_bytes()
    with pytest.raises(KeyMismatchError, match=OTHER[0].fingerprint):
        CipherVector.from_bytes(data, KEY[0])


@pytest.mark.parametrize("what", ["zero", "n2", "max", "factor"])
def test_forged_values_are_range_checked(he, what):
    pub, priv = KEY
    bad = {"zero": 0, "n2": pub.n2, "max": (1 << (8 * pub.ciphertext_bytes)) - 1,
           "factor": priv.q * 3}[what]
    good = he.encrypt([7, 8]).ciphertexts
    # A well-formed frame (valid checksum) carrying an unusable ciphertext at index 1.
    data = CipherVector(pub, [good[0], bad, good[1]]).to_bytes()
    with pytest.raises(CiphertextRangeError, match="ciphertext 1"):
        CipherVector.from_bytes(data, pub)
    assert len(CipherVector.from_bytes(data, pub, validate=False)) == 3


@pytest.mark.parametrize("field,value,match", [
    (slice(0, 4), b"XXXX", "magic"),
    (slice(4, 5), b"\x02", "version"),
    (slice(5, 6), b"\x01", "flags"),
])
def test_header_fields(blob, field, value, match):
    data = bytearray(blob[1])
    data[field] = value
    with pytest.raises(SerializationError, match=match):
        CipherVector.from_bytes(_reseal(bytes(data)), KEY[0])


def test_bad_metadata(blob, he):
    cv, data = blob
    meta_len = struct.unpack_from(">I", data, 20)[0]
    # Same length, not JSON: resealed so only the metadata check can catch it.
    bad = data[:24] + b"\xff" * meta_len + data[24 + meta_len:]
    with pytest.raises(SerializationError, match="metadata"):
        CipherVector.from_bytes(_reseal(bad), KEY[0])
    arr = b"[1]" + b" " * (meta_len - 3)
    with pytest.raises(SerializationError, match="object"):
        CipherVector.from_bytes(_reseal(data[:24] + arr + data[24 + meta_len:]), KEY[0])
    with pytest.raises(SerializationError, match="JSON"):
        CipherVector(KEY[0], cv.ciphertexts, {"x": object()}).to_bytes()
    with pytest.raises(SerializationError):
        CipherVector(KEY[0], cv.ciphertexts, {"x": float("nan")}).to_bytes()
    with pytest.raises(SerializationError, match="bytes"):
        CipherVector.from_bytes(12345, KEY[0])


def test_unsendable_ciphertext():
    with pytest.raises(SerializationError):
        CipherVector(KEY[0], [-1]).to_bytes()


def test_validated_once_on_the_receiving_path(he, blob, monkeypatch):
    """from_bytes checks the values; aggregate and decrypt of its vectors check them no more."""
    import hefl.paillier.serial as serial
    calls = []
    real = serial.check_ciphertexts

    def counting(*a, **kw):
        calls.append(len(a[1]))
        return real(*a, **kw)

    monkeypatch.setattr(serial, "check_ciphertexts", counting)
    cv, data = blob
    received = [CipherVector.from_bytes(data, KEY[0]) for _ in range(3)]
    assert calls == [len(cv)] * 3 and all(r.validated for r in received)
    total = he.aggregate(received)
    assert total.validated and he.decrypt(total) == [3 * m % KEY[0].n for m in [0, 1, 2, 3, KEY[0].n - 1]]
    assert he.decrypt(received[0][1:3]) == [1, 2]          # a slice keeps the mark
    assert calls == [len(cv)] * 3                          # nothing checked twice
    # Opting out on receipt (or building one from ints) leaves the vector unvalidated:
    # the first operation checks it, once.
    raw = CipherVector.from_bytes(data, KEY[0], validate=False)
    assert not raw.validated and not CipherVector(KEY[0], cv.ciphertexts).validated
    he.decrypt(raw)
    he.decrypt(raw)
    assert calls == [len(cv)] * 4 and raw.validated


def test_validated_vector_still_checked_for_its_key(he, blob):
    theirs = Paillier(*OTHER)                             # owns (and closes) its cpu backend
    foreign = theirs.encrypt([1, 2])
    assert foreign.validated                              # under its own key
    with pytest.raises(KeyMismatchError, match=OTHER[0].fingerprint):
        he.aggregate([blob[0], foreign])
    with pytest.raises(KeyMismatchError):
        he.decrypt(foreign)
    theirs.close()
