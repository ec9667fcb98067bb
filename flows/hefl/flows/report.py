"""``hefl hw-report``: cycle counts and resources of the hardware cores.

Each report is a *section* that writes ``<out>/<name>.json``. Sections
register themselves with :func:`register_section`; this module defines
``montmul`` and imports the optional section modules listed in
:data:`SECTION_MODULES` (e.g. ``hefl.flows.report_modexp`` adds ``modexp``)
so each owner keeps their report in their own file::

    # flows/hefl/flows/report_modexp.py
    from hefl.flows.report import register_section

    @register_section("modexp", help="ModExp / BatchEngine cycles and U250 projection")
    def modexp_report(args):
        return {...}            # written to <out>/modexp.json

A section function takes the parsed arguments (``args.out``, ``args.quick``,
``args.seed``, ``args.no_ecp5``) and returns a JSON-able dict.

The ``montmul`` section measures, per configuration, the MontMul core in its
stream wrapper (:class:`hefl.hw.montmul_stream.MontMulStream`: operand banks,
modulus memory, result FIFO): latency and steady-state cycles/op of a
multiply and of a squaring on Verilator (the cocotb bench's ``timing`` test,
checked there against :func:`hefl.golden.montmul_hw.op_timing`), DSP48E2 /
LUT / FF from ``yosys synth_xilinx -family xcup``, and for the ECP5 board
configurations MULT18X18D / LUT4 / Fmax from yosys + nextpnr-ecp5 on the
LFE5U-85F-6 (CABGA381), with the registered MULT18X18D primitives.
"""

import json
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hefl.hw.params import (
    ECP5_TILE_BITS,
    MONTMUL_ECP5_WORD_BITS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)
from hefl.hw.regmap import LAYOUT
from hefl.reports import check_output_dir, write_json_atomic

__all__ = ["add_arguments", "run", "register_section", "SECTIONS", "SECTION_MODULES",
           "MONTMUL_CONFIGS", "montmul_report"]

#: name -> (function, help)
SECTIONS = {}

#: Modules that register further sections; missing ones are skipped.
SECTION_MODULES = ["hefl.flows.report_modexp"]

DSP = (TILE_A_BITS, TILE_B_BITS)
ECP5 = (ECP5_TILE_BITS, ECP5_TILE_BITS)

#: MontMul configurations of the report: (role, operand bits, word bits, tiles, ecp5?).
#: ``main`` is the design; ``board`` the ECP5 configuration; ``alternative``
#: the word widths it was chosen against (same architecture, other tiling).
MONTMUL_CONFIGS = [
    ("main", 4096, MONTMUL_WORD_BITS, DSP, False),
    ("main", 2048, MONTMUL_WORD_BITS, DSP, False),
    ("main", 1024, MONTMUL_WORD_BITS, DSP, False),
    ("board", 1024, MONTMUL_ECP5_WORD_BITS, ECP5, True),
    ("board", 2048, MONTMUL_ECP5_WORD_BITS, ECP5, True),
    # Two tiles wide, one tile, and the widest word a limb holds.
    ("alternative", 4096, 2 * TILE_B_BITS, DSP, False),
    ("alternative", 4096, TILE_B_BITS, DSP, False),
    ("alternative", 4096, LAYOUT.limb_bits, DSP, False),
]
#: ``--quick``: one small configuration (checks the flow and the JSON shape).
MONTMUL_QUICK = [("main", 256, MONTMUL_WORD_BITS, DSP, False)]

#: Targets of issue 3.
DSP_CYCLES_TARGET = 146_000
DSP_CYCLES_GOAL = 100_000
#: Issue 13: the MontMul alone on the ECP5-85F-6 (also nextpnr's target here).
ECP5_FMAX_GOAL_MHZ = 150


def register_section(name, *, help=""):
    """Decorator: register ``func(args) -> dict`` as report section ``name``."""
    def deco(func):
        SECTIONS[name] = (func, help)
        return func
    return deco


#: section module -> the exception its import raised
BROKEN_MODULES = {}


def _load_sections():
    """Import the optional section modules; remember (don't raise) broken ones.

    A broken module must not take the other sections down (``--only
    montmul`` still works); a run of every section fails on it in :func:`run`.
    """
    from hefl.cli import import_optional  # the lazy registry the subcommands use
    for mod in SECTION_MODULES:
        if mod in BROKEN_MODULES:
            continue
        try:
            _, missing = import_optional(mod)
        except Exception as e:  # noqa: BLE001 - reported by run()
            BROKEN_MODULES[mod] = e
            continue
        if missing is not None and missing.name != mod:
            # The module exists but a package it imports is missing; an
            # absent module itself is an optional section not installed.
            BROKEN_MODULES[mod] = missing


def add_arguments(parser):
    parser.add_argument("--out", default="build/reports", type=Path,
                        help="directory of the JSON reports (default: build/reports)")
    parser.add_argument("--only", action="append", metavar="SECTION",
                        help="run only this section (repeatable); default: all")
    parser.add_argument("--quick", action="store_true",
                        help="one small configuration per section (flow check)")
    parser.add_argument("--no-ecp5", action="store_true",
                        help="skip the ECP5 place and route")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random operands (default: random, printed)")


def run(args):
    _load_sections()
    from hefl.errors import HeflError
    broken = "; ".join(f"{mod}: {type(e).__name__}: {e}" for mod, e in BROKEN_MODULES.items())
    names = args.only or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise HeflError(f"unknown report section(s) {', '.join(unknown)}; "
                        f"known: {', '.join(SECTIONS)}" + (f" (failed to load: {broken})" if broken else ""))
    if broken and not args.only:
        raise HeflError(f"report section module(s) failed to load: {broken}")
    if args.seed is None:
        args.seed = secrets.randbits(32)
    print(f"hw-report: seed {args.seed}", file=sys.stderr)
    check_output_dir(args.out)          # before any synthesis or simulation
    for name in names:
        func, _ = SECTIONS[name]
        t0 = time.monotonic()
        data = func(args)
        data.setdefault("generated", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        data.setdefault("seconds", round(time.monotonic() - t0, 1))
        path = args.out / f"{name}.json"
        write_json_atomic(path, data)
        print(f"hw-report: wrote {path}", file=sys.stderr)
    return 0


def _log(msg):
    print(f"hw-report: {msg}", file=sys.stderr, flush=True)


@register_section("montmul", help="MontMul cycles (Verilator), xcup and ECP5 resources")
def montmul_report(args):
    """Measure every configuration of :data:`MONTMUL_CONFIGS` (or the quick one)."""
    from hefl.flows.synth import synth_ecp5, synth_xcup
    from hefl.sim.montmul_bench import montmul_verilog, run_montmul_bench

    configs = MONTMUL_QUICK if args.quick else MONTMUL_CONFIGS
    rows = []
    for role, L, w, tiles, want_ecp5 in configs:
        verilog, top, core = montmul_verilog(L, w, tiles)
        _log(f"{top}: Verilator timing")
        bench = run_montmul_bench(L, w, tiles, seed=args.seed, testcase="timing")
        _log(f"{top}: yosys synth_xilinx -family xcup")
        xcup = synth_xcup(verilog, top=top)
        xcup.pop("cells")
        sq = bench["square"]
        row = {
            "name": top, "role": role,
            "operand_bits": L, "word_bits": w, "words": core.words,
            "tiles": list(tiles), "mul_latency": core.mul_latency,
            "latency_cycles": bench["latency_cycles"],
            "cycles_per_op": bench["cycles_per_op"],
            "model": bench["model"],
            "mul_utilisation": round(bench["model"]["mul_slots"] / bench["cycles_per_op"], 4),
            "square": {"latency_cycles": sq["latency_cycles"], "cycles_per_op": sq["cycles_per_op"],
                       "model": bench["model_square"],
                       "mul_utilisation": round(bench["model_square"]["mul_slots"]
                                                / sq["cycles_per_op"], 4)},
            "xcup": xcup,
        }
        if L == 4096:
            row["dsp_cycles_per_op"] = xcup["dsp48e2"] * bench["cycles_per_op"]
            row["dsp_cycles_per_square"] = xcup["dsp48e2"] * sq["cycles_per_op"]
        if want_ecp5 and not args.no_ecp5:
            _log(f"{top}: yosys synth_ecp5 + nextpnr-ecp5 (85F, CABGA381, -6), MULT18X18D registered")
            v_ecp5, top_ecp5, _ = montmul_verilog(L, w, tiles, hard_mult="ecp5")
            ecp5 = synth_ecp5(v_ecp5, top=top_ecp5, freq_mhz=ECP5_FMAX_GOAL_MHZ)
            util = ecp5.pop("utilization")
            ecp5["available"] = {k: int(util[k]["available"]) for k in
                                 ("MULT18X18D", "TRELLIS_COMB", "TRELLIS_FF", "DP16KD") if k in util}
            row["ecp5"] = ecp5
        rows.append(row)
        _log(f"{top}: {json.dumps({k: row[k] for k in ('latency_cycles', 'cycles_per_op')})} "
             f"xcup {xcup['dsp48e2']} DSP {xcup['lut']} LUT {xcup['ff']} FF"
             + (f" ecp5 {row['ecp5']['fmax_mhz']} MHz" if "ecp5" in row else ""))

    out = {"configurations": rows, "seed": args.seed,
           "targets": {"dsp_cycles_per_op_max": DSP_CYCLES_TARGET,
                       "dsp_cycles_per_op_goal": DSP_CYCLES_GOAL,
                       "ecp5_fmax_mhz_min": ECP5_FMAX_GOAL_MHZ},
           "notes": ("the MontMul core in its stream wrapper (operand banks, modulus memory and "
                     "result FIFO in distributed RAM); cycles from Verilator (cocotb bench, equal "
                     "to the model's prediction), multiply and squaring; xcup counts from yosys "
                     "synth_xilinx -family xcup (LUTs rough, no timing); ECP5 from yosys "
                     "synth_ecp5 + nextpnr-ecp5 --85k --package CABGA381 --speed 6 --seed 1 with the "
                     "MULT18X18D primitives instantiated with their input and output registers")}
    main = [r for r in rows if r["role"] == "main" and r["operand_bits"] == 4096]
    if main:
        out["dsp_cycles_per_op"] = main[0]["dsp_cycles_per_op"]
        out["dsp_cycles_per_square"] = main[0]["dsp_cycles_per_square"]
        out["main"] = main[0]["name"]
    boards = [r for r in rows if "ecp5" in r and r["ecp5"]["fits"]]
    if boards:
        best = max(boards, key=lambda r: r["operand_bits"])
        out["ecp5"] = {"name": best["name"], **{k: best["ecp5"][k] for k in
                       ("mult18", "lut4", "ff", "fmax_mhz", "target_mhz")},
                       "fmax_mhz_all": {str(r["operand_bits"]): r["ecp5"]["fmax_mhz"] for r in boards},
                       "meets_goal": all(r["ecp5"]["fmax_mhz"] >= ECP5_FMAX_GOAL_MHZ for r in boards)}
    return out
