"""Word-level CIOS/FIOS models against the Montgomery specification."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.cios import cios_montmul, cios_word_ops, fios_montmul, fios_word_ops
from hefl.golden.montgomery import mont_constants, montmul_spec, words_for

MODELS = [cios_montmul, fios_montmul]
WORD_OPS = {cios_montmul: cios_word_ops, fios_montmul: fios_word_ops}


def _odd_modulus(rng, bits):
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


@st.composite
def modulus_and_operands(draw):
    bits = draw(st.integers(2, 700))
    n = draw(st.integers(1 << (bits - 1), (1 << bits) - 1)) | 1
    if n < 3:
        n = 3
    w = draw(st.sampled_from([8, 16, 17, 32, 64]))
    a = draw(st.integers(0, n - 1))
    b = draw(st.integers(0, n - 1))
    return n, w, a, b


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=modulus_and_operands())
def test_random_vs_spec(model, case):
    n, w, a, b = case
    c = mont_constants(n, w)
    got, ops = model(a, b, c)
    assert got == montmul_spec(a, b, n, c.r)
    assert ops == WORD_OPS[model](c.words)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(max_examples=100, deadline=None)
@given(case=modulus_and_operands())
def test_lazy_reduction_stays_below_2n(model, case):
    n, w, a, b = case
    c = mont_constants(n, w)          # words_for's headroom gives R > 4N
    # Lazy inputs may be anywhere below 2N: shift into the upper half too.
    a2, b2 = a + n * (a & 1), b + n * (b & 1)
    got, ops = model(a2, b2, c, final_subtract=False)
    assert 0 <= got < 2 * n
    assert got % n == montmul_spec(a, b, n, c.r)
    assert ops.sub == 0 and ops.mul == 2 * c.words ** 2 + c.words


def _corners(n, c):
    vals = [0, 1, 2, n - 1, n - 2, c.r_mod_n, c.r2_mod_n, (n - 1) // 2]
    return [(a, b) for a in vals for b in vals]


@pytest.mark.parametrize("w", [8, 16, 32, 64])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_directed_corners(model, w, rng):
    # Moduli with a full top word, a small top word (one bit above a word
    # boundary), all ones, and the smallest odd moduli.
    moduli = [3, 5, (1 << (4 * w)) - 1, (1 << (4 * w)) + 1, (1 << (3 * w)) | 0x3,
              _odd_modulus(rng, 5 * w), _odd_modulus(rng, 5 * w + 1)]
    for n in moduli:
        c = mont_constants(n, w)
        for a, b in _corners(n, c):
            got, _ = model(a, b, c)
            assert got == montmul_spec(a, b, n, c.r), (n, a, b)
        # Montgomery one times x is x; R² converts in, 1 converts out.
        x = rng.randrange(n)
        xm, _ = model(x, c.r2_mod_n, c)
        assert xm == x * c.r % n
        back, _ = model(xm, 1, c)
        assert back == x


@pytest.mark.parametrize("bits,w", [(2048, 64), (2048, 32), (4096, 64), (4096, 17)])
def test_paillier_sizes(bits, w, rng):
    n = _odd_modulus(rng, bits)
    c = mont_constants(n, w)
    for a, b in [(rng.randrange(n), rng.randrange(n)), (n - 1, n - 1), (c.r_mod_n, n - 1)]:
        for model in MODELS:
            got, ops = model(a, b, c)
            assert got == montmul_spec(a, b, n, c.r)
            assert ops.mul == 2 * c.words ** 2 + c.words


def test_minimal_word_count_final_subtract(rng):
    # With final subtraction, R > N is enough: use the fewest words possible.
    for w in (16, 64):
        n = _odd_modulus(rng, 4 * w)        # exactly 4 words, top bit set
        c = mont_constants(n, w, words=words_for(n.bit_length(), w, headroom=0))
        assert c.words == 4
        for _ in range(50):
            a, b = rng.randrange(n), rng.randrange(n)
            assert cios_montmul(a, b, c)[0] == montmul_spec(a, b, n, c.r)
            assert fios_montmul(a, b, c)[0] == montmul_spec(a, b, n, c.r)


def test_bad_inputs(rng):
    n = _odd_modulus(rng, 128)
    c = mont_constants(n, 32)
    with pytest.raises(OperandRangeError):
        cios_montmul(n, 1, c)
    with pytest.raises(OperandRangeError):
        fios_montmul(1, -1, c)
    with pytest.raises(OperandRangeError):
        cios_montmul(2 * n, 1, c, final_subtract=False)
    tight = mont_constants(n, 32, words=4)   # R = 2^128 < 4N
    with pytest.raises(ModulusError):
        cios_montmul(1, 1, tight, final_subtract=False)
    with pytest.raises(ModulusError):
        mont_constants(n - 1, 32)             # even
