"""Every malformed vector, key file or encoding parameter set: its typed error, nothing else."""

import hashlib
import json
import struct

import pytest

from hefl import safejson
from hefl.encoding import MAX_PLAINTEXT_BITS, Encoder, EncodingParams
from hefl.errors import CiphertextRangeError, HeflError, SerializationError
from hefl.paillier import CipherVector, Paillier, generate_keypair
from hefl.paillier.keys import MAX_KEY_FILE_BYTES, PrivateKey, PublicKey
from hefl.paillier.serial import MAX_META_BYTES

KEY = generate_keypair(256)
PLAIN = generate_keypair(256, djn=False)


@pytest.fixture(scope="module")
def he():
    with Paillier(*KEY) as he:
        yield he


@pytest.fixture(scope="module")
def vector(he):
    return he.encrypt([1, 2, 3], meta={"length": 3, "encoding": {"alpha": 0.5}})


def _with_meta(vector, meta_bytes, meta_len=None):
    """The vector's frame with other metadata bytes, checksum recomputed (as a forger would)."""
    data = vector.to_bytes()
    old = struct.unpack_from(">I", data, 20)[0]
    head = data[:20] + struct.pack(">I", len(meta_bytes) if meta_len is None else meta_len)
    body = head + meta_bytes + data[24 + old:-32]
    return body + hashlib.sha256(body).digest()


# --- strict JSON --------------------------------------------------------------------

@pytest.mark.parametrize("text,words", [
    ("[" * 100_000 + "]" * 100_000, "nesting"),
    ("[" * 33 + "]" * 33, "nesting deeper than 32"),
    ('{"a": ' + "9" * 5000 + "}", "integer of 5000 digits"),
    ('{"a": ' + "9" * 41 + "}", "digits"),
    ('{"a": NaN}', "NaN"),
    ('{"a": -Infinity}', "Infinity"),
    ('{"a": 1e999}', "not finite"),
    ('{"a": 1, "a": 2}', "twice"),
    ('{"a": "\\ud800"}', "surrogate"),
    ("{not json", "not valid JSON"),
])
def test_safejson_refusals(text, words):
    with pytest.raises(SerializationError, match=words):
        safejson.loads(text, what="x", max_bytes=1 << 20)


def test_safejson_bytes_size_and_types():
    assert safejson.loads(b'{"a": [1, 2.5, "\xc3\xa9"]}', what="x", max_bytes=100) == {"a": [1, 2.5, "é"]}
    assert safejson.loads('{"a": ' + "9" * 40 + "}", what="x", max_bytes=100) == {"a": int("9" * 40)}
    with pytest.raises(SerializationError, match="not UTF-8"):
        safejson.loads(b'{"a": "\xff"}', what="x", max_bytes=100)
    with pytest.raises(SerializationError, match="at most 10"):
        safejson.loads(b"[" + b" " * 20 + b"]", what="x", max_bytes=10)
    with pytest.raises(SerializationError, match="JSON text or bytes"):
        safejson.loads(12, what="x", max_bytes=10)


# --- ciphertext vectors -------------------------------------------------------------

@pytest.mark.parametrize("meta,words", [
    (b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", "nesting"),
    (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", "nesting"),
    (b'{"a":' + b"9" * 5000 + b"}", "digits"),
    (b'{"a":NaN}', "NaN"),
    (b'{"a":Infinity}', "Infinity"),
    (b'{"a":1e999}', "finite"),
    (b'{"a":"\xff"}', "UTF-8"),
    (b'{"a":1,"a":1}', "twice"),
    (b'{"a": 1}', "canonical"),
    (b'{"b":1,"a":1}', "canonical"),
    (b'{"a":1.50}', "canonical"),
    (b'{"a":"\xc3\xa9"}', "canonical"),        # é must be written \u00e9
    (b"[1]", "object"),
])
def test_vector_metadata_refusals(vector, meta, words):
    with pytest.raises(SerializationError, match=words):
        CipherVector.from_bytes(_with_meta(vector, meta), KEY[0])


def test_canonical_metadata_is_accepted(vector):
    data = _with_meta(vector, b'{"a":[1,2.5,"\\u00e9"],"b":{"c":null}}')
    assert CipherVector.from_bytes(data, KEY[0]).meta == {"a": [1, 2.5, "é"], "b": {"c": None}}


def test_metadata_limit_enforced_on_reading(vector):
    # The header claims more metadata than the limit: refused before anything is parsed.
    data = _with_meta(vector, b"{}", meta_len=MAX_META_BYTES + 1)
    with pytest.raises(SerializationError, match="limit"):
        CipherVector.from_bytes(data, KEY[0])
    big = b'{"a":"' + b"x" * MAX_META_BYTES + b'"}'
    with pytest.raises(SerializationError, match="limit"):
        CipherVector.from_bytes(_with_meta(vector, big), KEY[0])


def test_count_bounded_by_the_bytes(vector):
    data = bytearray(vector.to_bytes())
    struct.pack_into(">I", data, 16, 0xFFFF_FFFF)     # claims 4 billion ciphertexts
    body = bytes(data[:-32])
    with pytest.raises(SerializationError, match="truncated"):
        CipherVector.from_bytes(body + hashlib.sha256(body).digest(), KEY[0])


def test_writer_refuses_what_a_reader_would(he):
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    for meta in (deep, {"a": 10 ** 50}, {"a": "\ud800"}):
        with pytest.raises(SerializationError):
            he.encrypt([1], meta=meta).to_bytes()


@pytest.mark.parametrize("bad", [3.9, "5", True, None, b"\x01"])
def test_ciphertexts_must_be_integers(bad):
    with pytest.raises(CiphertextRangeError, match="ciphertext 1 is a"):
        CipherVector(KEY[0], [5, bad])


# --- key files ----------------------------------------------------------------------

def _edited(key, edit):
    d = json.loads(key.to_json())
    edit(d)
    return json.dumps(d)


@pytest.mark.parametrize("edit,words", [
    (lambda d: d.update(version=True), "version"),
    (lambda d: d.update(version=2.0), "version"),
    (lambda d: d.update(version="2"), "version"),
    (lambda d: d.update(bits=d["bits"] + 2), "bits"),
    (lambda d: d.update(bits=float(d["bits"])), "bits"),
    (lambda d: d.pop("bits"), "missing \\[bits\\]"),
    (lambda d: d.pop("fingerprint"), "missing \\[fingerprint\\]"),
    (lambda d: d.update(fingerprint=None), "fingerprint"),
    (lambda d: d.pop("djn_fingerprint"), "missing \\[djn_fingerprint\\]"),
    (lambda d: d.update(extra=1), "unexpected \\[extra\\]"),
    (lambda d: d.update(p="ab"), "unexpected \\[p\\]"),
    (lambda d: d.update(n=d["n"].upper()), "lowercase hex"),
    (lambda d: d.update(n="0" + d["n"]), "lowercase hex"),
    (lambda d: d.update(n="0x" + d["n"]), "lowercase hex"),
    (lambda d: d.update(n=" " + d["n"]), "lowercase hex"),
    (lambda d: d.update(n="f" * 5000), "hex digits"),
    (lambda d: d.update(n=12345), "hex string"),
    (lambda d: d.update(h_s=format(int(d["h_s"], 16) ** 2 % (int(d["n"], 16) ** 2), "x")),
     "djn_fingerprint"),
])
def test_public_key_refusals(edit, words):
    with pytest.raises(SerializationError, match=words):
        PublicKey.from_json(_edited(KEY[0], edit))


def test_altered_n_without_fingerprint_is_refused():
    pub = PLAIN[0]
    other = generate_keypair(256, djn=False)[0]
    text = _edited(pub, lambda d: (d.update(n=format(other.n, "x")), d.pop("fingerprint")))
    with pytest.raises(SerializationError, match="fingerprint"):
        PublicKey.from_json(text)


@pytest.mark.parametrize("text", [
    b'{"format": "hefl-paillier", "kind": "public", "n": "\xff"}',
    "[" * 100_000,
    '{"format": "hefl-paillier", "kind": "public", "version": ' + "9" * 5000 + "}",
    '{"format": "hefl-paillier", "kind": "public", "version": NaN}',
    '{"format": "hefl-paillier", "kind": "public", "version": 1e999}',
    " " * (MAX_KEY_FILE_BYTES + 1),
    b"\x00" * 64,
])
def test_key_text_refusals(text):
    for cls in (PublicKey, PrivateKey):
        with pytest.raises(SerializationError):
            cls.from_json(text)


def test_key_files_as_bytes_and_both_versions():
    for pub, priv in (KEY, PLAIN):
        assert PublicKey.from_json(pub.to_json().encode()) == pub
        back = PrivateKey.from_json(priv.to_json().encode())
        assert back == priv and back.public_key.h_s == pub.h_s
    d = json.loads(KEY[0].to_json())
    assert d["version"] == 2 and d["djn_fingerprint"] == KEY[0].djn_fingerprint
    assert "djn_fingerprint" not in json.loads(PLAIN[0].to_json())


def test_private_key_refusals():
    pub, priv = KEY
    for edit, words in [
        (lambda d: d.update(djn_fingerprint="0" * 16), "djn_fingerprint"),
        (lambda d: d.pop("p"), "missing \\[p\\]"),
        (lambda d: d.update(p=d["q"]), "p·q"),
        (lambda d: d.update(bits=True), "bits"),
    ]:
        with pytest.raises(SerializationError, match=words):
            PrivateKey.from_json(_edited(priv, edit))


def test_key_objects_refuse_non_integers():
    with pytest.raises(HeflError):
        PublicKey(float(KEY[0].n))
    with pytest.raises(HeflError):
        PublicKey(str(KEY[0].n))


# --- encoding parameters --------------------------------------------------------------

def _params(kw):
    d = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4).params.to_dict()
    d.update(kw)
    return d


@pytest.mark.parametrize("kw,words", [
    (dict(slots=10 ** 28, plaintext_bits=20 * 10 ** 28), "Plaintext bits must be between"),
    (dict(slots=10 ** 28), "Slots must be between"),
    (dict(plaintext_bits=MAX_PLAINTEXT_BITS + 1, slots=(MAX_PLAINTEXT_BITS + 1) // 20), "Plaintext bits"),
    (dict(plaintext_bits=-(10 ** 5000)), "Plaintext bits"),
    (dict(alpha=10 ** 400), "alpha"),
    (dict(alpha=5e-324), "alpha"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(alpha="1.0"), "alpha"),
    (dict(value_bits=True), "Value bits"),
    (dict(value_bits=16.0), "Value bits"),
    (dict(guard_bits=[4]), "Guard bits"),
    (dict(scheme=["offset-binary/1"]), "scheme"),
    ({7: 1}, "unexpected \\[7\\]"),
])
def test_encoding_parameter_refusals(kw, words):
    with pytest.raises(SerializationError, match=words):
        EncodingParams.from_dict(_params(kw))


def test_encoding_parameters_within_bounds_still_read():
    p = Encoder(plaintext_bits=MAX_PLAINTEXT_BITS, alpha=2, value_bits=16, guard_bits=4).params
    back = EncodingParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p and isinstance(back.alpha, float)
