"""Deliberately broken variants of the DUTs: formal must find each one's counterexample.

Every mutant is a subclass whose ``elaborate`` calls the real one and then
appends a statement or two that override the real behaviour (in Amaranth
the last assignment in a domain wins), so the DUT files stay untouched and
each mutant is one small, readable change. :data:`MUTANTS` pairs each with
the check it runs under and the assertion expected to catch it.
"""

from dataclasses import dataclass
from functools import partial

from amaranth.hdl import Mux, Signal

from hefl.flows.formal.axi4 import AxiMasterFormal
from hefl.flows.formal.axil import AxilFormal
from hefl.flows.formal.checks import ENGINE_CAPACITY, ENGINE_LANES, ENGINE_PARAMS
from hefl.flows.formal.link import LINK_PARAMS, LinkFormal
from hefl.flows.formal.streams import (
    LANE_PARAMS,
    MONTMUL_PARAMS,
    FormalMultiplier,
    LaneFormal,
    MontMulFormal,
)
from hefl.hw.axi_master import AxiMaster
from hefl.hw.axil_ctrl import AxilCtrl
from hefl.hw.batch_engine import BatchEngine
from hefl.hw.link import Link
from hefl.hw.modexp import ModExp
from hefl.hw.montmul_stream import MontMulStream

__all__ = ["Mutant", "MUTANTS"]


class _AnswersTwice(AxilCtrl):
    """An AXI4-Lite slave that raises B again the cycle after a write response."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        again = Signal()
        m.d.sync += again.eq(self.bus.bvalid & self.bus.bready)
        with m.If(again):
            m.d.sync += self.bus.bvalid.eq(1)
        return m


class _ReadDataSlips(AxilCtrl):
    """An AXI4-Lite slave whose RDATA follows the address while R waits for RREADY."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.bus.rvalid & ~self.bus.rready):
            m.d.sync += self.bus.rdata.eq(self.bus.rdata + 1)
        return m


class _DoneNotCleared(AxilCtrl):
    """A slave whose ``ap_done`` survives the read of ``ctrl`` (clear-on-read broken)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += self.ctrl_ap_done.eq(self.ctrl_ap_done | self.ctrl_ap_done_set)
        return m


class _DropsArvalid(AxiMaster):
    """An AXI master that withdraws ARVALID after one cycle without ARREADY."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.bus.arvalid & ~self.bus.arready):
            m.d.sync += self.bus.arvalid.eq(0)
        return m


class _IgnoresBoundary(AxiMaster):
    """An AXI master whose bursts ignore the 4 KiB boundary."""

    def _burst_len(self, m, addr, beats_left, name):
        length = Signal(range(self.max_burst + 1), name=f"{name}_len")
        m.d.comb += length.eq(Mux(beats_left > self.max_burst, self.max_burst, beats_left))
        return length, beats_left <= self.max_burst


class _NoWlast(AxiMaster):
    """An AXI master that never raises WLAST."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += self.bus.wlast.eq(0)
        return m


class _LosesReadError(AxiMaster):
    """An AXI master whose ``bus_error`` ignores RRESP."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.bus.rvalid & self.bus.rready & ~self.clear_error):
            m.d.sync += self.bus_error.eq(self.bus_error)
        return m


class _EngineDropsBeats(BatchEngine):
    """A BatchEngine that takes job beats even when the lane FIFO is full (they are lost)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i_stream.ready.eq(1)
        return m


class _ClaimsChainSafe(FormalMultiplier):
    """A core that is not chain-safe but says it is (the lane then chains on it)."""

    chain_safe = property(lambda self: True)


def _lane_chains_unsafe():
    """A lane that asks for its next operation at ``ready`` on a core that needs ``idle``."""
    return LaneFormal(ModExp(**LANE_PARAMS, multiplier=partial(_ClaimsChainSafe, chain_safe=False)),
                      capacity=1, idle_after=1)


class _StreamOverrunsBanks(MontMulStream):
    """A MontMulStream that loads operands while both banks are full (overwriting one)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i_stream.ready.eq(1)
        return m


class _LinkWritesWhileDraining(Link):
    """A link that writes memory for every byte it takes (also while draining a bad header)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.comb += [self.mem_req.eq(1), self.mem_we.eq(1)]
        return m


@dataclass(frozen=True)
class Mutant:
    """A broken variant, the wrapper it is checked in, and what must catch it."""

    name: str
    build: object
    depth: int
    caught_by: tuple
    doc: str


def _lane(engine_cls):
    return LaneFormal(engine_cls(**ENGINE_PARAMS, lanes=ENGINE_LANES, multiplier=FormalMultiplier),
                      capacity=ENGINE_CAPACITY)


MUTANTS = (
    Mutant("axil_answers_twice", lambda: AxilFormal(_AnswersTwice(), parts=("bus",)), 6,
           ("b_only_for_request", "aw_occupancy", "w_occupancy"), _AnswersTwice.__doc__),
    Mutant("axil_rdata_slips", lambda: AxilFormal(_ReadDataSlips(), parts=("bus",)), 6,
           ("r_payload_stable",), _ReadDataSlips.__doc__),
    Mutant("axil_done_not_cleared", lambda: AxilFormal(_DoneNotCleared(), parts=("regmap",)), 6,
           ("field_ctrl_ap_done",), _DoneNotCleared.__doc__),
    Mutant("axi4_drops_arvalid",
           lambda: AxiMasterFormal(_DropsArvalid(data_bits=64, max_burst=4), side="read"), 8,
           ("ar_valid_held",), _DropsArvalid.__doc__),
    Mutant("axi4_ignores_4k",
           lambda: AxiMasterFormal(_IgnoresBoundary(data_bits=64, max_burst=4), side="read"), 8,
           ("ar_no_4k_crossing",), _IgnoresBoundary.__doc__),
    Mutant("axi4_no_wlast",
           lambda: AxiMasterFormal(_NoWlast(data_bits=64, max_burst=4), side="write"), 10,
           ("wlast_on_last_beat",), _NoWlast.__doc__),
    Mutant("axi4_loses_read_error",
           lambda: AxiMasterFormal(_LosesReadError(data_bits=64, max_burst=4), side="read"), 10,
           ("error_reaches_flag",), _LosesReadError.__doc__),
    Mutant("engine_drops_beats", partial(_lane, _EngineDropsBeats), 16,
           ("idle_means_all_out", "no_result_without_job", "within_capacity"),
           _EngineDropsBeats.__doc__),
    Mutant("lane_chains_unsafe_core", _lane_chains_unsafe, 16, ("mul_start_only_when_idle",),
           _lane_chains_unsafe.__doc__),
    Mutant("montmul_overruns_banks", lambda: MontMulFormal(_StreamOverrunsBanks(**MONTMUL_PARAMS)),
           28, ("within_capacity",), _StreamOverrunsBanks.__doc__),
    Mutant("link_writes_while_draining",
           lambda: LinkFormal(_LinkWritesWhileDraining(**LINK_PARAMS), parts=("writes",),
                              byte_limit=2), 14,
           ("mem_write_needs_good_header", "mem_write_in_order_in_range",
            "mem_write_data_is_payload"), _LinkWritesWhileDraining.__doc__),
    Mutant("link_timeout_too_long",
           lambda: LinkFormal(Link(**{**LINK_PARAMS, "timeout_cycles": 10 * LINK_PARAMS["timeout_cycles"]}),
                              timeout_cycles=LINK_PARAMS["timeout_cycles"], parts=("reply",)), 20,
           ("reply_within_timeout",), "A link whose timeout is ten times the one it promises."),
)
