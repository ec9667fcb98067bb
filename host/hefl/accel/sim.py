"""``sim`` backend: the device driver over the Verilator model of the real kernel.

``get_accelerator("sim")`` generates the kernel's Verilog
(:func:`hefl.flows.verilog.kernel_verilog`), builds the simulated-device library
on first use (cached under ``build/sim/``, reused by later runs and other
processes) and returns a :class:`~hefl.accel.device.DeviceAccelerator` over
a :class:`~hefl.transport.sim.SimTransport` — the same driver as ``xrt``
and ``serial``.

Sizing: a kernel pads every modulus to its own width, so simulating a
1024-bit modulus on a 4096-bit kernel costs ~16× the cycles of a right-sized
one. By default the accelerator therefore opens one simulated kernel per
width of :data:`hefl.hw.params.SIM_OPERAND_BITS` as calls need them and
sends each call to the smallest that holds its modulus
(:meth:`~hefl.accel.device.DeviceAccelerator.card_for`); moduli up to 4096
bits (Paillier with 2048-bit keys) work. ``operand_bits=`` pins one width,
``library=`` one prebuilt library.
"""

import json
import os
from pathlib import Path

from hefl.accel.base import register_backend
from hefl.accel.device import DeviceAccelerator
from hefl.paths import source_digest

__all__ = ["sim_accelerator", "SimAccelerator", "kernel_params", "kernel_library"]


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


def sim_accelerator(*, operand_bits=None, word_bits=None, lanes=None, window_bits=None,
                    max_exp_bits=None, data_bits=None, library=None, seed=0, stall_percent=0,
                    **driver):
    """Make the ``sim`` backend (see the module docstring for sizing).

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

    Returns
    -------
    DeviceAccelerator
    """
    from hefl.hw import params as hwp
    from hefl.transport.sim import SimTransport
    kernel = dict(word_bits=word_bits, lanes=lanes, window_bits=window_bits,
                  max_exp_bits=max_exp_bits, data_bits=data_bits)

    def open_kernel(width):
        lib = library or kernel_library(**kernel_params(width, **kernel))
        return SimTransport(lib, seed=seed, stall_percent=stall_percent)

    if library is not None or operand_bits is not None:
        # One kernel, opened now: a build or load failure shows here, not at the first call.
        return DeviceAccelerator(open_kernel(operand_bits), name="sim", **driver)
    return DeviceAccelerator(open_transport=open_kernel, widths=hwp.SIM_OPERAND_BITS, name="sim",
                             **driver)


#: The name this backend had when it was a class of its own; same keywords.
SimAccelerator = sim_accelerator

register_backend("sim", sim_accelerator)
