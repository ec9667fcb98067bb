"""On-chip memory of the board: an AXI4 slave for the kernel plus a limb port for the link.

The ECP5 board has no card memory, so the kernel's ``m_axi_gmem`` bursts
land in block RAM here: one memory of ``limbs`` limbs (64-bit words,
:data:`hefl.hw.regmap.LAYOUT`; byte address ``a`` is limb ``(a >> 3) mod
limbs``), one synchronous read port and one write port with byte enables
(``wstrb``).

Two clients share the ports, cycle by cycle, the AXI side first:

* **AXI4 slave** (``axi``, one limb wide, INCR bursts, the burst's ID
  echoed on R and B, one read burst and one write burst in progress at a
  time, independently of each other — the kernel writes results while it
  still reads jobs, so the two channels must never wait on each other; read
  bursts are answered in AR order, whatever their IDs).
  Read: after AR, reads are issued into a 4-entry output FIFO whenever it
  has room for the data in flight, so R streams at one beat per cycle and
  ``rready`` back-pressure never loses data. Write: after AW, each W beat is
  written as it is accepted (into the memory a cycle later, through the
  write port's registers); B follows ``wlast``.
* **Link port** (``req``/``we``/``addr``/``wdata`` held until ``ack``;
  ``rdata`` valid the cycle after the ack of a read): acked in any cycle the
  AXI side does not use the port the request needs.
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hefl.hw.axi_master import Axi4Signature
from hefl.hw.regmap import LAYOUT

__all__ = ["BoardMem"]

#: Width of a memory word and of the AXI data bus: one limb.
LIMB_BITS = LAYOUT.limb_bits
#: Low byte-address bits below the limb index (3 for 8-byte limbs).
_OFFSET_BITS = (LAYOUT.limb_bytes - 1).bit_length()
#: Write enables of a whole limb, one per byte.
_ALL_BYTES = (1 << LAYOUT.limb_bytes) - 1


class BoardMem(wiring.Component):
    """Block RAM behind an AXI4 slave and a link port (see the module docstring).

    Parameters
    ----------
    limbs : int
        Depth in limbs (a power of two).
    id_bits : int
        Width of the AXI IDs (the kernel's: one per read port).

    Attributes
    ----------
    axi : In(Axi4Signature(LIMB_BITS))
        The slave side of the kernel's ``m_axi_gmem``.
    req, we, addr, wdata : In
        Link requests.
    ack, rdata : Out
        Link grant and read data (the cycle after the grant).
    """

    def __init__(self, *, limbs, id_bits=1):
        if not isinstance(limbs, int) or isinstance(limbs, bool) or limbs < 2 or limbs & (limbs - 1):
            self._MustUse__silence = True  # a rejected component is not "unused"
            raise TypeError(f"Memory depth must be a power of two of at least 2, not {limbs!r}")
        self._limbs = limbs
        super().__init__({
            "axi": In(Axi4Signature(LIMB_BITS, id_bits=id_bits)),
            "req": In(1), "we": In(1), "addr": In(range(limbs)), "wdata": In(LIMB_BITS),
            "ack": Out(1), "rdata": Out(LIMB_BITS),
        })

    @property
    def limbs(self):
        return self._limbs

    def elaborate(self, platform):
        m = Module()
        bus = self.axi
        n = self._limbs
        ab = (n - 1).bit_length()
        # The read is an asynchronous port and a reset-less register, which
        # yosys merges into the block RAM's synchronous port with no_rw_check
        # honoured: without it yosys emulates read-old-data for a read and a
        # write of one limb in the same cycle (a delayed write and an address
        # compare behind the block RAM's slow output, the ECP5 board's 100 MHz
        # critical path). Such a read returns unspecified data: an AXI read
        # racing a write to the same address has no order anyway, and the
        # link waits for its own writes.
        m.submodules.mem = mem = Memory(shape=unsigned(LIMB_BITS), depth=n, init=[],
                                        attrs={"no_rw_check": 1})
        rd = mem.read_port(domain="comb")
        rp = _SyncRead(m, rd)
        wp = mem.write_port(granularity=8)
        r_id = Signal.like(bus.arid)
        w_id = Signal.like(bus.awid)
        m.d.comb += [bus.rresp.eq(0), bus.bresp.eq(0), self.rdata.eq(rp.data), bus.bid.eq(w_id)]

        # --- AXI read ---------------------------------------------------------
        # Data, rlast and the burst's ID travel together through the FIFO.
        idw = len(bus.arid)
        m.submodules.rfifo = rfifo = SyncFIFO(width=LIMB_BITS + 1 + idw, depth=4)
        r_addr = Signal(ab)
        r_left = Signal(9)                 # beats still to issue
        inflight = Signal()                # a read was issued last cycle
        inflight_last = Signal()
        issue = Signal()
        m.d.comb += [
            issue.eq((r_left != 0) & (rfifo.level + inflight <= 2)),
            bus.arready.eq(r_left == 0),
            rfifo.w_en.eq(inflight),
            rfifo.w_data.eq(Cat(rp.data, inflight_last, r_id)),
            bus.rvalid.eq(rfifo.r_rdy),
            bus.rdata.eq(rfifo.r_data[:LIMB_BITS]),
            bus.rlast.eq(rfifo.r_data[LIMB_BITS]),
            bus.rid.eq(rfifo.r_data[LIMB_BITS + 1:]),
            rfifo.r_en.eq(bus.rready),
        ]
        m.d.sync += [inflight.eq(issue), inflight_last.eq(issue & (r_left == 1))]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [r_addr.eq(bus.araddr[_OFFSET_BITS:_OFFSET_BITS + ab]),
                         r_left.eq(bus.arlen + 1), r_id.eq(bus.arid)]
        with m.If(issue):
            m.d.sync += [r_addr.eq(r_addr + 1), r_left.eq(r_left - 1)]

        # --- AXI write --------------------------------------------------------
        w_addr = Signal(ab)
        w_active = Signal()
        axi_write = Signal()
        m.d.comb += [bus.awready.eq(~w_active & ~bus.bvalid),
                     bus.wready.eq(w_active),
                     axi_write.eq(bus.wvalid & bus.wready)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [w_addr.eq(bus.awaddr[_OFFSET_BITS:_OFFSET_BITS + ab]), w_active.eq(1),
                         w_id.eq(bus.awid)]
        with m.If(axi_write):
            m.d.sync += w_addr.eq(w_addr + 1)
            with m.If(bus.wlast):
                m.d.sync += [w_active.eq(0), bus.bvalid.eq(1)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # --- port sharing: AXI first, the link in the gaps -------------------
        link_rd = Signal()
        link_wr = Signal()
        m.d.comb += [link_rd.eq(self.req & ~self.we & ~issue),
                     link_wr.eq(self.req & self.we & ~axi_write),
                     self.ack.eq(link_rd | link_wr)]
        with m.If(issue):
            m.d.comb += [rp.addr.eq(r_addr), rp.en.eq(1)]
        with m.Else():
            m.d.comb += [rp.addr.eq(self.addr), rp.en.eq(link_rd)]
        # The write port is driven from registers: the chosen write reaches
        # the block RAMs a cycle after it is accepted (the link's write buffer,
        # a block RAM output, -> this mux -> the 32 block RAMs spread over the
        # die was the ECP5 board's 100 MHz critical path, 11.56 ns). Nothing
        # reads that early: an AXI read after the write's B response is
        # accepted one cycle and read from the memory the next, and the link
        # makes one request per frame.
        wr_addr = Signal(ab, reset_less=True)
        wr_data = Signal(LIMB_BITS, reset_less=True)
        wr_en = Signal(LAYOUT.limb_bytes)
        m.d.comb += [wp.addr.eq(wr_addr), wp.data.eq(wr_data), wp.en.eq(wr_en)]
        m.d.sync += wr_en.eq(0)
        with m.If(axi_write):
            m.d.sync += [wr_addr.eq(w_addr), wr_data.eq(bus.wdata), wr_en.eq(bus.wstrb)]
        with m.Elif(link_wr):
            m.d.sync += [wr_addr.eq(self.addr), wr_data.eq(self.wdata), wr_en.eq(_ALL_BYTES)]
        return m


class _SyncRead:
    """A synchronous read port built from ``rd`` (an asynchronous port) and a register.

    ``addr`` and ``en`` drive it as those of a synchronous port; ``data`` is
    the word at the address of the last cycle ``en`` was high.
    """

    def __init__(self, m, rd):
        self.addr = rd.addr
        self.en = Signal(name="mem_rd_en")
        self.data = Signal(len(rd.data), reset_less=True, name="mem_rd_data")
        with m.If(self.en):
            m.d.sync += self.data.eq(rd.data)
