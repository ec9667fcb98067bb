"""ModExp: constant-time fixed-window exponentiation (and products) on one MontMul.

Algorithm (docs/design.md §1.4, golden model :func:`hefl.golden.modexp.modexp`)
-------------------------------------------------------------------------------
Inputs: odd ``N < R/4`` with ``R = 2^(w·s)``, ``N' = -N^-1 mod 2^w``, the
constants ``R² mod N`` and ``R mod N`` (loaded once per batch through
``const_wr_*``), and plain residues ``< N`` streamed in as jobs (see
:mod:`hefl.hw.jobs`). Every MontMul result is lazily reduced (``< 2N``) and fed
back unchanged, the job's result too: the lane sends ``ACC ≡ result``,
``< 2N``, and the sub-engine's :class:`~hefl.hw.reducer.Reducer` subtracts
``N`` where it is due (once for all its lanes). ``MM``/``SQ``/``ONE``
are the MontMul modes multiply, squaring and multiply by one
(:mod:`hefl.golden.montmul_hw`); the mode is fixed by the position in the
schedule, never by a value.

POWMOD ``b^e mod N`` over a declared exponent length ``c`` bits,
``W = ceil(c / k)`` windows::

    T[0] = R mod N                          (the constant; Montgomery one)
    T[1] = MM(b, R² mod N)                  (conversion in)
    T[2] = SQ(T[1]); T[j] = MM(T[j-1], T[1])   j = 3 .. 2^k - 1
    acc  = T[0]
    for each k-bit window d, most significant first:
        k × acc = SQ(acc)
        acc = MM(acc, T[d])                 entry 0 included
    x = ONE(acc)                            (conversion out: x <= N)
    sent: x                                 (the reducer: x - N if x >= N else x)

``2^k - 1 + W·(k + 1) + 1`` MontMuls, ``W·k + 1`` of them squarings: the
golden model's count minus the one that computes ``R mod N`` (here a loaded
constant). Nothing in the schedule depends on ``b`` or ``e``: memory
addresses differ with the window digit, but every access takes one cycle
whatever its address, and the digit bits are fetched in a loop whose length
is ``k``. The cycle count of a job is a function of ``c`` alone.

PRODUCT ``a_1 · ... · a_K mod N`` (MULMOD is the case ``K = 2``)::

    acc = a_1
    acc = MM(a_i, acc)                      i = 2 .. K      (acc = Π·R^-(K-1))
    (K - 1) × acc = MM(acc, R² mod N)                       (each multiplies by R)
    sent: acc                               (the reducer: acc - N if acc >= N else acc)

TABLE_PRODUCT (op 3) is PRODUCT without the ``K − 1`` corrections: the host
sends Montgomery-form table entries first and the plain factor last, so
``Π T~ · f · R^-(K-1) = Π T · f``: ``K − 1`` MontMuls.

Storage and schedule
--------------------
One lane memory of ``w``-bit words, one synchronous read port and one write
port (a simple dual-port block RAM; ``ram_style`` can ask for UltraRAM),
holding ``s``-word slots::

    T[0] .. T[2^k-1] | R² | N | ACC | Y | X | exponent words (ceil(max_exp_bits / w))

The MontMul core reads its operands (and ``N``) from here and writes its
result here (in place: ``ACC ← MM(ACC, ·)``); every read is registered
before any logic (the core's ``rd_q``, the lane's ``rq``). ``X`` receives the
base (POWMOD; the exponent follows it, so the job loads with one
incrementing address) or, alternately with ``Y``, the next factor: a factor
loads while the previous multiply runs. One MontMul operation follows the
other (each needs the previous result): the lane asks for the next as soon
as the core accepts the current one, and the core takes it when it has
issued the current one's last slot (or, for ``s < D + 2``, when the result
is written).

* window digit: the core's read port is busy while it issues, so the
  digit's ``k`` bits are fetched when the core has issued the window's last
  multiply: one read per bit, pipelined, ``k + 2`` cycles;
* result: ``ACC_j`` read and sent from an output register, 3 cycles per
  word at full ``o_stream`` readiness (no arithmetic: the reducer after
  the result tree subtracts ``N``).

The exact cycle model, checked against simulation, is
:func:`hefl.golden.batch.modexp_job_cycles`.

Deviations and limits
---------------------
* Constants must be written while the engine is idle (``idle = 1``).
* A job with ``count > max_exp_bits`` or a malformed beat stream gives an
  unspecified result but never hangs the lane once its ``last`` beat came; the
  kernel validates jobs before they reach the engine.
"""

from functools import partial
from types import SimpleNamespace

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hefl.golden.montgomery import words_for
from hefl.hw.checks import check_int
from hefl.hw.jobs import CONST_SEL, COUNT_BITS, TAG_BITS, JobOp, engine_ports
from hefl.hw.montmul import MODE, T_RAM_STYLES, MontMul
from hefl.hw.params import MODEXP_WINDOW_BITS

__all__ = ["ModExp", "RAM_STYLES", "ecp5_slice_bits"]

#: ``ram_style`` values for the lane memory (passed to synthesis as the
#: memory's ``ram_style`` attribute): None lets the tool choose.
RAM_STYLES = (None, "block", "ultra")


class ModExp(wiring.Component):
    """One lane: fixed-window modexp, product, mulmod and table-product jobs on one MontMul.

    Parameters
    ----------
    operand_bits : int
        Largest modulus width ``L``; ``s = words_for(L, w)`` words.
    word_bits : int
        Word width ``w``.
    window_bits : int
        Window width ``k`` (table of ``2^k`` entries).
    max_exp_bits : int
        Longest declared exponent accepted (sizes the exponent memory).
    tag_bits : int
        Width of the job tag carried to the result.
    multiplier : callable, optional
        Factory ``multiplier(operand_bits=L, word_bits=w, addr_bits=aw)`` of a
        component with :class:`hefl.hw.montmul.MontMul`'s interface; defaults
        to ``MontMul``.
    ram_style : str, optional
        ``"block"`` or ``"ultra"``: the lane memory's ``ram_style`` attribute.
    t_ram_style : str, optional
        The default MontMul's ``t_ram_style``
        (:data:`hefl.hw.montmul.T_RAM_STYLES`: ``"block"`` puts its
        accumulator in a block RAM); only without a ``multiplier``.
    mem_slice_bits : int, optional
        Build the lane memory as memories of this many bits side by side
        (the last one narrower), so that each is one block RAM as deep as
        the lane memory and no multiplexer follows the block RAMs' outputs.
        Default: on ECP5, :func:`ecp5_slice_bits` of the memory's depth;
        elsewhere one memory of ``w`` bits.

    Attributes
    ----------
    nprime : In(w)
        ``-N^-1 mod 2^w``, stable for the batch.
    const_wr_en, const_wr_sel, const_wr_addr, const_wr_data : In
        Constant load (``sel`` 0 = N, 1 = R² mod N, 2 = R mod N), word by word,
        while idle.
    i_stream : In(stream.Signature(job_layout(w, tag_bits)))
        Jobs (see :mod:`hefl.hw.jobs`).
    o_stream : Out(stream.Signature(result_layout(w, tag_bits)))
        Results, ``s`` beats each, ``≡`` the job's result and ``< 2N`` (``≤ N``
        for POWMOD); :class:`~hefl.hw.reducer.Reducer` makes them ``< N``.
    idle : Out(1)
        No job loaded or in progress.
    """

    @staticmethod
    def _check(operand_bits, word_bits, window_bits, max_exp_bits, tag_bits, ram_style,
               t_ram_style, multiplier, mem_slice_bits):
        check_int("Operand width", operand_bits, 4)
        check_int("Word width", word_bits, 2)
        check_int("Window width", window_bits)
        check_int("Tag width", tag_bits)
        if max_exp_bits is None:
            max_exp_bits = operand_bits
        check_int("Maximum exponent width", max_exp_bits)
        if window_bits >= word_bits:
            raise TypeError(f"Window width must be below the word width {word_bits}, "
                            f"not {window_bits!r}")
        if max_exp_bits >= 1 << COUNT_BITS:
            raise TypeError(f"Maximum exponent width must fit the {COUNT_BITS}-bit count "
                            f"field, not {max_exp_bits!r}")
        if ram_style not in RAM_STYLES:
            raise TypeError(f"RAM style must be one of {RAM_STYLES}, not {ram_style!r}")
        if t_ram_style is not None and (t_ram_style not in T_RAM_STYLES or multiplier is not None):
            raise TypeError(f"t RAM style must be one of {T_RAM_STYLES} with the default "
                            f"multiplier, not {t_ram_style!r}")
        if mem_slice_bits is not None:
            check_int("Memory slice width", mem_slice_bits)
        return max_exp_bits

    def __init__(self, *, operand_bits, word_bits, window_bits=MODEXP_WINDOW_BITS,
                 max_exp_bits=None, tag_bits=TAG_BITS, multiplier=None, ram_style=None,
                 t_ram_style=None, mem_slice_bits=None):
        try:
            max_exp_bits = self._check(operand_bits, word_bits, window_bits, max_exp_bits,
                                       tag_bits, ram_style, t_ram_style, multiplier,
                                       mem_slice_bits)
        except TypeError:
            # A component that was never built must not warn "created but never used".
            self._MustUse__silence = True
            raise
        if multiplier is None:
            multiplier = partial(MontMul, t_ram_style=t_ram_style)
        self._L = operand_bits
        self._w = word_bits
        self._k = window_bits
        self._x = max_exp_bits
        self._tag_bits = tag_bits
        self._s = words_for(operand_bits, word_bits)
        self._multiplier = multiplier
        self._ram_style = ram_style
        self._slice_bits = mem_slice_bits
        super().__init__(engine_ports(word_bits, self._s, tag_bits))

    # Read-only parameters -------------------------------------------------
    operand_bits = property(lambda self: self._L)
    word_bits = property(lambda self: self._w)
    words = property(lambda self: self._s)
    window_bits = property(lambda self: self._k)
    max_exp_bits = property(lambda self: self._x)
    tag_bits = property(lambda self: self._tag_bits)

    @property
    def exp_words(self):
        """Words of exponent storage: ``ceil(max_exp_bits / w)``."""
        return -(-self._x // self._w)

    @property
    def mem_depth(self):
        """Words of the lane memory: ``(2^k + 5)·s`` slots plus the exponent."""
        return _Slots(self._s, self._k, self.exp_words).depth

    def slice_bits_for(self, platform):
        """Width of each lane-memory slice when elaborated for ``platform``."""
        if self._slice_bits is not None:
            return min(self._slice_bits, self._w)
        if getattr(platform, "family", None) == "ecp5":
            return min(ecp5_slice_bits(self.mem_depth), self._w)
        return self._w

    def elaborate(self, platform):
        m = Module()
        w, s = self._w, self._s
        lane = _LaneRegs(slots=_Slots(s, self._k, self.exp_words), w=w, k=self._k,
                         tag_bits=self._tag_bits)
        sl = lane.slots

        m.submodules.mm = mm = self._multiplier(operand_bits=self._L, word_bits=w,
                                                addr_bits=sl.aw)
        # No word read in the cycle it is written is ever used (the core reads
        # every operand word before it writes a result, a chained operation
        # reads a result after it is written, the lane's own reads are of
        # other slots). The read is written as an asynchronous port and a
        # register, which yosys merges into the block RAM's synchronous port
        # with no_rw_check honoured: no read-old-data emulation (a delayed
        # write and an address compare behind the read-address mux, the ECP5
        # board's longest path). Same cycle behaviour as a synchronous port.
        rd, wr = self._elab_memory(m, sl.depth, self.slice_bits_for(platform))
        rd_data = lane.rd_data
        m.d.sync += rd_data.eq(rd.data)
        lane.chain = getattr(mm, "chain_safe", False)

        # The read port: the core's while it issues, the lane's otherwise; the
        # lane's data registered before any logic.
        # The lane's own reads: an exponent word (FETCH) or ACC_j (EMIT).
        # Each candidate is summed from registers alongside the state decode
        # (rd_exp), which only selects: an adder behind the decode was
        # the ECP5 board's longest path. exp_below is sl.exp + widx_next when
        # the offset wraps (at widx = 0 it names a word never used).
        exp_below = Signal(sl.aw)
        m.d.comb += exp_below.eq((sl.exp - 1) + lane.widx)
        a_exp = Mux(lane.boff == 0, exp_below, sl.exp + lane.widx)
        lane_addr = Mux(lane.rd_exp, a_exp, sl.acc + lane.rj)
        m.d.comb += [
            rd.addr.eq(Mux(mm.rd_en, mm.rd_addr, lane_addr)),
            mm.rd_data.eq(rd_data),
            mm.nprime.eq(self.nprime),
            mm.op_n.eq(sl.n),
            lane.can_start.eq(mm.ready if lane.chain else mm.idle),
            lane.digit_base.eq(lane.slot_addr[lane.digit]),
        ]
        m.d.sync += lane.rq.eq(rd_data)
        self._elab_write_port(m, lane, mm, wr)
        with m.FSM():
            self._fsm_job_load(m, lane, mm)
            self._fsm_powmod(m, lane, mm)
            self._fsm_product(m, lane, mm)
            self._fsm_reduce(m, lane, mm)
        self._elab_output(m, lane)
        return m

    def _elab_memory(self, m, depth, slice_bits):
        """The lane memory: ``(read, write)`` ports of ``w`` bits, read asynchronous.

        Built as ``ceil(w / slice_bits)`` memories side by side, each with
        its bits of the same address, enable and data. On ECP5 a memory
        deeper than one DP16KD's 512 words of 36 bits is otherwise split by
        depth, and a multiplexer on registered address bits follows the
        block RAMs' outputs (DP16KD: ~5.6 ns clock-to-out): block RAM →
        multiplexer → the core's read register or the output register was
        the board's 100 MHz critical path. Slices as wide as a block RAM
        of that depth holds need no multiplexer.
        """
        w = self._w
        attrs = {"no_rw_check": 1}
        if self._ram_style:
            attrs["ram_style"] = self._ram_style
        rd = SimpleNamespace(addr=Signal(max(1, (depth - 1).bit_length())), data=Signal(w))
        wr = SimpleNamespace(addr=Signal.like(rd.addr), data=Signal(w), en=Signal())
        for i, lo in enumerate(range(0, w, slice_bits)):
            bits = min(slice_bits, w - lo)
            mem = Memory(shape=unsigned(bits), depth=depth, init=[], attrs=attrs)
            m.submodules["mem" if lo == 0 and bits == w else f"mem{i}"] = mem
            r, wp = mem.read_port(domain="comb"), mem.write_port()
            m.d.comb += [r.addr.eq(rd.addr), rd.data[lo:lo + bits].eq(r.data),
                         wp.addr.eq(wr.addr), wp.en.eq(wr.en), wp.data.eq(wr.data[lo:lo + bits])]
        return rd, wr

    def _elab_write_port(self, m, lane, mm, wr):
        """The lane memory's one write port: MontMul results, job words, constants.

        By priority: the core's result words (which never wait), job words
        (``ld_en``, ``ld_addr``, ``ld_data``; LOAD holds ``i_stream.ready``
        low while the core writes) and constants (only while idle; sel 0 = N,
        1 = R² mod N, 2 = R mod N into ``T[0]``).
        """
        sl = lane.slots
        const_base = Signal(sl.aw)
        with m.Switch(self.const_wr_sel):
            with m.Case(CONST_SEL["n"]):
                m.d.comb += const_base.eq(sl.n)
            with m.Case(CONST_SEL["r2_mod_n"]):
                m.d.comb += const_base.eq(sl.r2)
            with m.Default():
                m.d.comb += const_base.eq(0)          # T[0] = R mod N
        # Constants pass a register in the lane: from the engine's broadcast
        # (one register for every lane) to each lane's block RAM, select →
        # base → add → write address was the ECP5 board's longest path. One
        # cycle later is harmless: they come only while the lane is idle, long
        # before a job's first word is written.
        c_en, c_addr, c_data = Signal(), Signal(sl.aw), Signal(self._w)
        m.d.sync += [c_en.eq(self.const_wr_en & (self.const_wr_sel < len(CONST_SEL))),
                     c_addr.eq(const_base + self.const_wr_addr), c_data.eq(self.const_wr_data)]
        # Address and data are selected by registers only (the core's wr_en,
        # c_en): job words come only in LOAD, constants only while idle, so
        # "neither" means a job word. ld_en (the state, the beat's valid, the
        # depth compare) only enables: selected by it, state and compare →
        # address multiplexer → every block RAM was the board's 100 MHz
        # critical path.
        m.d.comb += [lane.ld_data.eq(self.i_stream.payload.data),
                     wr.en.eq(mm.wr_en | lane.ld_en | c_en),
                     wr.addr.eq(Mux(mm.wr_en, mm.wr_addr, Mux(c_en, c_addr, lane.ld_addr))),
                     wr.data.eq(Mux(mm.wr_en, mm.wr_data, Mux(c_en, c_data, lane.ld_data)))]

    def _fsm_job_load(self, m, lane, mm):
        """States IDLE, LOAD and PMUL: take a job header, its operand words, multiply factors in.

        IDLE leaves a ``first`` beat on the stream (one cycle) and LOAD takes
        one beat per cycle at full ``i_stream`` validity. POWMOD writes base
        and exponent words from slot ``X`` on, then converts the base in
        (T1). PRODUCT/MULMOD/TABLE_PRODUCT writes the first factor to ``ACC``,
        the next ones alternately to ``X`` and ``Y``; PMUL multiplies the one
        just loaded in as soon as the core takes it, and LOAD goes on with the
        next factor while the core computes.
        """
        sl, s, beat = lane.slots, self._s, self.i_stream.payload
        # The job stream's ready from registers only: in_idle and in_load
        # follow the FSM (set and cleared with its transitions into and out
        # of IDLE and LOAD); decoded from the state, lane state -> ready ->
        # the job FIFO's read and registered ready was the ECP5 board's
        # 100 MHz critical path (10.3 ns). IDLE leaves a first beat on the
        # stream; LOAD takes a beat whenever the core does not write.
        m.d.comb += self.i_stream.ready.eq(Mux(lane.in_idle, ~beat.first,
                                               lane.in_load & ~mm.wr_en))
        with m.State("IDLE"):
            m.d.comb += self.idle.eq(1)
            # A first beat is left on the stream and consumed by LOAD.
            with m.If(self.i_stream.valid & beat.first):
                m.d.sync += [lane.job_op.eq(beat.op), lane.job_tag.eq(beat.tag),
                             lane.job_count.eq(beat.count), lane.first_fac.eq(1), lane.fj.eq(0),
                             lane.no_corr.eq((beat.count <= 1) | (beat.op == JobOp.TABLE_PRODUCT)),
                             lane.in_done.eq(0), lane.fsel.eq(0)]
                with m.If(beat.op == JobOp.POWMOD):
                    m.d.sync += lane.ld_addr.eq(sl.x)
                with m.Else():
                    m.d.sync += lane.ld_addr.eq(sl.acc)
                m.d.sync += [lane.in_idle.eq(0), lane.in_load.eq(1)]
                m.next = "LOAD"

        with m.State("LOAD"):
            with m.If(self.i_stream.valid & ~mm.wr_en):
                # Words past the exponent memory are dropped.
                m.d.comb += lane.ld_en.eq(lane.ld_addr < sl.depth)
                m.d.sync += lane.ld_addr.eq(lane.ld_addr + 1)
                with m.If(lane.job_op == JobOp.POWMOD):
                    with m.If(beat.last):
                        m.d.sync += [lane.ti.eq(1), lane.in_load.eq(0)]
                        m.next = "TABLE"
                with m.Else():
                    m.d.sync += lane.fj.eq(lane.fj + 1)
                    with m.If(beat.last | (lane.fj == s - 1)):
                        # A factor is complete: the next one goes to X after the
                        # first (in ACC), then alternately to Y and X (fsel: the
                        # slot being loaded, 0 = X).
                        m.d.sync += [lane.fj.eq(0), lane.first_fac.eq(0),
                                     lane.in_done.eq(beat.last)]
                        with m.If(lane.first_fac):
                            m.d.sync += [lane.ld_addr.eq(sl.x), lane.fsel.eq(0)]
                            with m.If(beat.last):
                                m.d.sync += lane.in_load.eq(0)
                                m.next = "CORR"
                        with m.Else():
                            m.d.sync += [lane.ld_addr.eq(Mux(lane.fsel, sl.x, sl.y)),
                                         lane.fsel.eq(~lane.fsel), lane.in_load.eq(0)]
                            m.next = "PMUL"

        with m.State("PMUL"):
            # The factor just loaded is in X if fsel (flipped after it) is 1, else in Y.
            lane.issue(m, mm, a=Mux(lane.fsel, sl.x, sl.y), b=sl.acc, dst=sl.acc, mode=MODE.MUL)
            with m.If(lane.can_start):
                with m.If(lane.in_done):
                    m.next = "CORR"
                with m.Else():
                    m.d.sync += lane.in_load.eq(1)
                    m.next = "LOAD"

    def _fsm_powmod(self, m, lane, mm):
        """States TABLE … FINAL: the table, the windows and the conversion out.

        TABLE issues ``T[1] = MM(X, R²)``, ``T[2] = SQ(T[1])`` and
        ``T[j] = MM(T[j-1], T[1])`` for ``j = 3 .. 2^k-1`` (each as soon as the
        core takes it, then one cycle to leave). SCAN counts the windows, one
        cycle per window plus one (``ceil(c/k) + 1`` cycles, no divider).
        FETCH waits until the core has issued its last slot, then reads the
        ``k`` digit bits MSB first (one read per bit, ``k + 2`` cycles). SQ
        issues ``k`` squarings, MULW the multiply by ``T[digit]``, WIN_DONE (1
        cycle) moves to the next window; FINAL issues the multiply by one.
        """
        sl, w, k, job_count = lane.slots, self._w, self._k, lane.job_count
        slot_addr = lane.slot_addr
        with m.State("TABLE"):
            with m.If(lane.ti == sl.table):
                m.d.sync += [lane.pos.eq(0), lane.widx.eq(0), lane.boff.eq(0),
                             lane.acc_src.eq(0)]
                m.next = "SCAN"
            with m.Else():
                first = lane.ti == 1
                lane.issue(m, mm, a=Mux(first, sl.x, slot_addr[lane.ti - 1]),
                           b=Mux(first, sl.r2, sl.t1), dst=slot_addr[lane.ti],
                           mode=Mux(lane.ti == 2, MODE.SQR, MODE.MUL))
                with m.If(lane.can_start):
                    m.d.sync += lane.ti.eq(lane.ti + 1)

        with m.State("SCAN"):
            # Find the bit position W·k above the top window (a loop of
            # W = ceil(count/k) cycles: public length, no divider); the top
            # window's zb = W·k − count bits above the declared length read as 0.
            zb_bits = len(lane.zb)
            with m.If(lane.pos < job_count):
                m.d.sync += lane.pos.eq(lane.pos + k)
                with m.If(lane.boff >= w - k):
                    m.d.sync += [lane.boff.eq(lane.boff + k - w), lane.widx.eq(lane.widx + 1)]
                with m.Else():
                    m.d.sync += lane.boff.eq(lane.boff + k)
            with m.Else():
                m.d.sync += [lane.fb.eq(0), lane.digit.eq(0),
                             lane.zb.eq(lane.pos[:zb_bits] - job_count[:zb_bits])]
                with m.If(lane.pos == 0):
                    m.next = "FINAL"
                with m.Else():
                    m.next = "FETCH"

        with m.State("FETCH"):
            self._fetch_digit(m, lane, mm)

        with m.State("SQ"):
            with m.If(lane.sq == k):
                lane.issue(m, mm, a=sl.acc, b=lane.digit_base, dst=sl.acc, mode=MODE.MUL)
                with m.If(lane.can_start):
                    m.next = "WIN_DONE"
            with m.Else():
                lane.issue(m, mm, a=lane.acc_src, b=lane.acc_src, dst=sl.acc, mode=MODE.SQR)
                with m.If(lane.can_start):
                    m.d.sync += [lane.acc_src.eq(sl.acc), lane.sq.eq(lane.sq + 1)]

        with m.State("WIN_DONE"):
            m.d.sync += lane.pos.eq(lane.pos - k)
            with m.If(lane.pos == k):
                m.next = "FINAL"
            with m.Else():
                m.d.sync += [lane.fb.eq(0), lane.digit.eq(0)]
                m.next = "FETCH"

        with m.State("FINAL"):
            lane.issue(m, mm, a=lane.acc_src, b=lane.acc_src, dst=sl.acc, mode=MODE.ONE)
            with m.If(lane.can_start):
                m.next = "RED_WAIT"

    def _fetch_digit(self, m, lane, mm):
        """FETCH: ``k`` bits MSB first, one read a cycle once the core has made its last read.

        Cycle ``fb < k`` steps the bit cursor down and reads its word; cycle
        ``fb ≥ 2`` takes bit ``fb − 2`` from the registered word (the top
        window's first ``zb`` bits, above the declared length, read as 0).
        Then SQ.
        """
        w, k = self._w, self._k
        with m.If(mm.ready & ~mm.rd_en):
            m.d.sync += lane.fb.eq(lane.fb + 1)
            with m.If(lane.fb < k):
                # Step down one bit: the word index drops when the offset wraps.
                m.d.sync += [lane.boff.eq(lane.boff_next), lane.widx.eq(lane.widx_next)]
                with m.If(lane.zb != 0):
                    m.d.sync += lane.zb.eq(lane.zb - 1)
                m.d.comb += lane.rd_exp.eq(1)
            with m.If(lane.fb >= 2):
                bit = lane.rq.bit_select(lane.boff_d[1], 1) & lane.inlen_d[1]
                m.d.sync += lane.digit.eq(((lane.digit << 1) | bit)[:k])
            with m.If(lane.fb == k + 1):
                m.d.sync += lane.sq.eq(0)
                m.next = "SQ"
        # The bit offset and the length check travel with the read (two cycles);
        # the word index is applied to the address this cycle.
        m.d.comb += [lane.boff_next.eq(Mux(lane.boff == 0, w - 1, lane.boff - 1)),
                     lane.widx_next.eq(Mux(lane.boff == 0, lane.widx - 1, lane.widx))]
        m.d.sync += [lane.boff_d[0].eq(lane.boff_next),
                     lane.boff_d[1].eq(lane.boff_d[0]),
                     lane.inlen_d[0].eq(lane.zb == 0),
                     lane.inlen_d[1].eq(lane.inlen_d[0])]

    def _fsm_product(self, m, lane, mm):
        """State CORR: the ``K - 1`` multiplies by R² of a PRODUCT job (none for a table product)."""
        sl = lane.slots
        with m.State("CORR"):
            # count − 1 corrections (count = K; a count of 0 asks for none).
            # no_corr: (job_count <= 1) | TABLE_PRODUCT, kept as a register (a
            # 16-bit compare in front of the core's start was the 100 MHz
            # critical path).
            with m.If(lane.no_corr):
                m.next = "RED_WAIT"
            with m.Else():
                lane.issue(m, mm, a=sl.acc, b=sl.r2, dst=sl.acc, mode=MODE.MUL)
                with m.If(lane.can_start):
                    m.d.sync += [lane.job_count.eq(lane.job_count - 1),
                                 lane.no_corr.eq(lane.job_count <= 2)]

    def _fsm_reduce(self, m, lane, mm):
        """States RED_WAIT … EMIT_V: ``ACC`` streamed out, 3 cycles a word.

        RED_WAIT waits for the last result word. Then per word: EMIT_A reads
        ``ACC_j``, EMIT_B puts the registered word in the output register,
        EMIT_V holds it until taken. Then IDLE. ``ACC ≡`` the result and
        ``< 2N`` (``≤ N`` after POWMOD's conversion out): the sub-engine's
        :class:`~hefl.hw.reducer.Reducer` subtracts ``N`` where it is due, once
        for all its lanes.
        """
        s = self._s
        with m.State("RED_WAIT"):
            with m.If(mm.idle):
                m.d.sync += lane.rj.eq(0)
                m.next = "EMIT_A"

        with m.State("EMIT_A"):
            m.next = "EMIT_B"

        with m.State("EMIT_B"):
            # rd_data holds ACC_j (read in EMIT_A): into a register, no logic.
            m.d.sync += [lane.o_data.eq(lane.rd_data), lane.o_last.eq(lane.rj == s - 1),
                         lane.o_valid.eq(1)]
            m.next = "EMIT_V"

        with m.State("EMIT_V"):
            with m.If(self.o_stream.ready):
                with m.If(lane.o_last):
                    m.d.sync += lane.in_idle.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += lane.rj.eq(lane.rj + 1)
                    m.next = "EMIT_A"

    def _elab_output(self, m, lane):
        """The result stream: an output register, cleared when taken."""
        o = self.o_stream.payload
        m.d.comb += [self.o_stream.valid.eq(lane.o_valid), o.data.eq(lane.o_data),
                     o.tag.eq(lane.job_tag), o.last.eq(lane.o_last)]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += lane.o_valid.eq(0)


def ecp5_slice_bits(depth):
    """Widest slice one ECP5 DP16KD holds ``depth`` words of (1 … 36 bits).

    A DP16KD is 16 kbit plus parity: 512 × 36 (as a simple dual port),
    1024 × 18, 2048 × 9, 4096 × 4, 8192 × 2 or 16384 × 1.
    """
    for words, bits in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= words:
            return bits
    return 1


class _Slots:
    """Word addresses of the lane memory's slots (see "Storage and schedule").

    ``table`` entries ``T[0] .. T[2^k-1]`` from 0, then ``r2``, ``n``,
    ``acc``, ``y``, ``x`` (``s`` words each) and the exponent words at
    ``exp``; ``depth`` words in all, ``aw`` address bits.
    """

    def __init__(self, s, k, exp_words):
        self.words = s
        self.table = 1 << k
        self.t1 = s                          # T[1], the converted base
        self.r2, self.n, self.acc, self.y, self.x = ((self.table + i) * s for i in range(5))
        self.exp = self.x + s
        self.exp_words = exp_words
        self.depth = self.exp + exp_words
        self.aw = max(1, (self.depth - 1).bit_length())


class _LaneRegs:
    """The registers and requests the lane's FSM state groups share.

    Parameters
    ----------
    slots : _Slots
    w, k, tag_bits : int
        Word width, window width, tag width.
    """

    def __init__(self, *, slots, w, k, tag_bits):
        s, aw, T = slots.words, slots.aw, slots.table
        self.slots = slots
        self.chain = False
        # Memory ports.
        self.rd_exp = Signal()               # the lane reads exponent word widx, else ACC_rj
        self.rd_data = Signal(w, reset_less=True)  # the memory's read port, registered
        self.rq = Signal(w)                  # ... and once more: the lane's read data
        self.ld_en = Signal()                # job words
        self.in_idle = Signal(init=1)        # the FSM is in IDLE (a register beside it)
        self.in_load = Signal()              # ... in LOAD
        self.ld_addr = Signal(aw)
        self.ld_data = Signal(w)
        self.can_start = Signal()            # the core takes an op asked for now

        # Job header.
        self.job_op = Signal(JobOp)
        self.job_tag = Signal(tag_bits)
        self.job_count = Signal(COUNT_BITS)
        self.no_corr = Signal()              # CORR has nothing (more) to do

        # POWMOD.
        self.ti = Signal(range(T + 1))       # next table entry to build
        self.acc_src = Signal(aw)            # slot holding acc (T[0] before the first window)
        self.pos = Signal(COUNT_BITS + 2)    # bit position above the next window (W·k after SCAN)
        self.widx = Signal(range(max(2, slots.exp_words + 1)))
        self.boff = Signal(range(w))
        self.boff_next = Signal(range(w))
        self.widx_next = Signal.like(self.widx)
        self.boff_d = [Signal(range(w), name=f"boff_d{i}") for i in range(2)]
        self.inlen_d = [Signal(name=f"inlen_d{i}") for i in range(2)]
        self.zb = Signal(range(2 * k))       # top-window bits above the declared length
        self.digit = Signal(k)
        self.fb = Signal(range(k + 2))       # cycles of the digit fetch
        self.sq = Signal(range(k + 1))       # squarings issued in this window
        # Slot addresses by table index: a constant lookup, not a multiplier
        # (yosys would map ``digit * s`` to a DSP48E2).
        self.slot_addr = Array(Const(i * s, aw) for i in range(T + 1))
        self.digit_base = Signal(aw)

        # PRODUCT.
        self.first_fac = Signal()            # the factor being loaded is the first (to ACC)
        self.in_done = Signal()              # the job's last beat was received
        self.fj = Signal(range(s))           # word within the factor being loaded
        self.fsel = Signal()                 # the next factor goes to Y (1) or X (0)

        # Output.
        self.rj = Signal(range(s))
        self.o_valid = Signal()
        self.o_data = Signal(w)
        self.o_last = Signal()

    def issue(self, m, mm, *, a, b, dst, mode):
        """Ask the core for ``dst ← MontMul(a, b)`` in ``mode`` this cycle (taken if ``can_start``)."""
        m.d.comb += [mm.start.eq(self.can_start), mm.op_a.eq(a), mm.op_b.eq(b),
                     mm.op_dst.eq(dst), mm.op_mode.eq(mode)]
