"""Every width and size of the gateware, in one place (cf. OTBN's otbn_pkg).

Components take these as keyword parameters; tests, reports and the host
read them from here so no number is typed twice.
"""

__all__ = ["TILE_A_BITS", "TILE_B_BITS"]

#: Unsigned operand widths of one DSP48E2 multiplier tile (27×18 signed).
TILE_A_BITS = 26
TILE_B_BITS = 17
