"""One CLI: defaults in every --help, one name per concept, --version, one-line errors."""

import argparse

import pytest

import hefl
from hefl.cli import COMMANDS, DefaultsHelpFormatter, add_subcommands, main


def _subparsers(parser, prefix="hefl"):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield f"{prefix} {name}", sp
                yield from _subparsers(sp, f"{prefix} {name}")


@pytest.fixture(scope="module")
def commands():
    parser = argparse.ArgumentParser(prog="hefl")
    add_subcommands(parser, COMMANDS, dest="command", metavar="COMMAND")
    return dict(_subparsers(parser))


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"hefl {hefl.__version__}"


def test_every_help_shows_the_defaults(commands):
    assert {"hefl demo", "hefl keygen", "hefl sim", "hefl fuzz", "hefl bench paillier"} <= set(commands)
    for name, sp in commands.items():
        assert sp.formatter_class is DefaultsHelpFormatter, name
        text = " ".join(sp.format_help().split())
        for a in sp._actions:
            if not DefaultsHelpFormatter._shows_default(a):
                continue
            assert f"(default: {a.default})" in text, (name, a.option_strings)


def test_defaults_shown_once():
    p = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    p.add_argument("--a", type=int, default=3, help="plain")
    p.add_argument("--b", type=int, default=4, help="says it (default 4)")
    p.add_argument("--c", type=int, default=5)
    p.add_argument("--d", action="store_true", help="a flag")
    p.add_argument("--e", default=None, help="unset")
    p.add_argument("--f", type=float, default=1.0, help="scales the default plan")
    text = " ".join(p.format_help().split())
    assert "plain (default: 3)" in text and "says it (default 4)" in text
    assert text.count("default") == 5        # --a, --b, --c, --f ("default plan" and its own)
    assert "--c C (default: 5)" in text and "a flag --e" in text
    assert "scales the default plan (default: 1.0)" in text


def test_one_name_per_concept(commands):
    visible = {name: {s for a in sp._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
               for name, sp in commands.items()}
    for name, flags in visible.items():
        assert not flags & {"--bits", "--keybits", "--output", "--outdir", "--out-dir", "--report",
                            "--json-out", "--key-size"}, name
    assert "--key-bits" in visible["hefl keygen"] and "--key-bits" in visible["hefl demo"]
    for name in ("hefl demo", "hefl keygen", "hefl hw-report", "hefl alveo", "hefl bitstream"):
        assert "--out" in visible[name], name
    for name in ("hefl sim", "hefl fuzz", "hefl bench paillier"):
        assert "--json" in visible[name], name
    assert {"--xclbin", "--port", "--device", "--insecure-test-key"} <= visible["hefl demo"]


def test_heflerror_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "hefl_probe_fail.py").write_text(
        "from hefl.errors import HeflError\n"
        "def add_arguments(p):\n    pass\n\n"
        "def run(args):\n    raise HeflError('first\\nsecond   third')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "probe", ("hefl_probe_fail", "fails"))
    assert main(["probe"]) == 2
    assert capsys.readouterr().err == "hefl probe: error: first second third\n"
