"""Formal checks (hefl.flows.formal) and the mutants they must catch, through SymbiYosys.

* Every check of ``CHECKS`` is as expected: proved by k-induction where
  stated, else bounded-checked to its depth, every ``Cover`` reached (a
  check may declare assertions expected to fail, for a documented
  deviation; none does today).
* Every deliberately broken variant (``MUTANTS``: a slave answering twice,
  a master dropping ARVALID, bursts crossing 4 KiB, a lane chaining on a
  core that is not chain-safe, ...) is caught by the
  assertion it targets, with a counterexample trace.
* The wrapper's CRC (bit by bit from ``CRC_POLY``) is the protocol's.

The checks run two solver processes at a time (``-n`` workers each run
their own); the whole file takes about three to five minutes on two cores.
"""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hefl.flows.formal.checks import CHECKS
from hefl.flows.formal.link import crc8_bitwise
from hefl.flows.formal.mutants import MUTANTS
from hefl.flows.formal.run import run_checks, run_mutants
from hefl.flows.formal.sby import property_names
from hefl.hw.link_proto import crc8


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_check(check):
    (v,) = run_checks([check], jobs=2)
    r = v.main
    print(f"{check.name}: {r.task} depth {check.depth} -> {r.status} in {v.seconds} s; "
          f"covers {v.cover.reached if v.cover else {}}")
    if check.expect_fail:
        assert r.status == "fail" and set(r.failed) == set(check.expect_fail), \
            f"expected exactly {check.expect_fail} to fail, got {r.status} {r.failed}"
        assert r.trace, "no counterexample trace for the documented deviation"
    else:
        assert r.status == "pass", f"{r.task} {r.status}: failed {r.failed}, trace {r.trace}"
    if check.induction:
        assert v.induction_closed
    if v.cover is not None:
        assert v.cover.status == "pass" and not v.cover.unreached, \
            f"unreached covers: {v.cover.unreached}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[mu.name for mu in MUTANTS])
def test_mutant_caught(mutant):
    (v,) = run_mutants([mutant], jobs=1)
    print(f"{mutant.name}: {v.result.status}, failed {v.result.failed} in {v.result.seconds} s")
    assert v.result.status == "fail", f"formal missed mutant {mutant.name}: {mutant.doc}"
    assert set(v.result.failed) & set(mutant.caught_by), \
        f"{mutant.name} failed {v.result.failed}, not one of {mutant.caught_by}"
    assert v.result.trace.endswith(".vcd")


def test_property_names_read_back():
    il = ('module \\top\n  cell $check $7\n    parameter \\FORMAT "b_okay"\n'
          '    parameter \\FLAVOR "assert"\n  end\nend\n')
    assert property_names(il) == {"_witness_.check_7": ("assert", "b_okay")}


def test_crc_bitwise_is_the_protocol_crc(rng):
    m = Module()
    crc, byte = Signal(8), Signal(8)
    out = Signal(8)
    m.d.comb += out.eq(crc8_bitwise(m, crc, byte))
    sim = Simulator(m)
    cases = [(rng.randrange(256), rng.randrange(256)) for _ in range(200)] + [(0, 0), (0xFF, 0xFF)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc8(bytes([b]), crc=c), (c, b)
    sim.add_testbench(bench)
    sim.run()
