"""Amaranth → Verilog: every generated ``.v`` file comes from here.

Verilog is rewritten only when its text changes, so a Verilator build of an
unchanged design is reused (its up-to-date check looks at file times), and
the write is atomic, so a concurrent reader never sees half a file.
"""

import os
from pathlib import Path

from hefl.hw.kernel import Kernel
from hefl.hw.regmap import KERNEL_NAME
from hefl.paths import build_root

__all__ = ["to_verilog", "kernel_verilog", "write_if_changed"]


def write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        # Atomic: a concurrent reader (another worker's Verilator) never sees half a file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def to_verilog(component, *, name, out_dir=None, ports=None):
    """Convert an Amaranth component to Verilog with a stable top name.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The elaboratable; its signature's ports become the Verilog ports,
        named as Amaranth flattens them (``i_stream__valid``,
        ``i_stream__payload`` ...), plus ``clk`` and ``rst``.
    name : str
        Verilog module name of the top (also the file stem).
    out_dir : path-like, optional
        Defaults to ``build/verilog``.
    ports : list, optional
        Passed through to :func:`amaranth.back.verilog.convert`.

    Returns
    -------
    pathlib.Path
        The ``.v`` file (rewritten only when its text changed).
    """
    from amaranth.back import verilog
    out_dir = Path(out_dir) if out_dir is not None else build_root() / "verilog"
    kwargs = {"name": name, "emit_src": False}
    if ports is not None:
        kwargs["ports"] = ports
    text = verilog.convert(component, **kwargs)
    return write_if_changed(out_dir / f"{name}.v", text)


def kernel_verilog(*, out_dir=None, name=KERNEL_NAME, **params):
    """Generate the kernel's Verilog (``build/verilog/<name>.v`` by default).

    ``params`` go to :class:`Kernel`. Returns the path of the ``.v`` file.
    """
    return to_verilog(Kernel(**params), name=name, out_dir=out_dir)
