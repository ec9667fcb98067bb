"""The ``cpu`` backend: gmpy2 on every core of this machine.

The reference every other backend is checked against, and the fallback.
Small batches run in this process; batches whose estimated work exceeds a
threshold are cut into chunks and spread over a pool of worker processes
(one per core by default). The pool is created on first use and shut down
by :meth:`CpuAccelerator.close`. Operands travel to the workers as plain
Python ints through the pool's pipe: the workers are our own processes, not
another party, so pickling here carries no trust issue.
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import gmpy2

from hefl.accel.base import Accelerator, register_backend
from hefl.errors import BackendUnavailable, DeviceError

__all__ = ["CpuAccelerator"]

# Rough single-core costs on this class of machine (TOOLCHAIN.md: a
# 4096-bit modulus with a 2048-bit exponent runs ~107/s, a 4096-bit mulmod
# ~207k/s). Only used to decide whether a batch is worth the pool.
_POWMOD_S_4096x2048 = 1 / 107
_MULMOD_S_4096 = 1 / 207e3
# Target work per chunk sent to a worker.
_CHUNK_S = 0.025


def _powmod_chunk(bases, exps, modulus):
    m = gmpy2.mpz(modulus)
    if isinstance(exps, int):
        e = gmpy2.mpz(exps)
        return [int(gmpy2.powmod(b, e, m)) for b in bases]
    return [int(gmpy2.powmod(b, e, m)) for b, e in zip(bases, exps)]


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
    """

    name = "cpu"

    def __init__(self, *, workers=None, parallel_threshold_s=0.02, chunks_per_worker=4,
                 mp_start=None):
        super().__init__()
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
        self.stats.update({"parallel_batches": 0, "serial_batches": 0})

    @property
    def workers(self):
        """Number of worker processes used for large batches."""
        return self._workers

    # --- pool management --------------------------------------------------

    def _get_pool(self):
        if self._pool is None:
            ctx = multiprocessing.get_context(self._mp_start)
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=ctx)
        return self._pool

    def close(self):
        """Shut the worker pool down (a later batch starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self):
        # Best effort only: explicit close() is the contract.
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass

    def _parallel(self, estimate_s, count):
        return self._workers > 1 and count > 1 and estimate_s >= self._threshold

    def _chunks(self, count, estimate_s):
        # At least chunks_per_worker chunks per worker, and chunks of about
        # _CHUNK_S of work, so that the last chunk leaves a worker idle only
        # briefly while the others finish (matters when cores are shared).
        parts = max(self._workers * self._chunks_per_worker, int(estimate_s / _CHUNK_S))
        parts = min(count, parts)
        size = -(-count // parts)
        return [(i, min(i + size, count)) for i in range(0, count, size)]

    def _run(self, fn, count, estimate_s, make_args):
        if not self._parallel(estimate_s, count):
            self.stats["serial_batches"] += 1
            return fn(*make_args(0, count))
        self.stats["parallel_batches"] += 1
        pool = self._get_pool()
        try:
            futures = [pool.submit(fn, *make_args(lo, hi)) for lo, hi in self._chunks(count, estimate_s)]
            out = []
            for f in futures:
                out.extend(f.result())
        except BrokenProcessPool as e:
            # A worker was killed (OOM killer, signal): drop the pool so the
            # next batch starts a fresh one, and say what happened.
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise DeviceError(f"a cpu worker process died during the batch ({e}); the batch was not computed") from e
        return out

    # --- hooks --------------------------------------------------------------

    def _powmod(self, bases, exps, modulus):
        mbits = modulus.bit_length()
        first = exps[0]
        same = all(e == first for e in exps)
        ebits = first.bit_length() if same else max(e.bit_length() for e in exps)
        estimate = len(bases) * _POWMOD_S_4096x2048 * (mbits / 4096) ** 2 * (ebits / 2048)
        if same:
            # One exponent for the whole batch (r^n, c^(p-1)): send it once.
            return self._run(_powmod_chunk, len(bases), estimate,
                             lambda lo, hi: (bases[lo:hi], first, modulus))
        return self._run(_powmod_chunk, len(bases), estimate,
                         lambda lo, hi: (bases[lo:hi], exps[lo:hi], modulus))

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


register_backend("cpu", CpuAccelerator)
