"""The Alveo flow: kernel Verilog, ``kernel.xml``, ``package_xo`` Tcl, ``v++`` link config.

``hefl alveo xo`` (``make xo``) and ``hefl alveo xclbin --platform P``
(``make xclbin PLATFORM=P``) write everything a Vitis install needs under
``build/alveo/`` and then run the vendor tools if they are on ``PATH``::

    build/alveo/
        hefl_kernel.v        the RTL kernel (hefl.hw.kernel.Kernel → hefl.flows.verilog.to_verilog)
        kernel.xml           from the register map (hefl.flows.kernel_xml)
        package_xo.tcl       Vivado: package the RTL as an IP, then ``package_xo``
        hefl_link.cfg        v++ --link config: one CU, m_axi_gmem → DDR[0], clock, pblocks hook
        hefl_pblocks.tcl     implementation: one pblock per sub-engine (one SLR each)
        hefl_kernel.xo       written by Vivado (``vivado -mode batch``)
        hefl.xclbin          written by ``v++ -l``

Where ``vivado`` (for the ``.xo``) or ``v++`` (for the ``.xclbin``) is not
on ``PATH``, the flow stops with :class:`hefl.errors.ToolNotFound` (one line
naming the tool, shown by the CLI) after the generated files are written, so
they can be carried to a machine that has the tools.

Nothing here types a register offset: the Tcl's memory map, ``kernel.xml``
and the link config all iterate over :data:`hefl.hw.regmap.REGMAP`.

How the Tcl follows the Vitis RTL-kernel rules (UG1393 "RTL Kernels", and
AMD's ``rtl_vadd`` example's ``package_kernel.tcl``)
--------------------------------------------------------------------
* the packaging project is created for the card's part (``create_project
  -part``, :attr:`AlveoConfig.part`), so the IP is built for the U250;
* the kernel is packaged as an IP with ``ipx::package_project``; the IP
  packager infers the AXI interfaces from the port prefixes
  (``s_axi_control_*``, ``m_axi_gmem_*``), ``ap_clk`` as the clock,
  ``ap_rst_n`` as its active-low reset and ``interrupt`` as a level-high
  interrupt (it is not inferred again, nor given a second ``SENSITIVITY``
  parameter: doing so after ``package_project`` can stop Vivado in batch
  mode);
* both AXI interfaces are associated with ``ap_clk``;
* the IP is marked ``sdx_kernel``/``rtl`` with ``ap_ctrl_hs`` and, as in
  ``rtl_vadd``, ``supported_families`` empty with
  ``auto_family_support_level level_2`` (every family, so v++ accepts it
  for the U250);
* ``ap_rst_n`` is pipelined inside the kernel (:data:`hefl.hw.kernel.RESET_STAGES`
  registers) before it fans out, as UG1393 asks;
* every register of the map is in the ``s_axi_control`` memory map, and the
  pointer arguments carry ``ASSOCIATED_BUSIF = m_axi_gmem`` so v++ knows which
  bundle they address;
* ``package_xo -kernel_xml`` gives v++ the argument list.

Timing constraints. The kernel clock comes from the platform
(``kernel_frequency``); what the flow adds is floorplanning: the CU's
sub-engines (``engine0`` … in the netlist) each get a pblock on their own
SLR (``hefl_pblocks.tcl``, run by ``v++`` before placement through the link
config's ``[vivado]`` section), the rest of the kernel stays with the DDR
bank it reads. Between them every stream is a registered skid buffer and
the constants a register stage (:mod:`hefl.hw.kernel`), so each SLR crossing
starts and ends at a flop.
"""

import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hefl.flows.kernel_xml import KERNEL_VLNV, write_kernel_xml
from hefl.hw.params import (
    ALVEO_CLOCK_MHZ,
    ALVEO_DATA_BITS,
    ALVEO_LANE_RAM_STYLE,
    ALVEO_T_RAM_STYLE,
    MODEXP_WINDOW_BITS,
    MONTMUL_WORD_BITS,
)
from hefl.hw.regmap import KERNEL_NAME, LAYOUT, REGMAP

__all__ = ["AlveoConfig", "KERNEL_NAME", "CU_NAME", "ALVEO_SLRS", "generate", "package_xo_tcl",
           "link_config", "pblocks_tcl", "build_xo", "build_xclbin", "add_arguments", "run"]

#: The compute unit v++ instantiates (``nk=hefl_kernel:1:hefl_kernel_1``).
CU_NAME = f"{KERNEL_NAME}_1"
#: SLRs of the XCU250, the sub-engines' homes (SLR0 also holds DDR[0]).
ALVEO_SLRS = 4


@dataclass(frozen=True)
class AlveoConfig:
    """Parameters of an Alveo build.

    Attributes
    ----------
    operand_bits : int
        Modulus width L the BatchEngine is built for (4096: Paillier-2048's n²).
    word_bits : int
        Word width w (the DSP48E2 word of :mod:`hefl.hw.params`; ``None`` means that too).
    lanes : int
        BatchEngine lanes E.
    window_bits : int
        Modexp window k.
    data_bits : int
        ``m_axi_gmem`` width; :data:`~hefl.hw.params.ALVEO_DATA_BITS` matches
        the Alveo DDR controllers.
    clock_mhz : int
        Kernel clock asked of v++ (``kernel_frequency``).
    memory : str
        Memory bank the ``m_axi_gmem`` bundle is connected to.
    engines : int
        Sub-engines (one per SLR: :data:`ALVEO_SLRS` of them on the U250).
    part : str
        FPGA part of the packaging project (the U250's).
    lane_ram_style, t_ram_style : str or None
        Where each lane keeps its memory and its MontMul accumulator
        (:class:`hefl.hw.batch_engine.BatchEngine`); default
        :data:`~hefl.hw.params.ALVEO_LANE_RAM_STYLE` /
        :data:`~hefl.hw.params.ALVEO_T_RAM_STYLE`, the configuration
        ``hefl hw-report`` projects.
    """

    operand_bits: int = 4096
    word_bits: int = MONTMUL_WORD_BITS
    lanes: int = 8
    window_bits: int = MODEXP_WINDOW_BITS
    data_bits: int = ALVEO_DATA_BITS
    clock_mhz: int = ALVEO_CLOCK_MHZ
    memory: str = "DDR[0]"
    engines: int = 4
    part: str = "xcu250-figd2104-2L-e"
    lane_ram_style: str | None = ALVEO_LANE_RAM_STYLE
    t_ram_style: str | None = ALVEO_T_RAM_STYLE

    def __post_init__(self):
        if self.word_bits is None:
            object.__setattr__(self, "word_bits", MONTMUL_WORD_BITS)
        for name in ("operand_bits", "word_bits", "lanes", "window_bits", "data_bits", "clock_mhz",
                     "engines"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise TypeError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                f"integer, not {v!r}")
        from hefl.hw.modexp import RAM_STYLES
        from hefl.hw.montmul import T_RAM_STYLES
        if self.lane_ram_style not in RAM_STYLES or self.t_ram_style not in T_RAM_STYLES:
            raise TypeError(f"Lane and t RAM styles must be in {RAM_STYLES} and {T_RAM_STYLES}, "
                            f"not {self.lane_ram_style!r} and {self.t_ram_style!r}")
        limb = LAYOUT.limb_bits
        if self.data_bits % limb or self.data_bits & (self.data_bits - 1):
            raise TypeError(f"Data width must be a power of two multiple of {limb}, "
                            f"not {self.data_bits}")
        if self.engines > min(self.lanes, ALVEO_SLRS):
            # Fewer lanes than SLRs: fewer sub-engines (a small test build).
            object.__setattr__(self, "engines", min(self.lanes, ALVEO_SLRS))

    def kernel_params(self):
        """Keyword arguments of :class:`hefl.hw.kernel.Kernel`."""
        from hefl.hw.batch_engine import BatchEngine
        return dict(operand_bits=self.operand_bits, word_bits=self.word_bits, lanes=self.lanes,
                    window_bits=self.window_bits, data_bits=self.data_bits, engines=self.engines,
                    engine_factory=partial(BatchEngine, lane_ram_style=self.lane_ram_style,
                                           t_ram_style=self.t_ram_style))


def _tcl_quote(path):
    # Braces keep spaces and brackets in a path literal in Tcl.
    return "{" + str(path) + "}"


def _arg_registers():
    """Names of the 32-bit registers that belong to a kernel argument."""
    return {n for a in REGMAP.args for n in a.registers}


def package_xo_tcl(*, verilog, kernel_xml, xo_path, work_dir, config=AlveoConfig()):
    """Text of the Vivado batch script that packages the kernel and writes the ``.xo``.

    Parameters
    ----------
    verilog, kernel_xml, xo_path, work_dir : path-like
        The kernel Verilog, its ``kernel.xml``, the ``.xo`` to write and a
        scratch directory for the packaging project and the IP.

    Returns
    -------
    str
    """
    ctl, mem = REGMAP.control_port, REGMAP.memory_port
    work = Path(work_dir)
    lines = [
        "# Generated by hefl.flows.alveo from the register map; do not edit.",
        "# vivado -mode batch -source package_xo.tcl",
        f"set kernel_name {KERNEL_NAME}",
        f"set verilog {_tcl_quote(Path(verilog).resolve())}",
        f"set kernel_xml {_tcl_quote(Path(kernel_xml).resolve())}",
        f"set xo_path {_tcl_quote(Path(xo_path).resolve())}",
        f"set proj_dir {_tcl_quote((work / 'pack_project').resolve())}",
        f"set ip_dir {_tcl_quote((work / 'ip').resolve())}",
        "",
        f"create_project -force -part {config.part} ${{kernel_name}}_pack $proj_dir",
        "add_files -norecurse $verilog",
        "set_property top $kernel_name [current_fileset]",
        "update_compile_order -fileset sources_1",
        "",
        "# Package as an IP: the packager infers the AXI interfaces from the port",
        f"# prefixes ({ctl}_*, {mem}_*), ap_clk as the clock and ap_rst_n as its reset.",
        # Vendor, library and version must match kernel.xml's vlnv (hefl.flows.kernel_xml).
        f"ipx::package_project -root_dir $ip_dir -vendor {KERNEL_VLNV[0]} "
        f"-library {KERNEL_VLNV[1]} -taxonomy /KernelIP -import_files -set_current false",
        "ipx::unload_core $ip_dir/component.xml",
        "ipx::edit_ip_in_project -upgrade true -name ${kernel_name}_edit "
        "-directory $proj_dir $ip_dir/component.xml",
        "set core [ipx::current_core]",
        f"set_property version {KERNEL_VLNV[3]} $core",
        "set_property core_revision 1 $core",
        "",
        "# A Vitis RTL kernel with the ap_ctrl_hs protocol.",
        "set_property sdx_kernel true $core",
        "set_property sdx_kernel_type rtl $core",
        "set_property vitis_drc {ctrl_protocol ap_ctrl_hs} $core",
        "set_property ipi_drc {ignore_freq_hz true} $core",
        "",
        "# Both AXI interfaces run on ap_clk (ap_rst_n: active low, inferred from the _n",
        "# suffix). package_project inferred the level-high `interrupt` already: inferring",
        "# it again or adding a second SENSITIVITY can stop Vivado in batch mode.",
        f"ipx::associate_bus_interfaces -busif {ctl} -clock ap_clk $core",
        f"ipx::associate_bus_interfaces -busif {mem} -clock ap_clk $core",
        "ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $core",
        "",
        "# Every device family (as rtl_vadd does), so v++ accepts the IP for the card.",
        "set_property supported_families { } $core",
        "set_property auto_family_support_level level_2 $core",
        "",
        f"# The {ctl} memory map: every register of hefl.hw.regmap.REGMAP.",
        f"set mm [ipx::get_memory_maps {ctl} -of_objects $core]",
        "if {[llength [ipx::get_address_blocks reg0 -of_objects $mm]] == 0} {",
        "    ipx::add_address_block reg0 $mm",
        "}",
        "set ab [ipx::get_address_blocks reg0 -of_objects $mm]",
        f"set_property range {1 << REGMAP.addr_bits} $ab",
        "proc hefl_reg {ab name offset bits desc} {",
        "    set r [ipx::add_register $name $ab]",
        "    set_property address_offset $offset $r",
        "    set_property size $bits $r",
        "    set_property description $desc $r",
        "    return $r",
        "}",
    ]
    in_args = _arg_registers()
    for r in REGMAP:
        if r.name in in_args:
            continue
        lines.append(f"hefl_reg $ab {r.name} 0x{r.offset:03X} 32 {{{r.doc}}}")
    for a in REGMAP.args:
        lines += [
            f"set r [hefl_reg $ab {a.name} 0x{a.offset:03X} {8 * a.size} {{{a.doc}}}]",
        ]
        if a.is_pointer:
            lines.append(f"set_property value {a.port} [ipx::add_register_parameter "
                         f"ASSOCIATED_BUSIF $r]")
    lines += [
        "",
        "set_property xpm_libraries {XPM_CDC XPM_MEMORY XPM_FIFO} $core",
        "ipx::create_xgui_files $core",
        "ipx::update_checksums $core",
        "ipx::check_integrity -kernel $core",
        "ipx::save_core $core",
        "close_project -delete",
        "",
        "package_xo -force -xo_path $xo_path -kernel_name $kernel_name "
        "-ip_directory $ip_dir -kernel_xml $kernel_xml",
        "",
    ]
    return "\n".join(lines)


def link_config(*, platform=None, config=AlveoConfig(), pblocks=None):
    """Text of the ``v++ --link --config`` file: one CU, its bundle on ``config.memory``.

    The platform goes on the command line (``--platform``) rather than here
    when ``platform`` is ``None``, so the file stays valid for any card.
    ``pblocks`` (the path of :func:`pblocks_tcl`'s file) is run before
    placement.
    """
    mem = REGMAP.memory_port
    lines = ["# Generated by hefl.flows.alveo from the register map; do not edit.",
             f"# v++ -l -t hw --platform <platform> --config hefl_link.cfg {KERNEL_NAME}.xo"]
    if platform:
        lines.append(f"platform={platform}")
    lines += [f"kernel_frequency={config.clock_mhz}", "", "[connectivity]",
              f"nk={KERNEL_NAME}:1:{CU_NAME}",
              f"# args on {mem}: " + ", ".join(a.name for a in REGMAP.args if a.port == mem),
              f"sp={CU_NAME}.{mem}:{config.memory}",
              # The CU's anchor (control, AXI master) beside the DDR bank it reads.
              f"slr={CU_NAME}:SLR0", ""]
    if pblocks:
        lines += ["[vivado]",
                  "# One pblock per sub-engine, before placement (hefl_pblocks.tcl).",
                  f"prop=run.impl_1.STEPS.PLACE_DESIGN.TCL.PRE={Path(pblocks).resolve()}", ""]
    return "\n".join(lines)


def pblocks_tcl(*, config=AlveoConfig()):
    """Vivado Tcl (implementation, before placement): sub-engine ``i`` in a pblock on SLR ``i``.

    The sub-engines are the CU's ``engine<i>`` cells (:class:`hefl.hw.kernel.Kernel`
    names them so). A pattern that matches nothing (another platform's
    hierarchy) is reported and skipped, never an error: placement then
    proceeds unconstrained.
    """
    lines = ["# Generated by hefl.flows.alveo; do not edit.",
             "# One pblock per sub-engine, each on its own SLR (v++: run.impl_1 PLACE_DESIGN pre).",
             f"set cu [get_cells -hierarchical -filter {{NAME =~ *{CU_NAME}*}} -quiet]",
             "if {[llength $cu] == 0} { puts \"hefl_pblocks: no cell named *" + CU_NAME
             + "*; nothing constrained\"; return }",
             "set cu [lindex [lsort $cu] 0]"]
    for i in range(config.engines):
        slr = i % ALVEO_SLRS
        lines += [
            f"set cells [get_cells -quiet $cu/*engine{i}]",
            "if {[llength $cells]} {",
            f"    set pb [create_pblock hefl_engine{i}]",
            f"    resize_pblock $pb -add [get_slrs SLR{slr}]",
            "    add_cells_to_pblock $pb $cells",
            "    set_property IS_SOFT TRUE $pb",
            "} else {",
            f"    puts \"hefl_pblocks: engine{i} not found under $cu\"",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _out_dir(out):
    from hefl.paths import build_root
    d = Path(out) if out is not None else build_root() / "alveo"
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


def generate(out=None, *, config=AlveoConfig(), platform=None, kernel=None):
    """Write the kernel Verilog, ``kernel.xml``, the Tcl and the link config.

    Parameters
    ----------
    out : path-like, optional
        Output directory (default ``build/alveo``).
    config : AlveoConfig
        Kernel and link parameters.
    platform : str, optional
        Written into the link config when given.
    kernel : wiring.Component, optional
        A prebuilt kernel (tests pass a small one); by default
        ``Kernel(**config.kernel_params())``.

    Returns
    -------
    dict
        Paths by role: ``verilog``, ``kernel_xml``, ``tcl``, ``link_cfg``,
        ``xo``, ``xclbin`` (the last two are where the tools will write).
    """
    from hefl.flows.verilog import to_verilog
    d = _out_dir(out)
    if kernel is None:
        from hefl.hw.kernel import Kernel
        kernel = Kernel(**config.kernel_params())
    paths = {
        "verilog": to_verilog(kernel, name=KERNEL_NAME, out_dir=d),
        "kernel_xml": d / "kernel.xml",
        "tcl": d / "package_xo.tcl",
        "link_cfg": d / "hefl_link.cfg",
        "pblocks": d / "hefl_pblocks.tcl",
        "xo": d / f"{KERNEL_NAME}.xo",
        "xclbin": d / "hefl.xclbin",
    }
    write_kernel_xml(paths["kernel_xml"], data_bits=config.data_bits)
    paths["tcl"].write_text(package_xo_tcl(verilog=paths["verilog"], kernel_xml=paths["kernel_xml"],
                                           xo_path=paths["xo"], work_dir=d / "vivado",
                                           config=config))
    paths["pblocks"].write_text(pblocks_tcl(config=config))
    paths["link_cfg"].write_text(link_config(platform=platform, config=config,
                                             pblocks=paths["pblocks"]))
    # The host's xrt transport reads the kernel's geometry from this sidecar
    # (pyxrt has no register read in shared mode; the kernel's result header
    # carries it too, so the sidecar is a convenience, not a requirement).
    from hefl.transport.xrt import write_hwcfg
    paths["hwcfg"] = write_hwcfg(paths["xclbin"], kernel.hwcfg)
    return paths


def _require(tool, what):
    exe = shutil.which(tool)
    if exe is None:
        from hefl.errors import ToolNotFound
        raise ToolNotFound(f"{tool} not found on PATH: install Vitis/Vivado and source its "
                           f"settings64.sh to build {what} (generated files are in place)")
    return exe


def _call(cmd, cwd, log):
    from hefl.errors import ToolFailed
    with open(log, "w") as f:
        r = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        raise ToolFailed(f"{Path(str(cmd[0])).name} exited with {r.returncode}; see {log}")


def build_xo(out=None, *, config=AlveoConfig(), kernel=None):
    """Generate the files, then run Vivado to write ``hefl_kernel.xo``.

    Raises
    ------
    hefl.errors.ToolNotFound
        ``vivado`` is not on ``PATH`` (the generated files are present).
    hefl.errors.ToolFailed
        Vivado ran and failed.
    """
    paths = generate(out, config=config, kernel=kernel)
    vivado = _require("vivado", f"{paths['xo'].name}")
    d = paths["tcl"].parent
    _call([vivado, "-mode", "batch", "-notrace", "-source", paths["tcl"],
           "-log", d / "vivado.log", "-journal", d / "vivado.jou"], d, d / "vivado.out")
    return paths


def build_xclbin(out=None, *, platform, config=AlveoConfig(), kernel=None, target="hw"):
    """:func:`build_xo`, then ``v++ -l`` for ``platform`` into ``hefl.xclbin``.

    Raises
    ------
    hefl.errors.ToolNotFound
        ``vivado`` or ``v++`` is not on ``PATH``.
    """
    if not platform or not isinstance(platform, str):
        from hefl.errors import ToolNotFound
        raise ToolNotFound("no Vitis platform given: make xclbin PLATFORM=<platform name or .xpfm>")
    d = _out_dir(out)
    # Check the linker first: without it the .xo's hour of packaging is wasted.
    generate(d, config=config, platform=platform, kernel=kernel)
    vpp = _require("v++", "hefl.xclbin")
    paths = build_xo(d, config=config, kernel=kernel)
    paths["link_cfg"].write_text(link_config(platform=platform, config=config,
                                             pblocks=paths["pblocks"]))
    _call([vpp, "-l", "-t", target, "--platform", platform, "--config", paths["link_cfg"],
           "--temp_dir", d / "_x", "-o", paths["xclbin"], paths["xo"]], d, d / "vpp.log")
    return paths


# --- CLI (hefl alveo {xo,xclbin}) --------------------------------------------

def add_arguments(parser):
    """Arguments of ``hefl alveo``."""
    parser.add_argument("stage", choices=("generate", "xo", "xclbin"),
                        help="generate the files only, or also run Vivado (xo) and v++ (xclbin)")
    parser.add_argument("--platform", default=None,
                        help="Vitis platform, needed for xclbin (default: none)")
    parser.add_argument("--out", default=None, help="output directory (default build/alveo)")
    d = AlveoConfig()
    parser.add_argument("--operand-bits", type=int, default=d.operand_bits)
    parser.add_argument("--word-bits", type=int, default=None,
                        help=f"Montgomery word width (default: {MONTMUL_WORD_BITS}, the DSP48E2 word)")
    parser.add_argument("--lanes", type=int, default=d.lanes)
    parser.add_argument("--window-bits", type=int, default=d.window_bits)
    parser.add_argument("--clock-mhz", type=int, default=d.clock_mhz)
    parser.add_argument("--engines", type=int, default=d.engines,
                        help=f"sub-engines, one per SLR (default {d.engines})")


def run(args):
    """Entry point of ``hefl alveo``."""
    config = AlveoConfig(operand_bits=args.operand_bits, word_bits=args.word_bits,
                         lanes=args.lanes, window_bits=args.window_bits,
                         clock_mhz=args.clock_mhz, engines=args.engines)
    if args.stage == "generate":
        paths = generate(args.out, config=config, platform=args.platform)
    elif args.stage == "xo":
        paths = build_xo(args.out, config=config)
    else:
        paths = build_xclbin(args.out, platform=args.platform, config=config)
    for role, p in paths.items():
        if Path(p).exists():
            print(f"{role:10s} {p}")
    return 0
