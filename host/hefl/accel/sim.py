"""``sim`` backend: the device driver over the Verilator model of the real kernel.

``get_accelerator("sim")`` generates the kernel's Verilog
(:func:`hefl.flows.verilog.kernel_verilog`), builds the simulated-device library
on first use (cached under ``build/sim/``, reused by later runs and other
processes) and drives it with :class:`~hefl.accel.device.DeviceAccelerator`
over a :class:`~hefl.transport.sim.SimTransport` — the same driver as ``xrt``.

Sizing: a kernel pads every modulus to its own width, so simulating a
1024-bit modulus on a 4096-bit kernel costs ~16× the cycles of a right-sized
one. By default the backend therefore keeps one simulated device per kernel
width of :data:`hefl.hw.params.SIM_OPERAND_BITS` and sends each call to the
smallest that holds its modulus, building it on first use; moduli up to 4096
bits (Paillier with 2048-bit keys) work. ``operand_bits=`` pins one width,
``library=`` one prebuilt library.
"""

import json
import os
from pathlib import Path

from hefl.accel.base import Accelerator, register_backend
from hefl.accel.device import DeviceAccelerator
from hefl.errors import ModulusError
from hefl.paths import source_digest

__all__ = ["SimAccelerator", "kernel_params", "kernel_library"]


def kernel_params(operand_bits, *, word_bits=None, lanes=None, window_bits=None,
                  max_exp_bits=None, data_bits=None):
    """Complete :class:`hefl.hw.kernel.Kernel` keywords from :mod:`hefl.hw.params`."""
    from hefl.hw import params as hwp
    p = {"operand_bits": int(operand_bits),
         "word_bits": word_bits or hwp.MONTMUL_WORD_BITS,
         "lanes": lanes or hwp.SIM_LANES,
         "window_bits": window_bits or hwp.SIM_WINDOW_BITS,
         "data_bits": data_bits or hwp.SIM_DATA_BITS}
    if max_exp_bits is not None:
        p["max_exp_bits"] = int(max_exp_bits)
    return p


#: Packages whose sources make the kernel's Verilog (gateware, the golden
#: models it imports, the Verilog generator) and its simulated device.
_KERNEL_SOURCES = ("hefl.hw", "hefl.golden", "hefl.flows")


def _recipe_key(params):
    # The Verilog is a function of the parameters and the gateware sources:
    # hashing those, as installed, finds a cached library without elaborating
    # the design. The harness is hashed by the library build itself.
    from hefl.sim.kernel_model import build_flags
    return source_digest(_KERNEL_SOURCES, extra=json.dumps([params, build_flags()],
                                                           sort_keys=True).encode())[:16]


def kernel_library(**params):
    """Path of the simulated-device library for kernel ``params`` (built if needed)."""
    from hefl.paths import build_root
    from hefl.sim.kernel_model import build_sim_library
    key = _recipe_key(params)
    index = build_root() / "sim" / "kernel_so" / "recipes" / f"{key}.json"
    if index.is_file():
        lib = Path(json.loads(index.read_text())["library"])
        if lib.is_file():
            return lib
    from hefl.flows.verilog import kernel_verilog
    verilog = kernel_verilog(out_dir=build_root() / "sim" / "kernel_v" / key, **params)
    lib = build_sim_library(verilog)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"library": str(lib), "params": params}))
    os.replace(tmp, index)
    return lib


class SimAccelerator(Accelerator):
    """The ``sim`` backend (see the module docstring for sizing).

    Parameters
    ----------
    operand_bits : int, optional
        Use one kernel of this width; default: the smallest of
        ``SIM_OPERAND_BITS`` that holds each modulus.
    word_bits, lanes, window_bits, max_exp_bits, data_bits : int, optional
        Kernel parameters (defaults from :mod:`hefl.hw.params`).
    library : path-like, optional
        One prebuilt simulated-device library (skips building).
    seed : int
        Seed of the memory model's random stalls.
    stall_percent : int
        Memory back-pressure: percent of cycles a ready/valid is held low.
    **driver
        :class:`DeviceAccelerator` options (``timeout``, ``verify``, ...).
    """

    name = "sim"

    def __init__(self, *, operand_bits=None, word_bits=None, lanes=None, window_bits=None,
                 max_exp_bits=None, data_bits=None, library=None, seed=0, stall_percent=0,
                 **driver):
        super().__init__()
        from hefl.hw import params as hwp
        self._kernel_opts = dict(word_bits=word_bits, lanes=lanes, window_bits=window_bits,
                                 max_exp_bits=max_exp_bits, data_bits=data_bits)
        self._transport_opts = dict(seed=seed, stall_percent=stall_percent)
        self._driver_opts = driver
        self._library = library
        self.widths = (None,) if library is not None else (
            (int(operand_bits),) if operand_bits is not None else tuple(hwp.SIM_OPERAND_BITS))
        self.devices = {}
        self.stats.update({"cycles": 0, "device_cycles": 0, "batches": 0, "verified": 0,
                           "host_s": {}})
        if library is not None or operand_bits is not None:
            self._device(self.widths[0])   # fail now, not at the first call

    # --- devices ----------------------------------------------------------

    def _device(self, width):
        dev = self.devices.get(width)
        if dev is None:
            from hefl.transport.sim import SimTransport
            lib = self._library or kernel_library(**kernel_params(width, **self._kernel_opts))
            dev = DeviceAccelerator(SimTransport(lib, **self._transport_opts), **self._driver_opts)
            dev.name = self.name
            self.devices[width] = dev
        return dev

    def device_for(self, modulus):
        """The simulated device (a :class:`DeviceAccelerator`) that will run ``modulus``."""
        bits = modulus.bit_length()
        if self.widths == (None,):
            return self._device(None)
        for width in self.widths:
            # A kernel of width L holds moduli up to w·s − 2 ≥ L bits.
            if bits <= width:
                return self._device(width)
        raise ModulusError(f"the {bits}-bit modulus is wider than the largest simulated kernel "
                           f"({self.widths[-1]} bits)")

    @property
    def hw(self):
        """Hardware configuration of the single device (``None`` if several)."""
        return next(iter(self.devices.values())).hw if len(self.devices) == 1 else None

    @property
    def transport(self):
        """Transport of the single device (``None`` if several)."""
        return next(iter(self.devices.values())).transport if len(self.devices) == 1 else None

    def _collect(self, out):
        totals = {"cycles": 0, "batches": 0, "verified": 0}
        host = {}
        for dev in self.devices.values():
            for k in totals:
                totals[k] += dev.stats[k]
            for k, v in dev.stats["host_s"].items():
                host[k] = host.get(k, 0.0) + v
        self.stats.update(totals, device_cycles=totals["cycles"], host_s=host)
        return out

    # --- Accelerator hooks (inputs already validated by the base class) ---

    def _powmod(self, bases, exps, modulus):
        return self._collect(self.device_for(modulus)._powmod(bases, exps, modulus))

    def _mulmod(self, a, b, modulus):
        return self._collect(self.device_for(modulus)._mulmod(a, b, modulus))

    def _product(self, groups, modulus):
        return self._collect(self.device_for(modulus)._product(groups, modulus))

    def close(self):
        for dev in self.devices.values():
            dev.close()
        self.devices.clear()


register_backend("sim", SimAccelerator)
