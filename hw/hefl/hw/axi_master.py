"""AXI4 burst master moving 64-bit limbs between streams and memory.

The kernel thinks in 64-bit limbs (:data:`hefl.hw.regmap.LAYOUT`); the bus
is ``DW`` bits wide (64 in simulation, 512 on Alveo). This component turns a
*command* ``{addr, limbs}`` (``addr`` a byte address, limb-aligned) into
bursts and converts between beats and limbs on the way.

Read side: ``P`` ports
----------------------
Port 0 is ``rd_cmd``/``rd_data``/``rd_abort``/``rd_busy``; ports ``p ≥ 1``
(``read_ports > 1``, the kernel's table fetchers) are ``rd{p}_cmd``,
``rd{p}_data``, ``rd{p}_busy``. Each port turns its commands into bursts on
AR with ``ARID = p`` and unpacks its R beats into limbs in address order
(leading limbs of the first beat and trailing limbs of the last dropped).

* Every port owns a beat FIFO of ``read_credit`` beats and issues an AR only
  when the FIFO has room for every beat it has asked for, so ``rready`` is
  always high: the R channel takes one full beat per cycle, whatever the
  consumers do, and a port whose consumer stalls never blocks another
  port's data (no head-of-line blocking between IDs). The credit also
  bounds how far a bad descriptor can make the kernel read past its buffer.
* The FIFO's output is a register (block RAM read, then logic); limbs leave
  one per cycle of consumer readiness with no bubble between beats: one
  full beat per cycle at ``DW = 64``, ``DW/64`` cycles per beat wider
  (the consumers take one limb per cycle; the R channel still moves one
  beat per cycle while the FIFOs fill).
* Port 0 takes one command at a time (``rd_cmd.ready`` is high only when
  the previous command has been delivered completely); ``rd_abort`` stops
  it: no new AR is issued, the FIFO is emptied and the beats still in
  flight are received and dropped before ``rd_busy`` falls. Its limbs
  leave through a registered skid buffer (one cycle more latency, none
  less throughput), emptied by ``rd_abort``: the kernel's FSM decides
  ``rd_data.ready`` from its state, and without the buffer that decision
  ran on into the FIFO's read enable and level (the ECP5 board's longest
  path). Ports ``p ≥ 1``
  take a new command as soon as every AR of the previous one has been
  issued (up to ``port_commands`` queued), so the latency of the next
  fetch hides behind the data of the current one.
* ARs of the ports are issued round robin, one per cycle at most, from a
  registered AR channel.

Write side
----------
``wr_cmd`` + ``wr_data`` limbs → one AW per burst (registered), issued as
soon as the burst's length is known (up to two bursts ahead of their W
beats), then the W beats: limbs are packed into a beat register that moves
to the registered W channel when full (or at the command's last limb), so
limbs are taken one per cycle with no bubble between beats and ``wstrb``
covers exactly the limbs written (a result need not start on a beat
boundary). A new command is taken when every limb of the previous one is
packed. B responses are counted; ``wr_busy`` stays high until every B of
every command has arrived, which is what the kernel waits for before
raising ``ap_done``.

Bursts
------
INCR bursts of full-width beats (``axsize = log2(DW/8)``), at most
``max_burst`` beats (≤ 256) and never crossing a 4 KiB boundary (AXI4
rule): burst beats = min(max_burst, beats left, beats to the next 4 KiB
boundary). Writes use ID 0; reads the ID of their port, so R data of one
port returns in order. ``bresp``/``rresp`` errors are recorded in the
sticky ``bus_error`` output (cleared by ``clear_error``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hefl.hw.regmap import LAYOUT
from hefl.hw.skid import SkidBuffer

__all__ = ["Axi4Signature", "AxiMaster", "axi4_members", "id_bits_for", "CommandLayout"]

#: Limb width: the buffer format's unit (hefl.hw.regmap.LAYOUT.limb_bits).
LIMB_BITS = LAYOUT.limb_bits
#: AXI4: no burst may cross a 4 KiB boundary.
BOUNDARY = 4096


def id_bits_for(read_ports):
    """AXI ID width for ``read_ports`` read ports (at least 1 bit)."""
    return max(1, (read_ports - 1).bit_length())


def axi4_members(data_bits, addr_bits=64, id_bits=1):
    """``(name, direction seen by the master, width)`` of the AXI4 signals used.

    Writes use ID 0; reads carry their port's ID (:class:`AxiMaster`). The
    IDs are there even with one port because AXI verification IP
    (cocotbext-axi) and interconnects expect them.
    """
    return (
        ("awid", "out", id_bits), ("bid", "in", id_bits), ("arid", "out", id_bits),
        ("rid", "in", id_bits),
        ("awvalid", "out", 1), ("awready", "in", 1), ("awaddr", "out", addr_bits),
        ("awlen", "out", 8), ("awsize", "out", 3), ("awburst", "out", 2),
        ("wvalid", "out", 1), ("wready", "in", 1), ("wdata", "out", data_bits),
        ("wstrb", "out", data_bits // 8), ("wlast", "out", 1),
        ("bvalid", "in", 1), ("bready", "out", 1), ("bresp", "in", 2),
        ("arvalid", "out", 1), ("arready", "in", 1), ("araddr", "out", addr_bits),
        ("arlen", "out", 8), ("arsize", "out", 3), ("arburst", "out", 2),
        ("rvalid", "in", 1), ("rready", "out", 1), ("rdata", "in", data_bits),
        ("rresp", "in", 2), ("rlast", "in", 1),
    )


class Axi4Signature(wiring.Signature):
    """An AXI4 bus (no cache, prot, qos or lock) as seen by the master."""

    def __init__(self, data_bits, addr_bits=64, id_bits=1):
        super().__init__({n: (Out if d == "out" else In)(w)
                          for n, d, w in axi4_members(data_bits, addr_bits, id_bits)})


#: A transfer command: byte address (limb-aligned) and number of 64-bit limbs.
CommandLayout = data.StructLayout({"addr": 64, "limbs": 32})


class AxiMaster(wiring.Component):
    """Limb-stream ↔ AXI4 burst engine (see the module docstring).

    Parameters
    ----------
    data_bits : int
        AXI data width ``DW``: a power of two, 64 … 1024.
    max_burst : int
        Longest burst in beats, 1 … 256.
    read_credit : int, optional
        Beats of each read port's FIFO: the most beats a port has asked for
        and not yet delivered; defaults to ``2 * max_burst``.
    read_ports : int
        Read ports ``P`` (port 0 plus the ``rd{p}_*`` ones).
    port_commands : int
        Commands a port ``p ≥ 1`` holds (the one delivering and those
        queued behind it).

    Attributes
    ----------
    bus : Axi4Signature
        The ``m_axi`` port (``id_bits_for(read_ports)``-bit IDs).
    rd_cmd, wr_cmd : stream of CommandLayout, in
    rd_data : stream of 64-bit limbs, out
    wr_data : stream of 64-bit limbs, in
    rd_abort : In(1)
        Pulse: abandon port 0's read command in progress.
    rd_busy, wr_busy : Out(1)
    rd{p}_cmd, rd{p}_data, rd{p}_busy
        Read port ``p`` for ``1 <= p < read_ports``.
    bus_error : Out(1)
        Sticky: some response was not OKAY.
    clear_error : In(1)
    """

    def __init__(self, *, data_bits=64, max_burst=256, read_credit=None, read_ports=1,
                 port_commands=2):
        if (not isinstance(data_bits, int) or data_bits < LIMB_BITS or data_bits > 1024
                or data_bits & (data_bits - 1)):
            raise TypeError(f"Data width must be a power of two from 64 to 1024, not {data_bits!r}")
        if not isinstance(max_burst, int) or not 1 <= max_burst <= 256:
            raise TypeError(f"Burst length must be an integer from 1 to 256, not {max_burst!r}")
        if read_credit is None:
            read_credit = 2 * max_burst
        if not isinstance(read_credit, int) or read_credit < max_burst:
            raise TypeError(f"Read credit must be an integer of at least max_burst, not {read_credit!r}")
        for name, v in (("Read port count", read_ports), ("Port command count", port_commands)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        self._data_bits = data_bits
        self._max_burst = max_burst
        self._read_credit = read_credit
        self._read_ports = read_ports
        self._port_commands = port_commands
        self._id_bits = id_bits_for(read_ports)
        members = {
            "bus": Out(Axi4Signature(data_bits, id_bits=self._id_bits)),
            "rd_cmd": In(stream.Signature(CommandLayout)),
            "rd_data": Out(stream.Signature(LIMB_BITS)),
            "rd_abort": In(1),
            "rd_busy": Out(1),
            "wr_cmd": In(stream.Signature(CommandLayout)),
            "wr_data": In(stream.Signature(LIMB_BITS)),
            "wr_busy": Out(1),
            "bus_error": Out(1),
            "clear_error": In(1),
        }
        for p in range(1, read_ports):
            members[f"rd{p}_cmd"] = In(stream.Signature(CommandLayout))
            members[f"rd{p}_data"] = Out(stream.Signature(LIMB_BITS))
            members[f"rd{p}_busy"] = Out(1)
        super().__init__(members)

    @property
    def data_bits(self):
        return self._data_bits

    @property
    def max_burst(self):
        return self._max_burst

    @property
    def read_ports(self):
        return self._read_ports

    @property
    def id_bits(self):
        return self._id_bits

    def read_port(self, p):
        """``(cmd, data, busy)`` of read port ``p`` (port 0: ``rd_cmd``, ``rd_data``, ``rd_busy``)."""
        pre = "rd" if p == 0 else f"rd{p}"
        return getattr(self, f"{pre}_cmd"), getattr(self, f"{pre}_data"), getattr(self, f"{pre}_busy")

    def _burst_len(self, m, addr, beats_left, name):
        """``(length, last)``: beats of the next burst from ``addr`` with ``beats_left`` to go.

        ``last`` (the burst covers every beat left) is computed beside the
        length, not by comparing the length with ``beats_left``: that
        compare after the length's compare and multiplexer was the ECP5
        board's 100 MHz critical path (10.2 ns). The burst is the last iff
        no more than ``max_burst`` and no more than the 4 KiB boundary's
        distance are left.
        """
        bb = self._data_bits // 8
        to_boundary = Signal(range(BOUNDARY // bb + 1), name=f"{name}_to_4k")
        m.d.comb += to_boundary.eq((BOUNDARY - addr[:12]) >> (bb.bit_length() - 1))
        length = Signal(range(self._max_burst + 1), name=f"{name}_len")
        # beats_left > max_burst from the bits above max_burst's width (an OR)
        # and a compare of the bits below: a 33-bit compare's carry chain,
        # then the boundary compare, then req_last's compare was the ECP5
        # board's 100 MHz critical path (11.75 ns with abc9). Same value.
        w = len(length)
        over = beats_left[w:].any() | (beats_left[:w] > self._max_burst)
        capped = Mux(over, self._max_burst, beats_left[:w])
        m.d.comb += length.eq(Mux(capped > to_boundary, to_boundary, capped))
        return length, ~over & (beats_left[:w] <= to_boundary)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        beat = _Beat(self._data_bits)
        m.d.comb += [
            bus.awid.eq(0),
            bus.awsize.eq(beat.size), bus.arsize.eq(beat.size),
            bus.awburst.eq(1), bus.arburst.eq(1),   # INCR
            bus.bready.eq(1),
            bus.rready.eq(1),                       # every port has room for its beats
        ]
        ports = []
        for p in range(self._read_ports):
            cmd, out, busy = self.read_port(p)
            depth = 1 if p == 0 else self._port_commands
            rp = _ReadPort(p, beat, self._read_credit, depth, cmd, out, busy)
            self._elab_read_port(m, beat, rp, abort=self.rd_abort if p == 0 else None)
            ports.append(rp)
        self._elab_ar_arbiter(m, ports)
        self._elab_r_demux(m, ports)
        wr = _WriteRegs(self._data_bits, beat, self._max_burst)
        self._elab_write_address(m, beat, wr)
        self._elab_write_data(m, beat, wr)
        with m.If(self.clear_error):
            m.d.sync += self.bus_error.eq(0)
        return m

    def _elab_read_port(self, m, beat, rp, abort):
        """One read port: command → bursts (requests to the AR arbiter), FIFO → limbs.

        The burst length is registered: address → 4 KiB distance → length →
        credit check → next address was the kernel's longest path on ECP5.
        ``len_ok`` drops for the cycle after ``addr``/``left`` change, while
        the registered length still describes the old values (so a port
        requests at most every other cycle; ports interleave).
        """
        pre = f"rd{rp.index}"
        m.submodules[f"{pre}_fifo"] = fifo = SyncFIFOBuffered(width=self._data_bits,
                                                              depth=self._read_credit)
        # (Never depth 1: a one-entry SyncFIFO has zero-width pointers.)
        m.submodules[f"{pre}_info"] = info = SyncFIFO(width=rp.info_width,
                                                      depth=max(2, rp.info_depth))
        rp.fifo = fifo
        cmd = rp.cmd.payload
        aborting = rp.aborting
        abort_now = abort if abort is not None else Const(0)

        # --- commands and bursts ---
        if rp.info_depth == 1:
            # Port 0: one command at a time, delivered completely first. It
            # is taken into a register and loaded a cycle later: the kernel's
            # command fields -> beat count and "no limbs" tests -> the queue's
            # level was the ECP5 board's 100 MHz critical path (10.31 ns).
            # One cycle per job stream, not per burst.
            m.d.comb += rp.cmd.ready.eq(~rp.busy)
            staged = Signal(name=f"{pre}_cmd_staged")
            cmd_q = Signal.like(cmd, name=f"{pre}_cmd_q")
            taken_now = rp.cmd.valid & rp.cmd.ready
            with m.If(taken_now):
                m.d.sync += [staged.eq(1), cmd_q.eq(cmd)]
            with m.Elif(staged):
                m.d.sync += staged.eq(0)
            taken, cmd = staged & ~aborting & ~abort_now, cmd_q
            rp.staged = staged
        else:
            m.d.comb += rp.cmd.ready.eq(~rp.ar_active & info.w_rdy & ~aborting)
            taken = rp.cmd.valid & rp.cmd.ready
        off = beat.limb_offset(cmd.addr)
        m.d.comb += [info.w_data.eq(Cat(off, cmd.limbs)), info.w_en.eq(taken & (cmd.limbs != 0))]
        with m.If(taken):
            m.d.sync += [rp.ar_addr.eq(beat.align(cmd.addr)),
                         rp.ar_left.eq(beat.count(cmd.limbs, off)),
                         rp.ar_active.eq(cmd.limbs != 0)]
        len_c, last_c = self._burst_len(m, rp.ar_addr, rp.ar_left, pre)
        m.d.sync += [rp.req_len.eq(len_c), rp.req_last.eq(last_c),
                     rp.len_ok.eq(~(taken | rp.grant))]
        m.d.comb += rp.req.eq(rp.ar_active & rp.len_ok & ~aborting & ~abort_now
                              & (rp.credit + rp.req_len <= self._read_credit))
        with m.If(rp.grant):
            m.d.sync += [rp.ar_addr.eq(rp.ar_addr + (rp.req_len << beat.size)),
                         rp.ar_left.eq(rp.ar_left - rp.req_len)]
            with m.If(rp.req_last):
                m.d.sync += rp.ar_active.eq(0)

        # --- beats → limbs ---
        pop = Signal(name=f"{pre}_pop")
        m.d.comb += fifo.r_en.eq(pop)
        # A grant's length enters the credit one cycle late, through a
        # register: req_len -> credit compare -> req -> AR arbiter -> grant ->
        # credit adder was the ECP5 board's 100 MHz critical path (11.51 ns
        # with abc9). The credit is read only by the check, in req, which
        # len_ok masks in the cycle after a grant, by busy, which counts the
        # pending grant too, and by the abort's end, which no grant precedes
        # by less than two cycles (req is low in an abort's cycle).
        m.d.sync += rp.granted.eq(Mux(rp.grant, rp.req_len, 0))
        m.d.sync += rp.credit.eq(rp.credit + rp.granted - (pop & fifo.r_rdy) - rp.drop)
        def load_next():
            # The next queued command becomes current (its first limb next cycle).
            m.d.comb += info.r_en.eq(1)
            left = info.r_data[beat.idx_bits:]
            m.d.sync += [rp.cur_valid.eq(1), rp.cur_idx.eq(info.r_data[:beat.idx_bits]),
                         rp.cur_left.eq(left), rp.cur_last.eq(left == 1)]

        with m.If(~rp.cur_valid & info.r_rdy & ~aborting):
            load_next()
        limb = fifo.r_data.word_select(rp.cur_idx, LIMB_BITS) if beat.limb_bits else fifo.r_data
        out, held = self._read_output(m, rp, abort)
        with m.If(rp.cur_valid & ~aborting):
            m.d.comb += [out.valid.eq(fifo.r_rdy), out.payload.eq(limb)]
            with m.If(out.valid & out.ready):
                m.d.sync += [rp.cur_left.eq(rp.cur_left - 1), rp.cur_idx.eq(rp.cur_idx + 1),
                             rp.cur_last.eq(rp.cur_left == 2)]
                with m.If((rp.cur_idx == beat.limbs - 1) | rp.cur_last):
                    m.d.comb += pop.eq(1)
                    m.d.sync += rp.cur_idx.eq(0)
                with m.If(rp.cur_last):
                    m.d.sync += rp.cur_valid.eq(0)
                    # No bubble between commands: the next one follows at once.
                    with m.If(info.r_rdy):
                        load_next()

        m.d.comb += rp.busy.eq(rp.ar_active | info.r_rdy | rp.cur_valid | (rp.credit != 0)
                               | (rp.granted != 0) | rp.staged
                               | aborting | held)
        if abort is None:
            return
        # --- abort (port 0): drop everything asked for, then idle ---
        with m.If(abort & rp.busy):
            m.d.sync += [aborting.eq(1), rp.ar_active.eq(0), rp.cur_valid.eq(0)]
        with m.If(aborting):
            m.d.comb += [pop.eq(1), info.r_en.eq(1)]
            with m.If((rp.credit == 0) & ~info.r_rdy):
                m.d.sync += aborting.eq(0)

    def _read_output(self, m, rp, abort):
        """The stream a port's limbs are handed to, and whether beats wait past it.

        Port 0 (the one with ``abort``) hands them to a skid buffer, emptied
        by the abort, whose registered ``ready`` keeps the consumer's
        decision out of the FIFO's read logic; the other ports' consumers
        (table fetchers) take them directly.
        """
        if abort is None:
            return rp.data, Const(0)
        m.submodules[f"rd{rp.index}_out"] = sb = SkidBuffer(LIMB_BITS, flush=True)
        o = sb.o_stream
        m.d.comb += [rp.data.valid.eq(o.valid), rp.data.payload.eq(o.payload),
                     o.ready.eq(rp.data.ready), sb.flush.eq(abort)]
        return sb.i_stream, o.valid | ~sb.i_stream.ready

    def _elab_ar_arbiter(self, m, ports):
        """Round-robin grant of one port's burst per cycle into the registered AR channel."""
        bus = self.bus
        P = len(ports)
        free = ~bus.arvalid | bus.arready
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        last = Signal(range(max(2, P)), name="ar_last_port")
        pick = Signal(range(max(2, P)), name="ar_pick")
        any_req = Signal(name="ar_any")
        reqs = Cat(rp.req for rp in ports)
        m.d.comb += any_req.eq(reqs.any())
        with m.Switch(last):
            for r in range(P):
                with m.Case(r):
                    # Priority r+1, r+2, ..., r: the last granted port goes last.
                    for j in reversed(range(P)):
                        q = (r + 1 + j) % P
                        with m.If(ports[q].req):
                            m.d.comb += pick.eq(q)
        with m.If(free & any_req):
            m.d.sync += [bus.arvalid.eq(1), last.eq(pick), bus.arid.eq(pick)]
            with m.Switch(pick):
                for q, rp in enumerate(ports):
                    with m.Case(q):
                        m.d.comb += rp.grant.eq(1)
                        m.d.sync += [bus.araddr.eq(rp.ar_addr), bus.arlen.eq(rp.req_len - 1)]

    def _elab_r_demux(self, m, ports):
        """R beats into their port's FIFO by RID (dropped while that port aborts)."""
        bus = self.bus
        with m.If(bus.rvalid):
            with m.If(bus.rresp != 0):
                m.d.sync += self.bus_error.eq(1)
        for rp in ports:
            hit = bus.rvalid & (bus.rid == rp.index)
            m.d.comb += [rp.fifo.w_data.eq(bus.rdata), rp.fifo.w_en.eq(hit & ~rp.aborting),
                         rp.drop.eq(hit & rp.aborting)]

    def _elab_write_address(self, m, beat, wr):
        """Write command → AWs, each as soon as its length is known and a burst slot is free.

        A command is taken when every limb of the previous one has been
        packed (``w_active`` low). The burst length is registered as on the
        read side; the AW channel is registered, and each issued burst's
        length goes to ``blen`` for the W side's ``wlast``.
        """
        bus, cmd = self.bus, self.wr_cmd.payload
        m.submodules.wr_blen = blen = SyncFIFO(width=wr.burst_left.shape().width, depth=2)
        wr.blen = blen
        m.d.comb += self.wr_cmd.ready.eq(~wr.w_active)
        taken = self.wr_cmd.valid & self.wr_cmd.ready
        with m.If(taken):
            off = beat.limb_offset(cmd.addr)
            m.d.sync += [
                wr.aw_addr.eq(beat.align(cmd.addr)),
                wr.aw_left.eq(beat.count(cmd.limbs, off)),
                wr.aw_more.eq(beat.count(cmd.limbs, off) != 0),
                wr.w_left.eq(cmd.limbs),
                wr.w_more.eq(cmd.limbs != 0),
                wr.w_one.eq(cmd.limbs == 1),
                wr.w_pos.eq(off),
                wr.w_active.eq(cmd.limbs != 0),
            ]
        aw_len_c, aw_last_c = self._burst_len(m, wr.aw_addr, wr.aw_left, "aw")
        aw_len = Signal.like(aw_len_c, name="aw_len_r")
        aw_len_ok = Signal()
        aw_issue = Signal()
        # aw_left != 0 as a register (aw_more), cleared by the last burst's
        # issue (aw_last, registered with the length it describes): the
        # 33-bit test in front of the issue and the address and count
        # enables was on the ECP5 board's 100 MHz edge.
        aw_last = Signal()
        m.d.sync += [aw_len.eq(aw_len_c), aw_last.eq(aw_last_c),
                     aw_len_ok.eq(~(taken | aw_issue))]
        m.d.comb += [aw_issue.eq(wr.aw_more & aw_len_ok & ~bus.awvalid & blen.w_rdy),
                     blen.w_en.eq(aw_issue), blen.w_data.eq(aw_len)]
        with m.If(aw_issue):
            m.d.sync += [
                bus.awvalid.eq(1), bus.awaddr.eq(wr.aw_addr), bus.awlen.eq(aw_len - 1),
                wr.aw_addr.eq(wr.aw_addr + (aw_len << beat.size)),
                wr.aw_left.eq(wr.aw_left - aw_len),
                wr.aw_more.eq(~aw_last),
            ]
        m.d.comb += wr.aw_hs.eq(bus.awvalid & bus.awready)
        with m.If(wr.aw_hs):
            m.d.sync += bus.awvalid.eq(0)

    def _elab_write_data(self, m, beat, wr):
        """``wr_data`` limbs → packed beats → W, and the B responses.

        ``wbuf`` packs limbs one per cycle (``wstrb`` marking each); a
        complete beat (full, or the command's last limb) moves to the W
        register when that is free and a burst has been issued for it, and
        in that same cycle packing of the next beat goes on. ``wr_busy``
        stays high until every AW's B has arrived.
        """
        bus, blen = self.bus, wr.blen
        w_free = ~bus.wvalid | bus.wready
        move = Signal()
        m.d.comb += move.eq(wr.pk_full & w_free & blen.r_rdy)
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [bus.wvalid.eq(0), bus.wlast.eq(0)]
        with m.If(move):
            last = wr.burst_beat == blen.r_data - 1
            m.d.sync += [bus.wvalid.eq(1), bus.wdata.eq(wr.wbuf), bus.wstrb.eq(wr.wstrb),
                         bus.wlast.eq(last), wr.pk_full.eq(0), wr.wstrb.eq(0),
                         wr.burst_beat.eq(Mux(last, 0, wr.burst_beat + 1))]
            m.d.comb += blen.r_en.eq(last)

        take = self.wr_data.valid & self.wr_data.ready
        # w_left != 0 and == 1 are registers (w_more, w_one) kept beside the
        # count: the 32-bit tests in front of ready, take and the count's
        # enables were the ECP5 board's 100 MHz critical path (10.34 ns).
        m.d.comb += self.wr_data.ready.eq(wr.w_active & wr.w_more & (~wr.pk_full | move))
        with m.If(take):
            strobe = Const((1 << 8) - 1, 8)
            if beat.limb_bits:
                m.d.sync += wr.wbuf.word_select(wr.w_pos, LIMB_BITS).eq(self.wr_data.payload)
                with m.If(wr.pk_full):
                    # The previous beat leaves this cycle: a fresh strobe word.
                    m.d.sync += wr.wstrb.eq(strobe << (wr.w_pos * 8))
                with m.Else():
                    m.d.sync += wr.wstrb.word_select(wr.w_pos, 8).eq(strobe)
            else:
                m.d.sync += [wr.wbuf.eq(self.wr_data.payload), wr.wstrb.eq(strobe)]
            m.d.sync += [wr.w_left.eq(wr.w_left - 1), wr.w_pos.eq(wr.w_pos + 1),
                         wr.w_more.eq(~wr.w_one), wr.w_one.eq(wr.w_left == 2)]
            with m.If((wr.w_pos == beat.limbs - 1) | wr.w_one):
                m.d.sync += [wr.pk_full.eq(1), wr.w_pos.eq(0)]
        with m.If(wr.w_active & ~wr.w_more & ~wr.pk_full):
            m.d.sync += wr.w_active.eq(0)

        b_hs = Signal()
        m.d.comb += b_hs.eq(bus.bvalid & bus.bready)
        m.d.sync += wr.b_pending.eq(wr.b_pending + wr.aw_hs - b_hs)
        with m.If(b_hs & (bus.bresp != 0)):
            m.d.sync += self.bus_error.eq(1)
        m.d.comb += self.wr_busy.eq(wr.w_active | bus.awvalid | bus.wvalid | blen.r_rdy
                                    | (wr.b_pending != 0))


class _Beat:
    """A ``DW``-bit beat in bytes and limbs, and the command arithmetic on it."""

    def __init__(self, data_bits):
        self.bytes = data_bits // 8
        self.limbs = data_bits // LIMB_BITS             # limbs per beat
        self.limb_bits = (self.limbs - 1).bit_length()  # log2(limbs per beat)
        self.idx_bits = max(1, self.limb_bits)          # a limb index's register width
        self.size = self.bytes.bit_length() - 1         # log2(bytes per beat): axsize

    def limb_offset(self, addr):
        """Limb index of a byte address inside its beat."""
        if not self.limb_bits:
            return Const(0, 1)
        return addr[3:3 + self.limb_bits]

    def align(self, addr):
        """``addr`` rounded down to its beat."""
        return Cat(Const(0, self.size), addr[self.size:])

    def count(self, limbs, off):
        """Beats covering ``limbs`` limbs from limb ``off`` of the first beat."""
        return (limbs + off + (self.limbs - 1)) >> self.limb_bits


class _ReadPort:
    """State of one read port, shared by its sub-blocks and the AR arbiter."""

    def __init__(self, index, beat, read_credit, info_depth, cmd, data, busy):
        pre = f"rd{index}"
        self.index = index
        self.cmd, self.data, self.busy = cmd, data, busy
        self.info_depth = info_depth
        self.info_width = beat.idx_bits + 32           # {skip, limbs} of a queued command
        self.fifo = None
        self.staged = Const(0)                               # port 0: a command taken, not loaded
        self.ar_active = Signal(name=f"{pre}_ar_active")
        self.ar_addr = Signal(64, name=f"{pre}_ar_addr")
        self.ar_left = Signal(33, name=f"{pre}_ar_left")     # beats not yet covered by an AR
        self.req = Signal(name=f"{pre}_req")                 # a burst is ready to issue
        self.grant = Signal(name=f"{pre}_grant")             # ... and is issued this cycle
        self.req_len = Signal(range(257), name=f"{pre}_req_len")
        self.req_last = Signal(name=f"{pre}_req_last")       # registered: the burst covers ar_left
        self.len_ok = Signal(name=f"{pre}_len_ok")
        self.credit = Signal(range(read_credit + 1), name=f"{pre}_credit")  # beats asked, not popped
        self.granted = Signal(range(257), name=f"{pre}_granted")  # beats of last cycle's grant
        self.drop = Signal(name=f"{pre}_drop")               # an R beat dropped (aborting)
        self.aborting = Signal(name=f"{pre}_aborting")
        self.cur_valid = Signal(name=f"{pre}_cur_valid")     # a command is delivering
        self.cur_idx = Signal(beat.idx_bits, name=f"{pre}_cur_idx")
        self.cur_left = Signal(32, name=f"{pre}_cur_left")   # limbs still to deliver
        # Registered cur_left == 1: a 32-bit compare in front of the FIFO's
        # read enable was the ECP5 board's longest path.
        self.cur_last = Signal(name=f"{pre}_cur_last")


class _WriteRegs:
    """State of the write side, shared by its address and data sub-blocks."""

    def __init__(self, data_bits, beat, max_burst):
        self.w_active = Signal()                 # limbs of the command remain to be packed
        self.aw_addr = Signal(64)
        self.aw_left = Signal(33)                # beats of the command not yet covered by an AW
        self.aw_more = Signal()                  # ... registered: aw_left != 0
        self.burst_left = Signal(range(max_burst + 1))
        self.burst_beat = Signal(range(max_burst + 1))   # beats of the current burst sent
        self.blen = None
        self.w_left = Signal(32)                 # limbs still to accept
        self.w_more = Signal()                   # ... registered: w_left != 0
        self.w_one = Signal()                    # ... registered: w_left == 1
        self.w_pos = Signal(beat.idx_bits)
        self.wbuf = Signal(data_bits)
        self.wstrb = Signal(beat.bytes)
        self.pk_full = Signal()                  # wbuf holds a complete beat
        self.b_pending = Signal(16)
        self.aw_hs = Signal()                    # an AW is accepted this cycle
