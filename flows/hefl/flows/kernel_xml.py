"""``kernel.xml`` for ``package_xo``, generated from the register map.

Vitis needs, next to the packaged RTL, a description of the kernel's AXI
ports and of its arguments (name, register offset, size, type, the port a
pointer addresses) so XRT can set them. Every number here comes from
:data:`hefl.hw.regmap.REGMAP`; the format follows the RTL-kernel examples of
the Vitis documentation (UG1393, "RTL Kernels", kernel.xml)::

    <root versionMajor="1" versionMinor="6">
      <kernel name=... language="ip_c" vlnv=... hwControlProtocol="ap_ctrl_hs" interrupt="true">
        <ports>
          <port name="s_axi_control" mode="slave"  range="0x1000" dataWidth="32" .../>
          <port name="m_axi_gmem"    mode="master" range="0xFFFFFFFFFFFFFFFF" dataWidth="512" .../>
        </ports>
        <args>
          <arg name="desc" addressQualifier="1" id="0" port="m_axi_gmem" size="0x8"
               offset="0x10" type="void*" hostOffset="0x0" hostSize="0x8"/>
          ...
"""

import xml.etree.ElementTree as ET
from pathlib import Path

from hefl.hw.params import ALVEO_DATA_BITS
from hefl.hw.regmap import KERNEL_NAME, REGMAP

__all__ = ["kernel_xml", "write_kernel_xml", "KERNEL_VLNV"]

#: IP-XACT identity of the packaged kernel; vendor and library match
#: ``ipx::package_project`` in :mod:`hefl.flows.alveo`, version is its default.
KERNEL_VLNV = ("hefl.dev", "hefl", KERNEL_NAME, "1.0")


def _hex(v):
    return f"0x{v:X}"


def kernel_xml(*, regmap=REGMAP, data_bits=ALVEO_DATA_BITS, name=None, vlnv=KERNEL_VLNV):
    """The text of ``kernel.xml``.

    Parameters
    ----------
    regmap : RegisterMap
        Source of the ports' names, the control range and the arguments.
    data_bits : int
        ``m_axi_gmem`` data width (default Alveo's, :data:`hefl.hw.params.ALVEO_DATA_BITS`).
    name : str, optional
        Kernel name; defaults to the name part of ``vlnv``.
    vlnv : tuple of str
        ``(vendor, library, name, version)``.
    """
    if not isinstance(data_bits, int) or data_bits < 32 or data_bits & (data_bits - 1):
        raise TypeError(f"Data width must be a power of two of at least 32, not {data_bits!r}")
    name = name or vlnv[2]
    root = ET.Element("root", versionMajor="1", versionMinor="6")
    kernel = ET.SubElement(root, "kernel", {
        "name": name, "language": "ip_c", "vlnv": ":".join(vlnv[:2] + (name, vlnv[3])),
        "attributes": "", "preferredWorkGroupSizeMultiple": "0", "workGroupSize": "1",
        "interrupt": "true", "hwControlProtocol": "ap_ctrl_hs",
    })
    ports = ET.SubElement(kernel, "ports")
    ET.SubElement(ports, "port", {
        "name": regmap.control_port, "mode": "slave", "range": _hex(1 << regmap.addr_bits),
        "dataWidth": "32", "portType": "addressable", "base": "0x0"})
    ET.SubElement(ports, "port", {
        "name": regmap.memory_port, "mode": "master", "range": "0xFFFFFFFFFFFFFFFF",
        "dataWidth": str(data_bits), "portType": "addressable", "base": "0x0"})
    args = ET.SubElement(kernel, "args")
    for i, a in enumerate(regmap.args):
        ET.SubElement(args, "arg", {
            "name": a.name,
            # 1 = global memory pointer, 0 = scalar.
            "addressQualifier": "1" if a.is_pointer else "0",
            "id": str(i),
            "port": a.port if a.is_pointer else regmap.control_port,
            "size": _hex(a.size),
            "offset": _hex(a.offset),
            "type": a.type,
            "hostOffset": "0x0",
            "hostSize": _hex(a.size),
        })
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_kernel_xml(path, **kwargs):
    """Write :func:`kernel_xml` (same keywords) to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kernel_xml(**kwargs))
    return path
