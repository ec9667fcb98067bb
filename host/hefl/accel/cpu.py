"""The ``cpu`` backend: gmpy2 on every core of this machine.

The reference every other backend is checked against, and the fallback.
Small batches run in this process; batches whose estimated work exceeds a
threshold are cut into chunks and spread over a pool of worker processes
(one per core by default). The pool is created on first use and shut down
by :meth:`CpuAccelerator.close`. Operands travel to the workers as plain
Python ints through the pool's pipe: the workers are our own processes, not
another party, so pickling here carries no trust issue.

Kernels
-------
Where the CPU has AVX-512 IFMA, fixed-base products and secret-exponent
powers run on the kernels of :mod:`hefl.accel.native` (eight numbers at a
time, radix 2^52, about 5x gmpy2 on this machine at 2048-bit keys); elsewhere,
or with ``native=False`` or ``HEFL_NATIVE=0``, on gmpy2 as described below.
Both give the same numbers (tested); :attr:`CpuAccelerator.kernel` says
which one runs.

Secret exponents
----------------
:meth:`~hefl.accel.base.Accelerator.powmod_secret` runs the native fixed-window
power (:meth:`hefl.accel.native.Mm52.powm`: its schedule is set by the
declared exponent length) or ``gmpy2.powmod_sec`` (GMP's
``mpz_powm_sec``: the same sequence of operations and memory accesses for
every exponent of a given length). :class:`hefl.paillier.Paillier` chooses
it for every exponent derived from the private key (decryption's
``p - 1``, ``q - 1``; the key holder's CRT exponents); public exponents
(``n``, scalars) stay on the faster variable-time ``gmpy2.powmod``.

Fixed-base tables
-----------------
:meth:`~hefl.accel.base.Accelerator.fixed_base` multiplies table entries
(:mod:`hefl.golden.fixedbase`) on one schedule for every exponent:
``W`` multiplications and reductions, every operand and product of a
fixed limb count (each step adds a fixed multiple of the modulus to the
accumulator first; see ``_Prepared``), digits read from the exponent with a
sentinel bit set above its top digit (so every shift works on a number of
one size), the extra factor first (so ``1 + m·n`` for a small ``m`` is no
shorter operand). No digit value is tested. The table's
entries go to each worker once: a table is registered here on first use
(its entries converted to ``mpz``), and the pool is restarted with every
registered table as its workers' initial state (inherited by ``fork``,
pickled once per worker otherwise); later batches send only the table's
token, the exponents and the factors.
"""

import multiprocessing
import os
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import gmpy2

from hefl.accel.base import (
    Accelerator,
    register_backend,
)
from hefl.accel.native import NativeTable
from hefl.accel.native import kernels as native_kernels
from hefl.accel.native import unavailable_reason as native_unavailable_reason
from hefl.errors import BackendUnavailable, DeviceError

__all__ = ["CpuAccelerator", "powmod_sec_values"]

# Rough single-core costs on this class of machine (TOOLCHAIN.md: a
# 4096-bit modulus with a 2048-bit exponent runs ~107/s, a 4096-bit mulmod
# ~207k/s). Only used to decide whether a batch is worth the pool.
_POWMOD_S_4096x2048 = 1 / 107
_MULMOD_S_4096 = 1 / 207e3
# gmpy2.powmod_sec against powmod, 2048-bit modulus, 1024-bit exponent: ~1.27x.
_SEC_FACTOR = 1.3
# The native kernels against gmpy2, 2048-bit keys, this machine: about 5x
# (fixed-base products and powmod_sec alike); they work on 8 numbers at once.
_NATIVE_SPEEDUP = 4.5
_LANES = 8
_NATIVE_MIN_EXP_BITS = 16
# Target work per chunk sent to a worker.
_CHUNK_S = 0.025


def _powmod_chunk(bases, exps, modulus):
    m = gmpy2.mpz(modulus)
    if isinstance(exps, int):
        e = gmpy2.mpz(exps)
        return [int(gmpy2.powmod(b, e, m)) for b in bases]
    return [int(gmpy2.powmod(b, e, m)) for b, e in zip(bases, exps)]


def powmod_sec_values(bases, exps, modulus, exp_bits=None, use_native=True):
    """``[b^e mod modulus]`` in constant time, in this process.

    On the native kernels when they run here (and ``use_native``), with
    ``exp_bits`` windows' worth of schedule (the declared length; the
    longest exponent's when omitted); else on ``gmpy2.powmod_sec``.
    ``modulus`` is odd (validated by the accelerator).
    """
    kern = native_kernels() if use_native else None
    if kern is not None:
        if exp_bits is None:
            exp_bits = exps.bit_length() if isinstance(exps, int) else max(e.bit_length() for e in exps)
        return kern.powm(bases, exps, modulus, exp_bits)
    # mpz_powm_sec needs an exponent > 0; 0 (never a secret Paillier
    # exponent) is answered without a call.
    m = gmpy2.mpz(modulus)
    one = int(gmpy2.mpz(1) % m)
    if isinstance(exps, int):
        if exps == 0:
            return [one] * len(bases)
        e = gmpy2.mpz(exps)
        return [int(gmpy2.powmod_sec(b, e, m)) for b in bases]
    return [int(gmpy2.powmod_sec(b, e, m)) if e else one for b, e in zip(bases, exps)]


def _mulmod_chunk(a, b, modulus):
    m = gmpy2.mpz(modulus)
    return [int(gmpy2.mpz(x) * y % m) for x, y in zip(a, b)]


def _product_chunk(groups, modulus):
    m = gmpy2.mpz(modulus)
    out = []
    for g in groups:
        acc = gmpy2.mpz(g[0])
        for x in g[1:]:
            acc = acc * x % m
        out.append(int(acc))
    return out


# --- fixed-base tables ------------------------------------------------------

_LIMB_BITS = 64   # GMP's limb on every 64-bit platform gmpy2 ships for


def _limbs(x):
    return -(-int(x).bit_length() // _LIMB_BITS)


class _Prepared:
    """A table in the form the product loop reads: flat ``mpz`` entries and the schedule's constants.

    ``entries[i · 2^k + d] = T[i][d]``, each of exactly the modulus's limb
    count ``L`` (an entry that happens to be shorter is stored plus the
    modulus: same residue, full length). Every step of the loop is
    ``acc = (acc + pad) · entry mod m``, where ``pad`` is the multiple of
    ``m`` chosen here so that, for every ``acc`` in ``[0, m)`` and every
    entry, ``acc + pad`` has exactly ``L + s + 1`` limbs and the product
    exactly ``2L + s``: checked on this table's actual extremes, so every
    multiplication and every reduction of every encryption has the same
    operand sizes, whatever the exponent, the factor (``1 + m·n`` is one limb
    for ``m = 0``) or the intermediate values.
    """

    __slots__ = ("entries", "k", "windows", "modulus", "pad", "sentinel", "steps", "later", "limbs")

    def __init__(self, table):
        m = gmpy2.mpz(table.modulus)
        size = _limbs(m)
        floor = gmpy2.mpz(1) << (_LIMB_BITS * (size - 1))
        entries = []
        for row in table.rows:
            for x in row:
                x = gmpy2.mpz(x)
                entries.append(x + m if x < floor and _limbs(x + m) == size else x)
        self.entries = entries
        self.k = table.k
        self.windows = table.windows
        self.modulus = m
        self.pad, self.limbs = self._pad(m, size, min(entries), max(entries))
        # A bit above the top digit: every exponent becomes one length.
        self.sentinel = 1 << (table.k * table.windows)
        # (row offset, shift) of each digit, least significant first.
        self.steps = tuple((i << table.k, table.k * i) for i in range(table.windows))
        self.later = self.steps[1:]

    @staticmethod
    def _pad(m, size, v_min, v_max):
        # Smallest s whose pad keeps operand and product limb counts fixed;
        # s = 1 unless m's top limb is all ones.
        one = gmpy2.mpz(1)
        x_span = max(m - 1, v_max)                 # acc is a residue, or a first entry
        for s in range(1, 4):
            pad = -(-(one << (_LIMB_BITS * (size + s))) // m) * m
            lo, hi = pad * v_min, (pad + x_span) * v_max
            if (_limbs(pad) == _limbs(pad + x_span) == size + s + 1
                    and _limbs(lo) == _limbs(hi) == 2 * size + s and _limbs(v_min) == _limbs(v_max)):
                return pad, (size + s + 1, size, 2 * size + s)
        # Only for a modulus whose top limb is all ones (the products then
        # straddle a limb boundary whatever s is): correct, sizes not fixed.
        return pad, None


def _fixed_base_products(t, exps, factors):
    """``base^e · f mod m`` for each exponent, on one schedule (see :class:`_Prepared`)."""
    entries, m, pad, mask = t.entries, t.modulus, t.pad, (1 << t.k) - 1
    out = []
    for j, e in enumerate(exps):
        e |= t.sentinel
        if factors is None:
            acc = entries[e & mask]
            rest = t.later
        else:
            acc = factors[j]
            rest = t.steps
        for off, shift in rest:
            acc = (acc + pad) * entries[off | ((e >> shift) & mask)] % m
        out.append(int(acc))
    return out


# token -> _Prepared, in each worker (the pool's initial state) and, for the
# in-process path, in this process through the accelerator's registry.
_WORKER_TABLES = {}


def _install_tables(tables):
    _WORKER_TABLES.clear()
    _WORKER_TABLES.update(tables)


def _fixed_base_chunk(token, exps, factors):
    return _products(_WORKER_TABLES[token], exps, factors)


def _products(prep, exps, factors):
    # A NativeTable (the kernels were in use when it was registered) or a _Prepared.
    if isinstance(prep, NativeTable):
        return native_kernels().fixed_base(prep, exps, factors)
    return _fixed_base_products(prep, exps, factors)


class CpuAccelerator(Accelerator):
    """Batch modular arithmetic with gmpy2, parallel over processes.

    Parameters
    ----------
    workers : int, optional
        Worker processes for large batches; ``None`` means ``os.cpu_count()``.
        1 keeps everything in this process.
    parallel_threshold_s : float
        Estimated single-core seconds above which a batch goes to the pool.
    chunks_per_worker : int
        Chunks each worker gets per batch (more chunks balance better,
        fewer cost less in messages).
    mp_start : str
        ``multiprocessing`` start method for the pool. ``fork`` (the default
        where it exists) needs no ``if __name__ == "__main__"`` guard in the
        caller's script and starts fastest; the workers only run gmpy2, so
        locks held by other threads at fork time do not concern them.
        ``forkserver`` and ``spawn`` work too, with the usual guard.
    max_tables : int
        Fixed-base tables kept registered (a key holder uses two per key,
        a public-key party one); the least recently used beyond it is
        dropped and rebuilt from its table if used again.
    native : bool, optional
        Use the AVX-512 IFMA kernels (:mod:`hefl.accel.native`): ``None``
        (the default) where they run, ``False`` never (gmpy2 only),
        ``True`` always (:class:`~hefl.errors.BackendUnavailable` if they
        cannot run here).
    """

    name = "cpu"

    def __init__(self, *, workers=None, parallel_threshold_s=0.005, chunks_per_worker=4,
                 mp_start=None, max_tables=6, native=None):
        super().__init__()
        if native is not False and native_kernels() is None:
            if native:
                raise BackendUnavailable(f"the native kernels cannot run: {native_unavailable_reason()}")
            native = False
        self._native = native is not False
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or workers < 1:
            raise TypeError(f"Worker count must be a positive integer, not {workers!r}")
        methods = multiprocessing.get_all_start_methods()
        if mp_start is None:
            mp_start = "fork" if "fork" in methods else methods[0]
        if mp_start not in methods:
            raise BackendUnavailable(f"start method {mp_start!r} is not available here")
        self._workers = workers
        self._threshold = float(parallel_threshold_s)
        self._chunks_per_worker = max(1, int(chunks_per_worker))
        self._mp_start = mp_start
        self._pool = None
        # id(table.rows) -> (rows, table key, token, _Prepared); rows kept
        # alive so that the id names them while registered.
        self._tables = OrderedDict()
        self._max_tables = max(1, int(max_tables))
        self._next_token = 0
        self._pool_tokens = frozenset()
        self.stats.update({"parallel_batches": 0, "serial_batches": 0, "tables_registered": 0,
                           "pool_starts": 0})

    @property
    def kernel(self):
        """What runs fixed-base products and secret powers: ``"avx512-ifma"`` or ``"gmpy2 (<why>)"``."""
        if self._native:
            return "avx512-ifma"
        return f"gmpy2 ({native_unavailable_reason() or 'native=False'})"

    @property
    def workers(self):
        """Number of worker processes used for large batches."""
        return self._workers

    # --- pool management --------------------------------------------------

    def _get_pool(self, token=None):
        if self._pool is not None and token is not None and token not in self._pool_tokens:
            # A table the workers do not hold: restart them with it.
            self._shutdown_pool()
        if self._pool is None:
            ctx = multiprocessing.get_context(self._mp_start)
            tables = {tok: prep for _, _, tok, prep in self._tables.values()}
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=ctx,
                                             initializer=_install_tables, initargs=(tables,))
            self._pool_tokens = frozenset(tables)
            self.stats["pool_starts"] += 1
        return self._pool

    def _shutdown_pool(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pool_tokens = frozenset()

    def close(self):
        """Shut the worker pool down (a later batch starts a new one)."""
        self._shutdown_pool()

    def __del__(self):
        # Best effort only: explicit close() is the contract.
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass

    def _parallel(self, estimate_s, count):
        return self._workers > 1 and count > 1 and estimate_s >= self._threshold

    def _chunks(self, count, estimate_s, granule=1):
        # At least chunks_per_worker chunks per worker, and chunks of about
        # _CHUNK_S of work, so that the last chunk leaves a worker idle only
        # briefly while the others finish (matters when cores are shared).
        # Sizes are multiples of granule (the kernels' 8 lanes) but the last.
        parts = max(self._workers * self._chunks_per_worker, int(estimate_s / _CHUNK_S))
        parts = min(count, parts)
        size = -(-count // parts)
        size = -(-size // granule) * granule
        return [(i, min(i + size, count)) for i in range(0, count, size)]

    def _run(self, fn, count, estimate_s, make_args, token=None, granule=1):
        if not self._parallel(estimate_s, count):
            self.stats["serial_batches"] += 1
            return fn(*make_args(0, count))
        self.stats["parallel_batches"] += 1
        pool = self._get_pool(token)
        try:
            futures = [pool.submit(fn, *make_args(lo, hi)) for lo, hi in self._chunks(count, estimate_s, granule)]
            out = []
            for f in futures:
                out.extend(f.result())
        except BrokenProcessPool as e:
            # A worker was killed (OOM killer, signal): drop the pool so the
            # next batch starts a fresh one, and say what happened.
            self._pool = None
            self._pool_tokens = frozenset()
            pool.shutdown(wait=False, cancel_futures=True)
            raise DeviceError(f"a cpu worker process died during the batch ({e}); the batch was not computed") from e
        return out

    # --- secret exponents -------------------------------------------------

    # --- hooks --------------------------------------------------------------

    def _powmod(self, bases, exps, modulus):
        # Public exponents (r^n's n, scalars), but the base may be secret (r):
        # the kernels' power is constant-time in both and faster than gmpy2's
        # from 16-bit exponents up (below, its 31-entry table costs more).
        ebits = max(e.bit_length() for e in exps)
        if self._native and ebits >= _NATIVE_MIN_EXP_BITS:
            return self._powmod_with(powmod_sec_values, 1 / _NATIVE_SPEEDUP, bases, exps, modulus,
                                     extra=(ebits, True), granule=_LANES)
        return self._powmod_with(_powmod_chunk, 1.0, bases, exps, modulus)

    def _powmod_secret(self, bases, exps, modulus, exp_bits):
        # Native: a fixed window schedule of exp_bits. gmpy2.powmod_sec (GMP's
        # mpz_powm_sec): its time does not follow the exponent; about
        # 1.1-1.3x powmod at 2048-bit moduli.
        if self._native:
            return self._powmod_with(powmod_sec_values, _SEC_FACTOR / _NATIVE_SPEEDUP, bases, exps, modulus,
                                     extra=(exp_bits, True), granule=_LANES)
        return self._powmod_with(powmod_sec_values, _SEC_FACTOR, bases, exps, modulus, extra=(exp_bits, False))

    def _powmod_with(self, chunk, factor, bases, exps, modulus, extra=(), granule=1):
        mbits = modulus.bit_length()
        first = exps[0]
        same = all(e == first for e in exps)
        ebits = first.bit_length() if same else max(e.bit_length() for e in exps)
        estimate = factor * len(bases) * _POWMOD_S_4096x2048 * (mbits / 4096) ** 2 * (ebits / 2048)
        if same:
            # One exponent for the whole batch (r^n, c^(p-1)): send it once.
            return self._run(chunk, len(bases), estimate,
                             lambda lo, hi: (bases[lo:hi], first, modulus, *extra), granule=granule)
        return self._run(chunk, len(bases), estimate,
                         lambda lo, hi: (bases[lo:hi], exps[lo:hi], modulus, *extra), granule=granule)

    def _mulmod(self, a, b, modulus):
        estimate = len(a) * _MULMOD_S_4096 * (modulus.bit_length() / 4096) ** 2
        # Shipping two operands and a result costs about as much as a
        # multiplication: only very large batches gain from the pool.
        return self._run(_mulmod_chunk, len(a), estimate / 4,
                         lambda lo, hi: (a[lo:hi], b[lo:hi], modulus))

    def _product(self, groups, modulus):
        factors = sum(len(g) - 1 for g in groups)
        estimate = factors * _MULMOD_S_4096 * (modulus.bit_length() / 4096) ** 2
        return self._run(_product_chunk, len(groups), estimate / 4,
                         lambda lo, hi: (groups[lo:hi], modulus))


    def _register(self, table):
        """The token and prepared form of ``table``, registering it on first use."""
        key = (table.modulus, table.base, table.exp_bits, table.k)
        hit = self._tables.get(id(table.rows))
        if hit is not None and hit[0] is table.rows and hit[1] == key:
            self._tables.move_to_end(id(table.rows))
            return hit[2], hit[3]
        token, self._next_token = self._next_token, self._next_token + 1
        prep = NativeTable(table) if self._native else _Prepared(table)
        self._tables[id(table.rows)] = (table.rows, key, token, prep)
        self.stats["tables_registered"] += 1
        while len(self._tables) > self._max_tables:
            self._tables.popitem(last=False)
        return token, prep

    def _fixed_base(self, exps, table, factors):
        token, prep = self._register(table)
        mults = prep.windows - (factors is None)
        estimate = len(exps) * mults * _MULMOD_S_4096 * (table.modulus.bit_length() / 4096) ** 2
        granule = 1
        if isinstance(prep, NativeTable):
            estimate, granule = estimate / _NATIVE_SPEEDUP, _LANES
        if not self._parallel(estimate, len(exps)):
            self.stats["serial_batches"] += 1
            return _products(prep, exps, factors)
        return self._run(_fixed_base_chunk, len(exps), estimate,
                         lambda lo, hi: (token, exps[lo:hi], None if factors is None else factors[lo:hi]),
                         token=token, granule=granule)


register_backend("cpu", CpuAccelerator)
