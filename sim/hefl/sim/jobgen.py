"""Stimulus for the BatchEngine/ModExp benches: directed corners and random jobs.

Shared by the cocotb bench (``batch_engine_tb.py``) and the Amaranth-simulator
unit tests so both runs see the same kinds of jobs. Expected values come from
:func:`hefl.golden.batch.expected_result` (``pow`` and plain products), never
from the design.
"""

from hefl.golden import batch as gb

__all__ = ["random_modulus", "directed_jobs", "random_jobs"]


def random_modulus(rng, bits, *, small_top=False):
    """An odd ``bits``-bit modulus; ``small_top`` gives a sparse one (``2^(L-1)`` plus a
    half-width low part), whose words above the low half are zero but the top bit."""
    if small_top:
        return (1 << (bits - 1)) | (rng.getrandbits(bits // 2) << 1) | 1
    return (1 << (bits - 1)) | rng.getrandbits(bits - 1) | 1


def directed_jobs(rng, n, *, w, s, max_exp_bits):
    """Corner cases: exponent 0 (declared 0 and > 0), 1, all ones, longer than
    the modulus; base 0, 1, N−1; products with 0, N−1 and a single factor."""
    L = n.bit_length()
    kw = dict(word_bits=w, words=s)
    longest = max_exp_bits
    return [
        gb.powmod_job(rng.randrange(n), 0, 0, n, **kw),
        gb.powmod_job(rng.randrange(n), 0, min(7, longest), n, **kw),
        gb.powmod_job(rng.randrange(n), 1, 1, n, **kw),
        gb.powmod_job(rng.randrange(n), (1 << longest) - 1, longest, n, **kw),
        gb.powmod_job(rng.randrange(n), (1 << L) - 1, L, n, **kw),
        gb.powmod_job(0, rng.getrandbits(L) | 1, L, n, **kw),
        gb.powmod_job(1, rng.getrandbits(L), L, n, **kw),
        gb.powmod_job(n - 1, rng.getrandbits(L) | 1, L, n, **kw),
        gb.powmod_job(n - 1, rng.getrandbits(longest), longest, n, **kw),
        gb.powmod_job(rng.randrange(n), rng.getrandbits(longest) | (1 << (longest - 1)), longest, n, **kw),
        gb.mulmod_job(n - 1, n - 1, n, **kw),
        gb.mulmod_job(0, rng.randrange(n), n, **kw),
        gb.mulmod_job(1, n - 1, n, **kw),
        gb.product_job([rng.randrange(n)], n, **kw),
        gb.product_job([n - 1] * 5, n, **kw),
        gb.product_job([rng.randrange(n), 0, rng.randrange(n)], n, **kw),
    ]


def random_jobs(rng, n, *, w, s, max_exp_bits, count, max_factors=6):
    """``count`` jobs: the directed ones, then random POWMOD/MULMOD/PRODUCT; tagged 0..count-1."""
    jobs = directed_jobs(rng, n, w=w, s=s, max_exp_bits=max_exp_bits)
    kw = dict(word_bits=w, words=s)
    while len(jobs) < count:
        kind = rng.randrange(3)
        if kind == 0:
            eb = rng.randint(0, max_exp_bits)
            e = rng.getrandbits(eb) if eb else 0
            jobs.append(gb.powmod_job(rng.randrange(n), e, eb, n, **kw))
        elif kind == 1:
            jobs.append(gb.mulmod_job(rng.randrange(n), rng.randrange(n), n, **kw))
        else:
            k = rng.randint(1, max_factors)
            jobs.append(gb.product_job([rng.randrange(n) for _ in range(k)], n, **kw))
    rng.shuffle(jobs)
    return [j._replace(tag=t) for t, j in enumerate(jobs)]
