"""The cpu backend (gmpy2, process pool) against Python's own arithmetic."""

import math
import os

import pytest
from _operands import odd_modulus as _odd
from _operands import random_table as _table

from hefl.accel import get_accelerator
from hefl.accel.cpu import CpuAccelerator
from hefl.errors import DeviceError, ModulusError, OperandRangeError


@pytest.fixture(scope="module")
def serial(cpu_serial):
    return cpu_serial


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


# --- secret exponents: powmod_sec ---------------------------------------------

@pytest.mark.parametrize("mode", ["serial", "cpu_pool", "cpu_gmpy2"])
def test_powmod_secret_matches_pow_and_uses_powmod_sec(mode, request, rng, monkeypatch):
    import gmpy2

    acc = request.getfixturevalue(mode)
    m = _odd(rng, 1024)
    bases = [rng.randrange(m) for _ in range(20)] + [0, 1, m - 1]
    exps = [rng.getrandbits(rng.randrange(1, 600)) for _ in range(20)] + [0, 1, (1 << 512) - 1]
    assert acc.powmod_secret(bases, exps, m, exp_bits=600) == [pow(b, e, m) for b, e in zip(bases, exps)]
    e = rng.getrandbits(512) | 1
    assert acc.powmod_secret(bases, [e] * len(bases), m, exp_bits=512) == [pow(b, e, m) for b in bases]
    assert acc.powmod_secret(bases[:3], [0] * 3, m, exp_bits=1) == [1, 1, 1]
    if mode == "serial":
        # In this process: the variable-time powmod is never reached.
        def refuse(*a):
            raise AssertionError("gmpy2.powmod called for a secret exponent")
        monkeypatch.setattr(gmpy2, "powmod", refuse)
        assert acc.powmod_secret(bases[:4], exps[:4], m, exp_bits=600) == [pow(b, x, m) for b, x in zip(bases[:4], exps[:4])]


def test_powmod_secret_validates(serial):
    with pytest.raises(ModulusError):
        serial.powmod_secret([1], [1], 10, exp_bits=8)
    with pytest.raises(OperandRangeError):
        serial.powmod_secret([13], [1], 13, exp_bits=8)
    with pytest.raises(OperandRangeError):
        serial.powmod_secret([1], [-1], 13, exp_bits=8)
    with pytest.raises(OperandRangeError):
        serial.powmod_secret([1, 2], [1], 13, exp_bits=8)
    assert serial.powmod_secret([], [], 13, exp_bits=8) == []
    # The declared length comes from the key: a longer exponent is refused, not padded.
    with pytest.raises(OperandRangeError, match="declared 8 bits"):
        serial.powmod_secret([2], [256], 13, exp_bits=8)
    with pytest.raises(OperandRangeError, match="exp_bits"):
        serial.powmod_secret([2], [3], 13, exp_bits=0)


# --- fixed-base table products ------------------------------------------------

@pytest.mark.parametrize("mode", ["serial", "cpu_pool", "cpu_gmpy2"])
@pytest.mark.parametrize("mod_bits,exp_bits,k", [(512, 128, 4), (1024, 256, 8), (2048, 512, 5), (130, 64, 1)])
def test_fixed_base_matches_pow(mode, mod_bits, exp_bits, k, request, rng):
    acc = request.getfixturevalue(mode)
    t = _table(rng, mod_bits, exp_bits, k)
    m = t.modulus
    exps = [0, 1, (1 << exp_bits) - 1, 1 << (exp_bits - 1)] + [rng.getrandbits(exp_bits) for _ in range(30)]
    factors = [0, 1, m - 1] + [rng.randrange(m) for _ in range(len(exps) - 3)]
    assert acc.fixed_base(t, exps) == [pow(t.base, e, m) for e in exps]
    assert acc.fixed_base(t, exps, factors) == [pow(t.base, e, m) * f % m for e, f in zip(exps, factors)]


def test_fixed_base_tables_reach_each_worker_once(rng):
    # After a table's first parallel batch, later batches send only its
    # token, exponents and factors: no restart, and small messages.
    import pickle

    acc = CpuAccelerator(workers=2, parallel_threshold_s=0.0)
    try:
        t1, t2 = _table(rng, 1024, 256, 6), _table(rng, 1024, 256, 6)
        exps = [rng.getrandbits(256) for _ in range(16)]
        assert acc.fixed_base(t1, exps) == [pow(t1.base, e, t1.modulus) for e in exps]
        assert acc.stats["pool_starts"] == 1 and acc.stats["tables_registered"] == 1
        sent = []
        real_submit = acc._pool.submit

        def spy(fn, *args):
            sent.append(len(pickle.dumps(args)))
            return real_submit(fn, *args)

        acc._pool.submit = spy
        for _ in range(3):
            assert acc.fixed_base(t1, exps) == [pow(t1.base, e, t1.modulus) for e in exps]
        assert acc.stats["pool_starts"] == 1 and acc.stats["tables_registered"] == 1
        table_size = len(pickle.dumps(t1.rows))
        assert sent and max(sent) < table_size / 20
        # A second table restarts the pool once, holding both.
        assert acc.fixed_base(t2, exps) == [pow(t2.base, e, t2.modulus) for e in exps]
        assert acc.fixed_base(t1, exps[:4]) == [pow(t1.base, e, t1.modulus) for e in exps[:4]]
        assert acc.stats["pool_starts"] == 2 and acc.stats["tables_registered"] == 2
        # A table with equal parameters but other rows is another table.
        forged = t1._replace(rows=tuple(tuple(x) for x in t1.rows))
        assert acc.fixed_base(forged, exps[:2]) == [pow(t1.base, e, t1.modulus) for e in exps[:2]]
        assert acc.stats["tables_registered"] == 3
    finally:
        acc.close()


def test_fixed_base_validates(serial, rng):
    t = _table(rng, 256, 64, 4)
    with pytest.raises(OperandRangeError, match="FixedBaseTable"):
        serial.fixed_base(t.rows, [1])
    with pytest.raises(OperandRangeError, match="bits"):
        serial.fixed_base(t, [1 << 64])
    with pytest.raises(OperandRangeError):
        serial.fixed_base(t, [-1])
    with pytest.raises(OperandRangeError):
        serial.fixed_base(t, [1, 2], [3])
    with pytest.raises(OperandRangeError):
        serial.fixed_base(t, [1], [t.modulus])
    assert serial.fixed_base(t, []) == []


class _Probe:
    """A table entry that logs every multiplication and reduction it takes part in, with operand limb counts."""

    log = None

    def __init__(self, v):
        self.v = int(v)

    @staticmethod
    def _limbs(x):
        return -(-int(x).bit_length() // 64)

    def __mul__(self, other):
        _Probe.log.append(("mul", self._limbs(self.v), self._limbs(other)))
        return _Probe(self.v * int(other))

    def __rmul__(self, other):
        _Probe.log.append(("mul", self._limbs(other), self._limbs(self.v)))
        return _Probe(int(other) * self.v)

    def __add__(self, other):
        return _Probe(self.v + int(other))

    __radd__ = __add__

    def __mod__(self, m):
        _Probe.log.append(("mod", self._limbs(self.v), self._limbs(m)))
        return _Probe(self.v % int(m))

    def __int__(self):
        return self.v

    __index__ = __int__


@pytest.mark.parametrize("k", [4, 8])
def test_fixed_base_schedule_does_not_depend_on_the_exponent(rng, k):
    """Through the real product loop, with logging entries: the sequence of
    multiplications and reductions and every operand's limb count are the
    same for α = 0, all ones, a single top bit and random α, and for the
    factor of m = 0 (1 + m·n = 1, one limb) as for a full-size one; so are
    the products' (the dividends') limb counts."""
    import hefl.accel.cpu as cpu
    from hefl.paillier import generate_keypair
    from hefl.paillier.djn import build_table, exponent_bits

    pub, _ = generate_keypair(512)
    bits = exponent_bits(pub.bits)
    table = build_table(pub.h_s, pub.n2, bits, k)
    prep = cpu._Prepared(table)
    size = cpu._limbs(pub.n2)
    assert all(cpu._limbs(x) == size for x in prep.entries)
    prep.entries = [_Probe(x) for x in prep.entries]
    alphas = [0, (1 << bits) - 1, 1 << (bits - 1), 1] + [rng.getrandbits(bits) for _ in range(4)]
    plaintexts = [0, pub.n - 1, 1, rng.randrange(pub.n)]
    schedules = set()
    for a in alphas:
        for m in plaintexts:
            _Probe.log = []
            (c,) = cpu._fixed_base_products(prep, [a], [1 + m * pub.n])
            assert c == (1 + m * pub.n) * pow(pub.h_s, a, pub.n2) % pub.n2
            schedules.add(tuple(_Probe.log))
    assert len(schedules) == 1
    (schedule,) = schedules
    w = table.windows
    # W multiplications, each reduced: the padded accumulator (the factor
    # first) times one full-size entry per row, then the reduction of a
    # product of one fixed length.
    acc_limbs, entry_limbs, product_limbs = prep.limbs
    assert entry_limbs == size and acc_limbs > size and product_limbs == acc_limbs + entry_limbs - 1
    assert schedule == (("mul", acc_limbs, size), ("mod", product_limbs, size)) * w


def test_public_exponents_run_on_the_native_power(monkeypatch, rng):
    # r^n's base r is secret: where the kernels run, powmod with a long
    # exponent never reaches gmpy2's variable-time powmod.
    import gmpy2

    from hefl.accel import native
    if native.kernels() is None:
        pytest.skip(f"native kernels unavailable here: {native.unavailable_reason()}")

    def refuse(*a):
        raise AssertionError("gmpy2.powmod used for a 16-bit-or-longer exponent")

    m = _odd(rng, 1024)
    bases = [0, 1, m - 1] + [rng.randrange(m) for _ in range(10)]
    with CpuAccelerator(workers=1) as acc:
        monkeypatch.setattr(gmpy2, "powmod", refuse)
        e = rng.getrandbits(1024)
        assert acc.powmod(bases, [e] * len(bases), m) == [pow(b, e, m) for b in bases]
        exps = [rng.getrandbits(16) | 1 << 15 for _ in bases]
        assert acc.powmod(bases, exps, m) == [pow(b, x, m) for b, x in zip(bases, exps)]
        monkeypatch.undo()
        # Short exponents stay on gmpy2 (the kernel's table would cost more).
        assert acc.powmod(bases, [3] * len(bases), m) == [pow(b, 3, m) for b in bases]
