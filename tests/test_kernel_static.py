"""Static checks of the generated kernel: Verilog ports, Verilator lint, kernel.xml.

The Alveo configuration (DW = ALVEO_DATA_BITS, 512) is generated at a reduced operand width
so the test stays fast; ports and the register map do not depend on L.
"""

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from hefl.flows.kernel_xml import kernel_xml, write_kernel_xml
from hefl.flows.verilog import to_verilog
from hefl.hw.axi_master import axi4_members
from hefl.hw.axil_ctrl import axil_members
from hefl.hw.kernel import Kernel
from hefl.hw.params import ALVEO_DATA_BITS, MODEXP_WINDOW_BITS, MONTMUL_WORD_BITS
from hefl.hw.regmap import KERNEL_NAME, REGMAP
from hefl.paths import build_root
from hefl.sim.runner import verilator_path

ALVEO_DW = ALVEO_DATA_BITS
PARAMS = dict(operand_bits=256, word_bits=MONTMUL_WORD_BITS, lanes=2,
              window_bits=MODEXP_WINDOW_BITS, max_exp_bits=256)

# Verilator warnings that point at real hardware defects (not width noise
# from generated code): combinational loops, multiple drivers, latches.
SERIOUS = ("UNOPTFLAT", "MULTIDRIVEN", "LATCH", "COMBDLY", "BLKSEQ", "UNDRIVEN")


@pytest.fixture(scope="module")
def alveo_verilog():
    out = build_root() / "verilog" / f"kernel_lint_dw{ALVEO_DW}"
    return to_verilog(Kernel(**PARAMS, data_bits=ALVEO_DW), name=KERNEL_NAME, out_dir=out)


def top_ports(text):
    """``{name: (direction, width)}`` of the top module's ports."""
    body = text.split(f"module {KERNEL_NAME}(", 1)[1].split("endmodule", 1)[0]
    ports = {}
    for d, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s*)?(\w+)\s*;",
                                   body, re.M):
        ports[name] = (d, int(msb) + 1 if msb else 1)
    return ports


def test_top_ports_follow_the_contract(alveo_verilog):
    ports = top_ports(alveo_verilog.read_text())
    want = {"ap_clk": ("input", 1), "ap_rst_n": ("input", 1), "interrupt": ("output", 1)}
    for n, d, w in axil_members(REGMAP.addr_bits):
        want[f"{REGMAP.control_port}_{n}"] = ("input" if d == "in" else "output", w)
    for n, d, w in axi4_members(ALVEO_DW):
        want[f"{REGMAP.memory_port}_{n}"] = ("output" if d == "out" else "input", w)
    assert ports == want
    # The contract's names and widths, spelled out independently of axi4_members.
    assert ports["m_axi_gmem_wdata"] == ("output", ALVEO_DW)
    assert ports["m_axi_gmem_wstrb"] == ("output", ALVEO_DW // 8)
    assert ports["m_axi_gmem_araddr"] == ("output", 64)
    assert ports["m_axi_gmem_arlen"] == ("output", 8)
    assert ports["s_axi_control_awaddr"] == ("input", 12)
    assert ports["s_axi_control_rdata"] == ("output", 32)


@pytest.mark.sim
def test_verilator_lint(alveo_verilog):
    cmd = [str(verilator_path()), "--lint-only", "-Wall", "-Wno-fatal", "--top-module", KERNEL_NAME,
           str(alveo_verilog)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert "%Error" not in log, log[-4000:]
    serious = [ln for ln in log.splitlines() if any(f"%Warning-{w}" in ln for w in SERIOUS)]
    assert not serious, "\n".join(serious[:20])


def test_kernel_xml_matches_regmap(tmp_path, alveo_verilog):
    path = write_kernel_xml(tmp_path / "kernel.xml", data_bits=ALVEO_DW)
    root = ET.parse(path).getroot()
    (kernel,) = root.findall("kernel")
    assert kernel.get("name") == KERNEL_NAME
    assert kernel.get("hwControlProtocol") == "ap_ctrl_hs"
    assert kernel.get("vlnv").split(":")[2] == KERNEL_NAME
    ports = {p.get("name"): p for p in kernel.find("ports")}
    assert set(ports) == {REGMAP.control_port, REGMAP.memory_port}
    assert ports[REGMAP.control_port].get("mode") == "slave"
    assert int(ports[REGMAP.control_port].get("range"), 16) == 1 << REGMAP.addr_bits
    assert ports[REGMAP.memory_port].get("mode") == "master"
    assert int(ports[REGMAP.memory_port].get("dataWidth")) == ALVEO_DW
    # Every port named in kernel.xml is an interface prefix of the RTL top.
    rtl = top_ports(alveo_verilog.read_text())
    for name in ports:
        assert any(p.startswith(name + "_") for p in rtl), name
    args = kernel.find("args").findall("arg")
    assert [a.get("name") for a in args] == [a.name for a in REGMAP.args]
    for i, (x, a) in enumerate(zip(args, REGMAP.args)):
        assert int(x.get("id")) == i
        assert int(x.get("offset"), 16) == a.offset == REGMAP.reg(a.registers[0]).offset
        assert int(x.get("size"), 16) == a.size == 4 * len(a.registers)
        assert int(x.get("hostSize"), 16) == a.size
        assert x.get("type") == a.type
        assert x.get("port") == a.port
        assert x.get("addressQualifier") == ("1" if a.is_pointer else "0")
        # Argument registers are contiguous and host-writable.
        offs = [REGMAP.reg(r).offset for r in a.registers]
        assert offs == list(range(a.offset, a.offset + a.size, 4))
    # Arguments start at 0x10, after the ap_ctrl_hs block.
    assert min(int(x.get("offset"), 16) for x in args) == 0x10


def test_kernel_xml_rejects_bad_width():
    with pytest.raises(TypeError, match="Data width"):
        kernel_xml(data_bits=100)
