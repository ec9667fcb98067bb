"""The ECP5 board top: the kernel, on-chip memory and the UART link (ULX3S 85F).

Structure::

    ULX3S pins ── PLL (25 MHz → target) ── BoardCore
                                            ├── Uart (PHY, hefl.hw.uart)  ── or a raw byte port
                                            ├── Link (framing, hefl.hw.link)
                                            │     ├── AXI4-Lite ──> Kernel.s_axi_control
                                            │     └── limb port ──> BoardMem
                                            ├── Kernel (hefl.hw.kernel, DW = 64)
                                            │     └── m_axi_gmem ──> BoardMem (AXI4 slave)
                                            └── BoardMem (block RAM, hefl.hw.board_mem)

The board *is* the Vitis kernel with its card memory replaced by block RAM
and PCIe replaced by the link: the host writes a descriptor into memory,
sets ``desc``/``result`` and ``ap_start`` through the register commands,
polls ``ctrl`` and reads the result buffer back — the register map, the
descriptor and the result formats are :mod:`hefl.hw.regmap`'s, unchanged.
A device address is a byte address into the board memory (limb ``i`` at
``8 i``).

:class:`BoardCore` is the whole design with plain ``clk``/``rst`` inputs and
either UART pins (``phy="uart"``) or a byte-stream port (``phy="bytes"``,
used by the Verilator model, whose C++ harness moves whole bytes instead of
bit-timing a UART). :class:`ULX3STop` adds the PLL, the reset and the pins
of amaranth-boards' ``ULX3S_85F_Platform`` (clock ``clk25`` G2, FTDI UART
``uart`` rx M1 / tx L4, LEDs); the platform generates the LPF with the pin
constraints and the 25 MHz input clock, and nextpnr derives the PLL output's
constraint from the EHXPLLL dividers, so no hand-written constraint file is
needed.

LEDs: 0 ``interrupt`` (a run finished), 1 link answered an error, 2 UART
framing error seen, 7 heartbeat (clock / 2^26: ~1.5 Hz at 100 MHz).
"""

from functools import partial

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    DomainRenamer,
    Elaboratable,
    Instance,
    Module,
    Signal,
)
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from hefl.hw.axi_master import axi4_members
from hefl.hw.axil_ctrl import axil_members
from hefl.hw.board_mem import BoardMem
from hefl.hw.kernel import Kernel
from hefl.hw.link import Link
from hefl.hw.montmul import MontMul
from hefl.hw.params import (
    ECP5_CLOCK_MHZ,
    ECP5_TILE_BITS,
    ECP5_UART_BAUD,
    MODEXP_WINDOW_BITS,
    MONTMUL_ECP5_WORD_BITS,
    ULX3S_OSC_MHZ,
)
from hefl.hw.regmap import LAYOUT, REGMAP
from hefl.hw.uart import Uart

__all__ = ["BoardCore", "ULX3STop", "BOARD_DEFAULTS", "BOARD_TABLE_MAX", "pll_params"]

#: The board configuration ``make bitstream`` builds (Paillier-1024: 2048-bit modulus).
#: Four lanes (18×18 tiles), yosys ``synth_ecp5 -abc9``, at 100 MHz
#: (:data:`~hefl.hw.params.ECP5_CLOCK_MHZ`) with nextpnr seed 2
#: (:data:`~hefl.hw.params.ECP5_NEXTPNR_SEED`): 102.87 MHz; seeds 1 and 3 give
#: 103.37 and 100.04 for the same netlist. The cuts that got there from 82 MHz (docs/boards.md):
#: the job FIFOs' first flag from a register, the lane memory in width slices
#: one DP16KD deep (no multiplexer behind the block RAMs' outputs) with its
#: write selects from registers, registered "count is 0 / 1" flags in the AXI
#: master and the kernel, the master's port-0 command taken into a register,
#: burst "last" flags beside their lengths, the FIFOs' ready chosen by the
#: write, a one-hot router valid, the link's memory read registered, and the
#: lanes' job-stream ready from state registers.
#: Earlier rounds cut the master's read credit and data, the lanes' reads and
#: constant writes, the kernel's job checks and result-slot multiply and the
#: board memory's ports. Six and eight lanes fit the device but nextpnr's
#: router had not converged after ten minutes, beyond the 15-minute budget.
BOARD_DEFAULTS = dict(operand_bits=2048, word_bits=MONTMUL_ECP5_WORD_BITS, lanes=4,
                      window_bits=MODEXP_WINDOW_BITS, max_exp_bits=2048, mem_limbs=8192,
                      baud=ECP5_UART_BAUD, clock_mhz=ECP5_CLOCK_MHZ)
#: The board builds no TABLE_PRODUCT: a fixed-base table of Paillier-1024
#: (megabytes) cannot live in its 64 KiB of block RAM, so the driver sends
#: product jobs instead and the lanes keep no index memories.
BOARD_TABLE_MAX = 0

#: The board's AXI data width: one limb per beat, the width of BoardMem's port.
_DATA_BITS = LAYOUT.limb_bits


class BoardCore(wiring.Component):
    """Kernel + memory + link with a UART or a byte port (see the module docstring).

    Parameters
    ----------
    operand_bits, word_bits, lanes, window_bits, max_exp_bits
        The kernel's BatchEngine (:class:`hefl.hw.kernel.Kernel`).
    mem_limbs : int
        Board memory in limbs (a power of two).
    timeout_cycles : int
        Link timeout (a truncated request is answered after this quiet time).
    divisor : int, optional
        UART clock cycles per bit; required with ``phy="uart"``.
    phy : {"uart", "bytes"}
        ``uart``: ports ``rx``/``tx``. ``bytes``: valid/ready byte ports
        ``rx_data``/``rx_valid``/``rx_ready`` (in) and
        ``tx_data``/``tx_valid``/``tx_ready`` (out), for a simulation harness.
    engine : wiring.Component, optional
        Passed to the kernel (a prebuilt BatchEngine).
    table_max : int
        The kernel's ``table_max`` (:data:`BOARD_TABLE_MAX`: none).
    multiplier : callable, optional
        MontMul factory for the lanes, passed to the kernel.
    """

    def __init__(self, *, operand_bits, word_bits, lanes=1, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, mem_limbs=BOARD_DEFAULTS["mem_limbs"], timeout_cycles,
                 divisor=None, phy="uart", engine=None, max_burst=16, multiplier=None,
                 table_max=BOARD_TABLE_MAX):
        if phy not in ("uart", "bytes") or (phy == "uart" and divisor is None):
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise TypeError(f"PHY must be 'uart' (with a divisor: clock cycles per bit) or "
                            f"'bytes', not {phy!r} with divisor {divisor!r}")
        self._phy = phy
        self._divisor = divisor
        self.kernel = Kernel(operand_bits=operand_bits, word_bits=word_bits, lanes=lanes,
                             window_bits=window_bits, max_exp_bits=max_exp_bits,
                             data_bits=_DATA_BITS,
                             max_burst=max_burst, engine=engine, multiplier=multiplier,
                             table_max=table_max)
        self.mem = BoardMem(limbs=mem_limbs, id_bits=self.kernel.id_bits)
        self.link = Link(mem_limbs=mem_limbs, timeout_cycles=timeout_cycles,
                         max_len=min(0xFFFF, mem_limbs))
        members = {"clk": In(1), "rst": In(1), "leds": Out(8)}
        if phy == "uart":
            members.update({"rx": In(1, init=1), "tx": Out(1, init=1)})
        else:
            # Flat names (no "__"): Verilator mangles double underscores.
            members.update({"rx_data": In(8), "rx_valid": In(1), "rx_ready": Out(1),
                            "tx_data": Out(8), "tx_valid": Out(1), "tx_ready": In(1)})
        super().__init__(members)

    @property
    def hwcfg(self):
        """The kernel's hardware-configuration register values."""
        return self.kernel.hwcfg

    def elaborate(self, platform):
        m = Module()
        k, mem, link = self.kernel, self.mem, self.link
        # One clock. The kernel defines its own domain from its Vitis pins
        # (ap_clk, ap_rst_n); renamed, it is the same clock and reset as the
        # `sync` domain of everything else here.
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.clk), cd.rst.eq(self.rst),
                     k.ap_clk.eq(self.clk), k.ap_rst_n.eq(~self.rst)]
        m.submodules.kernel = DomainRenamer({"sync": "kernel"})(k)
        m.submodules.mem = mem
        m.submodules.link = link

        for n, d, _ in axi4_members(_DATA_BITS, id_bits=k.id_bits):
            port, inner = getattr(k, f"{REGMAP.memory_port}_{n}"), getattr(mem.axi, n)
            m.d.comb += inner.eq(port) if d == "out" else port.eq(inner)
        for n, d, _ in axil_members(REGMAP.addr_bits):
            port, inner = getattr(k, f"{REGMAP.control_port}_{n}"), getattr(link.axil, n)
            m.d.comb += port.eq(inner) if d == "in" else inner.eq(port)
        m.d.comb += [mem.req.eq(link.mem_req), mem.we.eq(link.mem_we),
                     mem.addr.eq(link.mem_addr), mem.wdata.eq(link.mem_wdata),
                     link.mem_ack.eq(mem.ack), link.mem_rdata.eq(mem.rdata)]

        framing = Signal()
        if self._phy == "uart":
            m.submodules.uart = uart = Uart(divisor=self._divisor)
            m.d.comb += [uart.rx.eq(self.rx), self.tx.eq(uart.tx), framing.eq(uart.errors != 0)]
            wiring.connect(m, uart.o_stream, link.i_stream)
            wiring.connect(m, link.o_stream, uart.i_stream)
        else:
            m.d.comb += [link.i_stream.payload.eq(self.rx_data),
                         link.i_stream.valid.eq(self.rx_valid), self.rx_ready.eq(link.i_stream.ready),
                         self.tx_data.eq(link.o_stream.payload),
                         self.tx_valid.eq(link.o_stream.valid), link.o_stream.ready.eq(self.tx_ready)]

        beat = Signal(26)
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.leds.eq(k.interrupt | ((link.errors != 0) << 1) | (framing << 2)
                                 | (beat[-1] << 7))
        return m


def pll_params(f_in_mhz, f_out_mhz):
    """EHXPLLL dividers for ``f_out`` from ``f_in``: ``(clki_div, clkfb_div, clkop_div)``.

    ``f_out = f_in · CLKFB_DIV / CLKI_DIV`` with the VCO ``f_out · CLKOP_DIV``
    in 400–800 MHz and the phase detector ``f_in / CLKI_DIV`` at least
    3.125 MHz (ECP5 family data sheet, sysCLOCK PLL timing). Exact solutions only.
    """
    best = None
    for clki in range(1, 129):
        pfd = f_in_mhz / clki
        if pfd < 3.125:
            break
        for fb in range(1, 81):
            if abs(pfd * fb - f_out_mhz) > 1e-9:
                continue
            for op in range(1, 129):
                vco = f_out_mhz * op
                if 400 <= vco <= 800:
                    cand = (clki, fb, op)
                    # Prefer a VCO near the middle of its range.
                    if best is None or abs(vco - 600) < abs(best[2] * f_out_mhz - 600):
                        best = cand
    if best is None:
        raise ValueError(f"No exact EHXPLLL setting makes {f_out_mhz} MHz from {f_in_mhz} MHz")
    return best


class ULX3STop(Elaboratable):
    """The bitstream's top for ``ULX3S_85F_Platform``: PLL, reset, pins, BoardCore."""

    def __init__(self, *, clock_mhz=ECP5_CLOCK_MHZ, baud=ECP5_UART_BAUD, timeout_ms=20, **core):
        self._clock_mhz = clock_mhz
        self._pll = pll_params(ULX3S_OSC_MHZ, clock_mhz)
        divisor = round(clock_mhz * 1e6 / baud)
        # The lanes' multipliers tiled from the ECP5's 18×18 blocks (four
        # MULT18X18D per 36×36 product) rather than the DSP48E2's 26×17.
        core.setdefault("multiplier", partial(MontMul, tile_bits=(ECP5_TILE_BITS, ECP5_TILE_BITS)))
        self.core = BoardCore(divisor=divisor, phy="uart",
                              timeout_cycles=int(clock_mhz * 1e3 * timeout_ms), **core)

    @property
    def clock_mhz(self):
        return self._clock_mhz

    def elaborate(self, platform):
        m = Module()
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        leds = []
        for i in range(8):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            leds.append(led)

        clk = Signal()
        locked = Signal()
        clki, fb, op = self._pll
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(ULX3S_OSC_MHZ), a_FREQUENCY_PIN_CLKOP=str(self._clock_mhz),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=clki, p_CLKFB_DIV=fb, p_CLKOP_DIV=op,
            p_CLKOP_CPHASE=op - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk25.i, i_CLKFB=clk, o_CLKOP=clk, o_LOCK=locked,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        )
        # No explicit constraint on `clk`: nextpnr derives the PLL output's
        # (CLKI's oscillator clock from the platform × CLKFB_DIV / CLKI_DIV) itself.

        # Reset held until the PLL has locked, released synchronously.
        m.domains.pll = cd = ClockDomain("pll", reset_less=True, local=True)
        m.d.comb += cd.clk.eq(clk)
        rst = Signal(3, init=0b111)
        m.d.pll += rst.eq((rst << 1) | ~locked)

        m.submodules.core = core = self.core
        m.d.comb += [core.clk.eq(ClockSignal("pll")), core.rst.eq(rst[-1]),
                     core.rx.eq(uart_rx.i), uart_tx.o.eq(core.tx)]
        for i, led in enumerate(leds):
            m.d.comb += led.o.eq(core.leds[i])
        return m
