"""``hefl hw-report --quick``: the montmul section's flow and JSON shape.

Runs the quick configuration (L = 256, w = 51) through Verilator timing and
``yosys synth_xilinx -family xcup`` (ECP5 place and route skipped: it is the
slow part and is exercised by ``make hw-report``), then checks the JSON
against the model's cycle prediction and the tiling's DSP count.
"""

import json

import pytest

from hefl.cli import main
from hefl.flows.report import SECTIONS, _load_sections, register_section
from hefl.golden.montgomery import words_for
from hefl.golden.montmul_hw import mul_latency, op_timing
from hefl.hw.mulpipe import tile_plan
from hefl.hw.params import MONTMUL_WORD_BITS, TILE_A_BITS, TILE_B_BITS


@pytest.mark.slow
@pytest.mark.sim
def test_hw_report_quick(tmp_path, seed):
    rc = main(["hw-report", "--quick", "--no-ecp5", "--only", "montmul",
               "--seed", str(seed), "--out", str(tmp_path)])
    assert rc == 0
    rep = json.loads((tmp_path / "montmul.json").read_text())
    (row,) = rep["configurations"]
    w, tiles = MONTMUL_WORD_BITS, (TILE_A_BITS, TILE_B_BITS)
    assert (row["operand_bits"], row["word_bits"]) == (256, w)
    timing = op_timing(words_for(256, w), mul_latency(w, *tiles))
    assert row["cycles_per_op"] == timing.cycles_per_op
    assert row["latency_cycles"] == timing.latency_cycles
    # Each 26×17 tile is one DSP48E2 and nothing else uses one.
    assert row["xcup"]["dsp48e2"] == len(tile_plan(w, w, *tiles)[0]) == 6
    assert row["xcup"]["lut"] > 0 and row["xcup"]["ff"] > 0
    assert rep["targets"]["dsp_cycles_per_op_max"] == 146_000


def test_section_registry(tmp_path):
    _load_sections()
    assert "montmul" in SECTIONS

    @register_section("unit_probe", help="test section")
    def probe(args):
        return {"quick": args.quick}

    try:
        assert main(["hw-report", "--only", "unit_probe", "--quick", "--out", str(tmp_path)]) == 0
        assert json.loads((tmp_path / "unit_probe.json").read_text())["quick"] is True
        assert main(["hw-report", "--only", "no_such_section", "--out", str(tmp_path)]) == 2
    finally:
        SECTIONS.pop("unit_probe")


def test_broken_section_module(tmp_path, monkeypatch):
    """A section module that fails to import only fails runs that need it."""
    from hefl.flows import report
    (tmp_path / "hefl_broken_section.py").write_text("import no_such_module_hefl\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(report, "SECTION_MODULES", ["hefl_broken_section"])
    monkeypatch.setattr(report, "BROKEN_MODULES", {})
    monkeypatch.setitem(report.SECTIONS, "unit_probe2", (lambda args: {"ok": 1}, ""))
    out = tmp_path / "out"
    assert main(["hw-report", "--only", "unit_probe2", "--out", str(out)]) == 0
    assert "hefl_broken_section" in report.BROKEN_MODULES
    # Every section requested: the broken module is an error, nothing half-written.
    assert main(["hw-report", "--out", str(out / "all")]) == 2
