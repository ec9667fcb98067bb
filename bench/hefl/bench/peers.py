"""``hefl bench peers``: hefl against the open Paillier libraries, in one process.

Libraries (JSON names): ``hefl`` (cpu backend, all cores, DJN fixed-base
encryption), ``phe`` (python-paillier, one core), ``pypaillier`` (Rust on
GMP, import ``paillier``; DJN short-exponent), ``heu-ZPaillier`` and
``heu-IPCL`` (SecretFlow HEU, ``sf-heu``, import ``heu``). Each library
makes its own key of ``--key-bits`` bits (pypaillier refuses keys below
2048 bits and gets 2048; the JSON records every library's key size),
encrypts the same ``--count`` non-negative 62-bit integers with its public
key and decrypts them, and checks that it got them back: a library that
computed garbage fast stops the benchmark with an error. hefl also encrypts
as the key holder (CRT, half-size tables).

Passes alternate library by library (the order rotating each pass) and the
best pass per library and operation is kept: the machine is shared, and a
load spike should not decide a ratio. Load averages before and after go in
the JSON. A library whose wheel is not installed here is skipped with its
reason printed and recorded (``libraries.<name>.skipped``); they are dev
dependencies, so on the platforms CI runs on none is missing.

JSON keys: ``per_s.<library>.encrypt_public``, ``per_s.<library>.decrypt``,
``per_s.hefl.encrypt_keyholder``; ``targets`` compares hefl with the
fastest peer of the same run whose key has hefl's size. Beside each
wall-clock rate, ``per_cpu_s`` gives the same operations per CPU-second
that the library's threads and worker processes used (this process's
rusage plus hefl's workers' ``/proc`` times, 10 ms ticks): on a machine
shared with other work the wall-clock ratios follow whatever share of the
cores each pass got, this one follows the work.
"""

import os
import platform
import resource
import secrets
import sys
import time

from hefl.errors import HeflError, VerificationError
from hefl.reports import report_meta, write_json_atomic

__all__ = ["add_arguments", "run", "measure", "LIBRARIES", "TARGETS"]

#: Every library of the comparison, in JSON spelling.
LIBRARIES = ("hefl", "phe", "pypaillier", "heu-ZPaillier", "heu-IPCL")
#: hefl / fastest peer, public-key encryption and key-holder encryption.
TARGETS = {"encrypt_public": 1.3, "encrypt_keyholder": 2.0}
# pypaillier refuses shorter keys.
_PYPAILLIER_MIN_BITS = 2048
# Plaintexts every library accepts as integers (HEU's encoder takes int64).
_VALUE_BITS = 62


def add_arguments(parser):
    parser.add_argument("--key-bits", type=int, default=2048, help="bit length of n (default 2048)")
    parser.add_argument("--json", metavar="PATH", help="write the results here (directories are created)")
    parser.add_argument("--count", type=int, default=400, help="values per pass and library (default 400)")
    parser.add_argument("--phe-count", type=int, default=None,
                        help="values per pass for python-paillier, the slowest (default: --count / 4)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating passes, best kept (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="hefl worker processes (default: all cores)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {','.join(LIBRARIES)} (hefl is always measured)")


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _check(cond, what):
    if not cond:
        raise VerificationError(f"benchmark self-check failed: {what}")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class _Skip(Exception):
    """A peer that cannot run here; the message is the reason."""


# --- the libraries -------------------------------------------------------------
# Each adapter: name, version, key_bits, keygen_s, threads (a note),
# ops: {op name: fn(values) -> ciphertexts}, decrypt(ciphertexts) -> ints.

class _Hefl:
    name = "hefl"

    def __init__(self, key_bits, workers):
        import hefl
        from hefl.accel.cpu import CpuAccelerator
        from hefl.paillier import Paillier, generate_keypair

        self.version = getattr(hefl, "__version__", "unknown")
        (pub, priv), self.keygen_s = _timed(lambda: generate_keypair(key_bits))
        self.key_bits = pub.bits
        self.accel = CpuAccelerator(workers=workers)
        self.threads = f"{self.accel.workers} worker processes"
        self.holder = Paillier(pub, priv, self.accel)
        self.public = Paillier(pub, accel=self.accel)
        # Warm-up outside the timing: tables built, pool started holding them.
        many = list(range(64 * self.accel.workers))
        _check(self.holder.decrypt(self.holder.encrypt(many)) == many, "hefl warm-up (key holder)")
        _check(self.holder.decrypt(self.public.encrypt(many)) == many, "hefl warm-up (public key)")
        tables = self.public.tables(), self.holder.tables()
        self.detail = {"method": "djn", "kernel": self.accel.kernel, "window_bits": tables[0].window_bits,
                       "holder_window_bits": tables[1].window_bits,
                       "table_bytes": tables[0].nbytes, "table_build_s": tables[0].build_s,
                       "holder_table_bytes": tables[1].nbytes, "holder_table_build_s": tables[1].build_s}
        self.ops = {"encrypt_public": self.public.encrypt, "encrypt_keyholder": self.holder.encrypt}

    def decrypt(self, cts):
        return self.holder.decrypt(cts)

    def worker_pids(self):
        pool = self.accel._pool
        return list(getattr(pool, "_processes", None) or ()) if pool is not None else []

    def close(self):
        self.accel.close()


class _Phe:
    name = "phe"

    def __init__(self, key_bits, workers):
        phe = _import("phe", "phe")
        self.version = getattr(phe, "__version__", "unknown")
        (self.pub, self.priv), self.keygen_s = _timed(lambda: phe.generate_paillier_keypair(n_length=key_bits))
        self.key_bits = self.pub.n.bit_length()
        self.threads = "1 (pure Python on gmpy2)"
        self.detail = {}
        self.ops = {"encrypt_public": lambda vs: [self.pub.encrypt(v) for v in vs]}

    def decrypt(self, cts):
        return [self.priv.decrypt(c) for c in cts]

    def close(self):
        pass


class _PyPaillier:
    name = "pypaillier"

    def __init__(self, key_bits, workers):
        lib = _import("paillier", "pypaillier")
        self.lib = lib
        self.version = getattr(lib, "__version__", "unknown")
        bits = max(key_bits, _PYPAILLIER_MIN_BITS)
        if bits != key_bits:
            _log(f"pypaillier: refuses keys below {_PYPAILLIER_MIN_BITS} bits; its key has {bits}")
        (self.pk, self.sk), self.keygen_s = _timed(lambda: lib.generate_keypair(bits))
        self.key_bits = bits
        self.threads = "all cores (its own thread pool)"
        self.detail = {"exponent_bits": self.pk.exponent_bits}
        self.ops = {"encrypt_public": lambda vs: lib.encrypt_integers(self.pk, vs)}

    def decrypt(self, cts):
        out = self.lib.decrypt_exact_many(self.sk, cts)
        _check(all(scale == 0 for _, scale in out), "pypaillier: integer ciphertexts came back scaled")
        return [m for m, _ in out]

    def close(self):
        pass


class _Heu:
    def __init__(self, schema, key_bits, workers):
        _import("heu", "sf-heu")
        import numpy as np
        from heu import numpy as hnp
        from heu import phe

        self.name = f"heu-{schema}"
        self.np, self.hnp = np, hnp
        self.version = _dist_version("sf-heu")
        try:
            kind = getattr(phe.SchemaType, schema)
            self.kit, self.keygen_s = _timed(lambda: hnp.setup(kind, key_bits))
        except (AttributeError, RuntimeError, phe.PheRuntimeError) as e:
            raise _Skip(f"HEU schema {schema} does not set up here: {e}") from None
        self.key_bits = key_bits
        self.threads = "HEU's thread pool"
        self.detail = {"schema": schema}
        enc = self.kit.encryptor()
        self.ops = {"encrypt_public": lambda vs: enc.encrypt(self.kit.array(np.array(vs, dtype=np.int64)))}

    def decrypt(self, cts):
        return [int(x) for x in self.kit.decryptor().decrypt(cts).to_numpy().tolist()]

    def close(self):
        pass


def _import(module, dist):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise _Skip(f"{dist} is not installed (import {module!r} failed: {e}); "
                    "pip install -e '.[dev]' installs it where a wheel exists") from None


def _dist_version(dist):
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


_FACTORIES = {
    "hefl": _Hefl,
    "phe": _Phe,
    "pypaillier": _PyPaillier,
    "heu-ZPaillier": lambda bits, workers: _Heu("ZPaillier", bits, workers),
    "heu-IPCL": lambda bits, workers: _Heu("IPCL", bits, workers),
}


# --- the measurement ------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(lib):
    """CPU seconds used so far by this process (all threads) and ``lib``'s worker processes."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    total = ru.ru_utime + ru.ru_stime
    for pid in getattr(lib, "worker_pids", list)():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK     # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def _timed_cpu(lib, fn):
    c0, t0 = _cpu_s(lib), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, _cpu_s(lib) - c0


def _pass(lib, values, runs):
    """Every operation of ``lib`` once on ``values``, each result decrypted and checked."""
    for op, fn in lib.ops.items():
        cts, t, c = _timed_cpu(lib, lambda: fn(values))
        runs[op].append((len(values), t, c))
        out, td, cd = _timed_cpu(lib, lambda: lib.decrypt(cts))
        _check(out == values, f"{lib.name} {op}: decryption gave other values")
        if op == "encrypt_public":
            runs["decrypt"].append((len(values), td, cd))


def _best(runs):
    return max(r[0] / r[1] for r in runs)


def _best_cpu(runs):
    rates = [r[0] / r[2] for r in runs if r[2] > 0]
    return max(rates) if rates else None


def measure(key_bits=2048, *, count=400, phe_count=None, repeat=3, workers=None, only=None, seed=None):
    """Run the comparison and return the result dict (see the module docstring)."""
    if count < 1 or repeat < 1:
        raise HeflError("--count and --repeat must be at least 1")
    phe_count = max(1, count // 4) if phe_count is None else phe_count
    names = LIBRARIES if only is None else tuple(dict.fromkeys(("hefl",) + tuple(only)))
    unknown = [n for n in names if n not in LIBRARIES]
    if unknown:
        raise HeflError(f"unknown libraries {', '.join(unknown)}; known: {', '.join(LIBRARIES)}")
    import random

    seed = secrets.randbits(32) if seed is None else seed
    rng = random.Random(seed)
    values = [rng.getrandbits(_VALUE_BITS) for _ in range(count)]

    load_before = os.getloadavg()
    libs, info = [], {}
    try:
        for name in names:
            _log(f"{name}: key setup ({key_bits} bits)")
            try:
                lib = _FACTORIES[name](key_bits, workers)
            except _Skip as e:
                _log(f"{name}: SKIPPED: {e}")
                info[name] = {"skipped": True, "reason": str(e)}
                continue
            libs.append(lib)
            info[name] = {"skipped": False, "version": lib.version, "key_bits": lib.key_bits,
                          "keygen_s": lib.keygen_s, "threads": lib.threads,
                          "count": phe_count if name == "phe" else count, **lib.detail}
        runs = {lib.name: {op: [] for op in (*lib.ops, "decrypt")} for lib in libs}
        for i in range(repeat):
            order = libs[i % len(libs):] + libs[:i % len(libs)]
            _log(f"pass {i + 1}/{repeat}: {', '.join(lib.name for lib in order)}")
            for lib in order:
                _pass(lib, values[:phe_count] if lib.name == "phe" else values, runs[lib.name])
    finally:
        for lib in libs:
            lib.close()

    per_s = {name: {op: _best(r) for op, r in ops.items()} for name, ops in runs.items()}
    per_cpu_s = {name: {op: _best_cpu(r) for op, r in ops.items()} for name, ops in runs.items()}
    passes = {name: {op: [r[0] / r[1] for r in rs] for op, rs in ops.items()} for name, ops in runs.items()}
    # Only peers on keys of hefl's size compete (pypaillier below 2048 bits does not).
    peers = {n: v for n, v in per_s.items() if n != "hefl" and info[n]["key_bits"] == info["hefl"]["key_bits"]}
    fastest = max(peers.items(), key=lambda kv: kv[1]["encrypt_public"]) if peers else None
    targets = {}
    if fastest is not None:
        best_cpu = max((per_cpu_s[n]["encrypt_public"] or 0) for n in peers)
        for op, ratio in TARGETS.items():
            measured = per_s["hefl"][op] / fastest[1]["encrypt_public"]
            ours = per_cpu_s["hefl"][op]
            targets[op] = {"min_ratio": ratio, "measured": measured, "met": measured >= ratio,
                           "against": f"{fastest[0]}.encrypt_public",
                           "per_cpu_s_ratio": ours / best_cpu if ours and best_cpu else None}
    return {
        **report_meta("peers", 1),
        "benchmark": "peers",
        "key_bits": key_bits,
        "count": count,
        "phe_count": phe_count,
        "repeat": repeat,
        "seed": seed,
        "value_bits": _VALUE_BITS,
        "statistic": "best of the passes; libraries alternate, the order rotating each pass",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "libraries": info,
        "skipped": {n: v["reason"] for n, v in info.items() if v["skipped"]},
        "per_s": per_s,
        "per_cpu_s": per_cpu_s,
        "passes_per_s": passes,
        "fastest_peer": None if fastest is None else {"library": fastest[0],
                                                      "encrypt_public_per_s": fastest[1]["encrypt_public"]},
        "targets": targets,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _table(r):
    lines = [f"Paillier {r['key_bits']}-bit, {r['count']} values per pass, best of {r['repeat']} "
             f"(load {r['load_average_before'][0]:.2f} -> {r['load_average_after'][0]:.2f})",
             f"{'library':<16}{'key bits':>9}{'encrypt/s':>12}{'key holder/s':>14}{'decrypt/s':>12}"]
    for name, v in r["libraries"].items():
        if v["skipped"]:
            lines.append(f"{name:<16}skipped: {v['reason']}")
            continue
        p = r["per_s"][name]
        kh = p.get("encrypt_keyholder")
        lines.append(f"{name:<16}{v['key_bits']:>9}{p['encrypt_public']:>12.1f}"
                     f"{'' if kh is None else f'{kh:.1f}':>14}{p['decrypt']:>12.1f}")
    lines.append("per CPU-second (the work, whatever share of the cores each pass got):")
    for name, ops in r["per_cpu_s"].items():
        lines.append(f"  {name:<14}" + ", ".join(f"{op} {v:.1f}" for op, v in ops.items() if v))
    for op, t in r["targets"].items():
        cpu = t["per_cpu_s_ratio"]
        lines.append(f"target hefl {op} >= {t['min_ratio']}x {t['against']}: measured {t['measured']:.2f}x: "
                     f"{'met' if t['met'] else 'NOT met'}"
                     + ("" if cpu is None else f" (per CPU-second: {cpu:.2f}x the best peer)"))
    return "\n".join(lines)


def run(args):
    only = None if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    if args.json:
        from hefl.reports import check_output_dir
        check_output_dir(os.path.dirname(os.path.abspath(args.json)))
    r = measure(args.key_bits, count=args.count, phe_count=args.phe_count, repeat=args.repeat,
                workers=args.workers, only=only)
    print(_table(r))
    if args.json:
        write_json_atomic(args.json, r)
        print(f"wrote {args.json}")
    return 0
