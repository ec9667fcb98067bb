"""The cpu backend's AVX-512 IFMA kernels (``mm52.c``): built with gcc on first use, loaded with ctypes.

Two batch operations, eight numbers at a time in the lanes of AVX-512
registers, radix 2^52 (docs/design.md §1.7):

* :meth:`Mm52.fixed_base` -- ``f · Π_i T[i][d_i(α)] mod m`` over a
  :class:`NativeTable` (the DJN encryption product);
* :meth:`Mm52.powm` -- ``b^e mod m`` on a fixed window schedule set by the
  declared exponent length (decryption's ``c^(p-1) mod p²``), every table
  entry read at every window.

Both run the same instructions for every value: no branch, no comparison
and no memory address depends on an operand or an exponent, except which
fixed-base table entries are read (docs/design.md §5.3).

The library is compiled from ``mm52.c`` (beside this module) into the
build tree, named by the hash of the source and the compiler, once per
machine; concurrent first uses serialise on a lock file. :func:`kernels`
returns ``None`` -- and :func:`unavailable_reason` says why -- when gcc is
missing, the build fails, the CPU lacks AVX-512 IFMA, or ``HEFL_NATIVE=0``
is set; the backend then uses gmpy2 (same results, tested).
"""

import ctypes
import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from hefl.errors import ModulusError
from hefl.golden.montgomery import mont_constants, to_words
from hefl.paths import build_root

__all__ = ["NATIVE_ENV", "POWM_WINDOW_BITS", "Mm52", "NativeTable", "kernels", "counting_kernels",
           "unavailable_reason", "digits52"]

#: ``HEFL_NATIVE=0`` turns the kernels off (the gmpy2 path is used).
NATIVE_ENV = "HEFL_NATIVE"
DIGIT_BITS = 52
LANES = 8
# The accumulator bound of mm52.c's amm(): 4 (n + 1) 52-bit terms per 64-bit element.
_MAX_DIGITS = 1000
# Window of the powm schedule: 5 bits costs the fewest multiplications
# for 1024-bit exponents (31 table + 204 window products + 1,020 squarings).
POWM_WINDOW_BITS = 5
_SOURCE = Path(__file__).with_name("mm52.c")
_CFLAGS = ["-O2", "-shared", "-fPIC", "-std=c11"]

_state = {"lib": None, "reason": None, "tried": False, "kernels": None}


def digits52(x, n):
    """``x`` as ``n`` little-endian radix-2^52 digits (a ctypes ``uint64`` array)."""
    return (ctypes.c_uint64 * n)(*to_words(x, DIGIT_BITS, n))


def _build(defines=()):
    """Path of the compiled library, building it if needed; raises OSError / CalledProcessError.

    ``defines``: extra ``-D`` macros (the tests' counting build).
    """
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise OSError("no C compiler (gcc) on PATH")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    flags = _CFLAGS + [f"-D{d}" for d in defines]
    key = hashlib.sha256(_SOURCE.read_bytes() + version.encode() + " ".join(flags).encode()).hexdigest()[:16]
    out_dir = build_root() / "native"
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"libhefl_mm52-{key}.so"
    if lib.exists():
        return lib
    with open(out_dir / f"mm52-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            tmp = out_dir / f".libhefl_mm52-{key}.{os.getpid()}.so"
            subprocess.run([cc, *flags, "-o", str(tmp), str(_SOURCE)], capture_output=True, text=True,
                           check=True)
            os.replace(tmp, lib)
    return lib


def _load(defines=()):
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return None, f"{NATIVE_ENV}=0"
    try:
        lib = ctypes.CDLL(str(_build(defines)))
    except subprocess.CalledProcessError as e:
        return None, f"building mm52.c failed: {e.stderr.strip()[:300]}"
    except OSError as e:
        return None, f"mm52.c could not be built or loaded: {e}"
    if not lib.hefl_mm52_cpu_ok():
        return None, "this CPU has no AVX-512 IFMA"
    i64, i32, u64, p = ctypes.c_int64, ctypes.c_int, ctypes.c_uint64, ctypes.c_void_p
    lib.hefl_mm52_fixed_base.argtypes = [p, i64, i32, i32, p, i32, u64, p, p, i64, p, i64, p]
    lib.hefl_mm52_powm.argtypes = [p, i64, p, i64, i32, i32, p, i32, u64, p, p, i64, p]
    lib.hefl_mm52_fixed_base.restype = lib.hefl_mm52_powm.restype = i32
    return lib, None


def _lib():
    if not _state["tried"]:
        _state["lib"], _state["reason"] = _load()
        _state["tried"] = True
    return _state["lib"]


def unavailable_reason():
    """Why :func:`kernels` returns ``None`` (``None`` when the kernels are in use)."""
    _lib()
    return _state["reason"]


class _Modulus:
    """One odd modulus in the kernels' form: its Montgomery constants in radix 2^52, as digit arrays.

    ``c`` is :func:`hefl.golden.montgomery.mont_constants` for 52-bit words
    (``R = 2^(52 n) > 4m``: inputs below 2m keep every output below 2m);
    ``digits``, ``r2`` and ``one`` are ``m``, ``R² mod m`` and ``R mod m``
    as ``n`` digits; ``nbytes`` the bytes of a number in 64-bit limbs.
    """

    __slots__ = ("c", "n", "digits", "r2", "one", "nbytes")

    def __init__(self, m):
        self.c = mont_constants(m, DIGIT_BITS)
        self.n = self.c.words
        if self.n > _MAX_DIGITS:
            raise ModulusError(f"a {m.bit_length()}-bit modulus is beyond the kernels' accumulator bound")
        self.digits = digits52(m, self.n)
        self.r2 = digits52(self.c.r2_mod_n, self.n)
        self.one = digits52(self.c.r_mod_n, self.n)
        self.nbytes = -(-m.bit_length() // 64) * 8


def _pack(values, nbytes):
    return b"".join(v.to_bytes(nbytes, "little") for v in values)


def _unpack(buf, nbytes, count):
    mv = memoryview(buf)
    return [int.from_bytes(mv[i * nbytes:(i + 1) * nbytes], "little") for i in range(count)]


class NativeTable:
    """A fixed-base table in the layout ``hefl_mm52_fixed_base`` reads.

    ``entries``: the ``W · 2^k`` entries as fixed-width little-endian bytes,
    flat index ``i · 2^k + d``; ``fix = R^(W + 1) mod m`` undoes the
    ``W + 1`` divisions by ``R`` of the product.
    """

    __slots__ = ("mod", "k", "windows", "entries", "fix", "alpha_bytes")

    def __init__(self, table):
        self.k = table.k
        self.windows = table.windows
        self._constants(table.modulus)
        self.entries = b"".join(_pack(row, self.mod.nbytes) for row in table.rows)

    def __getstate__(self):
        # For pools that pickle their initial state (spawn, forkserver);
        # ctypes arrays do not pickle, so the constants are recomputed.
        return self.mod.c.n, self.k, self.windows, self.entries

    def __setstate__(self, state):
        m, self.k, self.windows, self.entries = state
        self._constants(m)

    def _constants(self, m):
        self.mod = _Modulus(m)
        self.fix = digits52(pow(self.mod.c.r, self.windows + 1, m), self.mod.n)
        # The digit reader loads 8 bytes at the byte of a window's first bit.
        self.alpha_bytes = -(-(self.windows * self.k) // 8) + 8


# Numbers per call into the library: a call cannot be interrupted, so a
# large batch goes in slices (a few tens of ms each) and Ctrl-C is seen.
_SLICE = 256


def _in_slices(fn, count, first, *rest):
    """``fn(*first_slice, *rest)`` over consecutive slices of the sequences in ``first``."""
    out = []
    for lo in range(0, count, _SLICE):
        out += fn(*(seq[lo:lo + _SLICE] for seq in first), *rest)
    return out


class Mm52:
    """The loaded kernels (get one from :func:`kernels`)."""

    def __init__(self, lib):
        self._lib = lib
        self._mods = {}

    def _mod(self, m):
        m = int(m)                      # an mpz from a driver's verification is welcome too
        mod = self._mods.get(m)
        if mod is None:
            mod = self._mods[m] = _Modulus(m)
        return mod

    def fixed_base(self, t, exps, factors=None):
        """``[f · base^e mod m]`` on :class:`NativeTable` ``t``; ``factors`` default to 1.

        ``exps`` below ``2^(W k)``, factors below ``m`` (the accelerator
        validated both).
        """
        if factors is None:
            factors = [1] * len(exps)
        return _in_slices(self._fixed_base, len(exps), (exps, factors), t)

    def _fixed_base(self, exps, factors, t):
        mod, count = t.mod, len(exps)
        out = ctypes.create_string_buffer(count * mod.nbytes)
        rc = self._lib.hefl_mm52_fixed_base(t.entries, mod.nbytes, t.windows, t.k, mod.digits, mod.n, mod.c.nprime,
                                            t.fix, _pack(exps, t.alpha_bytes), t.alpha_bytes,
                                            _pack(factors, mod.nbytes), count, out)
        if rc:
            raise MemoryError("hefl_mm52_fixed_base could not allocate its work buffers")
        return _unpack(out.raw, mod.nbytes, count)

    def powm(self, bases, exps, modulus, exp_bits):
        """``[b^e mod modulus]``: ``ceil(exp_bits / 5)`` windows for every exponent.

        ``exps`` is one int for all bases or one per base, each below
        ``2^exp_bits``; bases below ``modulus`` (odd).
        """
        if isinstance(exps, int):
            exps = [exps] * len(bases)
        return _in_slices(self._powm, len(bases), (bases, exps), self._mod(modulus), max(exp_bits, 1))

    def _powm(self, bases, exps, mod, exp_bits):
        count = len(bases)
        exp_bytes = -(-exp_bits // 8) + 8
        out = ctypes.create_string_buffer(count * mod.nbytes)
        rc = self._lib.hefl_mm52_powm(_pack(bases, mod.nbytes), mod.nbytes, _pack(exps, exp_bytes), exp_bytes,
                                      exp_bits, POWM_WINDOW_BITS, mod.digits, mod.n, mod.c.nprime,
                                      mod.r2, mod.one, count, out)
        if rc:
            raise MemoryError("hefl_mm52_powm could not allocate its work buffers")
        return _unpack(out.raw, mod.nbytes, count)


def kernels():
    """The :class:`Mm52` kernels of this process, or ``None`` (see :func:`unavailable_reason`)."""
    lib = _lib()
    if lib is None:
        return None
    if _state["kernels"] is None:
        _state["kernels"] = Mm52(lib)
    return _state["kernels"]


def counting_kernels():
    """For tests: kernels built to count their steps, and a function that returns and clears the counts.

    The counts are ``(multiplications, final reductions, table scans)``.
    Raises :class:`OSError` when the kernels cannot run here.
    """
    lib, reason = _load(("HEFL_MM52_COUNT",))
    if lib is None:
        raise OSError(reason)
    lib.hefl_mm52_counts.argtypes = [ctypes.c_void_p]

    def counts():
        arr = (ctypes.c_int64 * 3)()
        lib.hefl_mm52_counts(arr)
        return tuple(arr)

    return Mm52(lib), counts
