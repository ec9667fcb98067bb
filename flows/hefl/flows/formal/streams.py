"""Counting properties of the stream ports of MontMul, ModExp and BatchEngine.

"No data lost or duplicated under arbitrary backpressure": the wrappers
drive the input stream freely (arbitrary gaps, stream rule assumed: VALID
held until READY, payload stable) and the output's READY freely, count
what goes in and what comes out, and assert

* nothing comes out that did not go in: a result only for an operation
  (job) whose input is complete and not yet answered, with the right tag;
* results are whole: ``last`` exactly on word ``s - 1``, the tag constant
  over a result's words, the payload stable while stalled;
* the count in flight stays within the core's capacity;
* nothing is lost: whenever the core says ``idle``, everything that went
  in has come out.

Covers show results leaving under backpressure and the core idle again
after more than one operation, so none of this is vacuous.

Parameters are tiny to keep the proofs tractable: MontMul runs for real
inside :class:`~hefl.hw.montmul_stream.MontMulStream` (its operand banks,
modulus memory and result FIFO around the in-place core) at ``w = 4``,
``s = 5`` (``L = 18``, the smallest legal size); ModExp and BatchEngine
at ``w = 2``, ``s = 3`` (``L = 4``), window ``k = 1``, exponents of at most
2 bits, 2-bit tags (3-bit for the engine), with :class:`FormalMultiplier`
in place of the core: a stand-in with the in-place core's interface
(accept, read port, result write port, ``idle``) whose result words are
arbitrary and whose latency is arbitrary (issue 1 to ``max_wait``
cycles, result 1 to ``max_wait`` cycles later), so the properties hold
whatever the multiplier computes and however long it takes. Operand
values never steer the lanes' control (constant-time schedule), so free
data loses nothing here.
"""

from amaranth.hdl import Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hefl.flows.formal.props import Props
from hefl.golden.montgomery import words_for
from hefl.hw.jobs import JobOp
from hefl.hw.montmul import MODE
from hefl.hw.montmul_stream import MontMulStream

__all__ = ["FormalMultiplier", "MontMulFormal", "LaneFormal", "MONTMUL_PARAMS", "LANE_PARAMS"]

#: MontMul at the smallest legal size: w = 4, s = 5 (MONTMUL_MIN_WORDS).
MONTMUL_PARAMS = dict(operand_bits=18, word_bits=4)
#: ModExp / BatchEngine lanes: w = 2, s = 3, k = 1, 2-bit exponents and tags.
LANE_PARAMS = dict(operand_bits=4, word_bits=2, window_bits=1, max_exp_bits=2, tag_bits=2)


class FormalMultiplier(wiring.Component):
    """MontMul's in-place interface with arbitrary result words after an arbitrary latency.

    The ports are :class:`hefl.hw.montmul.MontMul`'s (``start``/``ready``,
    ``op_*``, the read port ``rd_*``, the write port ``wr_*``, ``done``,
    ``idle``). An accepted operation *issues* for 1 to ``max_wait``
    cycles (``ready`` low; ``rd_en`` free in every one of them and in the
    cycle after, as the core's registered read enable is; ``rd_addr``
    free), then waits 0 to ``max_wait - 1`` cycles and writes ``s``
    arbitrary words to ``op_dst + j`` on consecutive cycles, ``done`` on
    the last. The solver chooses every length and word.

    ``chain_safe`` as the core's property: when true, a next operation may
    be accepted as soon as ``ready`` is high while this one's result is
    still to be written (its issue then lasts until that write is over, as
    ``s ≥ D + 2`` guarantees in the core); when false the caller must wait
    for ``idle``, which the assertion ``mul_start_only_when_idle`` checks.
    """

    def __init__(self, *, operand_bits, word_bits, addr_bits, max_wait=3, chain_safe=False):
        self._w, self._s = word_bits, words_for(operand_bits, word_bits)
        self._max_wait = max_wait
        self._chain = chain_safe
        super().__init__({
            "nprime": In(word_bits),
            "start": In(1), "ready": Out(1),
            "op_a": In(addr_bits), "op_b": In(addr_bits), "op_n": In(addr_bits),
            "op_dst": In(addr_bits), "op_mode": In(MODE),
            "rd_addr": Out(addr_bits), "rd_en": Out(1), "rd_data": In(word_bits),
            "wr_en": Out(1), "wr_addr": Out(addr_bits), "wr_data": Out(word_bits),
            "done": Out(1), "idle": Out(1),
        })

    chain_safe = property(lambda self: self._chain)

    def elaborate(self, platform):
        m = Module()
        p = Props(m)
        s, mw = self._s, self._max_wait
        issuing, rd_tail = Signal(), Signal()     # issue phase; its cycle after
        icnt = Signal(range(mw))
        pend, writing = Signal(), Signal()        # a result owed; its words going out
        wcnt = Signal(range(max(s, mw)))
        dst, wdst = Signal.like(self.op_dst), Signal.like(self.op_dst)
        accept = self.start & ~issuing
        m.d.comb += [self.ready.eq(~issuing), self.idle.eq(~issuing & ~pend),
                     self.rd_en.eq((issuing | rd_tail) & p.free(1, "mul_rd_en")),
                     self.rd_addr.eq(p.free(len(self.rd_addr), "mul_rd_addr"))]
        if self._chain:
            # The caller uses the chaining: an op accepted while a result is owed.
            p.cover("mul_chained_start", accept & pend)
        else:
            p.assert_("mul_start_only_when_idle", ~self.start | self.idle)
        with m.If(accept):
            m.d.sync += [issuing.eq(1), icnt.eq(0), dst.eq(self.op_dst)]
        # The issue ends when the solver says (at the latest after max_wait
        # cycles), once the previous result is written: one result owed at a time.
        end = issuing & (p.free(1, "mul_issue_end") | (icnt == mw - 1)) & ~pend
        m.d.sync += rd_tail.eq(end)
        with m.If(issuing & ~end & (icnt != mw - 1)):
            m.d.sync += icnt.eq(icnt + 1)
        with m.If(end):
            m.d.sync += [issuing.eq(0), pend.eq(1), writing.eq(0), wcnt.eq(0), wdst.eq(dst)]
        with m.Elif(pend & ~writing):
            m.d.sync += wcnt.eq(wcnt + 1)
            with m.If(p.free(1, "mul_write_go") | (wcnt == mw - 1)):
                m.d.sync += [writing.eq(1), wcnt.eq(0)]
        with m.Elif(writing):
            m.d.comb += [self.wr_en.eq(1), self.wr_addr.eq(wdst + wcnt),
                         self.wr_data.eq(p.free(self._w, "mul_data")),
                         self.done.eq(wcnt == s - 1)]
            m.d.sync += wcnt.eq(wcnt + 1)
            with m.If(wcnt == s - 1):
                m.d.sync += [pend.eq(0), writing.eq(0)]
        return m


def _drive_free(m, p, sig, name):
    m.d.comb += sig.eq(p.free(len(Value.cast(sig)), name))


def _words_out(m, p, o, s):
    """Word position in the current result; asserts ``last`` exactly on word ``s - 1``."""
    pos = Signal(range(s))
    out = o.valid & o.ready
    with m.If(out):
        m.d.sync += pos.eq(Mux(pos == s - 1, 0, pos + 1))
    p.assert_("last_on_word_s_minus_1", ~o.valid | (o.payload.last == (pos == s - 1)))
    return pos, out & o.payload.last


class MontMulFormal(Elaboratable):
    """Counting properties of :class:`~hefl.hw.montmul_stream.MontMulStream` (the real core inside).

    Capacity: two operand banks (one loading, one waiting or running) and
    at most two results pending (started, not wholly read out; the
    wrapper's start rule, which keeps the result FIFO of ``2s`` words from
    overflowing). A running operation frees its bank once it has issued
    its last slot, so two loaded-not-started operations can wait behind
    two pending results: at most four operations are in flight.
    """

    CAPACITY = 4

    def __init__(self, dut=None, *, result_covers=False, **params):
        self.dut = dut if dut is not None else MontMulStream(**{**MONTMUL_PARAMS, **params})
        # A result first leaves ~87 (square) to ~107 (multiply) cycles after
        # its operands (s = 5, op_timing): the covers that need one are
        # reachable only by a deep run.
        self.result_covers = result_covers

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        p = Props(m)
        s = dut.words
        i, o = dut.i_stream, dut.o_stream
        for sig, name in ((i.valid, "in_valid"), (i.payload, "in_payload"),
                          (o.ready, "out_ready"), (dut.nprime, "nprime"),
                          (dut.n_wr_en, "n_wr_en"), (dut.n_wr_addr, "n_wr_addr"),
                          (dut.n_wr_data, "n_wr_data")):
            _drive_free(m, p, sig, name)
        p.assume("modulus_written_while_idle", ~dut.n_wr_en | dut.idle)
        took = p.source_rules("in", i.valid, i.ready, [Value.cast(i.payload)], by_dut=False)
        p.source_rules("out", o.valid, o.ready, [Value.cast(o.payload)], by_dut=True)

        in_pos = Signal(range(s))
        with m.If(took):
            m.d.sync += in_pos.eq(Mux(in_pos == s - 1, 0, in_pos + 1))
        op_in = took & (in_pos == s - 1)
        out_pos, op_out = _words_out(m, p, o, s)
        pending = Signal(range(self.CAPACITY + 2))   # operations in, results not (wholly) out
        m.d.sync += pending.eq(pending + op_in - op_out)
        done = Signal(range(4))
        with m.If(op_out & (done != 3)):
            m.d.sync += done.eq(done + 1)
        p.assert_("no_result_without_operation", ~o.valid | (pending != 0))
        p.assert_("within_capacity", pending <= self.CAPACITY)
        p.assert_("idle_means_all_out", ~dut.idle | ((pending == 0) & (in_pos == 0)
                                                    & (out_pos == 0)))
        p.cover("second_loaded_while_busy", op_in & (pending != 0))
        if self.result_covers:
            p.cover("result_under_backpressure",
                    op_out & p.was(o.valid & ~o.ready, "out_stalled"))
            p.cover("idle_after_one", dut.idle & (done >= 1))
        return m


class LaneFormal(Elaboratable):
    """Counting properties of a ModExp lane or of the BatchEngine (same stream interface).

    Parameters
    ----------
    dut : ModExp or BatchEngine
        Built with :data:`LANE_PARAMS` and ``multiplier=FormalMultiplier``
        (or a ``functools.partial`` of it with ``chain_safe``).
    capacity : int
        Jobs in flight the DUT may hold (1 for a lane; for the engine see
        :data:`hefl.flows.formal.checks.ENGINE_CAPACITY`).
    idle_after : int
        Results out (1 to 3) before the ``idle_after_*`` cover: a lane's
        shortest job takes ~29 cycles (reduction and output alone are
        ``2s + 2 + 5s``), so two in a row need a deep cover run.
    max_exp_bits : int
        Longest POWMOD exponent the job stream declares.

    The job stream is well formed (the kernel checks jobs before the
    engine sees them): ``first`` on a job's first beat, ``last`` on its
    last, the length its op and count declare, counts in range, and no tag
    already in flight (the kernel's tags are the job indices of a batch).
    """

    def __init__(self, dut, *, capacity, idle_after=2, max_exp_bits=LANE_PARAMS["max_exp_bits"]):
        self.dut = dut
        self.capacity = capacity
        self.idle_after = idle_after
        self.max_exp_bits = max_exp_bits

    def _job_beats(self, m, op, count, s, w):
        n = Signal(range(s * 8 + s + 1 + (1 << 16) * s))
        with m.Switch(op):
            with m.Case(JobOp.POWMOD):
                m.d.comb += n.eq(s + (count + w - 1) // w)
            with m.Case(JobOp.MULMOD):
                m.d.comb += n.eq(2 * s)
            with m.Default():                      # PRODUCT, TABLE_PRODUCT: K factors
                m.d.comb += n.eq(count * s)
        return n

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        p = Props(m)
        s, w = dut.words, dut.word_bits
        i, o = dut.i_stream, dut.o_stream
        beat = i.payload
        for sig, name in ((i.valid, "in_valid"), (i.payload, "in_payload"),
                          (o.ready, "out_ready"), (dut.nprime, "nprime"),
                          (dut.const_wr_en, "const_wr_en"), (dut.const_wr_sel, "const_wr_sel"),
                          (dut.const_wr_addr, "const_wr_addr"),
                          (dut.const_wr_data, "const_wr_data")):
            _drive_free(m, p, sig, name)
        p.assume("constants_written_while_idle", ~dut.const_wr_en | dut.idle)
        took = p.source_rules("in", i.valid, i.ready, [Value.cast(i.payload)], by_dut=False)
        p.source_rules("out", o.valid, o.ready, [Value.cast(o.payload)], by_dut=True)

        # --- the well-formed job stream ---------------------------------------
        idx = Signal(range(s * ((1 << 16) + 1)))    # beat within the job
        n_cur = Signal.like(idx)                     # beats of the job in progress
        n_new = self._job_beats(m, beat.op, beat.count, s, w)
        n = Mux(idx == 0, n_new, n_cur)
        tag_bits = len(beat.tag)
        pend_mask = Signal(1 << tag_bits)            # tags in flight
        p.assume("first_on_first_beat", ~i.valid | (beat.first == (idx == 0)))
        p.assume("last_on_last_beat", ~i.valid | (beat.last == (idx == n - 1)))
        first = i.valid & (idx == 0)
        # Every op code is a job type (TABLE_PRODUCT included: without a
        # table port it carries its K factors, like PRODUCT).
        p.assume("powmod_count", ~first | (beat.op != JobOp.POWMOD)
                 | (beat.count <= self.max_exp_bits))
        p.assume("mulmod_count", ~first | (beat.op != JobOp.MULMOD) | (beat.count == 2))
        p.assume("product_count", ~first | (beat.op != JobOp.PRODUCT) | (beat.count != 0))
        p.assume("table_product_count", ~first | (beat.op != JobOp.TABLE_PRODUCT)
                 | (beat.count != 0))
        p.assume("tag_not_in_flight", ~first | ~pend_mask.bit_select(beat.tag, 1))
        with m.If(took):
            m.d.sync += idx.eq(Mux(beat.last, 0, idx + 1))
            with m.If(idx == 0):
                m.d.sync += n_cur.eq(n_new)

        # --- jobs in, results out ------------------------------------------------
        done_mask = Signal.like(pend_mask)          # jobs wholly received, result not out
        out_pos, res_out = _words_out(m, p, o, s)
        cur_tag = Signal(tag_bits)
        with m.If(o.valid & o.ready & (out_pos == 0)):
            m.d.sync += cur_tag.eq(o.payload.tag)
        # The job's tag is its first beat's (later beats' tag fields are ignored).
        job_tag = Signal(tag_bits)
        with m.If(took & (idx == 0)):
            m.d.sync += job_tag.eq(beat.tag)
        tag = Mux(idx == 0, beat.tag, job_tag)
        set_p = Mux(took & (idx == 0), 1 << beat.tag, 0)
        set_d = Mux(took & beat.last, 1 << tag, 0)
        clr = Mux(res_out, 1 << o.payload.tag, 0)
        m.d.sync += [pend_mask.eq((pend_mask | set_p) & ~clr),
                     done_mask.eq((done_mask | set_d) & ~clr)]
        in_flight = sum((pend_mask[k].as_unsigned() for k in range(1 << tag_bits)), start=0)
        p.assert_("no_result_without_job", ~o.valid | done_mask.bit_select(o.payload.tag, 1))
        p.assert_("tag_constant_in_result", ~o.valid | (out_pos == 0) | (o.payload.tag == cur_tag))
        p.assert_("within_capacity", in_flight <= self.capacity)
        p.assert_("idle_means_all_out", ~dut.idle | ((pend_mask == 0) & (idx == 0)
                                                    & (out_pos == 0)))
        jobs = Signal(range(4))
        with m.If(res_out & (jobs != 3)):
            m.d.sync += jobs.eq(jobs + 1)
        p.cover("result_under_backpressure", res_out & p.was(o.valid & ~o.ready, "out_stalled"))
        p.cover(f"idle_after_{('one', 'two', 'three')[self.idle_after - 1]}",
                dut.idle & (jobs >= self.idle_after))
        p.cover("job_after_result", took & (idx == 0) & (jobs >= 1))
        if self.capacity >= 2:
            p.cover("two_in_flight", in_flight >= 2)
        for op in JobOp:
            p.cover(f"{op.name.lower()}_job_taken", took & (idx == 0) & (beat.op == op))
        return m
