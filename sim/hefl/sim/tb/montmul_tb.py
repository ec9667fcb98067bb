"""cocotb 2.x testbench of the MontMul core (hefl.hw.montmul) on Verilator.

Run by ``tests/test_montmul_cocotb.py`` through :func:`hefl.sim.runner.run_cocotb`.
Knobs (environment, set by the runner):

``MM_L``, ``MM_W``        operand and word width the Verilog was built for
``MM_TILE_A``, ``MM_TILE_B``  multiplier tile widths (set the pipeline latency)
``MM_OPS``                random operations per modulus (default 6)
``MM_MODULI``             random moduli (default 2)
``MM_IDLE``, ``MM_BP``    probability of an idle input cycle / of ``ready = 0``
``HEFL_SEED``             the seed (printed by pytest; logged here)

The TB class owns the clock, reset, an input driver with random idle cycles,
an output monitor with random backpressure, and a scoreboard that checks
each result word-for-word against :func:`hefl.golden.montmul_hw.montmul_hw`
and, independently, against :func:`hefl.golden.montgomery.montmul_spec`
(``≡ a·b·R⁻¹ mod N`` and ``< 2N``). The timing test measures latency and
steady-state cycles per operation and checks them against
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
from hefl.golden.montmul_hw import montmul_hw, mul_latency, op_timing
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
        self.timing = op_timing(self.s, self.latency)
        seed = _knob("HEFL_SEED", random.getrandbits(32))
        self.rng = random.Random(f"{seed}:{self.L}:{self.w}")
        dut._log.info("MontMul TB: L=%d w=%d s=%d P=%d seed=%d",
                      self.L, self.w, self.s, self.latency, seed)
        self.idle_prob = 0.0
        self.bp_prob = 0.0
        self.inputs = deque()      # (a, b) waiting to be driven
        self.expected = deque()    # (a, b, consts) in issue order
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
    def submit(self, a, b):
        self.inputs.append((a, b))
        self._wake.set()
        self.expected.append((a, b, self.consts))
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
                a, b = self.inputs.popleft()
                beats.extend(enumerate(zip(to_words(a, w, self.s), to_words(b, w, self.s))))
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
            k, (x, y) = beats[0]
            d.i_stream__payload.value = x | (y << w)
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
        a, b, c = self.expected.popleft()
        n = c.n
        model = montmul_hw(a, b, c, latency=self.latency)
        got = from_words(words, self.w)
        spec = montmul_spec(a % n, b % n, n, c.r)
        if len(words) != self.s or not last:
            self.errors.append(f"result #{idx}: {len(words)} beats, last={last}; want {self.s} beats ending in last")
        elif words != model.words:
            diff = [k for k in range(self.s) if words[k] != model.words[k]]
            self.errors.append(f"result #{idx}: words {diff} differ from the model (a={a:#x}, b={b:#x}, N={n:#x})")
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
    ops = _knob("MM_OPS", 6)
    for _ in range(_knob("MM_MODULI", 2)):
        await tb.load_modulus(tb.random_modulus())
        n = tb.consts.n
        for _ in range(ops):
            tb.submit(tb.rng.randrange(2 * n), tb.rng.randrange(2 * n))
        await tb.drain(_budget(tb, ops))
    tb.assert_clean()


@cocotb.test()
async def directed_corners(dut):
    """0, 1, N−1, R mod N, a = b, 2N−1 (lazy input) on edge-case moduli."""
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
        await tb.drain(_budget(tb, len(pairs)))
    tb.assert_clean()


@cocotb.test()
async def timing(dut):
    """Latency on an idle core and steady-state cycles/op equal the model's."""
    tb = MontMulTB(dut)
    await tb.start()
    await tb.load_modulus(tb.random_modulus())
    n = tb.consts.n
    # One operation on an idle core: latency from first input to last output beat.
    tb.submit(tb.rng.randrange(2 * n), tb.rng.randrange(2 * n))
    await tb.drain(_budget(tb, 1))
    await tb.wait_idle()
    # Back to back, no idle, no backpressure: steady-state interval.
    ops = 4
    for _ in range(ops):
        tb.submit(tb.rng.randrange(2 * n), tb.rng.randrange(2 * n))
    await tb.drain(_budget(tb, ops))
    tb.assert_clean()
    latency = tb.out_last[0] - tb.in_first[0]
    first_out = tb.out_first[0] - tb.in_first[0]
    intervals = [b - a for a, b in zip(tb.out_last[1:], tb.out_last[2:])]
    steady = intervals[-1]
    dut._log.info("latency %d (model %d), first beat %d (model %d), intervals %s (model %d)",
                  latency, tb.timing.latency_cycles, first_out, tb.timing.first_out_cycles,
                  intervals, tb.timing.cycles_per_op)
    write_tb_report({
        "operand_bits": tb.L, "word_bits": tb.w, "words": tb.s,
        "mul_latency": tb.latency,
        "latency_cycles": latency, "first_out_cycles": first_out,
        "cycles_per_op": steady, "intervals": intervals,
        "model": {"latency_cycles": tb.timing.latency_cycles,
                  "first_out_cycles": tb.timing.first_out_cycles,
                  "cycles_per_op": tb.timing.cycles_per_op,
                  "row_cycles": tb.timing.row_cycles,
                  "mul_slots": tb.timing.mul_slots},
    })
    assert latency == tb.timing.latency_cycles
    assert first_out == tb.timing.first_out_cycles
    assert all(iv == tb.timing.cycles_per_op for iv in intervals)
