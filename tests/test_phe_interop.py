"""Interoperability with python-paillier (``phe``): same scheme, same key, same ciphertexts."""

import phe
import pytest

from hefl.paillier import METHODS, CipherVector, Paillier, generate_keypair


@pytest.fixture(scope="module")
def accel(cpu_serial):
    return cpu_serial


@pytest.fixture(scope="module", params=[512, 2048], ids=lambda b: f"{b}bit")
def keys(request):
    pub, priv = generate_keypair(request.param)
    phe_pub = phe.PaillierPublicKey(pub.n)
    phe_priv = phe.PaillierPrivateKey(phe_pub, priv.p, priv.q)
    return pub, priv, phe_pub, phe_priv


def test_phe_decrypts_hefl(keys, accel, rng):
    pub, priv, phe_pub, phe_priv = keys
    ms = [0, 1, pub.n - 1] + [rng.randrange(pub.n) for _ in range(5)]
    for he in (Paillier(pub, priv, accel), Paillier(pub, accel=accel)):   # CRT and public encryption
        for method in METHODS:                                             # DJN fixed-base and r^n
            cv = he.encrypt(ms, method=method)
            assert [phe_priv.raw_decrypt(c) for c in cv.ciphertexts] == ms
    # Through phe's signed encoding too: small ints, and a negative scalar multiple.
    he = Paillier(pub, priv, accel)
    small = [5, 123456789, 0]
    cv = he.encrypt(small)
    neg = he.scalar_mul(cv, -1)
    assert [phe_priv.decrypt(phe.EncryptedNumber(phe_pub, c, 0)) for c in cv.ciphertexts] == small
    assert [phe_priv.decrypt(phe.EncryptedNumber(phe_pub, c, 0)) for c in neg.ciphertexts] == [-5, -123456789, 0]


def test_hefl_decrypts_phe(keys, accel, rng):
    pub, priv, phe_pub, _ = keys
    he = Paillier(pub, priv, accel)
    ms = [0, 1, pub.n - 1] + [rng.randrange(pub.n) for _ in range(5)]
    cts = [phe_pub.raw_encrypt(m) for m in ms]
    assert he.decrypt(CipherVector(pub, cts)) == ms
    # phe's signed encoding of negative ints is n - |m|: hefl sees the same residue.
    enc = [phe_pub.encrypt(v) for v in (-3, 42)]
    assert he.decrypt(CipherVector(pub, [e.ciphertext() for e in enc])) == [pub.n - 3, 42]


def test_same_randomness_same_ciphertext(keys, accel, rng):
    pub, priv, phe_pub, _ = keys
    ms = [rng.randrange(pub.n) for _ in range(4)]
    rs = [rng.randrange(1, pub.n) for _ in range(4)]
    ours = Paillier(pub, priv, accel).encrypt(ms, randomness=rs).ciphertexts
    assert ours == [phe_pub.raw_encrypt(m, r_value=r) for m, r in zip(ms, rs)]


def test_sums_agree(keys, accel, rng):
    pub, priv, phe_pub, phe_priv = keys
    he = Paillier(pub, priv, accel)
    k, length = 3, 6
    vals = [[rng.randrange(-10 ** 6, 10 ** 6) for _ in range(length)] for _ in range(k)]
    # Clients split between the two libraries; both aggregate; both decrypt.
    phe_vecs = [[phe_pub.encrypt(v) for v in row] for row in vals[:2]]
    hefl_vec = he.encrypt([v % pub.n for v in vals[2]])
    cvs = [CipherVector(pub, [e.ciphertext() for e in row]) for row in phe_vecs] + [hefl_vec]
    ours = he.aggregate(cvs)
    theirs = [sum((row[i] for row in phe_vecs[1:]), phe_vecs[0][i])
              + phe.EncryptedNumber(phe_pub, hefl_vec.ciphertexts[i], 0) for i in range(length)]
    expect = [sum(col) for col in zip(*vals)]
    # The homomorphic sum is a deterministic product: bit-identical ciphertexts.
    assert ours.ciphertexts == [e.ciphertext(be_secure=False) for e in theirs]
    assert [phe_priv.decrypt(e) for e in theirs] == expect
    assert [phe_priv.decrypt(phe.EncryptedNumber(phe_pub, c, 0)) for c in ours.ciphertexts] == expect
    assert he.decrypt(ours) == [v % pub.n for v in expect]
