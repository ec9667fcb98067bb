"""The fixed-base table model against ``pow``: random and directed exponents, several widths."""

import pytest

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden import fixedbase as fb


def _unit(rng, m):
    while True:
        g = rng.randrange(2, m)
        if fb.gcd(g, m) == 1:
            return g


def _odd_modulus(rng, bits):
    return rng.getrandbits(bits) | (1 << (bits - 1)) | 1


@pytest.mark.parametrize("mod_bits,exp_bits,k", [
    (64, 32, 1), (64, 33, 4), (128, 64, 4), (256, 128, 5), (512, 256, 8), (2048, 1024, 4),
])
def test_matches_pow(rng, mod_bits, exp_bits, k):
    m = _odd_modulus(rng, mod_bits)
    g = _unit(rng, m)
    t = fb.build_table(g, m, exp_bits, k)
    assert t.windows == -(-exp_bits // k) == len(fb.digits(0, exp_bits, k))
    corners = [0, 1, 2, (1 << exp_bits) - 1, 1 << (exp_bits - 1), (1 << k) - 1, 1 << k]
    for e in corners + [rng.getrandbits(exp_bits) for _ in range(20)]:
        assert fb.fixed_base_pow(t, e) == pow(g, e, m), (e, k)


def test_every_exponent_reads_one_entry_per_row(rng):
    m = _odd_modulus(rng, 96)
    t = fb.build_table(_unit(rng, m), m, 40, 3)
    for e in (0, (1 << 40) - 1, rng.getrandbits(40)):
        idx = fb.entry_indices(t, e)
        assert len(idx) == t.windows
        assert [i >> t.k for i in idx] == list(range(t.windows))


def test_no_entry_is_one(rng):
    """Offset digits: no factor is the number 1 (GMP would multiply it faster)."""
    m = _odd_modulus(rng, 256)
    t = fb.build_table(_unit(rng, m), m, 128, 4)
    assert all(x != 1 for row in t.rows for x in row)
    # Plain digits would have put 1 at d = 0 of every row.
    assert all(row[0] != 1 for row in t.rows)


def test_offsets_cancel():
    assert fb.offset_total(8, 4) == 1 + 16
    assert fb.offset_total(9, 4) == 1 + 16 + 256


def test_table_size():
    assert fb.table_bytes(4096, 1024, 8) == 128 * 256 * 512


@pytest.mark.parametrize("e", [-1, 1 << 16, True, 3.0, "5"])
def test_bad_exponents(e):
    with pytest.raises(OperandRangeError):
        fb.digits(e, 16, 4)


def test_bad_base_and_modulus(rng):
    with pytest.raises(ModulusError):
        fb.build_table(2, 1, 8, 4)
    m = 3 * 5 * 7 * 11
    for g in (0, m, 3, -1):
        with pytest.raises(OperandRangeError):
            fb.build_table(g, m, 8, 4)
    with pytest.raises(OperandRangeError):
        fb.build_table(2, m, 8, 0)


def test_accelerator_default_fixed_base(rng):
    """The Accelerator's fixed_base call against pow, through the cpu backend's product."""
    from hefl.accel import get_accelerator
    m = _odd_modulus(rng, 256)
    g = _unit(rng, m)
    t = fb.build_table(g, m, 64, 4)
    exps = [0, 1, (1 << 64) - 1] + [rng.getrandbits(64) for _ in range(5)]
    factors = [rng.randrange(m) for _ in exps]
    with get_accelerator("cpu", workers=1) as acc:
        assert acc.fixed_base(t, exps) == [pow(g, e, m) for e in exps]
        assert acc.fixed_base(t, exps, factors) == [pow(g, e, m) * f % m for e, f in zip(exps, factors)]
        with pytest.raises(OperandRangeError):
            acc.fixed_base(t, [1 << 64])
        with pytest.raises(OperandRangeError):
            acc.fixed_base(t, [1, 2], [3])
        with pytest.raises(OperandRangeError):
            acc.fixed_base((g, m), [1])
