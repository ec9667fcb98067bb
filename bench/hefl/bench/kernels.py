"""``hefl bench kernels``: the cpu backend's IFMA kernels against gmpy2, one core, side by side.

For one key, in this process, passes alternating between the two sides
(best of ``--repeat``), each side's results compared with the other's:

* ``powm_secret.p2``: ``c^(p-1) mod p²`` (decryption's half), the native
  fixed-window power (:meth:`hefl.accel.native.Mm52.powm`) against
  ``gmpy2.powmod_sec``;
* ``powm_secret.n2``: ``r^n mod n²`` at the same sizes as textbook encryption;
* ``fixed_base.n2`` / ``fixed_base.p2``: one DJN table product (public key,
  and a key holder's half) on the kernels' :class:`~hefl.accel.native.NativeTable`
  against the gmpy2 loop of :mod:`hefl.accel.cpu`, at the default window.

JSON: ``per_s.<op>.native`` / ``.gmpy2``, ``ratio.<op>`` (native / gmpy2),
the load averages and the kernel in use. Skips with its reason (exit 0,
``"skipped"``) where the kernels cannot run.
"""

import os
import secrets
import time

import gmpy2

from hefl.accel import native
from hefl.accel.cpu import _fixed_base_products, _Prepared
from hefl.errors import HeflError, VerificationError
from hefl.paillier import djn, generate_keypair
from hefl.reports import report_meta, write_json_atomic

__all__ = ["add_arguments", "run", "measure"]


def add_arguments(parser):
    parser.add_argument("--key-bits", type=int, default=2048, help="Paillier key size (default 2048)")
    parser.add_argument("--count", type=int, default=64, help="numbers per pass and operation (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per side (default 3)")
    parser.add_argument("--json", default=None, help="write the result here")


def _best(fn, count, repeat, out):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        out.append(fn())
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return count / best


def _operations(kern, pub, priv, count):
    """``{op: (native fn, gmpy2 fn)}`` on fresh random inputs."""
    p2, n2 = priv.p2, pub.n2
    cs = [secrets.randbelow(p2) for _ in range(count)]
    rs = [secrets.randbelow(n2) for _ in range(count)]
    alphas = djn.random_alphas(count, djn.exponent_bits(pub.bits))
    ops = {
        "powm_secret.p2": (lambda: kern.powm(cs, priv.p - 1, p2, priv.p.bit_length()),
                           lambda: [int(gmpy2.powmod_sec(c, priv.p - 1, p2)) for c in cs]),
        "powm_secret.n2": (lambda: kern.powm(rs, pub.n, n2, pub.n.bit_length()),
                           lambda: [int(gmpy2.powmod_sec(r, pub.n, n2)) for r in rs]),
    }
    for name, holder in (("n2", False), ("p2", True)):
        mod = n2 if name == "n2" else p2
        k = djn.window_bits_for(pub.bits, holder=holder)
        table = djn.build_table(pub.h_s % mod, mod, djn.exponent_bits(pub.bits), k)
        nt, prep = native.NativeTable(table), _Prepared(table)
        ops[f"fixed_base.{name}"] = (lambda nt=nt: kern.fixed_base(nt, alphas),
                                     lambda prep=prep: _fixed_base_products(prep, alphas, None))
    return ops


def measure(key_bits=2048, *, count=64, repeat=3):
    """Run the comparison; the result dict (see the module docstring)."""
    if count < 1 or repeat < 1:
        raise HeflError("--count and --repeat must be at least 1")
    kern = native.kernels()
    meta = {**report_meta("kernels", 1), "benchmark": "kernels", "key_bits": key_bits, "count": count,
            "repeat": repeat, "load_average_before": os.getloadavg()}
    if kern is None:
        return {**meta, "skipped": native.unavailable_reason()}
    pub, priv = generate_keypair(key_bits)
    per_s = {}
    for op, (fast, ref) in _operations(kern, pub, priv, count).items():
        outs_n, outs_g = [], []
        per_s[op] = {"native": _best(fast, count, repeat, outs_n), "gmpy2": _best(ref, count, repeat, outs_g)}
        if any(o != outs_g[0] for o in outs_n + outs_g):
            raise VerificationError(f"{op}: the native kernels and gmpy2 disagree")
    return {**meta, "skipped": None, "kernel": "avx512-ifma", "one_core": True, "per_s": per_s,
            "ratio": {op: v["native"] / v["gmpy2"] for op, v in per_s.items()},
            "load_average_after": os.getloadavg(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run(args):
    if args.json:
        from hefl.reports import check_output_dir
        check_output_dir(os.path.dirname(os.path.abspath(args.json)))
    r = measure(args.key_bits, count=args.count, repeat=args.repeat)
    if r["skipped"]:
        print(f"hefl bench kernels: skipped: {r['skipped']}")
    else:
        print(f"IFMA kernels vs gmpy2, {args.key_bits}-bit key, one core, {args.count} numbers, "
              f"best of {args.repeat} (load {r['load_average_before'][0]:.2f})")
        for op, v in r["per_s"].items():
            print(f"{op:<18}{v['native']:>12.1f}/s{v['gmpy2']:>12.1f}/s{r['ratio'][op]:>8.2f}x")
    if args.json:
        write_json_atomic(args.json, r)
        print(f"wrote {args.json}")
    return 0
