"""Paillier on the cpu backend: keys, encrypt/decrypt, homomorphic ops, typed errors.

Decryptions are checked against the textbook formula computed here with
Python's ``pow`` (``L(c^λ mod n²)·μ mod n``), not against the CRT code under test.
"""

import json
import math
import os
import stat

import gmpy2
import pytest

from hefl.errors import (
    CiphertextRangeError,
    KeyMismatchError,
    ModulusError,
    OperandRangeError,
    PrivateKeyRequired,
    SerializationError,
    VectorLengthError,
)
from hefl.paillier import (
    CipherVector,
    Paillier,
    PrivateKey,
    PublicKey,
    generate_keypair,
)


@pytest.fixture(scope="module")
def accel(cpu_pool):
    return cpu_pool


@pytest.fixture(scope="module")
def keys256():
    return generate_keypair(256)


@pytest.fixture(scope="module")
def keys2048():
    return generate_keypair(2048)


def textbook_decrypt(priv, c):
    """Paillier's own decryption with λ = lcm(p-1, q-1), μ = L(g^λ mod n²)^-1."""
    n = priv.public_key.n
    n2 = n * n
    lam = math.lcm(priv.p - 1, priv.q - 1)
    L = lambda x: (x - 1) // n  # noqa: E731
    mu = pow(L(pow(n + 1, lam, n2)), -1, n)
    return L(pow(c, lam, n2)) * mu % n


def textbook_encrypt(pub, m, r):
    return (1 + m * pub.n) * pow(r, pub.n, pub.n2) % pub.n2


@pytest.mark.parametrize("bits", [64, 256, 512, 1024, 2048])
def test_keygen_shape(bits):
    pub, priv = generate_keypair(bits)
    assert pub.bits == bits == pub.n.bit_length()
    assert priv.p.bit_length() == priv.q.bit_length() == bits // 2
    assert priv.p != priv.q and priv.p * priv.q == pub.n
    assert gmpy2.is_prime(priv.p, 50) and gmpy2.is_prime(priv.q, 50)
    assert math.gcd(pub.n, (priv.p - 1) * (priv.q - 1)) == 1
    assert pub.n2 == pub.n ** 2 and priv.public_key == pub
    assert len(pub.fingerprint) == 16 and int(pub.fingerprint, 16) >= 0


def test_keygen_fresh_and_fingerprints_differ():
    a, _ = generate_keypair(128)
    b, _ = generate_keypair(128)
    assert a.n != b.n and a.fingerprint != b.fingerprint
    assert PublicKey(a.n).fingerprint == a.fingerprint


@pytest.mark.parametrize("bits", [31, 33, 16, 0, "2048", 2048.0, True])
def test_keygen_bad_sizes(bits):
    with pytest.raises(ModulusError):
        generate_keypair(bits)


def test_public_key_rejects_bad_modulus():
    with pytest.raises(ModulusError, match="even"):
        PublicKey(1 << 100)
    with pytest.raises(ModulusError):
        PublicKey(9)


@pytest.mark.parametrize("keyname", ["keys256", "keys2048"])
def test_encrypt_decrypt_roundtrip(keyname, request, rng, accel):
    pub, priv = request.getfixturevalue(keyname)
    n = pub.n
    ms = [0, 1, 2, n - 1, n // 2] + [rng.randrange(n) for _ in range(11)]
    he = Paillier(pub, priv, accel)
    cv = he.encrypt(ms)
    assert len(cv) == len(ms) and cv.fingerprint == pub.fingerprint
    assert he.decrypt(cv) == ms
    # Independent check of a few: the textbook decryption (λ, μ) with Python's pow.
    for c, m in list(zip(cv.ciphertexts, ms))[:4]:
        assert textbook_decrypt(priv, c) == m
    # Public-key encryption (the aggregator's or another client's path).
    cv2 = Paillier(pub, accel=accel).encrypt(ms)
    assert he.decrypt(cv2) == ms
    assert cv2.ciphertexts != cv.ciphertexts          # fresh randomness


def test_crt_encryption_equals_public_encryption(keys2048, rng, accel):
    pub, priv = keys2048
    n = pub.n
    ms = [0, 1, n - 1, rng.randrange(n), rng.randrange(n)]
    rs = [1, n - 1, rng.randrange(1, n), rng.randrange(1, n), rng.randrange(1, n)]
    crt = Paillier(pub, priv, accel).encrypt(ms, randomness=rs)
    public = Paillier(pub, accel=accel).encrypt(ms, randomness=rs)
    assert crt.ciphertexts == public.ciphertexts
    assert crt.ciphertexts == [textbook_encrypt(pub, m, r) for m, r in zip(ms, rs)]


@pytest.mark.parametrize("kernel", ["gmpy2", "native"])
def test_secret_exponents_use_powmod_sec_never_powmod(monkeypatch, rng, kernel):
    # In one process (workers=1), gmpy2.powmod raises: decryption and the key
    # holder's textbook CRT encryption must still work, on the constant-time
    # power (gmpy2.powmod_sec, or the native kernel's fixed-window powm).
    from hefl.accel import native
    from hefl.accel.cpu import CpuAccelerator

    if kernel == "native" and native.kernels() is None:
        pytest.skip(f"native kernels unavailable here: {native.unavailable_reason()}")
    pub, priv = generate_keypair(256)
    ms = [0, 1, pub.n - 1] + [rng.randrange(pub.n) for _ in range(5)]
    rs = [rng.randrange(1, pub.n) for _ in ms]
    with CpuAccelerator(workers=1, native=kernel == "native") as acc:
        he = Paillier(pub, priv, acc)
        djn_cv = he.encrypt(ms)          # tables built before the patch
        calls = []

        def refuse(*a):
            raise AssertionError("variable-time gmpy2.powmod used with the private key")

        monkeypatch.setattr(gmpy2, "powmod", refuse)
        if kernel == "gmpy2":
            real_sec = gmpy2.powmod_sec

            def counting(b, e, m):
                calls.append((int(e), int(m)))
                return real_sec(b, e, m)

            monkeypatch.setattr(gmpy2, "powmod_sec", counting)
        else:
            real_powm = native.Mm52.powm

            def counting(self, bases, exps, m, exp_bits):
                # The schedule's length is the key's, never the value's.
                assert exp_bits == priv.p.bit_length()
                calls.extend((e, m) for e in ([exps] * len(bases) if isinstance(exps, int) else exps))
                return real_powm(self, bases, exps, m, exp_bits)

            monkeypatch.setattr(native.Mm52, "powm", counting)
            monkeypatch.setattr(gmpy2, "powmod_sec", refuse)
        assert he.decrypt(djn_cv) == ms
        assert sorted(set(calls)) == sorted({(priv.p - 1, priv.p2), (priv.q - 1, priv.q2)})
        assert len(calls) == 2 * len(ms)
        calls.clear()
        fresh = he.encrypt(ms, method="textbook")
        assert {e for e, _ in calls} == {priv.p, priv.q}
        explicit = he.encrypt(ms, randomness=rs)
        assert {e for e, _ in calls} == {priv.p, priv.q, priv.q_mod_pm1, priv.p_mod_qm1}
        assert he.decrypt(fresh) == ms and he.decrypt(explicit) == ms
        assert explicit.ciphertexts == [textbook_encrypt(pub, m, r) for m, r in zip(ms, rs)]
        # DJN encryption needs no exponentiation at all once the tables exist.
        calls.clear()
        assert he.decrypt(he.encrypt(ms[:2])) == ms[:2] and len(calls) == 4


def test_crt_fresh_obfuscators_are_nth_residues(keys256, accel):
    # Encryptions of 0 are bare obfuscators r^n: elements of the subgroup of
    # n-th residues, whose order divides φ(n). g = n + 1 (order n) is not one.
    pub, priv = keys256
    phi = (priv.p - 1) * (priv.q - 1)
    zeros = Paillier(pub, priv, accel).encrypt([0] * 20, method="textbook").ciphertexts
    assert len(set(zeros)) == 20
    assert all(pow(c, phi, pub.n2) == 1 for c in zeros)
    assert pow(pub.n + 1, phi, pub.n2) != 1


def test_add_aggregate_scalar(keys256, rng, accel):
    pub, priv = keys256
    n = pub.n
    he = Paillier(pub, priv, accel)
    agg = Paillier(pub, accel=accel)           # no private key: the aggregator
    length, k = 9, 5
    vecs = [[rng.randrange(n) for _ in range(length)] for _ in range(k)]
    cvs = [he.encrypt(v, meta={"scheme": "x", "client": i}) for i, v in enumerate(vecs)]
    s = agg.add(cvs[0], cvs[1])
    assert he.decrypt(s) == [(a + b) % n for a, b in zip(vecs[0], vecs[1])]
    total = agg.aggregate(cvs)
    assert he.decrypt(total) == [sum(col) % n for col in zip(*vecs)]
    # Metadata the senders agree on survives; per-sender entries do not.
    assert total.meta == {"scheme": "x"}
    assert he.decrypt(agg.aggregate(cvs[:1])) == vecs[0]
    ks = [0, 1, -1, 2, -7, 10 ** 30, -(10 ** 30), rng.randrange(-n, n), 3]
    sm = agg.scalar_mul(cvs[0], ks)
    assert he.decrypt(sm) == [kk * m % n for kk, m in zip(ks, vecs[0])]
    assert he.decrypt(agg.scalar_mul(cvs[1], -3)) == [-3 * m % n for m in vecs[1]]
    # Independent check: scalar multiple through the textbook decryption.
    assert textbook_decrypt(priv, sm.ciphertexts[4]) == -7 * vecs[0][4] % n


def test_empty_vectors(keys256, accel):
    pub, priv = keys256
    he = Paillier(pub, priv, accel)
    cv = he.encrypt([])
    assert len(cv) == 0 and he.decrypt(cv) == []
    assert he.decrypt(he.aggregate([cv, cv])) == []


def test_default_accelerator_is_cpu_and_closed(keys256):
    pub, priv = keys256
    with Paillier(pub, priv) as he:
        assert he.accel.name == "cpu"
        assert he.decrypt(he.encrypt([5])) == [5]


# --- bad input ---------------------------------------------------------------

def test_decrypt_without_private_key(keys256, accel):
    pub, _ = keys256
    he = Paillier(pub, accel=accel)
    with pytest.raises(PrivateKeyRequired, match="private key"):
        he.decrypt(he.encrypt([1]))


@pytest.mark.parametrize("bad", [-1, "n", "n+1", 1.5, "str"])
def test_plaintext_out_of_range(keys256, accel, bad):
    pub, priv = keys256
    value = {"n": pub.n, "n+1": pub.n + 1, "str": "7"}.get(bad, bad)
    with pytest.raises(OperandRangeError, match="plaintext 1"):
        Paillier(pub, priv, accel).encrypt([0, value])


def test_wrong_key(keys256, accel):
    pub, priv = keys256
    other_pub, other_priv = generate_keypair(256)
    mine = Paillier(pub, priv, accel)
    theirs = Paillier(other_pub, other_priv, accel)
    cv = theirs.encrypt([1, 2])
    with pytest.raises(KeyMismatchError, match=other_pub.fingerprint):
        mine.decrypt(cv)
    with pytest.raises(KeyMismatchError):
        mine.aggregate([mine.encrypt([1, 2]), cv])
    with pytest.raises(KeyMismatchError):
        Paillier(pub, other_priv, accel)


@pytest.mark.parametrize("what", ["zero", "negative", "n2", "above", "factor_p", "factor_q"])
def test_bad_ciphertexts(keys256, accel, what):
    pub, priv = keys256
    he = Paillier(pub, priv, accel)
    good = he.encrypt([3, 4, 5]).ciphertexts
    bad = {"zero": 0, "negative": -5, "n2": pub.n2, "above": pub.n2 + 12345,
           "factor_p": priv.p * 17, "factor_q": priv.q}[what]
    cv = CipherVector(pub, [good[0], good[1], bad])
    with pytest.raises(CiphertextRangeError, match="ciphertext 2"):
        he.validate(cv)
    with pytest.raises(CiphertextRangeError, match="ciphertext 2"):
        he.decrypt(cv)
    with pytest.raises(CiphertextRangeError):
        he.aggregate([CipherVector(pub, good), cv])
    with pytest.raises(CiphertextRangeError):
        he.scalar_mul(cv, 2)
    if not what.startswith("factor"):
        # add checks ranges only (coprimality was checked on receipt).
        with pytest.raises(CiphertextRangeError, match="ciphertext 2"):
            he.add(CipherVector(pub, good), cv)


def test_length_mismatch(keys256, accel):
    pub, priv = keys256
    he = Paillier(pub, priv, accel)
    a, b = he.encrypt([1, 2]), he.encrypt([1, 2, 3])
    with pytest.raises(VectorLengthError):
        he.add(a, b)
    with pytest.raises(VectorLengthError, match="vector 1"):
        he.aggregate([a, b])
    with pytest.raises(VectorLengthError):
        he.aggregate([])
    with pytest.raises(VectorLengthError):
        he.scalar_mul(a, [1, 2, 3])
    with pytest.raises(VectorLengthError):
        he.encrypt([1, 2], randomness=[5])
    with pytest.raises(OperandRangeError):
        he.encrypt([1], randomness=[priv.p])          # not in Z*_n


# --- key files ---------------------------------------------------------------

def test_key_files(tmp_path, keys256):
    pub, priv = keys256
    old = os.umask(0)        # even a permissive umask must not widen the private file
    try:
        priv.save(tmp_path / "private.json")
        pub.save(tmp_path / "public.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "private.json").st_mode) == 0o600
    assert PrivateKey.load(tmp_path / "private.json") == priv
    assert PublicKey.load(tmp_path / "public.json") == pub
    assert PublicKey.from_json(pub.to_json()) == pub
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    # Overwriting keeps the mode.
    priv.save(tmp_path / "private.json")
    assert stat.S_IMODE(os.stat(tmp_path / "private.json").st_mode) == 0o600


def test_key_json_tampering(keys256):
    pub, priv = keys256
    d = json.loads(priv.to_json())
    for field, value, match in [("n", format(pub.n + 2, "x"), "fingerprint"),
                                ("p", format(priv.p + 2, "x"), "p·q"),
                                ("kind", "public", "private"),
                                ("version", 99, "version"),
                                ("q", "zz", "hex")]:
        bad = dict(d, **{field: value})
        with pytest.raises(SerializationError, match=match):
            PrivateKey.from_json(json.dumps(bad))
    with pytest.raises(SerializationError):
        PublicKey.from_json("{not json")
    with pytest.raises(SerializationError):
        PublicKey.from_json(priv.to_json())        # a private key where a public one is expected
    with pytest.raises(SerializationError, match="unusable"):
        PublicKey.from_json(json.dumps(dict(json.loads(pub.to_json()), n="10", fingerprint=None)))
