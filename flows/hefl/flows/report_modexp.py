"""``hefl hw-report`` section ``modexp``: Paillier cycles, lane resources, U250 projection.

Writes ``<out>/modexp.json``. For Paillier-1024 and Paillier-2048:

* **cycles** of one encryption modexp ``r^n mod n²``, one CRT decryption (two
  half-size modexps: modulus ``p²``, exponent ``p − 1``, both simulated) and
  one ciphertext multiply ``c1·c2 mod n²``, all simulated here on the
  Verilator model of a one-lane BatchEngine (:mod:`hefl.sim.engine_model`);
  every value is checked against ``pow`` and every count against the exact
  schedule model :func:`hefl.golden.batch.engine_job_cycles`. Decryption is
  simulated on a lane sized for ``p²`` (``|n|``-bit operands) and on the
  encryption lane.
* **resources per lane** from yosys ``synth_xilinx -family xcup`` of a
  one-lane BatchEngine (lane, its MontMul, its job FIFO, and the dispatcher
  and arbiter counted against the lane); LUT-RAM cells are converted to the
  LUTs they occupy and added to ``lut_total``.
* ``projected_u250``: lanes that fit in 80 % of each U250 resource (DSP48E2,
  LUT, FF, BRAM36, URAM), the tightest binding, at ``clock_mhz``; operations
  per second from the cycle counts, capped by PCIe Gen3 ×16 (12 GB/s for the
  bytes each operation moves in the kernel's 64-bit-limb format) and by the
  engines' input streams. A **projection**: no card was run.
* ``gmpy2_one_core``: the same operations with gmpy2 on one core of this
  machine, measured in the same run.
* ``paillier1024`` (``paillier256`` with ``--quick``): the encryption's
  ``dsp_cycles`` = DSP48E2 of one lane × simulated cycles of one ``r^n mod n²``,
  with the exact model's count beside it; and ``lane``: the resources of one
  ModExp lane (lane FSM, MontMul core and multiplier, lane and t memories)
  synthesised alone, ``lut_equivalent_per_6dsp`` = (LUT + LUTs occupied by
  LUT-RAM) × 6 / DSP48E2, with the one-lane BatchEngine's figure (job FIFO,
  dispatcher, arbiter added) beside it.
"""

import json
import math
import sys
import time

from hefl.flows.report import register_section
from hefl.hw.params import ALVEO_CLOCK_MHZ, MODEXP_WINDOW_BITS, MONTMUL_WORD_BITS
from hefl.hw.regmap import LAYOUT

__all__ = ["modexp_report", "engine_cycles", "U250", "PCIE_BYTES_PER_S", "TARGETS_1024",
           "project_lanes", "lut_equivalent"]

#: Alveo U250 resources (UltraScale+ XCU250).
U250 = {"dsp48e2": 12_288, "lut": 1_728_000, "ff": 3_456_000, "bram36": 2_688, "uram": 1_280}
#: Share of each resource the projection may use.
U250_FILL = 0.8
#: Host link: PCIe Gen3 ×16, bytes per second counted over both directions.
PCIE_BYTES_PER_S = 12e9
#: Lanes behind one BatchEngine input stream (one w-bit word per cycle each).
LANES_PER_ENGINE = 64
#: Issue 4 targets for Paillier-1024 (Clustar's published U250 engine).
TARGETS_1024 = {"encrypt_per_s": 33_653, "decrypt_per_s": 69_355, "mulmod_per_s": 359_942}

#: LUTs each Xilinx LUT-RAM primitive occupies.
_LUTRAM_LUTS = {"RAM32M16": 8, "RAM64M8": 8, "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2,
                "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1,
                "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8}


def _log(msg):
    print(f"hw-report modexp: {msg}", file=sys.stderr, flush=True)


def lut_equivalent(cells):
    """LUTs occupied by the LUT-RAM primitives in a yosys cell count."""
    return sum(_LUTRAM_LUTS.get(name, 0) * n for name, n in cells.items())


def project_lanes(per_lane):
    """Lanes fitting in 80 % of every U250 resource; returns ``(lanes, binding, by_resource)``."""
    need = {"dsp48e2": per_lane["dsp48e2"], "lut": per_lane["lut_total"],
            "ff": per_lane["ff"], "bram36": per_lane["bram36"], "uram": per_lane["uram"]}
    fits = {k: math.floor(U250_FILL * U250[k] / v) for k, v in need.items() if v > 0}
    binding = min(fits, key=fits.get)
    return fits[binding], binding, fits


def _lane_resources(L, w, k):
    from hefl.flows.synth import synth_xcup
    from hefl.sim.engine_bench import engine_verilog
    verilog, top = engine_verilog(L, w, k, L, 1)
    _log(f"{top}: yosys synth_xilinx -family xcup")
    r = synth_xcup(verilog, top=top)
    cells = r.pop("cells")
    lutram_luts = lut_equivalent(cells)
    return {"operand_bits": L, "word_bits": w, "dsp48e2": r["dsp48e2"], "lut": r["lut"],
            "lutram_luts": lutram_luts, "lut_total": r["lut"] + lutram_luts, "ff": r["ff"],
            "bram36": r["bram"], "uram": sum(v for c, v in cells.items() if c.startswith("URAM")),
            "carry": r["carry"]}


#: Issue 13 targets for one lane and one Paillier-1024 encryption.
LANE_LUT_EQ_PER_6DSP_MAX = 1300
ENCRYPT_DSP_CYCLES_MAX = 22_000_000


def _lane_only_resources(L, w, k):
    """yosys xcup counts of one ModExp lane alone (``L``-bit operands, exponents up to ``L``)."""
    from hefl.flows.synth import synth_xcup
    from hefl.flows.verilog import to_verilog
    from hefl.hw.modexp import ModExp
    top = f"modexp_L{L}_w{w}_k{k}_x{L}"
    verilog = to_verilog(ModExp(operand_bits=L, word_bits=w, window_bits=k, max_exp_bits=L),
                         name=top)
    _log(f"{top}: yosys synth_xilinx -family xcup")
    r = synth_xcup(verilog, top=top)
    cells = r.pop("cells")
    lutram_luts = lut_equivalent(cells)
    return {"dsp48e2": r["dsp48e2"], "lut": r["lut"], "lutram_luts": lutram_luts,
            "lut_equivalent": r["lut"] + lutram_luts, "ff": r["ff"], "bram36": r["bram"],
            "uram": sum(v for c, v in cells.items() if c.startswith("URAM")), "carry": r["carry"]}


def _per_6dsp(lut_eq, dsp):
    return round(lut_eq * 6 / dsp) if dsp else None


def _lane_fields(out, w, k, nbits):
    """``paillier<nbits>.encrypt.dsp_cycles`` and ``lane`` (see the module docstring)."""
    from hefl.golden import batch as gb
    L = 2 * nbits
    lane = _lane_only_resources(L, w, k)
    engine = out["keys"][str(nbits)]["resources_per_lane"]["encrypt_lane"]
    cycles = out["keys"][str(nbits)]["cycles"]["encrypt_modexp"]["cycles"]
    model = engine_cycles(gb.POWMOD, nbits, L, w, k)
    dsp = lane["dsp48e2"]
    return {
        f"paillier{nbits}": {"encrypt": {
            "what": f"one r^n mod n² (|n| = {nbits}, exponent {nbits} bits) on one {L}-bit lane",
            "cycles": cycles, "model_cycles": model, "equals_model": cycles == model,
            "dsp48e2": dsp, "dsp_cycles": dsp * cycles,
            "montmuls": gb.lane_montmuls(gb.POWMOD, nbits, k),
            "squarings": gb.lane_squarings(gb.POWMOD, nbits, k),
            "target_dsp_cycles_max": ENCRYPT_DSP_CYCLES_MAX,
            "meets_target": dsp * cycles <= ENCRYPT_DSP_CYCLES_MAX}},
        "lane": {
            "definition": ("one ModExp lane (lane FSM, MontMul core and multiplier, lane memory, "
                           "t memory) as the BatchEngine instantiates it, synthesised alone with "
                           "yosys synth_xilinx -family xcup; lut_equivalent = LUT + LUTs occupied "
                           "by LUT-RAM; lut_equivalent_per_6dsp = lut_equivalent × 6 / DSP48E2"),
            "operand_bits": L, "word_bits": w, "window_bits": k, **lane,
            "lut_equivalent_per_6dsp": _per_6dsp(lane["lut_equivalent"], dsp),
            "target_max": LANE_LUT_EQ_PER_6DSP_MAX,
            "meets_target": _per_6dsp(lane["lut_equivalent"], dsp) <= LANE_LUT_EQ_PER_6DSP_MAX,
            "engine_one_lane": {
                "note": "the same lane inside a one-lane BatchEngine: adds its job FIFO "
                        "(2s job beats, LUT-RAM), dispatcher and result arbiter",
                "lut_equivalent": engine["lut_total"],
                "lut_equivalent_per_6dsp": _per_6dsp(engine["lut_total"], engine["dsp48e2"])},
        },
    }


def _prime(rng, bits):
    import gmpy2
    while True:
        p = int(gmpy2.next_prime(rng.getrandbits(bits) | (3 << (bits - 2))))
        if p.bit_length() == bits:
            return p


def _rate(fn, min_seconds=0.4):
    """Calls per second of ``fn`` on this core (repeated for ``min_seconds``)."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n / dt


def _gmpy2_rates(nbits, rng):
    """gmpy2 on one core: encryption modexp, CRT decryption, ciphertext multiply."""
    import gmpy2
    p, q = _prime(rng, nbits // 2), _prime(rng, nbits // 2)
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
    """Simulate one encryption modexp, one ciphertext multiply and a CRT decryption."""
    from hefl.golden import batch as gb
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
        halves = []
        for t, f in enumerate((p, q)):
            h.load_constants(f * f)
            job = gb.powmod_job(c % (f * f), f - 1, f.bit_length(), f * f, tag=3 + t, **kw)
            halves.append(run(h, job, pow(c, f - 1, f * f)))
        out["decrypt_halves_encrypt_lane"] = halves
    _log(f"Paillier-{nbits}: Verilator harness, L = {nbits}")
    with EngineHarness(L=nbits, w=w, k=k, x=nbits) as h:
        kw = dict(word_bits=w, words=h.s)
        halves = []
        for t, f in enumerate((p, q)):
            h.load_constants(f * f)
            job = gb.powmod_job(c % (f * f), f - 1, f.bit_length(), f * f, tag=5 + t, **kw)
            halves.append(run(h, job, pow(c, f - 1, f * f)))
        out["decrypt_halves"] = halves
    return out


def _limb_bytes(*words):
    """Bytes of the kernel's transfer format: one limb per word, one header limb."""
    return LAYOUT.limb_bytes * (sum(words) + 1)


@register_section("modexp", help="ModExp/BatchEngine Paillier cycles, lane resources, U250 projection")
def modexp_report(args):
    import random

    from hefl.golden.montgomery import words_for

    w, k = MONTMUL_WORD_BITS, MODEXP_WINDOW_BITS
    rng = random.Random(args.seed)
    key_sizes = (256,) if args.quick else (1024, 2048)
    out = {"is_projection_note": "projected_u250 is a projection from simulated cycle counts "
                                 "and yosys resource counts; no card was run",
           "window_bits": k, "word_bits": w, "seed": args.seed, "keys": {}}
    projected = {"clock_mhz": ALVEO_CLOCK_MHZ, "is_projection": True}
    for nbits in key_sizes:
        L = 2 * nbits                  # lanes for n² moduli
        half = nbits                   # lanes sized for p² (CRT decryption)
        s, s_half = words_for(L, w), words_for(half, w)
        t0 = time.monotonic()
        sim = _simulate_paillier(nbits, w, k, rng)
        sim_s = time.monotonic() - t0
        cycles = {
            "encrypt_modexp": {"cycles": sim["encrypt"], "lane_operand_bits": L,
                               "source": SIM_SOURCE},
            "mulmod": {"cycles": sim["mulmod"], "lane_operand_bits": L, "source": SIM_SOURCE},
            "decrypt_crt": {"cycles": sum(sim["decrypt_halves"]), "lane_operand_bits": half,
                            "halves": sim["decrypt_halves"], "source": SIM_SOURCE},
            "decrypt_crt_on_encrypt_lane": {
                "cycles": sum(sim["decrypt_halves_encrypt_lane"]), "lane_operand_bits": L,
                "halves": sim["decrypt_halves_encrypt_lane"], "source": SIM_SOURCE},
        }
        res = _lane_resources(L, w, k)
        res_half = _lane_resources(half, w, k)
        lanes, binding, fits = project_lanes(res)
        lanes_h, binding_h, fits_h = project_lanes(res_half)
        exp_words = -(-nbits // w)
        exp_words_half = -(-(nbits // 2) // w)
        clock = ALVEO_CLOCK_MHZ * 1e6
        bytes_enc = _limb_bytes(s, exp_words, s)
        bytes_mul = _limb_bytes(2 * s, s)
        bytes_dec = 2 * _limb_bytes(s_half, exp_words_half, s_half)
        engines, engines_h = math.ceil(lanes / LANES_PER_ENGINE), math.ceil(lanes_h / LANES_PER_ENGINE)

        def rate(lanes_, cycles_, bytes_, words_in, engines_):
            compute = lanes_ * clock / cycles_
            pcie = PCIE_BYTES_PER_S / bytes_
            ingest = engines_ * clock / words_in
            best = min(compute, pcie, ingest)
            bound = "compute" if best == compute else ("pcie" if best == pcie else "engine input")
            return {"per_s": round(best), "compute_per_s": round(compute),
                    "pcie_cap_per_s": round(pcie), "ingest_cap_per_s": round(ingest),
                    "bytes_per_op": bytes_, "bound_by": bound}

        enc = rate(lanes, cycles["encrypt_modexp"]["cycles"], bytes_enc, s + exp_words, engines)
        mul = rate(lanes, cycles["mulmod"]["cycles"], bytes_mul, 2 * s, engines)
        dec = rate(lanes_h, cycles["decrypt_crt"]["cycles"], bytes_dec,
                   2 * (s_half + exp_words_half), engines_h)
        dec_shared = rate(lanes, cycles["decrypt_crt_on_encrypt_lane"]["cycles"], bytes_dec,
                          2 * (s + exp_words_half), engines)
        projected[str(nbits)] = {
            "encrypt_per_s": enc["per_s"], "decrypt_per_s": dec["per_s"],
            "mulmod_per_s": mul["per_s"], "lanes": lanes,
            "decrypt_lanes": lanes_h,
            "decrypt_per_s_on_encrypt_lanes": dec_shared["per_s"],
            "binding_resource": binding, "decrypt_binding_resource": binding_h,
            "detail": {"encrypt": enc, "mulmod": mul, "decrypt": dec,
                       "decrypt_on_encrypt_lanes": dec_shared,
                       "lanes_by_resource": fits, "decrypt_lanes_by_resource": fits_h},
        }
        _log(f"Paillier-{nbits}: gmpy2 on one core")
        cpu = _gmpy2_rates(nbits, rng)
        out["keys"][str(nbits)] = {
            "n_bits": nbits, "cycles": cycles, "simulation_seconds": round(sim_s, 1),
            "resources_per_lane": {"encrypt_lane": res, "decrypt_lane": res_half},
            "gmpy2_one_core": {k2: (round(v, 1) if isinstance(v, float) else v)
                               for k2, v in cpu.items()},
        }
        _log(f"Paillier-{nbits}: {json.dumps(projected[str(nbits)], default=str)[:300]}")
    projected["assumptions"] = (
        f"PROJECTION, no card was run. Clock {ALVEO_CLOCK_MHZ} MHz. Lanes = floor(80% of each "
        f"U250 resource / per-lane use) over DSP48E2 {U250['dsp48e2']}, LUT {U250['lut']} "
        f"(yosys LUTs + LUT-RAM cells as LUTs), FF {U250['ff']}, BRAM36 {U250['bram36']}, "
        f"URAM {U250['uram']}; per-lane use from yosys synth_xilinx -family xcup of a one-lane "
        f"BatchEngine (no place and route, no timing closure: {ALVEO_CLOCK_MHZ} MHz is assumed, "
        "not shown). "
        "Encryption and ciphertext multiply run on lanes sized for n² moduli; "
        "decrypt_per_s assumes the CRT halves run on lanes sized for p² (|n|-bit operands, a "
        "decryption kernel or bitstream), decrypt_per_s_on_encrypt_lanes gives the same "
        "decryption on the encryption lanes. Cycle counts: one job per lane at a time, back to "
        "back (the per-lane FIFO prefetches the next job). Caps: PCIe Gen3 x16 at 12 GB/s "
        "counting input and output bytes in the kernel's format (every w-bit word in a "
        f"{LAYOUT.limb_bits}-bit limb, one header limb per job); engine input streams of one "
        f"word per cycle with {LANES_PER_ENGINE} lanes per BatchEngine. Host-side work (CRT "
        "recombination, (1 + m·n) factor) not included. Paillier-2048 lanes bind on BRAM36 under yosys' "
        "default memory mapping (the lane table would fit one URAM288; not mapped here).")
    if not args.quick:
        p = projected["1024"]
        out["targets_1024"] = TARGETS_1024
        out["meets_targets_1024"] = {k2: p[k2] >= v for k2, v in TARGETS_1024.items()}
        out["meets_goal_2x_1024"] = {k2: p[k2] >= 2 * v for k2, v in TARGETS_1024.items()}
        cpu = out["keys"]["1024"]["gmpy2_one_core"]
        out["summary_1024"] = (
            f"PROJECTED U250 at {ALVEO_CLOCK_MHZ} MHz, Paillier-1024: "
            f"encrypt {p['encrypt_per_s']}/s "
            f"({p['lanes']} lanes, {p['binding_resource']}-bound), decrypt {p['decrypt_per_s']}/s "
            f"on p²-sized lanes ({p['decrypt_per_s_on_encrypt_lanes']}/s on the encryption "
            f"lanes), mulmod {p['mulmod_per_s']}/s ({p['detail']['mulmod']['bound_by']}-bound); "
            f"gmpy2 one core: {cpu['encrypt_per_s']}/s, {cpu['decrypt_per_s']}/s, "
            f"{cpu['mulmod_per_s']}/s")
    out["projected_u250"] = projected
    out.update(_lane_fields(out, w, k, key_sizes[0]))
    return out

