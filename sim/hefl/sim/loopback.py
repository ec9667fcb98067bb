"""A loopback sub-engine: the kernel's data path measured without the arithmetic.

NOT the accelerator. :class:`LoopbackEngine` has a
:class:`~hefl.hw.batch_engine.BatchEngine`'s ports (job stream in, result
stream out, constants, ``free``/``idle`` and the table port) but computes
nothing: it takes one job beat per cycle, returns each job's first operand
(``s`` words) as its result, and for a compact TABLE_PRODUCT job fetches
every named entry through a real :class:`~hefl.hw.table_fetch.TableFetch`
(the words are counted and dropped) before the result. A kernel built on
loopback sub-engines (:func:`loopback_kernel`) therefore runs at the speed
of what surrounds the lanes: the descriptor parser, the AXI master's read
and write sides, each sub-engine's table fetch and the result writer. The
projection of ``hefl hw-report`` caps data-bound operations by what this
kernel moves per cycle in simulation.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hefl.golden.montgomery import words_for
from hefl.hw.batch_engine import table_ports
from hefl.hw.jobs import INDEX_BITS, TAG_BITS, JobOp, engine_ports
from hefl.hw.regmap import LAYOUT
from hefl.hw.table_fetch import TableFetch

__all__ = ["LoopbackEngine", "loopback_kernel", "loopback_library", "measure_data_path"]


class LoopbackEngine(wiring.Component):
    """BatchEngine-shaped data sink and source (see the module docstring).

    Jobs are taken one beat per cycle; up to ``pending`` of them wait for
    their table entries (fetched in the background, in order, one word per
    cycle at best, like a sub-engine's lanes sharing their fetcher) and
    leave in the order they came.

    Parameters
    ----------
    operand_bits, word_bits : int
        ``s = words_for(L, w)``.
    lanes : int
        Reported only (``hw_lanes``).
    table_max : int
        Most entries of a TABLE_PRODUCT job (the table port exists if > 0).
    tag_bits : int
    pending : int
        Jobs between their first beat and their result.
    index_depth : int
        Indices queued for the fetcher.
    """

    def __init__(self, *, operand_bits, word_bits, lanes=1, table_max=256, tag_bits=TAG_BITS,
                 pending=8, index_depth=1024, **_ignored):
        self._s = words_for(operand_bits, word_bits)
        self._w, self._lanes, self._table_max = word_bits, lanes, table_max
        self._tag_bits, self._pending, self._index_depth = tag_bits, pending, index_depth
        members = {**engine_ports(word_bits, self._s, tag_bits), "free": Out(1)}
        if table_max:
            members.update(table_ports())
        super().__init__(members)

    words = property(lambda self: self._s)
    lanes = property(lambda self: self._lanes)
    table_max = property(lambda self: self._table_max)

    def elaborate(self, platform):
        m = Module()
        s, w, P = self._s, self._w, self._pending
        per = max(1, LAYOUT.indices_per_limb(w))
        i, o = self.i_stream, self.o_stream
        # Each pending job's result (its first operand) in a slot of s words.
        m.submodules.buf = buf = Memory(shape=unsigned(w), depth=P * s, init=[])
        wp, rp = buf.write_port(), buf.read_port(transparent_for=())
        # Jobs in order: {slot, tag, entries}.
        m.submodules.jobs = jobs = SyncFIFO(width=16 + self._tag_bits + 8, depth=P)
        slot = Signal(range(P))
        tag = Signal(self._tag_bits)
        op = Signal.like(i.payload.op)
        count = Signal(16)
        word = Signal(range(s + 1))
        to_queue = Signal(16)
        sub = Signal(range(max(2, per)))
        held = Signal(w)
        held_last = Signal()
        recv = Signal(32)                     # table responses not yet used by a result

        m.d.comb += [wp.addr.eq(slot * s + word), wp.data.eq(i.payload.data),
                     jobs.w_data.eq(Cat(count, tag, slot)),
                     self.free.eq(jobs.level < P - 1)]

        fetch = idx = None
        if self._table_max:
            m.submodules.fetch = fetch = TableFetch(words=s, word_bits=w, lanes=1)
            wiring.connect(m, fetch.rd_cmd, wiring.flipped(self.rd_cmd))
            wiring.connect(m, wiring.flipped(self.rd_data), fetch.rd_data)
            m.submodules.idx = idx = SyncFIFO(width=INDEX_BITS, depth=self._index_depth)
            m.d.comb += [fetch.base.eq(self.table_base), fetch.entries.eq(self.table_entries),
                         fetch.clear.eq(self.table_clear), self.bad_index.eq(fetch.bad_index),
                         fetch.i_req.valid.eq(idx.r_rdy), fetch.i_req.payload.index.eq(idx.r_data),
                         fetch.i_req.payload.lane.eq(0), fetch.i_req.payload.last.eq(1),
                         idx.r_en.eq(fetch.i_req.ready), fetch.o_resp.ready.eq(1)]
        got = fetch.o_resp.valid & fetch.o_resp.payload.last if fetch is not None else Const(0)

        with m.FSM(name="take"):
            with m.State("IDLE"):
                with m.If(i.valid & i.payload.first & jobs.w_rdy):
                    is_table = i.payload.op == JobOp.TABLE_PRODUCT
                    m.d.sync += [tag.eq(i.payload.tag), op.eq(i.payload.op), word.eq(0),
                                 count.eq(Mux(is_table, i.payload.count, 0)),
                                 to_queue.eq(i.payload.count)]
                    m.next = "TAKE"
                with m.Elif(i.valid & ~i.payload.first):
                    m.d.comb += i.ready.eq(1)      # a stray beat
            with m.State("TAKE"):
                # One beat per cycle; the first s words are the result.
                m.d.comb += [i.ready.eq(1), wp.en.eq(i.valid & (word < s))]
                with m.If(i.valid):
                    with m.If(word < s):             # counts to s, then stays
                        m.d.sync += word.eq(word + 1)
                    if idx is not None:
                        with m.If((op == JobOp.TABLE_PRODUCT) & (word >= s)):
                            m.d.sync += [held.eq(i.payload.data), held_last.eq(i.payload.last),
                                         sub.eq(0)]
                            m.next = "SPLIT"
                        with m.Elif(i.payload.last):
                            m.next = "DONE"
                    else:
                        with m.If(i.payload.last):
                            m.next = "DONE"
            if idx is not None:
                with m.State("SPLIT"):
                    # The index word's indices into the fetcher's queue, one per cycle.
                    m.d.comb += [idx.w_en.eq(to_queue != 0),
                                 idx.w_data.eq(held.word_select(sub, INDEX_BITS))]
                    with m.If(idx.w_rdy | (to_queue == 0)):
                        m.d.sync += sub.eq(sub + 1)
                        with m.If(to_queue != 0):
                            m.d.sync += to_queue.eq(to_queue - 1)
                        with m.If((sub == per - 1) | (to_queue <= 1)):
                            m.next = "TAKE"
                            with m.If(held_last):
                                m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += jobs.w_en.eq(1)
                m.d.sync += slot.eq(Mux(slot == P - 1, 0, slot + 1))
                m.next = "IDLE"

        # Results in job order, once a table job's entries have all arrived.
        head_count = jobs.r_data[:16]
        head_tag = jobs.r_data[16:16 + self._tag_bits]
        head_slot = jobs.r_data[16 + self._tag_bits:]
        rj = Signal(range(s + 1))
        m.d.sync += recv.eq(recv + got)
        with m.FSM(name="emit"):
            with m.State("WAIT"):
                with m.If(jobs.r_rdy & (recv + got >= head_count)):
                    m.d.sync += [recv.eq(recv + got - head_count), rj.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += rp.addr.eq(head_slot * s + rj)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [o.valid.eq(1), o.payload.data.eq(rp.data), o.payload.tag.eq(head_tag),
                             o.payload.last.eq(rj == s - 1), rp.addr.eq(head_slot * s + rj),
                             rp.en.eq(0)]
                with m.If(o.ready):
                    m.d.comb += [rp.en.eq(1), rp.addr.eq(head_slot * s + rj + 1)]
                    m.d.sync += rj.eq(rj + 1)
                    with m.If(rj == s - 1):
                        m.d.comb += jobs.r_en.eq(1)
                        m.next = "WAIT"
        m.d.comb += self.idle.eq(~jobs.r_rdy & (recv == 0) & ~i.valid)
        return m


def loopback_kernel(*, operand_bits, word_bits, engines, data_bits, max_burst=64, table_max=256):
    """A :class:`hefl.hw.kernel.Kernel` whose ``engines`` sub-engines are loopbacks."""
    from hefl.hw.kernel import Kernel

    def factory(**kw):
        return LoopbackEngine(**kw)

    return Kernel(operand_bits=operand_bits, word_bits=word_bits, lanes=engines, engines=engines,
                  data_bits=data_bits, max_burst=max_burst, table_max=table_max,
                  engine_factory=factory)


def loopback_library(*, operand_bits, word_bits, engines, data_bits, max_burst=64):
    """The simulated-device library of :func:`loopback_kernel` (built if needed); its path."""
    from hefl.flows.verilog import to_verilog
    from hefl.hw.regmap import KERNEL_NAME
    from hefl.paths import build_root
    from hefl.sim.kernel_model import build_sim_library
    key = f"L{operand_bits}_w{word_bits}_e{engines}_dw{data_bits}_b{max_burst}"
    v = to_verilog(loopback_kernel(operand_bits=operand_bits, word_bits=word_bits, engines=engines,
                                   data_bits=data_bits, max_burst=max_burst),
                   name=KERNEL_NAME, out_dir=build_root() / "sim" / "loopback_v" / key)
    return build_sim_library(v, out_root=build_root() / "sim" / "loopback_so")


def measure_data_path(*, operand_bits, word_bits, engines, data_bits, key_bits, jobs=512,
                      table_window_bits=None, seed=1):
    """Kernel cycles per job of the data path alone, per Paillier operation shape.

    Runs batches on the loopback kernel through the driver (:class:`~hefl.accel.device.DeviceAccelerator`
    over the C++ harness, no memory stalls): ciphertext multiplies (MULMOD of
    ``2s`` limbs), fixed-base encryptions (TABLE_PRODUCT of ``W`` entries of a
    ``ceil(key_bits/2)``-bit exponent, the entries read from the table),
    textbook encryptions (POWMOD with a ``key_bits``-bit exponent) and CRT
    half-decryptions (POWMOD with a ``key_bits/2``-bit exponent). Each
    result is checked against what a loopback returns (the first operand).

    Returns
    -------
    dict
        Per operation: ``jobs``, ``cycles``, ``cycles_per_job``,
        ``read_bytes_per_cycle``, ``write_bytes_per_cycle``,
        ``bus_bytes_per_job`` (both directions on ``m_axi_gmem``,
        table reads included), ``host_bytes_per_job`` (descriptor and
        result bytes that cross PCIe).
    """
    import random

    from hefl.accel.device import DeviceAccelerator
    from hefl.golden.fixedbase import build_table
    from hefl.hw.params import CARD_TABLE_WINDOW_BITS
    from hefl.transport.sim import SimTransport
    lib = loopback_library(operand_bits=operand_bits, word_bits=word_bits, engines=engines,
                           data_bits=data_bits)
    rng = random.Random(seed)
    n = rng.getrandbits(operand_bits - 2) | 1 | 1 << (operand_bits - 3)
    k = table_window_bits or CARD_TABLE_WINDOW_BITS
    acc = DeviceAccelerator(SimTransport(lib, seed=seed), table_window_bits=k, timeout=600)
    tr, beat = acc.transport, data_bits // 8
    a = [rng.randrange(n) for _ in range(jobs)]
    b = [rng.randrange(n) for _ in range(jobs)]
    exp_bits = -(-key_bits // 2)
    table = build_table(2, n, exp_bits, k)
    alphas = [rng.getrandbits(exp_bits) for _ in range(jobs)]
    half = [rng.getrandbits(key_bits // 2) | 1 << (key_bits // 2 - 1) for _ in range(jobs)]
    full = [rng.getrandbits(key_bits) | 1 << (key_bits - 1) for _ in range(jobs)]
    # A table upload is host DMA (no kernel cycles): do it before measuring.
    acc.fixed_base(table, alphas[:1], a[:1])
    calls = {
        "mulmod": (lambda: acc.mulmod(a, b, n), a),
        "fixed_base": (lambda: acc.fixed_base(table, alphas, a), a),
        "powmod_rn": (lambda: acc.powmod(a, full, n), a),
        "powmod_half": (lambda: acc.powmod(a, half, n), a),
    }
    out = {}
    try:
        for name, (call, want) in calls.items():
            c0, (r0, w0), h0 = acc.stats["cycles"], tr.bus_beats, acc.stats["batches"]
            got = call()
            if got != want:
                raise AssertionError(f"loopback {name}: results are not the first operands")
            cyc = acc.stats["cycles"] - c0
            rd, wr = (x - y for x, y in zip(tr.bus_beats, (r0, w0)))
            card = acc.card_for(n)
            out[name] = {
                "jobs": jobs, "batches": acc.stats["batches"] - h0, "cycles": cyc,
                "cycles_per_job": cyc / jobs,
                "read_bytes_per_cycle": rd * beat / cyc, "write_bytes_per_cycle": wr * beat / cyc,
                "bus_bytes_per_job": (rd + wr) * beat / jobs,
                "host_bytes_per_job": _host_bytes(acc, name, card, exp_bits, key_bits),
            }
    finally:
        acc.close()
    return out


def _host_bytes(acc, name, card, exp_bits, key_bits):
    """Descriptor and result bytes per job (what crosses PCIe), from the buffer layout."""
    hw = card.hw
    s, w = hw.words, hw.word_bits
    if name == "mulmod":
        limbs = LAYOUT.job_operand_limbs(LAYOUT.op("mulmod"), 2, s, w)
    elif name == "fixed_base":
        from hefl.golden.fixedbase import windows
        W = windows(exp_bits, acc.card_window_bits(exp_bits, hw))
        limbs = LAYOUT.job_operand_limbs(LAYOUT.op("table_product"), W, s, w)
    else:
        bits = key_bits if name == "powmod_rn" else key_bits // 2
        limbs = LAYOUT.job_operand_limbs(LAYOUT.op("powmod"), hw.declared_exp_bits(bits), s, w)
    return LAYOUT.limb_bytes * (1 + limbs + s)
