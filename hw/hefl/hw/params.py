"""Every width and size of the gateware, in one place (cf. OTBN's otbn_pkg).

Components take these as keyword parameters; tests, reports and the host
read them from here so no number is typed twice. Other engineers append
their constants below the MontMul block.
"""

__all__ = [
    "TILE_A_BITS", "TILE_B_BITS",
    "ECP5_TILE_BITS",
    "MONTMUL_WORD_BITS", "MONTMUL_ECP5_WORD_BITS", "MONTMUL_MIN_WORDS",
    "MONTMUL_OPERAND_BITS",
    "ECP5_TARGET_MHZ",
    "SIM_OPERAND_BITS", "SIM_LANES", "SIM_WINDOW_BITS", "SIM_DATA_BITS",
]

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

#: Operand widths the MontMul is verified at.
MONTMUL_OPERAND_BITS = (256, 1024, 2048, 4096)

#: Clock the ECP5 board configuration must close timing at.
ECP5_TARGET_MHZ = 100

# --- simulated device (the `sim` backend, hefl.accel.sim) --------------------

#: Operand widths of the simulated kernels; the sim backend builds, on first
#: use, the smallest one that holds a modulus (every modulus is padded to the
#: kernel's width, so a right-sized kernel simulates faster). 4096 covers
#: Paillier with 2048-bit keys (n² of 4096 bits).
SIM_OPERAND_BITS = (256, 512, 1024, 2048, 4096)
#: BatchEngine lanes of the simulated kernels.
SIM_LANES = 2
#: Modexp window of the simulated kernels.
SIM_WINDOW_BITS = 4
#: m_axi_gmem width in simulation (512 on Alveo; 64 keeps the model small).
SIM_DATA_BITS = 64

# --- ModExp / BatchEngine ---------------------------------------------------
__all__ += ["MODEXP_WINDOW_BITS", "JOB_COUNT_BITS"]

#: Default ModExp window width k (docs/design.md §1.4: 4 or 5): a table of 2^k entries.
MODEXP_WINDOW_BITS = 4
#: Width of the ``count`` field of a job's first beat (declared exponent bits / K).
JOB_COUNT_BITS = 16
