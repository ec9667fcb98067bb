"""The AVX-512 IFMA kernels (hefl.accel.native, mm52.c) against Python's pow and the golden fixed-base model.

Widths from one limb to 4096-bit moduli (the real sizes: p², n² of 2048-bit
keys), directed corners (0, 1, m - 1, R mod m, exponent 0 / 1 / all ones,
moduli with a small top word), batches that are not a multiple of the 8
lanes, and the schedule: the counting build shows the same number of
multiplications, reductions and table scans for every exponent and operand.
"""

import pickle

import gmpy2
import pytest
from _operands import odd_modulus as _odd
from _operands import random_table as _table

from hefl.accel import native
from hefl.golden.fixedbase import fixed_base_pow
from hefl.golden.montgomery import mont_constants

KERNELS = native.kernels()
pytestmark = pytest.mark.skipif(KERNELS is None, reason=f"native kernels unavailable: {native.unavailable_reason()}")

# Modulus widths: one digit, digit and limb boundaries, small top words
# (bit lengths just past a multiple of 52 or 64), and the real sizes.
WIDTHS = [3, 52, 64, 65, 104, 105, 250, 521, 1024, 1040, 2047, 2048, 3072, 4096]


def _corners(rng, m, count):
    c = mont_constants(m, native.DIGIT_BITS)       # the kernels' R = 2^(52 n)
    return [0, 1, m - 1, c.r_mod_n, c.r2_mod_n] + [rng.randrange(m) for _ in range(count)]


@pytest.mark.parametrize("bits", WIDTHS)
def test_powm_matches_pow(bits, rng):
    m = _odd(rng, bits)
    bases = _corners(rng, m, 12)
    for ebits in (1, 5, 6, 64, 333, 1024):
        exps = [0, 1, (1 << ebits) - 1] + [rng.getrandbits(ebits) for _ in bases[3:]]
        assert KERNELS.powm(bases, exps, m, ebits) == [pow(b, e, m) for b, e in zip(bases, exps)]
    # One exponent for the whole batch (decryption's p - 1), declared longer than it is.
    e = rng.getrandbits(200)
    assert KERNELS.powm(bases, e, m, 256) == [pow(b, e, m) for b in bases]


@pytest.mark.parametrize("count", [1, 7, 8, 9, 17])
def test_powm_batches_of_any_size(count, rng):
    m = _odd(rng, 2048)
    bases = [rng.randrange(m) for _ in range(count)]
    exps = [rng.getrandbits(1024) for _ in range(count)]
    assert KERNELS.powm(bases, exps, m, 1024) == [int(gmpy2.powmod_sec(b, e, m)) if e else 1
                                                  for b, e in zip(bases, exps)]


@pytest.mark.parametrize("bits,exp_bits,k", [(3, 8, 1), (64, 40, 3), (105, 52, 4), (521, 130, 5),
                                             (1040, 256, 8), (2048, 512, 11), (4096, 1024, 6)])
def test_fixed_base_matches_golden(bits, exp_bits, k, rng):
    t = _table(rng, bits, exp_bits, k)
    nt = native.NativeTable(t)
    m = t.modulus
    exps = [0, 1, (1 << exp_bits) - 1, 1 << (exp_bits - 1)] + [rng.getrandbits(exp_bits) for _ in range(9)]
    factors = _corners(rng, m, len(exps) - 5)
    assert KERNELS.fixed_base(nt, exps) == [fixed_base_pow(t, e) for e in exps]
    assert KERNELS.fixed_base(nt, exps, factors) == [fixed_base_pow(t, e) * f % m for e, f in zip(exps, factors)]
    # The pool's spawn/forkserver path pickles the table.
    again = pickle.loads(pickle.dumps(nt))
    assert KERNELS.fixed_base(again, exps[:9], factors[:9]) == [fixed_base_pow(t, e) * f % m
                                                                for e, f in zip(exps[:9], factors[:9])]


def test_even_modulus_refused():
    with pytest.raises(ValueError, match="odd"):
        KERNELS.powm([1], [1], 10, 4)


@pytest.fixture(scope="module")
def counting():
    return native.counting_kernels()


def test_powm_schedule_does_not_depend_on_values(counting, rng):
    kern, counts = counting
    m = _odd(rng, 1024)
    ebits = 512
    windows = -(-ebits // native.POWM_WINDOW_BITS)
    tables = (1 << native.POWM_WINDOW_BITS) - 1
    seen = set()
    for exps in ([0] * 8, [(1 << ebits) - 1] * 8, [1] * 8, [1 << (ebits - 1)] * 8,
                 [rng.getrandbits(ebits) for _ in range(8)]):
        for bases in ([0] * 8, [1] * 8, [m - 1] * 8, [rng.randrange(m) for _ in range(8)]):
            assert kern.powm(bases, exps, m, ebits) == [pow(b, e, m) for b, e in zip(bases, exps)]
            seen.add(counts())
    # One schedule: the table, ebits squarings, one product per window after
    # the first, the conversion out; one scan per window; one reduction.
    squarings = (windows - 1) * native.POWM_WINDOW_BITS
    assert seen == {(tables + squarings + (windows - 1) + 1, 1, windows)}


def test_fixed_base_schedule_does_not_depend_on_values(counting, rng):
    kern, counts = counting
    t = _table(rng, 1024, 256, 5)
    nt = native.NativeTable(t)
    m = t.modulus
    seen = set()
    for exps in ([0] * 8, [(1 << 256) - 1] * 8, [1] * 8, [rng.getrandbits(256) for _ in range(8)]):
        for factors in ([0] * 8, [1] * 8, [m - 1] * 8, [rng.randrange(m) for _ in range(8)]):
            kern.fixed_base(nt, exps, factors)
            seen.add(counts())
    # W table products and the one fixing factor R^(W+1), one reduction, no scan.
    assert seen == {(t.windows + 1, 1, 0)}


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(native.NATIVE_ENV, "0")
    lib, reason = native._load()
    assert lib is None and native.NATIVE_ENV in reason


def test_cpu_backend_reports_and_requires_its_kernel(monkeypatch):
    from hefl.accel.cpu import CpuAccelerator
    from hefl.errors import BackendUnavailable

    with CpuAccelerator(workers=1) as acc:
        assert acc.kernel == "avx512-ifma"
    with CpuAccelerator(workers=1, native=False) as acc:
        assert acc.kernel.startswith("gmpy2")
    monkeypatch.setattr(native, "_state", {"lib": None, "reason": "no IFMA (test)", "tried": True})
    with pytest.raises(BackendUnavailable, match="no IFMA"):
        CpuAccelerator(workers=1, native=True)


def test_large_batches_go_in_slices(rng):
    # More numbers than one library call takes (Ctrl-C is seen between calls).
    m = _odd(rng, 256)
    count = 2 * native._SLICE + 3
    bases = tuple(rng.randrange(m) for _ in range(count))
    exps = tuple(rng.getrandbits(64) for _ in range(count))
    assert KERNELS.powm(bases, exps, m, 64) == [pow(b, e, m) for b, e in zip(bases, exps)]
    t = _table(rng, 256, 64, 4)
    nt = native.NativeTable(t)
    assert KERNELS.fixed_base(nt, exps) == [fixed_base_pow(t, e) for e in exps]
