"""The device driver (DeviceAccelerator) over the simulated device.

The kernel is the behavioural stand-in (see ``sim/hefl/sim/standin_kernel.py``)
so these tests isolate the driver: limb packing against the golden
``to_words``, descriptor building, batch and exponent splitting, status
decoding, validation before the device, timeouts and verification. Every
result is checked against Python's ``pow`` / products.
"""

import math
import time

import numpy as np
import pytest

from hefl.accel.device import DeviceAccelerator, pack_words, unpack_words
from hefl.errors import (
    DeviceError,
    DeviceStatusError,
    DeviceTimeout,
    ModulusError,
    OperandRangeError,
    VerificationError,
)
from hefl.golden.montgomery import from_words, to_words
from hefl.hw.params import MONTMUL_WORD_BITS
from hefl.hw.regmap import LAYOUT
from hefl.sim.standin_kernel import standin_library
from hefl.transport.sim import SimTransport

pytestmark = pytest.mark.sim     # builds and runs a Verilator model

LIMB, LIMB_BITS = LAYOUT.limb_bytes, LAYOUT.limb_bits
WD = MONTMUL_WORD_BITS      # the design word (DSP48E2 tiling)


# Around the packer's byte-window path (w <= limb bits - 7) and up to a whole limb.
@pytest.mark.parametrize("w", [1, 7, 17, 32, WD, LIMB_BITS - 7, LIMB_BITS - 6, LIMB_BITS - 1,
                               LIMB_BITS])
def test_pack_words_matches_golden(rng, w):
    s = 7
    vals = [0, 1, (1 << (w * s)) - 1] + [rng.getrandbits(rng.randrange(1, w * s + 1)) for _ in range(40)]
    arr = pack_words(vals, w, s)
    assert arr.dtype == np.uint64 and arr.shape == (len(vals), s)
    assert [list(map(int, row)) for row in arr] == [to_words(v, w, s) for v in vals]
    assert unpack_words(arr, w) == vals
    assert [from_words(list(map(int, row)), w) for row in arr] == vals


def test_pack_words_rejects_overflow():
    with pytest.raises(OperandRangeError):
        pack_words([1 << (WD * 3)], WD, 3)
    with pytest.raises(OperandRangeError):
        pack_words([1 << 64], 32, 2)


def test_unpack_rejects_dirty_limbs():
    arr = np.array([[1 << WD, 0]], dtype=np.uint64)
    with pytest.raises(DeviceError, match="limb"):
        unpack_words(arr, WD)


GEOMS = [dict(word_bits=32, words=8, max_exp_bits=192),
         dict(word_bits=WD, words=6, max_exp_bits=128)]


@pytest.fixture(scope="module", params=GEOMS, ids=lambda p: f"w{p['word_bits']}")
def lib(request):
    return request.param, standin_library(**request.param)


def _modulus(rng, geom):
    bits = geom["word_bits"] * geom["words"] - 2
    return rng.getrandbits(bits) | 1 | 1 << (bits - 1)


def _accel(lib, rng, **kw):
    return DeviceAccelerator(SimTransport(lib, seed=rng.getrandbits(32), stall_percent=kw.pop("stall", 10)),
                             **kw)


def test_hwcfg_read(lib, rng):
    geom, path = lib
    with _accel(path, rng) as acc:
        assert acc.hw.word_bits == geom["word_bits"] and acc.hw.words == geom["words"]
        assert acc.hw.max_exp_bits == geom["max_exp_bits"]
        assert acc.hw.max_modulus_bits == geom["word_bits"] * geom["words"] - 2


def test_powmod_mulmod_product_against_python(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    X = geom["max_exp_bits"]
    with _accel(path, rng) as acc:
        bases = [0, 1, n - 1] + [rng.randrange(n) for _ in range(20)]
        exps = [0, 1, (1 << X) - 1] + [rng.getrandbits(rng.randrange(1, X + 1)) for _ in range(20)]
        assert acc.powmod(bases, exps, n) == [pow(b, e, n) for b, e in zip(bases, exps)]
        a = [rng.randrange(n) for _ in range(15)]
        b = [rng.randrange(n) for _ in range(15)]
        assert acc.mulmod(a, b, n) == [x * y % n for x, y in zip(a, b)]
        groups = [[rng.randrange(n) for _ in range(k)] for k in (1, 2, 3, 7, 1, 5)]
        assert acc.product(groups, n) == [math.prod(g) % n for g in groups]
        # A second modulus on the same device: constants are per modulus.
        n2 = _modulus(rng, geom)
        a2 = [x % n2 for x in a[:3]]
        assert acc.mulmod(a2, [1, 2, 3], n2) == [x * k % n2 for x, k in zip(a2, (1, 2, 3))]
        assert acc.stats["batches"] == 4 and acc.stats["device_cycles"] > 0
        assert acc.transport.protocol_errors == 0


def test_declared_exponent_length_is_uniform(lib, rng):
    geom, path = lib
    with _accel(path, rng) as acc:
        k, X = acc.hw.window_bits, acc.hw.max_exp_bits
        assert acc.declared_exp_bits(0) == k
        assert acc.declared_exp_bits(1) == k
        assert acc.declared_exp_bits(k + 1) == 2 * k
        assert acc.declared_exp_bits(X) == X


def _record_runs(acc):
    """The (op, declared count) of every uniform batch ``acc`` sends from now on."""
    seen = []
    real = acc._run_uniform

    def run(op, count, body, t):
        seen.append((op, count))
        return real(op, count, body, t)
    acc._run_uniform = run
    return seen


def test_declared_length_from_the_caller(lib, rng):
    # exp_bits= declares the length (secret exponents: from the key size); the
    # descriptor then carries it whatever the values, in one batch or split.
    geom, path = lib
    n = _modulus(rng, geom)
    X = geom["max_exp_bits"]
    with _accel(path, rng) as acc:
        seen = _record_runs(acc)
        b = [rng.randrange(n) for _ in range(3)]
        e = [3, 0, (1 << (X - 7)) - 1]
        assert acc.powmod(b, e, n, exp_bits=X - 7) == [pow(x, y, n) for x, y in zip(b, e)]
        assert seen == [(LAYOUT.op("powmod"), acc.declared_exp_bits(X - 7))]
        seen.clear()
        assert acc.powmod(b, [1, 2, 3], n, exp_bits=2 * X) == [pow(x, y, n) for x, y in zip(b, (1, 2, 3))]
        assert len(seen) > 1     # split by the declared length although the values are tiny
        with pytest.raises(OperandRangeError):
            acc.powmod(b, [1 << 10] * 3, n, exp_bits=10)
        with pytest.raises(OperandRangeError):
            acc.powmod(b, [1] * 3, n, exp_bits=0)


def test_secret_exponents_reach_the_card_at_the_declared_length(lib, rng):
    # powmod_secret (private-key exponents, e.g. q mod (p - 1)): the card sees
    # the length declared from the key size, not the values' own, and the
    # verification sample is recomputed with powmod_sec.
    geom, path = lib
    n = _modulus(rng, geom)
    X = geom["max_exp_bits"]
    with _accel(path, rng) as acc:
        acc.verify = 1.0
        seen = _record_runs(acc)
        b = [rng.randrange(n) for _ in range(4)]
        for e in ([1, 2, 3, 0], [(1 << (X - 3)) - 1] * 4):
            seen.clear()
            assert acc.powmod_secret(b, e, n, exp_bits=X - 3) == [pow(x, y, n) for x, y in zip(b, e)]
            assert seen == [(LAYOUT.op("powmod"), acc.declared_exp_bits(X - 3))]
        assert acc.stats["verified"] == 8
        with pytest.raises(OperandRangeError):
            acc.powmod_secret(b, [1 << (X - 3)] * 4, n, exp_bits=X - 3)


def test_fixed_base_without_the_feature_uses_products(lib, rng):
    # The stand-in kernel reports no TABLE_PRODUCT (hw_features 0): the driver
    # sends the generic product jobs and uploads no table.
    from hefl.golden.fixedbase import build_table
    geom, path = lib
    n = _modulus(rng, geom)
    with _accel(path, rng) as acc:
        assert not acc.hw.has("table_product")
        base = next(b for b in iter(lambda: rng.randrange(2, n), None) if math.gcd(b, n) == 1)
        table = build_table(base, n, 40, 4)
        exps = [0, (1 << 40) - 1] + [rng.getrandbits(40) for _ in range(4)]
        fs = [rng.randrange(n) for _ in exps]
        assert acc.fixed_base(table, exps, fs) == [pow(table.base, e, n) * f % n
                                                   for e, f in zip(exps, fs)]
        assert acc.stats["table_uploads"] == 0 and acc.stats["batches"] >= 1


def test_long_exponents_are_split(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    X = geom["max_exp_bits"]
    with _accel(path, rng) as acc:
        bases = [rng.randrange(n) for _ in range(4)]
        exps = [rng.getrandbits(3 * X + 5) for _ in range(3)] + [1 << (2 * X)]
        assert acc.powmod(bases, exps, n) == [pow(b, e, n) for b, e in zip(bases, exps)]
        assert acc.stats["batches"] > 1


def test_batches_are_split_to_fit(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    s = geom["words"]
    # Room for about three MULMOD jobs per descriptor.
    fixed = LAYOUT.header_limbs + LAYOUT.constants_limbs(s)
    with _accel(path, rng, max_batch_bytes=LIMB * (fixed + 3 * (1 + 2 * s))) as acc:
        a = [rng.randrange(n) for _ in range(10)]
        b = [rng.randrange(n) for _ in range(10)]
        assert acc.mulmod(a, b, n) == [x * y % n for x, y in zip(a, b)]
        assert acc.stats["batches"] == 4
    with _accel(path, rng, max_jobs=4) as acc:
        groups = [[rng.randrange(n) for _ in range(rng.randrange(1, 4))] for _ in range(9)]
        assert acc.product(groups, n) == [math.prod(g) % n for g in groups]
        assert acc.stats["batches"] == 3


class _Spy(SimTransport):
    """Counts kernel starts, so tests can prove nothing reached the device."""

    starts = 0

    def start(self, **args):
        self.starts += 1
        return super().start(**args)


def test_bad_input_rejected_before_the_device(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    t = _Spy(path)
    with DeviceAccelerator(t) as acc:
        with pytest.raises(OperandRangeError):
            acc.mulmod([n], [1], n)
        with pytest.raises(OperandRangeError):
            acc.powmod([n + 5], [3], n)
        with pytest.raises(OperandRangeError):
            acc.product([[1, n]], n)
        with pytest.raises(ModulusError, match="odd"):
            acc.mulmod([1], [1], n + 1)
        with pytest.raises(OperandRangeError, match="negative"):
            acc.powmod([2], [-1], n)
        with pytest.raises(ModulusError, match="limit"):
            wide = (1 << (geom["word_bits"] * geom["words"])) + 1
            acc.mulmod([1], [1], wide)
        assert t.starts == 0


def test_device_status_becomes_typed_error(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)

    class Lying(SimTransport):
        # Declares one word more than the hardware has: status "geometry".
        def write(self, buf, data, offset=0):
            data = bytearray(data)
            if len(data) > LIMB * LAYOUT.header_limbs and buf.size >= len(data) and offset == 0 \
                    and int.from_bytes(data[:LIMB], "little") == LAYOUT.magic_word:
                i = LAYOUT.desc.index("words")
                limb = slice(LIMB * i, LIMB * (i + 1))
                data[limb] = (int.from_bytes(data[limb], "little") + 1).to_bytes(LIMB, "little")
            return super().write(buf, data, offset)

    with DeviceAccelerator(Lying(path)) as acc:
        with pytest.raises(DeviceStatusError, match="words s or word bits w differ") as e:
            acc.mulmod([2], [3], n)
        assert e.value.flags == ["geometry"] and e.value.status == LAYOUT.status_flag("geometry")


def test_hang_gives_timeout_within_deadline(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    t = SimTransport(path, slice_cycles=20_000)
    with DeviceAccelerator(t, timeout=0.5) as acc:
        t.fault_hang(True)
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout):
            acc.powmod([2, 3], [5, 7], n)
        assert time.monotonic() - t0 < 2.0


def test_corrupt_result_caught_by_verification(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    t = SimTransport(path)
    with DeviceAccelerator(t, verify=1.0, verify_seed=rng.getrandbits(32)) as acc:
        a = [rng.randrange(1, n) for _ in range(8)]
        b = [rng.randrange(1, n) for _ in range(8)]
        assert acc.mulmod(a, b, n) == [x * y % n for x, y in zip(a, b)]   # clean run first
        rbuf = acc.card_for(n).buffers["result"]
        first = rbuf.address + LIMB * LAYOUT.result_limb(0, acc.hw.words)
        t.fault_corrupt(first, rbuf.address + rbuf.size, bit=1)
        with pytest.raises(VerificationError, match="disagrees with the CPU"):
            acc.mulmod(a, b, n)
        assert not t.corrupt_pending


def test_verify_sample_sizes(lib, rng):
    geom, path = lib
    n = _modulus(rng, geom)
    for verify, want in ((0, 0), (3, 3), (0.5, 5), (1.0, 10)):
        with _accel(path, rng, verify=verify) as acc:
            acc.mulmod(list(range(10)), list(range(10)), n)
            assert acc.stats["verified"] == want
    with pytest.raises(ValueError):
        DeviceAccelerator(SimTransport(path), verify=1.5)
