"""The repository's layout keeps its promises (README "What is where").

Each top-level folder holds one part of the package ``hefl`` and the path
below it is the import path; these tests fail when a new package is not
listed, when a relative import crosses packages, when a module recomputes
a root from ``__file__`` instead of asking :mod:`hefl.paths`, or when
gateware starts depending on flows or simulation.
"""

import ast
import importlib
import sys
import tomllib
from pathlib import Path

import pytest

from hefl.paths import package_dir, repo_root, source_digest

ROOT = Path(__file__).resolve().parents[1]
#: top-level folder -> the package it holds
PARTS = {"host": "hefl", "hw": "hefl.hw", "flows": "hefl.flows", "sim": "hefl.sim",
         "bench": "hefl.bench"}


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _packages_in_tree():
    found = set()
    for top, pkg in PARTS.items():
        base = ROOT / top / Path(*pkg.split("."))
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([pkg, *rel.parts]))
    return found


def _sources():
    for top, pkg in PARTS.items():
        yield from (ROOT / top / Path(*pkg.split("."))).rglob("*.py")


def test_package_dirs_mirror_import_paths():
    cfg = _pyproject()["tool"]["setuptools"]
    for top, pkg in PARTS.items():
        assert cfg["package-dir"][pkg] == f"{top}/{pkg.replace('.', '/')}"
    assert set(cfg["packages"]) == _packages_in_tree()


def test_imports_resolve_to_the_tree():
    """Every package imports from the folder its name names (editable install)."""
    for top, pkg in PARTS.items():
        assert package_dir(pkg) == (ROOT / top / Path(*pkg.split("."))).resolve()
    assert repo_root() == ROOT


def test_no_relative_import_crosses_packages():
    bad = []
    for f in _sources():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert not bad, f"relative imports leaving their package: {bad}"


def test_gateware_depends_on_no_flow_or_simulation():
    bad = []
    for f in (ROOT / "hw").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                if n.startswith(("hefl.flows", "hefl.sim", "hefl.bench", "hefl.fedavg",
                                 "hefl.flower", "hefl.accel", "hefl.transport")):
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {n}")
    assert not bad, bad


def test_only_paths_module_knows_the_roots():
    bad = [str(f.relative_to(ROOT)) for f in _sources()
           if f.name != "paths.py" and "__file__).resolve().parents" in f.read_text()]
    assert not bad, f"compute a root from __file__; use hefl.paths: {bad}"


def test_source_digest_follows_the_installed_sources(tmp_path, monkeypatch):
    """The sim cache key changes with any source file, wherever the package lives."""
    pkg = tmp_path / "hefl_layout_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    before = source_digest(["hefl_layout_probe"])
    assert before == source_digest(["hefl_layout_probe"])
    (pkg / "core.py").write_text("X = 2\n")
    assert source_digest(["hefl_layout_probe"]) != before
    (pkg / "core.py").write_text("X = 1\n")
    (pkg / "extra.py").write_text("")
    assert source_digest(["hefl_layout_probe"]) != before
    sys.modules.pop("hefl_layout_probe", None)


@pytest.mark.parametrize("harness", ["kernel", "board"])
def test_harness_sources_sit_beside_their_loader(harness):
    from hefl.sim.kernel_model import harness_sources
    cpp, hdr = harness_sources(harness)
    assert cpp.parent == hdr.parent == package_dir("hefl.sim")
    assert (package_dir("hefl.sim") / f"{harness}_model.py").is_file()
