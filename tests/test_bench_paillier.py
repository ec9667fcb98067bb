"""``hefl bench paillier --quick``: the JSON's shape, never its timings."""

import json

from hefl.cli import main
from hefl.encoding import Encoder


def test_quick_bench_json(tmp_path, seed, capsys):
    out = tmp_path / "reports" / "paillier.json"
    rc = main(["bench", "paillier", "--quick", "--key-bits", "256", "--params", "500",
               "--phe-slice", "7", "--seed", str(seed), "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["key_bits"] == 256 and r["quick"] is True and r["seed"] == seed
    for op in ("encrypt", "decrypt", "add", "scalar_mul"):
        assert r["ops"][op]["hefl_per_s"] > 0 and r["ops"][op]["phe_per_s"] > 0
        assert abs(r["ops"][op]["speedup"] - r["ops"][op]["hefl_per_s"] / r["ops"][op]["phe_per_s"]) < 1e-9
    f = r["fedavg_round"]
    assert f["hefl_s"] > 0 and f["phe_s"] > 0
    assert f["phe_extrapolated"] is True and f["phe_slice_params"] == 7 and f["params"] == 500
    assert abs(f["phe_s"] - f["phe_slice_s"] * 500 / 7) < 1e-9
    assert f["max_abs_error"] <= f["error_bound"]
    # The packing the JSON reports is the encoder's for the reported widths.
    enc = Encoder(plaintext_bits=255, alpha=1.0, value_bits=f["value_bits"],
                  guard_bits=f["guard_bits"])
    assert f["slots_per_ciphertext"] == enc.slots
    assert f["ciphertexts_per_client"] == enc.plaintexts_for(500)
    assert set(r["targets"]) == {"encrypt", "decrypt", "fedavg_round"}
    assert "FedAvg round" in capsys.readouterr().out


def test_bench_without_name_prints_help(capsys):
    assert main(["bench"]) == 2
    assert "paillier" in capsys.readouterr().out


def test_quick_bench_reports_constant_time_and_tables(tmp_path, seed):
    out = tmp_path / "paillier.json"
    assert main(["bench", "paillier", "--quick", "--key-bits", "256", "--params", "300", "--phe-slice", "5",
                 "--seed", str(seed), "--windows", "3,4", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    d = r["ops"]["decrypt"]
    assert d["hefl_per_s"] > 0 and d["hefl_variable_time_per_s"] > 0
    assert abs(d["constant_time_cost"] - d["hefl_variable_time_per_s"] / d["hefl_per_s"]) < 1e-9
    for op in ("encrypt_public", "encrypt_textbook", "encrypt_public_textbook"):
        assert r["ops"][op]["hefl_per_s"] > 0 and "note" in r["ops"][op]
    fb = r["fixed_base"]
    assert fb["window_bits"] == 12 and fb["exp_bits"] == 128 and fb["windows"] == 11
    assert fb["holder_window_bits"] == 11 and fb["holder_windows"] == 12
    assert fb["table_bytes"] == 11 * 4096 * 64 and fb["holder_table_bytes"] > 0
    assert [row["window_bits"] for row in fb["survey"]] == [3, 4]
    for row in fb["survey"]:
        assert row["windows"] == -(-128 // row["window_bits"])
        assert row["table_bytes"] == row["windows"] * (1 << row["window_bits"]) * 64
        assert row["encrypt_public_per_s_one_core"] > 0 and row["encrypt_keyholder_per_s_one_core"] > 0
    assert r["targets"]["fedavg_round"]["min_speedup"] == 1500.0


def test_bench_windows_argument_is_checked(capsys):
    assert main(["bench", "paillier", "--quick", "--key-bits", "256", "--windows", "x"]) != 0
    assert "--windows" in capsys.readouterr().err
