"""Golden model of the batch engine's jobs: encoding, expected results, cycles.

Pure Python on ints. The job stream format is the one of
:mod:`hefl.hw.jobs`; the op codes and the ``count`` width are the job
header's, read (as ``JobOp``'s are) from :data:`hefl.hw.regmap.LAYOUT`::

    POWMOD         s words base, then ceil(count / w) words exponent   count = declared exponent bits
    MULMOD         s words a, then s words b                            count = 2
    PRODUCT        K × s words                                          count = K ≥ 1
    TABLE_PRODUCT  K × s words: K − 1 Montgomery-form entries, a plain factor   count = K ≥ 1

A TABLE_PRODUCT job multiplies one plain factor and ``K - 1``
Montgomery-form table entries (``T·R mod N``) with ``K - 1`` MontMuls and
returns the plain product (:func:`table_product_job`; the lane does not
depend on the order). :func:`table_job_operands` encodes the kernel
descriptor's form of it, which names the entries by index
(:data:`hefl.hw.regmap.LAYOUT`, "TABLE_PRODUCT"), and
:func:`compact_table_job` the engine job a sub-engine with a table port
expands itself.

:func:`modexp_job_cycles` predicts, cycle for cycle, how long one ModExp lane
(:class:`hefl.hw.modexp.ModExp`) spends on a job, given the MontMul's own
timing; the benches check it against Verilator.
"""

from typing import NamedTuple

from hefl.errors import OperandRangeError
from hefl.golden.modexp import modexp_schedule_counts
from hefl.golden.montgomery import check_modulus, to_words
from hefl.golden.montmul_hw import (
    MEM_STAGES,
    MODES,
    MUL,
    ONE,
    SQR,
    op_schedule,
    op_timing,
)
from hefl.hw.params import ENGINE_TREE_FAN
from hefl.hw.regmap import LAYOUT

__all__ = ["POWMOD", "MULMOD", "PRODUCT", "TABLE_PRODUCT", "Job", "constant_writes", "powmod_job",
           "mulmod_job", "product_job", "table_product_job", "mont_form", "table_job_operands",
           "compact_table_job", "expected_result", "JobCycles",
           "modexp_job_cycles", "lane_montmuls", "lane_squarings",
           "engine_overhead", "montmul_call_cycles", "montmul_tail_latency", "engine_job_cycles",
           "reducer_latency", "reducer_cycles_per_result", "LANE_EMIT_CYCLES", "REDUCER_OUT_CYCLES",
           "paillier_primes"]

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

    In: 4 from the engine accepting the first beat to the lane accepting it
    (FIFO write, FIFO output register, the lane's input register, lane
    IDLE → LOAD), plus 2 per router
    level below the root (a skid buffer and the node's choosing cycle).
    Out: 1 for the lane's output register stage, then 1 per arbiter level
    for its output register. The arbiters' grant cycles only delay a
    result's first word: the lane emits a word every 3 cycles (EMIT), so
    each stage has caught up by the last word, which is what the count ends
    on. An idle engine gives a job to lane 0.
    """
    depth = _tree_depth(lanes)
    return 4 + 2 * (depth - 1) + 1 + depth

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


def table_product_job(entries, factor, n, *, word_bits, words, tag=0):
    """A TABLE_PRODUCT job ``Π entries · factor mod n`` (op 3).

    The entries travel in Montgomery form (``T·R mod n``, ``R = 2^(w·s)``), the
    factor plain, so the lane's ``K − 1`` MontMuls give the plain product.
    """
    check_modulus(n, min_bits=2)
    entries = list(entries)
    _check_count(len(entries) + 1)
    r = 1 << (word_bits * words)
    ws = []
    for t in entries:
        _check_operand(t, n, "table entry")
        ws += to_words(t * r % n, word_bits, words)
    _check_operand(factor, n, "factor")
    ws += to_words(factor, word_bits, words)
    return Job(TABLE_PRODUCT, tag, len(entries) + 1, ws, (*entries, factor))


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


def expected_result(job, n):
    """The fully reduced result the engine must return for ``job``."""
    if job.op == POWMOD:
        base, exp = job.operands
        return pow(base, exp, n)
    acc = 1 % n
    for f in job.operands:
        acc = acc * f % n
    return acc


def lane_montmuls(op, count, k):
    """MontMul operations one ModExp lane runs for a job.

    POWMOD: the golden schedule's count minus one (``R mod N`` is a loaded
    constant, not computed); MULMOD/PRODUCT of ``K`` factors: ``2K - 2``;
    TABLE_PRODUCT: ``K - 1``.
    """
    if op == POWMOD:
        return modexp_schedule_counts(count, k).total - 1
    if op == TABLE_PRODUCT:
        return max(count - 1, 0)
    k_factors = 2 if op == MULMOD else count
    return 2 * k_factors - 2


def lane_squarings(op, count, k):
    """How many of :func:`lane_montmuls` are squarings: ``W·k + 1`` for POWMOD (with ``T[2]``)."""
    if op != POWMOD:
        return 0
    return modexp_schedule_counts(count, k).squarings + (1 if k > 1 else 0)


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
    squarings : int
        How many of them run in the squaring mode.
    """

    total: int
    montmuls: int
    squarings: int = 0


def montmul_call_cycles(words, mm_latency):
    """Core cycles of one MontMul per mode: ``{mode: (issue, done)}``.

    ``issue``: from the core accepting the op to it accepting the next;
    ``done``: to the op's last result word written
    (:func:`hefl.golden.montmul_hw.op_timing`).
    """
    out = {}
    for mode in MODES:
        t = op_timing(words, mm_latency, mode)
        out[mode] = (t.issue_cycles, t.done_cycles)
    return out


def montmul_tail_latency(timing, words):
    """The multiplier latency the lane model needs, from a MontMul's :class:`OpTiming`.

    ``timing`` is :func:`hefl.golden.montmul_hw.op_timing`'s result; the
    lane's cycle model (:func:`modexp_job_cycles`, its ``mm_latency``)
    derives every MontMul count from the multiplier latency and ``s``.
    """
    return timing.mul_latency


class _Core:
    """The lane's view of the MontMul core: when it takes the next op, when it writes."""

    def __init__(self, words, latency):
        self.s, self.d = words, latency + MEM_STAGES
        self.chain = words >= self.d + 2
        self.sched = {mode: op_schedule(words, latency, mode) for mode in MODES}
        self.last = None                 # (accept cycle, mode) of the latest op
        self.writes = set()

    def ready_at(self):
        """First cycle the core's ``ready`` is high (it has issued the last op)."""
        if self.last is None:
            return 0
        a, mode = self.last
        return a + self.sched[mode].last_issue + 1

    def port_free_at(self):
        """First cycle the core leaves the read port (its last read is the cycle after its last issue)."""
        return self.ready_at() + 1 if self.last is not None else 0

    def idle_at(self):
        if self.last is None:
            return 0
        a, mode = self.last
        return a + self.sched[mode].done + 1

    def accept(self, t, mode):
        """The op asked for from cycle ``t`` on; returns its accept cycle."""
        a = max(t, self.ready_at() if self.chain else self.idle_at())
        sch = self.sched[mode]
        self.writes |= {a + c + self.d + 2 for c, kind, r, j in sch.slots
                        if kind == "P2" and r == self.s - 1 and j >= 1}
        self.writes.add(a + sch.done)
        self.last = (a, mode)
        return a

    def load(self, t, beats):
        """Cycle of the last of ``beats`` job words loaded from ``t`` on (one a cycle, not while the core writes)."""
        while True:
            if t not in self.writes:
                beats -= 1
                if beats == 0:
                    return t
            t += 1


#: Cycles a lane's EMIT spends per result word (:mod:`hefl.hw.modexp`).
LANE_EMIT_CYCLES = 3
#: Cycles the sub-engine's :class:`~hefl.hw.reducer.Reducer` spends per beat
#: sent at full readiness (read, register, handshake). It takes a beat every
#: 2 cycles, faster than a lane sends them.
REDUCER_OUT_CYCLES = 3


def modexp_job_cycles(op, count, *, words, word_bits, window_bits, mm_latency):
    """Exact cycles of one job on an idle ModExp lane (see :mod:`hefl.hw.modexp`).

    Parameters
    ----------
    op, count : int
        Job type and count field (declared exponent bits, ``K`` or 2).
    words, word_bits, window_bits : int
        ``s``, ``w`` and ``k`` of the lane.
    mm_latency : int
        The multiplier latency of the lane's MontMul (:func:`montmul_tail_latency`).

    Returns
    -------
    JobCycles
        The total depends on ``op`` and ``count`` only, never on operand values.

    Notes
    -----
    The lane asks for each MontMul as soon as the core accepted the previous
    one; the core takes it when it has issued the previous op's last slot
    (``s ≥ D + 2``) or written its result (:class:`_Core`). State by state,
    cycle 0 the first beat: POWMOD loads ``B = s + ceil(c/w)`` beats, asks
    for the table from cycle ``B`` (the conversion, ``T[2]`` a squaring, the
    rest multiplies), leaves TABLE one cycle after its last accept, SCANs
    (``W + 1`` cycles), then per window FETCHes the digit (``k + 2`` cycles
    once the core has made its last read), asks for ``k`` squarings and the
    multiply, and spends one cycle in WIN_DONE; FINAL asks for the multiply by
    one; RED_WAIT waits for the core's result (``idle``), then EMIT sends
    the accumulator's words, 3 cycles each (the last handshake ``3s − 1``
    after EMIT begins; the sub-engine's reducer subtracts N). PRODUCT of
    ``K ≥ 2`` loads ``2s`` beats, multiplies each next factor in (PMUL) and
    loads the following one while the core computes, then asks for the
    ``K − 1`` corrections (none for TABLE_PRODUCT), then CORR and RED_WAIT.
    """
    s, w, k = words, word_bits, window_bits
    core = _Core(s, mm_latency)
    if op == POWMOD:
        t = s + -(-count // w)                       # TABLE entered
        for ti in range(1, 1 << k):
            t = core.accept(t, SQR if ti == 2 else MUL) + 1
        t += 1                                       # TABLE → SCAN
        nwin = -(-count // k)
        t += nwin + 1                                # SCAN → FETCH / FINAL
        for _ in range(nwin):
            t = max(t, core.port_free_at()) + k + 2  # FETCH → SQ
            for _ in range(k):
                t = core.accept(t, SQR) + 1
            t = core.accept(t, MUL) + 2              # WIN_DONE → FETCH / FINAL
        t = core.accept(t, ONE) + 1                  # → RED_WAIT
    else:
        kf = 2 if op == MULMOD else count
        if kf <= 1:
            t = s + 1                                # CORR → RED_WAIT
        else:
            t = 2 * s                                # PMUL of factor 2
            for i in range(2, kf + 1):
                a = core.accept(t, MUL)
                t = core.load(a + 1, s) + 1 if i < kf else a + 1
            if op != TABLE_PRODUCT:
                for _ in range(kf - 1):
                    t = core.accept(t, MUL) + 1
            t += 1                                   # CORR → RED_WAIT
    t = max(t, core.idle_at()) + 1                   # EMIT
    total = t + LANE_EMIT_CYCLES * s - 1
    return JobCycles(total, lane_montmuls(op, count, k), lane_squarings(op, count, k))


def reducer_latency(words):
    """Cycles from the handshake of a result's last word into the reducer to that of its last word out.

    One cycle subtracts and writes word ``s − 1``, then
    :data:`REDUCER_OUT_CYCLES` per word (read, register, the handshake in
    the third cycle).
    """
    return 1 + REDUCER_OUT_CYCLES * words


def reducer_cycles_per_result(words):
    """Cycles the reducer is busy with one result: its words in at a lane's pace, then out."""
    return LANE_EMIT_CYCLES * words + reducer_latency(words)


def engine_job_cycles(op, count, *, lanes=1, **kw):
    """:func:`modexp_job_cycles` seen at the ports of an idle ``lanes``-lane BatchEngine.

    The lane's cycles, the trees' (:func:`engine_overhead`) and the
    reducer's (:func:`reducer_latency`: the lane sends its words one every
    3 cycles, as fast as the reducer takes them, so only what follows the
    last word adds up).
    """
    c = modexp_job_cycles(op, count, **kw)
    return c._replace(total=c.total + engine_overhead(lanes) + reducer_latency(kw["words"]))


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
