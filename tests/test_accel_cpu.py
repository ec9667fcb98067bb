"""The cpu backend (gmpy2, process pool) against Python's own arithmetic."""

import math
import os

import pytest

from hefl.accel import get_accelerator
from hefl.accel.cpu import CpuAccelerator
from hefl.errors import DeviceError, ModulusError, OperandRangeError


def _odd(rng, bits):
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


@pytest.fixture(scope="module")
def serial():
    acc = CpuAccelerator(workers=1)
    yield acc
    acc.close()


def test_registered_and_defaults():
    acc = get_accelerator("cpu")
    try:
        assert isinstance(acc, CpuAccelerator) and acc.name == "cpu"
        assert acc.workers == (os.cpu_count() or 1)
    finally:
        acc.close()


@pytest.mark.parametrize("mode", ["serial", "cpu_pool"])
@pytest.mark.parametrize("bits", [64, 521, 2048, 4096])
def test_powmod_matches_pow(mode, bits, request, rng):
    acc = request.getfixturevalue(mode)
    m = _odd(rng, bits)
    # Python's pow is the independent reference but slow at 4096 bits: fewer there.
    count = 37 if bits <= 521 else 4
    bases = [rng.randrange(m) for _ in range(count)] + [0, 1, m - 1]
    # Varying exponents, including 0, 1, all ones and longer than the modulus.
    exps = [rng.getrandbits(rng.randrange(1, bits + 9)) for _ in range(count)] + [0, 1, (1 << bits) - 1]
    assert acc.powmod(bases, exps, m) == [pow(b, e, m) for b, e in zip(bases, exps)]
    # One shared exponent (the r^n and c^(p-1) shape), sent once to the workers.
    e = rng.getrandbits(bits // 2 if bits <= 2048 else 256)
    assert acc.powmod(bases, [e] * len(bases), m) == [pow(b, e, m) for b in bases]


@pytest.mark.parametrize("mode", ["serial", "cpu_pool"])
def test_mulmod_and_product(mode, request, rng):
    acc = request.getfixturevalue(mode)
    m = _odd(rng, 4096)
    a = [rng.randrange(m) for _ in range(101)]
    b = [rng.randrange(m) for _ in range(101)]
    assert acc.mulmod(a, b, m) == [x * y % m for x, y in zip(a, b)]
    groups = [[rng.randrange(m) for _ in range(k)] for k in [1, 2, 3, 7, 16] * 9]
    expect = [math.prod(g) % m for g in groups]
    assert acc.product(groups, m) == expect


def test_pool_preserves_order_and_counts(rng):
    acc = CpuAccelerator(workers=2, parallel_threshold_s=0.0, chunks_per_worker=7)
    try:
        m = _odd(rng, 256)
        bases = list(range(2, 300))
        assert acc.powmod(bases, [3] * len(bases), m) == [pow(b, 3, m) for b in bases]
        assert acc.stats["parallel_batches"] == 1
        assert acc.stats["jobs"] == len(bases)
        acc.close()
        # A closed accelerator starts a new pool on demand.
        assert acc.mulmod([5], [7], m) == [35 % m]
        assert acc.powmod([5, 6], [3, 4], m) == [125 % m, 1296 % m]
    finally:
        acc.close()


def test_small_batches_stay_in_process(rng):
    acc = CpuAccelerator(workers=2)     # default threshold
    try:
        m = _odd(rng, 512)
        acc.powmod([2, 3], [5, 7], m)
        acc.mulmod([2, 3], [5, 7], m)
        assert acc.stats["parallel_batches"] == 0
        assert acc._pool is None
    finally:
        acc.close()


def test_empty_batches(serial):
    assert serial.powmod([], [], 7) == []
    assert serial.mulmod([], [], 7) == []
    assert serial.product([], 7) == []


@pytest.mark.parametrize("modulus", [10, 2, 1, 0, -7], ids=["even", "two", "one", "zero", "negative"])
def test_bad_modulus(serial, modulus):
    with pytest.raises(ModulusError):
        serial.powmod([1], [1], modulus)
    with pytest.raises(ModulusError):
        serial.mulmod([1], [1], modulus)
    with pytest.raises(ModulusError):
        serial.product([[1]], modulus)


def test_operands_out_of_range(serial):
    m = 1009
    with pytest.raises(OperandRangeError, match="base 1"):
        serial.powmod([1, m], [1, 1], m)
    with pytest.raises(OperandRangeError, match="negative"):
        serial.powmod([-1], [1], m)
    with pytest.raises(OperandRangeError, match="exponent 0 is negative"):
        serial.powmod([2], [-1], m)
    with pytest.raises(OperandRangeError):
        serial.mulmod([1], [m + 5], m)
    with pytest.raises(OperandRangeError):
        serial.mulmod([1, 2], [1], m)
    with pytest.raises(OperandRangeError, match="group 1"):
        serial.product([[1], [2, m]], m)
    with pytest.raises(OperandRangeError, match="empty"):
        serial.product([[1], []], m)


def test_bad_worker_count():
    with pytest.raises(TypeError):
        CpuAccelerator(workers=0)


def _die(*args):
    os._exit(3)


def test_dead_worker_is_a_typed_error_and_recovers(rng, monkeypatch):
    import hefl.accel.cpu as cpu
    acc = CpuAccelerator(workers=2, parallel_threshold_s=0.0)
    try:
        m = _odd(rng, 128)
        monkeypatch.setattr(cpu, "_mulmod_chunk", _die)
        with pytest.raises(DeviceError, match="worker process died"):
            acc.mulmod([1, 2, 3], [4, 5, 6], m)
        monkeypatch.undo()
        assert acc.mulmod([1, 2, 3], [4, 5, 6], m) == [4, 10, 18]
    finally:
        acc.close()
