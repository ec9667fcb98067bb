"""Markdown documentation of the register map and buffer layout, generated.

``write_regmap_doc()`` writes ``build/docs/regmap.md``; the text comes from
:data:`hefl.hw.regmap.REGMAP` and :data:`hefl.hw.regmap.LAYOUT` only, so the
docs cannot drift from the RTL, ``kernel.xml`` and the host driver.
Pure Python: no Amaranth.
"""

from pathlib import Path

from hefl.hw.regmap import KERNEL_NAME, LAYOUT, REGMAP

__all__ = ["regmap_markdown", "write_regmap_doc"]


def _bits(f):
    return f"{f.lsb}" if f.width == 1 else f"{f.lsb + f.width - 1}:{f.lsb}"


def regmap_markdown(regmap=REGMAP, layout=LAYOUT):
    """The register map and buffer formats as one Markdown document."""
    out = [f"# {KERNEL_NAME} register map and buffers", "",
           f"Generated from `hefl.hw.regmap`. AXI4-Lite port `{regmap.control_port}` "
           f"({regmap.addr_bits}-bit addresses, 32-bit registers); memory port "
           f"`{regmap.memory_port}`.", "",
           "## Registers", "",
           "| offset | register | bits | field | access | description |",
           "|---|---|---|---|---|---|"]
    for r in regmap:
        for f in r.fields:
            out.append(f"| 0x{r.offset:02X} | {r.name} | {_bits(f)} | {f.name} | "
                       f"{f.access.value} | {f.doc} |")
    out += ["", "Access: rw read/write; ro read-only; w1s write 1 to set, cleared by the "
            "kernel; rc set by the kernel, cleared by a read; tow set by the kernel, "
            "toggled by writing 1.", "",
            "## Kernel arguments", "",
            "| id | argument | offset | size | type | port |", "|---|---|---|---|---|---|"]
    for i, a in enumerate(regmap.args):
        out.append(f"| {i} | {a.name} | 0x{a.offset:02X} | {a.size} | `{a.type}` | {a.port} |")
    out += ["", f"## Descriptor buffer (at `desc`, {layout.limb_bits}-bit little-endian limbs)", "",
            "| limb | field |", "|---|---|"]
    for i, n in enumerate(layout.desc.names):
        out.append(f"| {i} | {n} |")
    out += ["", f"Limb 0 = magic 0x{layout.magic:08X} | version {layout.version} << 32. "
            f"Then {', '.join(layout.constants)} ({layout.limb_bits}-bit limbs, s each), "
            "then the job stream.", "",
            "| job-header bits | field |", "|---|---|"]
    for f in layout.job_fields:
        out.append(f"| {f.lsb + f.width - 1}:{f.lsb} | {f.name} |")
    out += ["", "| op | job | operand limbs after the header |", "|---|---|---|"]
    operands = dict(layout.op_operands)
    for name, code in layout.ops:
        out.append(f"| {code} | {name} | {operands[name]} |")
    out += ["", "## Result buffer (at `result`)", "", "| limb | field |", "|---|---|"]
    for i, n in enumerate(layout.result.names):
        out.append(f"| {i} | {n} |")
    out += ["", f"Result of tag t: limbs {layout.result.limbs} + t·s … (s limbs, value < N).",
            "", "| status bit | flag | meaning |", "|---|---|---|"]
    docs = dict(layout.status_docs)
    for name, value in layout.status_flags:
        out.append(f"| {value:#x} | {name} | {docs[name]} |")
    return "\n".join(out) + "\n"


def write_regmap_doc(path=None):
    """Write :func:`regmap_markdown` to ``path`` (default ``build/docs/regmap.md``)."""
    if path is None:
        from hefl.paths import build_root
        path = build_root() / "docs" / "regmap.md"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(regmap_markdown())
    return path
