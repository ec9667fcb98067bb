"""``hefl formal``: run the formal checks (and the mutants) and write a JSON report.

Exit status 0 when every check is as expected (proved or bounded-checked
to its depth, every cover reached) and, with ``--mutants``, every mutant
caught; 1 otherwise.
"""

import time

from hefl.paths import build_root

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("--only", action="append", metavar="CHECK",
                        help="run only this check (repeatable); see --list")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--deep", action="store_true",
                        help="scale every depth by hefl.flows.formal.checks.DEEP (slower)")
    parser.add_argument("--mutants", action="store_true",
                        help="also check that formal catches every deliberately broken variant")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="solver runs at a time (2)")
    parser.add_argument("--json", default=str(build_root() / "reports" / "formal.json"),
                        help="report path (default build/reports/formal.json)")


def _line(v):
    c, r = v.check, v.main
    how = "induction closed" if v.induction_closed else f"{r.task} depth {c.depth}"
    cov = "" if v.cover is None else f", {len(v.cover.reached)} covers ≤ {c.cover_depth}"
    extra = f" [expected fail: {', '.join(c.expect_fail)}]" if c.expect_fail else ""
    bad = "" if v.ok else f"  failed={r.failed} unreached={v.cover.unreached if v.cover else []}"
    return f"{'ok ' if v.ok else 'BAD'} {c.name:<22} {how}{cov}, {v.seconds:6.1f} s{extra}{bad}"


def run(args):
    from hefl.flows.formal.checks import CHECKS, DEEP, DEEP_CHECKS, check
    from hefl.flows.formal.run import deepen, run_checks, run_mutants
    from hefl.reports import report_meta, write_json_atomic

    if args.list:
        for c in CHECKS + DEEP_CHECKS:
            print(f"{c.name:<22} {c.doc}{' (--deep)' if c in DEEP_CHECKS else ''}")
        return 0
    checks = [check(n) for n in args.only] if args.only else list(CHECKS)
    if args.deep:
        checks = [deepen(c, DEEP) for c in checks] + ([] if args.only else list(DEEP_CHECKS))
    t0 = time.monotonic()
    verdicts = run_checks(checks, jobs=args.jobs)
    for v in verdicts:
        print(_line(v))
    report = {**report_meta("formal", 1), "checks": [v.as_dict() for v in verdicts]}
    ok = all(v.ok for v in verdicts)
    if args.mutants:
        from hefl.flows.formal.mutants import MUTANTS
        mv = run_mutants(MUTANTS, jobs=args.jobs)
        for v in mv:
            print(f"{'caught' if v.caught else 'MISSED'} {v.mutant.name:<28} by {v.result.failed} "
                  f"({v.result.seconds:.1f} s)")
        report["mutants"] = [v.as_dict() for v in mv]
        ok = ok and all(v.caught for v in mv)
    report["wall_seconds"] = round(time.monotonic() - t0, 1)
    write_json_atomic(args.json, report)
    print(f"formal: {'all as expected' if ok else 'FAILED'} in {report['wall_seconds']} s; "
          f"report {args.json}")
    return 0 if ok else 1
