"""The Vitis RTL kernel ``hefl_kernel``: AXI4-Lite control, AXI4 memory, BatchEngine.

Ports (Vitis RTL-kernel naming): ``ap_clk``, ``ap_rst_n`` (active low,
synchronous), ``interrupt``, ``s_axi_control_*`` (AXI4-Lite slave,
:mod:`hefl.hw.axil_ctrl`) and ``m_axi_gmem_*`` (AXI4 master,
:mod:`hefl.hw.axi_master`). Registers, their offsets and the buffer formats
come from :mod:`hefl.hw.regmap`; nothing here repeats an offset or index.

One run (``ap_start`` accepted → ``ap_done``)
---------------------------------------------
1. Read the 8-limb descriptor header at ``desc``. Check magic and version
   (status ``bad_magic``), ``s`` and ``w`` against the hardware (``geometry``),
   ``J <= 2^16`` (``bad_job``) and that the stream fits one read command
   (``stream_length``). Any error → skip to step 5.
2. Read the constants N, R² mod N, R mod N (``s`` limbs each) into the
   BatchEngine (``const_wr_*``); N' goes to its ``nprime`` port from the
   header. The same read command continues into the job stream.
3. Per job: decode the header limb (op, tag, count), check it (op ≠ 3,
   tag < J, count in range, job inside ``stream_limbs``; else ``bad_job``
   or ``stream_length`` and stop reading, step 4), then forward its operand
   limbs to the engine's ``i_stream`` with ``first``/``last``. After J jobs,
   the stream must have been consumed exactly (else ``stream_length``).
4. Meanwhile, and until every job sent has come back, each result leaving
   ``o_stream`` (``s`` words, any order) is written at its tag's slot
   ``result + 8·(8 + tag·s)`` bytes.
5. Write the result header (status, cycles, jobs completed), wait for its
   write response, raise ``ap_done``, return to idle. An AXI error response
   seen during the run adds ``bus_error`` to the status.

The cycle counter runs from the accepted start to the result header (the
value written in the header and shown in the ``cycles_*`` registers).
"""

from amaranth.hdl import Cat, ClockDomain, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hefl.golden.montgomery import words_for
from hefl.hw.axi_master import AxiMaster, axi4_members
from hefl.hw.axil_ctrl import AxilCtrl, axil_members
from hefl.hw.regmap import KERNEL_NAME, LAYOUT, REGMAP

__all__ = ["Kernel", "KERNEL_NAME", "ceil_div_const"]

LIMB = LAYOUT.limb_bits


class Kernel(wiring.Component):
    """The ``hefl_kernel`` top (see the module docstring).

    Parameters
    ----------
    operand_bits : int
        Modulus width L the BatchEngine is built for.
    word_bits : int
        Word width w (≤ 64: one word per limb).
    lanes : int
        BatchEngine lanes E.
    window_bits : int
        Modexp window k.
    max_exp_bits : int
        Longest exponent a POWMOD job may declare (< 2^16).
    data_bits : int
        ``m_axi_gmem`` data width (64 in simulation, 512 on Alveo).
    max_burst : int
        Longest AXI burst in beats.
    engine : wiring.Component, optional
        A prebuilt engine with the BatchEngine's interface; by default a
        :class:`hefl.hw.batch_engine.BatchEngine` is made from the
        parameters above.
    multiplier : callable, optional
        MontMul factory for the default engine's lanes (e.g.
        ``functools.partial(MontMul, tile_bits=(18, 18))`` on ECP5).
    """

    def __init__(self, *, operand_bits, word_bits, lanes=1, window_bits=4, max_exp_bits=None,
                 data_bits=64, max_burst=64, engine=None, multiplier=None):
        for name, v in (("Operand width", operand_bits), ("Word width", word_bits),
                        ("Lane count", lanes), ("Window width", window_bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        if word_bits > LIMB:
            raise TypeError(f"Word width must be at most {LIMB} (one word per limb), not {word_bits}")
        if max_exp_bits is None:
            max_exp_bits = operand_bits
        ct = LAYOUT.job_field("count")
        if not isinstance(max_exp_bits, int) or not 1 <= max_exp_bits < 1 << ct.width:
            raise TypeError(f"Maximum exponent bits must be an integer from 1 to "
                            f"{(1 << ct.width) - 1}, not {max_exp_bits!r}")
        if engine is None:
            from hefl.hw.batch_engine import BatchEngine
            engine = BatchEngine(operand_bits=operand_bits, word_bits=word_bits, lanes=lanes,
                                 window_bits=window_bits, max_exp_bits=max_exp_bits,
                                 tag_bits=LAYOUT.job_field("tag").width, multiplier=multiplier)
        self._engine = engine
        self._L = operand_bits
        self._w = word_bits
        self._s = getattr(engine, "words", None) or words_for(operand_bits, word_bits)
        self._lanes = lanes
        self._k = window_bits
        self._x = max_exp_bits
        self._dw = data_bits
        self._master = AxiMaster(data_bits=data_bits, max_burst=max_burst)
        members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        for n, d, w in axil_members(REGMAP.addr_bits):
            members[f"{REGMAP.control_port}_{n}"] = (In if d == "in" else Out)(w)
        for n, d, w in axi4_members(data_bits):
            members[f"{REGMAP.memory_port}_{n}"] = (Out if d == "out" else In)(w)
        super().__init__(members)

    @property
    def words(self):
        """Words per operand ``s``."""
        return self._s

    @property
    def hwcfg(self):
        """Values of the read-only configuration registers, by register name."""
        return {"hw_word_bits": self._w, "hw_words": self._s, "hw_lanes": self._lanes,
                "hw_window_bits": self._k, "hw_max_exp_bits": self._x,
                "hw_data_bits": self._dw}

    def elaborate(self, platform):
        m = Module()
        # The kernel defines its clock domain from the Vitis-named pins.
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.ap_clk), cd.rst.eq(~self.ap_rst_n)]

        m.submodules.ctrl = ctrl = AxilCtrl(regmap=REGMAP)
        m.submodules.mem = mem = self._master
        m.submodules.engine = eng = self._engine

        for n, d, _ in axil_members(REGMAP.addr_bits):
            port, inner = getattr(self, f"{REGMAP.control_port}_{n}"), getattr(ctrl.bus, n)
            m.d.comb += inner.eq(port) if d == "in" else port.eq(inner)
        for n, d, _ in axi4_members(self._dw):
            port, inner = getattr(self, f"{REGMAP.memory_port}_{n}"), getattr(mem.bus, n)
            m.d.comb += port.eq(inner) if d == "out" else inner.eq(port)

        s, w = self._s, self._w
        for name, value in self.hwcfg.items():
            m.d.comb += getattr(ctrl, name).eq(value)

        # --- control state ------------------------------------------------
        desc = Signal(64)
        result = Signal(64)
        status = Signal(8)
        cycles = Signal(64)
        counting = Signal()
        jobs_sent = Signal(LAYOUT.job_field("tag").width + 1)    # up to J = 2^16
        jobs_done = Signal(LAYOUT.job_field("tag").width + 1)
        hdr = [Signal(LIMB, name=f"hdr_{n}") for n in LAYOUT.desc.names]
        idx = Signal(range(max(LAYOUT.desc.limbs, LAYOUT.result.limbs) + 1))
        const_sel = Signal(2)
        const_addr = Signal(range(s))
        consumed = Signal(34)              # job-stream limbs taken so far
        tagf, opf, countf = (LAYOUT.job_field(n) for n in ("tag", "op", "count"))
        job_op = Signal(opf.width)
        job_tag = Signal(tagf.width)
        job_count = Signal(countf.width)
        job_left = Signal(range(s * ((1 << countf.width) - 1) + 1))
        job_first = Signal()
        done_pulse = Signal()
        start_pulse = Signal()
        rp_busy = Signal()                 # result path between wr_cmd and last beat

        def field(name):
            return hdr[LAYOUT.desc.index(name)]

        def flag(name):
            return LAYOUT.status_flag(name)

        m.d.comb += [
            ctrl.status.eq(status),
            ctrl.cycles_lo.eq(cycles[:32]),
            ctrl.cycles_hi.eq(cycles[32:]),
            eng.nprime.eq(field("nprime")),
            ctrl.ctrl_ap_done_set.eq(done_pulse),
            ctrl.ctrl_ap_ready_set.eq(start_pulse),
            ctrl.ctrl_ap_start_clear.eq(start_pulse & ~ctrl.ctrl_auto_restart),
            ctrl.isr_done_set.eq(done_pulse & ctrl.ier_done),
            ctrl.isr_ready_set.eq(start_pulse & ctrl.ier_ready),
            self.interrupt.eq(ctrl.gie_enable & (ctrl.isr_done | ctrl.isr_ready)),
        ]
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)

        stream_limbs = field("stream_limbs")
        const_limbs = LAYOUT.constants_limbs(s)
        op_powmod, op_mulmod, op_product = (LAYOUT.op(n) for n in ("powmod", "mulmod", "product"))

        limb = mem.rd_data.payload
        # Job header decode, one register stage after the limb arrives so the
        # checks below start from flops, not from the AXI read path.
        job_hdr = Signal(LIMB)
        l_op = job_hdr[opf.lsb:opf.lsb + opf.width]
        l_tag = job_hdr[tagf.lsb:tagf.lsb + tagf.width]
        l_count = job_hdr[countf.lsb:countf.lsb + countf.width]
        n_ops = Signal(range(s * ((1 << countf.width) - 1) + 1))
        with m.Switch(l_op):
            with m.Case(op_powmod):
                m.d.comb += n_ops.eq(s + ceil_div_const(l_count, w, countf.width))
            with m.Case(op_mulmod):
                m.d.comb += n_ops.eq(2 * s)
            with m.Default():
                m.d.comb += n_ops.eq(l_count * s)
        bad_job = Signal()
        m.d.comb += bad_job.eq(
            (l_op > max(op_powmod, op_mulmod, op_product)) | (l_tag >= field("jobs"))
            | ((l_op == op_powmod) & (l_count > self._x))
            | ((l_op == op_mulmod) & (l_count != 2))
            | ((l_op == op_product) & (l_count == 0)))
        # Second stage: the job's operand count and validity, registered.
        job_n_ops = Signal.like(n_ops)
        job_bad = Signal()

        ap_idle = Signal()
        m.d.comb += ctrl.ctrl_ap_idle.eq(ap_idle)

        with m.FSM(name="run"):
            with m.State("IDLE"):
                m.d.comb += ap_idle.eq(1)
                with m.If(ctrl.ctrl_ap_start):
                    m.d.comb += [start_pulse.eq(1), mem.clear_error.eq(1)]
                    m.d.sync += [
                        desc.eq(Cat(ctrl.desc_lo, ctrl.desc_hi)),
                        result.eq(Cat(ctrl.result_lo, ctrl.result_hi)),
                        status.eq(0), cycles.eq(0), counting.eq(1),
                        jobs_sent.eq(0), jobs_done.eq(0), idx.eq(0),
                        *(h.eq(0) for h in hdr),
                    ]
                    m.next = "HDR_CMD"
            with m.State("HDR_CMD"):
                m.d.comb += [mem.rd_cmd.valid.eq(1), mem.rd_cmd.payload.addr.eq(desc),
                             mem.rd_cmd.payload.limbs.eq(LAYOUT.desc.limbs)]
                with m.If(mem.rd_cmd.ready):
                    m.next = "HDR"
            with m.State("HDR"):
                m.d.comb += mem.rd_data.ready.eq(1)
                with m.If(mem.rd_data.valid):
                    with m.Switch(idx):
                        for i, h in enumerate(hdr):
                            with m.Case(i):
                                m.d.sync += h.eq(limb)
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == LAYOUT.desc.limbs - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                st = Signal(8)
                m.d.comb += st.eq(
                    Mux(field("magic") != LAYOUT.magic_word, flag("bad_magic"), 0)
                    | Mux((field("words") != s) | (field("word_bits") != w), flag("geometry"), 0)
                    | Mux(field("jobs") > 1 << tagf.width, flag("bad_job"), 0)
                    | Mux(stream_limbs >= (1 << 32) - const_limbs, flag("stream_length"), 0))
                m.d.sync += [status.eq(st), const_sel.eq(0), const_addr.eq(0), consumed.eq(0)]
                with m.If(st != 0):
                    m.next = "DRAIN"
                with m.Else():
                    m.next = "CONST_CMD"
            with m.State("CONST_CMD"):
                m.d.comb += [mem.rd_cmd.valid.eq(1),
                             mem.rd_cmd.payload.addr.eq(desc + LAYOUT.desc.limbs * LIMB // 8),
                             mem.rd_cmd.payload.limbs.eq(const_limbs + stream_limbs)]
                with m.If(mem.rd_cmd.ready):
                    m.next = "CONST"
            with m.State("CONST"):
                m.d.comb += [mem.rd_data.ready.eq(1),
                             eng.const_wr_en.eq(mem.rd_data.valid),
                             eng.const_wr_sel.eq(const_sel),
                             eng.const_wr_addr.eq(const_addr),
                             eng.const_wr_data.eq(limb[:w])]
                with m.If(mem.rd_data.valid):
                    m.d.sync += const_addr.eq(const_addr + 1)
                    with m.If(const_addr == s - 1):
                        m.d.sync += [const_addr.eq(0), const_sel.eq(const_sel + 1)]
                        with m.If(const_sel == len(LAYOUT.constants) - 1):
                            m.next = "JOB_HDR"
            with m.State("JOB_HDR"):
                with m.If(jobs_sent == field("jobs")):
                    with m.If(consumed != stream_limbs):
                        m.d.comb += mem.rd_abort.eq(1)
                        m.d.sync += status.eq(status | flag("stream_length"))
                    m.next = "DRAIN"
                with m.Elif(consumed == stream_limbs):
                    # Jobs remain but the stream is exhausted: nothing more to read.
                    m.d.sync += status.eq(status | flag("stream_length"))
                    m.next = "DRAIN"
                with m.Else():
                    m.d.comb += mem.rd_data.ready.eq(1)
                    with m.If(mem.rd_data.valid):
                        m.d.sync += job_hdr.eq(limb)
                        m.next = "JOB_DEC"
            with m.State("JOB_DEC"):
                m.d.sync += [job_n_ops.eq(n_ops), job_bad.eq(bad_job)]
                m.next = "JOB_CHK"
            with m.State("JOB_CHK"):
                with m.If(job_bad):
                    m.d.comb += mem.rd_abort.eq(1)
                    m.d.sync += status.eq(status | flag("bad_job"))
                    m.next = "DRAIN"
                with m.Elif(consumed + 1 + job_n_ops > stream_limbs):
                    m.d.comb += mem.rd_abort.eq(1)
                    m.d.sync += status.eq(status | flag("stream_length"))
                    m.next = "DRAIN"
                with m.Else():
                    m.d.sync += [job_op.eq(l_op), job_tag.eq(l_tag), job_count.eq(l_count),
                                 job_left.eq(job_n_ops), job_first.eq(1),
                                 consumed.eq(consumed + 1 + job_n_ops)]
                    m.next = "JOB_DATA"
            with m.State("JOB_DATA"):
                isp = eng.i_stream
                m.d.comb += [
                    isp.valid.eq(mem.rd_data.valid),
                    isp.payload.data.eq(limb[:w]),
                    isp.payload.first.eq(job_first),
                    isp.payload.last.eq(job_left == 1),
                    isp.payload.op.eq(job_op),
                    isp.payload.tag.eq(job_tag),
                    isp.payload.count.eq(job_count),
                    mem.rd_data.ready.eq(isp.ready),
                ]
                with m.If(isp.valid & isp.ready):
                    m.d.sync += [job_left.eq(job_left - 1), job_first.eq(0)]
                    with m.If(job_left == 1):
                        m.d.sync += jobs_sent.eq(jobs_sent + 1)
                        m.next = "JOB_HDR"
            with m.State("DRAIN"):
                # Every job handed to the engine comes back and is written first.
                # The engine must be idle too: the next run loads constants,
                # which the engine accepts only while idle.
                with m.If((jobs_done == jobs_sent) & ~rp_busy & ~eng.o_stream.valid & eng.idle
                          & ~mem.wr_busy & ~mem.rd_busy):
                    m.d.sync += [counting.eq(0), idx.eq(0),
                                 status.eq(status | Mux(mem.bus_error, flag("bus_error"), 0))]
                    m.next = "RES_CMD"
            with m.State("RES_CMD"):
                m.d.comb += [mem.wr_cmd.valid.eq(1), mem.wr_cmd.payload.addr.eq(result),
                             mem.wr_cmd.payload.limbs.eq(LAYOUT.result.limbs)]
                with m.If(mem.wr_cmd.ready):
                    m.next = "RES_HDR"
            with m.State("RES_HDR"):
                m.d.comb += mem.wr_data.valid.eq(1)
                with m.Switch(idx):
                    for name, value in (("status", status), ("cycles", cycles),
                                        ("jobs_done", jobs_done)):
                        with m.Case(LAYOUT.result.index(name)):
                            m.d.comb += mem.wr_data.payload.eq(value)
                    with m.Default():
                        m.d.comb += mem.wr_data.payload.eq(0)
                with m.If(mem.wr_data.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == LAYOUT.result.limbs - 1):
                        m.next = "WAIT_WR"
            with m.State("WAIT_WR"):
                with m.If(~mem.wr_busy):
                    # A failed header write can only be reported in the register.
                    m.d.sync += status.eq(status | Mux(mem.bus_error, flag("bus_error"), 0))
                    m.d.comb += done_pulse.eq(1)
                    m.next = "IDLE"

        # --- result path: engine results → their tag's slot ---------------
        osp = eng.o_stream
        res_left = Signal(range(s + 1))
        # The slot address (tag × s, a multiplier, then a 64-bit add) is
        # computed over two registered stages before the write command:
        # combinational, it chained the lanes' result arbiter through the
        # multiplier into the AXI master, the board's longest path. Stage 0
        # registers the tag (stable while o_stream is valid), stage 1 the
        # address, stage 2 issues the command.
        rp_tag = Signal.like(osp.payload.tag)
        rp_addr = Signal(64)
        rp_stage = Signal(range(3))
        with m.If(~rp_busy):
            with m.If(osp.valid & ~ap_idle):
                m.d.sync += [
                    rp_tag.eq(osp.payload.tag),
                    rp_addr.eq(result + ((LAYOUT.result.limbs + rp_tag * s) * (LIMB // 8))),
                ]
                with m.If(rp_stage != 2):
                    m.d.sync += rp_stage.eq(rp_stage + 1)
                with m.Else():
                    m.d.comb += [mem.wr_cmd.valid.eq(1), mem.wr_cmd.payload.addr.eq(rp_addr),
                                 mem.wr_cmd.payload.limbs.eq(s)]
                    with m.If(mem.wr_cmd.ready):
                        m.d.sync += [rp_busy.eq(1), res_left.eq(s), rp_stage.eq(0)]
            with m.Else():
                m.d.sync += rp_stage.eq(0)
        with m.Else():
            m.d.comb += [mem.wr_data.valid.eq(osp.valid),
                         mem.wr_data.payload.eq(osp.payload.data),
                         osp.ready.eq(mem.wr_data.ready)]
            with m.If(osp.valid & osp.ready):
                m.d.sync += res_left.eq(res_left - 1)
                with m.If(res_left == 1):
                    m.d.sync += [rp_busy.eq(0), jobs_done.eq(jobs_done + 1)]
        return m


def ceil_div_const(value, divisor, value_bits):
    """``ceil(value / divisor)`` for an unsigned ``value_bits``-bit signal and a constant.

    A multiply by a fixed-point reciprocal and a shift instead of a divider
    (a combinational divider by 51 would be a long path at 300 MHz). The
    reciprocal is chosen, and checked exhaustively here, so the result is
    exact for every ``value`` below ``2^value_bits``.
    """
    if divisor & (divisor - 1) == 0:
        return (value + divisor - 1) >> (divisor.bit_length() - 1)
    top = (1 << value_bits) - 1 + divisor - 1
    for shift in range(top.bit_length(), 3 * top.bit_length() + 8):
        recip = -(-(1 << shift) // divisor)
        if all((x * recip) >> shift == x // divisor for x in range(top + 1)):
            return ((value + (divisor - 1)) * recip) >> shift
    raise ValueError(f"No exact reciprocal for division by {divisor}")  # pragma: no cover
