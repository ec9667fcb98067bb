"""``hefl hw-report`` section ``modexp``: Paillier cycles, sub-engine resources, U250 projection.

Writes ``<out>/modexp.json``. For Paillier-1024 and Paillier-2048, everything
measured in this run:

* **cycles** (:func:`_simulate_paillier`), simulated on the Verilator model
  of a one-lane BatchEngine (:mod:`hefl.sim.engine_model`), every value
  checked against ``pow`` and every count equal to the exact schedule model
  :func:`hefl.golden.batch.engine_job_cycles`: the textbook encryption
  ``r^n mod n²``; the **fixed-base encryption** ``h^α · (1 + m·n)`` as one
  TABLE_PRODUCT job of ``W + 1`` factors (``α`` of ``⌈|n|/2⌉`` bits in the
  card's ``k``-bit windows, :data:`hefl.hw.params.CARD_TABLE_WINDOW_BITS`);
  one ciphertext multiply; the two CRT halves of a decryption, on a lane
  sized for ``p²`` and on the encryption lane.
* **resources** from yosys ``synth_xilinx -family xcup`` of the sub-engines
  themselves (:class:`~hefl.hw.batch_engine.BatchEngine` with its trees, table
  port and fetcher, its memories where the card's configuration puts them:
  :data:`~hefl.hw.params.ALVEO_LANE_RAM_STYLE`,
  :data:`~hefl.hw.params.ALVEO_T_RAM_STYLE`) at ``F`` lanes (one full
  dispatcher leaf, ``F`` = :data:`~hefl.hw.params.ENGINE_TREE_FAN`) and at
  ``F²`` lanes (``F`` leaves and one node above them in each tree): the
  difference over ``F² − F`` is the cost of a lane in a large sub-engine —
  the lane, its FIFO and expander, its share of its leaf and of the nodes
  above, of which a tree of any size has at most one per ``F − 1`` leaves
  (``(F^d − 1)/(F − 1)`` nodes over ``F^d`` leaves), the share charged
  here — and the rest the sub-engine's own; and of
  the kernel around them (:func:`hefl.sim.loopback.loopback_kernel`: parser,
  AXI master with its port FIFOs, control, result tree; loopbacks subtracted).
  LUT-RAM cells count as the LUTs they occupy.
* **the data path** (:func:`hefl.sim.loopback.measure_data_path`): the kernel
  with loopback sub-engines at the Alveo bus width, cycles per job and bytes
  per cycle of every operation shape, i.e. what the RTL around the lanes
  actually moves.
* ``paillier1024`` (``paillier256`` with ``--quick``): the encryption's
  ``dsp_cycles`` = DSP48E2 of one lane × simulated cycles of one ``r^n mod n²``,
  with the exact model's count beside it; and ``lane``: a lane's share of
  the synthesised sub-engine (the ``F²``-lane minus the ``F``-lane figure,
  over ``F² − F``: lane, job FIFO, table expander, share of the trees),
  ``lut_equivalent_per_6dsp`` =
  (LUT + LUTs occupied by LUT-RAM) × 6 / DSP48E2, with the ModExp lane
  synthesised alone beside it (``lane.alone``).

``projected_u250`` is a **projection**, no card was run: for each
configuration (the encryption bitstream: ``n²``-sized lanes with table
ports; the decryption bitstream: ``p²``-sized lanes), lanes fit in ``fill``
of what the U250's shell leaves (:data:`U250_SHELL`), split over
:data:`SUB_ENGINES` sub-engines (one per SLR); each operation runs at
the lowest of its compute rate (lanes × clock / cycles), the measured data
path (clock / loopback cycles per job), PCIe (:data:`PCIE_BYTES_PER_S` over
the bytes crossing it) and the card memory (:data:`DDR_BYTES_PER_S` over the
bytes on ``m_axi_gmem``). A sensitivity table covers 200/250/300 MHz ×
60/70 % fill; the headline is 250 MHz × 65 % (``at_250mhz_65pct``). The
clock is assumed, not shown (``clock_evidence``).
"""

import hashlib
import json
import math
import sys
import time
from pathlib import Path

from hefl.flows.report import register_section
from hefl.hw.params import (
    ALVEO_DATA_BITS,
    ALVEO_LANE_RAM_STYLE,
    ALVEO_T_RAM_STYLE,
    CARD_TABLE_WINDOW_BITS,
    ENGINE_TREE_FAN,
    MODEXP_WINDOW_BITS,
    MONTMUL_WORD_BITS,
)
from hefl.hw.regmap import LAYOUT

__all__ = ["modexp_report", "engine_cycles", "U250", "U250_SHELL", "PCIE_BYTES_PER_S",
           "DDR_BYTES_PER_S", "TARGETS_1024", "SUB_ENGINES", "project_lanes", "lut_equivalent",
           "fit_lanes", "op_rate", "HEADLINE", "SENSITIVITY"]

#: Alveo U250 resources (UltraScale+ XCU250).
U250 = {"dsp48e2": 12_288, "lut": 1_728_000, "ff": 3_456_000, "bram36": 2_688, "uram": 1_280}
#: What the U250 platform (shell: PCIe, XDMA, memory subsystem, static
#: region) uses, subtracted before the fill. LUT, BRAM36, URAM and DSP as
#: the Vitis Libraries report the platform part ("P") of their U250 builds
#: (solver library benchmark, xilinx_u250 xdma platform: 101.7K–108.1K LUT,
#: 165–178 BRAM, 0 URAM, 4 DSP; the larger taken); FFs are not reported
#: there and are taken as two per LUT.
U250_SHELL = {"dsp48e2": 4, "lut": 108_100, "ff": 216_200, "bram36": 178, "uram": 0}
U250_SHELL_SOURCE = ("Vitis Libraries solver benchmarks on U250 (xilinx.github.io/Vitis_Libraries/"
                     "solver/2022.1/benchmark.html), platform share 'P' of LUT/BRAM/URAM/DSP; "
                     "FF assumed 2 per LUT")
#: Sub-engines of the projected kernel: one per SLR of the XCU250.
SUB_ENGINES = 4
#: Host link: PCIe Gen3 ×16, usable bytes per second counted over both directions.
PCIE_BYTES_PER_S = 12e9
#: Card memory behind the one ``m_axi_gmem`` port: one DDR4-2400 bank
#: (19.2 GB/s peak), 70 % of it assumed sustained for the kernel's mix of
#: streamed descriptors and 41-limb table reads.
DDR_BYTES_PER_S = 0.7 * 19.2e9
#: Issue 4 targets for Paillier-1024 (Clustar's measured U250 engine); the goal is twice them.
TARGETS_1024 = {"encrypt_per_s": 33_653, "decrypt_per_s": 69_355, "mulmod_per_s": 359_942}
#: The headline point (clock MHz, fill) and the sensitivity grid.
HEADLINE = (250, 0.65)
SENSITIVITY = {"clock_mhz": (200, 250, 300), "fill": (0.60, 0.70)}
#: Most of the remaining device a projection may fill.
FILL_MAX = 0.70

#: The card's memory placement in synthesis cache names.
_STYLE_TAG = f"lane-{ALVEO_LANE_RAM_STYLE}_t-{ALVEO_T_RAM_STYLE}"

#: LUTs each Xilinx LUT-RAM primitive occupies.
_LUTRAM_LUTS = {"RAM32M16": 8, "RAM64M8": 8, "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2,
                "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1,
                "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8}
_RESOURCES = ("dsp48e2", "lut_total", "ff", "bram36", "uram")


def _log(msg):
    print(f"hw-report modexp: {msg}", file=sys.stderr, flush=True)


def lut_equivalent(cells):
    """LUTs occupied by the LUT-RAM primitives in a yosys cell count."""
    return sum(_LUTRAM_LUTS.get(name, 0) * n for name, n in cells.items())


def project_lanes(per_lane, *, fill=0.8, shell=None, fixed=None):
    """Lanes fitting in ``fill`` of every U250 resource; returns ``(lanes, binding, by_resource)``.

    ``shell`` (subtracted first) and ``fixed`` (resources spent before the
    first lane: the kernel and the sub-engines' own) default to none, the
    whole device; the report passes :data:`U250_SHELL` and the synthesised
    fixed parts (:func:`fit_lanes`).
    """
    shell, fixed = shell or {}, fixed or {}
    need = {"dsp48e2": per_lane["dsp48e2"], "lut": per_lane["lut_total"],
            "ff": per_lane["ff"], "bram36": per_lane["bram36"], "uram": per_lane["uram"]}
    key = {"lut": "lut_total"}
    fits = {}
    for k, v in need.items():
        if v > 0:
            room = fill * (U250[k] - shell.get(k, 0)) - fixed.get(key.get(k, k), 0)
            fits[k] = max(0, math.floor(room / v))
    binding = min(fits, key=fits.get)
    return fits[binding], binding, fits


def fit_lanes(resources, *, fill, sub_engines=SUB_ENGINES):
    """Lanes of a configuration at ``fill``: ``(lanes, binding, by_resource)``.

    ``resources`` is :func:`_config_resources`' result: the per-lane cost,
    each sub-engine's fixed part and the kernel's.
    """
    fixed = {k: resources["kernel"][k] + sub_engines * resources["sub_engine_fixed"][k]
             for k in _RESOURCES}
    return project_lanes(resources["per_lane"], fill=fill, shell=U250_SHELL, fixed=fixed)


def op_rate(*, lanes, clock_hz, lane_cycles, data_cycles, host_bytes, bus_bytes, jobs_per_op=1,
            result_cycles=None, sub_engines=SUB_ENGINES):
    """Operations per second of one operation shape: the lowest of its caps.

    ``lane_cycles`` is one operation's cycles on a lane (all its jobs);
    ``data_cycles`` the loopback kernel's cycles per job (with all
    sub-engines); ``host_bytes``/``bus_bytes`` per job; ``jobs_per_op``
    jobs make one operation (a CRT decryption: two); ``result_cycles`` the
    cycles each sub-engine's reducer spends per result
    (:func:`hefl.golden.batch.reducer_cycles_per_result`), a fifth cap
    with the jobs spread over ``sub_engines``.
    """
    caps = {
        "compute": lanes * clock_hz / lane_cycles,
        "data_path": clock_hz / (data_cycles * jobs_per_op),
        "pcie": PCIE_BYTES_PER_S / (host_bytes * jobs_per_op),
        "card_memory": DDR_BYTES_PER_S / (bus_bytes * jobs_per_op),
    }
    if result_cycles is not None:
        caps["reducer"] = sub_engines * clock_hz / (result_cycles * jobs_per_op)
    bound = min(caps, key=caps.get)
    return {"per_s": round(caps[bound]), "bound_by": bound,
            **{f"{k}_per_s": round(v) for k, v in caps.items()}}


# --- measurements ---------------------------------------------------------------


def engine_cycles(op, count, L, w, k):
    """Exact BatchEngine cycles of one job on a lane of ``L`` bits, ``w``-bit words, window ``k``."""
    from hefl.golden import batch as gb
    from hefl.golden.montgomery import words_for
    from hefl.golden.montmul_hw import mul_latency, op_timing
    from hefl.hw.params import TILE_A_BITS, TILE_B_BITS
    s = words_for(L, w)
    tail = gb.montmul_tail_latency(op_timing(s, mul_latency(w, TILE_A_BITS, TILE_B_BITS)), s)
    return gb.engine_job_cycles(op, count, words=s, word_bits=w, window_bits=k,
                                mm_latency=tail).total


#: Where every cycle count of the report comes from.
SIM_SOURCE = ("Verilator model of a one-lane BatchEngine (C++ harness), value checked "
              "against pow(), cycles checked equal to the exact schedule model")


def _simulate_paillier(nbits, w, k, rng):
    """Simulate one of each Paillier operation; returns cycles by name (all checked)."""
    from hefl.golden import batch as gb
    from hefl.golden.fixedbase import windows
    from hefl.sim.engine_model import EngineHarness

    def run(h, job, want):
        value, cycles = h.run(job)
        if value != want:
            raise AssertionError(f"{nbits}-bit Paillier job {job.tag}: wrong value from the engine")
        model = engine_cycles(job.op, job.count, h.L, w, k)
        if cycles != model:
            raise AssertionError(f"job {job.tag}: {cycles} simulated cycles, model {model}")
        return cycles

    p, q = gb.paillier_primes(rng, nbits)
    n = p * q
    n2 = n * n
    r = rng.randrange(1, n)
    c = (1 + rng.randrange(n) * n) * pow(r, n, n2) % n2
    c2 = rng.randrange(1, n2)
    out = {}
    L = 2 * nbits
    _log(f"Paillier-{nbits}: Verilator harness, L = {L}")
    with EngineHarness(L=L, w=w, k=k, x=L) as h:
        kw = dict(word_bits=w, words=h.s)
        h.load_constants(n2)
        out["encrypt"] = run(h, gb.powmod_job(r, n, nbits, n2, tag=1, **kw), pow(r, n, n2))
        out["mulmod"] = run(h, gb.mulmod_job(c, c2, n2, tag=2, **kw), c * c2 % n2)
        # Fixed-base encryption as the card runs it: the plain (1 + m·n) and
        # W Montgomery-form entries h^(d·2^(k·i)) (random stand-ins of the same size).
        W = windows(-(-nbits // 2), CARD_TABLE_WINDOW_BITS)
        f = (1 + rng.randrange(n) * n) % n2
        entries = [rng.randrange(1, n2) for _ in range(W)]
        want = f
        for e in entries:
            want = want * e % n2
        job = gb.table_product_job(entries, f, n2, tag=7, **kw)
        out["fixed_base"] = run(h, job, want)
        out["fixed_base_windows"] = W
        halves = []
        for t, fct in enumerate((p, q)):
            h.load_constants(fct * fct)
            job = gb.powmod_job(c % (fct * fct), fct - 1, fct.bit_length(), fct * fct, tag=3 + t, **kw)
            halves.append(run(h, job, pow(c, fct - 1, fct * fct)))
        out["decrypt_halves_encrypt_lane"] = halves
    _log(f"Paillier-{nbits}: Verilator harness, L = {nbits}")
    with EngineHarness(L=nbits, w=w, k=k, x=nbits) as h:
        kw = dict(word_bits=w, words=h.s)
        halves = []
        for t, fct in enumerate((p, q)):
            h.load_constants(fct * fct)
            job = gb.powmod_job(c % (fct * fct), fct - 1, fct.bit_length(), fct * fct, tag=5 + t, **kw)
            halves.append(run(h, job, pow(c, fct - 1, fct * fct)))
        out["decrypt_halves"] = halves
    return out


def _synth_cached(make, name):
    """``synth_xcup`` of the component ``make()`` builds, cached by its Verilog text."""
    from hefl.flows.synth import synth_xcup
    from hefl.flows.verilog import to_verilog
    from hefl.paths import build_root
    v = to_verilog(make(), name=name, out_dir=build_root() / "verilog" / "modexp_report")
    digest = hashlib.sha256(Path(v).read_bytes()).hexdigest()[:16]
    cache = build_root() / "synth" / "modexp_report" / f"{name}-{digest}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    _log(f"{name}: yosys synth_xilinx -family xcup")
    t0 = time.monotonic()
    r = synth_xcup(v, top=name)
    cells = r.pop("cells")
    lutram = lut_equivalent(cells)
    res = {"dsp48e2": r["dsp48e2"], "lut": r["lut"], "lutram_luts": lutram,
           "lut_total": r["lut"] + lutram, "ff": r["ff"], "bram36": r["bram"],
           "uram": sum(n for c, n in cells.items() if c.startswith("URAM")),
           "synth_seconds": round(time.monotonic() - t0)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(res))
    return res


#: Issue 13 targets for one lane and one Paillier-1024 encryption.
LANE_LUT_EQ_PER_6DSP_MAX = 1300
ENCRYPT_DSP_CYCLES_MAX = 22_000_000


def _per_6dsp(lut_eq, dsp):
    return round(lut_eq * 6 / dsp) if dsp else None


def _lane_fields(per, L, w, k):
    """``lane``: a lane's share of the sub-engine (the projected cost) and the lane alone."""
    from hefl.hw.modexp import ModExp
    alone = _synth_cached(lambda: ModExp(operand_bits=L, word_bits=w, window_bits=k,
                                         max_exp_bits=L, ram_style=ALVEO_LANE_RAM_STYLE,
                                         t_ram_style=ALVEO_T_RAM_STYLE),
                          f"modexp_L{L}_w{w}_k{k}_x{L}_{_STYLE_TAG}")
    ratio = _per_6dsp(per["lut_total"], per["dsp48e2"])
    F = ENGINE_TREE_FAN
    return {"definition": f"a lane's share of a large synthesised sub-engine ({F * F}-lane minus "
                          f"{F}-lane BatchEngine, divided by {F * F - F}, yosys synth_xilinx -family "
                          "xcup: lane, its job FIFO, table expander, its share of its dispatcher "
                          f"leaf (the {F} lanes' FIFO write mux, router and arbiter) and one node "
                          f"of each tree per {F - 1} leaves, the most a tree of any size has); "
                          f"memories as the card builds them (lane {ALVEO_LANE_RAM_STYLE}, "
                          f"t {ALVEO_T_RAM_STYLE}); lut_total = LUT + LUTs "
                          "occupied by LUT-RAM; lut_equivalent_per_6dsp = lut_total x 6 / DSP48E2",
            "dsp48e2": per["dsp48e2"], "lut_total": per["lut_total"],
            "lut_equivalent_per_6dsp": ratio, "target_max": LANE_LUT_EQ_PER_6DSP_MAX,
            "meets_target": ratio is not None and ratio <= LANE_LUT_EQ_PER_6DSP_MAX,
            "alone": {"what": "one ModExp lane (FSM, MontMul core and multiplier, lane and t "
                              "memories, placed as on the card) synthesised on its own",
                      **alone,
                      "lut_equivalent_per_6dsp": _per_6dsp(alone["lut_total"],
                                                           alone["dsp48e2"])}}


def _encrypt_fields(cycles, dsp, nbits, L, w, k):
    """``paillier<n>.encrypt``: one simulated r^n on one lane, its DSP-cycles and the target."""
    from hefl.golden import batch as gb
    model = engine_cycles(gb.POWMOD, nbits, L, w, k)
    return {"what": f"one r^n mod n² (|n| = {nbits}, exponent {nbits} bits) on one {L}-bit lane",
            "cycles": cycles, "model_cycles": model, "equals_model": cycles == model,
            "dsp48e2": dsp, "dsp_cycles": dsp * cycles,
            "montmuls": gb.lane_montmuls(gb.POWMOD, nbits, k),
            "squarings": gb.lane_squarings(gb.POWMOD, nbits, k),
            "target_dsp_cycles_max": ENCRYPT_DSP_CYCLES_MAX,
            "meets_target": dsp * cycles <= ENCRYPT_DSP_CYCLES_MAX}


def _config_resources(L, w, k, *, table_max, sub_engines=SUB_ENGINES):
    """Per-lane, per-sub-engine and kernel resources of one configuration (synthesised)."""
    from hefl.hw.batch_engine import BatchEngine
    from hefl.sim.loopback import LoopbackEngine, loopback_kernel

    def engine(lanes):
        return lambda: BatchEngine(operand_bits=L, word_bits=w, lanes=lanes, window_bits=k,
                                   max_exp_bits=L, table_max=table_max,
                                   lane_ram_style=ALVEO_LANE_RAM_STYLE,
                                   t_ram_style=ALVEO_T_RAM_STYLE)

    tag = f"L{L}_w{w}_k{k}_t{table_max}_{_STYLE_TAG}"
    # F lanes (one full leaf, no node above it) against F² (F leaves and one
    # node of each tree above them): the F² − F added lanes bring F − 1
    # leaves and one upper node, the share of upper nodes a lane has in a
    # tree of any size at most, so what a leaf's lanes share (their FIFOs'
    # write mux, the leaf router and arbiter) and the upper levels are
    # counted per lane, not as fixed.
    F = ENGINE_TREE_FAN
    small = _synth_cached(engine(F), f"subengine_{tag}_e{F}")
    big = _synth_cached(engine(F * F), f"subengine_{tag}_e{F * F}")
    per_lane = {r: max(0, round((big[r] - small[r]) / (F * F - F), 2)) for r in _RESOURCES}
    fixed = {r: max(0, round(small[r] - F * per_lane[r], 2)) for r in _RESOURCES}
    kern = _synth_cached(lambda: loopback_kernel(operand_bits=L, word_bits=w, engines=sub_engines,
                                                 data_bits=ALVEO_DATA_BITS, table_max=table_max),
                         f"loopback_kernel_{tag}_s{sub_engines}")
    loop = _synth_cached(lambda: LoopbackEngine(operand_bits=L, word_bits=w, table_max=table_max),
                         f"loopback_engine_{tag}")
    kernel = {r: max(0, kern[r] - sub_engines * loop[r]) for r in _RESOURCES}
    return {"operand_bits": L, "word_bits": w, "table_max": table_max,
            "per_lane": per_lane, "sub_engine_fixed": fixed, "kernel": kernel,
            "synthesised": {f"sub_engine_{F}_lanes": small, f"sub_engine_{F * F}_lanes": big,
                            "loopback_kernel": kern, "loopback_engine": loop},
            "method": f"yosys synth_xilinx -family xcup of the sub-engine at {F} and {F * F} "
                      f"lanes: per lane = the difference / {F * F - F} (a lane, its FIFO, expander, "
                      "its share of its dispatcher leaf and of the tree nodes above), sub-engine "
                      f"fixed part = {F}-lane result - {F} x per lane; kernel = "
                      f"the kernel with {sub_engines} loopback sub-engines minus those loopbacks"}


def _data_path(nbits, L, w, rng):
    from hefl.sim.loopback import measure_data_path
    _log(f"data path: loopback kernel, L = {L}, {SUB_ENGINES} sub-engines, DW = {ALVEO_DATA_BITS}")
    return measure_data_path(operand_bits=L, word_bits=w, engines=SUB_ENGINES,
                             data_bits=ALVEO_DATA_BITS, key_bits=nbits, jobs=256,
                             seed=rng.getrandbits(32))


def _gmpy2_rates(nbits, rng):
    """gmpy2 on one core: encryption modexp, CRT decryption, ciphertext multiply."""
    import gmpy2

    from hefl.golden import batch as gb
    p, q = gb.paillier_primes(rng, nbits)
    n = gmpy2.mpz(p * q)
    n2, p2, q2 = n * n, gmpy2.mpz(p * p), gmpy2.mpz(q * q)
    p, q = gmpy2.mpz(p), gmpy2.mpz(q)
    g = n + 1
    hp = gmpy2.invert((gmpy2.powmod(g, p - 1, p2) - 1) // p, p)
    hq = gmpy2.invert((gmpy2.powmod(g, q - 1, q2) - 1) // q, q)
    qinv = gmpy2.invert(q, p)
    r = gmpy2.mpz(rng.randrange(1, int(n)))
    m = gmpy2.mpz(rng.randrange(int(n)))
    c = (1 + m * n) * gmpy2.powmod(r, n, n2) % n2
    c2 = gmpy2.mpz(rng.randrange(1, int(n2)))

    def decrypt():
        mp = (gmpy2.powmod(c, p - 1, p2) - 1) // p * hp % p
        mq = (gmpy2.powmod(c, q - 1, q2) - 1) // q * hq % q
        return mq + ((mp - mq) * qinv % p) * q

    assert decrypt() == m, "gmpy2 CRT decryption reference is wrong"
    return {"encrypt_per_s": _rate(lambda: gmpy2.powmod(r, n, n2)),
            "decrypt_per_s": _rate(decrypt),
            "mulmod_per_s": _rate(lambda: c * c2 % n2),
            "note": "gmpy2 on one core: r^n mod n²; CRT decryption (two powmods mod p², q², "
                    "L-function and recombination); c1·c2 mod n²"}


def _rate(fn, min_seconds=0.4):
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return round(n / dt, 1)


# --- projection ------------------------------------------------------------------


def _project(key, clock_mhz, fill):
    """Every operation's rate for one key size at one (clock, fill): a projection."""
    from hefl.golden import batch as gb
    from hefl.golden.montgomery import words_for
    f = clock_mhz * 1e6
    cyc, enc_res, dec_res = key["cycles"], key["resources"]["encrypt"], key["resources"]["decrypt"]
    data_enc, data_dec = key["data_path"]["encrypt"], key["data_path"]["decrypt"]
    lanes_e, bind_e, _ = fit_lanes(enc_res, fill=fill)
    lanes_d, bind_d, _ = fit_lanes(dec_res, fill=fill)

    def shape(data, name, lanes, lane_cycles, words, jobs=1):
        d = data[name]
        return op_rate(lanes=lanes, clock_hz=f, lane_cycles=lane_cycles,
                       data_cycles=d["cycles_per_job"], host_bytes=d["host_bytes_per_job"],
                       bus_bytes=d["bus_bytes_per_job"], jobs_per_op=jobs,
                       result_cycles=gb.reducer_cycles_per_result(words))

    s_enc, s_dec = (words_for(enc_res["operand_bits"], enc_res["word_bits"]),
                    words_for(dec_res["operand_bits"], dec_res["word_bits"]))
    enc_fb = shape(data_enc, "fixed_base", lanes_e, cyc["encrypt_fixed_base"]["cycles"], s_enc)
    enc_rn = shape(data_enc, "powmod_rn", lanes_e, cyc["encrypt_rn"]["cycles"], s_enc)
    mul = shape(data_enc, "mulmod", lanes_e, cyc["mulmod"]["cycles"], s_enc)
    dec = shape(data_dec, "powmod_half", lanes_d, cyc["decrypt_crt"]["cycles"], s_dec, jobs=2)
    dec_on_enc = shape(data_enc, "powmod_half", lanes_e,
                       cyc["decrypt_crt_on_encrypt_lane"]["cycles"], s_enc, jobs=2)
    return {
        "clock_mhz": clock_mhz, "fill": fill, "is_projection": True,
        "encrypt_per_s": enc_fb["per_s"],
        "encrypt_path": "fixed-base DJN encryption h_s^α·(1+m·n): one TABLE_PRODUCT job per "
                        "encryption on the encryption bitstream",
        "encrypt_rn_per_s": enc_rn["per_s"],
        "decrypt_per_s": dec["per_s"],
        "decrypt_path": "CRT decryption (two half-size POWMODs) on the decryption bitstream "
                        "(p²-sized lanes, a separate configuration)",
        "decrypt_on_encrypt_bitstream_per_s": dec_on_enc["per_s"],
        "mulmod_per_s": mul["per_s"],
        "mulmod_path": "ciphertext multiply (MULMOD) on the encryption bitstream",
        "encrypt_lanes": lanes_e, "encrypt_binding_resource": bind_e,
        "decrypt_lanes": lanes_d, "decrypt_binding_resource": bind_d,
        "detail": {"encrypt_fixed_base": enc_fb, "encrypt_rn": enc_rn, "mulmod": mul,
                   "decrypt": dec, "decrypt_on_encrypt_bitstream": dec_on_enc},
    }


def _clock_evidence(out_dir):
    """What this tree has measured about clocks (nothing on UltraScale+)."""
    ev = {"statement": "No UltraScale+ place and route ran here (no Vivado): every U250 clock is "
                       "an assumption. 250 MHz is the headline, 200 and 300 MHz bracket it. "
                       "Measured on the ECP5-85F-6 (nextpnr), where available below; logic "
                       "that closes at f on ECP5-6 typically reaches about 2-3x f on a "
                       "UltraScale+ -2 part (a rule of thumb, not a measurement)."}
    for name, keys in (("ecp5.json", ("fmax_mhz", "target_mhz")), ("montmul.json", None)):
        p = Path(out_dir) / name
        if not p.is_file():
            continue
        data = json.loads(p.read_text())
        if keys:
            ev["ecp5_board"] = {k: data.get(k) for k in keys}
        else:
            rows = [r for r in data.get("configurations", []) if r.get("ecp5")]
            ev["ecp5_montmul"] = [{"operand_bits": r.get("operand_bits"),
                                   "fmax_mhz": (r.get("ecp5") or {}).get("fmax_mhz")} for r in rows]
    return ev


@register_section("modexp", help="Paillier cycles, fixed-base encryption, sub-engine resources, "
                                 "data path, U250 projection")
def modexp_report(args):
    import random

    from hefl.golden.montgomery import words_for

    w, k = MONTMUL_WORD_BITS, MODEXP_WINDOW_BITS
    rng = random.Random(args.seed)
    key_sizes = (256,) if args.quick else (1024, 2048)
    out = {"is_projection_note": "projected_u250 is a projection from simulated cycles, "
                                 "yosys resource counts and a simulated data path; no card was run",
           "window_bits": k, "word_bits": w, "card_table_window_bits": CARD_TABLE_WINDOW_BITS,
           "seed": args.seed, "keys": {}, "fixed_base": {}}
    keys = {}
    for nbits in key_sizes:
        L, half = 2 * nbits, nbits
        t0 = time.monotonic()
        sim = _simulate_paillier(nbits, w, k, rng)
        sim_s = time.monotonic() - t0
        cycles = {
            "encrypt_rn": {"cycles": sim["encrypt"], "lane_operand_bits": L, "source": SIM_SOURCE},
            "encrypt_fixed_base": {"cycles": sim["fixed_base"], "lane_operand_bits": L,
                                   "windows": sim["fixed_base_windows"], "source": SIM_SOURCE},
            "mulmod": {"cycles": sim["mulmod"], "lane_operand_bits": L, "source": SIM_SOURCE},
            "decrypt_crt": {"cycles": sum(sim["decrypt_halves"]), "lane_operand_bits": half,
                            "halves": sim["decrypt_halves"], "source": SIM_SOURCE},
            "decrypt_crt_on_encrypt_lane": {
                "cycles": sum(sim["decrypt_halves_encrypt_lane"]), "lane_operand_bits": L,
                "halves": sim["decrypt_halves_encrypt_lane"], "source": SIM_SOURCE},
        }
        res = {"encrypt": _config_resources(L, w, k, table_max=_table_max()),
               "decrypt": _config_resources(half, w, k, table_max=0)}
        data = {"encrypt": _data_path(nbits, L, w, rng), "decrypt": _data_path(nbits, half, w, rng)}
        _log(f"Paillier-{nbits}: gmpy2 on one core")
        cpu = _gmpy2_rates(nbits, rng)
        per = res["encrypt"]["per_lane"]
        keys[nbits] = {"cycles": cycles, "resources": res, "data_path": data}
        out["keys"][str(nbits)] = {
            "n_bits": nbits, "cycles": cycles, "simulation_seconds": round(sim_s, 1),
            "resources": res, "data_path": data, "gmpy2_one_core": cpu,
            "lane": _lane_fields(per, L, w, k),
            "encrypt": _encrypt_fields(sim["encrypt"], per["dsp48e2"], nbits, L, w, k),
        }
        model = engine_cycles(LAYOUT.op("table_product"), sim["fixed_base_windows"] + 1, L, w, k)
        out["fixed_base"][f"paillier{nbits}"] = {
            "cycles_per_encrypt": sim["fixed_base"], "model_cycles": model,
            "equal_to_model": sim["fixed_base"] == model,
            "rn_cycles": sim["encrypt"], "fraction_of_rn": round(sim["fixed_base"] / sim["encrypt"], 4),
            "table_window_bits": CARD_TABLE_WINDOW_BITS, "windows": sim["fixed_base_windows"],
            "montmuls": sim["fixed_base_windows"],
            "table_bytes": (sim["fixed_base_windows"] << CARD_TABLE_WINDOW_BITS)
            * LAYOUT.limb_bytes * words_for(L, w),
            "source": SIM_SOURCE + "; one TABLE_PRODUCT job of W + 1 factors (the plain "
                      "(1 + m·n) and W Montgomery-form table entries), W MontMuls, no squarings",
        }
        # The Must-show keys under their documented names.
        out[f"paillier{nbits}"] = {"encrypt": out["keys"][str(nbits)]["encrypt"]}
        out["lane" if nbits == key_sizes[0] else f"lane_{nbits}"] = out["keys"][str(nbits)]["lane"]
    out["projected_u250"] = _projection(keys, key_sizes, args)
    if not args.quick:
        head = out["projected_u250"]["at_250mhz_65pct"]
        out["targets_1024"] = TARGETS_1024
        out["goal_1024"] = {k2: 2 * v for k2, v in TARGETS_1024.items()}
        out["meets_goal_1024"] = {k2: head[k2] >= 2 * v for k2, v in TARGETS_1024.items()}
        out["summary_1024"] = (
            f"PROJECTED U250 at 250 MHz, 65% of what the shell leaves, Paillier-1024: encrypt "
            f"{head['encrypt_per_s']}/s (fixed-base; textbook r^n {head['encrypt_rn_per_s']}/s), "
            f"decrypt {head['decrypt_per_s']}/s (p²-lane bitstream), mulmod "
            f"{head['mulmod_per_s']}/s; bound by "
            f"{head['detail']['encrypt_fixed_base']['bound_by']}, "
            f"{head['detail']['decrypt']['bound_by']}, {head['detail']['mulmod']['bound_by']}")
    return out


def _table_max():
    from hefl.hw.kernel import TABLE_MAX
    return TABLE_MAX


def _projection(keys, key_sizes, args):
    clock, fill = HEADLINE
    main = keys[key_sizes[0]]
    proj = {"is_projection": True, "sub_engines": SUB_ENGINES, "shell": U250_SHELL,
            "shell_source": U250_SHELL_SOURCE, "device": U250,
            "fill_max": FILL_MAX, "pcie_bytes_per_s": PCIE_BYTES_PER_S,
            "card_memory_bytes_per_s": DDR_BYTES_PER_S,
            "clock_evidence": _clock_evidence(args.out),
            f"at_{clock}mhz_{round(fill * 100)}pct": _project(main, clock, fill),
            "sensitivity": [_project(main, c, fl) for c in SENSITIVITY["clock_mhz"]
                            for fl in SENSITIVITY["fill"]],
            "keys": {str(b): _project(keys[b], clock, fill) for b in key_sizes}}
    proj["assumptions"] = (
        f"PROJECTION, no card was run. Lanes: floor((fill × (U250 − shell) − kernel − "
        f"{SUB_ENGINES} × sub-engine fixed part) / per-lane cost) for each of DSP48E2, LUT "
        "(yosys LUTs + LUT-RAM as LUTs), FF, BRAM36, URAM, the tightest binding; every "
        "resource figure from yosys synth_xilinx -family xcup of the sub-engines and the "
        "kernel (no place and route: LUT counts are rough). Fill at most "
        f"{round(FILL_MAX * 100)}%. Per operation the lowest of: compute (lanes × clock / "
        "simulated lane cycles, one job per lane at a time, back to back), the reducers ("
        f"{SUB_ENGINES} × clock / the cycles each spends per result, one per sub-engine), "
        "the data path "
        f"(clock / cycles per job of the kernel with {SUB_ENGINES} loopback sub-engines at "
        f"DW = {ALVEO_DATA_BITS}, simulated: the parser forwards one limb per cycle, each "
        "sub-engine fetches one table word per cycle, results leave one limb per cycle), "
        f"PCIe ({PCIE_BYTES_PER_S / 1e9:g} GB/s over descriptor + result bytes) and card "
        f"memory ({DDR_BYTES_PER_S / 1e9:.1f} GB/s over every m_axi_gmem byte, table reads "
        "included). Encryption: fixed-base (the table uploaded once per key; the host builds "
        "(1 + m·n)); decryption: CRT halves on a separate bitstream of p²-sized lanes (the "
        "same model on the encryption bitstream given too); host-side CRT recombination not "
        "included. The clock is assumed (clock_evidence).")
    return proj
