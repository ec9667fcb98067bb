"""Run formal checks and mutants in parallel and judge them.

::

    from hefl.flows.formal.run import run_checks, run_mutants
    verdicts = run_checks(CHECKS, jobs=2)      # [Verdict, ...], one per check
    all(v.ok for v in verdicts)
    caught = run_mutants(MUTANTS, jobs=2)      # [MutantVerdict, ...]

A check is ``ok`` when its proof or BMC passed (exactly its
``expect_fail`` assertions failing, for a documented deviation) and its
cover task reached every ``Cover``; a mutant is caught when BMC fails on
one of the assertions it names.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from hefl.flows.formal.sby import Check, run_task, write_model
from hefl.paths import build_root

__all__ = ["Verdict", "MutantVerdict", "run_checks", "run_mutants", "deepen"]


@dataclass
class Verdict:
    """The outcome of one check: its task results and whether it is as expected."""

    check: Check
    results: list

    @property
    def main(self):
        return self.results[0]

    @property
    def cover(self):
        return next((r for r in self.results if r.task == "cover"), None)

    @property
    def induction_closed(self):
        return self.main.task == "prove" and self.main.status == "pass"

    @property
    def proof_ok(self):
        c, r = self.check, self.main
        if c.expect_fail:
            return r.status == "fail" and set(r.failed) == set(c.expect_fail)
        return r.status == "pass"

    @property
    def cover_ok(self):
        return self.cover is None or (self.cover.status == "pass" and not self.cover.unreached)

    @property
    def ok(self):
        return self.proof_ok and self.cover_ok

    @property
    def seconds(self):
        return round(sum(r.seconds for r in self.results), 2)

    def as_dict(self):
        c = self.check
        return {"check": c.name, "doc": c.doc, "ok": self.ok,
                "mode": self.main.task, "depth": c.depth,
                "induction_closed": self.induction_closed,
                "cover_depth": c.cover_depth, "seconds": self.seconds,
                "expect_fail": list(c.expect_fail), "reason": c.reason,
                "tasks": [r.as_dict() for r in self.results]}


@dataclass
class MutantVerdict:
    """A mutant run: caught when BMC failed on one of the assertions it names."""

    mutant: object
    result: object

    @property
    def caught(self):
        return self.result.status == "fail" and bool(set(self.result.failed)
                                                     & set(self.mutant.caught_by))

    def as_dict(self):
        return {"mutant": self.mutant.name, "doc": self.mutant.doc, "caught": self.caught,
                "depth": self.mutant.depth, "failed": self.result.failed,
                "status": self.result.status, "seconds": self.result.seconds,
                "trace": self.result.trace}


def deepen(check, factor):
    """``check`` with its depths scaled by ``factor`` (``hefl formal --deep``)."""
    return replace(check, depth=round(check.depth * factor),
                   cover_depth=round(check.cover_depth * factor))


def _pool(units, jobs):
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        return list(ex.map(lambda u: run_task(*u[0], **u[1]), units))


def run_checks(checks, *, jobs=2, root=None):
    """Run every task of every check, ``jobs`` solver runs at a time; a :class:`Verdict` each."""
    root = root or build_root() / "formal"
    units, owner = [], []
    for c in checks:
        names = write_model(c, root / c.name)
        for t in c.tasks:
            units.append(((c, t), {"root": root, "names": names}))
            owner.append(c)
    results = _pool(units, jobs)
    return [Verdict(c, [r for r, o in zip(results, owner) if o is c]) for c in checks]


def run_mutants(mutants, *, jobs=2, root=None):
    """BMC of every mutant under its wrapper; a :class:`MutantVerdict` each."""
    root = root or build_root() / "formal" / "mutants"
    units = []
    for mu in mutants:
        c = Check(mu.name, mu.build, depth=mu.depth)
        units.append(((c, "bmc"), {"root": root, "names": write_model(c, root / c.name)}))
    return [MutantVerdict(mu, r) for mu, r in zip(mutants, _pool(units, jobs))]
