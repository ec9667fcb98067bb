"""``hefl bench host-overhead``: host time per job around the device, measured.

Runs Paillier-shaped batches through the one device driver
(:class:`hefl.accel.device.DeviceAccelerator`) on the simulated device and
splits the host's time per job into the driver's phases:

=============  ==============================================================
``constants``  N', R² mod N, R mod N (once per modulus, then cached)
``pack``       limb packing of the operands and the descriptor
``sync_to``    buffer writes + sync to the device (ctypes copy into the model)
``sync_from``  sync back + read of the result buffer
``unpack``     status check, limbs → ints, range check of every result
=============  ==============================================================

``overhead_us_per_job`` is their sum per job: what the host adds to each job
whatever the device's speed. The device's own time (``run``: clocking the
Verilator model) is reported beside it but is not overhead — on a card it is
the kernel's time. Every result is also checked against gmpy2 (outside the
timed phases).
"""

import random
import secrets
import time
from pathlib import Path

from hefl.reports import check_output_dir, report_meta, write_json_atomic

__all__ = ["add_arguments", "run"]

_PHASES = ("constants", "pack", "sync_to", "sync_from", "unpack")


def add_arguments(parser):
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--operand-bits", type=int, default=2048,
                        help="simulated kernel width; keys of half this size (default 2048)")
    parser.add_argument("--mulmod-jobs", type=int, default=2000)
    parser.add_argument("--product-jobs", type=int, default=1000, help="groups of --product-k")
    parser.add_argument("--product-k", type=int, default=3)
    parser.add_argument("--powmod-jobs", type=int, default=4,
                        help="r^n mod n² jobs (each costs millions of simulated cycles)")
    parser.add_argument("--passes", type=int, default=3,
                        help="repeat each batch; the best pass is reported (buffers are "
                             "allocated in the first, and the machine is shared)")
    parser.add_argument("--seed", type=int, default=None)


def _measure(acc, label, call, want, passes):
    runs = [_measure_once(acc, label, call, want) for _ in range(max(1, passes))]
    best = min(runs, key=lambda r: r["overhead_us_per_job"])
    best["passes"] = len(runs)
    best["overhead_us_per_job_all_passes"] = [r["overhead_us_per_job"] for r in runs]
    return best


def _measure_once(acc, label, call, want):
    before = dict(acc.stats["host_s"])
    b0, c0 = acc.stats["batches"], acc.stats["cycles"]
    t = time.perf_counter()
    got = call()
    wall = time.perf_counter() - t
    if got != want:
        raise AssertionError(f"{label}: the device disagrees with gmpy2")
    jobs = len(want)
    ph = {k: acc.stats["host_s"][k] - before[k] for k in (*_PHASES, "run")}
    over = sum(ph[k] for k in _PHASES)
    return {
        "jobs": jobs,
        "batches": acc.stats["batches"] - b0,
        "phase_us_per_job": {k: 1e6 * ph[k] / jobs for k in _PHASES},
        "overhead_us_per_job": 1e6 * over / jobs,
        "device_run_s": ph["run"],
        "kernel_cycles_per_job": (acc.stats["cycles"] - c0) / jobs,
        "wall_s": wall,
    }


def run(args):
    if args.json:
        check_output_dir(Path(args.json).parent)   # before the kernel build
    import gmpy2

    from hefl.accel.sim import kernel_library, kernel_params, sim_accelerator

    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    params = kernel_params(args.operand_bits)
    lib = kernel_library(**params)
    acc = sim_accelerator(library=lib, seed=seed)
    bits = args.operand_bits // 2
    n = rng.getrandbits(bits) | 1 | 1 << (bits - 1)
    n2 = n * n
    print(f"hefl bench host-overhead: seed {seed}, {bits}-bit key shapes (modulus {n2.bit_length()} bits), "
          f"kernel w={acc.hw.word_bits} s={acc.hw.words} lanes={acc.hw.lanes}")
    results = {}

    a = [rng.randrange(1, n2) for _ in range(args.mulmod_jobs)]
    b = [rng.randrange(1, n2) for _ in range(args.mulmod_jobs)]
    results["mulmod"] = _measure(acc, "mulmod", lambda: acc.mulmod(a, b, n2),
                                 [int(gmpy2.mpz(x) * y % n2) for x, y in zip(a, b)], args.passes)

    groups = [[rng.randrange(1, n2) for _ in range(args.product_k)] for _ in range(args.product_jobs)]
    want = []
    for g in groups:
        p = gmpy2.mpz(1)
        for x in g:
            p = p * x % n2
        want.append(int(p))
    results["product"] = _measure(acc, "product", lambda: acc.product(groups, n2), want, args.passes)

    rs = [rng.randrange(1, n) for _ in range(args.powmod_jobs)]
    results["powmod"] = _measure(acc, "powmod", lambda: acc.powmod(rs, [n] * len(rs), n2),
                                 [int(gmpy2.powmod(r, n, n2)) for r in rs], 1)
    acc.close()

    print(f"{'op':<8} {'jobs':>6} {'overhead us/job':>16} " + " ".join(f"{p:>10}" for p in _PHASES)
          + f" {'kernel cyc/job':>15}")
    for op, r in results.items():
        print(f"{op:<8} {r['jobs']:>6} {r['overhead_us_per_job']:>16.1f} "
              + " ".join(f"{r['phase_us_per_job'][p]:>10.2f}" for p in _PHASES)
              + f" {r['kernel_cycles_per_job']:>15,.0f}")
    report = {"seed": seed, "key_bits": bits, "modulus_bits": n2.bit_length(), "kernel": params,
              "transport": "sim", "ops": results,
              "note": "host seconds per job in the driver's phases (descriptor + packing + sync), best of "
                      "--passes (powmod: one pass, its device time dominates); "
                      "device run time excluded (it is the kernel's); sync on the sim transport "
                      "is a ctypes copy into the model's memory, on XRT a PCIe DMA"}
    if args.json:
        out = write_json_atomic(args.json, {**report_meta("bench-host-overhead", 1), **report})
        print(f"report: {out}")
    return 0
