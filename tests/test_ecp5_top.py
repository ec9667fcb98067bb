"""The ULX3S top without running the tools: PLL settings, pins and clock constraint.

``platform.prepare`` elaborates the whole top (PLL instance, reset, UART,
kernel, memory) and renders the build files that ``make bitstream`` feeds to
yosys/nextpnr; a tiny kernel keeps it to seconds. The full build is
``make bitstream`` (not part of the test suite).
"""

import re

import pytest
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from hefl.hw.ecp5_top import BOARD_DEFAULTS, ULX3STop, pll_params
from hefl.hw.params import ECP5_CLOCK_MHZ, ULX3S_OSC_MHZ

OSC = ULX3S_OSC_MHZ


@pytest.mark.parametrize("mhz", sorted({25, 40, 50, 75, 80, 100, 125, ECP5_CLOCK_MHZ}))
def test_pll_params_are_exact_and_in_range(mhz):
    clki, fb, op = pll_params(OSC, mhz)
    assert OSC / clki * fb == pytest.approx(mhz)
    assert 400 <= mhz * op <= 800
    assert OSC / clki >= 3.125


def test_pll_params_reject_unreachable():
    with pytest.raises(ValueError, match="No exact EHXPLLL"):
        pll_params(OSC, 33.3)


def test_prepare_renders_pins_and_clock_constraint():
    top = ULX3STop(clock_mhz=50, baud=BOARD_DEFAULTS["baud"], operand_bits=64, word_bits=16,
                   lanes=1, max_exp_bits=64, mem_limbs=256)
    assert top.core._divisor == 50   # 50 MHz / 1 Mbaud
    plan = ULX3S_85F_Platform().prepare(top, name="hefl")
    lpf = plan.files["hefl.lpf"]
    text = lpf if isinstance(lpf, str) else lpf.decode()
    sites = dict(re.findall(r'LOCATE COMP "(\w+)" SITE "(\w+)";', text))
    # The platform's pins: 25 MHz oscillator, FTDI UART, the eight LEDs.
    assert sites["clk25_0__io"] == "G2"
    assert sites["uart_0__rx__io"] == "M1" and sites["uart_0__tx__io"] == "L4"
    assert sum(k.startswith("led_") for k in sites) == 8
    # The 25 MHz input is constrained; nextpnr derives the PLL output from it.
    assert re.search(r'FREQUENCY PORT "clk25_0__io" 25000000(\.0)? HZ;', text), text
    rtlil = plan.files["hefl.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    clki, fb, op = pll_params(OSC, 50)
    assert "EHXPLLL" in rtlil
    for name, value in (("CLKI_DIV", clki), ("CLKFB_DIV", fb), ("CLKOP_DIV", op)):
        assert re.search(rf"parameter \\{name} {value}\b", rtlil), name


def test_slowest_endpoints_take_each_cells_latest_arrival():
    """ecp5.json's near-critical list: per endpoint cell its latest sink, latest first, capped."""
    from hefl.flows.ecp5 import slowest_endpoints

    def net(driver, *sinks):
        return {"driver": driver, "endpoints": [{"cell": c, "port": p, "delay": [0.0, t]}
                                                for c, p, t in sinks]}
    rep = {"detailed_net_timings": [
        net("lut_a", ("ff_x", "DI", 9.5), ("ram_y", "ADA3", 10.25)),
        net("lut_b", ("ff_x", "CE", 9.9), ("ff_z", "M", 4.0)),
        net("lut_c", ("ram_y", "ADA1", 8.0)),
    ]}
    got = slowest_endpoints(rep, count=2)
    assert got == [{"endpoint": "ram_y.ADA3", "arrival_ns": 10.25, "driver": "lut_a"},
                   {"endpoint": "ff_x.CE", "arrival_ns": 9.9, "driver": "lut_b"}]
    assert [e["endpoint"] for e in slowest_endpoints(rep)] == ["ram_y.ADA3", "ff_x.CE", "ff_z.M"]
    assert slowest_endpoints({}) == []
