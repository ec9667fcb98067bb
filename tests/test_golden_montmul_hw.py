"""The bit-accurate MontMul model against the specification and the generic CIOS.

``montmul_hw`` follows the gateware's slot order, 2-bit carries and
unsummed top word; it must agree with ``montmul_spec`` modulo N, stay below
2N, and equal the generic lazy CIOS of ``hefl.golden.cios`` exactly (both
compute the same quotient digits m_i). The schedule functions are checked
for the properties the hardware relies on.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.cios import cios_montmul
from hefl.golden.montgomery import mont_constants, montmul_spec, to_words, words_for
from hefl.golden.montmul_hw import (
    MEM_STAGES,
    OUT_FIFO_LATENCY,
    START_LATENCY,
    montmul_hw,
    mul_latency,
    op_timing,
    row_schedule,
)
from hefl.hw.params import (
    ECP5_TILE_BITS,
    MONTMUL_ECP5_WORD_BITS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)
from hefl.hw.regmap import LAYOUT

#: The design's word widths (DSP48E2 and ECP5 tilings) and the tiles.
W, WE = MONTMUL_WORD_BITS, MONTMUL_ECP5_WORD_BITS
TA, TB, TE = TILE_A_BITS, TILE_B_BITS, ECP5_TILE_BITS


def _check(a, b, c, latency=5):
    n = c.n
    tr = montmul_hw(a, b, c, latency=latency)
    assert tr.value < 2 * n
    assert tr.value % n == montmul_spec(a % n, b % n, n, c.r)
    assert tr.value == cios_montmul(a, b, c, final_subtract=False)[0]
    assert tr.words == to_words(tr.value, c.word_bits, c.words)
    assert tr.max_carry <= 2
    assert tr.mul_slots == 2 * c.words ** 2 + c.words
    return tr


@settings(max_examples=150, deadline=None)
@given(bits=st.integers(4, 700), w=st.sampled_from([8, 17, WE, W, 64]),
       latency=st.integers(2, 7), data=st.data())
def test_random_vs_spec(bits, w, latency, data):
    s = max(words_for(bits, w), 5)
    n = data.draw(st.integers(3, (1 << bits) - 1).map(lambda x: x | 1))
    c = mont_constants(n, w, s)
    a = data.draw(st.integers(0, 2 * n - 1))
    b = data.draw(st.integers(0, 2 * n - 1))
    _check(a, b, c, latency)


@pytest.mark.parametrize("bits,w", [(256, W), (1024, WE), (2048, W), (4096, W), (4096, 2 * TB)])
def test_corners(bits, w, rng):
    s = words_for(bits, w)
    top = w * ((bits - 1) // w)
    moduli = [(1 << bits) - 1, (1 << top) | rng.getrandbits(top) | 1,
              rng.getrandbits(bits) | 1 | (1 << (bits - 1)), 3]
    for n in moduli:
        c = mont_constants(n, w, s)
        r = c.r
        x = rng.randrange(2 * n)
        for a, b in [(0, 0), (0, n - 1), (1, 1), (n - 1, n - 1), (r % n, r % n), (x, x),
                     (2 * n - 1, 2 * n - 1), (n, n - 1), (r * r % n, x % n)]:
            _check(a, b, c)
        # Conversions: into the Montgomery domain and out again.
        y = rng.randrange(n)
        ym = montmul_hw(y, c.r2_mod_n, c).value
        assert ym % n == y * r % n
        assert montmul_hw(ym, 1, c).value % n == y


def test_max_carry_reached():
    """All-ones operands and modulus drive the 2-bit carry to its bound."""
    bits, w = 256, W
    s = words_for(bits, w)
    n = (1 << bits) - 1
    c = mont_constants(n, w, s)
    assert _check(2 * n - 1, 2 * n - 1, c).max_carry == 2


def test_bad_operands():
    c = mont_constants((1 << 255) + 19 * 2 + 1, W)
    with pytest.raises(OperandRangeError):
        montmul_hw(2 * c.n, 1, c)
    with pytest.raises(OperandRangeError):
        montmul_hw(-1, 1, c)
    tight = mont_constants((1 << 255) + 1, 64, 4)  # R = 2^256 < 4N
    with pytest.raises(ModulusError):
        montmul_hw(1, 1, tight)
    with pytest.raises(TypeError):
        montmul_hw(1, 1, 17)


@pytest.mark.parametrize("s,latency", [(5, 2), (6, 5), (11, 5), (13, 5), (29, 4), (81, 5), (121, 5)])
def test_row_schedule(s, latency):
    d = latency + MEM_STAGES
    row = row_schedule(s, latency)
    cyc = {k: i for i, k in enumerate(row) if k[0] != "-"}
    assert sorted(k for k in cyc if k[0] == "P1") == [("P1", j) for j in range(s)]
    assert sorted(k for k in cyc if k[0] == "P2") == [("P2", j) for j in range(s)]
    assert [k for k in cyc if k[0] == "M"] == [("M", 0)]
    # Words in order; m after t_0 is registered; pass 2 after m is registered.
    assert all(cyc[("P1", j)] < cyc[("P1", j + 1)] for j in range(s - 1))
    assert cyc[("M", 0)] >= cyc[("P1", 0)] + d + 2
    assert cyc[("P2", 0)] >= cyc[("M", 0)] + d + 1
    assert cyc[("P2", 0)] > cyc[("P1", s - 1)]
    # The sequencer is greedy: no idle cycle when none is forced.
    if s + 1 >= 2 * d + 3:
        assert len(row) == 2 * s + 1 and ("-", 0) not in row


def test_op_timing_4096():
    lat = mul_latency(W, TA, TB)
    assert lat == 5  # 6 tiles: input reg, tile reg, 3 adder levels
    s = words_for(4096, W)
    assert s == 81
    t = op_timing(s, lat)
    assert t.cycles_per_op == s * (2 * s + 1) == 13203
    assert t.mul_slots == t.cycles_per_op
    # Latency = load (s beats) + start + s rows + drain of the last row.
    assert t.latency_cycles == (s - 1) + START_LATENCY + t.cycles_per_op - 1 + (lat + MEM_STAGES) + 2 + OUT_FIFO_LATENCY
    assert t.first_out_cycles < t.latency_cycles


def test_mul_latency_tiles():
    assert mul_latency(WE, TE, TE) == 4   # 4 tiles: 2 levels
    assert mul_latency(TB, TA, TB) == 2   # one tile, no tree
    assert mul_latency(LAYOUT.limb_bits, TA, TB) == 6   # 3 × 4 = 12 tiles: 4 levels
