"""``hefl demo`` runs that protect what they did: output checked first, report after every round."""

import json

import pytest

import hefl.fedavg.cli as demo_cli
import hefl.fedavg.loop as loop
from hefl.cli import main
from hefl.errors import AggregationMismatchError, BackendUnavailable
from hefl.reports import FIELD_NAMES

FAST = ["--backend", "cpu", "--key-bits", "256", "--insecure-test-key", "--clients", "2",
        "--dataset", "wine", "--no-progress"]


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def no_keygen(monkeypatch):
    """Fail the test if the demo does any work (key generation is its first)."""
    import hefl.paillier

    def boom(*a, **kw):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(hefl.paillier, "generate_keypair", boom)


@pytest.mark.parametrize("where", ["proc", "file"])
def test_bad_out_fails_before_any_work(tmp_path, capsys, no_keygen, where):
    f = tmp_path / "file"
    f.write_text("keep me")
    out = "/proc/hefl-demo-out" if where == "proc" else str(f)
    assert main(["demo", *FAST, "--rounds", "1", "--out", out]) == 2
    line = _one_line(capsys)
    assert line.startswith("hefl demo: error: output folder") and out in line
    assert f.read_text() == "keep me"


def test_small_key_refused_before_any_work(tmp_path, capsys, no_keygen):
    args = [a for a in FAST if a != "--insecure-test-key"]
    assert main(["demo", *args, "--rounds", "1", "--out", str(tmp_path / "d")]) == 2
    line = _one_line(capsys)
    assert "--insecure-test-key" in line and "less than 80-bit" in line
    assert not (tmp_path / "d").exists()


def test_default_and_1024_bit_keys_warn(monkeypatch, tmp_path, capsys):
    """The demo default (1024 bits) still runs, with the security warning as one stderr line."""
    seen = []

    def stop(*a, **kw):
        seen.append(a)
        raise KeyboardInterrupt

    import hefl.paillier
    monkeypatch.setattr(hefl.paillier, "generate_keypair", stop)
    for extra in ([], ["--key-bits", "1024"]):
        args = [a for a in FAST if a not in ("--key-bits", "256", "--insecure-test-key")] + extra
        assert main(["demo", *args, "--rounds", "1", "--out", str(tmp_path / "d")]) == 130
        err = capsys.readouterr().err
        assert ("hefl demo: warning: 1024-bit keys give about 80-bit security; use 2048 or more "
                "for real data") in err.splitlines()
    assert seen == [(1024,), (1024,)]
    assert not (tmp_path / "d").exists()        # made by the run, empty, removed


def _stop_at(monkeypatch, rnd, error, seen=None, out=None):
    real = loop._round

    def stopping(run, r):
        if seen is not None:
            # The report on disk before round r holds rounds 1 .. r-1.
            seen.append(json.loads((out / "report.json").read_text()) if r > 1 else None)
        if r == rnd:
            raise error
        return real(run, r)

    monkeypatch.setattr(loop, "_round", stopping)


def test_interrupted_run_keeps_its_rounds(monkeypatch, tmp_path, capsys):
    out = tmp_path / "demo"
    seen = []
    _stop_at(monkeypatch, 3, KeyboardInterrupt(), seen, out)
    assert main(["demo", *FAST, "--rounds", "4", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "kept the 2 finished round(s)" in err and "interrupted" in err
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "interrupted" and report["error"] == "interrupted"
    assert [r["round"] for r in report["rounds"]] == [1, 2] and report["rounds_completed"] == 2
    assert report["final_accuracy"] == report["rounds"][-1]["accuracy"]
    assert report["schema"] == "hefl-demo/2" and report["hefl_version"] and report["created"]
    # Written after every round, each time complete and marked running.
    assert seen[0] is None and [len(s["rounds"]) for s in seen[1:]] == [1, 2]
    assert all(s["status"] == "running" for s in seen[1:])
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_failed_run_says_why_and_keeps_its_rounds(monkeypatch, tmp_path, capsys):
    out = tmp_path / "demo"
    _stop_at(monkeypatch, 2, AggregationMismatchError("round 2: injected"))
    assert main(["demo", *FAST, "--rounds", "3", "--out", str(out)]) == 2
    assert "injected" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and "AggregationMismatchError" in report["error"]
    assert len(report["rounds"]) == 1


def test_complete_report_header_and_shared_names(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", *FAST, "--rounds", "2", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "complete" and report["rounds_completed"] == 2
    per_round = {"max_abs_error", "bound", "bytes_up"}
    assert set(FIELD_NAMES) - per_round <= set(report), set(FIELD_NAMES) - set(report)
    for r in report["rounds"]:
        assert per_round <= set(r) and "error_bound" not in r
        assert r["max_abs_error"] <= r["bound"]
    assert report["within_bound"] is True and report["key_bits"] == 256
    assert set(report["seconds"]) >= {"keygen", "device_ready", "total", "train"}
    assert (out / "accuracy.png").exists()


@pytest.mark.parametrize("argv,name,options", [
    (["--backend", "serial", "--port", "/dev/ttyUSB0"], "serial", {"url": "/dev/ttyUSB0"}),
    (["--backend", "serial", "--device", "/dev/ttyACM1"], "serial", {"url": "/dev/ttyACM1"}),
    (["--backend", "xrt", "--xclbin", "k.xclbin"], "xrt", {"xclbin": "k.xclbin"}),
])
def test_demo_reaches_serial_and_xrt(monkeypatch, tmp_path, capsys, argv, name, options):
    calls = []

    def fake(backend, **kw):
        calls.append((backend, kw))
        raise BackendUnavailable(f"{backend} not here (test)")

    monkeypatch.setattr(demo_cli, "get_accelerator", fake)
    args = [a for a in FAST if a not in ("--backend", "cpu")]
    assert main(["demo", *argv, *args, "--rounds", "1", "--out", str(tmp_path / "d")]) == 2
    assert calls == [(name, options)]
    err = capsys.readouterr().err.strip().splitlines()
    assert "warning: 256-bit keys" in err[0] and err[1] == f"hefl demo: error: {name} not here (test)"


def test_demo_backend_choices_are_every_backend(capsys):
    from hefl.cli_options import BACKENDS
    with pytest.raises(SystemExit) as e:
        main(["demo", "--backend", "bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert all(repr(b) in err for b in BACKENDS) and "serial" in BACKENDS
