"""The bit-accurate MontMul model against the specification and the generic CIOS.

``montmul_hw`` follows the gateware's words, carries and unsummed top word
in its three modes; it must agree with ``montmul_spec`` modulo N, stay below
2N, respect the documented carry and top-word bounds, and (multiply mode)
equal the generic lazy CIOS of ``hefl.golden.cios`` exactly (both compute
the same quotient digits m_i; a squaring's partial sums differ, so its digits
and its result may differ by N). The schedule is checked for the properties
the hardware relies on: every slot once, the data dependencies, the t-memory
hazards, and the cycle counts.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hefl.errors import ModulusError, OperandRangeError
from hefl.golden.cios import cios_montmul
from hefl.golden.montgomery import mont_constants, montmul_spec, to_words, words_for
from hefl.golden.montmul_hw import (
    MEM_STAGES,
    MUL,
    ONE,
    OUT_FIFO_LATENCY,
    SQR,
    START_LATENCY,
    hold_cycles,
    montmul_hw,
    mul_latency,
    op_schedule,
    op_timing,
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


def _check(a, b, c):
    """Multiply, and square both operands: spec, bounds, and CIOS for the multiply."""
    n, w, s = c.n, c.word_bits, c.words
    tr = montmul_hw(a, b, c)
    assert tr.value < 2 * n
    assert tr.value % n == montmul_spec(a % n, b % n, n, c.r)
    assert tr.value == cios_montmul(a, b, c, final_subtract=False)[0]
    assert tr.words == to_words(tr.value, w, s)
    assert tr.max_carry <= 2 and tr.max_top_carry <= 2 and tr.max_tlast < 1 << w
    assert tr.mul_slots == 2 * s * s + s
    for x in (a, b):
        sq = montmul_hw(x, x, c, mode=SQR)
        assert sq.value < 2 * n
        assert sq.value % n == montmul_spec(x % n, x % n, n, c.r)
        assert sq.words == to_words(sq.value, w, s)
        # The documented bounds: c ≤ 3, T.c ≤ 4, top word below 1.25·2^w.
        assert sq.max_carry <= 3 and sq.max_top_carry <= 4 and 4 * sq.max_tlast < 5 << w
        assert sq.mul_slots == s * (s + 1) // 2 + s * s + s
    one = montmul_hw(1, b, c, mode=ONE)
    assert one.value <= n and one.value % n == b * pow(c.r, -1, n) % n
    return tr


@settings(max_examples=150, deadline=None)
@given(bits=st.integers(4, 700), w=st.sampled_from([8, 17, WE, W, 64]), data=st.data())
def test_random_vs_spec(bits, w, data):
    s = max(words_for(bits, w), 5)
    n = data.draw(st.integers(3, (1 << bits) - 1).map(lambda x: x | 1))
    c = mont_constants(n, w, s)
    a = data.draw(st.integers(0, 2 * n - 1))
    b = data.draw(st.integers(0, 2 * n - 1))
    _check(a, b, c)


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
        assert montmul_hw(1, ym, c, mode=ONE).value % n == y


def test_max_carry_reached():
    """All-ones operands and modulus drive the carries to their bounds.

    At ``R = 4·2^L`` exactly (L = 38, w = 8, s = 5) a squaring of an operand
    near ``2N`` pushes the top word past ``2^w`` (it needs its ``w + 1``-th
    bit), to 319 of its bound 1.25·2^8 = 320, and ``T.c`` to 3 (found by a
    random search; the hardware is sized for the proven bounds).
    """
    bits, w = 256, W
    s = words_for(bits, w)
    n = (1 << bits) - 1
    c = mont_constants(n, w, s)
    assert _check(2 * n - 1, 2 * n - 1, c).max_carry == 2
    tight = mont_constants(0x3FFFFFFEEF, 8, 5)
    assert tight.r > 4 * tight.n and tight.r < 4 * tight.n + (1 << 12)
    a = 0x7FFFFFFDDD
    sq = montmul_hw(a, a, tight, mode=SQR)
    assert sq.max_tlast == 319 and sq.max_top_carry == 3 and sq.max_carry <= 3


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
    with pytest.raises(OperandRangeError):
        montmul_hw(1, 2, c, mode=SQR)          # a squaring needs a = b
    with pytest.raises(OperandRangeError):
        montmul_hw(2, 2, c, mode=ONE)          # mode one streams a = 1
    with pytest.raises(ValueError):
        montmul_hw(1, 1, c, mode="cube")


def _slot_cycles(sch):
    return {(kind, r, j): c for c, kind, r, j in sch.slots}


@pytest.mark.parametrize("mode", [MUL, SQR, ONE])
@pytest.mark.parametrize("s,latency", [(5, 2), (6, 5), (11, 5), (13, 5), (29, 4), (41, 5), (81, 5)])
def test_op_schedule(s, latency, mode):
    d = latency + MEM_STAGES
    sch = op_schedule(s, latency, mode)
    cyc = _slot_cycles(sch)
    assert len(cyc) == len(sch.slots)                  # no slot twice
    assert [c for c, *_ in sch.slots] == sorted({c for c, *_ in sch.slots})  # one per cycle
    assert cyc[("B", 0, 0)] == 1
    p2_end = None
    for r in range(s):
        j0 = r if mode == SQR else 0
        p1 = [cyc[("P1", r, j)] for j in range(j0, s)]
        p2 = [cyc[("P2", r, j)] for j in range(s)]
        mm = cyc[("M", r, 0)]
        assert sorted(k for k in cyc if k[0] == "P1" and k[1] == r) == \
            [("P1", r, j) for j in range(j0, s)]
        assert p1 == sorted(p1) and p2 == sorted(p2)
        assert p1[0] >= cyc[("B", 0, 0)] + 2                   # b_0 in the row register
        # m after t_0 is registered (pass-1 step 0, or the previous row's pass-2 step 1).
        src = cyc[("P1", r, 0)] if j0 == 0 else cyc[("P2", r - 1, 1)]
        assert mm >= src + d + 2
        assert p2[0] >= mm + d + 1 and p2[0] > p1[-1]          # pass 2 after m and pass 1
        if p2_end is not None:
            # t-memory hazard: pass-1 reads after the writes of the previous row's pass 2.
            for j in range(j0, s - 1):
                assert cyc[("P1", r, j)] + d - 2 > cyc[("P2", r - 1, j + 1)] + d + 2
            assert cyc[("P1", r, s - 1)] + d - 2 > p2_end + d + 3  # tail written to t memory
            assert cyc[("P1", r, j0)] >= p2_end + 1 + hold_cycles(s, mode, r)
        p2_end = p2[-1]
    assert sch.last_issue == p2_end
    assert sch.done == p2_end + d + 3              # the tail, through the result register
    # One t-memory write port: pass-1 steps j ≥ 1, pass-2 steps j ≥ 1 and the
    # tails never write in the same cycle (pass-1 step 0 writes no word).
    writes = [c + d + 2 for c, kind, r, j in sch.slots if kind in ("P1", "P2") and j >= 1]
    writes += [cyc[("P2", r, s - 1)] + d + 3 for r in range(s)]
    assert len(writes) == len(set(writes))
    assert sch.first_write == cyc[("P2", s - 1, 1)] + d + 2


@pytest.mark.parametrize("s,latency", [(18, 5), (29, 4), (41, 5), (81, 5), (121, 5), (57, 5)])
def test_op_schedule_no_idle(s, latency):
    """s ≥ 2D + 2: a multiply has no idle slot; a squaring only waits in its last rows."""
    d = latency + MEM_STAGES
    assert s >= 2 * d + 2
    mul = op_schedule(s, latency, MUL)
    # B, one idle cycle, then s rows of 2s + 1 slots back to back.
    assert mul.last_issue == 2 + s * (2 * s + 1)
    sqr = op_schedule(s, latency, SQR)
    slots = s * (s + 1) // 2 + s * s + s
    waits = sqr.last_issue - 2 - slots
    # Rows whose pass 1 is shorter than the m latency wait for m: sum of d - (s - r).
    assert waits == sum(d - k for k in range(1, d)) == d * (d - 1) // 2


def test_op_timing_4096():
    lat = mul_latency(W, TA, TB)
    assert lat == 5  # 6 tiles: input reg, tile reg, 3 adder levels
    s = words_for(4096, W)
    assert s == 81
    t = op_timing(s, lat)
    assert t.cycles_per_op == t.issue_cycles == s * (2 * s + 1) + 3 == 13206
    assert t.mul_slots == s * (2 * s + 1)
    d = lat + MEM_STAGES
    assert t.done_cycles == t.issue_cycles - 1 + d + 3
    # Latency = load (s beats) + start + the op + the FIFO.
    assert t.latency_cycles == (s - 1) + START_LATENCY + t.done_cycles + OUT_FIFO_LATENCY
    assert t.first_out_cycles < t.latency_cycles
    sq = op_timing(s, lat, SQR)
    assert sq.mul_slots == s * (s + 1) // 2 + s * s + s
    assert sq.cycles_per_op == sq.mul_slots + 3 + d * (d - 1) // 2


def test_mul_latency_tiles():
    # The row side is w + 1 bits (the doubled row word of a squaring).
    assert mul_latency(W, TA, TB) == 5    # 52 × 51: still 2 × 3 tiles
    assert mul_latency(WE, TE, TE) == 5   # 37 × 36: 3 × 2 tiles (one a 1-bit chunk)
    assert mul_latency(TB, TA, TB) == 2   # one tile, no tree
    assert mul_latency(LAYOUT.limb_bits, TA, TB) == 6   # 3 × 4 = 12 tiles: 4 levels
