"""cocotb 2.x testbench of the MontMul core on Verilator, inside its stream wrapper.

The DUT is :class:`hefl.hw.montmul_stream.MontMulStream` (the core
:class:`hefl.hw.montmul.MontMul` with operand banks and a result FIFO). Run
by ``tests/test_montmul_cocotb.py`` through :func:`hefl.sim.runner.run_cocotb`.
Knobs (environment, set by the runner):

``MM_L``, ``MM_W``        operand and word width the Verilog was built for
``MM_TILE_A``, ``MM_TILE_B``  multiplier tile widths (set the pipeline latency)
``MM_OPS``                random operations per modulus (default 6)
``MM_SQUARE``             probability that a random operation is a squaring (default 0.4)
``MM_MODULI``             random moduli (default 2)
``MM_IDLE``, ``MM_BP``    probability of an idle input cycle / of ``ready = 0``
``HEFL_SEED``             the seed (printed by pytest; logged here)

The TB class owns the clock, reset, an input driver with random idle cycles,
an output monitor with random backpressure, and a scoreboard that checks
each result word-for-word against :func:`hefl.golden.montmul_hw.montmul_hw`
(in the operation's mode: multiply or squaring) and, independently, against
:func:`hefl.golden.montgomery.montmul_spec` (``≡ a·b·R⁻¹ mod N`` and
``< 2N``). The timing test measures latency and steady-state cycles per
operation in both modes and checks them against
:func:`hefl.golden.montmul_hw.op_timing`; they are written to the run's
report for ``hefl hw-report``.
"""

import os
import random
from collections import deque

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, ReadOnly, RisingEdge, with_timeout

from hefl.golden.montgomery import (
    from_words,
    mont_constants,
    montmul_spec,
    to_words,
    words_for,
)
from hefl.golden.montmul_hw import MUL, SQR, montmul_hw, mul_latency, op_timing
from hefl.hw.params import TILE_A_BITS, TILE_B_BITS
from hefl.sim.runner import tb_start, write_tb_report

CLK_NS = 10


def _knob(name, default, cast=int):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


class MontMulTB:
    """Drivers, monitor, model and scoreboard around one MontMul instance."""

    def __init__(self, dut):
        self.dut = dut
        self.L = _knob("MM_L", None)
        self.w = _knob("MM_W", None)
        self.s = words_for(self.L, self.w)
        self.latency = mul_latency(self.w, _knob("MM_TILE_A", TILE_A_BITS),
                                   _knob("MM_TILE_B", TILE_B_BITS))
        self.timing = op_timing(self.s, self.latency, MUL)
        self.timing_sqr = op_timing(self.s, self.latency, SQR)
        seed = _knob("HEFL_SEED", random.getrandbits(32))
        self.rng = random.Random(f"{seed}:{self.L}:{self.w}")
        dut._log.info("MontMul TB: L=%d w=%d s=%d P=%d seed=%d",
                      self.L, self.w, self.s, self.latency, seed)
        self.idle_prob = 0.0
        self.bp_prob = 0.0
        self.inputs = deque()      # (a, b, square) waiting to be driven
        self.expected = deque()    # (a, b, square, consts) in issue order
        self.in_first = []         # cycle of each op's first input beat
        self.out_first = []        # cycle of each result's first beat
        self.out_last = []         # cycle of each result's last beat
        self.checked = 0
        self.errors = []
        self._wake = Event()
        self._all_done = Event()
        self.n_expected = 0
        self.consts = None

    # --- clock, reset, modulus -------------------------------------------
    async def start(self):
        await tb_start(self.dut, clk_ns=CLK_NS, idle_inputs=("i_stream__valid", "o_stream__ready", "n_wr_en"))
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._monitor())

    @property
    def cycle(self):
        """Index of the current clock cycle (rising edges every CLK_NS)."""
        return int(get_sim_time(unit="ns")) // CLK_NS

    async def wait_idle(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            if int(self.dut.idle.value) and not self.inputs:
                return

    async def load_modulus(self, n):
        """Write N and N' (the core must be idle)."""
        await self.wait_idle()
        await RisingEdge(self.dut.clk)
        self.consts = mont_constants(n, self.w, self.s)
        d = self.dut
        d.nprime.value = self.consts.nprime
        for k, x in enumerate(to_words(n, self.w, self.s)):
            d.n_wr_en.value = 1
            d.n_wr_addr.value = k
            d.n_wr_data.value = x
            await RisingEdge(d.clk)
        d.n_wr_en.value = 0

    # --- stimulus --------------------------------------------------------
    def submit(self, a, b, square=False):
        """Queue ``MontMul(a, b)``; a squaring (``square``) needs ``a == b``."""
        assert not square or a == b
        self.inputs.append((a, b, square))
        self._wake.set()
        self.expected.append((a, b, square, self.consts))
        self.n_expected += 1

    async def _drive(self):
        # Each loop turn is the write phase of one cycle. While the core is
        # busy (ready low) or there is nothing to send, wait on the signal or
        # on submit() instead of waking every cycle: the 4096-bit runs are
        # long and mostly spent computing.
        d, w = self.dut, self.w
        beats = deque()
        await RisingEdge(d.clk)
        while True:
            if not beats and self.inputs:
                a, b, sq = self.inputs.popleft()
                # A squaring's b words are not read; drive junk to show it.
                bw = [self.rng.getrandbits(w) for _ in range(self.s)] if sq else to_words(b, w, self.s)
                beats.extend((k, (x, y, sq)) for k, (x, y) in enumerate(zip(to_words(a, w, self.s), bw)))
            if not beats:
                d.i_stream__valid.value = 0
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(d.clk)
                continue
            if self.rng.random() < self.idle_prob:
                d.i_stream__valid.value = 0
                await RisingEdge(d.clk)
                continue
            k, (x, y, sq) = beats[0]
            d.i_stream__payload.value = x | (y << w) | (int(sq) << (2 * w))
            d.i_stream__valid.value = 1
            await ReadOnly()
            if int(d.i_stream__ready.value):
                beats.popleft()
                if k == 0:
                    self.in_first.append(self.cycle)
            elif self.idle_prob == 0:
                await RisingEdge(d.i_stream__ready)
                continue
            await RisingEdge(d.clk)

    async def _monitor(self):
        d, w = self.dut, self.w
        mask = (1 << w) - 1
        words = []
        await RisingEdge(d.clk)
        while True:
            ready = self.rng.random() >= self.bp_prob
            d.o_stream__ready.value = int(ready)
            await ReadOnly()
            if ready and int(d.o_stream__valid.value):
                p = int(d.o_stream__payload.value)
                if not words:
                    self.out_first.append(self.cycle)
                words.append(p & mask)
                last = (p >> w) & 1
                if last or len(words) > self.s:
                    self.out_last.append(self.cycle)
                    self._score(words, last)
                    words = []
            elif ready and self.bp_prob == 0:
                await RisingEdge(d.o_stream__valid)
                continue
            await RisingEdge(d.clk)

    # --- scoreboard ------------------------------------------------------
    def _score(self, words, last):
        idx = self.checked
        self.checked += 1
        if not self.expected:
            self.errors.append(f"result #{idx}: unexpected result {words}")
            return
        a, b, sq, c = self.expected.popleft()
        n = c.n
        model = montmul_hw(a, b, c, mode=SQR if sq else MUL)
        got = from_words(words, self.w)
        spec = montmul_spec(a % n, b % n, n, c.r)
        if len(words) != self.s or not last:
            self.errors.append(f"result #{idx}: {len(words)} beats, last={last}; want {self.s} beats ending in last")
        elif words != model.words:
            diff = [k for k in range(self.s) if words[k] != model.words[k]]
            self.errors.append(f"result #{idx}: words {diff} differ from the model "
                               f"(a={a:#x}, b={b:#x}, square={sq}, N={n:#x})")
        elif got % n != spec or got >= 2 * n:
            self.errors.append(f"result #{idx}: {got:#x} is not ≡ a·b·R⁻¹ mod N or not < 2N")
        if self.checked >= self.n_expected:
            self._all_done.set()

    async def drain(self, timeout_cycles):
        """Wait until every submitted operation has been checked."""
        if self.checked < self.n_expected:
            self._all_done.clear()
            try:
                await with_timeout(self._all_done.wait(), timeout_cycles * CLK_NS, "ns")
            except Exception as e:  # SimTimeoutError: report what is missing
                raise AssertionError(f"timeout: {self.checked}/{self.n_expected} results "
                                     f"after {timeout_cycles} cycles") from e

    def assert_clean(self):
        assert not self.errors, "scoreboard errors:\n" + "\n".join(self.errors[:10])
        assert self.checked == self.n_expected and not self.expected

    # --- operands --------------------------------------------------------
    def random_modulus(self):
        return self.rng.getrandbits(self.L) | 1 | (1 << (self.L - 1))

    def corner_moduli(self):
        """Moduli at the edges: all ones, a small top word, short, tiny."""
        L, w, rng = self.L, self.w, self.rng
        top = w * ((L - 1) // w)  # bit where the top non-zero word starts
        return [
            (1 << L) - 1,
            (1 << top) | rng.getrandbits(top) | 1,          # top word = 1
            rng.getrandbits(L // 2) | 1 | (1 << (L // 2 - 1)),  # half the words zero
            3,
        ]

    def corner_operands(self, n, r):
        x = self.rng.randrange(2 * n)
        return [
            (0, 0), (0, n - 1), (1, 1), (1, n - 1), (n - 1, n - 1),
            (r % n, r % n), (r % n, 1), (x, x), (2 * n - 1, 2 * n - 1),
            (2 * n - 1, 1), (n, n - 1), (r * r % n, self.rng.randrange(n)),
        ]


def _budget(tb, ops):
    # Generous: random idle and backpressure at most double the cycles.
    return (ops + 2) * (tb.timing.latency_cycles * 4 + 100)


@cocotb.test()
async def random_ops(dut):
    """Random moduli and operands < 2N, random idle cycles and backpressure."""
    tb = MontMulTB(dut)
    await tb.start()
    tb.idle_prob = _knob("MM_IDLE", 0.3, float)
    tb.bp_prob = _knob("MM_BP", 0.3, float)
    sq_prob = _knob("MM_SQUARE", 0.4, float)
    ops = _knob("MM_OPS", 6)
    for _ in range(_knob("MM_MODULI", 2)):
        await tb.load_modulus(tb.random_modulus())
        n = tb.consts.n
        for _ in range(ops):
            a = tb.rng.randrange(2 * n)
            if tb.rng.random() < sq_prob:
                tb.submit(a, a, square=True)
            else:
                tb.submit(a, tb.rng.randrange(2 * n))
        await tb.drain(_budget(tb, ops))
    tb.assert_clean()


@cocotb.test()
async def directed_corners(dut):
    """0, 1, N−1, R mod N, a = b, 2N−1 (lazy input) on edge-case moduli, multiplied and squared."""
    tb = MontMulTB(dut)
    await tb.start()
    tb.bp_prob = 0.2
    moduli = tb.corner_moduli()
    if _knob("MM_QUICK", 0):
        moduli = moduli[:2]
    for n in moduli:
        await tb.load_modulus(n)
        pairs = tb.corner_operands(n, tb.consts.r)
        for a, b in pairs:
            tb.submit(a, b)
        squares = sorted({a for a, _ in pairs} | {b for _, b in pairs})
        for a in squares:
            tb.submit(a, a, square=True)
        await tb.drain(_budget(tb, len(pairs) + len(squares)))
    tb.assert_clean()


def _model_dict(t):
    return {"latency_cycles": t.latency_cycles, "first_out_cycles": t.first_out_cycles,
            "cycles_per_op": t.cycles_per_op, "done_cycles": t.done_cycles,
            "mul_slots": t.mul_slots}


@cocotb.test()
async def timing(dut):
    """Latency on an idle core and steady-state cycles/op, multiply and squaring, equal the model's."""
    tb = MontMulTB(dut)
    await tb.start()
    await tb.load_modulus(tb.random_modulus())
    n = tb.consts.n
    measured = {}
    for mode, sq, model in ((MUL, False, tb.timing), (SQR, True, tb.timing_sqr)):
        # One operation on an idle core: latency from first input to last output beat.
        k = len(tb.in_first)
        a = tb.rng.randrange(2 * n)
        tb.submit(a, a if sq else tb.rng.randrange(2 * n), square=sq)
        await tb.drain(_budget(tb, 1))
        await tb.wait_idle()
        # Back to back, no idle, no backpressure: steady-state interval.
        ops = 4
        for _ in range(ops):
            a = tb.rng.randrange(2 * n)
            tb.submit(a, a if sq else tb.rng.randrange(2 * n), square=sq)
        await tb.drain(_budget(tb, ops))
        await tb.wait_idle()
        latency = tb.out_last[k] - tb.in_first[k]
        first_out = tb.out_first[k] - tb.in_first[k]
        last = tb.out_last[k + 1:k + 1 + ops]
        intervals = [b - a for a, b in zip(last, last[1:])]
        dut._log.info("%s: latency %d (model %d), first beat %d (model %d), intervals %s (model %d)",
                      mode, latency, model.latency_cycles, first_out, model.first_out_cycles,
                      intervals, model.cycles_per_op)
        measured[mode] = {"latency_cycles": latency, "first_out_cycles": first_out,
                          "cycles_per_op": intervals[-1], "intervals": intervals}
        assert latency == model.latency_cycles, (mode, latency, model.latency_cycles)
        assert first_out == model.first_out_cycles, (mode, first_out, model.first_out_cycles)
        assert all(iv == model.cycles_per_op for iv in intervals), (mode, intervals)
    tb.assert_clean()
    write_tb_report({
        "operand_bits": tb.L, "word_bits": tb.w, "words": tb.s,
        "mul_latency": tb.latency,
        **measured[MUL],
        "square": measured[SQR],
        "model": _model_dict(tb.timing),
        "model_square": _model_dict(tb.timing_sqr),
    })
