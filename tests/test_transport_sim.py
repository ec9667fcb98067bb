"""The simulated device (C++ harness + sim transport) on its own.

The kernel here is the behavioural stand-in of ``sim/hefl/sim/standin_kernel.py``
(same contract, trivially correct arithmetic), so a failure points at the
harness or the transport, not at the RTL. Descriptors are built by hand from
``hefl.hw.regmap.LAYOUT`` and the golden ``to_words`` — independently of the
driver under test elsewhere.
"""

import struct
import time

import pytest

from hefl.errors import DeviceError, DeviceTimeout
from hefl.golden.montgomery import mont_constants, to_words
from hefl.hw.regmap import HWCFG_REGS, KERNEL_NAME, LAYOUT, REGMAP
from hefl.sim.kernel_model import build_sim_library
from hefl.sim.standin_kernel import standin_library, write_standin
from hefl.transport.sim import SimTransport

pytestmark = pytest.mark.sim     # builds and runs a Verilator model

W, S, X = 32, 8, 192
LIMB = LAYOUT.limb_bytes
PARAMS = dict(word_bits=W, words=S, max_exp_bits=X)


@pytest.fixture(scope="module")
def lib():
    return standin_library(**PARAMS)


def _descriptor(rng, n_jobs, *, magic=None, words=S):
    """A mixed batch and its expected results, packed limb by limb from the contract."""
    n = rng.getrandbits(W * S - 2) | 1 | 1 << (W * S - 3)
    c = mont_constants(n, W, S)
    stream, expect = [], []
    for tag in range(n_jobs):
        op = ("powmod", "mulmod", "product")[tag % 3]
        if op == "powmod":
            b, e = rng.randrange(n), rng.getrandbits(rng.randrange(1, X))
            count = X
            stream += [LAYOUT.pack_job_header(LAYOUT.op(op), tag, count)]
            stream += to_words(b, W, S) + to_words(e, W, -(-count // W))
            expect.append(pow(b, e, n))
        elif op == "mulmod":
            a, b = rng.randrange(n), rng.randrange(n)
            stream += [LAYOUT.pack_job_header(LAYOUT.op(op), tag, 2)] + to_words(a, W, S) + to_words(b, W, S)
            expect.append(a * b % n)
        else:
            xs = [rng.randrange(n) for _ in range(rng.randrange(1, 5))]
            stream += [LAYOUT.pack_job_header(LAYOUT.op(op), tag, len(xs))]
            for x in xs:
                stream += to_words(x, W, S)
            p = 1
            for x in xs:
                p = p * x % n
            expect.append(p)
    hdr = [0] * LAYOUT.header_limbs
    d = LAYOUT.desc
    hdr[d.index("magic")] = LAYOUT.magic_word if magic is None else magic
    hdr[d.index("jobs")] = n_jobs
    hdr[d.index("words")] = words
    hdr[d.index("word_bits")] = W
    hdr[d.index("nprime")] = c.nprime
    hdr[d.index("stream_limbs")] = len(stream)
    limbs = hdr + to_words(c.n, W, S) + to_words(c.r2_mod_n, W, S) + to_words(c.r_mod_n, W, S) + stream
    return struct.pack(f"<{len(limbs)}Q", *limbs), expect


def _run(t, data, n_jobs, timeout=10.0):
    d = t.alloc(len(data))
    r = t.alloc(LIMB * LAYOUT.result_buffer_limbs(n_jobs, S))
    t.write(d, data)
    t.sync_to_device(d)
    t.sync_to_device(r)
    t.start(desc=d, result=r)
    cycles = t.wait(timeout)
    t.sync_from_device(r)
    limbs = struct.unpack(f"<{r.size // LIMB}Q", t.read(r))
    res = [sum(limbs[LAYOUT.result_limb(i, S) + j] << (W * j) for j in range(S)) for i in range(n_jobs)]
    return limbs[:LAYOUT.result.limbs], res, cycles, (d, r)


def test_build_is_cached(lib, tmp_path):
    # Same Verilog and harness -> same library, without a rebuild.
    v = write_standin(tmp_path / "k.v", **PARAMS)
    t0 = time.monotonic()
    again = build_sim_library(v, out_root=lib.parent.parent)
    assert again == lib
    assert time.monotonic() - t0 < 5.0      # a rebuild takes several times longer


def test_registers_and_hwcfg(lib):
    t = SimTransport(lib)
    got = {n: t.read_reg(n) for n in HWCFG_REGS}
    assert got["hw_word_bits"] == W and got["hw_words"] == S and got["hw_max_exp_bits"] == X
    assert got["hw_data_bits"] == t.data_bits == LAYOUT.limb_bits    # one limb per beat
    # Argument registers hold what was written (RW); ap_idle is up before any run.
    t.write_reg("desc_lo", 0x12345678)
    assert t.read_reg("desc_lo") == 0x12345678
    assert REGMAP.reg("ctrl").field("ap_idle").get(t.read_reg("ctrl")) == 1
    t.close()


@pytest.mark.parametrize("stall", [0, 40])
def test_mixed_batch_with_backpressure(lib, rng, stall):
    t = SimTransport(lib, seed=rng.getrandbits(32), stall_percent=stall)
    data, expect = _descriptor(rng, 13)
    hdr, res, cycles, _ = _run(t, data, 13)
    r = LAYOUT.result
    assert hdr[r.index("status")] == 0
    assert hdr[r.index("jobs_done")] == 13
    assert 0 < hdr[r.index("cycles")] <= cycles
    assert res == expect
    assert t.protocol_errors == 0, t.last_error
    reads, writes = t.bus_beats
    assert reads >= len(data) // LIMB - 2 * S   # the stand-in skips R² and R mod N
    assert writes == LAYOUT.result_buffer_limbs(13, S)
    # Back to back on the same device: a second batch, fresh buffers.
    data, expect = _descriptor(rng, 4)
    hdr, res, _, _ = _run(t, data, 4)
    assert hdr[r.index("status")] == 0 and res == expect
    t.close()


def test_bad_magic_gives_status(lib, rng):
    t = SimTransport(lib)
    data, _ = _descriptor(rng, 2, magic=0xDEADBEEF)
    hdr, _, _, _ = _run(t, data, 2)
    assert LAYOUT.decode_status(hdr[LAYOUT.result.index("status")]) == ["bad_magic"]


def test_geometry_mismatch_gives_status(lib, rng):
    t = SimTransport(lib)
    data, _ = _descriptor(rng, 2, words=S + 1)
    hdr, _, _, _ = _run(t, data, 2)
    assert LAYOUT.decode_status(hdr[LAYOUT.result.index("status")]) == ["geometry"]


def test_hang_fault_times_out_on_time(lib, rng):
    t = SimTransport(lib, slice_cycles=20_000)
    data, _ = _descriptor(rng, 3)
    d, r = t.alloc(len(data)), t.alloc(LIMB * LAYOUT.result_buffer_limbs(3, S))
    t.write(d, data)
    t.sync_to_device(d)
    t.fault_hang(True)
    t.start(desc=d, result=r)
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="ap_done"):
        t.wait(0.3)
    took = time.monotonic() - t0
    assert 0.3 <= took < 1.5, took
    # Releasing the fault lets the same run finish: the model was only stalled.
    t.fault_hang(False)
    t.start(desc=d, result=r)
    t.wait(10)


def test_corrupt_fault_flips_one_result_bit(lib, rng):
    t = SimTransport(lib)
    data, expect = _descriptor(rng, 6)
    d, r = t.alloc(len(data)), t.alloc(LIMB * LAYOUT.result_buffer_limbs(6, S))
    lo = r.address + LIMB * LAYOUT.result_limb(0, S)
    t.fault_corrupt(lo, r.address + r.size, bit=0)
    assert t.corrupt_pending
    t.write(d, data)
    t.sync_to_device(d)
    t.start(desc=d, result=r)
    t.wait(10)
    assert not t.corrupt_pending
    t.sync_from_device(r)
    limbs = struct.unpack(f"<{r.size // LIMB}Q", t.read(r))
    res = [sum(limbs[LAYOUT.result_limb(i, S) + j] << (W * j) for j in range(S)) for i in range(6)]
    diff = [a ^ b for a, b in zip(res, expect)]
    assert sorted(diff, reverse=True)[0] == 1 and sum(1 for x in diff if x) == 1


def test_kernel_access_outside_buffers_is_reported(lib, rng):
    t = SimTransport(lib)
    data, _ = _descriptor(rng, 1)
    r = t.alloc(LIMB * LAYOUT.result_buffer_limbs(1, S))
    # desc points at memory nobody allocated: the memory answers SLVERR, counts it.
    t.start(desc=0x40, result=r)
    t.wait(10)
    assert t.protocol_errors > 0
    assert "read outside every buffer at 0x40" in t.last_error
    t.sync_from_device(r)
    # The kernel read zeros: bad magic.
    head = LAYOUT.result.limbs
    limbs = struct.unpack(f"<{head}Q", t.read(r, head * LIMB))
    assert limbs[LAYOUT.result.index("status")] != 0


def test_buffer_errors(lib):
    t = SimTransport(lib)
    b = t.alloc(100)
    with pytest.raises(DeviceError, match="outside"):
        t.write(b, bytes(101))
    with pytest.raises(DeviceError, match="outside"):
        t.read(b, 10, offset=95)
    t.write(b, b"abc", offset=97)
    t.sync_to_device(b)
    t.write(b, bytes(100))
    t.sync_from_device(b)
    assert t.read(b, 3, offset=97) == b"abc"
    # Partial syncs move only their range.
    t.write(b, b"xyz", offset=10)
    t.sync_to_device(b, 2, offset=10)
    t.write(b, bytes(100))
    t.sync_from_device(b, 4, offset=9)
    assert t.read(b, 5, offset=9) == b"\0xy\0\0"
    with pytest.raises(DeviceError, match="outside"):
        t.sync_to_device(b, 10, offset=95)
    t.free(b)
    with pytest.raises(DeviceError, match="freed"):
        t.free(b)
    with pytest.raises(DeviceError):
        t.alloc(0)
    with pytest.raises(DeviceError, match="without start"):
        t.wait(1)
    t.close()
    with pytest.raises(DeviceError, match="closed"):
        t.alloc(8)


def test_failed_build_is_a_clear_error(tmp_path):
    from hefl.errors import BackendUnavailable
    bad = tmp_path / "k.v"
    bad.write_text(f"module {KERNEL_NAME}(input wire ap_clk); this is not verilog endmodule\n")
    out = tmp_path / "so"
    with pytest.raises(BackendUnavailable, match="building the simulated device failed") as e:
        build_sim_library(bad, out_root=out)
    assert ".build.log" in str(e.value)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no half-built directory
    with pytest.raises(BackendUnavailable, match="does not exist"):
        build_sim_library(tmp_path / "missing.v", out_root=out)
