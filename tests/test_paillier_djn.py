"""Short-exponent fixed-base (DJN) encryption: correctness, interoperability, α, tables, fallbacks.

The expected ciphertexts are computed here from the formula with Python's
``pow`` (``(1 + m·n)·h_s^α mod n²``), not with the table code under test.
"""

import math
import warnings

import gmpy2
import phe
import pytest

from hefl.errors import KeyMismatchError, ModulusError, OperandRangeError, VectorLengthError
from hefl.paillier import (
    CipherVector,
    EncryptionTables,
    Paillier,
    PrivateKey,
    PublicKey,
    TextbookFallbackWarning,
    generate_keypair,
    tables_for,
)
from hefl.paillier import djn


@pytest.fixture(scope="module")
def accel(cpu_pool):
    return cpu_pool


@pytest.fixture(scope="module")
def serial(cpu_serial):
    return cpu_serial


@pytest.fixture(scope="module", params=[256, 1024], ids=lambda b: f"{b}bit")
def keys(request):
    return generate_keypair(request.param)


def djn_formula(pub, m, alpha):
    return (1 + m * pub.n) * pow(pub.h_s, alpha, pub.n2) % pub.n2


def _phe_keys(pub, priv):
    phe_pub = phe.PaillierPublicKey(pub.n)
    return phe_pub, phe.PaillierPrivateKey(phe_pub, priv.p, priv.q)


def test_default_method_is_djn_and_matches_the_formula(keys, accel, rng):
    pub, priv = keys
    n = pub.n
    ms = [0, 1, n - 1] + [rng.randrange(n) for _ in range(9)]
    bits = djn.exponent_bits(pub.bits)
    alphas = [0, (1 << bits) - 1, 1] + [rng.getrandbits(bits) for _ in range(9)]
    holder, public = Paillier(pub, priv, accel), Paillier(pub, accel=accel)
    assert holder.method == public.method == "djn"
    expect = [djn_formula(pub, m, a) for m, a in zip(ms, alphas)]
    # The key holder's CRT product mod p², q² is the public product mod n², bit for bit.
    assert public.encrypt(ms, alphas=alphas).ciphertexts == expect
    assert holder.encrypt(ms, alphas=alphas).ciphertexts == expect
    assert holder.decrypt(holder.encrypt(ms)) == ms
    assert holder.decrypt(public.encrypt(ms)) == ms


def test_holder_equals_public_on_the_pool_and_in_process(keys, accel, serial, rng):
    pub, priv = keys
    ms = [rng.randrange(pub.n) for _ in range(40)]
    alphas = Paillier(pub, accel=serial).random_alphas(len(ms))
    outs = [Paillier(pub, key, acc).encrypt(ms, alphas=alphas).ciphertexts
            for acc in (accel, serial) for key in (None, priv)]
    assert all(o == outs[0] for o in outs)
    assert outs[0][:3] == [djn_formula(pub, m, a) for m, a in zip(ms[:3], alphas[:3])]


def test_phe_decrypts_djn_and_hefl_decrypts_phe(keys, accel, rng):
    pub, priv = keys
    phe_pub, phe_priv = _phe_keys(pub, priv)
    ms = [0, 1, pub.n - 1] + [rng.randrange(pub.n) for _ in range(6)]
    for he in (Paillier(pub, priv, accel), Paillier(pub, accel=accel)):
        cv = he.encrypt(ms, method="djn")
        assert [phe_priv.raw_decrypt(c) for c in cv.ciphertexts] == ms
    holder = Paillier(pub, priv, accel)
    assert holder.decrypt(CipherVector(pub, [phe_pub.raw_encrypt(m) for m in ms])) == ms
    # Through phe's signed encoding: a negative value comes back negative.
    neg = holder.scalar_mul(holder.encrypt([7, 0]), -1)
    assert [phe_priv.decrypt(phe.EncryptedNumber(phe_pub, c, 0)) for c in neg.ciphertexts] == [-7, 0]


def test_mixed_sums_decrypt_right(keys, accel, rng):
    # DJN (holder and public), textbook (holder and public) and phe ciphertexts in one aggregate.
    pub, priv = keys
    phe_pub, phe_priv = _phe_keys(pub, priv)
    holder, public = Paillier(pub, priv, accel), Paillier(pub, accel=accel)
    length = 7
    rows = [[rng.randrange(1 << 60) for _ in range(length)] for _ in range(5)]
    cvs = [holder.encrypt(rows[0], method="djn"), public.encrypt(rows[1], method="djn"),
           holder.encrypt(rows[2], method="textbook"), public.encrypt(rows[3], method="textbook"),
           CipherVector(pub, [phe_pub.raw_encrypt(m) for m in rows[4]])]
    total = public.aggregate(cvs)
    expect = [sum(col) % pub.n for col in zip(*rows)]
    assert holder.decrypt(total) == expect
    assert [phe_priv.raw_decrypt(c) for c in total.ciphertexts] == expect
    assert holder.decrypt(holder.add(cvs[0], cvs[2])) == [(a + b) % pub.n for a, b in zip(rows[0], rows[2])]


def test_djn_ciphertexts_are_nth_residue_obfuscations(keys, accel):
    # Encryptions of 0 are bare h_s^α: n-th residues (order dividing φ(n)), all distinct.
    pub, priv = keys
    phi = (priv.p - 1) * (priv.q - 1)
    for he in (Paillier(pub, priv, accel), Paillier(pub, accel=accel)):
        zeros = he.encrypt([0] * 20).ciphertexts
        assert len(set(zeros)) == 20
        assert all(pow(c, phi, pub.n2) == 1 for c in zeros)


def test_alpha_distribution(serial):
    """α from ``secrets`` (not seedable): every statistic below is checked at >= 6 sigma.

    Over N = 4000 draws of B = 512 bits (a 1024-bit key): no draw is longer
    than B; the longest is exactly B bits (missed with probability 2^-4000);
    the top bit is set about half the time; every bit position's mean is
    1/2; the mean bit length is B - 1 (a uniform B-bit number's, up to 2^-B).
    """
    pub, _ = generate_keypair(1024)
    he = Paillier(pub, accel=serial)
    bits = djn.exponent_bits(pub.bits)
    assert bits == 512
    count = 4000
    alphas = he.random_alphas(count)
    six_sigma = 6 * math.sqrt(0.25 / count)
    lengths = [a.bit_length() for a in alphas]
    assert max(lengths) == bits
    assert all(0 <= a < 1 << bits for a in alphas)
    top = sum(a >> (bits - 1) for a in alphas) / count
    assert abs(top - 0.5) < six_sigma
    worst = max(abs(sum((a >> i) & 1 for a in alphas) / count - 0.5) for i in range(bits))
    assert worst < six_sigma, f"a bit's mean is off 1/2 by {worst}"
    # Mean bit length of a uniform B-bit number is B - 1 + 2^-B; sd of one draw is ~1.41.
    assert abs(sum(lengths) / count - (bits - 1)) < 6 * 1.42 / math.sqrt(count)
    assert len(set(alphas)) == count


def test_encryption_draws_alpha_from_secrets(monkeypatch, serial):
    pub, priv = generate_keypair(256)
    calls = []
    real = djn.secrets.randbits

    def spy(k):
        calls.append(k)
        return real(k)

    monkeypatch.setattr(djn.secrets, "randbits", spy)
    cv = Paillier(pub, priv, serial).encrypt([5, 6, 7])
    assert calls == [djn.exponent_bits(256)] * 3
    assert Paillier(pub, priv, serial).decrypt(cv) == [5, 6, 7]


def test_tables_are_cached_per_key_and_refused_for_another(serial):
    pub, priv = generate_keypair(256)
    other_pub, other_priv = generate_keypair(256)
    t_public, t_holder = tables_for(pub), tables_for(pub, priv)
    assert tables_for(pub) is t_public and tables_for(pub, priv) is t_holder
    assert isinstance(t_public, EncryptionTables) and t_public.djn_fingerprint == pub.djn_fingerprint
    assert set(t_public.tables) == {"n2"} and set(t_holder.tables) == {"p2", "q2"}
    assert t_holder.tables["p2"].modulus == priv.p2 and t_holder.tables["p2"].base == pub.h_s % priv.p2
    assert Paillier(pub, accel=serial).tables() is t_public
    with pytest.raises(KeyMismatchError, match="cannot encrypt under key"):
        Paillier(other_pub, accel=serial, tables=t_public)
    with pytest.raises(KeyMismatchError):
        Paillier(other_pub, other_priv, serial, tables=t_holder)
    # Same n, another h_s (an upgrade done twice): other tables.
    twin = PrivateKey(PublicKey(pub.n), priv.p, priv.q).with_djn_base()
    assert twin.public_key.fingerprint == pub.fingerprint
    with pytest.raises(KeyMismatchError):
        Paillier(twin.public_key, twin, serial, tables=t_holder)
    # Holder tables to a public-key party, and the other way round.
    with pytest.raises(KeyMismatchError, match="key-holder tables"):
        Paillier(pub, accel=serial, tables=t_holder)
    with pytest.raises(KeyMismatchError, match="public tables"):
        Paillier(pub, priv, serial, tables=t_public)
    # A table whose content was swapped for another key's is refused even
    # under the right fingerprint.
    forged = EncryptionTables(pub.djn_fingerprint, False, tables_for(other_pub).tables, t_public.exp_bits,
                              t_public.window_bits, 0.0)
    with pytest.raises(KeyMismatchError, match="was not built for key"):
        forged.check(pub)
    with pytest.raises(TypeError):
        Paillier(pub, accel=serial, tables=t_public.tables["n2"])
    # The right tables work and give the formula's ciphertexts.
    he = Paillier(pub, accel=serial, tables=t_public)
    assert he.encrypt([3], alphas=[9]).ciphertexts == [djn_formula(pub, 3, 9)]


def test_other_window_widths(serial, rng):
    pub, priv = generate_keypair(256)
    ms = [rng.randrange(pub.n) for _ in range(5)]
    alphas = [rng.getrandbits(128) for _ in range(5)]
    expect = [djn_formula(pub, m, a) for m, a in zip(ms, alphas)]
    for k in (1, 3, 5, 8, 11):
        for key in (None, priv):
            he = Paillier(pub, key, serial, window_bits=k)
            assert he.tables().window_bits == k
            assert he.encrypt(ms, alphas=alphas).ciphertexts == expect


def test_version_one_key_falls_back_to_textbook_with_one_warning(serial, rng):
    pub, priv = generate_keypair(256, djn=False)
    assert pub.h_s is None
    he = Paillier(pub, priv, serial)
    assert he.method == "textbook"
    with pytest.warns(TextbookFallbackWarning, match="hefl keygen --upgrade"):
        cv = he.encrypt([1, 2, 3])
    assert he.decrypt(cv) == [1, 2, 3]
    # Once per key: no second warning, from this object or another.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert he.decrypt(Paillier(pub, accel=serial).encrypt([4])) == [4]
        # Asking for textbook by name never warns.
        Paillier(pub, priv, serial, method="textbook").encrypt([5])
    # DJN by name cannot work without h_s, and says how to get it.
    with pytest.raises(ModulusError, match="hefl keygen --upgrade"):
        he.encrypt([1], method="djn")
    with pytest.raises(ModulusError, match="hefl keygen --upgrade"):
        Paillier(pub, priv, serial, method="djn")
    with pytest.raises(ModulusError, match="hefl keygen --upgrade"):
        he.encrypt([1], alphas=[3])
    # The explicit upgrade gives DJN, and old ciphertexts still decrypt.
    up = priv.with_djn_base()
    he2 = Paillier(up.public_key, up, serial)
    assert he2.method == "djn" and he2.decrypt(he2.add(he2.encrypt([10]), cv[:1])) == [11]


def test_textbook_stays_available_by_name(keys, serial, rng):
    pub, priv = keys
    ms = [rng.randrange(pub.n) for _ in range(4)]
    rs = [rng.randrange(1, pub.n) for _ in range(4)]
    expect = [(1 + m * pub.n) * pow(r, pub.n, pub.n2) % pub.n2 for m, r in zip(ms, rs)]
    for key in (None, priv):
        assert Paillier(pub, key, serial).encrypt(ms, randomness=rs).ciphertexts == expect
        he = Paillier(pub, key, serial, method="textbook")
        assert he.method == "textbook"
        assert Paillier(pub, priv, serial).decrypt(he.encrypt(ms)) == ms
        assert Paillier(pub, priv, serial).decrypt(Paillier(pub, key, serial).encrypt(ms, method="textbook")) == ms


def test_bad_method_arguments(serial):
    pub, priv = generate_keypair(256)
    he = Paillier(pub, priv, serial)
    bits = djn.exponent_bits(pub.bits)
    with pytest.raises(ValueError, match="unknown encryption method"):
        he.encrypt([1], method="fast")
    with pytest.raises(ValueError, match="unknown encryption method"):
        Paillier(pub, priv, serial, method="r^n")
    with pytest.raises(ValueError, match="not both"):
        he.encrypt([1], randomness=[3], alphas=[3])
    with pytest.raises(ValueError, match="DJN takes alphas"):
        he.encrypt([1], method="djn", randomness=[3])
    with pytest.raises(ValueError, match="textbook encryption takes randomness"):
        he.encrypt([1], method="textbook", alphas=[3])
    for bad in (1 << bits, -1):
        with pytest.raises(OperandRangeError, match="outside"):
            he.encrypt([1], alphas=[bad])
    for bad in (2.0, True, "3"):
        with pytest.raises(OperandRangeError, match="not an integer"):
            he.encrypt([1], alphas=[bad])
    with pytest.raises(VectorLengthError):
        he.encrypt([1, 2], alphas=[3])
    assert he.encrypt([], alphas=[]).ciphertexts == [] and he.encrypt([]).ciphertexts == []
    assert he.encrypt([4], alphas=[gmpy2.mpz(5)]).ciphertexts == [djn_formula(pub, 4, 5)]


@pytest.mark.parametrize("mod_bits,exp_bits,k", [(130, 64, 1), (512, 128, 4), (1024, 512, 10), (2048, 256, 7)])
def test_fast_table_builder_equals_the_golden_model(rng, mod_bits, exp_bits, k):
    from hefl.golden.fixedbase import build_table as golden
    m = rng.getrandbits(mod_bits) | 1 | (1 << (mod_bits - 1))
    g = next(x for x in iter(lambda: rng.randrange(2, m), None) if math.gcd(x, m) == 1)
    fast = djn.build_table(g, m, exp_bits, k)
    assert fast == golden(g, m, exp_bits, k)
    assert all(type(x) is int for row in fast.rows for x in row)
    with pytest.raises(ModulusError):
        djn.build_table(g, 2, exp_bits, k)
    with pytest.raises(OperandRangeError):
        djn.build_table(m, m, exp_bits, k)


def test_window_rule():
    from hefl.golden.fixedbase import table_bytes
    assert [djn.window_bits_for(b) for b in (256, 1024, 2048, 3072, 4096)] == [12, 12, 12, 10, 9]
    assert [djn.window_bits_for(b, holder=True) for b in (256, 2048, 3072, 4096)] == [11, 11, 10, 9]
    for holder, widest in ((False, djn.MAX_WINDOW_BITS), (True, djn.MAX_HOLDER_WINDOW_BITS)):
        for bits in (1024, 2048, 3072, 4096, 8192):
            k = djn.window_bits_for(bits, holder)
            assert table_bytes(2 * bits, djn.exponent_bits(bits), k) <= djn.TABLE_BUDGET_BYTES
            assert k == widest or table_bytes(2 * bits, djn.exponent_bits(bits), k + 1) > djn.TABLE_BUDGET_BYTES
    assert [djn.exponent_bits(b) for b in (255, 256, 2048, 3071)] == [128, 128, 1024, 1536]


def test_tables_report_their_window_and_size():
    pub, priv = generate_keypair(256)
    public, holder = tables_for(pub), tables_for(pub, priv)
    assert public.window_bits == djn.window_bits_for(256) == 12
    assert holder.window_bits == djn.window_bits_for(256, holder=True) == 11
    w = public.tables["n2"].windows
    assert w == 11 and public.nbytes == w * (1 << 12) * 64
    # Two tables mod p² and q² (each 256 bits, give or take a byte) of 12 windows at k = 11.
    wh = holder.tables["p2"].windows
    assert wh == holder.tables["q2"].windows == 12
    assert abs(holder.nbytes - wh * (1 << 11) * 64) <= wh * (1 << 11) * 2
    assert public.build_s >= 0 and "MiB" in repr(public)
    djn.clear_cache()
    assert tables_for(pub) is not public
