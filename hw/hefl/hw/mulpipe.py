"""Tiled, fully pipelined unsigned multiplier (one product per cycle).

Algorithm
---------
``a`` (``a_bits``) is cut into chunks of ``tile_a`` bits and ``b`` into chunks
of ``tile_b`` bits (least significant first; the top chunk may be narrower).
Every chunk pair is one tile product ``a_x · b_y`` of at most
``tile_a × tile_b`` bits, which yosys maps to exactly one hard multiplier
(26×17 → one DSP48E2, 18×18 → one ECP5 MULT18X18D). The tile products,
each with its weight ``2^(tile_a·x + tile_b·y)``, are then summed by a binary
tree of registered two-input adders, pairing neighbours in weight order so
that each adder is only as wide as the partial sum it holds.

Schedule (``latency`` = 2 + ceil(log2(tiles)) cycles, no stall, no enable)::

    cycle c      a, b presented
    cycle c+1    a, b registered (DSP A/B registers)
    cycle c+2    tile products registered (DSP M/P registers)
    cycle c+2+k  adder-tree level k registered
    cycle c+latency   o = a · b

The pipeline has no valid or enable: callers that need one delay their
control by :attr:`MulPipe.latency` cycles (as MontMul does).

Hard multipliers. yosys maps each tile's ``*`` to one DSP48E2, but its
register and post-adder packing (``xilinx_dsp``) runs for 7-series only: for
``-family xcup`` (yosys 0.70) the input and product registers stay fabric
flip-flops in its counts, and no adder of the tree moves into a DSP (Vivado's
DSP inference folds such registers in; not run here). Its ECP5 flow does
not fold them either (the MULT18X18D stays combinational, ~3.9 ns between
two fabric registers, which capped the MontMul at ~131 MHz). With ``hard_mult="ecp5"`` (chosen
automatically when elaborated for an ECP5 platform with 18×18 tiles), each
full 18×18 tile is an instantiated MULT18X18D with ``REG_INPUTA/B`` and
``REG_OUTPUT`` on the clock: the same two cycles, the registers inside the
block. Narrower tiles (the 1-bit chunk of a 37-bit operand) stay soft. The
primitive has no simulation model here: simulation always uses the
behavioural form, and ``tests/test_montmul_units.py`` proves the two equal
with yosys on a model of the registered primitive. Widths: 51×51 with
26×17 tiles is 2×3 = 6 tiles (98 % of the tile area used), latency 5; 36×36
with 18×18 tiles is 4 tiles, latency 4.
"""

from amaranth import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MulPipe", "tile_plan", "HARD_MULTS"]

#: ``hard_mult`` values: ``None`` (behavioural ``*``, inferred by synthesis;
#: the default, and what simulation runs) or ``"ecp5"`` (each 18×18 tile an
#: instantiated MULT18X18D with its input and output registers, for synthesis).
HARD_MULTS = (None, "ecp5")

#: The ECP5 primitive's unsigned operand width.
_ECP5_TILE = 18


def _check_width(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


def _chunks(bits, tile):
    """``[(offset, width), ...]`` covering ``bits`` with ``tile``-bit chunks."""
    return [(o, min(tile, bits - o)) for o in range(0, bits, tile)]


def tile_plan(a_bits, b_bits, tile_a, tile_b):
    """The tiles and the adder tree of an ``a_bits × b_bits`` multiplier.

    Returns
    -------
    tiles : list of (a_offset, a_width, b_offset, b_width)
    levels : int
        Number of registered adder-tree levels (``ceil(log2(len(tiles)))``).
    """
    tiles = [(ao, aw, bo, bw) for ao, aw in _chunks(a_bits, tile_a)
             for bo, bw in _chunks(b_bits, tile_b)]
    levels = (len(tiles) - 1).bit_length()
    return tiles, levels


class MulPipe(wiring.Component):
    """``o = a · b``, ``latency`` cycles after ``a``, ``b`` are presented.

    Parameters
    ----------
    a_bits, b_bits : int
        Unsigned operand widths.
    tile_a, tile_b : int
        Widths of one hard-multiplier tile (see :mod:`hefl.hw.params`).

    Attributes
    ----------
    a : In(a_bits)
    b : In(b_bits)
    o : Out(a_bits + b_bits)
    """

    def __init__(self, *, a_bits, b_bits, tile_a, tile_b, hard_mult=None):
        try:
            for name, v in (("a_bits", a_bits), ("b_bits", b_bits),
                            ("tile_a", tile_a), ("tile_b", tile_b)):
                _check_width(name, v)
            if hard_mult not in HARD_MULTS:
                raise TypeError(f"Hard multiplier must be one of {HARD_MULTS}, not {hard_mult!r}")
        except TypeError:
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise
        self._a_bits, self._b_bits = a_bits, b_bits
        self._tile_a, self._tile_b = tile_a, tile_b
        self._tiles, self._levels = tile_plan(a_bits, b_bits, tile_a, tile_b)
        self._hard = hard_mult
        super().__init__({"a": In(a_bits), "b": In(b_bits), "o": Out(a_bits + b_bits)})

    @property
    def a_bits(self):
        return self._a_bits

    @property
    def b_bits(self):
        return self._b_bits

    @property
    def tiles(self):
        """Number of hard-multiplier tiles."""
        return len(self._tiles)

    @property
    def latency(self):
        """Cycles from ``a``, ``b`` presented to ``o`` valid."""
        return 2 + self._levels

    def hard_mult_for(self, platform):
        """The hard multiplier used when elaborated for ``platform``."""
        if self._hard is not None:
            return self._hard
        if (getattr(platform, "family", None) == "ecp5"
                and (self._tile_a, self._tile_b) == (_ECP5_TILE, _ECP5_TILE)):
            return "ecp5"
        return None

    def elaborate(self, platform):
        m = Module()
        hard = self.hard_mult_for(platform)
        ra = Signal(self._a_bits)
        rb = Signal(self._b_bits)
        m.d.sync += [ra.eq(self.a), rb.eq(self.b)]

        # items: (signal, weight exponent, upper bound of its value)
        items = []
        for k, (ao, aw, bo, bw) in enumerate(self._tiles):
            p = Signal(aw + bw, name=f"tile{k}")
            if hard == "ecp5" and (aw, bw) == (_ECP5_TILE, _ECP5_TILE):
                m.submodules[f"dsp{k}"] = _mult18x18d(self.a[ao:ao + aw], self.b[bo:bo + bw], p)
            else:
                # One `*` per tile on registered chunks: one hard multiplier
                # each (its registers fold in where the tool packs them).
                m.d.sync += p.eq(ra[ao:ao + aw] * rb[bo:bo + bw])
            items.append((p, ao + bo, ((1 << aw) - 1) * ((1 << bw) - 1)))

        for level in range(self._levels):
            items.sort(key=lambda it: it[1])
            nxt = []
            for k in range(0, len(items) - 1, 2):
                (x, sx, mx), (y, sy, my) = items[k], items[k + 1]
                bound = mx + (my << (sy - sx))
                s = Signal(bound.bit_length(), name=f"sum{level}_{k // 2}")
                m.d.sync += s.eq(x + (y << (sy - sx)))
                nxt.append((s, sx, bound))
            if len(items) % 2:
                x, sx, mx = items[-1]
                r = Signal(len(x), name=f"pass{level}")
                m.d.sync += r.eq(x)
                nxt.append((r, sx, mx))
            items = nxt

        (res, shift, _), = items
        m.d.comb += self.o.eq(res << shift)
        return m


def _mult18x18d(a, b, p):
    """An unsigned ECP5 MULT18X18D: ``p = a · b`` two cycles later (input and output registers)."""
    ports = {f"i_A{i}": a[i] for i in range(_ECP5_TILE)}
    ports.update({f"i_B{i}": b[i] for i in range(_ECP5_TILE)})
    ports.update({f"o_P{i}": p[i] for i in range(2 * _ECP5_TILE)})
    return Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_GSR="DISABLED", p_RESETMODE="SYNC",
        i_SIGNEDA=0, i_SIGNEDB=0, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0,
        **ports)
