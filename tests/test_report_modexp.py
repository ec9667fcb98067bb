"""The U250 projection's arithmetic (``hefl hw-report --only modexp``), on made-up inputs.

The report's inputs are measured (simulation, synthesis); what turns them
into rates is checked here: the shell comes off before the fill, the fixed
parts before the first lane, the tightest resource binds, and each
operation runs at the lowest of its caps.
"""

import math

import pytest

from hefl.flows.report_modexp import (
    DDR_BYTES_PER_S,
    PCIE_BYTES_PER_S,
    SUB_ENGINES,
    U250,
    U250_SHELL,
    fit_lanes,
    lut_equivalent,
    op_rate,
    project_lanes,
)

PER_LANE = {"dsp48e2": 6, "lut_total": 2000, "ff": 2000, "bram36": 1.5, "uram": 0}


def test_lanes_after_shell_fill_and_fixed_parts():
    fixed = {"lut_total": 10_000, "dsp48e2": 1, "ff": 0, "bram36": 8, "uram": 0}
    res = {"per_lane": PER_LANE, "sub_engine_fixed": fixed, "kernel": fixed}
    lanes, binding, fits = fit_lanes(res, fill=0.65)
    lut_room = 0.65 * (U250["lut"] - U250_SHELL["lut"]) - (1 + SUB_ENGINES) * 10_000
    assert fits["lut"] == math.floor(lut_room / 2000)
    dsp_room = 0.65 * (U250["dsp48e2"] - U250_SHELL["dsp48e2"]) - (1 + SUB_ENGINES) * 1
    assert fits["dsp48e2"] == math.floor(dsp_room / 6)
    assert "uram" not in fits and (lanes, binding) == (min(fits.values()), "lut")
    # More fill, more lanes; the whole device (no shell) more still.
    assert fit_lanes(res, fill=0.70)[0] > lanes
    assert project_lanes(PER_LANE, fill=0.65)[0] > lanes


def test_rate_is_the_lowest_cap():
    f = 250e6
    r = op_rate(lanes=400, clock_hz=f, lane_cycles=200_000, data_cycles=100,
                host_bytes=800, bus_bytes=25_000)
    assert r["compute_per_s"] == round(400 * f / 200_000)
    assert r["data_path_per_s"] == round(f / 100)
    assert r["pcie_per_s"] == round(PCIE_BYTES_PER_S / 800)
    assert r["card_memory_per_s"] == round(DDR_BYTES_PER_S / 25_000)
    assert r["per_s"] == min(r[k] for k in ("compute_per_s", "data_path_per_s", "pcie_per_s",
                                            "card_memory_per_s"))
    assert r["bound_by"] == "compute"
    # Two jobs per operation (a CRT decryption) halve the data-bound caps.
    r2 = op_rate(lanes=400, clock_hz=f, lane_cycles=200_000, data_cycles=100, host_bytes=800,
                 bus_bytes=25_000, jobs_per_op=2)
    assert r2["data_path_per_s"] == round(f / 200) and r2["compute_per_s"] == r["compute_per_s"]
    # The reducers: one result per sub-engine every result_cycles; binding when slowest.
    r3 = op_rate(lanes=400, clock_hz=f, lane_cycles=2_000, data_cycles=10, host_bytes=8,
                 bus_bytes=25, result_cycles=300, sub_engines=4)
    assert r3["reducer_per_s"] == round(4 * f / 300) and r3["bound_by"] == "reducer"
    assert "reducer_per_s" not in r


@pytest.mark.parametrize("cells,luts", [({"RAM32M16": 3, "RAM64M8": 2, "LUT6": 100}, 40),
                                        ({"RAM64X1D": 5}, 10), ({}, 0)])
def test_lutram_counts_as_luts(cells, luts):
    assert lut_equivalent(cells) == luts
