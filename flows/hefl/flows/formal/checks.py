"""The formal checks ``hefl formal`` runs, with their depths, as data.

Depths are the deepest each check reaches within the CI budget (about a
minute of solver time on two cores for the whole set; measured numbers in
docs/formal.md). ``DEEP`` scales them for a longer local run
(``hefl formal --deep``).
"""

from functools import partial

from hefl.flows.formal.axi4 import AxiMasterFormal
from hefl.flows.formal.axil import AxilFormal
from hefl.flows.formal.link import LinkFormal
from hefl.flows.formal.sby import Check
from hefl.flows.formal.streams import (
    LANE_PARAMS,
    FormalMultiplier,
    LaneFormal,
    MontMulFormal,
)
from hefl.hw.batch_engine import BatchEngine
from hefl.hw.modexp import ModExp
from hefl.hw.params import ALVEO_DATA_BITS, SIM_DATA_BITS

__all__ = ["CHECKS", "DEEP_CHECKS", "check", "DEEP", "ENGINE_LANES", "ENGINE_CAPACITY", "ENGINE_PARAMS"]

#: Engine lanes in the BatchEngine check.
ENGINE_LANES = 2
#: Jobs the engine may hold: per lane one running and one queued in its
#: FIFO (the router sends a job only to an empty FIFO), and one more whose
#: result has wholly left its lane, into the reducer (which holds one). No
#: second result gets past its lane behind it: of its s = 3 beats the
#: lane's output stage and the arbiter's half-rate stage hold one each.
ENGINE_CAPACITY = 2 * ENGINE_LANES + 1
#: Lane parameters of the engine check: 3-bit tags, so that the distinct
#: tags in flight (at most 2^3) do not bound the count by themselves.
ENGINE_PARAMS = {**LANE_PARAMS, "tag_bits": 3}


def _modexp(chain_safe, idle_after=1):
    mul = partial(FormalMultiplier, chain_safe=chain_safe)
    return LaneFormal(ModExp(**LANE_PARAMS, multiplier=mul), capacity=1, idle_after=idle_after)


def _engine():
    return LaneFormal(BatchEngine(**ENGINE_PARAMS, lanes=ENGINE_LANES,
                                  multiplier=FormalMultiplier), capacity=ENGINE_CAPACITY)


def _axi4(side, data_bits):
    return partial(AxiMasterFormal, side=side, data_bits=data_bits, max_burst=4)


CHECKS = (
    Check("axil_bus", partial(AxilFormal, parts=("bus",)), depth=4, induction=True,
          cover_depth=6,
          doc="AXI4-Lite slave: B/R handshakes, OKAY responses, one response per request"),
    Check("axil_regmap", partial(AxilFormal, parts=("regmap",)), depth=12, cover_depth=4,
          doc="AXI4-Lite slave: every REGMAP field's semantics and every read word"),
    Check(f"axi4_read_dw{SIM_DATA_BITS}", _axi4("read", SIM_DATA_BITS), depth=15, cover_depth=10,
          doc="AXI4 master read side: AR rules, bursts, credit, limbs delivered, RRESP"),
    Check(f"axi4_write_dw{SIM_DATA_BITS}", _axi4("write", SIM_DATA_BITS), depth=14,
          cover_depth=10,
          doc="AXI4 master write side: AW/W rules, bursts, WLAST, strobes, B, BRESP"),
    Check(f"axi4_read_dw{ALVEO_DATA_BITS}", _axi4("read", ALVEO_DATA_BITS), depth=14,
          cover_depth=10, doc="the read side at the Alveo bus width"),
    Check(f"axi4_write_dw{ALVEO_DATA_BITS}", _axi4("write", ALVEO_DATA_BITS), depth=10,
          cover_depth=10, doc="the write side at the Alveo bus width"),
    Check("montmul_stream", MontMulFormal, depth=30, cover_depth=20,
          doc="MontMulStream (w=4, s=5, real core): operations in vs results out (loading "
              "side; results leave after ~87-107 cycles: montmul_results)"),
    Check("modexp_stream", partial(_modexp, chain_safe=False), depth=20, cover_depth=34,
          doc="ModExp lane (w=2, s=3, k=1), core not chain-safe (next op at idle): "
              "jobs in vs results out"),
    Check("modexp_chain_stream", partial(_modexp, chain_safe=True), depth=20, cover_depth=34,
          doc="ModExp lane, chain-safe core (next op at ready, as at L = 4096): "
              "jobs in vs results out"),
    Check("engine_stream", _engine, depth=20, cover_depth=47,
          doc="BatchEngine (2 lanes, w=2, s=3): jobs in vs tagged results out"),
    Check("link_reply", partial(LinkFormal, parts=("reply",)), depth=20, cover_depth=26,
          doc="UART link: a reply within the timeout after any bytes, only when owed"),
    Check("link_writes", partial(LinkFormal, parts=("writes",), byte_limit=2), depth=21,
          cover_depth=22,
          doc="UART link: memory written only for a good header and payload CRC, "
              "registers after both CRCs"),
)

#: Checks only ``hefl formal --deep`` runs: too deep for the CI budget.
DEEP_CHECKS = (
    Check("montmul_results", partial(MontMulFormal, result_covers=True), depth=100,
          cover_depth=120, doc="MontMulStream (w=4, s=5) past its first results (about 10 min+)"),
    Check("modexp_results", partial(_modexp, chain_safe=True, idle_after=2), depth=40,
          cover_depth=64, doc="ModExp lane (chain-safe core) idle again after two jobs"),
)

#: Depth factor of ``hefl formal --deep``.
DEEP = 1.5


def check(name):
    """The check called ``name``; :class:`KeyError` naming the known ones otherwise."""
    for c in CHECKS + DEEP_CHECKS:
        if c.name == name:
            return c
    raise KeyError(f"No formal check {name!r}; known: {', '.join(c.name for c in CHECKS)}")
