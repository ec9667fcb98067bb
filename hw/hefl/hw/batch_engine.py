"""BatchEngine: E ModExp lanes behind one job stream and one result stream.

Interface (the kernel codes against it)::

    from hefl.hw.batch_engine import BatchEngine, JobOp
    be = BatchEngine(operand_bits=L, word_bits=w, lanes=E, window_bits=k,
                     max_exp_bits=X, tag_bits=TAG_BITS)
    nprime        In(w)      -N^-1 mod 2^w, stable for the batch
    const_wr_en   In(1)      constant load, one word per cycle, while idle:
    const_wr_sel  In(2)        0 = N, 1 = R² mod N, 2 = R mod N (3 ignored)
    const_wr_addr In(range(s))
    const_wr_data In(w)      broadcast to every lane
    i_stream      In(stream)  {data: w, first, last, op: JobOp, tag, count: COUNT_BITS}
    o_stream      Out(stream) {data: w, tag, last}: s beats per result, < N,
                              out of order across lanes (tagged)
    idle          Out(1)     nothing queued, computing or waiting to leave

Job formats: :mod:`hefl.hw.jobs` (POWMOD: s base words + ceil(count/w)
exponent words; MULMOD: 2s words; PRODUCT: K·s words, count = K ≥ 1). Two
additions to the brief's interface, both optional keywords: ``fifo_depth``
(per-lane job FIFO, default ``2·s`` words) and ``multiplier`` (the MontMul
class; e.g. ``functools.partial(MontMul, tile_bits=(ECP5_TILE_BITS,) * 2)`` for ECP5
tiles, or a stand-in in unit tests).

Structure (trees of registered stages, fan-out ``F`` =
:data:`hefl.hw.params.ENGINE_TREE_FAN`)::

    i_stream ─► router ─┬─► skid ─► router ─┬─► job FIFO 0 ─► ModExp 0 ─► skid ─┐
                        │                   └─► job FIFO 1 ─► ModExp 1 ─► skid ─┤
                        └─► ...                                                 ├─► arbiter tree ─► reducer ─► o_stream
                                                                                ┘
    nprime, const_wr_* ─► register ─► register per group of F lanes ─► lanes
                      └─► register ─► reducer (N)

* Dispatcher: a tree of :class:`~hefl.hw.arbiter.PacketRouter` nodes, ``F``
  outputs each, skid buffers between levels; the leaves drive ``F`` job
  FIFOs. On a job's first beat a node picks a subtree with a lane whose
  FIFO is empty (preferring one whose lane is also idle; lowest index
  first), spends one cycle choosing, then forwards every beat up to
  ``last`` at one beat per cycle. A lane can thus hold its running job plus
  one queued job; a job longer than the FIFO (a large PRODUCT) holds its
  path until the lane has consumed enough of it.
* Job FIFOs are :class:`~hefl.hw.job_fifo.JobFifo`: block RAM of
  ``{data, first, last}`` words, the header (op, tag, count) kept once per
  job; ``SyncFIFOBuffered``'s timing.
* Each lane (:class:`hefl.hw.modexp.ModExp`) runs any job type; its job
  beats arrive through a register stage after its FIFO (the FIFO's block-RAM
  output drives no logic), its results pass a register stage (:class:`~hefl.hw.skid.PipeStage`: the
  lane's memory read goes straight into a flop; the arbiter's ``ready``
  behind it is a register too).
* Result arbiter: a tree of :class:`~hefl.hw.arbiter.PacketArbiter` nodes
  (``F`` inputs each, registered outputs): each grants the lowest-index
  input with a result ready (one cycle), then passes its ``s`` beats until
  ``last``. A lane sends a result word at most every 3 cycles, so each
  node's output stage is a :class:`~hefl.hw.half_rate.HalfRateStage` (one
  beat per two cycles, no payload mux; the same timing as a skid buffer
  for such a stream); the table-request tree's too. Results are rare next
  to the work behind them (a result per thousands of cycles per lane), so
  fixed priority does not starve anyone.
* Reducer (:class:`~hefl.hw.reducer.Reducer`): a lane sends its
  accumulator ``≡`` the result, ``< 2N``; the reducer at the root makes
  every result ``< N`` with one subtraction for the whole sub-engine
  (:func:`hefl.golden.batch.reducer_latency` cycles after a result's last
  word; busy :func:`~hefl.golden.batch.reducer_cycles_per_result` cycles
  per result, a cap on the sub-engine's results per second).
* Constants and N' reach the lanes through a register per tree level, so
  no net fans out to more than ``F`` lanes from one flop beyond the root.
* ``free`` (some lane's FIFO is empty) is the root router's registered
  view, for a kernel choosing among sub-engines; ``idle`` is exact.

With a table port (``table_max > 0``, as the kernel builds its sub-engines)
TABLE_PRODUCT jobs arrive *compact*, as the kernel forwards them from the
descriptor: ``s`` factor words, then the 16-bit entry indices
(:data:`hefl.hw.regmap.LAYOUT`). Each lane then has a
:class:`~hefl.hw.table_expand.TableExpander` in front of its FIFO that
fetches the entries through the sub-engine's
:class:`~hefl.hw.table_fetch.TableFetch` (requests up a tree of arbiters,
entry words back down a tree of address routers to the lanes of each
dispatcher leaf) and hands the lane the ``W + 1`` factors. The lanes of a
leaf share one FIFO write mux (:func:`~hefl.hw.table_expand.write_bus`):
an entry word on the leaf's response stream takes it, and job beats to
that leaf wait the cycle (never on an idle engine, so
:func:`hefl.golden.batch.engine_overhead` is unchanged). Without a table port, a TABLE_PRODUCT job carries its
factors, as for the lane itself.

Latency: :func:`hefl.golden.batch.engine_overhead` gives the cycles a job
spends in the trees on an idle engine (lane 0's path).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hefl.hw.arbiter import PacketRouter, address_router_tree, arbiter_tree
from hefl.hw.axi_master import CommandLayout
from hefl.hw.job_fifo import JobFifo
from hefl.hw.jobs import (
    INDEX_BITS,
    TAG_BITS,
    JobOp,
    engine_ports,
    job_layout,
    result_layout,
    table_request_layout,
    table_response_layout,
)
from hefl.hw.modexp import ModExp
from hefl.hw.params import ENGINE_TREE_FAN, MODEXP_WINDOW_BITS
from hefl.hw.reducer import Reducer
from hefl.hw.regmap import LAYOUT
from hefl.hw.skid import PipeStage
from hefl.hw.table_expand import TableExpander, write_bus
from hefl.hw.table_fetch import TableFetch

__all__ = ["BatchEngine", "table_ports", "JobOp"]


def table_ports():
    """The ports a sub-engine with a table adds: its AXI read port and the table's place and size."""
    return {"rd_cmd": Out(stream.Signature(CommandLayout)),
            "rd_data": In(stream.Signature(LAYOUT.limb_bits)),
            "table_base": In(64), "table_entries": In(INDEX_BITS + 1),
            "table_clear": In(1), "bad_index": Out(1)}


class BatchEngine(wiring.Component):
    """E ModExp lanes sharing a modulus, a job queue and a result queue.

    Parameters
    ----------
    operand_bits, word_bits, window_bits, max_exp_bits, tag_bits
        As for :class:`hefl.hw.modexp.ModExp`.
    lanes : int
        Number of lanes ``E``.
    fifo_depth : int, optional
        Words of each lane's job FIFO; default ``2·s`` (a POWMOD job whose
        exponent is no longer than the modulus fits whole).
    multiplier : callable, optional
        MontMul class (default :class:`hefl.hw.montmul.MontMul`).
    lane_ram_style : str, optional
        The lanes' memory ``ram_style`` (:data:`hefl.hw.modexp.RAM_STYLES`):
        ``"ultra"`` puts each lane's table and operands in one UltraRAM on
        UltraScale+ (not on ECP5, which has none); default: the tool's
        choice (block RAM).
    t_ram_style : str, optional
        The lanes' MontMul accumulator ``t_ram_style`` (:class:`ModExp`'s):
        ``"block"`` puts it in a block RAM instead of LUT-RAM. Default: the
        tool's choice. Only with the default ``multiplier``.
    table_max : int
        0: no table port. Otherwise the most entries a compact
        TABLE_PRODUCT job may name (each lane's index memory), and the ports
        ``rd_cmd``/``rd_data`` (an AXI master read port), ``table_base``,
        ``table_entries``, ``table_clear`` (in) and ``bad_index`` (out) of
        :class:`~hefl.hw.table_fetch.TableFetch` exist.
    """

    def __init__(self, *, operand_bits, word_bits, lanes=1, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, tag_bits=TAG_BITS, fifo_depth=None, multiplier=None,
                 table_max=0, lane_ram_style=None, t_ram_style=None):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            self._MustUse__silence = True       # never built: no "unused" warning
            raise TypeError(f"Lane count must be a positive integer, not {lanes!r}")
        self._lane_args = dict(operand_bits=operand_bits, word_bits=word_bits,
                               window_bits=window_bits, max_exp_bits=max_exp_bits,
                               tag_bits=tag_bits, multiplier=multiplier,
                               ram_style=lane_ram_style, t_ram_style=t_ram_style)
        # Validates the shared parameters once.
        try:
            proto = ModExp(**self._lane_args)
        except TypeError:
            self._MustUse__silence = True
            raise
        self._s = s = proto.words
        self._w = word_bits
        self._lanes = lanes
        self._tag_bits = tag_bits
        if fifo_depth is None:
            fifo_depth = 2 * s
        if not isinstance(fifo_depth, int) or isinstance(fifo_depth, bool) or fifo_depth < 2:
            self._MustUse__silence = True
            proto._MustUse__silence = True
            raise TypeError(f"FIFO depth must be an integer ≥ 2, not {fifo_depth!r}")
        self._fifo_depth = fifo_depth
        self._proto = proto
        if (not isinstance(table_max, int) or table_max < 0
                or (table_max and (LAYOUT.indices_per_limb(word_bits) < 1 or fifo_depth < 2 * s))):
            self._MustUse__silence = True
            proto._MustUse__silence = True
            raise TypeError(f"Table limit must be 0, or positive with words of at least "
                            f"{INDEX_BITS} bits and a FIFO of 2s words, not {table_max!r}")
        self._table_max = table_max
        members = {**engine_ports(word_bits, s, tag_bits), "free": Out(1)}
        if table_max:
            members.update(table_ports())
        super().__init__(members)

    lanes = property(lambda self: self._lanes)
    words = property(lambda self: self._s)
    word_bits = property(lambda self: self._w)
    fifo_depth = property(lambda self: self._fifo_depth)
    table_max = property(lambda self: self._table_max)

    def elaborate(self, platform):
        m = Module()
        E, F = self._lanes, ENGINE_TREE_FAN
        jl = job_layout(self._w, self._tag_bits)
        rl = result_layout(self._w, self._tag_bits)

        lanes, fifos, ins, outs = [], [], [], []
        for i in range(E):
            lane = self._proto if i == 0 else ModExp(**self._lane_args)
            fifo = JobFifo(word_bits=self._w, tag_bits=self._tag_bits, depth=self._fifo_depth)
            m.submodules[f"lane{i}"] = lane
            m.submodules[f"fifo{i}"] = fifo
            m.submodules[f"out{i}"] = out = PipeStage(rl)
            # The FIFO's block-RAM output goes into a register, not into the
            # lane's load logic (the ECP5 board's longest path otherwise).
            m.submodules[f"in{i}"] = inp = PipeStage(jl)
            wiring.connect(m, lane.o_stream, out.i_stream)
            wiring.connect(m, inp.o_stream, lane.i_stream)
            wiring.connect(m, fifo.o_stream, inp.i_stream)
            lanes.append(lane)
            fifos.append(fifo)
            ins.append(inp.o_stream)
            outs.append(out.o_stream)
        m.submodules.reduce = red = Reducer(words=self._s, word_bits=self._w,
                                            tag_bits=self._tag_bits)
        self._elab_constants(m, lanes, red)
        writers = self._elab_table(m, fifos) if self._table_max else [None] * E
        root_busy = self._elab_dispatcher(m, lanes, fifos, writers, jl)
        # Result words leave a lane at most one every 3 cycles (EMIT), so the
        # arbiters' output stages need no skid buffer's full rate; the
        # reducer after them makes each result < N.
        arb_busy = arbiter_tree(m, "arb", rl, outs, red.i_stream, fan_in=F, half_rate=True)
        wiring.connect(m, red.o_stream, wiring.flipped(self.o_stream))

        # idle: nothing queued, computing, in a tree or waiting to leave.
        busy = [~lane.idle for lane in lanes] + [f.level != 0 for f in fifos] + root_busy + arb_busy
        busy += [red.busy, red.i_stream.valid]
        busy += [o.valid for o in ins + outs] + [self.o_stream.valid]
        busy += [x.busy for x in writers if x is not None]
        m.d.comb += self.idle.eq(~Cat(*busy).any())
        return m

    def _elab_constants(self, m, lanes, red):
        """N' and the constant writes to every lane, one register per tree level; N to ``red``.

        Each register drives at most ``F`` lanes or ``F`` registers of the
        next level; the reducer's copy is registered once.
        """
        F = ENGINE_TREE_FAN
        writes = ("const_wr_en", "const_wr_sel", "const_wr_addr", "const_wr_data")
        ports = ("nprime", *writes)

        def fan(members, sigs, tag):
            copy = [Signal.like(x, name=f"{name}_{tag}") for x, name in zip(sigs, ports)]
            m.d.sync += [c.eq(x) for c, x in zip(copy, sigs)]
            if len(members) <= F:
                for i in members:
                    m.d.comb += [getattr(lanes[i], n).eq(c) for n, c in zip(ports, copy)]
                return
            size = -(-len(members) // F)
            for g in range(0, len(members), size):
                fan(members[g:g + size], copy, f"{tag}_{g // size}")

        fan(list(range(len(lanes))), [getattr(self, n) for n in ports], "r")
        # The reducer keeps N from the constant writes (it needs no N').
        m.d.sync += [getattr(red, n).eq(getattr(self, n)) for n in writes]

    def _elab_table(self, m, fifos):
        """Expanders before the FIFOs, the fetcher and its two trees; returns the expanders."""
        E, F = self._lanes, ENGINE_TREE_FAN
        m.submodules.fetch = fetch = TableFetch(words=self._s, word_bits=self._w, lanes=E)
        wiring.connect(m, fetch.rd_cmd, wiring.flipped(self.rd_cmd))
        wiring.connect(m, wiring.flipped(self.rd_data), fetch.rd_data)
        m.d.comb += [fetch.base.eq(self.table_base), fetch.entries.eq(self.table_entries),
                     fetch.clear.eq(self.table_clear), self.bad_index.eq(fetch.bad_index)]
        exps = []
        for i, fifo in enumerate(fifos):
            x = TableExpander(words=self._s, word_bits=self._w, tag_bits=self._tag_bits,
                              lane=i, lanes=E, max_count=self._table_max,
                              fifo_depth=self._fifo_depth)
            m.submodules[f"expand{i}"] = x
            wiring.connect(m, x.o_stream, fifo.i_stream)
            m.d.comb += x.fifo_level.eq(fifo.level)
            exps.append(x)
        # A request is a one-beat packet: an arbiter passes one every two
        # cycles at most (grant, then pass), the half-rate stage's rate.
        arbiter_tree(m, "req", table_request_layout(E), [x.req for x in exps], fetch.i_req,
                     fan_in=F, half_rate=True)
        # Responses go to groups of F lanes (the dispatcher's leaves); each
        # group shares one stream and one FIFO write mux (write_bus).
        rl = table_response_layout(self._w, E)
        groups = [stream.Signature(rl).create(path=(f"resp_g{g // F}",)) for g in range(0, E, F)]
        for g, rs in enumerate(groups):
            write_bus(m, exps[g * F:(g + 1) * F], rs, F)
        address_router_tree(m, "resp", rl, fetch.o_resp, [wiring.flipped(g) for g in groups], F)
        return exps

    def _elab_dispatcher(self, m, lanes, fifos, writers, jl):
        """The router tree from ``i_stream`` to the job FIFOs (or their expanders); returns ``busy`` signals."""
        F = ENGINE_TREE_FAN
        busy = []
        # Leaves: up to F FIFOs each, driven directly (their w_rdy is a register).
        nodes = []
        for g in range(0, len(fifos), F):
            grp = list(range(g, min(g + F, len(fifos))))
            r = PacketRouter(jl, len(grp), registered=False)
            m.submodules[f"route_l0_{g // F}"] = r
            for k, i in enumerate(grp):
                o = getattr(r, f"o{k}")
                free = fifos[i].level == 0
                if writers[i] is None:
                    wiring.connect(m, o, fifos[i].i_stream)
                else:
                    wiring.connect(m, o, writers[i].i_stream)
                    free = free & ~writers[i].busy
                m.d.comb += [r.child_free[k].eq(free), r.child_best[k].eq(free & lanes[i].idle)]
            nodes.append(r)
            busy += [r.busy, r.i_stream.valid]
        depth = 1
        while len(nodes) > 1:
            parents = []
            for g in range(0, len(nodes), F):
                grp = nodes[g:g + F]
                r = PacketRouter(jl, len(grp), registered=True)
                m.submodules[f"route_l{depth}_{g // F}"] = r
                for k, child in enumerate(grp):
                    wiring.connect(m, getattr(r, f"o{k}"), child.i_stream)
                    m.d.comb += [r.child_free[k].eq(child.free), r.child_best[k].eq(child.best)]
                parents.append(r)
                busy += [r.busy, r.i_stream.valid]
            nodes, depth = parents, depth + 1
        root = nodes[0]
        wiring.connect(m, wiring.flipped(self.i_stream), root.i_stream)
        m.d.comb += self.free.eq(root.free)
        return busy

