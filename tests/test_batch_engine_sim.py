"""BatchEngine (ModExp lanes on the real MontMul) on Verilator through cocotb.

One Verilator build per configuration (``build/sim/batch_engine_*``), reused
across runs while the generated Verilog is unchanged. The bench is
``sim/hefl/sim/tb/batch_engine_tb.py``: a golden scoreboard for random and
directed jobs under random idle/backpressure, the constant-time test (same
declared exponent length, different exponents and bases: identical cycle
counts, equal to the exact model). Paillier-sized jobs:
``test_batch_engine_paillier.py`` (C++ harness).
"""

import pytest

from hefl.hw.params import MONTMUL_WORD_BITS
from hefl.sim.engine_bench import run_engine_bench

pytestmark = pytest.mark.sim


#: (L, w, k, max_exp_bits, lanes, knobs). Two word widths (16 and the DSP48E2
#: default 51), two window widths, several lanes; exponents longer than the
#: modulus (X > L).
SMALL = [
    pytest.param(64, 16, 4, 150, 3,
                 {"BE_JOBS": 40, "BE_MODULI": 2, "BE_CT_BITS": "0,1,64,150"}, id="L64-w16-k4-e3"),
    pytest.param(256, MONTMUL_WORD_BITS, 5, 300, 2,
                 {"BE_JOBS": 24, "BE_MODULI": 2, "BE_CT_BITS": "5,256,300"},
                 id=f"L256-w{MONTMUL_WORD_BITS}-k5-e2"),
    # Six lanes: two levels of router and arbiter trees (fan-out 4).
    pytest.param(64, 16, 2, 64, 6, {"BE_JOBS": 12, "BE_MODULI": 1, "BE_CT_BITS": "0,64"},
                 id="L64-w16-k2-e6"),
]


@pytest.mark.parametrize("L,w,k,x,lanes,knobs", SMALL)
def test_batch_engine_small(L, w, k, x, lanes, knobs, seed):
    rep = run_engine_bench(L, w, k, x, lanes, knobs, seed)
    assert rep["random_jobs"] == knobs["BE_JOBS"] * knobs["BE_MODULI"]
    assert sorted(rep["constant_time_cycles"]) == sorted(knobs["BE_CT_BITS"].split(","))
    # PRODUCT (op 2) and TABLE_PRODUCT (op 3) of K = 1..3 ran alone, at their model's cycles;
    # the table product leaves out the K - 1 R² corrections.
    pc = rep["product_cycles"]
    assert set(pc) == {f"op{op}_k{k}" for op in (2, 3) for k in (1, 2, 3)}
    assert pc["op3_k1"] == pc["op2_k1"] and pc["op3_k3"] < pc["op3_k2"] * 2 < pc["op2_k3"]
    assert rep["table_product_jobs"] >= 1
