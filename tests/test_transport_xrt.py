"""The ``xrt`` transport and backend without a card.

* Without pyxrt the backend must say what to install (BackendUnavailable).
* With a stand-in ``pyxrt`` module — the subset of the real API the transport
  uses (device, load_xclbin, kernel, group_id, bo, write/read/sync/address,
  run.wait → ert_cmd_state) — backed by the simulated device, the same
  driver computes correct results through the xrt transport and turns an
  unfinished run into DeviceTimeout. This checks the transport's use of the
  API shape; it cannot check XRT itself (no card here).
"""

import enum
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hefl.accel import get_accelerator
from hefl.accel.device import DeviceAccelerator
from hefl.errors import BackendUnavailable, DeviceTimeout
from hefl.hw.regmap import HWCFG_REGS, KERNEL_NAME
from hefl.sim.standin_kernel import standin_library
from hefl.transport.sim import SimTransport
from hefl.transport.xrt import XrtTransport, write_hwcfg

pytestmark = pytest.mark.sim     # builds and runs a Verilator model

PARAMS = dict(word_bits=32, words=8, max_exp_bits=192)


def test_backend_without_pyxrt_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyxrt", None)      # import pyxrt -> ImportError
    with pytest.raises(BackendUnavailable) as e:
        get_accelerator("xrt", xclbin=tmp_path / "k.xclbin")
    msg = str(e.value)
    assert "pyxrt" in msg and "XRT" in msg and "setup.sh" in msg


def test_missing_xclbin_is_reported(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyxrt", types.ModuleType("pyxrt"))
    monkeypatch.delenv("HEFL_XCLBIN", raising=False)
    with pytest.raises(BackendUnavailable, match="needs an xclbin"):
        get_accelerator("xrt")
    with pytest.raises(BackendUnavailable, match="does not exist"):
        get_accelerator("xrt", xclbin=tmp_path / "nope.xclbin")


def _fake_pyxrt(sim):
    """A pyxrt look-alike whose card is the simulated device ``sim``."""
    m = types.ModuleType("pyxrt")

    class Sync(enum.Enum):
        XCL_BO_SYNC_BO_TO_DEVICE = 0
        XCL_BO_SYNC_BO_FROM_DEVICE = 1

    class State(enum.Enum):
        ERT_CMD_STATE_NEW = 1
        ERT_CMD_STATE_QUEUED = 2
        ERT_CMD_STATE_COMPLETED = 4
        ERT_CMD_STATE_ERROR = 5
        ERT_CMD_STATE_TIMEOUT = 9
        ERT_CMD_STATE_SUBMITTED = 7

    class device:
        def __init__(self, index):
            self.index = index

        def load_xclbin(self, path):
            assert Path(path).is_file()
            return "uuid-0"

    class bo:
        normal = 0

        def __init__(self, dev, size, flags, group):
            assert group == 0
            self._buf = sim.alloc(size)

        def write(self, data, seek):
            sim.write(self._buf, bytes(data), seek)

        def read(self, size, skip):
            return np.frombuffer(sim.read(self._buf, size, skip), dtype=np.int8)

        def sync(self, direction, size, offset):
            assert 0 <= offset and offset + size <= self._buf.size
            fn = sim.sync_to_device if direction is Sync.XCL_BO_SYNC_BO_TO_DEVICE else sim.sync_from_device
            fn(self._buf, size, offset)

        def address(self):
            return self._buf.address

    class run:
        def __init__(self, args):
            assert len(args) == 3, "desc, result, table"
            sim.start(desc=args[0].address(), result=args[1].address(), table=args[2].address())

        def wait(self, timeout_ms):
            try:
                sim.wait(timeout_ms / 1000)
            except DeviceTimeout:
                return State.ERT_CMD_STATE_TIMEOUT
            return State.ERT_CMD_STATE_COMPLETED

    class kernel:
        shared = "shared-mode"

        def __init__(self, dev, uuid, name, mode):
            # Shared mode passed explicitly (XRT 2021.1+; the default only from 2022.1).
            assert name == KERNEL_NAME and uuid == "uuid-0" and mode == kernel.shared

        def group_id(self, index):
            return 0

        def __call__(self, *args):
            return run(args)

    m.device, m.bo, m.kernel, m.run = device, bo, kernel, run
    m.xclBOSyncDirection, m.ert_cmd_state = Sync, State
    return m


@pytest.fixture()
def fake_card(monkeypatch, tmp_path):
    sim = SimTransport(standin_library(**PARAMS), slice_cycles=20_000)
    monkeypatch.setitem(sys.modules, "pyxrt", _fake_pyxrt(sim))
    xclbin = tmp_path / "hefl.xclbin"
    xclbin.write_bytes(b"xclbin2\0")
    # What the Alveo flow writes beside the xclbin: the kernel's HWCFG values.
    assert write_hwcfg(xclbin, {n: sim.read_reg(n) for n in HWCFG_REGS}) == tmp_path / "hefl.xclbin.hwcfg.json"
    yield sim, xclbin
    sim.close()


def test_driver_over_xrt_transport(fake_card, rng):
    sim, xclbin = fake_card
    acc = get_accelerator("xrt", xclbin=xclbin, verify=1.0)
    assert isinstance(acc, DeviceAccelerator) and acc.name == "xrt"
    assert acc.hw.word_bits == PARAMS["word_bits"] and acc.hw.words == PARAMS["words"]
    n = rng.getrandbits(250) | 1 | 1 << 249
    bases = [rng.randrange(n) for _ in range(6)]
    exps = [rng.getrandbits(180) for _ in range(6)]
    assert acc.powmod(bases, exps, n) == [pow(b, e, n) for b, e in zip(bases, exps)]
    assert acc.mulmod(bases, bases, n) == [b * b % n for b in bases]
    assert acc.product([bases[:3], bases[3:]], n) == [
        bases[0] * bases[1] * bases[2] % n, bases[3] * bases[4] * bases[5] % n]
    assert acc.stats["cycles"] > 0


def test_unfinished_run_is_a_timeout(fake_card):
    sim, xclbin = fake_card
    t = XrtTransport(xclbin)
    acc = DeviceAccelerator(t, timeout=0.2)
    sim.fault_hang(True)
    with pytest.raises(DeviceTimeout, match="did not finish within 0.2 s"):
        acc.mulmod([2], [3], (1 << 200) + 1)


def test_hwcfg_without_the_file(fake_card, monkeypatch):
    sim, xclbin = fake_card
    want = {n: sim.read_reg(n) for n in HWCFG_REGS}
    Path(str(xclbin) + ".hwcfg.json").unlink()
    # The kernel reports its geometry in every result header: one empty run reads it.
    t = XrtTransport(xclbin)
    assert {n: t.read_reg(n) for n in HWCFG_REGS} == want
    assert t.read_reg("hw_words") == PARAMS["words"]
    t = XrtTransport(xclbin, hwcfg=want)
    assert t.read_reg("hw_words") == PARAMS["words"]
    # A kernel whose result header carries no geometry (an older kernel: zeros
    # there): the file or hwcfg= is needed, and the message says so.
    monkeypatch.setattr(sim, "read", lambda buf, size=None, offset=0: bytes(size or buf.size))
    with pytest.raises(BackendUnavailable, match="hwcfg"):
        XrtTransport(xclbin)
