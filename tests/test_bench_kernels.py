"""``hefl bench kernels``: the report's fields, on a small key (the sides' results are compared inside)."""

import argparse
import json

import pytest

from hefl.accel import native
from hefl.bench import kernels


def test_kernels_bench_reports_both_sides(tmp_path):
    if native.kernels() is None:
        r = kernels.measure(256, count=9, repeat=1)
        assert r["skipped"] == native.unavailable_reason()
        pytest.skip(f"native kernels unavailable here: {r['skipped']}")
    out = tmp_path / "kernels.json"
    parser = argparse.ArgumentParser()
    kernels.add_arguments(parser)
    assert kernels.run(parser.parse_args(["--key-bits", "256", "--count", "9", "--repeat", "1",
                                          "--json", str(out)])) == 0
    r = json.loads(out.read_text())
    ops = {"powm_secret.p2", "powm_secret.n2", "fixed_base.n2", "fixed_base.p2"}
    assert r["skipped"] is None and set(r["per_s"]) == ops == set(r["ratio"])
    for op, v in r["per_s"].items():
        assert v["native"] > 0 and v["gmpy2"] > 0
        assert r["ratio"][op] == pytest.approx(v["native"] / v["gmpy2"])


def test_kernels_bench_stops_when_the_sides_disagree(monkeypatch):
    from hefl.errors import VerificationError
    if native.kernels() is None:
        pytest.skip(f"native kernels unavailable here: {native.unavailable_reason()}")
    real = native.Mm52.powm
    monkeypatch.setattr(native.Mm52, "powm", lambda self, *a: [x ^ 1 for x in real(self, *a)])
    with pytest.raises(VerificationError, match="powm_secret"):
        kernels.measure(256, count=9, repeat=1)
