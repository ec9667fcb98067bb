"""Tests of hefl.encoding: quantisation, packing, sums, overflow detection.

Packed integers are checked against an independent pure-Python model
(``_ref_quantise`` / ``_ref_pack``: per-value Python ``round`` and shifts),
and decoded sums against the float sum of the clipped inputs within
:meth:`Encoder.quantisation_bound`.
"""

import doctest
import json
import time

import gmpy2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hefl.encoding
from hefl.encoding import MAX_SLOT_BITS, MAX_VALUE_BITS, Encoder, EncodingParams
from hefl.errors import (
    EncodingError,
    HeflError,
    NonFiniteUpdateError,
    PackingOverflowError,
    SerializationError,
)

HYP = settings(derandomize=True, deadline=None, max_examples=150,
               suppress_health_check=[HealthCheck.too_slow])


# --- independent reference model ---------------------------------------------

def _ref_quantise(values, alpha, value_bits):
    """Clip and round each value with Python floats (round half to even)."""
    q_max = 2 ** (value_bits - 1) - 1
    s = q_max / alpha
    out = []
    for x in values:
        q = round(min(alpha, max(-alpha, float(x))) * s)
        assert -q_max <= q <= q_max
        out.append(q)
    return out


def _ref_pack(qs, value_bits, slot_bits, slots):
    """Offset each value by Q and place value i in bits [i·slot_bits, …) of its plaintext."""
    q_max = 2 ** (value_bits - 1) - 1
    out = []
    for j in range(0, len(qs), slots):
        out.append(sum((q + q_max) << (i * slot_bits) for i, q in enumerate(qs[j:j + slots])))
    return out


@st.composite
def layouts(draw, max_guard=6, max_plaintext_bits=700):
    b = draw(st.integers(2, 24))
    g = draw(st.integers(0, max_guard))
    pb = draw(st.integers(b + g, max_plaintext_bits))
    alpha = draw(st.sampled_from([1.0, 0.05, 3.5, 1e-3, 250.0]))
    return dict(plaintext_bits=pb, alpha=alpha, value_bits=b, guard_bits=g)


# --- parameters --------------------------------------------------------------

@HYP
@given(layouts(max_guard=MAX_SLOT_BITS - 24, max_plaintext_bits=5000))
def test_layout_fits_plaintext(kw):
    enc = Encoder(**kw)
    p = enc.params
    assert p.slot_bits == kw["value_bits"] + kw["guard_bits"]
    assert p.slots * p.slot_bits <= kw["plaintext_bits"] < (p.slots + 1) * p.slot_bits
    assert enc.slots == p.slots
    assert enc.max_summands == 2 ** kw["guard_bits"]
    # JSON round trip: what travels in ciphertext meta rebuilds the same encoder.
    d = json.loads(json.dumps(p.to_dict()))
    assert EncodingParams.from_dict(d) == p
    assert Encoder.from_params(d).params == p


def test_real_key_layout():
    # 2048-bit key, 16+4 bits: ~100 values per ciphertext (docs/design.md §1.5).
    enc = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4)
    assert (enc.slots, enc.params.slot_bits, enc.max_summands) == (102, 20, 16)


@pytest.mark.parametrize("kw, exc, words", [
    (dict(alpha="1"), TypeError, "alpha must be a positive real"),
    (dict(alpha=True), TypeError, "alpha"),
    (dict(alpha=0.0), EncodingError, "alpha"),
    (dict(alpha=-1.0), EncodingError, "alpha"),
    (dict(alpha=float("nan")), EncodingError, "alpha"),
    (dict(alpha=float("inf")), EncodingError, "alpha"),
    (dict(value_bits=16.0), TypeError, "Value bits must be an integer"),
    (dict(value_bits=True), TypeError, "Value bits"),
    (dict(value_bits=1), EncodingError, "Value bits must be between 2 and 53"),
    (dict(value_bits=MAX_VALUE_BITS + 1), EncodingError, "Value bits"),
    (dict(guard_bits=None), TypeError, "Guard bits must be an integer"),
    (dict(guard_bits=-1), EncodingError, "Guard bits"),
    (dict(value_bits=40, guard_bits=MAX_SLOT_BITS - 39), EncodingError, "Guard bits"),
    (dict(plaintext_bits=2047.0), TypeError, "Plaintext bits must be an integer"),
    (dict(plaintext_bits=19), EncodingError, "at least one slot"),
])
def test_bad_parameters(kw, exc, words):
    args = dict(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4) | kw
    with pytest.raises(exc, match=words):
        Encoder(**args)


def test_parameters_keyword_only():
    with pytest.raises(TypeError):
        Encoder(2047, 1.0, 16, 4)  # noqa -- positional use must fail


def test_numpy_integer_parameters_accepted():
    enc = Encoder(plaintext_bits=np.int64(100), alpha=np.float32(0.5),
                  value_bits=np.int32(8), guard_bits=np.uint8(2))
    assert enc.params.to_dict() == Encoder(plaintext_bits=100, alpha=0.5, value_bits=8,
                                           guard_bits=2).params.to_dict()
    json.dumps(enc.params.to_dict())  # plain Python types only


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(scheme="twos-complement/1"), "scheme"),
    (lambda d: d.pop("alpha"), "missing"),
    (lambda d: d.update(extra=1), "unexpected"),
    (lambda d: d.update(slots=d["slots"] + 1), "Slots"),
    (lambda d: d.update(slot_bits=d["slot_bits"] + 1), "Slot bits"),
    (lambda d: d.update(value_bits="16"), "Value bits"),
    (lambda d: d.update(alpha=-1.0), "alpha"),
])
def test_from_dict_rejects_garbled(mutate, words):
    d = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4).params.to_dict()
    mutate(d)
    with pytest.raises(SerializationError, match=words):
        EncodingParams.from_dict(d)


def test_from_dict_not_a_dict():
    with pytest.raises(SerializationError):
        EncodingParams.from_dict([1, 2])
    with pytest.raises(TypeError):
        Encoder.from_params("params")


def test_params_frozen():
    p = Encoder(plaintext_bits=64, alpha=1.0, value_bits=8, guard_bits=2).params
    with pytest.raises(AttributeError):
        p.slots = 1


# --- round trips ----------------------------------------------------------------

@st.composite
def sums(draw):
    kw = draw(layouts())
    enc = Encoder(**kw)
    k = draw(st.integers(1, enc.max_summands))
    # Lengths around multiples of the slot count, empty included.
    length = draw(st.integers(0, 3 * enc.slots + 2))
    a = kw["alpha"]
    vals = st.floats(-2.5 * a, 2.5 * a, allow_nan=False) | st.sampled_from([a, -a, 0.0, 2 * a, -2 * a])
    updates = [draw(st.lists(vals, min_size=length, max_size=length)) for _ in range(k)]
    reduce_mod_n = draw(st.booleans())
    return kw, enc, updates, length, reduce_mod_n


@HYP
@given(sums())
def test_sum_round_trip(case):
    kw, enc, updates, length, reduce_mod_n = case
    p = enc.params
    k = len(updates)
    encoded = [enc.encode(np.array(u, dtype=np.float64)) for u in updates]
    ref_q = [_ref_quantise(u, kw["alpha"], kw["value_bits"]) for u in updates]
    for e, q in zip(encoded, ref_q):
        assert e == _ref_pack(q, p.value_bits, p.slot_bits, p.slots)
        assert all(0 <= x < 2 ** p.plaintext_bits for x in e)
        assert len(e) == enc.plaintexts_for(length)
    packed_sum = [sum(col) for col in zip(*encoded)]
    modulus = None
    if reduce_mod_n:
        # The smallest odd n with n.bit_length() - 1 == plaintext_bits: the
        # tightest modulus this layout is meant for; the sum must not wrap.
        modulus = 2 ** p.plaintext_bits + 1
        assert all(x < modulus for x in packed_sum)
        packed_sum = [x % modulus for x in packed_sum]
    got = enc.decode(packed_sum, length, k, modulus=modulus)
    assert got.shape == (length,) and got.dtype == np.float64
    # Exactly the sum of the quantised values ...
    exact = [sum(col) / enc.scale for col in zip(*ref_q)] if length else []
    np.testing.assert_array_equal(got, np.array(exact, dtype=np.float64).reshape(length))
    # ... and within the bound of the true clipped sum.
    a = kw["alpha"]
    clipped = np.sum([np.clip(u, -a, a) for u in updates], axis=0) if length else np.zeros(0)
    assert np.all(np.abs(got - clipped) <= enc.quantisation_bound(k))


@HYP
@given(st.data())
def test_wide_slots_weighted_to_max(data):
    # Up to 63-bit slots and 2**g summands (reached through integer weights,
    # as Paillier scalar multiplication does): slot arithmetic must stay exact.
    b = data.draw(st.integers(2, MAX_VALUE_BITS), label="value_bits")
    g = data.draw(st.integers(0, MAX_SLOT_BITS - b), label="guard_bits")
    pb = data.draw(st.integers(b + g, 4 * (b + g) + 7), label="plaintext_bits")
    enc = Encoder(plaintext_bits=pb, alpha=2.0, value_bits=b, guard_bits=g)
    length = data.draw(st.integers(1, 2 * enc.slots + 1), label="length")
    # Split K = 2**g (or fewer) into up to three positive weights.
    k = data.draw(st.sampled_from([enc.max_summands, max(1, enc.max_summands - 1), 1]), label="K")
    cuts = sorted(data.draw(st.lists(st.integers(1, k), max_size=2), label="cuts"))
    weights = [w for w in np.diff([0] + cuts + [k]).tolist() if w > 0]
    vals = st.floats(-3.0, 3.0, allow_nan=False) | st.sampled_from([2.0, -2.0])
    xs = [data.draw(st.lists(vals, min_size=length, max_size=length)) for _ in weights]
    total = [sum(w * c for w, c in zip(weights, col))
             for col in zip(*(enc.encode(np.array(x)) for x in xs))]
    assert all(t < 2 ** pb for t in total)
    got = enc.decode(total, length, sum(weights))
    ref = [sum(w * q for w, q in zip(weights, col)) / enc.scale
           for col in zip(*(_ref_quantise(x, 2.0, b) for x in xs))]
    np.testing.assert_array_equal(got, ref)
    clipped = sum(w * np.clip(np.array(x), -2, 2) for w, x in zip(weights, xs))
    assert np.all(np.abs(got - clipped) <= enc.quantisation_bound(sum(weights)))


def test_clipping_and_negatives():
    enc = Encoder(plaintext_bits=200, alpha=0.5, value_bits=10, guard_bits=3)
    x = np.array([-7.0, -0.5, -0.25, -1e-9, 0.0, 0.25, 0.5, 3.0, 1e300, -1e300])
    got = enc.decode(enc.encode(x), len(x), 1)
    np.testing.assert_allclose(got, np.clip(x, -0.5, 0.5), atol=enc.quantisation_bound(1))
    assert got[0] == -0.5 and got[7] == 0.5          # clipped exactly to the grid ends
    assert np.all(np.sign(got[[1, 2]]) == -1)


def test_exactly_max_summands_extremes():
    # All slots at +alpha (offset 2Q) or -alpha (offset 0), summed 2**g times:
    # the largest and smallest slot sums that must still decode.
    enc = Encoder(plaintext_bits=300, alpha=1.0, value_bits=12, guard_bits=3)
    k = enc.max_summands
    for sign in (1.0, -1.0):
        x = np.full(2 * enc.slots + 5, sign * 2.0)
        total = [c * k for c in enc.encode(x)]
        assert all(t < 2 ** 300 for t in total)
        np.testing.assert_array_equal(enc.decode(total, len(x), k), np.full(len(x), sign * k))
    with pytest.raises(PackingOverflowError, match="guard bits"):
        enc.decode(total, len(x), k + 1)


def test_integer_weighted_sum(seed):
    # Scalar-multiplied ciphertexts: weights w_k count as Σw summands.
    rs = np.random.default_rng(seed)
    enc = Encoder(plaintext_bits=500, alpha=1.0, value_bits=12, guard_bits=4)
    weights = [1, 3, 2, 7, 3]                      # Σ = 16 = max_summands
    xs = [rs.uniform(-1.5, 1.5, 3 * enc.slots - 1) for _ in weights]
    total = [sum(w * c for w, c in zip(weights, col))
             for col in zip(*(enc.encode(x) for x in xs))]
    got = enc.decode(total, len(xs[0]), sum(weights))
    ref = [sum(w * q for w, q in zip(weights, col)) / enc.scale
           for col in zip(*(_ref_quantise(x, 1.0, 12) for x in xs))]
    np.testing.assert_array_equal(got, ref)
    assert np.all(np.abs(got - sum(w * np.clip(x, -1, 1) for w, x in zip(weights, xs)))
                  <= enc.quantisation_bound(sum(weights)))


def test_over_summed_plaintexts_detected():
    # max_summands + 1 encodings of +alpha added but declared as max: the
    # slots carry, and decoding must notice instead of returning values.
    enc = Encoder(plaintext_bits=300, alpha=1.0, value_bits=12, guard_bits=3)
    k = enc.max_summands
    for length in (enc.slots, enc.slots + 3):
        one = enc.encode(np.ones(length))
        with pytest.raises(PackingOverflowError):
            enc.decode([c * (k + 1) for c in one], length, k)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_corrupted_slot_detected(k, seed):
    rs = np.random.default_rng(seed)
    enc = Encoder(plaintext_bits=400, alpha=1.0, value_bits=10, guard_bits=3)
    p = enc.params
    length = 2 * enc.slots - 3
    total = [sum(c) for c in zip(*(enc.encode(rs.uniform(-1, 1, length)) for _ in range(k)))]
    enc.decode(total, length, k)  # the honest sum decodes
    # The largest slot sum K summands can produce is 2QK.
    limit = 2 * (2 ** (p.value_bits - 1) - 1) * k
    mask = 2 ** p.slot_bits - 1
    for _ in range(5):
        i = int(rs.integers(length))
        j, shift = i // p.slots, (i % p.slots) * p.slot_bits
        slot = (total[j] >> shift) & mask
        # Tightest corruption: the slot one above the largest legal value.
        bad = list(total)
        bad[j] += (limit + 1 - slot) << shift
        with pytest.raises(PackingOverflowError, match="exceed what"):
            enc.decode(bad, length, k)
        # A guard bit that K summands can never set (exists while 2QK needs
        # fewer bits than the slot has).
        if limit.bit_length() < p.slot_bits:
            bit = int(rs.integers(limit.bit_length(), p.slot_bits))
            bad = list(total)
            bad[j] |= 1 << (shift + bit)
            with pytest.raises(PackingOverflowError, match="exceed what"):
                enc.decode(bad, length, k)


def test_bits_above_slots_and_unused_slots_detected():
    enc = Encoder(plaintext_bits=107, alpha=1.0, value_bits=8, guard_bits=2)
    p = enc.params                                       # 10 slots of 10 bits, 7 spare bits
    length = 2 * p.slots - 1
    total = [a + b for a, b in zip(enc.encode(np.zeros(length)), enc.encode(np.ones(length)))]
    np.testing.assert_allclose(enc.decode(total, length, 2), np.ones(length))
    for bit in (p.slots * p.slot_bits, p.plaintext_bits - 1, 5000):
        with pytest.raises(PackingOverflowError, match="above"):
            enc.decode([total[0] | (1 << bit), total[1]], length, 2)
    with pytest.raises(PackingOverflowError, match="Unused slot"):
        enc.decode([total[0], total[1] | (1 << ((p.slots - 1) * p.slot_bits))], length, 2)


# --- stochastic rounding ------------------------------------------------------

def test_stochastic_rounding(seed):
    enc = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=6, guard_bits=4)
    x = np.random.default_rng(seed).uniform(-1.2, 1.2, 3000)
    a = enc.encode(x, rng=np.random.default_rng(seed))
    assert a == enc.encode(x, rng=np.random.default_rng(seed))     # reproducible
    k = 4
    parts = [enc.encode(x, rng=np.random.default_rng(seed + i)) for i in range(k)]
    got = enc.decode([sum(c) for c in zip(*parts)], len(x), k)
    clipped = k * np.clip(x, -1, 1)
    err = got - clipped
    assert np.all(np.abs(err) <= enc.quantisation_bound(k, stochastic=True))
    # Round to nearest would err by at most half a step each; stochastic
    # rounding exceeds that somewhere but is unbiased on average.
    step = 1 / enc.scale
    assert np.abs(err).max() > k * step / 2
    assert abs(err.mean()) < 0.1 * step
    with pytest.raises(TypeError, match="Generator"):
        enc.encode(x, rng=42)


# --- bad updates --------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_update_raises_first(bad, seed):
    enc = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4)
    x = np.random.default_rng(seed).normal(size=500)
    x[123] = bad
    g = np.random.default_rng(seed)
    before = g.bit_generator.state
    with pytest.raises(NonFiniteUpdateError, match="index 123"):
        enc.encode(x, rng=g)
    assert g.bit_generator.state == before     # nothing was drawn, nothing encoded
    with pytest.raises(NonFiniteUpdateError):
        enc.quantise(x)
    assert issubclass(NonFiniteUpdateError, HeflError)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 3)), "1-D"),
    (np.float64(1.0), "1-D"),
    (np.array(["a", "b"]), "real numbers"),
    (np.array([1 + 2j]), "real numbers"),
    (np.array([True, False]), "real numbers"),
])
def test_bad_update_shape_or_dtype(bad, words):
    enc = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4)
    with pytest.raises(EncodingError, match=words):
        enc.encode(bad)


def test_empty_vector():
    enc = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4)
    assert enc.encode(np.zeros(0)) == [] and enc.encode([]) == []
    out = enc.decode([], 0, 3)
    assert out.shape == (0,)


def test_lists_and_integer_arrays_accepted():
    enc = Encoder(plaintext_bits=100, alpha=4.0, value_bits=8, guard_bits=1)
    assert enc.encode([1, -2, 3]) == enc.encode(np.array([1.0, -2.0, 3.0]))
    assert enc.encode(np.array([1, -2, 3], dtype=np.int8)) == enc.encode([1.0, -2.0, 3.0])


# --- bad decode input -----------------------------------------------------------

def test_decode_rejects_bad_input():
    enc = Encoder(plaintext_bits=100, alpha=1.0, value_bits=8, guard_bits=2)
    length = enc.slots + 1
    pts = enc.encode(np.zeros(length))
    with pytest.raises(EncodingError, match="need 2 plaintexts"):
        enc.decode(pts[:1], length, 1)
    with pytest.raises(EncodingError, match="need 2 plaintexts"):
        enc.decode(pts + [0], length, 1)
    with pytest.raises(EncodingError, match="negative"):
        enc.decode([-1, pts[1]], length, 1)
    with pytest.raises(TypeError, match="Plaintext 0"):
        enc.decode([float(pts[0]), pts[1]], length, 1)
    with pytest.raises(TypeError, match="Plaintext 1"):
        enc.decode([pts[0], True], length, 1)
    with pytest.raises(EncodingError, match="at least 1"):
        enc.decode(pts, length, 0)
    with pytest.raises(TypeError, match="Summands"):
        enc.decode(pts, length, 1.0)
    with pytest.raises(TypeError, match="Length"):
        enc.decode(pts, "9", 1)
    with pytest.raises(EncodingError, match="Length"):
        enc.decode(pts, -1, 1)
    with pytest.raises(TypeError):
        enc.decode(None, length, 1)
    # A modulus too small to hold the layout, and plaintexts not reduced by it.
    with pytest.raises(EncodingError, match="too small"):
        enc.decode(pts, length, 1, modulus=2 ** 90 + 1)
    n = 2 ** 100 + 1
    with pytest.raises(EncodingError, match="not below the modulus"):
        enc.decode([n, pts[1]], length, 1, modulus=n)
    with pytest.raises(TypeError, match="Modulus"):
        enc.decode(pts, length, 1, modulus=float(n))
    with pytest.raises(EncodingError):
        enc.quantisation_bound(enc.max_summands + 1)


def test_decode_accepts_mpz_and_numpy_ints():
    # Decrypted plaintexts come from gmpy2 in the cpu backend.
    enc = Encoder(plaintext_bits=100, alpha=1.0, value_bits=8, guard_bits=2)
    x = np.array([0.5, -0.5, 1.0])
    pts = enc.encode(x)
    np.testing.assert_allclose(enc.decode([gmpy2.mpz(v) for v in pts], 3, 1,
                                          modulus=gmpy2.mpz(2 ** 100 + 1)),
                               x, atol=enc.quantisation_bound(1))
    small = Encoder(plaintext_bits=60, alpha=1.0, value_bits=8, guard_bits=2)
    np.testing.assert_allclose(small.decode([np.uint64(v) for v in small.encode(x)], 3, 1),
                               x, atol=small.quantisation_bound(1))


# --- real size ------------------------------------------------------------------

def test_real_size_round_trip(seed):
    """2048-bit key, 100,000 values, 3 clients: exact and fast."""
    rs = np.random.default_rng(seed)
    n = int(rs.integers(0, 2 ** 62)) | (1 << 2047) | 1   # any odd 2048-bit n
    n |= int.from_bytes(rs.bytes(256), "little") & ((1 << 2047) - 1)
    enc = Encoder(plaintext_bits=n.bit_length() - 1, alpha=1.0, value_bits=16, guard_bits=4)
    k, length = 3, 100_000
    updates = [rs.normal(0, 0.4, length) for _ in range(k)]
    t0 = time.perf_counter()
    encoded = [enc.encode(u) for u in updates]
    t_enc = (time.perf_counter() - t0) / k
    assert len(encoded[0]) == -(-length // enc.slots) == 981
    total = [sum(c) % n for c in zip(*encoded)]
    t0 = time.perf_counter()
    got = enc.decode(total, length, k, modulus=n)
    t_dec = time.perf_counter() - t0
    print(f"encode {t_enc * 1e3:.1f} ms / 100k values, decode {t_dec * 1e3:.1f} ms")
    clipped = np.sum([np.clip(u, -1, 1) for u in updates], axis=0)
    assert np.abs(got - clipped).max() <= enc.quantisation_bound(k)
    # Exact against the quantised sum computed without any packing.
    q = np.sum([enc.quantise(u) for u in updates], axis=0)
    np.testing.assert_array_equal(got, q / enc.scale)
    # Spot-check a few plaintexts against the pure-Python packing model.
    for j in rs.integers(0, len(encoded[0]), 5):
        sl = updates[0][j * enc.slots:(j + 1) * enc.slots]
        assert encoded[0][j] == _ref_pack(_ref_quantise(sl, 1.0, 16), 16, 20, enc.slots)[0]
    # "Well under a second" with room for a loaded 2-core CI machine.
    assert t_enc < 0.5 and t_dec < 0.5


def test_docstring_example():
    result = doctest.testmod(hefl.encoding)
    assert result.attempted > 0 and result.failed == 0
