"""The ``serial`` transport and backend against the Verilator model of the board top.

The model is :class:`hefl.hw.ecp5_top.BoardCore` (link, kernel with the real
BatchEngine, block-RAM memory) with its byte port bridged in C++
(``sim/hefl/sim/board_harness.cpp``): everything but the UART bit timing, which
``tests/test_uart.py`` covers. Expected values come from Python's ``pow``
and the protocol codec, never from the model.
"""

import math
import struct

import pytest

from hefl.accel.base import get_accelerator
from hefl.errors import DeviceError, LinkError, ModulusError
from hefl.hw import link_proto as lp
from hefl.hw.regmap import HWCFG_REGS, LAYOUT, REGMAP
from hefl.sim.board_model import SIM_BOARD, BoardModelPort, board_library
from hefl.transport.serial import SerialTransport

pytestmark = pytest.mark.sim

LIMB = LAYOUT.limb_bytes


@pytest.fixture(scope="module")
def library():
    return board_library()


@pytest.fixture
def port(library, seed):
    p = BoardModelPort(library, seed=seed, stall_percent=20)
    yield p
    p.close()


def _odd_modulus(rng, bits):
    return rng.getrandbits(bits) | (1 << (bits - 1)) | 1


def _raw(port, frame, cycles=3 * SIM_BOARD["timeout_cycles"]):
    """Send ``frame`` as it is, clock the model ``cycles`` cycles, return the decoded replies."""
    port.write(frame)
    port.step(cycles)
    return lp.ReplyParser().feed(port.read(port.in_waiting))


def test_transport_memory_and_registers(port, rng):
    tr = SerialTransport(port, timeout=5.0)
    assert tr.mem_limbs == SIM_BOARD["mem_limbs"]
    from hefl.golden.montgomery import words_for
    expect = {"hw_word_bits": SIM_BOARD["word_bits"],
              "hw_words": words_for(SIM_BOARD["operand_bits"], SIM_BOARD["word_bits"]),
              "hw_lanes": SIM_BOARD["lanes"], "hw_window_bits": SIM_BOARD["window_bits"],
              "hw_max_exp_bits": SIM_BOARD["max_exp_bits"],
              "hw_data_bits": LAYOUT.limb_bits,      # the board's bus: one limb per beat
              "hw_engines": 1, "hw_features": 0, "hw_table_max": 0}   # no table on the board
    assert {n: tr.read_reg(n) for n in HWCFG_REGS} == expect
    assert tr.max_len == min(0xFFFF, SIM_BOARD["mem_limbs"])
    assert tr.max_write_len == lp.WRITE_BUFFER_LIMBS
    # The host may use shorter frames than the board allows: chunking exercised.
    tr.max_len = 64
    # Two buffers, one longer than a frame; random contents round-trip.
    a = tr.alloc(tr.max_len * LIMB * 3 + 40)
    b = tr.alloc(100)
    assert a.address % LIMB == 0 and b.address >= a.address + a.size
    data_a = bytes(rng.getrandbits(8) for _ in range(a.size))
    data_b = bytes(rng.getrandbits(8) for _ in range(b.size))
    tr.write(a, data_a)
    tr.write(b, data_b)
    tr.sync_to_device(a)
    tr.sync_to_device(b)
    tr.write(a, bytes(a.size))
    tr.sync_from_device(a)
    tr.sync_from_device(b)
    assert tr.read(a) == data_a and tr.read(b) == data_b
    tr.free(a)
    tr.free(b)
    with pytest.raises(DeviceError, match="exhausted"):
        tr.alloc(tr.mem_limbs * LIMB)
    tr.close()


def test_bad_frames_get_error_replies_and_the_link_recovers(port, rng):
    tr = SerialTransport(port, timeout=5.0, retries=0)

    def raw(frame):
        return _raw(port, frame)

    off = REGMAP.reg("desc_lo").offset
    good = lp.encode_request(lp.Cmd.WRITE_REG, off, 1, struct.pack("<I", 0x1234_5678))
    bad = bytearray(good)
    bad[-1] ^= 0x10
    (r,) = raw(bytes(bad))
    assert (r.cmd, r.status) == (lp.Cmd.WRITE_REG, lp.Status.BAD_CRC)
    (r,) = raw(lp.encode_request(0x66, 0, 0) + b"\xa5\x02\x00")
    assert (r.cmd, r.status) == (0x66, lp.Status.BAD_CMD)
    (r,) = raw(lp.encode_request(lp.Cmd.WRITE_MEM, 8, 2, bytes(2 * LIMB))[:14])
    assert (r.cmd, r.status) == (lp.Cmd.WRITE_MEM, lp.Status.TIMEOUT)
    (r,) = raw(lp.encode_request(lp.Cmd.READ_MEM, SIM_BOARD["mem_limbs"] - 1, 2))
    assert (r.cmd, r.status) == (lp.Cmd.READ_MEM, lp.Status.BAD_RANGE)
    # The register was never written; a good frame now works.
    assert tr.read_reg("desc_lo") == 0
    (r,) = raw(good)
    assert r.ok
    assert tr.read_reg("desc_lo") == 0x1234_5678
    with pytest.raises(LinkError, match="BAD_RANGE"):
        tr._request(lp.Cmd.READ_REG, 0x3, 1)


def test_writes_are_split_at_the_write_buffer(port, rng):
    """sync_to_device sends frames of max_write_len limbs (below max_len), each exact."""
    tr = SerialTransport(port, timeout=5.0, retries=0)
    w = tr.max_write_len
    assert w < tr.max_len
    buf = tr.alloc((2 * w + rng.randrange(1, w)) * LIMB)
    data = bytes(rng.getrandbits(8) for _ in range(buf.size))
    tr.write(buf, data)
    before = tr.counters["requests"]
    tr.sync_to_device(buf)
    assert tr.counters["requests"] - before == 3 and tr.counters["errors"] == 0
    # Read back in one frame of max_len limbs, not through the host copy.
    r = tr._request(lp.Cmd.READ_MEM, buf.address // LIMB, buf.size // LIMB)
    assert r.payload == data
    tr.close()


def test_write_mem_with_bad_payload_crc_writes_nothing(port, rng):
    """Issue 14 on the board: a WRITE_MEM whose PCRC fails leaves every limb of its range as it was."""
    tr = SerialTransport(port, timeout=5.0, retries=0)
    w = tr.max_write_len
    base = rng.randrange(1, SIM_BOARD["mem_limbs"] - 2 * w)
    old = bytes(rng.getrandbits(8) for _ in range(2 * w * LIMB))
    tr._request(lp.Cmd.WRITE_MEM, base, w, old[:w * LIMB])
    tr._request(lp.Cmd.WRITE_MEM, base + w, w, old[w * LIMB:])

    def readback():
        return b"".join(tr._request(lp.Cmd.READ_MEM, base + i * w, w).payload for i in range(2))

    for n in (1, rng.randrange(2, w), w):
        at = rng.randrange(base, base + 2 * w - n + 1)
        frame = bytearray(lp.encode_request(lp.Cmd.WRITE_MEM, at, n,
                                            bytes(rng.getrandbits(8) for _ in range(n * LIMB))))
        where = rng.choice(("pcrc", "payload"))
        i = len(frame) - 1 if where == "pcrc" else rng.randrange(1 + lp.HEADER_BYTES, len(frame) - 1)
        frame[i] ^= 1 << rng.randrange(8)
        (r,) = _raw(port, bytes(frame))
        assert (r.cmd, r.status) == (lp.Cmd.WRITE_MEM, lp.Status.BAD_CRC), (n, where)
        assert readback() == old, f"WRITE_MEM of {n} limbs at {at} with a bad {where} wrote memory"
    # One limb more than the buffer: drained and refused, nothing written.
    (r,) = _raw(port, lp.encode_request(lp.Cmd.WRITE_MEM, base, w + 1, bytes((w + 1) * LIMB)))
    assert (r.cmd, r.status) == (lp.Cmd.WRITE_MEM, lp.Status.BAD_RANGE)
    assert readback() == old
    # A good write of the maximum length is exact, and nothing around it moves.
    new = bytes(rng.getrandbits(8) for _ in range(w * LIMB))
    at = rng.randrange(base, base + w + 1)
    tr._request(lp.Cmd.WRITE_MEM, at, w, new)
    k = (at - base) * LIMB
    assert readback() == old[:k] + new + old[k + w * LIMB:]
    tr.close()


class _FlippingPort:
    """A port that flips one bit of the request frames :meth:`_flip` picks, as a bad cable would."""

    def __init__(self, inner):
        self.inner, self.flips = inner, 0

    def write(self, data):
        data = bytearray(data)
        hit = self._flip(data)
        if hit is not None:
            byte, bit = hit
            data[byte] ^= 1 << bit
            self.flips += 1
        return self.inner.write(bytes(data))

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _NoisyPort(_FlippingPort):
    """Flips one random bit (SYNC aside) in a fraction ``rate`` of the request frames."""

    def __init__(self, inner, rng, rate):
        super().__init__(inner)
        self.rng, self.rate = rng, rate

    def _flip(self, data):
        if self.rng.random() < self.rate and len(data) > 1:
            return self.rng.randrange(1, len(data)), self.rng.randrange(8)
        return None


class _CmdFlipPort(_FlippingPort):
    """Flips ``bit`` of the CMD byte (the one after SYNC) in the first request
    whose header is one of ``headers`` (each header once)."""

    def __init__(self, inner, headers, bit):
        super().__init__(inner)
        self.left, self.bit = set(headers), bit

    def _flip(self, data):
        header = bytes(data[:1 + lp.HEADER_BYTES])
        if header not in self.left:
            return None
        self.left.discard(header)
        return 1, self.bit


@pytest.mark.parametrize("bit", [0, 4, 7])
def test_control_requests_are_repeated_when_their_command_byte_is_hit(library, seed, rng, bit):
    """The clear-on-read ctrl read and the ap_start write are not blindly repeated, but a
    frame the board refused (BAD_CRC, echoing the corrupted CMD it read) executed nothing
    and is: the run completes, with one error counted per flip."""
    ctrl = REGMAP.reg("ctrl").offset
    # The headers of the ctrl read and write, from the codec (a header does not
    # depend on the payload's value).
    headers = {lp.encode_request(cmd, ctrl, 1, payload)[:1 + lp.HEADER_BYTES]
               for cmd, payload in ((lp.Cmd.READ_REG, b""), (lp.Cmd.WRITE_REG, bytes(4)))}
    port = _CmdFlipPort(BoardModelPort(library, seed=seed, stall_percent=10), headers, bit)
    acc = get_accelerator("serial", port=port, link_timeout=5.0, retries=2, verify=0)
    try:
        n = _odd_modulus(rng, acc.hw.max_modulus_bits)
        a, b = [rng.randrange(n) for _ in range(3)], [rng.randrange(n) for _ in range(3)]
        assert acc.mulmod(a, b, n) == [x * y % n for x, y in zip(a, b)]
        assert port.flips == 2 and not port.left
        assert acc.transport.counters["errors"] == 2
    finally:
        acc.close()


def test_serial_backend_matches_pow(library, seed, rng):
    """powmod / mulmod / product through DeviceAccelerator over a noisy link."""
    noisy = _NoisyPort(BoardModelPort(library, seed=seed, stall_percent=10), rng, rate=0.05)
    acc = get_accelerator("serial", port=noisy, link_timeout=5.0, retries=6, verify=0)
    try:
        bits = acc.hw.max_modulus_bits
        n = _odd_modulus(rng, bits)
        bases = [rng.randrange(n) for _ in range(5)] + [0, 1, n - 1]
        exps = [rng.getrandbits(rng.randrange(1, 200)) for _ in range(len(bases) - 1)] + [0]
        assert acc.powmod(bases, exps, n) == [pow(b, e, n) for b, e in zip(bases, exps)]
        a = [rng.randrange(n) for _ in range(6)]
        b = [rng.randrange(n) for _ in range(6)]
        assert acc.mulmod(a, b, n) == [x * y % n for x, y in zip(a, b)]
        groups = [[rng.randrange(n) for _ in range(k)] for k in (1, 3, 5)]
        expect = [math.prod(g) % n for g in groups]
        assert acc.product(groups, n) == expect
        with pytest.raises(ModulusError):
            acc.mulmod([1], [1], n + 1)          # even modulus: rejected before the device
        tr = acc.transport
        print(f"link: {tr.info()}, flips injected {noisy.flips}, model cycles {noisy.cycles}")
        # CRC-8 catches every single-bit error: each corrupted frame got
        # exactly one error reply, and the transport recovered from all.
        assert tr.counters["errors"] == noisy.flips
    finally:
        acc.close()


def test_paillier_runs_unchanged_on_the_serial_backend(library, seed, rng):
    """Encrypt, aggregate, scalar-multiply and decrypt through the board model.

    The test board's kernel holds moduli up to 126 bits, so n is a product of
    two 31-bit primes (n² < 2^124): the key is a toy, the code path is the
    real one. Decrypted results are checked against plain integer arithmetic.
    """
    import gmpy2

    from hefl.paillier.keys import PrivateKey, PublicKey
    from hefl.paillier.scheme import Paillier

    def prime(bits):
        return int(gmpy2.next_prime(rng.getrandbits(bits) | (1 << (bits - 1))))

    p, q = prime(31), prime(31)
    while q == p:
        q = prime(31)
    pub = PublicKey(p * q)
    priv = PrivateKey(pub, p, q)
    acc = get_accelerator("serial", port=BoardModelPort(library, seed=seed), link_timeout=5.0)
    he = Paillier(pub, priv, accel=acc)
    try:
        a = [rng.randrange(pub.n // 4) for _ in range(4)]
        b = [rng.randrange(pub.n // 4) for _ in range(4)]
        k = [rng.randrange(1, 1000) for _ in range(4)]
        ca, cb = he.encrypt(a), he.encrypt(b)
        assert he.decrypt(ca) == a
        assert he.decrypt(he.add(ca, cb)) == [x + y for x, y in zip(a, b)]
        assert he.decrypt(he.aggregate([ca, cb, ca])) == [2 * x + y for x, y in zip(a, b)]
        assert he.decrypt(he.scalar_mul(ca, k)) == [x * y % pub.n for x, y in zip(a, k)]
        assert acc.stats["batches"] > 0
    finally:
        acc.close()
