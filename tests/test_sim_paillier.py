"""The ``sim`` backend on the real kernel RTL (Verilator model of ``hefl_kernel``).

Paillier runs unchanged on ``cpu`` and ``sim``: the same keys, plaintexts
and randomness must give bit-identical ciphertexts, products, scalar
multiples and decryptions. Fault switches of the harness check the error
paths end to end: a memory that stops answering gives ``DeviceTimeout`` in
time, a flipped result bit is caught by verification. Small keys keep the
simulated kernel small (the 256-bit class of ``SIM_OPERAND_BITS``).
"""

import math
import time

import pytest

from hefl.accel import get_accelerator
from hefl.accel.device import DeviceAccelerator
from hefl.accel.sim import sim_accelerator
from hefl.errors import (
    DeviceTimeout,
    ModulusError,
    OperandRangeError,
    VerificationError,
)
from hefl.hw.regmap import LAYOUT
from hefl.paillier import Paillier, generate_keypair

pytestmark = pytest.mark.sim     # builds and runs a Verilator model

KEY_BITS = 112          # n² of 224 bits: the 256-bit simulated kernel


@pytest.fixture(scope="module")
def sim():
    acc = get_accelerator("sim", operand_bits=256, stall_percent=15, seed=7)
    yield acc
    acc.close()


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(KEY_BITS)


def test_paillier_identical_on_cpu_and_sim(sim, keys, rng):
    pub, priv = keys
    cpu = get_accelerator("cpu")
    he_sim, he_cpu = Paillier(pub, priv, accel=sim), Paillier(pub, priv, accel=cpu)
    n = pub.n
    ms = [0, 1, n - 1] + [rng.randrange(n) for _ in range(9)]
    rs = he_cpu.random_r(len(ms))
    c_cpu = he_cpu.encrypt(ms, randomness=rs)
    c_sim = he_sim.encrypt(ms, randomness=rs)
    assert c_sim.ciphertexts == c_cpu.ciphertexts            # CRT powmods p², q² + mulmod n²
    assert he_sim.decrypt(c_sim) == ms == he_cpu.decrypt(c_cpu)
    # Aggregation (PRODUCT) of three vectors, as the FedAvg aggregator does.
    vs = [he_cpu.encrypt([rng.randrange(n // 4) for _ in range(5)]) for _ in range(3)]
    agg_sim, agg_cpu = he_sim.aggregate(vs), he_cpu.aggregate(vs)
    assert agg_sim.ciphertexts == agg_cpu.ciphertexts
    assert he_sim.decrypt(agg_sim) == he_cpu.decrypt(agg_cpu)
    # Scalar multiples (POWMOD mod n², negative scalars through the inverse).
    ks = [rng.randrange(-1000, 1000) for _ in range(5)]
    assert he_sim.scalar_mul(vs[0], ks).ciphertexts == he_cpu.scalar_mul(vs[0], ks).ciphertexts
    # Public-key-only encryption: r^n mod n² with |n|-bit exponents.
    pub_sim, pub_cpu = Paillier(pub, accel=sim), Paillier(pub, accel=cpu)
    assert pub_sim.encrypt(ms[:4], randomness=rs[:4]).ciphertexts == \
        pub_cpu.encrypt(ms[:4], randomness=rs[:4]).ciphertexts
    assert sim.stats["cycles"] > 0 and sim.stats["batches"] > 0
    assert sim.transport.protocol_errors == 0, sim.transport.last_error
    cpu.close()


def test_powmod_corners_on_the_rtl(sim, rng):
    n = rng.getrandbits(200) | 1 | 1 << 199
    bases = [0, 1, n - 1, 2] + [rng.randrange(n) for _ in range(6)]
    exps = [5, 0, 1, (1 << 300) - 1] + [rng.getrandbits(rng.randrange(1, 400)) for _ in range(6)]
    assert sim.powmod(bases, exps, n) == [pow(b, e, n) for b, e in zip(bases, exps)]
    # Products of K = 1 (a copy) up to K = 9 factors, and the smallest moduli.
    groups = [[rng.randrange(n) for _ in range(k)] for k in (1, 2, 9, 1)]
    want = [math.prod(g) % n for g in groups]
    assert sim.product(groups, n) == want
    for m in (3, 5, (1 << 250) - 1):
        assert sim.mulmod([m - 1, 2 % m], [m - 1, m - 1], m) == [1, 2 * (m - 1) % m]
        assert sim.powmod([m - 1, 0], [3, 0], m) == [m - 1, 1]


def test_bad_operands_never_reach_the_device(sim):
    before = (sim.stats["batches"], sim.transport.cycles)
    n = (1 << 127) - 1
    with pytest.raises(OperandRangeError):
        sim.mulmod([n], [1], n)
    with pytest.raises(OperandRangeError):
        sim.powmod([3], [-2], n)
    with pytest.raises(ModulusError):
        sim.product([[1, 2]], n + 1)
    with pytest.raises(ModulusError):
        sim.mulmod([1], [1], (1 << 400) + 1)       # wider than the kernel
    assert (sim.stats["batches"], sim.transport.cycles) == before


def test_hang_fault_gives_timeout_within_deadline(keys):
    acc = sim_accelerator(operand_bits=256, timeout=0.5)
    try:
        tr = acc.transport
        tr.slice_cycles = 50_000
        tr.fault_hang(True)
        pub, _ = keys
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout, match="did not raise ap_done within 0.5 s"):
            acc.mulmod([2, 3], [4, 5], pub.n2)
        assert time.monotonic() - t0 < 2.5
    finally:
        acc.close()


def test_corrupt_fault_caught_by_verification(keys, seed):
    pub, priv = keys
    acc = sim_accelerator(operand_bits=256, verify=1.0, verify_seed=seed)
    try:
        he = Paillier(pub, priv, accel=acc)
        cv = he.encrypt(list(range(6)))
        agg = he.aggregate([cv, cv])        # a clean run sizes the buffers
        assert he.decrypt(agg) == [2 * i for i in range(6)]
        rbuf = acc.card_for(pub.n2).buffers["result"]
        first = rbuf.address + LAYOUT.limb_bytes * LAYOUT.result_limb(0, acc.hw.words)
        acc.transport.fault_corrupt(first, rbuf.address + rbuf.size, bit=3)
        with pytest.raises(VerificationError):
            he.aggregate([cv, cv])
        assert not acc.transport.corrupt_pending
    finally:
        acc.close()


def test_auto_sizing_picks_the_smallest_kernel():
    acc = get_accelerator("sim")
    try:
        assert isinstance(acc, DeviceAccelerator) and acc.name == "sim"
        assert acc.widths[0] == 256
        assert acc.cards == {} and acc.hw is None   # nothing built until a call needs it
        card = acc.card_for((1 << 200) + 1)
        assert card.hw.max_modulus_bits >= 200 and list(acc.cards) == [256]
        assert acc.hw is card.hw and acc.transport is card.transport
        with pytest.raises(ModulusError, match="largest sim kernel"):
            acc.card_for((1 << acc.widths[-1]) + 1)
    finally:
        acc.close()


def test_interrupt_driven_wait_and_recovery_after_timeout(rng):
    # The host waits on the kernel's `interrupt` pin (gie, ier, isr of the
    # register map) instead of polling ctrl; after a timed-out run the
    # driver resets the kernel so the next call works.
    from hefl.accel.device import DeviceAccelerator
    from hefl.accel.sim import kernel_library, kernel_params
    from hefl.transport.sim import SimTransport
    tr = SimTransport(kernel_library(**kernel_params(256)), use_interrupt=True, slice_cycles=50_000)
    with DeviceAccelerator(tr, timeout=0.5) as acc:
        n = rng.getrandbits(240) | 1 | 1 << 239
        a = [rng.randrange(n) for _ in range(5)]
        for _ in range(2):    # back to back: the acknowledged interrupt must not linger
            assert acc.mulmod(a, a[::-1], n) == [x * y % n for x, y in zip(a, a[::-1])]
        tr.fault_hang(True)
        with pytest.raises(DeviceTimeout):
            acc.mulmod(a, a, n)
        tr.fault_hang(False)
        assert acc.powmod(a, [65537] * 5, n) == [pow(x, 65537, n) for x in a]


@pytest.mark.slow
def test_paillier_1024_shapes_on_the_2048_bit_kernel(rng):
    # The sizes `make sim` and the demo run: n² of 2048 bits, r^n with a
    # 1024-bit exponent, ciphertext products and aggregation.
    import gmpy2
    acc = sim_accelerator(operand_bits=2048)
    try:
        assert acc.hw.max_modulus_bits >= 2048
        n = rng.getrandbits(1024) | 1 | 1 << 1023
        n2 = n * n
        rs = [rng.randrange(1, n) for _ in range(2)]
        assert acc.powmod(rs, [n, n], n2) == [int(gmpy2.powmod(r, n, n2)) for r in rs]
        a = [rng.randrange(n2) for _ in range(20)]
        b = [rng.randrange(n2) for _ in range(20)]
        assert acc.mulmod(a, b, n2) == [x * y % n2 for x, y in zip(a, b)]
        groups = [[rng.randrange(n2) for _ in range(3)] for _ in range(10)]
        assert acc.product(groups, n2) == [g[0] * g[1] % n2 * g[2] % n2 for g in groups]
        assert acc.transport.protocol_errors == 0
    finally:
        acc.close()


def test_fixed_base_on_the_card_is_bit_identical_to_cpu(sim, keys, rng):
    # DJN-shaped encryption: h_s^α · (1 + m·n) mod n² with α of ⌈|n|/2⌉ bits,
    # from a table the driver rebuilds with the card's window, converts to
    # Montgomery form and uploads once; each encryption is one TABLE_PRODUCT job.
    from hefl.golden.fixedbase import build_table, windows
    pub, _ = keys
    n, n2 = pub.n, pub.n2
    exp_bits = -(-n.bit_length() // 2)
    base = pow(rng.randrange(2, n), 2 * n, n2)          # an n-th power, like h_s
    table = build_table(base, n2, exp_bits, 4)          # the CPU's window; the card uses its own
    cpu = get_accelerator("cpu")
    alphas = [0, 1, (1 << exp_bits) - 1] + [rng.getrandbits(exp_bits) for _ in range(9)]
    ms = [rng.randrange(n) for _ in alphas]
    factors = [(1 + m * n) % n2 for m in ms]
    uploads, batches = sim.stats["table_uploads"], sim.stats["batches"]
    got = sim.fixed_base(table, alphas, factors)
    assert got == cpu.fixed_base(table, alphas, factors)
    assert got == [pow(base, a, n2) * f % n2 for a, f in zip(alphas, factors)]
    assert sim.fixed_base(table, alphas[:3]) == [pow(base, a, n2) for a in alphas[:3]]
    # One upload for both calls, one device batch each.
    assert sim.stats["table_uploads"] == uploads + 1
    assert sim.stats["batches"] == batches + 2
    k = sim.card_window_bits(exp_bits)
    assert k == 8 and windows(exp_bits, k) << k <= 1 << LAYOUT.table_index_bits
    # A table for another modulus is uploaded separately, its results right too.
    other = build_table(3, n2 - 2, exp_bits, 4)     # n2 - 2 is odd and not a multiple of 3
    assert sim.fixed_base(other, alphas[:4]) == [pow(3, a, n2 - 2) for a in alphas[:4]]
    assert sim.stats["table_uploads"] == uploads + 2
    assert sim.transport.protocol_errors == 0, sim.transport.last_error
    cpu.close()


@pytest.fixture(scope="module")
def quiet_sim():
    # No memory stalls: kernel cycles are then exactly repeatable.
    acc = get_accelerator("sim", operand_bits=256, stall_percent=0)
    yield acc
    acc.close()


def test_fixed_base_cycles_do_not_depend_on_the_exponent(quiet_sim, rng):
    # One job per batch: the kernel's cycles are a function of W only (the
    # memory model answers every address alike; a real DRAM need not).
    from hefl.golden.fixedbase import build_table
    sim = quiet_sim
    n = rng.getrandbits(200) | 1 | 1 << 199
    table = build_table(2, n, 56, 8)                    # n odd: 2 is a unit
    cycles = []
    for a in (0, 1, (1 << 56) - 1, rng.getrandbits(56), 1 << 55):
        c0 = sim.stats["cycles"]
        assert sim.fixed_base(table, [a], [7]) == [pow(2, a, n) * 7 % n]
        cycles.append(sim.stats["cycles"] - c0)
    assert len(set(cycles)) == 1, cycles


def test_declared_exponent_length_hides_the_value(quiet_sim, rng):
    # Secret exponents (CRT decryption: p - 1, q mod (p - 1), ...) declare the
    # key's length; a short value must cost exactly what a long one costs.
    sim = quiet_sim
    n = rng.getrandbits(200) | 1 | 1 << 199
    b = rng.randrange(n)
    cycles = []
    for e in (3, (1 << 150) - 1, 1 << 99):
        c0 = sim.stats["cycles"]
        assert sim.powmod([b], [e], n, exp_bits=150) == [pow(b, e, n)]
        cycles.append(sim.stats["cycles"] - c0)
    assert len(set(cycles)) == 1, cycles
    # Without exp_bits the length follows the value (public exponents).
    c0 = sim.stats["cycles"]
    sim.powmod([b], [3], n)
    assert sim.stats["cycles"] - c0 < cycles[0]
    with pytest.raises(OperandRangeError, match="declared 150"):
        sim.powmod([b], [1 << 150], n, exp_bits=150)
    # Longer than the hardware's limit: split by the declared length, not the value.
    x = sim.hw.max_exp_bits
    c = []
    for e in (5, (1 << (x + 10)) - 1):
        c0 = sim.stats["cycles"]
        assert sim.powmod([b], [e], n, exp_bits=x + 10) == [pow(b, e, n)]
        c.append(sim.stats["cycles"] - c0)
    assert c[0] == c[1]
