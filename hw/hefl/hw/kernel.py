"""The Vitis RTL kernel ``hefl_kernel``: AXI4-Lite control, AXI4 memory, sub-engines.

Ports (Vitis RTL-kernel naming): ``ap_clk``, ``ap_rst_n`` (active low,
synchronous, pipelined through ``RESET_STAGES`` registers before it fans
out, as UG1393 asks), ``interrupt``, ``s_axi_control_*`` (AXI4-Lite slave,
:mod:`hefl.hw.axil_ctrl`) and ``m_axi_gmem_*`` (AXI4 master,
:mod:`hefl.hw.axi_master`). Registers, their offsets and the buffer formats
come from :mod:`hefl.hw.regmap`; nothing here repeats an offset or index.

Structure::

    desc stream (read port 0) ─► job parser ─┬─► skid ─► sub-engine 0 ─► skid ─┐
                                             │           ▲ table (read port 1) ├─► result arbiter
                                             └─► skid ─► sub-engine 1 ─► skid ─┘   tree ─► writer
                                                         ▲ table (read port 2)

The lanes are split over ``engines`` sub-engines (:class:`~hefl.hw.batch_engine.BatchEngine`,
one per SLR on Alveo), each behind registered skid buffers and with its own
table port (its :class:`~hefl.hw.table_fetch.TableFetch` reads on its own
AXI read port, next to its lanes); constants reach them through a register
stage.

One run (``ap_start`` accepted → ``ap_done``)
---------------------------------------------
1. Read the 8-limb descriptor header at ``desc``. Check magic and version
   (status ``bad_magic``), ``s`` and ``w`` against the hardware (``geometry``),
   ``J <= 2^16`` and ``T <= 2^16`` table entries (``bad_job``) and that the
   stream fits one read command (``stream_length``). Any error → skip to step 5.
2. Read the constants N, R² mod N, R mod N (``s`` limbs each) into the
   sub-engines (``const_wr_*``); N' goes to their ``nprime`` ports from the
   header. The same read command continues into the job stream.
3. Per job: decode the header limb (op, tag, count), check it (tag < J,
   count in range, a table for TABLE_PRODUCT, job inside ``stream_limbs``;
   else ``bad_job`` or ``stream_length`` and stop reading, step 4), pick a
   sub-engine (one with a free lane first, round robin after the last),
   then forward its operand limbs' words to that sub-engine with
   ``first``/``last``. A TABLE_PRODUCT job goes as it is in the descriptor
   (factor, then index words): the lane's expander fetches the entries.
   After J jobs, the stream must have been consumed exactly (else
   ``stream_length``). A sub-engine that met an index ``>= T`` (it reads
   entry 0 instead) stops the stream at the next job header with ``bad_job``.
4. Meanwhile, and until every job sent has come back, each result leaving
   the arbiter tree (``s`` words, any order) is written at its tag's slot
   ``result + 8·(8 + tag·s)`` bytes.
5. Write the result header (status, cycles, jobs completed, the HWCFG
   registers), wait for its write response, raise ``ap_done``, return to
   idle. An AXI error response seen during the run adds ``bus_error`` to
   the status.

The cycle counter runs from the accepted start to the result header (the
value written in the header and shown in the ``cycles_*`` registers).
"""

import functools

from amaranth.hdl import Array, Cat, ClockDomain, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for
from hefl.hw.arbiter import arbiter_tree
from hefl.hw.axi_master import AxiMaster, axi4_members
from hefl.hw.axil_ctrl import AxilCtrl, axil_members
from hefl.hw.jobs import job_layout, result_layout
from hefl.hw.params import MODEXP_WINDOW_BITS
from hefl.hw.regmap import KERNEL_NAME, LAYOUT, REGMAP
from hefl.hw.skid import SkidBuffer

__all__ = ["Kernel", "KERNEL_NAME", "RESET_STAGES", "TABLE_MAX", "div_const", "div_const_parts",
           "split_lanes"]

LIMB = LAYOUT.limb_bits
#: Registers ``ap_rst_n`` passes before it resets anything (UG1393: a
#: pipelined reset, so its fan-out to every flop is not one net).
RESET_STAGES = 3
#: Default ``table_max``: TABLE_PRODUCT jobs of up to this many entries, the
#: 1024-bit short exponent of Paillier-2048 in 8-bit windows
#: (hefl.hw.params.CARD_TABLE_WINDOW_BITS). Each lane's index memory holds
#: that many indices (LUT-RAM), so it is no larger.
TABLE_MAX = 128


def split_lanes(lanes, engines):
    """Lanes of each sub-engine: ``lanes`` split as evenly as possible, earlier ones larger."""
    return [lanes // engines + (i < lanes % engines) for i in range(engines)]


class Kernel(wiring.Component):
    """The ``hefl_kernel`` top (see the module docstring).

    Parameters
    ----------
    operand_bits : int
        Modulus width L the sub-engines are built for.
    word_bits : int
        Word width w (≤ 64: one word per limb).
    lanes : int
        Lanes E in all.
    window_bits : int
        Modexp window k.
    max_exp_bits : int
        Longest exponent a POWMOD job may declare (< 2^16).
    data_bits : int
        ``m_axi_gmem`` data width (64 in simulation, 512 on Alveo).
    max_burst : int
        Longest AXI burst in beats.
    engines : int
        Sub-engines the lanes are split into (:func:`split_lanes`); one per
        SLR on Alveo, one elsewhere.
    table_max : int
        Most entries one TABLE_PRODUCT job may name (each lane's index
        memory; ``hw_table_max``); 0 builds no table ports (nor the feature).
    engine_factory : callable, optional
        Makes each sub-engine, ``engine_factory(operand_bits=, word_bits=,
        lanes=, window_bits=, max_exp_bits=, tag_bits=, multiplier=,
        table_max=)``; default :class:`~hefl.hw.batch_engine.BatchEngine`
        (a bench's stand-in otherwise, e.g. :mod:`hefl.sim.loopback`).
    engine : wiring.Component, optional
        A prebuilt engine with the BatchEngine's interface (then
        ``engines`` must be 1; it has the table feature if it has a
        ``table_max``); by default
        :class:`hefl.hw.batch_engine.BatchEngine` s are made from the
        parameters above.
    multiplier : callable, optional
        MontMul factory for the default engines' lanes (e.g.
        ``functools.partial(MontMul, tile_bits=(18, 18))`` on ECP5).
    """

    def __init__(self, *, operand_bits, word_bits, lanes=1, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, data_bits=LIMB, max_burst=64, engines=1,
                 table_max=TABLE_MAX, engine=None, engine_factory=None, multiplier=None):
        for name, v in (("Operand width", operand_bits), ("Word width", word_bits),
                        ("Lane count", lanes), ("Window width", window_bits),
                        ("Sub-engine count", engines)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        if word_bits > LIMB:
            raise TypeError(f"Word width must be at most {LIMB} (one word per limb), not {word_bits}")
        if engines > lanes or (engine is not None and engines != 1):
            raise TypeError(f"Sub-engine count must be at most the lane count {lanes} "
                            f"(1 with a prebuilt engine), not {engines!r}")
        if max_exp_bits is None:
            max_exp_bits = operand_bits
        ct = LAYOUT.job_field("count")
        if not isinstance(max_exp_bits, int) or not 1 <= max_exp_bits < 1 << ct.width:
            raise TypeError(f"Maximum exponent bits must be an integer from 1 to "
                            f"{(1 << ct.width) - 1}, not {max_exp_bits!r}")
        tag_bits = LAYOUT.job_field("tag").width
        if LAYOUT.indices_per_limb(word_bits) < 1:
            table_max = 0               # words too narrow for an index: no TABLE_PRODUCT
        if engine is None:
            if engine_factory is None:
                from hefl.hw.batch_engine import BatchEngine as engine_factory
            subs = [engine_factory(operand_bits=operand_bits, word_bits=word_bits, lanes=n,
                                   window_bits=window_bits, max_exp_bits=max_exp_bits,
                                   tag_bits=tag_bits, multiplier=multiplier, table_max=table_max)
                    for n in split_lanes(lanes, engines)]
        else:
            subs = [engine]
            table_max = getattr(engine, "table_max", 0)
        self._table_max = table_max
        self._engines = subs
        self._L = operand_bits
        self._w = word_bits
        self._s = getattr(subs[0], "words", None) or words_for(operand_bits, word_bits)
        self._lanes = lanes
        self._k = window_bits
        self._x = max_exp_bits
        self._dw = data_bits
        self._master = AxiMaster(data_bits=data_bits, max_burst=max_burst,
                                 read_ports=1 + (len(subs) if table_max else 0))
        members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        for n, d, w in axil_members(REGMAP.addr_bits):
            members[f"{REGMAP.control_port}_{n}"] = (In if d == "in" else Out)(w)
        for n, d, w in axi4_members(data_bits, id_bits=self._master.id_bits):
            members[f"{REGMAP.memory_port}_{n}"] = (Out if d == "out" else In)(w)
        super().__init__(members)

    @property
    def words(self):
        """Words per operand ``s``."""
        return self._s

    @property
    def engines(self):
        """Number of sub-engines."""
        return len(self._engines)

    @property
    def id_bits(self):
        """Width of the ``m_axi_gmem`` IDs."""
        return self._master.id_bits

    @property
    def hwcfg(self):
        """Values of the read-only configuration registers, by register name."""
        return {"hw_word_bits": self._w, "hw_words": self._s, "hw_lanes": self._lanes,
                "hw_window_bits": self._k, "hw_max_exp_bits": self._x,
                "hw_data_bits": self._dw, "hw_engines": len(self._engines),
                "hw_features": LAYOUT.feature("table_product") if self._table_max else 0,
                "hw_table_max": self._table_max}

    def elaborate(self, platform):
        m = Module()
        # The kernel defines its clock domain from the Vitis-named pins; the
        # reset goes through a few registers first (no reset of their own).
        m.domains.sync = cd = ClockDomain("sync")
        m.domains.rst_pipe = rcd = ClockDomain("rst_pipe", reset_less=True, local=True)
        rst = Signal(RESET_STAGES, init=(1 << RESET_STAGES) - 1, name="rst_pipe")
        m.d.comb += [cd.clk.eq(self.ap_clk), rcd.clk.eq(self.ap_clk), cd.rst.eq(rst[-1])]
        m.d.rst_pipe += rst.eq(Cat(~self.ap_rst_n, rst[:-1]))

        m.submodules.ctrl = ctrl = AxilCtrl(regmap=REGMAP)
        m.submodules.mem = mem = self._master
        for i, eng in enumerate(self._engines):
            m.submodules[f"engine{i}"] = eng

        for n, d, _ in axil_members(REGMAP.addr_bits):
            port, inner = getattr(self, f"{REGMAP.control_port}_{n}"), getattr(ctrl.bus, n)
            if d == "in":
                m.d.comb += inner.eq(port)
            elif n.endswith("ready"):
                # No handshake while the pipelined reset still holds the slave.
                m.d.comb += port.eq(inner & ~cd.rst)
            else:
                m.d.comb += port.eq(inner)
        for n, d, _ in axi4_members(self._dw, id_bits=mem.id_bits):
            port, inner = getattr(self, f"{REGMAP.memory_port}_{n}"), getattr(mem.bus, n)
            m.d.comb += port.eq(inner) if d == "out" else inner.eq(port)
        for name, value in self.hwcfg.items():
            m.d.comb += getattr(ctrl, name).eq(value)

        r = _RunRegs(self._s, self._w, len(self._engines))
        self._elab_control(m, r, ctrl)
        self._elab_constants(m, r)
        self._elab_engine_inputs(m, r, mem)
        self._elab_job_decode(m, r)
        # A read abort is a one-cycle pulse from a register (set by the FSM
        # below, whose assignment wins over this clear).
        m.d.comb += mem.rd_abort.eq(r.abort_rd)
        m.d.sync += r.abort_rd.eq(0)
        with m.FSM(name="run"):
            self._fsm_descriptor(m, r, ctrl, mem)
            self._fsm_constants(m, r, mem)
            self._fsm_jobs(m, r, mem)
            self._fsm_finish(m, r, mem)
        self._elab_result_path(m, r, mem)
        return m

    def _elab_control(self, m, r, ctrl):
        """The control registers' view of the run: status, cycles, ``ap_*`` and interrupts.

        ``start_pulse`` (the cycle IDLE accepts ``ap_start``) sets
        ``ap_ready`` and clears ``ap_start`` unless auto-restart is on;
        ``done_pulse`` (the cycle the result header's write completed) sets
        ``ap_done``. The cycle counter counts every cycle while
        ``counting``.
        """
        m.d.comb += [
            ctrl.status.eq(r.status),
            ctrl.cycles_lo.eq(r.cycles[:32]),
            ctrl.cycles_hi.eq(r.cycles[32:]),
            ctrl.ctrl_ap_done_set.eq(r.done_pulse),
            ctrl.ctrl_ap_ready_set.eq(r.start_pulse),
            ctrl.ctrl_ap_start_clear.eq(r.start_pulse & ~ctrl.ctrl_auto_restart),
            ctrl.isr_done_set.eq(r.done_pulse & ctrl.ier_done),
            ctrl.isr_ready_set.eq(r.start_pulse & ctrl.ier_ready),
            self.interrupt.eq(ctrl.gie_enable & (ctrl.isr_done | ctrl.isr_ready)),
            ctrl.ctrl_ap_idle.eq(r.ap_idle),
        ]
        with m.If(r.counting):
            m.d.sync += r.cycles.eq(r.cycles + 1)

    def _elab_constants(self, m, r):
        """Constants and N' to every sub-engine, through one register stage.

        The FSM's CONST state drives ``r.const_*``; registered here, the
        broadcast to the sub-engines (each registers it again towards its
        lanes) starts from flops. N' is a header register already.
        """
        en, sel, addr, data = (Signal.like(x, name=f"{x.name}_r") for x in
                               (r.const_en, r.const_sel, r.const_addr, r.const_data))
        m.d.sync += [en.eq(r.const_en), sel.eq(r.const_sel), addr.eq(r.const_addr),
                     data.eq(r.const_data)]
        for eng in self._engines:
            m.d.comb += [eng.nprime.eq(r.field("nprime")), eng.const_wr_en.eq(en),
                         eng.const_wr_sel.eq(sel), eng.const_wr_addr.eq(addr),
                         eng.const_wr_data.eq(data)]

    def _elab_engine_inputs(self, m, r, mem):
        """Each sub-engine's job input (the parser's beats, through a skid buffer) and table port.

        Sub-engine ``i``'s table fetcher reads on AXI read port ``1 + i``.
        """
        jl = job_layout(self._w, LAYOUT.job_field("tag").width)
        readies = []
        for i, eng in enumerate(self._engines):
            m.submodules[f"in_skid{i}"] = skid = SkidBuffer(jl)
            wiring.connect(m, skid.o_stream, eng.i_stream)
            si = skid.i_stream
            m.d.comb += [si.valid.eq(r.p_valid & (r.tgt == i)), si.payload.eq(r.p_payload),
                         r.eng_free[i].eq(getattr(eng, "free", Const(1))),
                         r.eng_idle[i].eq(eng.idle)]
            readies.append(si.ready)
            if self._table_max:
                cmd, data, _ = mem.read_port(1 + i)
                wiring.connect(m, eng.rd_cmd, cmd)
                wiring.connect(m, data, eng.rd_data)
                m.d.comb += [eng.table_base.eq(r.table), eng.table_entries.eq(r.field("table_entries")),
                             eng.table_clear.eq(r.start_pulse), r.fetch_bad[i].eq(eng.bad_index)]
        m.d.comb += r.p_ready.eq(Array(readies)[r.tgt])

    def _elab_job_decode(self, m, r):
        """Decode of the registered job header limb ``job_hdr``, over two registered stages.

        ``job_hdr`` is registered the cycle after the limb arrives, so these
        checks start from flops, not from the AXI read path. Stage 1 (JOB_DEC
        registers it): the dividends of the two ceiling divisions, the
        product ``count · s`` and ``bad_job``; stage 2 (JOB_DEC2): the
        reciprocal multiplies and the choice of ``n_ops`` by op. In one cycle
        (an add, a multiply, a shift and a mux) they were the ECP5 board's
        longest path.
        """
        s, w = self._s, self._w
        op = {n: LAYOUT.op(n) for n in ("powmod", "mulmod", "product", "table_product")}
        countf = LAYOUT.job_field("count")
        per = max(1, LAYOUT.indices_per_limb(w))
        # powmod's s + ceil(count / w) = s + ((count + w - 1) · recip >> shift)
        # = (count · recip + ((w - 1) · recip + (s << shift))) >> shift: the
        # multiply is made from the header in stage 1, stage 2 adds a
        # constant and shifts (the multiply, unregistered MULT18X18D, then
        # two adds in stage 2 was the ECP5 board's 100 MHz critical path,
        # 12.04 ns); the same value.
        recip, shift = div_const_parts(w, countf.width + 1)
        m.d.comb += [r.dec_pow_prod.eq(r.l_count * recip), r.dec_tab_num.eq(r.l_count + (per - 1)),
                     r.dec_prod.eq(r.l_count * s)]
        with m.Switch(r.job_dec_op):
            with m.Case(op["powmod"]):
                m.d.comb += r.n_ops.eq((r.job_pow_prod + ((w - 1) * recip + (s << shift))) >> shift)
            with m.Case(op["mulmod"]):
                m.d.comb += r.n_ops.eq(2 * s)
            with m.Case(op["table_product"]):
                m.d.comb += r.n_ops.eq(s + div_const(r.job_tab_num, per, countf.width + 1))
            with m.Default():
                m.d.comb += r.n_ops.eq(r.job_prod)
        no_table = r.field("table_entries") == 0
        m.d.comb += r.bad_job.eq(
            (r.l_tag >= r.field("jobs"))
            | ((r.l_op == op["powmod"]) & (r.l_count > self._x))
            | ((r.l_op == op["mulmod"]) & (r.l_count != 2))
            | ((r.l_op == op["product"]) & (r.l_count == 0))
            | ((r.l_op == op["table_product"])
               & ((r.l_count == 0) | (r.l_count > self._table_max) | no_table)))

        # Sub-engine pick, round robin after the last target: one with a free
        # lane, else the next one (its input waits for a lane).
        E = len(self._engines)
        with m.Switch(r.tgt):
            for last in range(E):
                with m.Case(last):
                    m.d.comb += r.pick.eq((last + 1) % E)
                    for j in reversed(range(E)):
                        q = (last + 1 + j) % E
                        with m.If(r.eng_free[q]):
                            m.d.comb += r.pick.eq(q)

    def _fsm_descriptor(self, m, r, ctrl, mem):
        """States IDLE, HDR_CMD, HDR, CHECK: accept ``ap_start``, read and check the header.

        IDLE latches the buffer addresses and clears the run's state; the
        header's ``LAYOUT.desc.limbs`` limbs are read with one command, one
        limb per cycle the master delivers one; CHECK (1 cycle) sets the
        status and goes on to the constants, or to DRAIN on an error.
        """
        s, w = self._s, self._w
        tag_bits = LAYOUT.job_field("tag").width
        const_limbs = LAYOUT.constants_limbs(s)
        with m.State("IDLE"):
            m.d.comb += r.ap_idle.eq(1)
            with m.If(ctrl.ctrl_ap_start):
                m.d.comb += [r.start_pulse.eq(1), mem.clear_error.eq(1)]
                m.d.sync += [
                    r.desc.eq(Cat(ctrl.desc_lo, ctrl.desc_hi)),
                    r.result.eq(Cat(ctrl.result_lo, ctrl.result_hi)),
                    r.table.eq(Cat(ctrl.table_lo, ctrl.table_hi)),
                    r.status.eq(0), r.cycles.eq(0), r.counting.eq(1),
                    r.jobs_sent.eq(0), r.jobs_done.eq(0), r.idx.eq(0),
                    *(h.eq(0) for h in r.hdr),
                ]
                m.next = "HDR_CMD"
        _command_state(m, "HDR_CMD", mem.rd_cmd, r.desc, LAYOUT.desc.limbs, "HDR")
        with m.State("HDR"):
            m.d.comb += mem.rd_data.ready.eq(1)
            with m.If(mem.rd_data.valid):
                with m.Switch(r.idx):
                    for i, h in enumerate(r.hdr):
                        with m.Case(i):
                            m.d.sync += h.eq(mem.rd_data.payload)
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.idx == LAYOUT.desc.limbs - 1):
                    m.next = "CHECK"
        with m.State("CHECK"):
            st = Signal(8)
            too_many = (r.field("jobs") > 1 << tag_bits) | (
                r.field("table_entries") > 1 << LAYOUT.table_index_bits)
            m.d.comb += st.eq(
                Mux(r.field("magic") != LAYOUT.magic_word, _flag("bad_magic"), 0)
                | Mux((r.field("words") != s) | (r.field("word_bits") != w), _flag("geometry"), 0)
                | Mux(too_many, _flag("bad_job"), 0)
                | Mux(r.stream_limbs >= (1 << 32) - const_limbs, _flag("stream_length"), 0))
            m.d.sync += [r.status.eq(st), r.const_sel.eq(0), r.const_addr.eq(0),
                         r.left1.eq(r.stream_limbs - 1), r.stream_end.eq(r.stream_limbs == 0),
                         r.all_sent.eq(r.field("jobs") == 0)]
            with m.If(st != 0):
                m.next = "DRAIN"
            with m.Else():
                m.next = "CONST_CMD"

    def _fsm_constants(self, m, r, mem):
        """States CONST_CMD, CONST: one read command for the constants and the job stream.

        CONST writes N, R² mod N and R mod N (``s`` limbs each) towards the
        sub-engines, one limb per cycle the master delivers one, then
        JOB_HDR continues on the same command.
        """
        s, w = self._s, self._w
        limbs = LAYOUT.constants_limbs(s) + r.stream_limbs
        _command_state(m, "CONST_CMD", mem.rd_cmd, r.desc + LAYOUT.desc.limbs * LAYOUT.limb_bytes,
                       limbs, "CONST")
        with m.State("CONST"):
            m.d.comb += [mem.rd_data.ready.eq(1),
                         r.const_en.eq(mem.rd_data.valid),
                         r.const_data.eq(mem.rd_data.payload[:w])]
            with m.If(mem.rd_data.valid):
                m.d.sync += r.const_addr.eq(r.const_addr + 1)
                with m.If(r.const_addr == s - 1):
                    m.d.sync += [r.const_addr.eq(0), r.const_sel.eq(r.const_sel + 1)]
                    with m.If(r.const_sel == len(LAYOUT.constants) - 1):
                        m.next = "JOB_HDR"

    def _fsm_jobs(self, m, r, mem):
        """States JOB_HDR, JOB_DEC, JOB_DEC2, JOB_CHK, JOB_DATA: check, place and forward the jobs.

        Per job: JOB_HDR takes the header limb (or ends the stream: all
        ``J`` jobs sent, the stream exhausted, or a sub-engine saw a bad
        table index), JOB_DEC, JOB_DEC2 and JOB_CHK (1 cycle each) decode, check and
        place it, JOB_DATA forwards its operand limbs' words to the
        sub-engine at the pace of both sides. A failed check aborts the
        read and goes to DRAIN.
        """
        w = self._w
        limb = mem.rd_data.payload

        def stop(flag, *, abort=True):
            # End the job stream with an error flag; the read in progress is
            # abandoned. The abort reaches the master one cycle later, from a
            # register (DRAIN waits for the read side to be quiet anyway).
            if abort:
                m.d.sync += r.abort_rd.eq(1)
            m.d.sync += r.status.eq(r.status | _flag(flag))
            m.next = "DRAIN"

        with m.State("JOB_HDR"):
            with m.If(r.fetch_bad.any()):
                stop("bad_job")
            with m.Elif(r.all_sent):
                with m.If(~r.stream_end):
                    stop("stream_length")
                with m.Else():
                    m.next = "DRAIN"
            with m.Elif(r.stream_end):
                # Jobs remain but the stream is exhausted: nothing more to read.
                stop("stream_length", abort=False)
            with m.Else():
                m.d.comb += mem.rd_data.ready.eq(1)
                with m.If(mem.rd_data.valid):
                    m.d.sync += r.job_hdr.eq(limb)
                    m.next = "JOB_DEC"
        with m.State("JOB_DEC"):
            m.d.sync += [r.job_pow_prod.eq(r.dec_pow_prod), r.job_tab_num.eq(r.dec_tab_num),
                         r.job_prod.eq(r.dec_prod), r.job_dec_op.eq(r.l_op),
                         r.job_bad.eq(r.bad_job)]
            m.next = "JOB_DEC2"
        with m.State("JOB_DEC2"):
            m.d.sync += r.job_n_ops.eq(r.n_ops)
            m.next = "JOB_CHK"
        with m.State("JOB_CHK"):
            ones = Const((1 << (len(r.left1) - len(r.job_n_ops))) - 1,
                         len(r.left1) - len(r.job_n_ops))
            with m.If(r.job_bad):
                stop("bad_job")
            with m.Elif(r.job_n_ops > r.left1):
                # consumed + 1 + n_ops > stream_limbs, as one compare of registers.
                stop("stream_length")
            with m.Else():
                m.d.sync += [r.job_op.eq(r.l_op), r.job_tag.eq(r.l_tag),
                             r.job_count.eq(r.l_count), r.job_left.eq(r.job_n_ops),
                             r.job_last.eq(r.job_n_ops == 1), r.job_first.eq(1),
                             # left1 - n_ops - 1, one adder: -x - 1 = ~x.
                             r.left1.eq(r.left1 + Cat(~r.job_n_ops, ones)),
                             r.stream_end.eq(r.job_n_ops == r.left1),
                             r.tgt.eq(r.pick)]
                m.next = "JOB_DATA"
        with m.State("JOB_DATA"):
            p = r.p_payload
            m.d.comb += [
                r.p_valid.eq(mem.rd_data.valid),
                p.data.eq(limb[:w]),
                p.first.eq(r.job_first),
                p.last.eq(r.job_last),
                p.op.eq(r.job_op),
                p.tag.eq(r.job_tag),
                p.count.eq(r.job_count),
                mem.rd_data.ready.eq(r.p_ready),
            ]
            with m.If(r.p_valid & r.p_ready):
                m.d.sync += [r.job_left.eq(r.job_left - 1), r.job_last.eq(r.job_left == 2),
                             r.job_first.eq(0)]
                with m.If(r.job_last):
                    m.d.sync += [r.jobs_sent.eq(r.jobs_sent + 1),
                                 r.all_sent.eq(r.jobs_sent + 1 == r.field("jobs"))]
                    m.next = "JOB_HDR"

    def _fsm_finish(self, m, r, mem):
        """States DRAIN, RES_CMD, RES_HDR, WAIT_WR: wait for the results, write the header.

        DRAIN waits until every job sent has been written back and the
        sub-engines, fetchers and master are idle, then stops the cycle
        counter; the result header (status, cycles, jobs completed, HWCFG)
        goes out with one write command, one limb per cycle the master takes
        one; WAIT_WR waits for its write response and pulses ``ap_done``.
        """
        def errors():
            return (r.status | Mux(mem.bus_error, _flag("bus_error"), 0)
                    | Mux(r.fetch_bad.any(), _flag("bad_job"), 0))

        rd_busy = mem.rd_busy
        for p in range(1, mem.read_ports):
            rd_busy = rd_busy | mem.read_port(p)[2]
        with m.State("DRAIN"):
            # Every job handed to the engines comes back and is written first.
            # The engines must be idle too: the next run loads constants,
            # which they accept only while idle.
            # Registered (one cycle late): the condition is an AND over every
            # engine's idle tree and the bus ports, too long a path to steer
            # the FSM directly. In DRAIN nothing starts, so once true it stays.
            m.d.sync += r.drained.eq((r.jobs_done == r.jobs_sent) & ~r.rp_busy & ~r.res_valid
                                     & r.eng_idle.all() & ~mem.wr_busy & ~rd_busy)
            with m.If(r.drained):
                m.d.sync += [r.counting.eq(0), r.idx.eq(0), r.status.eq(errors()),
                             r.drained.eq(0)]
                m.next = "RES_CMD"
        _command_state(m, "RES_CMD", mem.wr_cmd, r.result, LAYOUT.result.limbs, "RES_HDR")
        with m.State("RES_HDR"):
            m.d.comb += mem.wr_data.valid.eq(1)
            words = {"status": r.status, "cycles": r.cycles, "jobs_done": r.jobs_done}
            for i, v in zip(LAYOUT.hwcfg_limbs, LAYOUT.pack_hwcfg(self.hwcfg)):
                words[LAYOUT.result.names[i]] = Const(v, LIMB)
            with m.Switch(r.idx):
                for name, value in words.items():
                    with m.Case(LAYOUT.result.index(name)):
                        m.d.comb += mem.wr_data.payload.eq(value)
                with m.Default():
                    m.d.comb += mem.wr_data.payload.eq(0)
            with m.If(mem.wr_data.ready):
                m.d.sync += r.idx.eq(r.idx + 1)
                with m.If(r.idx == LAYOUT.result.limbs - 1):
                    m.next = "WAIT_WR"
        with m.State("WAIT_WR"):
            with m.If(~mem.wr_busy):
                # A failed header write can only be reported in the register.
                m.d.sync += r.status.eq(errors())
                m.d.comb += r.done_pulse.eq(1)
                m.next = "IDLE"

    def _elab_result_path(self, m, r, mem):
        """Sub-engine results → arbiter tree → their tag's slot (beside the FSM, sharing the write channel).

        Each sub-engine's results pass a skid buffer and a tree of
        registered packet arbiters. The slot address (tag × s, a multiply,
        then a 64-bit add) is computed over two registered stages before
        the write command: stage 0 registers the slot's offset (the
        multiply, from the tag of the buffered result, stable while it is
        valid), stage 1 the address (the add), stage 2 issues the command;
        then the ``s`` words go out at the pace of both sides (``rp_busy``).
        Only the FSM's RES_* states use the write channel too, and only
        once ``rp_busy`` is low.
        """
        s = self._s
        rl = result_layout(self._w, LAYOUT.job_field("tag").width)
        srcs = []
        for i, eng in enumerate(self._engines):
            m.submodules[f"res_skid{i}"] = sb = SkidBuffer(rl)
            wiring.connect(m, eng.o_stream, sb.i_stream)
            srcs.append(sb.o_stream)
        m.submodules.res_out = res = SkidBuffer(rl)
        arbiter_tree(m, "res_arb", rl, srcs, res.i_stream)
        osp = res.o_stream
        m.d.comb += r.res_valid.eq(osp.valid)
        res_left = Signal(range(s + 1))
        # res_left == 1, a register: the compare behind the writer's ready ->
        # jobs_done's adder was on the ECP5 board's 100 MHz edge.
        res_last = Signal()
        # The slot's byte offset (8 + tag·s limbs): a multiply by a constant.
        rp_off = Signal(range((LAYOUT.result.limbs + ((1 << len(osp.payload.tag)) - 1) * s
                               + 1) * LAYOUT.limb_bytes))
        rp_addr = Signal(64)
        rp_stage = Signal(range(3))
        with m.If(~r.rp_busy):
            with m.If(osp.valid & ~r.ap_idle):
                m.d.sync += [
                    rp_off.eq((LAYOUT.result.limbs + osp.payload.tag * s) * LAYOUT.limb_bytes),
                    rp_addr.eq(r.result + rp_off),
                ]
                with m.If(rp_stage != 2):
                    m.d.sync += rp_stage.eq(rp_stage + 1)
                with m.Else():
                    m.d.comb += [mem.wr_cmd.valid.eq(1), mem.wr_cmd.payload.addr.eq(rp_addr),
                                 mem.wr_cmd.payload.limbs.eq(s)]
                    with m.If(mem.wr_cmd.ready):
                        m.d.sync += [r.rp_busy.eq(1), res_left.eq(s), res_last.eq(s == 1),
                                     rp_stage.eq(0)]
            with m.Else():
                m.d.sync += rp_stage.eq(0)
        with m.Else():
            m.d.comb += [mem.wr_data.valid.eq(osp.valid),
                         mem.wr_data.payload.eq(osp.payload.data),
                         osp.ready.eq(mem.wr_data.ready)]
            with m.If(osp.valid & osp.ready):
                m.d.sync += [res_left.eq(res_left - 1), res_last.eq(res_left == 2)]
                with m.If(res_last):
                    m.d.sync += [r.rp_busy.eq(0), r.jobs_done.eq(r.jobs_done + 1)]


def _flag(name):
    """The status bit ``name`` (:data:`hefl.hw.regmap.LAYOUT`)."""
    return LAYOUT.status_flag(name)


def _command_state(m, state, cmd, addr, limbs, next_state):
    """FSM state ``state``: offer the AXI master command ``{addr, limbs}``, then ``next_state``.

    One cycle when the master is ready (it is, once its previous command on
    that channel is done); held until then.
    """
    with m.State(state):
        m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(addr), cmd.payload.limbs.eq(limbs)]
        with m.If(cmd.ready):
            m.next = next_state


class _RunRegs:
    """The run's registers and the decode signals the kernel's sub-blocks share.

    Parameters
    ----------
    s, w : int
        Words per operand, word width.
    engines : int
        Sub-engines.
    """

    def __init__(self, s, w, engines):
        tagf, opf, countf = (LAYOUT.job_field(n) for n in ("tag", "op", "count"))
        self.desc = Signal(64)
        self.result = Signal(64)
        self.table = Signal(64)
        self.status = Signal(8)
        self.cycles = Signal(64)
        self.counting = Signal()
        self.jobs_sent = Signal(tagf.width + 1)      # up to J = 2^16
        self.jobs_done = Signal(tagf.width + 1)
        self.hdr = [Signal(LIMB, name=f"hdr_{n}") for n in LAYOUT.desc.names]
        self.idx = Signal(range(max(LAYOUT.desc.limbs, LAYOUT.result.limbs) + 1))
        self.drained = Signal()     # DRAIN's exit condition, registered
        self.const_sel = Signal(2)
        self.const_addr = Signal(range(s))
        self.const_en = Signal()
        self.const_data = Signal(LIMB)
        # Job-stream limbs not yet taken, minus one (stream_limbs - consumed - 1,
        # modulo 2^34): the job check compares n_ops with it, no 3-input sum.
        self.left1 = Signal(34)
        # Registered: consumed == stream_limbs, jobs_sent == jobs, a read abort due.
        self.stream_end = Signal()
        self.all_sent = Signal()
        self.abort_rd = Signal()
        self.job_op = Signal(opf.width)
        self.job_tag = Signal(tagf.width)
        self.job_count = Signal(countf.width)
        self.job_left = Signal(range(s * ((1 << countf.width) - 1) + 1))
        self.job_first = Signal()
        # job_left == 1, a register: the compare into the engine's input
        # stage (the beat's last flag) was on the ECP5 board's 100 MHz edge.
        self.job_last = Signal()
        self.done_pulse = Signal()
        self.start_pulse = Signal()
        self.ap_idle = Signal()
        self.rp_busy = Signal()                      # result path between wr_cmd and last beat
        self.res_valid = Signal()                    # a result beat waits at the writer
        self.stream_limbs = self.field("stream_limbs")

        # Job header decode (Kernel._elab_job_decode): the registered limb,
        # its fields, and the registered operand count and validity.
        self.job_hdr = Signal(LIMB)
        self.l_op = self.job_hdr[opf.lsb:opf.lsb + opf.width]
        self.l_tag = self.job_hdr[tagf.lsb:tagf.lsb + tagf.width]
        self.l_count = self.job_hdr[countf.lsb:countf.lsb + countf.width]
        self.n_ops = Signal(range(s * ((1 << countf.width) - 1) + 1))
        self.bad_job = Signal()
        self.job_n_ops = Signal.like(self.n_ops)
        self.job_bad = Signal()
        # Stage 1 of the decode (combinational, then registered in JOB_DEC).
        recip, _ = div_const_parts(w, countf.width + 1)
        self.dec_pow_prod = Signal(countf.width + recip.bit_length())  # count · (1/w fixed point)
        self.dec_tab_num = Signal(countf.width + 1)      # count + p - 1
        self.dec_prod = Signal.like(self.n_ops)          # count · s
        self.job_pow_prod = Signal.like(self.dec_pow_prod)
        self.job_tab_num = Signal.like(self.dec_tab_num)
        self.job_prod = Signal.like(self.dec_prod)
        self.job_dec_op = Signal(opf.width)

        # Sub-engines: the target, the parser's beats to it, their table ports.
        self.tgt = Signal(range(max(2, engines)))   # never 0 bits wide
        self.pick = Signal(range(max(2, engines)))
        self.p_valid = Signal()
        self.p_ready = Signal()
        self.p_payload = Signal(job_layout(w, tagf.width))
        self.fetch_bad = Signal(engines)
        self.eng_free = Signal(engines)
        self.eng_idle = Signal(engines)

    def field(self, name):
        """The descriptor header limb ``name``."""
        return self.hdr[LAYOUT.desc.index(name)]


def div_const(value, divisor, value_bits):
    """``floor(value / divisor)`` for an unsigned ``value_bits``-bit signal and a constant.

    A multiply by a fixed-point reciprocal and a shift instead of a divider
    (a combinational divider by 51 would be a long path at 300 MHz). The
    reciprocal is chosen, and checked exhaustively here, so the result is
    exact for every ``value`` below ``2^value_bits``.
    """
    recip, shift = div_const_parts(divisor, value_bits)
    return (value * recip) >> shift if recip != 1 else value >> shift


@functools.cache
def div_const_parts(divisor, value_bits):
    """``(recip, shift)`` with ``floor(x / divisor) = (x · recip) >> shift`` for every ``x < 2^value_bits``.

    ``(1, log2 divisor)`` for a power of two (:func:`div_const`'s reciprocal).
    Cached: the reciprocal is checked against every ``x``, and every kernel
    built asks for the same few.
    """
    if divisor & (divisor - 1) == 0:
        return 1, divisor.bit_length() - 1
    top = (1 << value_bits) - 1
    for shift in range(top.bit_length(), 3 * top.bit_length() + 8):
        recip = -(-(1 << shift) // divisor)
        if all((x * recip) >> shift == x // divisor for x in range(top + 1)):
            return recip, shift
    raise ValueError(f"No exact reciprocal for division by {divisor}")  # pragma: no cover

