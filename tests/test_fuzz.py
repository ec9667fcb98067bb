"""The seeded mutation fuzz of the readers (hefl.fuzz), sized for CI, and its own checks."""

import json
import time

import pytest

import hefl.fuzz as fuzz
from hefl.cli import main
from hefl.paillier.keys import PublicKey

CI_CASES = 6000


def test_every_mutated_input_is_a_typed_error_or_a_legitimate_value(seed):
    t0 = time.perf_counter()
    rep = fuzz.run_fuzz(CI_CASES, seed)
    took = time.perf_counter() - t0
    print(f"fuzz seed {rep['seed']}: {rep['cases']} cases in {took:.1f} s; "
          f"{rep['typed_errors']}; unchanged {rep['accepted_unchanged']}, "
          f"well-formed {rep['accepted_well_formed']}")
    assert rep["seed"] == seed and rep["cases"] == CI_CASES
    assert (rep["untyped"], rep["hangs"], rep["wrongly_accepted"]) == (0, 0, 0), rep["failures"]
    assert rep["passed"] and took < 30
    # Every target ran its share, and the mutations reached the acceptance paths too:
    # forged vectors that are valid vectors, parameter sets that are valid layouts.
    assert set(rep["targets"]) == set(fuzz.TARGETS)
    for name, counts in rep["targets"].items():
        n = sum(counts["typed_errors"].values()) + sum(counts[k] for k in fuzz.OUTCOMES)
        assert n == CI_CASES // len(fuzz.TARGETS), name
        assert sum(counts["typed_errors"].values()) > n // 2, name
    assert rep["targets"]["vector_forged"]["accepted_well_formed"] > 0
    assert {"SerializationError", "CiphertextRangeError", "KeyMismatchError"} <= set(rep["typed_errors"])
    for op in ("flip", "truncate", "extend", "nesting", "huge_number", "non_utf8", "json_replace",
               "forge_header", "forge_meta", "forge_ciphertext", "python_int", "python_float"):
        assert rep["mutations"].get(op, 0) > 0, op


def test_same_seed_same_cases():
    a, b = fuzz.run_fuzz(300, 99), fuzz.run_fuzz(300, 99)
    for k in ("typed_errors", "mutations", *fuzz.OUTCOMES):
        assert a[k] == b[k]
    assert fuzz.build_corpus(99).vector_bytes == fuzz.build_corpus(99).vector_bytes


@pytest.mark.parametrize("fault,outcome", [
    ("untyped", "untyped"), ("hang", "hangs"), ("other_key", "wrongly_accepted")])
def test_the_fuzz_sees_each_kind_of_failure(monkeypatch, fault, outcome):
    """A reader that raises ValueError, hangs, or returns another key is counted and listed."""
    real = fuzz._read
    corpus = fuzz.build_corpus(3)
    other = PublicKey(corpus.pub.n + 2)

    def faulty(target, data, c):
        if target != "public_key":
            return real(target, data, c)
        if fault == "untyped":
            raise ValueError("plain")
        if fault == "hang":
            while True:
                pass
        return other

    monkeypatch.setattr(fuzz, "_read", faulty)
    rep = fuzz.run_fuzz(4, 3, targets=("public_key", "vector"), case_timeout=0.2)
    assert rep["targets"]["public_key"][outcome] == 2 and rep[outcome] == 2
    assert rep["targets"]["vector"][outcome] == 0 and not rep["passed"]
    assert [f["case"] for f in rep["failures"]] == [0, 2]
    assert all(f["target"] == "public_key" and f["outcome"] == outcome for f in rep["failures"])


def test_cli_writes_the_counts_and_the_seed(tmp_path, capsys):
    path = tmp_path / "reports" / "fuzz.json"
    assert main(["fuzz", "--cases", "600", "--seed", "5", "--json", str(path)]) == 0
    rep = json.loads(path.read_text())
    assert rep["schema"] == "hefl-fuzz/1" and rep["hefl_version"] and rep["created"]
    assert rep["seed"] == 5 and rep["cases"] == 600
    assert (rep["untyped"], rep["hangs"], rep["wrongly_accepted"]) == (0, 0, 0)
    assert "seed 5" in capsys.readouterr().out


def test_cli_failure_exits_1(monkeypatch, capsys):
    monkeypatch.setattr(fuzz, "_read", lambda *a: (_ for _ in ()).throw(KeyError("x")))
    assert main(["fuzz", "--cases", "12", "--seed", "1"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_cli_bad_arguments_are_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for argv in (["fuzz", "--cases", "0"], ["fuzz", "--cases", "5", "--json", str(tmp_path / "f" / "x.json")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("hefl fuzz: error:")
