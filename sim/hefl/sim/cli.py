"""``hefl sim``: random Paillier-shaped jobs on the simulated device, checked against gmpy2.

Builds (or reuses) the Verilator model of the real kernel and runs, through
the ``sim`` backend's driver, batches shaped like Paillier's work:

* ``encrypt``  — ``r^n mod n²`` (exponent |n| bits), 1024-bit keys (2048-bit
  moduli) and smaller ones;
* ``encrypt_fb`` — the short-exponent fixed-base form ``h^α · (1 + m·n) mod n²``
  (α of ⌈|n|/2⌉ bits) as TABLE_PRODUCT jobs: entries from a table in card
  memory, uploaded once (``fixed_base``);
* ``decrypt``  — ``c^(p−1) mod p²`` (the CRT half of a decryption);
* ``add``      — ciphertext products ``c1·c2 mod n²`` (MULMOD);
* ``aggregate``— products of K ciphertexts mod n² (PRODUCT, K random).

Every result is compared with gmpy2; mismatches are counted, not raised.
Prints kernel cycles per kind and writes a JSON report (``--json``) with
``jobs``, ``mismatches``, ``cycles``, ``sim_cycles_per_s`` (clock cycles
the model advanced per CPU second of the thread clocking it) and the bytes
per kernel cycle ``m_axi_gmem`` moved (per batch and in all: read beats and
write beats times the bus width, over the batch's kernel cycles).
"""

import random
import secrets
import sys
import time
from pathlib import Path

from hefl.reports import check_output_dir, write_json_atomic

__all__ = ["add_arguments", "run", "job_plan"]

#: (kind, key bits, jobs) of the default plan: 204 jobs, ~25M kernel cycles
#: on the 2048-bit kernel with 2 lanes (about half a minute of simulation).
DEFAULT_PLAN = (
    ("encrypt", 1024, 4),
    ("encrypt_fb", 1024, 16),
    ("encrypt", 256, 16),
    ("decrypt", 1024, 4),
    ("add", 1024, 120),
    ("aggregate", 1024, 60),
)


def add_arguments(parser):
    parser.add_argument("--json", metavar="PATH",
                        help="write the report here, e.g. build/reports/sim.json (default: print only)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--operand-bits", type=int, default=2048,
                        help="kernel operand width (default 2048: moduli of 1024-bit Paillier keys)")
    parser.add_argument("--lanes", type=int, default=None, help="BatchEngine lanes (default: hefl.hw.params)")
    parser.add_argument("--stall-percent", type=int, default=0,
                        help="memory back-pressure: percent of cycles a ready/valid is held low")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the job counts of the default plan (min 1 job per kind)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per device run")


def _key(rng, bits):
    # Paillier-shaped moduli without the cost of prime generation: n is a
    # random odd |n|-bit number and p a random odd |n|/2-bit one. The device
    # sees exactly the operand sizes and exponent lengths of real keys; the
    # arithmetic checked is the same (gmpy2 on the same ints).
    n = rng.getrandbits(bits) | 1 | 1 << (bits - 1)
    p = rng.getrandbits(bits // 2) | 1 | 1 << (bits // 2 - 1)
    return n, p


def job_plan(rng, plan=DEFAULT_PLAN, scale=1.0, max_key_bits=None):
    """Batches ``(kind, key_bits, op, args, modulus, expected)`` built from ``rng``.

    ``max_key_bits`` caps the key sizes of ``plan`` (so that n² fits a smaller kernel).
    """
    import gmpy2
    batches = []
    for kind, bits, count in plan:
        count = max(1, round(count * scale))
        if max_key_bits is not None:
            bits = min(bits, max_key_bits)
        n, p = _key(rng, bits)
        n2, p2 = n * n, p * p
        if kind == "encrypt":
            rs = [rng.randrange(1, n) for _ in range(count)]
            args, mod = (rs, [n] * count), n2
            want = [int(gmpy2.powmod(r, n, n2)) for r in rs]
            op = "powmod"
        elif kind == "encrypt_fb":
            from hefl.golden.fixedbase import build_table
            from hefl.hw.params import CARD_TABLE_WINDOW_BITS
            # h = r^n mod n² stands for h_s; built with the card's window, no rebuild.
            # (n here is a random odd number: the base must be a unit mod n².)
            r = next(x for x in iter(lambda: rng.randrange(2, n), None) if gmpy2.gcd(x, n) == 1)
            h = int(gmpy2.powmod(r, n, n2))
            exp_bits = -(-bits // 2)
            table = build_table(h, n2, exp_bits, CARD_TABLE_WINDOW_BITS)
            alphas = [rng.getrandbits(exp_bits) for _ in range(count)]
            fs = [(1 + rng.randrange(n) * n) % n2 for _ in range(count)]
            args, mod = (table, alphas, fs), None
            want = [int(gmpy2.powmod(h, a, n2) * f % n2) for a, f in zip(alphas, fs)]
            op = "fixed_base"
        elif kind == "decrypt":
            cs = [rng.randrange(1, p2) for _ in range(count)]
            args, mod = (cs, [p - 1] * count), p2
            want = [int(gmpy2.powmod(c, p - 1, p2)) for c in cs]
            op = "powmod"
        elif kind == "add":
            a = [rng.randrange(1, n2) for _ in range(count)]
            b = [rng.randrange(1, n2) for _ in range(count)]
            args, mod = (a, b), n2
            want = [int(gmpy2.mpz(x) * y % n2) for x, y in zip(a, b)]
            op = "mulmod"
        elif kind == "aggregate":
            groups = [[rng.randrange(1, n2) for _ in range(rng.randrange(2, 9))] for _ in range(count)]
            args, mod = (groups,), n2
            want = []
            for g in groups:
                acc = gmpy2.mpz(1)
                for x in g:
                    acc = acc * x % n2
                want.append(int(acc))
            op = "product"
        else:
            raise ValueError(f"unknown job kind {kind!r}")
        batches.append((kind, bits, op, args, mod, want))
    return batches


def run(args):
    from hefl.accel.sim import kernel_library, kernel_params, sim_accelerator

    if args.json:
        check_output_dir(Path(args.json).parent)     # before minutes of simulation
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    print(f"hefl sim: seed {seed} (--seed {seed} reproduces this run)")
    rng = random.Random(seed)
    params = kernel_params(args.operand_bits, lanes=args.lanes)
    t0 = time.perf_counter()
    print(f"building/loading the simulated kernel {params} ...", flush=True)
    lib = kernel_library(**params)
    build_s = time.perf_counter() - t0
    print(f"  library {lib} ({build_s:.1f} s)")
    acc = sim_accelerator(library=lib, seed=seed, stall_percent=args.stall_percent, timeout=args.timeout)
    hw = acc.hw
    print(f"  hardware: w={hw.word_bits} s={hw.words} lanes={hw.lanes} k={hw.window_bits} "
          f"max_exp_bits={hw.max_exp_bits} data_bits={hw.data_bits}")

    # n² must fit the kernel: keys of at most half its operand width.
    cap = args.operand_bits // 2
    if any(bits > cap for _, bits, _ in DEFAULT_PLAN):
        print(f"  note: key sizes capped at {cap} bits so that n² fits the {args.operand_bits}-bit kernel")
    batches = job_plan(rng, scale=args.scale, max_key_bits=cap)
    rows, mismatches, jobs = [], 0, 0
    wall = time.perf_counter()
    tr = acc.transport
    clk0, wall0, cpu0 = tr.cycles, tr.wait_wall_s, tr.wait_cpu_s
    print(f"{'kind':<10} {'key':>5} {'mod bits':>8} {'jobs':>5} {'kernel cycles':>14} "
          f"{'cycles/job':>11} {'wall s':>7} {'bad':>4}")
    beat_bytes = hw.data_bits // 8
    beats0 = tr.bus_beats
    for kind, bits, op, call_args, mod, want in batches:
        c0, t = acc.stats["cycles"], time.perf_counter()
        b0 = tr.bus_beats
        got = getattr(acc, op)(*call_args) if mod is None else getattr(acc, op)(*call_args, mod)
        dt = time.perf_counter() - t
        cyc = acc.stats["cycles"] - c0
        rd, wr = (x - y for x, y in zip(tr.bus_beats, b0))
        bad = sum(1 for x, y in zip(got, want) if x != y) + abs(len(got) - len(want))
        mismatches += bad
        jobs += len(want)
        mbits = (mod if mod is not None else call_args[0].modulus).bit_length()
        rows.append({"kind": kind, "key_bits": bits, "modulus_bits": mbits, "op": op,
                     "jobs": len(want), "kernel_cycles": cyc, "cycles_per_job": cyc / len(want),
                     "read_bytes_per_cycle": rd * beat_bytes / cyc if cyc else 0.0,
                     "write_bytes_per_cycle": wr * beat_bytes / cyc if cyc else 0.0,
                     "wall_s": dt, "mismatches": bad})
        print(f"{kind:<10} {bits:>5} {mbits:>8} {len(want):>5} {cyc:>14,} "
              f"{cyc / len(want):>11,.0f} {dt:>7.2f} {bad:>4}", flush=True)
    wall = time.perf_counter() - wall
    sim_cycles = tr.cycles - clk0
    wait_wall, wait_cpu = tr.wait_wall_s - wall0, tr.wait_cpu_s - cpu0
    rd, wr = (x - y for x, y in zip(tr.bus_beats, beats0))
    cycles = acc.stats["cycles"]
    report = {
        "jobs": jobs,
        "mismatches": mismatches,
        "cycles": cycles,
        "bus": {"data_bits": hw.data_bits, "read_beats": rd, "write_beats": wr,
                "read_bytes_per_cycle": rd * beat_bytes / cycles if cycles else 0.0,
                "write_bytes_per_cycle": wr * beat_bytes / cycles if cycles else 0.0,
                "note": "m_axi_gmem beats over kernel cycles of all runs (table uploads are "
                        "host DMA, not counted); per-batch figures in batches[]"},
        "sim_cycles": sim_cycles,
        "sim_cycles_per_s": sim_cycles / wait_cpu if wait_cpu else None,
        "sim_cycles_per_wall_s": sim_cycles / wait_wall if wait_wall else None,
        "sim_cycles_per_s_note": "clock cycles of the Verilator model (C++ clocking loop, AXI-Lite "
                                 "polling included) per CPU second of the thread clocking it; "
                                 "sim_cycles_per_wall_s is the same per wall second, lower when "
                                 "other processes share the cores",
        "wall_s": wall,
        "build_or_load_s": build_s,
        "seed": seed,
        "kernel": params,
        "hardware": {"word_bits": hw.word_bits, "words": hw.words, "lanes": hw.lanes,
                     "window_bits": hw.window_bits, "max_exp_bits": hw.max_exp_bits,
                     "data_bits": hw.data_bits},
        "host_s": acc.stats["host_s"],
        "table_uploads": acc.stats["table_uploads"],
        "batches": rows,
        "library": str(lib),
    }
    acc.close()
    print(f"{jobs} jobs, {mismatches} mismatches, {report['cycles']:,} kernel cycles, "
          f"{report['sim_cycles_per_s']:,.0f} simulated cycles per CPU s "
          f"({report['sim_cycles_per_wall_s']:,.0f} per wall s), {wall:.1f} s")
    if args.json:
        out = write_json_atomic(Path(args.json), report)
        print(f"report: {out}")
    if mismatches:
        print(f"hefl sim: {mismatches} results disagree with gmpy2", file=sys.stderr)
        return 1
    return 0
