"""Fixed-window modexp model against ``pow``, with its constant schedule."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.cios import cios_montmul
from hefl.golden.modexp import (
    modexp,
    modexp_schedule_counts,
    spec_montmul,
    window_digits,
)
from hefl.golden.montgomery import mont_constants, montmul_spec


def _odd_modulus(rng, bits):
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


@settings(max_examples=200, deadline=None)
@given(bits=st.integers(2, 600), data=st.data())
def test_random_vs_pow(bits, data):
    n = data.draw(st.integers(max(3, 1 << (bits - 1)), max(3, (1 << bits) - 1))) | 1
    base = data.draw(st.integers(0, n - 1))
    exp = data.draw(st.integers(0, (1 << data.draw(st.integers(0, 700))) - 1))
    k = data.draw(st.integers(1, 6))
    declared = exp.bit_length() + data.draw(st.integers(0, 12))
    got = modexp(base, exp, n, k=k, exp_bits=declared)
    assert got.value == pow(base, exp, n)
    assert got.modmuls == modexp_schedule_counts(declared, k).total


def test_spec_montmul_is_the_spec(rng):
    n = _odd_modulus(rng, 300)
    c = mont_constants(n, 64)
    mm = spec_montmul(c)
    for _ in range(20):
        a, b = rng.randrange(n), rng.randrange(n)
        assert mm(a, b) == montmul_spec(a, b, n, c.r)


def test_schedule_counts_formula():
    c = modexp_schedule_counts(2048, 4)
    assert c.windows == 512 and c.table == 14 and c.squarings == 2048
    assert c.multiplies == 512 and c.conversions == 3
    assert c.total == 14 + 2048 + 512 + 3
    # Rounded up to whole windows; zero length is just the conversions.
    assert modexp_schedule_counts(2049, 4).windows == 513
    assert modexp_schedule_counts(0, 5).total == 3 + 30
    assert modexp_schedule_counts(10, 1).table == 0


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_constant_count_for_declared_length(k, rng):
    # Same declared length: same count for every exponent and base value.
    n = _odd_modulus(rng, 256)
    declared = 256
    exps = [0, 1, (1 << declared) - 1, 1 << (declared - 1), rng.getrandbits(declared), 0x5555]
    bases = [0, 1, n - 1, rng.randrange(n)]
    counts = set()
    for e in exps:
        for b in bases:
            r = modexp(b, e, n, k=k, exp_bits=declared)
            assert r.value == pow(b, e, n)
            counts.add(r.modmuls)
    assert counts == {modexp_schedule_counts(declared, k).total}


@pytest.mark.parametrize("bits", [3, 64, 65, 521])
def test_directed_corners(bits, rng):
    n = _odd_modulus(rng, bits) if bits > 3 else 7
    c = mont_constants(n, 64)
    bases = [0, 1, 2, n - 1, c.r_mod_n, c.r2_mod_n]
    exps = [0, 1, 2, (1 << bits) - 1, n - 1, n, (1 << (2 * bits + 3)) - 1]  # last: longer than N
    for b in bases:
        for e in exps:
            for k in (4, 5):
                declared = max(e.bit_length(), bits)
                assert modexp(b, e, n, k=k, exp_bits=declared).value == pow(b, e, n), (b, e, k)


def test_exponent_zero_and_empty_declaration(rng):
    n = _odd_modulus(rng, 100)
    assert modexp(5, 0, n, exp_bits=0) == (1, 3 + 14)
    assert modexp(0, 0, n).value == 1            # 0^0 = 1, as pow says
    assert modexp(0, 7, n).value == 0


@pytest.mark.parametrize("final_subtract", [True, False], ids=["reduced", "lazy"])
@pytest.mark.parametrize("w", [16, 64])
def test_pluggable_word_level_montmul(final_subtract, w, rng):
    # The same schedule on the CIOS model (fully or lazily reduced).
    n = _odd_modulus(rng, 192)
    c = mont_constants(n, w)

    def mm(a, b):
        return cios_montmul(a, b, c, final_subtract=final_subtract)[0]
    for b, e in [(rng.randrange(n), rng.getrandbits(192)), (n - 1, (1 << 192) - 1),
                 (0, 5), (1, 0), (rng.randrange(n), n)]:
        r = modexp(b, e, n, k=4, exp_bits=192, montmul=mm, consts=c)
        assert r.value == pow(b, e, n)
        assert r.modmuls == modexp_schedule_counts(192, 4).total


def test_lazy_zero_result_maps_to_zero():
    # A MontMul that returns N instead of 0 (allowed below 2N) must not leak N.
    n = 101
    c = mont_constants(n, 8)
    spec = spec_montmul(c)

    def lazy(a, b):
        r = spec(a % n, b % n)
        return r + n if r == 0 else r
    assert modexp(0, 3, n, montmul=lazy, consts=c, exp_bits=8).value == 0


@pytest.mark.parametrize("bits", [2048, 4096])
def test_paillier_sized(bits, rng):
    # r^n mod n² shapes: exponent half the modulus length; and a full-length one.
    n = _odd_modulus(rng, bits)
    for e_bits in (bits // 2, bits):
        b, e = rng.randrange(n), rng.getrandbits(e_bits)
        r = modexp(b, e, n, k=5, exp_bits=e_bits)
        assert r.value == pow(b, e, n)
        assert r.modmuls == modexp_schedule_counts(e_bits, 5).total


def test_window_digits_roundtrip(rng):
    for k in (1, 4, 5):
        e = rng.getrandbits(100)
        d = window_digits(e, 103, k)
        assert len(d) == -(-103 // k)
        v = 0
        for x in d:
            v = (v << k) | x
        assert v == e


def test_bad_inputs(rng):
    n = _odd_modulus(rng, 64)
    with pytest.raises(OperandRangeError):
        modexp(n, 3, n)                       # base not reduced
    with pytest.raises(OperandRangeError):
        modexp(2, -1, n)
    with pytest.raises(OperandRangeError):
        modexp(2, 1 << 70, n, exp_bits=64)    # longer than declared
    with pytest.raises(ModulusError):
        modexp(2, 3, n + 1)                   # even modulus
    with pytest.raises(ModulusError):
        modexp(0, 3, 1)                       # tiny modulus
    with pytest.raises(TypeError):
        modexp_schedule_counts(10, 0)
    with pytest.raises(OperandRangeError):
        modexp(2, 3, n, consts=mont_constants(n + 2, 64))


def test_loaded_montgomery_one(rng):
    # The hardware loads R mod N as a constant: one MontMul fewer, same result.
    n = _odd_modulus(rng, 300)
    for e in (0, 1, rng.getrandbits(300)):
        b = rng.randrange(n)
        r = modexp(b, e, n, k=4, exp_bits=300, one_loaded=True)
        assert r.value == pow(b, e, n)
        assert r.modmuls == modexp_schedule_counts(300, 4, one_loaded=True).total \
            == modexp_schedule_counts(300, 4).total - 1
