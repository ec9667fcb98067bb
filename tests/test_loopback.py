"""The kernel's data path alone: the loopback kernel (no arithmetic) on the C++ harness.

What surrounds the lanes must keep up with them and its speed caps the
data-bound operations of the U250 projection (``hefl hw-report``): the
descriptor parser forwards one limb per cycle, each sub-engine's table
fetch one entry word per cycle, the writer one result limb per cycle, and
the AXI master keeps them fed (``test_kernel_axi_master.py`` shows a full
beat per cycle on R). The loopback returns each job's first operand, which
:func:`hefl.sim.loopback.measure_data_path` checks.
"""

import pytest

from hefl.golden.fixedbase import windows
from hefl.golden.montgomery import words_for
from hefl.hw.params import ALVEO_DATA_BITS, CARD_TABLE_WINDOW_BITS, MONTMUL_WORD_BITS
from hefl.sim.loopback import measure_data_path

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("engines", [1, 2])
def test_data_path_rates(engines, seed):
    L, w, key_bits = 512, MONTMUL_WORD_BITS, 256
    s = words_for(L, w)
    r = measure_data_path(operand_bits=L, word_bits=w, engines=engines, data_bits=ALVEO_DATA_BITS,
                          key_bits=key_bits, jobs=96, seed=seed)
    print(r)
    # MULMOD: 2s operand limbs and a header through the parser, a few cycles per job more.
    assert 2 * s + 1 <= r["mulmod"]["cycles_per_job"] <= 2 * s + 8
    # TABLE_PRODUCT: W entries of s words per sub-engine at one word per cycle.
    W = windows(-(-key_bits // 2), CARD_TABLE_WINDOW_BITS)
    assert W * s / engines <= r["fixed_base"]["cycles_per_job"] <= 1.1 * W * s / engines + 2 * s
    # Bus bytes: the table reads dominate a fixed-base encryption; within a beat per cycle.
    for name, m in r.items():
        assert 0 < m["read_bytes_per_cycle"] + m["write_bytes_per_cycle"] <= 2 * ALVEO_DATA_BITS // 8
        assert m["host_bytes_per_job"] > 0
    assert r["fixed_base"]["bus_bytes_per_job"] >= W * s * 8
