"""The Alveo flow without Vivado/Vitis: generated files against the register map, the
typed one-line error for a missing tool, and a Verilator lint of the kernel Verilog.

A small kernel (L = 128, two lanes) at the Alveo bus width (ALVEO_DATA_BITS) keeps the
generation to seconds; the files' contents depend on the register map, not
on the operand width.
"""

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from hefl.cli import main as hefl_main
from hefl.errors import ToolNotFound
from hefl.flows.alveo import (
    CU_NAME,
    KERNEL_NAME,
    AlveoConfig,
    build_xclbin,
    build_xo,
    generate,
)
from hefl.golden.montgomery import words_for
from hefl.hw.params import ALVEO_DATA_BITS
from hefl.hw.regmap import REGMAP
from hefl.sim.runner import verilator_path

SMALL = AlveoConfig(operand_bits=128, word_bits=32, lanes=2, window_bits=4,
                    data_bits=ALVEO_DATA_BITS, engines=2)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("alveo"), config=SMALL)


@pytest.fixture
def no_vendor_tools(monkeypatch, tmp_path):
    # PATH without vivado or v++, whatever this machine has.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))


def _verilog_ports(text):
    head = text[text.index(f"module {KERNEL_NAME}("):]
    return set(re.findall(r"^\s*(?:input|output)\s+(?:\[[^\]]+\]\s*)?(\w+);", head, re.M))


def test_kernel_xml_matches_register_map(generated):
    root = ET.parse(generated["kernel_xml"]).getroot()
    k = root.find("kernel")
    assert k.get("name") == KERNEL_NAME
    assert k.get("hwControlProtocol") == "ap_ctrl_hs"
    ports = {p.get("name"): p for p in k.find("ports")}
    assert set(ports) == {REGMAP.control_port, REGMAP.memory_port}
    assert int(ports[REGMAP.control_port].get("range"), 16) == 1 << REGMAP.addr_bits
    assert int(ports[REGMAP.memory_port].get("dataWidth")) == SMALL.data_bits
    args = [(a.get("name"), int(a.get("offset"), 16), int(a.get("size"), 16), a.get("port"),
             a.get("type")) for a in k.find("args")]
    assert args == [(a.name, a.offset, a.size, a.port, a.type) for a in REGMAP.args]
    # Every port kernel.xml names exists in the Verilog, with the Vitis clock/reset.
    vports = _verilog_ports(generated["verilog"].read_text())
    for name in ports:
        assert any(p.startswith(name + "_") for p in vports), name
    assert {"ap_clk", "ap_rst_n", "interrupt"} <= vports


def test_package_tcl_and_link_cfg_cover_every_register_and_arg(generated):
    tcl = generated["tcl"].read_text()
    arg_regs = {n for a in REGMAP.args for n in a.registers}
    for r in REGMAP:
        if r.name not in arg_regs:
            assert re.search(rf"hefl_reg \$ab {r.name} 0x{r.offset:03X} 32 ", tcl), r.name
    for a in REGMAP.args:
        assert re.search(rf"hefl_reg \$ab {a.name} 0x{a.offset:03X} {8 * a.size} ", tcl), a.name
    assert tcl.count("ASSOCIATED_BUSIF") == sum(a.is_pointer for a in REGMAP.args)
    assert f"set_property value {REGMAP.memory_port} [ipx::add_register_parameter" in tcl
    for port in (REGMAP.control_port, REGMAP.memory_port):
        assert f"ipx::associate_bus_interfaces -busif {port} -clock ap_clk" in tcl
    assert "vitis_drc {ctrl_protocol ap_ctrl_hs}" in tcl
    assert f"set_property range {1 << REGMAP.addr_bits}" in tcl
    m = re.search(r"^package_xo .*$", tcl, re.M)
    assert m and "-kernel_name $kernel_name" in m.group(0) and "-kernel_xml $kernel_xml" in m.group(0)
    assert f"set kernel_xml {{{generated['kernel_xml']}}}" in tcl
    assert f"set verilog {{{generated['verilog']}}}" in tcl
    # Balanced braces and brackets: a cheap syntax check where no tclsh exists.
    assert tcl.count("{") == tcl.count("}") and tcl.count("[") == tcl.count("]")
    # As AMD's rtl_vadd: the card's part, every family, and no second inference
    # of the interrupt package_project already found (it can stop batch Vivado).
    assert re.search(rf"^create_project -force -part {SMALL.part} ", tcl, re.M)
    assert "set_property supported_families { } $core" in tcl
    assert "set_property auto_family_support_level level_2 $core" in tcl
    assert "ipx::infer_bus_interface interrupt" not in tcl
    assert "add_bus_parameter SENSITIVITY" not in tcl

    cfg = generated["link_cfg"].read_text()
    assert f"nk={KERNEL_NAME}:1:{CU_NAME}" in cfg
    assert f"sp={CU_NAME}.{REGMAP.memory_port}:DDR[0]" in cfg
    assert f"kernel_frequency={SMALL.clock_mhz}" in cfg
    for a in REGMAP.args:
        assert a.name in cfg
    # Floorplan: the pblock script runs before placement, one pblock per sub-engine.
    assert f"prop=run.impl_1.STEPS.PLACE_DESIGN.TCL.PRE={generated['pblocks']}" in cfg
    assert f"slr={CU_NAME}:SLR0" in cfg
    pb = generated["pblocks"].read_text()
    assert pb.count("create_pblock") == SMALL.engines == 2
    for i in range(SMALL.engines):
        assert f"create_pblock hefl_engine{i}" in pb and f"get_slrs SLR{i}" in pb
    assert pb.count("{") == pb.count("}") and pb.count("[") == pb.count("]")


def test_default_alveo_kernel_has_one_sub_engine_per_slr():
    from hefl.flows.alveo import ALVEO_SLRS
    cfg = AlveoConfig()
    assert cfg.engines == ALVEO_SLRS and cfg.kernel_params()["engines"] == ALVEO_SLRS
    # A build with fewer lanes than SLRs has as many sub-engines as lanes.
    assert AlveoConfig(lanes=2).engines == 2


def test_xo_without_vivado_is_one_typed_line_and_leaves_the_files(tmp_path, no_vendor_tools):
    with pytest.raises(ToolNotFound, match=r"^vivado not found on PATH") as e:
        build_xo(tmp_path, config=SMALL)
    assert "\n" not in str(e.value)
    for name in (f"{KERNEL_NAME}.v", "kernel.xml", "package_xo.tcl", "hefl_link.cfg"):
        assert (tmp_path / name).stat().st_size > 0, name
    # xclbin checks for v++ first, and needs a platform.
    with pytest.raises(ToolNotFound, match=r"^v\+\+ not found"):
        build_xclbin(tmp_path, platform="xilinx_u250_gen3x16_xdma_4_1_202210_1", config=SMALL)
    assert "platform=xilinx_u250" in (tmp_path / "hefl_link.cfg").read_text()
    with pytest.raises(ToolNotFound, match="PLATFORM"):
        build_xclbin(tmp_path, platform="", config=SMALL)


def test_cli_xo_exit_code_and_message(tmp_path, no_vendor_tools, capsys):
    rc = hefl_main(["alveo", "xo", "--out", str(tmp_path), "--operand-bits", "128",
                    "--word-bits", "32", "--lanes", "2"])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert err.count("\n") == 0 and "vivado" in err
    assert (tmp_path / "kernel.xml").exists() and (tmp_path / "package_xo.tcl").exists()


@pytest.mark.sim
def test_kernel_verilog_lints_clean(generated):
    """Verilator --lint-only at its default warning level, minus Amaranth's idioms.

    Suppressed: width extension/truncation and incomplete case statements
    (how Amaranth emits Verilog) and ``interrupt`` being a C++ word (the
    Vitis-mandated port name).
    """
    r = subprocess.run([str(verilator_path()), "--lint-only", "--top-module", KERNEL_NAME,
                        "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                        "-Wno-SYMRSVDWORD", str(generated["verilog"])],
                       capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]


def test_hwcfg_sidecar_travels_with_the_xclbin(generated):
    # The xrt transport reads the kernel geometry from <xclbin>.hwcfg.json;
    # it must describe the kernel that was generated, read back the way the
    # transport reads it.
    from hefl.transport.xrt import hwcfg_path
    assert generated["hwcfg"] == hwcfg_path(generated["xclbin"])
    got = json.loads(generated["hwcfg"].read_text())
    assert got["hw_word_bits"] == SMALL.word_bits and got["hw_lanes"] == SMALL.lanes
    assert got["hw_window_bits"] == SMALL.window_bits and got["hw_data_bits"] == SMALL.data_bits
    assert got["hw_words"] == words_for(SMALL.operand_bits, SMALL.word_bits)


def test_alveo_kernel_lanes_keep_their_memories_where_the_projection_counts_them():
    """The card's configuration puts lane memories in UltraRAM and t in block RAM (what hw-report synthesises)."""
    from amaranth.back import verilog

    from hefl.hw.kernel import Kernel
    from hefl.hw.params import ALVEO_LANE_RAM_STYLE, ALVEO_T_RAM_STYLE
    cfg = AlveoConfig(operand_bits=256, lanes=2, data_bits=64)
    assert (cfg.lane_ram_style, cfg.t_ram_style) == (ALVEO_LANE_RAM_STYLE, ALVEO_T_RAM_STYLE)
    text = verilog.convert(Kernel(**cfg.kernel_params()), name="k")
    # Two lanes: two lane memories in UltraRAM, two accumulators (and two job FIFOs) in block RAM.
    assert text.count('ram_style = "ultra"') == 2
    assert text.count('ram_style = "block"') == 4
    plain = verilog.convert(Kernel(**AlveoConfig(operand_bits=256, lanes=2, data_bits=64,
                                                 lane_ram_style=None,
                                                 t_ram_style=None).kernel_params()), name="k")
    assert 'ram_style = "ultra"' not in plain and plain.count('ram_style = "block"') == 2
    with pytest.raises(TypeError, match="RAM styles"):
        AlveoConfig(lane_ram_style="lut")
