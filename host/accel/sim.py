"""``sim`` backend: the driver over the Verilator model of the real kernel.

``get_accelerator("sim")`` generates the kernel's Verilog
(:func:`hefl.hw.kernel.kernel_verilog`), builds the simulated device library
on first use (cached under ``build/sim/``; a second process or run reuses it)
and returns a :class:`DeviceAccelerator` over a
:class:`~hefl.transport.sim.SimTransport`: the same driver as ``xrt``.

Hardware parameters default to :data:`SIM_DEFAULTS` (4096-bit operands, so
Paillier keys up to 2048 bits — moduli up to n² — run). Every modulus is
padded to the hardware's width, so a smaller kernel (``operand_bits=2048``
for 1024-bit keys) simulates proportionally faster.
"""

import hashlib
import json
import os
from pathlib import Path

from .base import register_backend
from .device import DeviceAccelerator

__all__ = ["SimAccelerator", "SIM_DEFAULTS", "kernel_library"]

#: Default kernel parameters of the simulated device (``hefl.hw.kernel.Kernel`` keywords).
SIM_DEFAULTS = {
    "operand_bits": 4096,
    "word_bits": None,        # None: hefl.hw.params.MONTMUL_WORD_BITS
    "lanes": 2,
    "window_bits": 4,
    "max_exp_bits": None,     # None: the kernel's default (2 × operand bits)
    "data_bits": 64,
}


def _resolve(params):
    from ..hw import params as hwp
    p = dict(SIM_DEFAULTS)
    p.update({k: v for k, v in params.items() if v is not None})
    if p["word_bits"] is None:
        p["word_bits"] = hwp.MONTMUL_WORD_BITS
    if p["max_exp_bits"] is None:
        p.pop("max_exp_bits")
    return p


def _recipe_key(params):
    # The Verilog is a function of the parameters and of the gateware sources:
    # hash those instead of elaborating the design just to find the cache.
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    root = Path(__file__).resolve().parents[2]
    for d in ("hw", "host/golden"):
        for f in sorted((root / d).rglob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def kernel_library(**params):
    """Path of the simulated device library for kernel ``params`` (built if needed)."""
    from ..hw.build import build_root
    from ..transport.sim_build import build_sim_library
    p = _resolve(params)
    key = _recipe_key(p)
    index = build_root() / "sim" / "kernel_so" / "recipes" / f"{key}.json"
    if index.is_file():
        lib = Path(json.loads(index.read_text())["library"])
        if lib.is_file():
            return lib
    from ..hw.kernel import kernel_verilog
    vdir = build_root() / "sim" / "kernel_v" / key
    verilog = kernel_verilog(out_dir=vdir, **p)
    lib = build_sim_library(verilog)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"library": str(lib), "params": p}))
    os.replace(tmp, index)
    return lib


class SimAccelerator(DeviceAccelerator):
    """The ``sim`` backend.

    Parameters
    ----------
    operand_bits, word_bits, lanes, window_bits, max_exp_bits, data_bits : int, optional
        Kernel parameters (defaults: :data:`SIM_DEFAULTS`).
    library : path-like, optional
        A prebuilt simulated-device library (skips the kernel build).
    seed : int
        Seed of the memory model's random stalls.
    stall_percent : int
        Memory back-pressure (percent of cycles a ready/valid is held low).
    **driver
        :class:`DeviceAccelerator` options (``timeout``, ``verify``, ...).
    """

    name = "sim"

    def __init__(self, *, operand_bits=None, word_bits=None, lanes=None, window_bits=None,
                 max_exp_bits=None, data_bits=None, library=None, seed=0, stall_percent=0,
                 **driver):
        from ..transport.sim import SimTransport
        if library is None:
            library = kernel_library(operand_bits=operand_bits, word_bits=word_bits, lanes=lanes,
                                     window_bits=window_bits, max_exp_bits=max_exp_bits,
                                     data_bits=data_bits)
        super().__init__(SimTransport(library, seed=seed, stall_percent=stall_percent), **driver)


register_backend("sim", SimAccelerator)
