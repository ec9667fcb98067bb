"""Verilog and Verilator runs of MontMul configurations, shared by tests and reports.

The MontMul core reads its operands in place from its caller's memory; alone
it is measured inside :class:`hefl.hw.montmul_stream.MontMulStream` (two
operand banks, a modulus memory, a result FIFO).
``tests/test_montmul_cocotb.py`` and ``hefl hw-report`` build the same
Verilog under the same names, so a configuration is compiled by Verilator
once and reused (``build/sim/montmul_L<L>_w<w>/``).
"""

from hefl.flows.verilog import to_verilog
from hefl.hw.montmul_stream import MontMulStream
from hefl.hw.params import TILE_A_BITS, TILE_B_BITS
from hefl.sim.runner import run_cocotb

__all__ = ["montmul_top", "montmul_verilog", "run_montmul_bench", "BENCH_MODULE"]

#: The cocotb bench (``sim/hefl/sim/tb/montmul_tb.py``).
BENCH_MODULE = "hefl.sim.tb.montmul_tb"


def montmul_top(operand_bits, word_bits, tiles=(TILE_A_BITS, TILE_B_BITS)):
    """Verilog top name of one configuration (tiles appear when not the default)."""
    name = f"montmul_L{operand_bits}_w{word_bits}"
    if tuple(tiles) != (TILE_A_BITS, TILE_B_BITS):
        name += f"_t{tiles[0]}x{tiles[1]}"
    return name


def montmul_verilog(operand_bits, word_bits, tiles=(TILE_A_BITS, TILE_B_BITS), *,
                    hard_mult=None):
    """Generate the Verilog of one configuration (the core in its stream wrapper).

    ``hard_mult`` (e.g. ``"ecp5"``) instantiates the hard multiplier
    primitive, for synthesis only; the top name then says so.

    Returns
    -------
    (pathlib.Path, str, MontMulStream)
        The ``.v`` file, its top module name and the component.
    """
    core = MontMulStream(operand_bits=operand_bits, word_bits=word_bits, tile_bits=tuple(tiles),
                         hard_mult=hard_mult)
    top = montmul_top(operand_bits, word_bits, tiles)
    if hard_mult is not None:
        top += f"_{hard_mult}"
    return to_verilog(core, name=top), top, core


def run_montmul_bench(operand_bits, word_bits, tiles=(TILE_A_BITS, TILE_B_BITS), *,
                      seed, knobs=None, testcase=None):
    """Run the bench :mod:`hefl.sim.tb.montmul_tb` on Verilator for one configuration.

    Returns
    -------
    dict
        The bench's report (``latency_cycles``, ``cycles_per_op``, the model's
        predictions ...) when the ``timing`` test ran, else ``{}``.

    Raises
    ------
    hefl.sim.runner.CocotbFailure
        If any bench test failed.
    """
    verilog, top, _ = montmul_verilog(operand_bits, word_bits, tiles)
    env = {"MM_L": operand_bits, "MM_W": word_bits, "MM_TILE_A": tiles[0],
           "MM_TILE_B": tiles[1], "HEFL_SEED": seed, **(knobs or {})}
    out = run_cocotb(verilog, toplevel=top, test_module=BENCH_MODULE,
                     build_name=top, env=env, seed=seed, testcase=testcase)
    return out["report"]
