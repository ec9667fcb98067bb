"""``sim`` transport: the Verilator model of the kernel, loaded through ctypes.

The library (the C++ harness + the Verilated ``hefl_kernel``, built and
loaded by :mod:`hefl.sim.kernel_model`) behaves like a card:
buffers live in its memory model, registers sit behind its AXI4-Lite port.
Buffers have a host shadow copy, as XRT's ``bo`` does, so the driver's
write → sync → run → sync → read sequence is the same on both.

Waiting clocks the model in C++ in slices of ``slice_cycles``, polling
``ctrl.ap_done`` over AXI4-Lite every ``poll_interval`` cycles; between
slices Python checks the wall-clock deadline, so a hung model gives
:class:`~hefl.errors.DeviceTimeout` on time.
"""

import ctypes
import time
from pathlib import Path

from hefl.errors import BackendUnavailable, DeviceError, DeviceTimeout
from hefl.hw.regmap import REGMAP
from hefl.sim.kernel_model import load_library
from hefl.transport.base import Buffer, Transport

__all__ = ["SimTransport"]

class SimTransport(Transport):
    """A simulated card.

    Parameters
    ----------
    library : path-like
        The harness ``.so``.
    seed : int
        Seed of the memory model's random stalls.
    stall_percent : int
        Probability (percent) that the memory holds a ready/valid low in a
        cycle; 0 answers every cycle.
    poll_interval : int
        Cycles between two polls of ``ctrl`` while waiting.
    use_interrupt : bool
        Wait on the ``interrupt`` output instead of polling ``ctrl``: enable
        ``gie`` and ``ier.done`` at start, acknowledge ``isr.done`` (toggle
        on write) after the run, as an interrupt-driven host would.
    slice_cycles : int
        Cycles clocked per C++ call while waiting (the deadline is checked
        between slices).
    lite_timeout_cycles : int
        Cycles an AXI4-Lite access may take before it is a
        :class:`DeviceTimeout`.
    """

    name = "sim"

    def __init__(self, library, *, seed=0, stall_percent=0, poll_interval=64,
                 slice_cycles=1 << 18, lite_timeout_cycles=10_000, use_interrupt=False):
        self._lib = load_library(library)
        self.library = Path(library)
        self._h = self._lib.hs_create(int(seed) & (2**64 - 1))
        if not self._h:
            raise BackendUnavailable(f"the simulated device in {library} failed to start")
        self._lib.hs_set_stall_percent(self._h, int(stall_percent))
        self.poll_interval = int(poll_interval)
        self.use_interrupt = bool(use_interrupt)
        self.slice_cycles = int(slice_cycles)
        self.lite_timeout = int(lite_timeout_cycles)
        self._shadow = {}
        self._ctrl = REGMAP.reg("ctrl")
        self._done_mask = self._ctrl.field("ap_done").mask
        self._start_cycle = None
        self.last_run_cycles = 0
        #: Wall and CPU (this thread) seconds spent clocking the model in wait().
        self.wait_wall_s = 0.0
        self.wait_cpu_s = 0.0

    # --- lifetime ---------------------------------------------------------

    def _handle(self):
        if not self._h:
            raise DeviceError("the simulated device was closed")
        return self._h

    def close(self):
        if self._h:
            self._lib.hs_destroy(self._h)
            self._h = None
            self._shadow.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # --- buffers --------------------------------------------------------

    def alloc(self, size):
        size = int(size)
        if size <= 0:
            raise DeviceError(f"buffer size must be positive, not {size}")
        addr = self._lib.hs_alloc(self._handle(), size)
        if not addr:
            raise DeviceError(f"the simulated device could not allocate {size} bytes")
        buf = Buffer(size=size, address=addr)
        self._shadow[addr] = bytearray(size)
        return buf

    def free(self, buf):
        self._check_live(buf)
        if self._lib.hs_free(self._handle(), buf.address):
            raise DeviceError(f"no buffer at 0x{buf.address:x} on the simulated device")
        self._shadow.pop(buf.address, None)
        buf.freed = True

    def write(self, buf, data, offset=0):
        self._check_live(buf)
        data = memoryview(data).cast("B")
        self._check_range(buf, len(data), offset)
        self._shadow[buf.address][offset:offset + len(data)] = data

    def read(self, buf, size=None, offset=0):
        self._check_live(buf)
        size = buf.size - offset if size is None else int(size)
        self._check_range(buf, size, offset)
        return bytes(self._shadow[buf.address][offset:offset + size])

    def sync_to_device(self, buf, size=None, offset=0):
        self._check_live(buf)
        size, offset = self._span(buf, size, offset)
        if size == 0:
            return
        # Hand the shadow's memory to C++ directly: one copy, into the model.
        view = (ctypes.c_char * size).from_buffer(self._shadow[buf.address], offset)
        if self._lib.hs_write(self._handle(), buf.address + offset, view, size):
            raise DeviceError(f"sync to device of buffer 0x{buf.address:x} failed")

    def sync_from_device(self, buf, size=None, offset=0):
        self._check_live(buf)
        size, offset = self._span(buf, size, offset)
        if size == 0:
            return
        view = (ctypes.c_char * size).from_buffer(self._shadow[buf.address], offset)
        if self._lib.hs_read(self._handle(), buf.address + offset, view, size):
            raise DeviceError(f"sync from device of buffer 0x{buf.address:x} failed")

    # --- registers ----------------------------------------------------

    def write_reg(self, name, value):
        """Write the 32-bit register ``name`` (simulation only; XRT owns the registers there)."""
        off = REGMAP.reg(name).offset
        rc = self._lib.hs_reg_write(self._handle(), off, int(value) & 0xFFFFFFFF, self.lite_timeout)
        self._check_lite(rc, "write", name)

    def read_reg(self, name):
        off = REGMAP.reg(name).offset
        v = ctypes.c_uint32()
        rc = self._lib.hs_reg_read(self._handle(), off, ctypes.byref(v), self.lite_timeout)
        self._check_lite(rc, "read", name)
        return v.value

    def _check_lite(self, rc, what, name):
        if rc < 0:
            raise DeviceTimeout(f"the kernel did not answer the AXI4-Lite {what} of {name!r} "
                                f"within {self.lite_timeout} cycles")
        if rc:
            raise DeviceError(f"AXI4-Lite {what} of {name!r} answered with response {rc}")

    def start(self, **args):
        for arg in REGMAP.args:
            if arg.name not in args and arg.required:
                raise DeviceError(f"kernel argument {arg.name!r} is missing")
            v = args.get(arg.name, 0)
            value = v.address if isinstance(v, Buffer) else int(v)
            for i, reg in enumerate(arg.registers):
                self.write_reg(reg, value >> (32 * i))
        unknown = set(args) - {a.name for a in REGMAP.args}
        if unknown:
            raise DeviceError(f"unknown kernel arguments {sorted(unknown)}")
        if self.use_interrupt:
            self.write_reg("gie", REGMAP.reg("gie").field("enable").mask)
            self.write_reg("ier", REGMAP.reg("ier").field("done").mask)
        self._start_cycle = self.cycles
        self.write_reg("ctrl", self._ctrl.field("ap_start").mask)

    def wait(self, timeout):
        if self._start_cycle is None:
            raise DeviceError("wait() without start()")
        deadline = time.monotonic() + float(timeout)
        last = ctypes.c_uint32()
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return self._wait(deadline, timeout, last)
        finally:
            self.wait_wall_s += time.perf_counter() - w0
            self.wait_cpu_s += time.thread_time() - c0

    def _wait(self, deadline, timeout, last):
        poll = -1 if self.use_interrupt else self._ctrl.offset
        while True:
            rc = self._lib.hs_run_until(self._handle(), self.slice_cycles, poll,
                                        self._done_mask, self.poll_interval, ctypes.byref(last))
            if rc == 1:
                break
            if rc < 0:
                raise DeviceTimeout("the kernel stopped answering AXI4-Lite reads of ctrl")
            if time.monotonic() >= deadline:
                ran = self.cycles - self._start_cycle
                self._start_cycle = None
                raise DeviceTimeout(f"the kernel did not raise ap_done within {timeout:g} s "
                                    f"({ran} cycles); {self._bus_note()}")
        self.last_run_cycles = self.cycles - self._start_cycle
        self._start_cycle = None
        if self.use_interrupt:
            isr_done = REGMAP.reg("isr").field("done")
            if not isr_done.get(self.read_reg("isr")):
                raise DeviceError("interrupt raised without isr.done set")
            self.write_reg("isr", isr_done.mask)      # toggle-on-write acknowledges it
            if self._lib.hs_run_until(self._handle(), 4, -1, 0, 1, None) == 1:
                raise DeviceError("interrupt still high after acknowledging isr.done")
            # ap_done is clear-on-read: consume it so the next run starts clean.
            self.read_reg("ctrl")
        return self.last_run_cycles

    def _bus_note(self):
        errs = self.protocol_errors
        return (f"memory protocol errors: {errs} ({self.last_error})" if errs
                else "no memory protocol error was seen")

    # --- simulation-only controls ---------------------------------------

    @property
    def cycles(self):
        """Cycles the model has been clocked since it was created."""
        return self._lib.hs_cycles(self._handle())

    @property
    def data_bits(self):
        """Width of ``m_axi_gmem`` in the model."""
        return self._lib.hs_gmem_data_bits(self._handle())

    @property
    def protocol_errors(self):
        return self._lib.hs_protocol_errors(self._handle())

    @property
    def last_error(self):
        return self._lib.hs_last_error(self._handle()).decode()

    @property
    def bus_beats(self):
        """``(read beats, write beats)`` seen on ``m_axi_gmem``."""
        return self._lib.hs_read_beats(self._handle()), self._lib.hs_write_beats(self._handle())

    def abort(self):
        # A hung run cannot be cancelled through ap_ctrl_hs: reset the kernel.
        self.reset()

    def reset(self, cycles=16):
        """Pulse ``ap_rst_n`` (memory contents are kept)."""
        self._lib.hs_reset(self._handle(), int(cycles))
        self._start_cycle = None

    def step(self, cycles):
        self._lib.hs_step(self._handle(), int(cycles))

    def fault_hang(self, on=True):
        """Make the memory stop answering (the run can never finish)."""
        self._lib.hs_fault_hang(self._handle(), 1 if on else 0)

    def fault_corrupt(self, lo, hi, bit=0):
        """Flip ``bit`` of the next write beat landing in device addresses ``[lo, hi)``."""
        self._lib.hs_fault_corrupt(self._handle(), int(lo), int(hi), int(bit))

    @property
    def corrupt_pending(self):
        return bool(self._lib.hs_fault_corrupt_pending(self._handle()))

    def info(self):
        return {"transport": self.name, "library": str(self.library), "data_bits": self.data_bits,
                "cycles": self.cycles}
