"""The Verilator model of the board, behind a pyserial-like port.

:func:`board_library` generates the Verilog of :class:`hefl.hw.ecp5_top.BoardCore`
with its byte-stream PHY (``phy="bytes"``) and builds it with the C++ byte
bridge ``board_harness.cpp`` (beside this module) into a shared library, through the same builder as
the kernel's simulated device (:func:`hefl.sim.kernel_model.build_sim_library`,
pointed at the board harness). :class:`BoardModelPort` loads that library
with ctypes and offers the slice of the pyserial ``Serial`` API the serial
transport uses (``write``, ``read``, ``reset_input_buffer``, ``timeout``,
``close``): a read clocks the model in C++ until the bytes asked for have
come back or the port's timeout (counted in model cycles) has passed. So
:class:`hefl.transport.serial.SerialTransport` drives the real link, kernel
and memory RTL with nothing simulated but the UART's bit timing.
"""

import contextlib
import ctypes
import hashlib
import json

from hefl.errors import BackendUnavailable

__all__ = ["BOARD_TOP", "SIM_BOARD", "board_library", "BoardModelPort"]

#: Verilog module name of the simulated board.
BOARD_TOP = "hefl_board"

#: A board small enough to build and simulate in seconds in the test suite;
#: the same RTL as the bitstream, narrower operands. ``timeout_cycles`` is the
#: link's quiet time before it answers a truncated or drained request.
SIM_BOARD = dict(operand_bits=128, word_bits=32, lanes=1, window_bits=4, max_exp_bits=256,
                 mem_limbs=4096, timeout_cycles=400)


def board_library(**params):
    """Path of the board model library for :class:`BoardCore` ``params`` (built if needed).

    ``params`` default to :data:`SIM_BOARD`; the Verilog lands in
    ``build/sim/board_v/<hash>/``, the library in ``build/sim/board_so/``.
    """
    from hefl.flows.verilog import to_verilog
    from hefl.hw.ecp5_top import BoardCore
    from hefl.paths import build_root
    from hefl.sim.kernel_model import build_sim_library
    p = {**SIM_BOARD, **params}
    key = hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:12]
    core = BoardCore(phy="bytes", **p)
    verilog = to_verilog(core, name=BOARD_TOP, out_dir=build_root() / "sim" / "board_v" / key)
    return build_sim_library(verilog, top=BOARD_TOP, harness="board",
                             out_root=build_root() / "sim" / "board_so")


def _load(path):
    lib = ctypes.CDLL(str(path))
    u8p = ctypes.POINTER(ctypes.c_uint8)
    sig = {
        "bb_api_version": (ctypes.c_int, []),
        "bb_create": (ctypes.c_void_p, [ctypes.c_uint64, ctypes.c_uint32]),
        "bb_destroy": (None, [ctypes.c_void_p]),
        "bb_reset": (None, [ctypes.c_void_p, ctypes.c_uint32]),
        "bb_send": (None, [ctypes.c_void_p, u8p, ctypes.c_uint32]),
        "bb_run": (ctypes.c_uint32, [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, u8p,
                                     ctypes.c_uint32]),
        "bb_pending": (ctypes.c_uint32, [ctypes.c_void_p]),
        "bb_cycles": (ctypes.c_uint64, [ctypes.c_void_p]),
        "bb_leds": (ctypes.c_uint32, [ctypes.c_void_p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    if lib.bb_api_version() != 1:
        raise BackendUnavailable(f"{path} has board API version {lib.bb_api_version()}, expected 1")
    return lib


class BoardModelPort:
    """A pyserial-like port whose far end is the Verilator board model.

    Parameters
    ----------
    library : path-like, optional
        A library from :func:`board_library` (built with defaults if omitted).
    seed : int
        Seed of the harness's random byte gaps and reply back-pressure.
    stall_percent : int
        Percent of cycles a request byte or reply byte is held back.
    timeout_cycles : int
        How long one :meth:`read` clocks the model at most (the port's
        "timeout"; :attr:`timeout` in seconds is accepted and ignored).
    """

    def __init__(self, library=None, *, seed=0, stall_percent=0, timeout_cycles=2_000_000):
        self._lib = _load(library or board_library())
        self._dev = self._lib.bb_create(seed, stall_percent)
        if not self._dev:
            raise BackendUnavailable("the board model could not be created")
        self.timeout_cycles = int(timeout_cycles)
        self.timeout = None
        self._buf = bytearray()

    def write(self, data):
        """Queue ``data`` for the board; returns its length (as pyserial)."""
        data = bytes(data)
        arr = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self._lib.bb_send(self._dev, arr, len(data))
        return len(data)

    def flush(self):
        """Nothing to do: bytes are queued in the model."""

    def read(self, size=1):
        """Up to ``size`` bytes: clocks the model until they are there or the budget is spent."""
        if len(self._buf) < size:
            cap = 1 << 16
            dst = (ctypes.c_uint8 * cap)()
            n = self._lib.bb_run(self._dev, self.timeout_cycles, size - len(self._buf), dst, cap)
            self._buf += bytes(dst[:n])
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def step(self, cycles):
        """Clock the model ``cycles`` cycles (reply bytes are kept for :meth:`read`)."""
        cap = 1 << 16
        dst = (ctypes.c_uint8 * cap)()
        n = self._lib.bb_run(self._dev, int(cycles), 1 << 31, dst, cap)
        self._buf += bytes(dst[:n])

    def reset_input_buffer(self):
        """Drop reply bytes already received."""
        self._buf.clear()

    @property
    def in_waiting(self):
        return len(self._buf)

    @property
    def cycles(self):
        """Model cycles clocked so far."""
        return self._lib.bb_cycles(self._dev)

    @property
    def leds(self):
        return self._lib.bb_leds(self._dev)

    def close(self):
        if self._dev:
            self._lib.bb_destroy(self._dev)
            self._dev = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()
