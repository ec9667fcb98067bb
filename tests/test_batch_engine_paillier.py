"""Paillier-sized jobs on the BatchEngine, Verilator model clocked in C++.

One lane sized for ``n²`` moduli (2048 bits for Paillier-1024, 4096 bits for
Paillier-2048), w = 51, k = 4. Each case runs, against Python's ``pow``:
the encryption modexp ``r^n mod n²``, a ciphertext multiply ``c1·c2 mod n²``,
a table product (op 3: 64 Montgomery-form entries and a plain factor, the
fixed-base encryption's shape), one CRT-decryption half ``c^(p-1) mod p²``
on the same lane, and the constant-time check at this width (same declared
length, exponents 0 / all ones / random, bases 0 / N−1 / random: identical
cycles, squaring mode on). Every cycle count must equal the exact model
:func:`hefl.golden.batch.engine_job_cycles`.
"""

import pytest

from hefl.flows.report_modexp import engine_cycles
from hefl.golden import batch as gb
from hefl.hw.params import MODEXP_WINDOW_BITS, MONTMUL_WORD_BITS
from hefl.sim.engine_model import EngineHarness

pytestmark = [pytest.mark.sim, pytest.mark.slow]

W, K = MONTMUL_WORD_BITS, MODEXP_WINDOW_BITS


@pytest.mark.parametrize("nbits", [1024, 2048], ids=["paillier1024", "paillier2048"])
def test_paillier_sized_jobs(rng, nbits):
    L = 2 * nbits
    p, q = gb.paillier_primes(rng, nbits)
    n = p * q
    n2 = n * n
    with EngineHarness(L=L, w=W, k=K, x=L) as h:
        kw = dict(word_bits=W, words=h.s)
        model = lambda job: engine_cycles(job.op, job.count, L, W, K)
        h.load_constants(n2)
        r = rng.randrange(1, n)
        job = gb.powmod_job(r, n, nbits, n2, tag=1, **kw)
        value, cycles = h.run(job)
        assert value == pow(r, n, n2)
        assert cycles == model(job)
        print(f"Paillier-{nbits}: r^n mod n² in {cycles} cycles")

        c1 = (1 + rng.randrange(n) * n) * value % n2
        c2 = rng.randrange(1, n2)
        job = gb.mulmod_job(c1, c2, n2, tag=2, **kw)
        value, cycles = h.run(job)
        assert value == c1 * c2 % n2
        assert cycles == model(job)

        # Op 3: W = 64 table entries (Montgomery form) and the plain factor.
        entries = [rng.randrange(1, n2) for _ in range(64)]
        f = rng.randrange(1, n2)
        job = gb.table_product_job(entries, f, n2, tag=4, **kw)
        value, cycles = h.run(job)
        assert value == gb.expected_result(job, n2)
        assert cycles == model(job)
        print(f"Paillier-{nbits}: table product of 65 factors in {cycles} cycles")

        # Constant time at this width: declared 64 bits, different values.
        ct = set()
        for t, (base, e) in enumerate([(0, 0), (n2 - 1, (1 << 64) - 1),
                                       (rng.randrange(n2), rng.getrandbits(64))]):
            job = gb.powmod_job(base, e, 64, n2, tag=10 + t, **kw)
            value, cycles = h.run(job)
            assert value == pow(base, e, n2)
            ct.add(cycles)
        assert ct == {model(job)}

        # One CRT half on the same lane: modulus p², exponent p − 1.
        p2 = p * p
        h.load_constants(p2)
        job = gb.powmod_job(c1 % p2, p - 1, p.bit_length(), p2, tag=3, **kw)
        value, cycles = h.run(job)
        assert value == pow(c1 % p2, p - 1, p2)
        assert cycles == model(job)
