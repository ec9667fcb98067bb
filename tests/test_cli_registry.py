"""The lazy subcommand registry shared by ``hefl``, ``hefl bench`` and ``hefl hw-report``."""

import argparse

from hefl.cli import add_subcommands, import_optional, run_subcommand


def _parser(tmp_path, monkeypatch):
    (tmp_path / "hefl_probe_cmd.py").write_text(
        "def add_arguments(p):\n    p.add_argument('--x', type=int, default=1)\n\n"
        "def run(args):\n    return args.x + 40\n")
    (tmp_path / "hefl_probe_needs.py").write_text("import no_such_package_hefl\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    parser = argparse.ArgumentParser(prog="probe")
    add_subcommands(parser, {"ok": ("hefl_probe_cmd", "works"),
                             "needs": ("hefl_probe_needs", "needs a missing package")},
                    dest="probe", metavar="PROBE")
    return parser


def test_runs_the_chosen_module(tmp_path, monkeypatch):
    parser = _parser(tmp_path, monkeypatch)
    assert run_subcommand(parser.parse_args(["ok", "--x", "2"]), dest="probe", prog="probe") == 42


def test_missing_dependency_is_listed_and_named(tmp_path, monkeypatch, capsys):
    parser = _parser(tmp_path, monkeypatch)
    assert "needs a missing package" in parser.format_help()
    assert run_subcommand(parser.parse_args(["needs"]), dest="probe", prog="probe") == 2
    assert "probe needs: unavailable:" in capsys.readouterr().err


def test_no_subcommand_prints_help(tmp_path, monkeypatch, capsys):
    parser = _parser(tmp_path, monkeypatch)
    assert run_subcommand(parser.parse_args([]), dest="probe", prog="probe") == 2
    assert "PROBE" in capsys.readouterr().out


def test_import_optional_names_what_is_missing():
    mod, err = import_optional("hefl_no_such_module")
    assert mod is None and err.name == "hefl_no_such_module"
    mod, err = import_optional("hefl.errors")
    assert err is None and hasattr(mod, "HeflError")
