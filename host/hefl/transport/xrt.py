"""``xrt`` transport: an Alveo card running ``hefl_kernel`` through pyxrt.

pyxrt ships with AMD's XRT (not on PyPI); it is imported only when a
transport is made, and its absence is a :class:`~hefl.errors.BackendUnavailable`
saying what to install. The calls used (XRT native Python API)::

    dev = pyxrt.device(index)
    uuid = dev.load_xclbin(path)                      # or register an xrt.xclbin
    k = pyxrt.kernel(dev, uuid, "hefl_kernel", pyxrt.kernel.shared)
    bo = pyxrt.bo(dev, size, pyxrt.bo.normal, k.group_id(arg_index))
    bo.write(data, offset); bo.sync(XCL_BO_SYNC_BO_TO_DEVICE, size, 0)
    run = k(desc_bo, result_bo, table_bo)             # sets the arguments, starts
    state = run.wait(timeout_ms)                      # ert_cmd_state
    bo.sync(XCL_BO_SYNC_BO_FROM_DEVICE, size, 0); bo.read(size, 0)

The kernel is opened in shared mode, passed explicitly: the three-argument
``pyxrt.kernel(dev, uuid, name)`` defaults to shared only from XRT 2022.1,
while ``pyxrt.kernel.shared`` is accepted from 2021.1 on (older pyxrt
without the attribute gets the three-argument form).

HWCFG. pyxrt's kernel object has no register read in shared mode. The
read-only HWCFG registers are taken from the ``hwcfg`` argument, else from
the ``<xclbin>.hwcfg.json`` the Alveo flow writes beside the xclbin, else
from the kernel itself: every result header carries the HWCFG registers
(:data:`hefl.hw.regmap.LAYOUT`), so the transport runs one empty descriptor
and reads them back.

Aborting. ``ap_ctrl_hs`` has no abort, and pyxrt offers no way to cancel a
run that is still in flight (``run.abort()`` is not exposed and would need
ERT support the RTL kernel does not have): after a
:class:`~hefl.errors.DeviceTimeout` the run stays queued on the compute
unit. :meth:`XrtTransport.abort` can only drop the host's handle; recover
with ``xbutil reset`` (or by reloading the xclbin) before the next run.
"""

import json
from pathlib import Path

from hefl.errors import BackendUnavailable, DeviceError, DeviceTimeout
from hefl.hw.regmap import HWCFG_REGS, KERNEL_NAME, LAYOUT, REGMAP
from hefl.transport.base import Buffer, Transport

__all__ = ["XrtTransport", "import_pyxrt", "hwcfg_path", "write_hwcfg", "KERNEL_NAME"]

#: Vitis kernel name (the RTL top module).

_INSTALL = ("the xrt backend needs pyxrt, which comes with AMD's Xilinx Runtime (XRT), "
            "not PyPI: install XRT for your card (https://xilinx.github.io/XRT/) and "
            "`source /opt/xilinx/xrt/setup.sh` so that `import pyxrt` works")


def hwcfg_path(xclbin):
    """Where the HWCFG values of ``xclbin`` are kept: ``<xclbin>.hwcfg.json``."""
    xclbin = Path(xclbin)
    return xclbin.with_name(xclbin.name + ".hwcfg.json")


def write_hwcfg(xclbin, hwcfg):
    """Write ``hwcfg`` (``hefl.hw.kernel.Kernel(...).hwcfg``) beside ``xclbin``; for the Alveo flow."""
    missing = [n for n in HWCFG_REGS if n not in hwcfg]
    if missing:
        raise ValueError(f"HWCFG values lack {', '.join(missing)}")
    p = hwcfg_path(xclbin)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({n: int(hwcfg[n]) for n in HWCFG_REGS}, indent=1))
    return p


def import_pyxrt():
    """Import pyxrt or raise :class:`BackendUnavailable` naming what to install."""
    try:
        import pyxrt
    except ImportError as e:
        raise BackendUnavailable(f"{_INSTALL} ({e})") from None
    return pyxrt


class XrtTransport(Transport):
    """One ``hefl_kernel`` compute unit on an XRT device.

    Parameters
    ----------
    xclbin : path-like
        The xclbin holding ``hefl_kernel``.
    device_index : int
        XRT device index (``xbutil examine`` lists them).
    hwcfg : dict or path-like, optional
        HWCFG register values by name; default ``<xclbin>.hwcfg.json`` if it
        exists, else the values the kernel reports in a result header.
    probe_timeout : float
        Seconds the empty run that reads the HWCFG values may take.
    """

    name = "xrt"

    def __init__(self, xclbin, *, device_index=0, hwcfg=None, probe_timeout=10.0):
        xclbin = Path(xclbin)
        if not xclbin.is_file():
            raise BackendUnavailable(f"xclbin {xclbin} does not exist; build it with "
                                     "`make xclbin PLATFORM=<platform>`")
        if hwcfg is None and hwcfg_path(xclbin).is_file():
            hwcfg = hwcfg_path(xclbin)
        self._hwcfg = None if hwcfg is None else self._load_hwcfg(hwcfg)
        pyxrt = import_pyxrt()
        self._x = pyxrt
        try:
            self._dev = pyxrt.device(int(device_index))
            uuid = self._dev.load_xclbin(str(xclbin))
            mode = getattr(pyxrt.kernel, "shared", None)
            self._kernel = (pyxrt.kernel(self._dev, uuid, KERNEL_NAME) if mode is None
                            else pyxrt.kernel(self._dev, uuid, KERNEL_NAME, mode))
        except Exception as e:  # pyxrt raises plain RuntimeError with XRT's text
            raise BackendUnavailable(f"XRT could not open device {device_index} with {xclbin}: {e}") from e
        self._arg_index = {a.name: i for i, a in enumerate(REGMAP.args)}
        self._run = None
        self._null = None
        self.xclbin = xclbin
        self.device_index = int(device_index)
        if self._hwcfg is None:
            self._hwcfg = self._probe_hwcfg(probe_timeout)

    @staticmethod
    def _load_hwcfg(src):
        if isinstance(src, dict):
            data = src
        else:
            p = Path(src)
            if not p.is_file():
                raise BackendUnavailable(f"{p} (the kernel's HWCFG values, written by the Alveo "
                                         "flow beside the xclbin) is missing; pass hwcfg= explicitly")
            data = json.loads(p.read_text())
        missing = [n for n in HWCFG_REGS if n not in data]
        if missing:
            raise BackendUnavailable(f"HWCFG values lack {', '.join(missing)}")
        return {n: int(data[n]) for n in HWCFG_REGS}

    def _probe_hwcfg(self, timeout):
        """HWCFG values from the result header of one empty run (no jobs, no geometry)."""
        hdr = [0] * LAYOUT.desc.limbs
        hdr[LAYOUT.desc.index("magic")] = LAYOUT.magic_word
        size = LAYOUT.result.limbs * LAYOUT.limb_bytes
        desc, res = self.alloc(4096), self.alloc(4096)
        try:
            self.write(desc, b"".join(x.to_bytes(LAYOUT.limb_bytes, "little") for x in hdr))
            self.write(res, bytes(size))
            self.sync_to_device(desc, size)
            self.sync_to_device(res, size)
            self.start(desc=desc, result=res, table=self.null_pointer())
            self.wait(timeout)
            self.sync_from_device(res, size)
            raw = self.read(res, size)
        finally:
            self.free(desc)
            self.free(res)
        limbs = [int.from_bytes(raw[i * LAYOUT.limb_bytes:(i + 1) * LAYOUT.limb_bytes], "little")
                 for i in LAYOUT.hwcfg_limbs]
        vals = LAYOUT.unpack_hwcfg(limbs)
        if not vals["hw_words"] or not vals["hw_word_bits"]:
            raise BackendUnavailable(
                f"{KERNEL_NAME} in {self.xclbin} reports no geometry in its result header (an "
                f"older kernel?); pass hwcfg= or put the Alveo flow's {hwcfg_path(self.xclbin).name} "
                "beside the xclbin")
        return vals

    def null_pointer(self):
        """A 4 KiB placeholder buffer for a pointer argument a run does not use.

        XRT sets buffer arguments from buffer objects (and checks their
        memory bank), so an unused ``table`` gets this instead of 0.
        """
        if self._null is None:
            self._null = self.alloc(4096, arg="table")
        return self._null

    # --- buffers --------------------------------------------------------

    def alloc(self, size, arg="desc"):
        size = int(size)
        if size <= 0:
            raise DeviceError(f"buffer size must be positive, not {size}")
        try:
            bo = self._x.bo(self._dev, size, self._x.bo.normal,
                            self._kernel.group_id(self._arg_index[arg]))
        except Exception as e:
            raise DeviceError(f"XRT could not allocate {size} bytes: {e}") from e
        return Buffer(size=size, address=int(bo.address()), handle=bo)

    def free(self, buf):
        self._check_live(buf)
        buf.handle = None  # XRT frees the bo with its last reference
        buf.freed = True

    def write(self, buf, data, offset=0):
        self._check_live(buf)
        data = memoryview(data).cast("B")
        self._check_range(buf, len(data), offset)
        buf.handle.write(data, int(offset))

    def read(self, buf, size=None, offset=0):
        self._check_live(buf)
        size = buf.size - offset if size is None else int(size)
        self._check_range(buf, size, offset)
        return bytes(buf.handle.read(size, int(offset)))

    def sync_to_device(self, buf, size=None, offset=0):
        self._check_live(buf)
        size, offset = self._span(buf, size, offset)
        buf.handle.sync(self._x.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, size, offset)

    def sync_from_device(self, buf, size=None, offset=0):
        self._check_live(buf)
        size, offset = self._span(buf, size, offset)
        buf.handle.sync(self._x.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, size, offset)

    # --- registers and runs ---------------------------------------------

    def read_reg(self, name):
        if name in self._hwcfg:
            return self._hwcfg[name]
        raise DeviceError(f"register {name!r} cannot be read through pyxrt (shared CU access); "
                          "the result header carries the run's status and cycles")

    def start(self, **args):
        order = [a.name for a in REGMAP.args]
        missing = [a.name for a in REGMAP.args if a.required and a.name not in args]
        if missing or set(args) - set(order):
            raise DeviceError(f"kernel arguments must be {order} (optional: "
                              f"{[a.name for a in REGMAP.args if not a.required]}), got {sorted(args)}")
        # An optional pointer left out, or 0, is the placeholder buffer.
        args = {n: (args.get(n) or self.null_pointer()) for n in order}
        vals = [args[n].handle if isinstance(args[n], Buffer) else int(args[n]) for n in order]
        try:
            self._run = self._kernel(*vals)
        except Exception as e:
            raise DeviceError(f"XRT could not start {KERNEL_NAME}: {e}") from e

    def wait(self, timeout):
        """Wait for the run; :class:`DeviceTimeout` after ``timeout`` s.

        A timed-out run cannot be aborted from pyxrt (module docstring): it
        stays in flight on the card.
        """
        if self._run is None:
            raise DeviceError("wait() without start()")
        ms = max(1, int(float(timeout) * 1000))
        state = self._run.wait(ms)
        states = self._x.ert_cmd_state
        if state == states.ERT_CMD_STATE_COMPLETED:
            self._run = None
            return None
        # Still pending when wait() returned: the deadline passed.
        pending = {getattr(states, n) for n in ("ERT_CMD_STATE_TIMEOUT", "ERT_CMD_STATE_NEW",
                                                "ERT_CMD_STATE_QUEUED", "ERT_CMD_STATE_RUNNING",
                                                "ERT_CMD_STATE_SUBMITTED") if hasattr(states, n)}
        if state in pending:
            raise DeviceTimeout(f"{KERNEL_NAME} did not finish within {timeout:g} s (XRT state {state})")
        self._run = None
        raise DeviceError(f"{KERNEL_NAME} run ended in XRT state {state}")

    def info(self):
        return {"transport": self.name, "xclbin": str(self.xclbin), "device_index": self.device_index,
                **self._hwcfg}

    def abort(self):
        """Drop the handle of a failed run; the run itself cannot be cancelled (module docstring)."""
        self._run = None

    def close(self):
        self._run = None
        self._null = None
        self._kernel = None
        self._dev = None
