"""``hefl sim`` end to end on a small kernel: report keys, zero mismatches, counted jobs."""

import json

import pytest

from hefl.cli import main
from hefl.sim.cli import DEFAULT_PLAN

pytestmark = pytest.mark.sim     # builds and runs a Verilator model


def test_hefl_sim_writes_report(tmp_path, seed, capsys):
    out = tmp_path / "sim.json"
    rc = main(["sim", "--operand-bits", "256", "--scale", "0.05", "--seed", str(seed),
               "--stall-percent", "10", "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    want_jobs = sum(max(1, round(c * 0.05)) for _, _, c in DEFAULT_PLAN)
    assert rep["jobs"] == want_jobs == sum(b["jobs"] for b in rep["batches"])
    assert rep["mismatches"] == 0
    assert rep["cycles"] == sum(b["kernel_cycles"] for b in rep["batches"]) > 0
    assert rep["sim_cycles"] >= rep["cycles"]          # the model also idles between runs
    assert rep["sim_cycles_per_s"] > 0 and rep["sim_cycles_per_wall_s"] > 0
    assert rep["hardware"]["words"] * rep["hardware"]["word_bits"] >= 256
    assert {b["kind"] for b in rep["batches"]} == {k for k, _, _ in DEFAULT_PLAN}
    assert "0 mismatches" in capsys.readouterr().out
    # The fixed-base encryptions ran as TABLE_PRODUCT jobs from one uploaded table.
    assert rep["table_uploads"] == 1
    fb = next(b for b in rep["batches"] if b["kind"] == "encrypt_fb")
    assert fb["op"] == "fixed_base" and fb["mismatches"] == 0
    # Bytes per kernel cycle on m_axi_gmem: within one bus beat per cycle each way.
    bus = rep["bus"]
    assert 0 < bus["read_bytes_per_cycle"] <= bus["data_bits"] // 8
    assert 0 < bus["write_bytes_per_cycle"] <= bus["data_bits"] // 8
    assert all(b["read_bytes_per_cycle"] > 0 for b in rep["batches"])


@pytest.mark.parametrize("cmd", [["sim", "--operand-bits", "256", "--json"],
                                 ["hw-report", "--quick", "--only", "modexp", "--out"]])
def test_output_path_refused_before_any_work(tmp_path, capsys, cmd):
    # A report path under a regular file: one line naming it, exit 2, and no
    # kernel built or synthesised first (the command returns at once).
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "sim.json" if cmd[0] == "sim" else blocker
    assert main([*cmd, str(target)]) == 2
    cap = capsys.readouterr()
    assert str(blocker) in cap.err and "Traceback" not in cap.err
    assert "building/loading" not in cap.out and "wrote" not in cap.err
