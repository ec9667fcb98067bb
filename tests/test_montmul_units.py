"""Amaranth-simulator unit tests of the MontMul's small parts.

* :class:`MulPipe`: one product per cycle, exactly ``latency`` cycles later,
  for the DSP48E2 (26×17) and ECP5 (18×18) tilings, a one-tile and a
  many-tile case; random and extreme operands, back to back.
* :class:`MontMul` constructor checks and its published properties.
* :class:`MontMul` in its stream wrapper, in Amaranth's simulator at small
  widths: multiplies and squarings word for word against the bit-exact
  model, cycles against the schedule model, on a modulus where the top word
  of a squaring needs its extra bit.
"""

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hefl.golden.montgomery import mont_constants, to_words, words_for
from hefl.golden.montmul_hw import montmul_hw, mul_latency, op_timing
from hefl.hw.montmul import MontMul
from hefl.hw.montmul_stream import MontMulStream
from hefl.hw.mulpipe import MulPipe, tile_plan
from hefl.hw.params import (
    ECP5_TILE_BITS,
    MONTMUL_ECP5_WORD_BITS,
    MONTMUL_WORD_BITS,
    TILE_A_BITS,
    TILE_B_BITS,
)
from hefl.hw.regmap import LAYOUT

W = MONTMUL_WORD_BITS
TA, TB = DSP = (TILE_A_BITS, TILE_B_BITS)
ECP5 = (ECP5_TILE_BITS, ECP5_TILE_BITS)


# The two designs' words, one tile, the widest word (a limb), two tiles wide.
@pytest.mark.parametrize("w,ta,tb", [(W, *DSP), (MONTMUL_ECP5_WORD_BITS, *ECP5), (TB, *DSP),
                                     (LAYOUT.limb_bits, *DSP), (2 * TB, *DSP)])
def test_mulpipe_products(w, ta, tb, rng):
    # The MontMul's multiplier: (w + 1) × w, the row side holding 2·b_i.
    dut = MulPipe(a_bits=w + 1, b_bits=w, tile_a=ta, tile_b=tb)
    lat = dut.latency
    assert lat == mul_latency(w, ta, tb)
    top, top_a = (1 << w) - 1, (1 << (w + 1)) - 1
    vals = [(top_a, top), (0, top), (top_a, 0), (1, top), (top_a, 1), (1 << w, 1 << (w - 1)),
            (2 * top, top)]
    vals += [(rng.getrandbits(w + 1), rng.getrandbits(w)) for _ in range(60)]
    seen = []

    async def bench(ctx):
        for k in range(len(vals) + lat):
            a, b = vals[k] if k < len(vals) else (0, 0)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            src = k + 1 - lat   # input presented `lat` cycles ago
            if 0 <= src < len(vals):
                seen.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [a * b for a, b in vals]


def test_tile_plan_covers_operands():
    tiles, levels = tile_plan(W, W, TA, TB)
    assert len(tiles) == 6 and levels == 3
    # Every bit pair (i, j) of a × b is covered by exactly one tile.
    cover = {}
    for ao, aw, bo, bw in tiles:
        assert aw <= TA and bw <= TB
        for i in range(ao, ao + aw):
            for j in range(bo, bo + bw):
                cover[(i, j)] = cover.get((i, j), 0) + 1
    assert len(cover) == W * W and set(cover.values()) == {1}


def test_mulpipe_bad_params():
    with pytest.raises(TypeError, match="a_bits must be a positive integer"):
        MulPipe(a_bits=0, b_bits=8, tile_a=TA, tile_b=TB)
    with pytest.raises(TypeError):
        MulPipe(a_bits=8, b_bits=8.0, tile_a=TA, tile_b=TB)


def test_montmul_params():
    mm = MontMul(operand_bits=4096, word_bits=W)
    assert mm.words == words_for(4096, W) == 81
    assert mm.mul_latency == 5
    assert mm.timing == op_timing(81, 5)
    assert mm.timing_of("sqr") == op_timing(81, 5, "sqr")
    assert mm.timing.cycles_per_op == 81 * 163 + 3
    assert mm.chain_safe
    assert mm.addr_bits == (4 * 81 - 1).bit_length()
    assert mm.rd_data.shape().width == W and mm.wr_data.shape().width == W
    Fragment.get(mm, None)  # elaborates
    ms = MontMulStream(operand_bits=4096, word_bits=W)
    assert ms.timing == mm.timing
    assert ms.i_stream.payload.shape().size == 2 * W + 1      # a and b words, square
    assert ms.o_stream.payload.shape().size == W + 1          # result word and last
    Fragment.get(ms, None)
    with pytest.raises(TypeError, match="Word width"):
        MontMul(operand_bits=256, word_bits=0)
    with pytest.raises(TypeError, match="at most 64"):
        MontMul(operand_bits=256, word_bits=65)
    with pytest.raises(TypeError, match="Operand width"):
        MontMul(operand_bits="256", word_bits=W)
    with pytest.raises(ValueError, match="at least"):
        MontMul(operand_bits=64, word_bits=W)
    with pytest.raises(TypeError, match="Tile"):
        MontMul(operand_bits=256, word_bits=W, tile_bits=(TA,))
    with pytest.raises(TypeError, match="Address width"):
        MontMul(operand_bits=256, word_bits=W, addr_bits=0)
    with pytest.raises(TypeError, match="Hard multiplier"):
        MulPipe(a_bits=8, b_bits=8, tile_a=TA, tile_b=TB, hard_mult="xc7")
    with pytest.raises(TypeError, match="t RAM style"):
        MontMul(operand_bits=256, word_bits=W, t_ram_style="ultra")


def test_montmul_t_ram_style():
    """``t_ram_style`` reaches the t memory as its ``ram_style`` attribute (default: none)."""
    from amaranth.back import verilog
    block = verilog.convert(MontMul(operand_bits=256, word_bits=W, t_ram_style="block"),
                            name="mm", emit_src=False)
    plain = verilog.convert(MontMul(operand_bits=256, word_bits=W), name="mm", emit_src=False)
    assert 'ram_style = "block"' in block
    assert "ram_style" not in plain


def _run_stream(dut, n, ops):
    """Feed ``ops`` ((a, b, square), ...) back to back; return result words and cycles."""
    w, s = dut.word_bits, dut.words
    c = mont_constants(n, w, s)
    beats = [(x, y, sq, j == 0) for a, b, sq in ops
             for j, (x, y) in enumerate(zip(to_words(a, w, s), to_words(b, w, s)))]
    got, t_in, t_out = [], [], []

    async def bench(ctx):
        ctx.set(dut.nprime, c.nprime)
        for k, x in enumerate(to_words(n, w, s)):
            ctx.set(dut.n_wr_en, 1)
            ctx.set(dut.n_wr_addr, k)
            ctx.set(dut.n_wr_data, x)
            await ctx.tick()
        ctx.set(dut.n_wr_en, 0)
        ctx.set(dut.o_stream.ready, 1)
        cycle, words = 0, []
        while len(got) < len(ops):
            if beats:
                x, y, sq, _ = beats[0]
                ctx.set(dut.i_stream.payload, {"a": x, "b": y, "square": sq})
            ctx.set(dut.i_stream.valid, bool(beats))
            in_hs = beats and ctx.get(dut.i_stream.ready)
            if ctx.get(dut.o_stream.valid):
                words.append(ctx.get(dut.o_stream.payload.data))
                if ctx.get(dut.o_stream.payload.last):
                    got.append(words)
                    words = []
                    t_out.append(cycle)
            if in_hs:
                if beats.pop(0)[3]:
                    t_in.append(cycle)
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return c, got, t_in, t_out


@pytest.mark.parametrize("L,w,n", [
    (38, 8, 0x3FFFFFFEEF),            # s = 5, R just above 4N: a squaring's top word > 2^w
    (46, 8, None),                    # s = 6
    (94, 8, None),                    # s = 12
    (256, W, None),                   # s = 6, six DSP tiles
])
def test_montmul_stream_amaranth(rng, L, w, n):
    if n is None:
        n = rng.getrandbits(L) | 1 | (1 << (L - 1))
    dut = MontMulStream(operand_bits=L, word_bits=w)
    ops = [(0x7FFFFFFDDD, 0x7FFFFFFDDD, True)] if L == 38 else []
    for _ in range(6):
        sq = rng.random() < 0.5
        a = rng.choice([2 * n - 1, 0, 1, n - 1, rng.randrange(2 * n), rng.randrange(2 * n)])
        ops.append((a, a if sq else rng.randrange(2 * n), sq))
    c, got, t_in, t_out = _run_stream(dut, n, ops)
    for (a, b, sq), words in zip(ops, got):
        assert words == montmul_hw(a, b, c, mode="sqr" if sq else "mul").words, (a, b, sq)
    timing = {False: dut.timing, True: dut.timing_of("sqr")}
    assert t_out[0] - t_in[0] == timing[ops[0][2]].latency_cycles
    # Back to back: each result follows the previous one by the next op's cycles.
    for k in range(1, len(ops)):
        assert t_out[k] - t_out[k - 1] == timing[ops[k][2]].cycles_per_op


#: Behavioural model of the one MULT18X18D mode MulPipe instantiates (unsigned,
#: REG_INPUTA/B and REG_OUTPUT on CLK0, CE0 = 1, RST0 = 0): ``P = A·B`` two
#: cycles later (Lattice FPGA-TN-02205, sysDSP register stages).
_MULT18X18D_MODEL = """
module MULT18X18D(
  {ports});
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0;
  {decls}
  wire [17:0] a = {{{a}}};
  wire [17:0] b = {{{b}}};
  reg [17:0] ar = 0, br = 0;
  reg [35:0] pr = 0;
  always @(posedge CLK0) begin ar <= a; br <= b; pr <= ar * br; end
  assign {{{p}}} = pr;
endmodule
"""


def _mult18x18d_model():
    a = [f"A{i}" for i in range(18)]
    b = [f"B{i}" for i in range(18)]
    p = [f"P{i}" for i in range(36)]
    ports = ", ".join(a + b + p + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0"])
    decls = f"input {', '.join(a + b)};\n  output {', '.join(p)};"
    return _MULT18X18D_MODEL.format(ports=ports, decls=decls, a=", ".join(reversed(a)),
                                    b=", ".join(reversed(b)), p=", ".join(reversed(p)))


#: Verilog bench: both pipelines on the same random and extreme operands, one
#: pair per cycle, outputs compared every cycle once the pipelines are full.
_EQUIV_TB = """
module tb;
  reg clk = 0;
  reg [{wa}:0] a = 0;
  reg [{wb}:0] b = 0;
  wire [{wo}:0] og, ot;
  gold g(.clk(clk), .rst(1'b0), .a(a), .b(b), .o(og));
  gate t(.clk(clk), .rst(1'b0), .a(a), .b(b), .o(ot));
  reg [63:0] x = 64'h{seed:x};
  integer i, bad = 0;
  initial begin
    for (i = 0; i < 4000; i = i + 1) begin
      x = x * 64'd6364136223846793005 + 64'd1442695040888963407;
      a = (i % 7 == 0) ? {{{wa1}{{1'b1}}}} : {{x, x}};
      b = (i % 5 == 0) ? {{{wb1}{{1'b1}}}} : {{x[31:0], x}};
      #1 clk = 1; #1 clk = 0;
      if (i > 8 && og !== ot) bad = bad + 1;
    end
    if (bad == 0) $display("EQUIVALENT"); else $display("MISMATCH %0d", bad);
    $finish;
  end
endmodule
"""


@pytest.mark.sim
def test_mulpipe_ecp5_primitive_equivalent(tmp_path, seed):
    """The instantiated MULT18X18D pipeline gives the behavioural one's products, cycle for cycle.

    Verilator runs both on 4000 random and all-ones operand pairs, the
    primitive replaced by the model of its registered mode above.
    """
    import subprocess

    from amaranth.back import verilog

    from hefl.hw.params import MONTMUL_ECP5_WORD_BITS as we
    from hefl.sim.runner import verilator_path
    gold = MulPipe(a_bits=we + 1, b_bits=we, tile_a=ECP5_TILE_BITS, tile_b=ECP5_TILE_BITS)
    gate = MulPipe(a_bits=we + 1, b_bits=we, tile_a=ECP5_TILE_BITS, tile_b=ECP5_TILE_BITS,
                   hard_mult="ecp5")
    assert gate.hard_mult_for(None) == "ecp5" and gold.hard_mult_for(None) is None
    assert gold.latency == gate.latency
    (tmp_path / "gold.v").write_text(verilog.convert(gold, name="gold"))
    (tmp_path / "gate.v").write_text(verilog.convert(gate, name="gate"))
    (tmp_path / "model.v").write_text(_mult18x18d_model())
    (tmp_path / "tb.v").write_text(_EQUIV_TB.format(
        wa=we, wb=we - 1, wo=2 * we, wa1=we + 1, wb1=we, seed=seed & ((1 << 64) - 1) | 1))
    build = subprocess.run(
        [str(verilator_path()), "--binary", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style",
         "--top-module", "tb", "-Mdir", "obj", "-CFLAGS", "-std=c++20", "-MAKEFLAGS", "-j1",
         "tb.v", "gold.v", "gate.v", "model.v"],
        cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    run = subprocess.run([str(tmp_path / "obj" / "Vtb")], capture_output=True, text=True)
    assert "EQUIVALENT" in run.stdout, run.stdout[-1000:]
