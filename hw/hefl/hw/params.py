"""Every width, size and clock of the gateware, in one place (cf. OTBN's otbn_pkg).

Components take these as keyword parameters; tests, reports, flows and the
host read them from here so no number is typed twice. The buffer and job
formats (limb width, job-header fields, op codes) are data of the register
map, :data:`hefl.hw.regmap.LAYOUT`; what is derived from them here says so.

Pure data, like :mod:`hefl.hw.regmap`: no Amaranth import, so the host and
the golden models may read it.
"""

from hefl.hw.regmap import LAYOUT

__all__ = [
    # MontMul
    "TILE_A_BITS", "TILE_B_BITS", "ECP5_TILE_BITS",
    "MONTMUL_WORD_BITS", "MONTMUL_ECP5_WORD_BITS", "MONTMUL_MIN_WORDS",
    # ModExp / BatchEngine
    "MODEXP_WINDOW_BITS", "ENGINE_TREE_FAN", "CARD_TABLE_WINDOW_BITS",
    # kernel on an Alveo card
    "ALVEO_DATA_BITS", "ALVEO_CLOCK_MHZ", "ALVEO_LANE_RAM_STYLE", "ALVEO_T_RAM_STYLE",
    # ECP5 board
    "ULX3S_OSC_MHZ", "ECP5_CLOCK_MHZ", "ECP5_NEXTPNR_SEED", "ECP5_MONTMUL_TARGET_MHZ", "ECP5_UART_BAUD",
    # simulated device
    "SIM_OPERAND_BITS", "SIM_LANES", "SIM_WINDOW_BITS", "SIM_DATA_BITS",
]

# --- MontMul -----------------------------------------------------------------

#: Unsigned operand widths of one DSP48E2 multiplier tile (27×18 signed).
TILE_A_BITS = 26
TILE_B_BITS = 17

#: Unsigned operand width of one ECP5 MULT18X18D tile (18×18).
ECP5_TILE_BITS = 18

#: Default MontMul word width for DSP48E2: 51 = 2 × 26 (−1) by 3 × 17, six tiles.
MONTMUL_WORD_BITS = 51
#: MontMul word width for the ECP5 board: 36 = 2 × 18 by 2 × 18, four MULT18X18D.
MONTMUL_ECP5_WORD_BITS = 36
#: Fewest words a MontMul accepts: the t-memory read of row i+1 must not
#: overtake the write of row i (see hefl.hw.montmul, "Hazards").
MONTMUL_MIN_WORDS = 5

# --- ModExp / BatchEngine ----------------------------------------------------

#: Default ModExp window width k (docs/design.md §1.4: 4 or 5): a table of 2^k entries.
MODEXP_WINDOW_BITS = 4
#: Window k of the fixed-base tables the device driver uploads to a card for
#: TABLE_PRODUCT jobs: 2^k entries per row, ceil(B/k) rows, so a 512-bit
#: exponent (Paillier-1024's short DJN exponent) is 64 entries, 64 MontMuls.
CARD_TABLE_WINDOW_BITS = 8
#: Fan-out of the BatchEngine's dispatcher and arbiter trees and of its
#: constant broadcast: no node drives more than this many lanes or nodes.
ENGINE_TREE_FAN = 4
# The job header's fields (op, tag, count) and the op codes are
# LAYOUT.job_fields and LAYOUT.ops; hefl.hw.jobs builds the stream from them.

# --- kernel on an Alveo card ---------------------------------------------------

#: ``m_axi_gmem`` width on Alveo: the DDR controllers' 512-bit AXI ports.
ALVEO_DATA_BITS = 512
#: Kernel clock asked of v++ (``kernel_frequency``) and assumed by the U250
#: projection of ``hefl hw-report`` (no place and route has shown it).
ALVEO_CLOCK_MHZ = 300
#: Where the card's lanes keep their memories (``BatchEngine(lane_ram_style=,
#: t_ram_style=)``; ``hefl alveo`` builds and ``hefl hw-report`` projects
#: this configuration). Each lane's table and operands (902 words at
#: Paillier-1024) fill one UltraRAM, which leaves the block RAM for the job
#: FIFO and the MontMul accumulator (otherwise 64 LUTs of LUT-RAM per lane).
ALVEO_LANE_RAM_STYLE = "ultra"
ALVEO_T_RAM_STYLE = "block"

# --- ECP5 board (ULX3S 85F) ----------------------------------------------------

#: The ULX3S oscillator (pin G2, ``clk25``) the PLL multiplies.
ULX3S_OSC_MHZ = 25
#: Board clock, the PLL output: what ``make bitstream`` builds and must close
#: timing at (the measurements behind it: hefl.hw.ecp5_top.BOARD_DEFAULTS).
ECP5_CLOCK_MHZ = 100
#: nextpnr placement seed of ``make bitstream``. nextpnr's result moves by
#: several MHz with the seed for one netlist (this round's final netlist at
#: 100 MHz: seeds 1, 2, 3 give 103.4, 102.9, 100.0 MHz; docs/boards.md);
#: ``hefl bitstream --seed`` picks another.
ECP5_NEXTPNR_SEED = 2
#: Fmax ``hefl hw-report`` asks of the board's MontMul synthesised alone
#: (yosys + nextpnr, no kernel around it); not the board clock.
ECP5_MONTMUL_TARGET_MHZ = 100
#: UART rate of the board's link (the FTDI port).
ECP5_UART_BAUD = 1_000_000

# --- simulated device (the `sim` backend, hefl.accel.sim) ----------------------

#: Operand widths of the simulated kernels; the sim backend builds, on first
#: use, the smallest one that holds a modulus (every modulus is padded to the
#: kernel's width, so a right-sized kernel simulates faster). 4096 covers
#: Paillier with 2048-bit keys (n² of 4096 bits).
SIM_OPERAND_BITS = (256, 512, 1024, 2048, 4096)
#: BatchEngine lanes of the simulated kernels.
SIM_LANES = 2
#: Modexp window of the simulated kernels.
SIM_WINDOW_BITS = MODEXP_WINDOW_BITS
#: m_axi_gmem width in simulation: one limb per beat, the narrowest bus the
#: kernel takes (:data:`ALVEO_DATA_BITS` on a card), which keeps the model small.
SIM_DATA_BITS = LAYOUT.limb_bits
