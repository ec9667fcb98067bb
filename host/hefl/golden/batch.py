"""Golden model of the batch engine's jobs: encoding, expected results, cycles.

Pure Python on ints. The job stream format is the one of
:mod:`hefl.hw.jobs`; the op codes and the ``count`` width are the job
header's, read (as ``JobOp``'s are) from :data:`hefl.hw.regmap.LAYOUT`::

    POWMOD   s words base, then ceil(count / w) words exponent   count = declared exponent bits
    MULMOD   s words a, then s words b                            count = 2
    PRODUCT  K × s words                                          count = K ≥ 1
    TABLE_PRODUCT  K × s words                                    count = K ≥ 1

A TABLE_PRODUCT job multiplies one plain factor and ``K - 1``
Montgomery-form table entries (``T·R mod N``) with ``K - 1`` MontMuls and
returns ``Π a_i · R^-(K-1) mod N`` (plain when exactly one factor is plain);
:func:`table_job_operands` encodes the kernel descriptor's form of it, which
names the entries by index (:data:`hefl.hw.regmap.LAYOUT`, "TABLE_PRODUCT").

:func:`modexp_job_cycles` predicts, cycle for cycle, how long one ModExp lane
(:class:`hefl.hw.modexp.ModExp`) spends on a job, given the MontMul's own
timing; the benches check it against Verilator.
"""

from typing import NamedTuple

from hefl.errors import OperandRangeError
from hefl.golden.modexp import modexp_schedule_counts
from hefl.golden.montgomery import check_modulus, to_words
from hefl.hw.params import ENGINE_TREE_FAN
from hefl.hw.regmap import LAYOUT

__all__ = ["POWMOD", "MULMOD", "PRODUCT", "TABLE_PRODUCT", "Job", "constant_writes", "powmod_job",
           "mulmod_job", "product_job", "table_product_job", "mont_form", "table_job_operands",
           "compact_table_job", "table_job_factors", "expected_result", "JobCycles", "modexp_job_cycles",
           "lane_montmuls", "ENGINE_OVERHEAD", "engine_overhead", "montmul_call_cycles",
           "montmul_tail_latency", "engine_job_cycles", "paillier_primes"]

#: Job op codes (:class:`hefl.hw.jobs.JobOp`'s values).
POWMOD, MULMOD, PRODUCT, TABLE_PRODUCT = (LAYOUT.op(name) for name in
                                          ("powmod", "mulmod", "product", "table_product"))
def _tree_depth(lanes):
    """Levels of the BatchEngine's router and arbiter trees for ``lanes`` lanes."""
    depth, reach = 1, ENGINE_TREE_FAN
    while reach < lanes:
        depth, reach = depth + 1, reach * ENGINE_TREE_FAN
    return depth


def engine_overhead(lanes=1):
    """Extra cycles a job spends in :class:`hefl.hw.batch_engine.BatchEngine` around lane 0.

    In: 3 from the engine accepting the first beat to the lane accepting it
    (FIFO write, FIFO output register, lane IDLE → LOAD), plus 2 per router
    level below the root (a skid buffer and the node's choosing cycle).
    Out: 1 for the lane's output skid buffer, then per arbiter level 1 for
    its grant (none in a one-input node) and 1 for its output register.
    An idle engine gives a job to lane 0.
    """
    depth = _tree_depth(lanes)
    out = 2 if lanes == 1 else 1 + 2 * depth
    return 3 + 2 * (depth - 1) + out


#: :func:`engine_overhead` of a one-lane engine (the reports' and harness' configuration).
ENGINE_OVERHEAD = engine_overhead(1)
#: Width of the job header's ``count`` field.
COUNT_BITS = LAYOUT.job_field("count").width


class Job(NamedTuple):
    """One job as it travels on the engine's input stream.

    Attributes
    ----------
    op : int
        ``POWMOD``, ``MULMOD`` or ``PRODUCT``.
    tag : int
        Returned with the result.
    count : int
        Declared exponent bits, ``K`` or 2.
    words : list of int
        The data beats, word 0 first.
    operands : tuple
        The integers the words encode (for the scoreboard).
    """

    op: int
    tag: int
    count: int
    words: list
    operands: tuple


def _check_operand(x, n, what):
    if not isinstance(x, int) or not 0 <= x < n:
        raise OperandRangeError(f"{what} must be an integer in [0, N)")


def _check_count(count):
    if not 0 <= count < (1 << COUNT_BITS):
        raise OperandRangeError(f"count {count} does not fit the {COUNT_BITS}-bit field")


def constant_writes(consts):
    """The engine's constant-port writes ``(sel, addr, word)`` for one batch.

    The select order is the one the kernel streams them in,
    ``hefl.hw.regmap.LAYOUT.constants`` (N, R² mod N, R mod N), named as
    :class:`~hefl.golden.montgomery.MontConstants` names its fields.
    """
    for sel, name in enumerate(LAYOUT.constants):
        for addr, word in enumerate(to_words(getattr(consts, name), consts.word_bits, consts.words)):
            yield sel, addr, word


def powmod_job(base, exp, exp_bits, n, *, word_bits, words, tag=0):
    """A POWMOD job ``base^exp mod n`` over a declared length of ``exp_bits`` bits."""
    check_modulus(n, min_bits=2)
    _check_operand(base, n, "base")
    _check_count(exp_bits)
    if exp < 0 or exp.bit_length() > exp_bits:
        raise OperandRangeError(f"exponent has {exp.bit_length()} bits, declared {exp_bits}")
    exp_words = -(-exp_bits // word_bits)
    ws = to_words(base, word_bits, words) + to_words(exp, word_bits, exp_words)
    return Job(POWMOD, tag, exp_bits, ws, (base, exp))


def mulmod_job(a, b, n, *, word_bits, words, tag=0):
    """A MULMOD job ``a·b mod n``."""
    check_modulus(n, min_bits=2)
    _check_operand(a, n, "a")
    _check_operand(b, n, "b")
    return Job(MULMOD, tag, 2, to_words(a, word_bits, words) + to_words(b, word_bits, words),
               (a, b))


def product_job(factors, n, *, word_bits, words, tag=0):
    """A PRODUCT job ``Π factors mod n`` (at least one factor)."""
    check_modulus(n, min_bits=2)
    factors = list(factors)
    if not factors:
        raise OperandRangeError("a product needs at least one factor")
    _check_count(len(factors))
    ws = []
    for f in factors:
        _check_operand(f, n, "factor")
        ws += to_words(f, word_bits, words)
    return Job(PRODUCT, tag, len(factors), ws, tuple(factors))


def table_product_job(factors, n, *, word_bits, words, tag=0):
    """A TABLE_PRODUCT engine job of ``factors`` (at least one), in the order given.

    Its result (:func:`expected_result`) is ``Π factors · R^-(K-1) mod n``:
    give one plain factor and ``K - 1`` Montgomery-form ones
    (:func:`mont_form`) for a plain product.
    """
    job = product_job(factors, n, word_bits=word_bits, words=words, tag=tag)
    return job._replace(op=TABLE_PRODUCT)


def mont_form(x, n, *, word_bits, words):
    """``x·R mod n`` with ``R = 2^(w·s)``: a table entry as the card holds it."""
    return (x << (word_bits * words)) % n


def table_job_operands(factor, indices, *, word_bits, words):
    """Operand limbs of a descriptor TABLE_PRODUCT job: the plain factor, then the packed indices.

    ``count`` of its header is ``len(indices)``; ``p = min(4, w // 16)``
    indices per limb (:meth:`hefl.hw.regmap.BufferLayout.indices_per_limb`),
    so every limb is one ``w``-bit word: the kernel forwards these limbs'
    words unchanged, as the compact engine job (:func:`compact_table_job`).
    """
    if not 1 <= len(indices) <= LAYOUT.table_product_max:
        raise OperandRangeError(f"a table product names 1 to {LAYOUT.table_product_max} entries, "
                                f"not {len(indices)}")
    return to_words(factor, word_bits, words) + LAYOUT.pack_indices(list(indices), word_bits)


def compact_table_job(factor, indices, n, *, word_bits, words, tag=0):
    """A compact TABLE_PRODUCT engine job (for a BatchEngine with a table port).

    The words are :func:`table_job_operands`'; ``operands`` is
    ``(factor, indices)``. Its result is ``factor · Π T[i] mod n`` for the
    plain table values ``T`` (the engine holds them times ``R``).
    """
    check_modulus(n, min_bits=2)
    _check_operand(factor, n, "factor")
    _check_count(len(indices))
    ws = table_job_operands(factor, indices, word_bits=word_bits, words=words)
    return Job(TABLE_PRODUCT, tag, len(indices), ws, (factor, tuple(indices)))


def table_job_factors(factor, indices, entries):
    """The engine job's factors for a descriptor TABLE_PRODUCT job: ``factor``, then each entry.

    ``entries`` is the card's table (Montgomery-form values by index); the
    kernel streams the factor first, then the entries in index order.
    """
    return [factor] + [entries[i] for i in indices]


def expected_result(job, n, *, r_bits=None):
    """The fully reduced result the engine must return for ``job``.

    ``r_bits`` (``w·s``) is needed for TABLE_PRODUCT, whose result carries
    ``R^-(K-1)``.
    """
    if job.op == POWMOD:
        base, exp = job.operands
        return pow(base, exp, n)
    acc = 1 % n
    for f in job.operands:
        acc = acc * f % n
    if job.op == TABLE_PRODUCT:
        if r_bits is None:
            raise OperandRangeError("a TABLE_PRODUCT result needs r_bits = w·s")
        acc = acc * pow(1 << r_bits, -(len(job.operands) - 1), n) % n
    return acc


def lane_montmuls(op, count, k):
    """MontMul operations one ModExp lane runs for a job.

    POWMOD: the golden schedule's count minus one (``R mod N`` is a loaded
    constant, not computed); MULMOD/PRODUCT of ``K`` factors: ``2K - 2``;
    TABLE_PRODUCT of ``K`` factors: ``K - 1``.
    """
    if op == POWMOD:
        return modexp_schedule_counts(count, k).total - 1
    if op == TABLE_PRODUCT:
        return max(0, count - 1)
    k_factors = 2 if op == MULMOD else count
    return 2 * k_factors - 2


class JobCycles(NamedTuple):
    """Cycle prediction for one job on an otherwise idle lane.

    Attributes
    ----------
    total : int
        Cycles from the handshake of the job's first input beat to the
        handshake of its last result beat (the difference of the two cycle
        indices), input beats offered every cycle, output always ready.
    montmuls : int
        MontMul operations in the job.
    """

    total: int
    montmuls: int


def montmul_call_cycles(words, mm_latency):
    """Cycles from a ModExp state that calls MontMul to the state it returns to.

    Returns ``(multiply, single)``: ``2s + λ + 2`` when the operand reader
    fetches two words per beat, ``s + λ + 2`` for a squaring or a multiply by
    one (one read per beat); ``λ`` is :func:`montmul_tail_latency`.
    """
    return 2 * words + mm_latency + 2, words + mm_latency + 2


def montmul_tail_latency(timing, words):
    """MontMul cycles from its last input beat's handshake to its last output beat's.

    ``timing`` is :func:`hefl.golden.montmul_hw.op_timing`'s result (its
    ``latency_cycles`` counts from the first of ``s`` back-to-back input
    beats; the core starts computing a fixed delay after the last one).
    """
    return timing.latency_cycles - (words - 1)


def modexp_job_cycles(op, count, *, words, word_bits, window_bits, mm_latency):
    """Exact cycles of one job on an idle ModExp lane (see :mod:`hefl.hw.modexp`).

    Parameters
    ----------
    op, count : int
        Job type and count field (declared exponent bits, ``K`` or 2).
    words, word_bits, window_bits : int
        ``s``, ``w`` and ``k`` of the lane.
    mm_latency : int
        :func:`montmul_tail_latency` of the lane's MontMul.

    Returns
    -------
    JobCycles
        The total depends on ``op`` and ``count`` only, never on operand values.

    Notes
    -----
    Derivation, state by state (``G``/``S``: :func:`montmul_call_cycles`):
    POWMOD loads ``B = s + ceil(c/w)`` beats (``B - 1`` cycles after the
    first), converts the base (``G``), builds the table (``T[2]`` is a
    squaring: ``S``, then ``(2^k - 3)·G``, plus the exit cycle), scans
    ``W = ceil(c/k)`` windows (``W + 1``), runs ``W`` windows of ``2k``
    (digit fetch) ``+ k·S + G + 1``, converts out (``S``) and reduces
    (``1 + 2s``) and emits (``1 + s``, last beat ``s - 1`` cycles after the
    first). PRODUCT of ``K ≥ 2`` loads ``2s`` beats, then after every
    multiply (``G``) the next factor (``s`` beats, the last in the calling
    cycle), then ``K - 1`` corrections (``G`` each), one exit cycle, reduce
    and emit.
    """
    s, w, k = words, word_bits, window_bits
    G, S = montmul_call_cycles(s, mm_latency)
    tail = 1 + 2 * s + 1 + (s - 1)            # RED_A .. last EMIT_V beat
    if op == POWMOD:
        b = s + -(-count // w)
        nwin = -(-count // k)
        t = 1 << k
        table = G + ((S + (t - 3) * G) if t > 2 else 0) + 1
        window = 2 * k + k * S + G + 1
        total = (b - 1) + table + (nwin + 1) + nwin * window + S + tail
        return JobCycles(total, lane_montmuls(op, count, k))
    kf = 2 if op == MULMOD else count
    if kf <= 1:
        return JobCycles((s - 1) + 2 + tail, 0)
    loads = (2 * s - 1) + (kf - 2) * (G + s - 1)
    # The R² corrections (K - 1 multiplies) are what TABLE_PRODUCT leaves out.
    corrections = 0 if op == TABLE_PRODUCT else kf - 1
    total = loads + (1 + corrections) * G + 1 + tail
    return JobCycles(total, lane_montmuls(op, count, k))


def engine_job_cycles(op, count, *, lanes=1, **kw):
    """:func:`modexp_job_cycles` seen at the ports of an idle ``lanes``-lane BatchEngine."""
    c = modexp_job_cycles(op, count, **kw)
    return c._replace(total=c.total + engine_overhead(lanes))


def paillier_primes(rng, nbits):
    """Two distinct ``nbits/2``-bit primes whose product has exactly ``nbits`` bits.

    For benches and reports only (``rng`` is a seeded :class:`random.Random`,
    not a key generator: real keys come from :mod:`hefl.paillier`).
    """
    import gmpy2
    half = nbits // 2

    def prime():
        while True:
            p = int(gmpy2.next_prime(rng.getrandbits(half) | (3 << (half - 2))))
            if p.bit_length() == half:
                return p
    while True:
        p, q = prime(), prime()
        if p != q and (p * q).bit_length() == nbits:
            return p, q
