"""ModExp in Amaranth's simulator on the real MontMul, and the job model.

At tiny widths (w = 8; s = 5, the fewest words MontMul accepts, where each
MontMul waits for the previous result, and s = 10, where the next MontMul
starts as soon as the core has issued the previous one) so every job runs in
well under a second: results (the lane's accumulator, ``≡`` and ``< 2N``)
against ``pow``/plain products/table products,
cycle counts against the exact model
:func:`hefl.golden.batch.modexp_job_cycles`, the same cycles for different
exponent and base values (constant time, squaring mode on), and the typed
errors of the parameters and of the job encoders.
"""

import pytest
from _engine_sim import load_constants
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hefl.errors import OperandRangeError
from hefl.golden import batch as gb
from hefl.golden.modexp import modexp
from hefl.golden.montgomery import from_words, mont_constants, words_for
from hefl.hw.jobs import JobOp
from hefl.hw.modexp import ModExp, ecp5_slice_bits
from hefl.hw.montmul import MontMul
from hefl.hw.params import MONTMUL_MIN_WORDS

# The smallest lane the MontMul accepts at w = 8 (s = MONTMUL_MIN_WORDS words).
W, K, X = 8, 3, 70
L = W * MONTMUL_MIN_WORDS - 2


def run_jobs(dut, n, jobs):
    """Run ``jobs`` one at a time (input every cycle, output always ready).

    Returns a list of (value, cycles) with cycles from the first input
    handshake to the last output handshake.
    """
    w, s = dut.word_bits, dut.words
    c = mont_constants(n, w, s)
    out = []

    async def tb(ctx):
        await load_constants(ctx, dut, c)
        ctx.set(dut.o_stream.ready, 1)
        cycle = 0
        for job in jobs:
            first = None
            for i, word in enumerate(job.words):
                ctx.set(dut.i_stream.payload, {
                    "data": word, "first": i == 0, "last": i == len(job.words) - 1,
                    "op": JobOp(job.op), "tag": job.tag, "count": job.count})
                ctx.set(dut.i_stream.valid, 1)
                while True:
                    ready = ctx.get(dut.i_stream.ready)
                    await ctx.tick()
                    cycle += 1
                    if ready:
                        break
                if first is None:
                    first = cycle
            ctx.set(dut.i_stream.valid, 0)
            words = []
            while len(words) < s:
                valid = ctx.get(dut.o_stream.valid)
                data, tag = ctx.get(dut.o_stream.payload.data), ctx.get(dut.o_stream.payload.tag)
                await ctx.tick()
                cycle += 1
                if valid:
                    assert tag == job.tag
                    words.append(data)
                    last = cycle
            assert ctx.get(dut.idle)
            out.append((from_words(words, w), last - first))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


def _mm_latency(bits):
    mm = MontMul(operand_bits=bits, word_bits=W)
    Fragment.get(mm, None)          # elaborated only to read its timing
    return gb.montmul_tail_latency(mm.timing, words_for(bits, W)), mm.chain_safe


@pytest.mark.parametrize("bits,slice_bits", [(L, None), (2 * W * MONTMUL_MIN_WORDS - 2, None),
                                             (L, 3)], ids=["s5", "s10", "s5-sliced"])
def test_modexp_cycles_match_model_and_are_constant(rng, bits, slice_bits):
    """The ECP5 build's lane memory in width slices (3 + 3 + 2 bits here) behaves alike."""
    mm_tail, chain = _mm_latency(bits)
    assert chain == (bits != L)      # s = 5 waits for each result, s = 10 chains
    dut = ModExp(operand_bits=bits, word_bits=W, window_bits=K, max_exp_bits=X,
                 mem_slice_bits=slice_bits)
    assert dut.slice_bits_for(None) == (slice_bits or W)
    s = dut.words
    n = (1 << (bits - 1)) | rng.getrandbits(bits - 1) | 1
    kw = dict(word_bits=W, words=s)
    jobs = []
    for nb in (0, 1, 5, 33, X):
        mask = (1 << nb) - 1
        for base, e in ((0, 0), (n - 1, mask), (rng.randrange(n), rng.getrandbits(nb))):
            jobs.append(gb.powmod_job(base, e, nb, n, **kw))
    jobs.append(gb.mulmod_job(rng.randrange(n), n - 1, n, **kw))
    for k in (1, 2, 3, 5):
        jobs.append(gb.product_job([rng.randrange(n) for _ in range(k)], n, **kw))
        jobs.append(gb.product_job([0] * k, n, **kw))
        # Op 3: K − 1 Montgomery-form entries, then the plain factor.
        jobs.append(gb.table_product_job([rng.randrange(n) for _ in range(k - 1)],
                                         rng.randrange(n), n, **kw))
        jobs.append(gb.table_product_job([n - 1] * (k - 1), 0, n, **kw))
    jobs = [j._replace(tag=t) for t, j in enumerate(jobs)]
    out = run_jobs(dut, n, jobs)
    by_shape = {}
    for job, (value, cycles) in zip(jobs, out):
        # The lane sends its accumulator: ≡ the result, < 2N (≤ N after a
        # POWMOD's conversion out); the sub-engine's reducer makes it < N.
        bound = n + 1 if job.op == gb.POWMOD else 2 * n
        assert value % n == gb.expected_result(job, n) and value < bound, (job.op, job.count,
                                                                           job.operands)
        model = gb.modexp_job_cycles(job.op, job.count, words=s, word_bits=W,
                                     window_bits=K, mm_latency=mm_tail)
        assert cycles == model.total, (job.op, job.count, cycles, model.total)
        by_shape.setdefault((job.op, job.count), set()).add(cycles)
    assert all(len(c) == 1 for c in by_shape.values()), by_shape
    # A table product of K factors costs K − 1 MontMuls, a product 2K − 2.
    tp = gb.modexp_job_cycles(gb.TABLE_PRODUCT, 5, words=s, word_bits=W, window_bits=K,
                              mm_latency=mm_tail)
    pr = gb.modexp_job_cycles(gb.PRODUCT, 5, words=s, word_bits=W, window_bits=K,
                              mm_latency=mm_tail)
    assert (tp.montmuls, pr.montmuls) == (4, 8) and tp.total < pr.total


def test_lane_montmuls_follow_golden_schedule(rng):
    n = (1 << 61) | rng.getrandbits(61) | 1
    for bits in (0, 1, 4, 17, 64):
        e = rng.getrandbits(bits) if bits else 0
        for k in (1, 4, 5):
            ref = modexp(rng.randrange(n), e, n, k=k, exp_bits=bits)
            # The lane loads R mod N instead of computing it: one MontMul fewer.
            assert gb.lane_montmuls(gb.POWMOD, bits, k) == ref.modmuls - 1
    assert gb.lane_montmuls(gb.MULMOD, 2, 4) == 2
    assert gb.lane_montmuls(gb.PRODUCT, 7, 4) == 12
    assert gb.lane_montmuls(gb.TABLE_PRODUCT, 7, 4) == 6
    # Squarings: W·k in the windows and T[2] = T[1]².
    assert gb.lane_squarings(gb.POWMOD, 1024, 4) == 1025
    assert gb.lane_squarings(gb.PRODUCT, 7, 4) == 0


def test_job_op_values_match_golden():
    from amaranth.hdl import unsigned

    from hefl.hw.jobs import COUNT_BITS
    from hefl.hw.regmap import LAYOUT
    assert (JobOp.POWMOD.value, JobOp.MULMOD.value, JobOp.PRODUCT.value,
            JobOp.TABLE_PRODUCT.value) == (gb.POWMOD, gb.MULMOD, gb.PRODUCT, gb.TABLE_PRODUCT)
    assert LAYOUT.op("table_product") == 3
    # Both read the job header of the register map, the one source.
    assert [(op.name.lower(), op.value) for op in JobOp] == list(LAYOUT.ops)
    assert JobOp.as_shape() == unsigned(LAYOUT.job_field("op").width)
    assert gb.COUNT_BITS == COUNT_BITS == LAYOUT.job_field("count").width


def test_job_encoders_reject_bad_operands():
    n, kw = 1019, dict(word_bits=8, words=2)
    with pytest.raises(OperandRangeError):
        gb.powmod_job(n, 3, 4, n, **kw)               # base = N
    with pytest.raises(OperandRangeError):
        gb.powmod_job(2, 16, 4, n, **kw)              # exponent longer than declared
    with pytest.raises(OperandRangeError):
        gb.powmod_job(2, -1, 4, n, **kw)
    with pytest.raises(OperandRangeError):
        gb.powmod_job(2, 1, 1 << 16, n, **kw)         # count does not fit 16 bits
    with pytest.raises(OperandRangeError):
        gb.mulmod_job(1, -1, n, **kw)
    with pytest.raises(OperandRangeError):
        gb.product_job([], n, **kw)
    job = gb.powmod_job(5, 0b1011, 12, n, **kw)
    assert job.words == [5, 0, 0b1011, 0] and job.count == 12
    assert gb.expected_result(job, n) == pow(5, 11, n)
    with pytest.raises(OperandRangeError):
        gb.table_product_job([n], 1, n, **kw)         # entry = N
    job = gb.table_product_job([3, 7], 5, n, **kw)
    r = 1 << 16
    assert job.count == 3 and job.words[:2] == [3 * r % n & 255, 3 * r % n >> 8]
    assert gb.expected_result(job, n) == 3 * 7 * 5 % n


@pytest.mark.parametrize("kw,match", [
    (dict(operand_bits=0, word_bits=8), "Operand width"),
    (dict(operand_bits=64, word_bits=1), "Word width"),
    (dict(operand_bits=64, word_bits=8, window_bits=0), "Window width"),
    (dict(operand_bits=64, word_bits=8, window_bits=8), "Window width"),
    (dict(operand_bits=64, word_bits=8, max_exp_bits=1 << 16), "Maximum exponent"),
    (dict(operand_bits=64, word_bits=8, tag_bits=0), "Tag width"),
    (dict(operand_bits=64, word_bits=8, ram_style="lut"), "RAM style"),
    (dict(operand_bits=64, word_bits=8, mem_slice_bits=0), "slice width"),
])
def test_modexp_rejects_bad_parameters(kw, match):
    with pytest.raises(TypeError, match=match):
        ModExp(**kw)


@pytest.mark.parametrize("kw,match", [
    (dict(lanes=0), "Lane count"),
    (dict(lanes=2, fifo_depth=1), "FIFO depth"),
    (dict(lanes=1, word_bits=0), "Word width"),
])
def test_batch_engine_rejects_bad_parameters(kw, match):
    from hefl.hw.batch_engine import BatchEngine
    args = dict(operand_bits=64, word_bits=16, **{k: v for k, v in kw.items() if k != "word_bits"})
    if "word_bits" in kw:
        args["word_bits"] = kw["word_bits"]
    with pytest.raises(TypeError, match=match):
        BatchEngine(**args)


def test_u250_projection_arithmetic():
    from hefl.flows.report_modexp import U250, lut_equivalent, project_lanes
    per_lane = {"dsp48e2": 6, "lut_total": 2000, "ff": 2000, "bram36": 1.5, "uram": 0}
    lanes, binding, fits = project_lanes(per_lane)
    assert fits["dsp48e2"] == int(0.8 * U250["dsp48e2"]) // 6
    assert fits["lut"] == int(0.8 * U250["lut"] / 2000)
    assert fits["bram36"] == int(0.8 * U250["bram36"] / 1.5)
    assert "uram" not in fits                     # unused resources never bind
    assert (lanes, binding) == (min(fits.values()), "lut")
    # LUT-RAM primitives occupy LUTs: RAM32M16/RAM64M8 take 8 each.
    assert lut_equivalent({"RAM32M16": 3, "RAM64M8": 2, "LUT6": 100}) == 40


def test_ecp5_lane_memory_slices_fit_one_block_ram():
    """On ECP5 each slice is as wide as a DP16KD holds the memory's depth of."""
    class Ecp5:
        family = "ecp5"
    assert [ecp5_slice_bits(d) for d in (1, 512, 513, 1024, 1254, 2048, 2049, 8193)] == \
        [36, 36, 18, 18, 9, 9, 4, 1]
    board = ModExp(operand_bits=2048, word_bits=36, window_bits=4, max_exp_bits=2048)
    # (2^k + 5) slots of s words and the exponent words: 1,254, in 2,048 × 9 slices.
    s = words_for(2048, 36)
    assert board.mem_depth == (2 ** 4 + 5) * s + -(-2048 // 36) == 1254
    assert board.slice_bits_for(Ecp5()) == 9
    assert board.slice_bits_for(None) == 36
    assert ModExp(operand_bits=64, word_bits=8, mem_slice_bits=20).slice_bits_for(None) == 8
