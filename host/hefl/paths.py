"""Where hefl's files are: the checkout, the build tree, installed sources.

The one module that knows the layout. Everything else asks it, so nothing
recomputes a root from ``__file__`` and nothing assumes a checkout::

    from hefl.paths import build_root, package_dir, source_digest

    build_root()                    # build/ of the checkout (or $HEFL_BUILD, or ./build)
    package_dir("hefl.sim")         # folder of the installed package (harness sources)
    source_digest(["hefl.hw", "hefl.golden"])   # hash of the gateware as installed

Each top-level folder of the repository holds one part of the package, and
the path below it is the import path (``hefl.hw.montmul`` is
``hw/hefl/hw/montmul.py``, ``hefl.golden.batch`` is
``host/hefl/golden/batch.py``).
"""

import hashlib
import importlib
import os
from pathlib import Path

__all__ = ["BUILD_ENV", "repo_root", "build_root", "package_dir", "source_files",
           "source_digest"]

#: Environment variable that moves the build tree.
BUILD_ENV = "HEFL_BUILD"


def repo_root():
    """The checkout holding this package, or ``None`` for an installed copy.

    A checkout is recognised by its ``pyproject.toml`` naming the project
    ``hefl`` two folders above ``host/hefl/``.
    """
    root = Path(__file__).resolve().parents[2]
    proj = root / "pyproject.toml"
    if proj.is_file() and 'name = "hefl"' in proj.read_text(errors="replace"):
        return root
    return None


def build_root():
    """Where generated files go, created on demand.

    ``$HEFL_BUILD`` when set, else ``build/`` of the checkout, else
    ``build/`` in the working directory (an installed copy).
    """
    env = os.environ.get(BUILD_ENV)
    if env:
        root = Path(env)
    else:
        repo = repo_root()
        root = (repo if repo is not None else Path.cwd()) / "build"
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def package_dir(package):
    """The folder of an importable package (``"hefl.sim"``), wherever it is installed."""
    mod = importlib.import_module(package)
    return Path(next(iter(mod.__path__))).resolve()


def source_files(packages, suffixes=(".py",)):
    """Every file with one of ``suffixes`` in ``packages``, recursively, sorted."""
    out = []
    for pkg in packages:
        d = package_dir(pkg)
        out += sorted(f for f in d.rglob("*") if f.suffix in suffixes
                      and "__pycache__" not in f.parts)
    return out


def source_digest(packages, suffixes=(".py",), extra=b""):
    """SHA-256 (hex) of the sources of ``packages`` as installed, names included.

    Cache keys use it, so a changed gateware or golden model is never
    mistaken for a cached build, in a checkout or in site-packages alike.
    """
    h = hashlib.sha256(extra)
    for pkg in packages:
        d = package_dir(pkg)
        for f in source_files([pkg], suffixes):
            h.update(f"{pkg}/{f.relative_to(d).as_posix()}".encode())
            h.update(b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()
