"""``hefl fuzz``: mutation fuzz of every reader of data that comes from another party.

hefl promises (:mod:`hefl.errors`) that a bad input raises a
:class:`~hefl.errors.HeflError` subclass, never another exception, never a
hang, and is never taken for a different value. This module checks it on
mutations of real inputs, all rebuilt from one seed:

==================  ==========================================================
target              reader, input
==================  ==========================================================
``vector``          ``CipherVector.from_bytes``, a ciphertext vector mutated
                    as noise would (checksum left as it was)
``vector_forged``   the same, mutated as a forger would: header fields,
                    metadata JSON, ciphertext values, then the checksum
                    recomputed
``public_key``      ``PublicKey.from_json``, a ``public.json`` (version 2)
``private_key``     ``PrivateKey.from_json``, a ``private.json``
``encoding``        ``EncodingParams.from_dict(safejson.loads(text))``, the
                    encoding parameters as JSON text
``encoding_dict``   ``EncodingParams.from_dict``, with Python values JSON
                    cannot hold (NaN, 10**5000, numpy integers)
==================  ==========================================================

Mutations: bit flips, byte changes, truncation, extension, insertion,
deletion, duplication, non-UTF-8 bytes, deep nesting, huge numbers, NaN and
Infinity, and, on the JSON form, a field replaced by a value of the wrong
type or range, removed, added, given twice, or altered by one digit.

Outcomes of a case, counted per target and in total:

``typed_errors``
    A :class:`~hefl.errors.HeflError` subclass was raised (by class name).
``untyped``
    Any other exception. Must be 0.
``hangs``
    The reader took longer than ``case_timeout`` seconds (a wall-clock
    alarm interrupts it). Must be 0.
``accepted_unchanged``
    Accepted, and the value read equals the original (whitespace added to
    a key file, the two primes swapped, ...).
``accepted_well_formed``
    Accepted, a different value, and a legitimate one: only for inputs
    without integrity protection, a forged vector that is exactly the
    canonical encoding (``to_bytes``) of a valid vector, or encoding
    parameters describing a valid layout. A checksum is not a signature:
    a forger can always send another valid vector.
``wrongly_accepted``
    Accepted, and neither of the above: a vector mutated without
    recomputing its checksum that reads as another vector; a forged one
    that is not the canonical encoding of what it read as; a key file that
    reads as a key with another ``n``, ``p``, ``q`` or ``h_s`` (its
    fingerprints must catch that); encoding parameters that do not
    describe a valid layout. Must be 0.

Case ``i`` draws from ``random.Random(f"{seed}:{i}")``, so every case can be
rerun alone; failures are listed with their index and input.
"""

import json
import math
import random
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from hefl import safejson
from hefl.encoding import Encoder, EncodingParams
from hefl.errors import HeflError
from hefl.paillier import keys as _keys
from hefl.paillier.serial import MAX_META_BYTES, CipherVector
from hefl.reports import check_output_dir, report_meta, write_json_atomic

__all__ = ["run_fuzz", "build_corpus", "TARGETS", "OUTCOMES", "add_arguments", "run"]

TARGETS = ("vector", "vector_forged", "public_key", "private_key", "encoding", "encoding_dict")
#: Outcomes other than typed errors; the first three must stay 0.
OUTCOMES = ("untyped", "hangs", "wrongly_accepted", "accepted_unchanged", "accepted_well_formed")
FAILURES = OUTCOMES[:3]
#: Bits of the corpus key: small, so that a case costs well under a millisecond.
CORPUS_KEY_BITS = 256
_HEADER = 24          # bytes before the metadata in a vector (hefl.paillier.serial)
_DIGEST = 32
_MAX_LISTED = 20      # failures kept in the report


# --- the corpus ---------------------------------------------------------------

class Corpus:
    """The original inputs, all from one seed."""

    def __init__(self, rng):
        pub, priv = _keys._generate(CORPUS_KEY_BITS, True, rng.getrandbits, rng.randrange)
        self.pub, self.priv = pub, priv
        enc = Encoder(plaintext_bits=pub.bits - 1, alpha=0.5, value_bits=16, guard_bits=4)
        self.params = enc.params.to_dict()
        n, n2 = pub.n, pub.n2
        cts = []
        for m in (0, 1, 2, n - 1):
            r = rng.randrange(2, n)
            cts.append((1 + m * n) * pow(r, n, n2) % n2)
        meta = {"encoding": self.params, "length": 40, "round": 3, "client": 1, "note": "päd ✓"}
        self.vector = CipherVector(pub, cts, meta).validate()
        self.vector_bytes = self.vector.to_bytes()
        self.public_text = pub.to_json().encode()
        self.private_text = priv.to_json().encode()
        self.params_text = json.dumps(self.params, indent=1).encode()


def build_corpus(seed):
    """The :class:`Corpus` of ``seed``."""
    return Corpus(random.Random(f"{seed}:corpus"))


# --- mutations of bytes -------------------------------------------------------

_NON_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80")
_TOKENS = (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"true", b"null", b"[]", b"{}",
           b'"', b"\\", b",", b":", b"\\ud800", b"\x00")


def _nesting(rng):
    d = rng.choice((33, 200, 1000, 5000, 100_000))
    return (b"[" if rng.random() < 0.5 else b'{"a":') * d


def _huge_number(rng):
    k = rng.choice((41, 400, 4301, 50_000))
    return rng.choice((b"", b"-")) + b"9" * k + rng.choice((b"", b".5", b"e5", b"e-99999"))


def _byte_op(rng, data):
    """One random mutation of ``data``; (name, new bytes)."""
    op = rng.choice(("flip", "byte", "truncate", "extend", "insert", "delete", "duplicate",
                     "non_utf8", "nesting", "huge_number", "token"))
    n = len(data)
    at = rng.randrange(n + 1)
    if op == "flip" and n:
        i = rng.randrange(n)
        return op, data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if op == "byte" and n:
        i = rng.randrange(n)
        v = rng.choice((0, 0xFF, 0x7F, 0x80, ord('"'), ord("{"), ord("["), rng.randrange(256)))
        return op, data[:i] + bytes([v]) + data[i + 1:]
    if op == "truncate":
        return op, data[:rng.randrange(n + 1)]
    if op == "extend":
        return op, data + rng.choice((rng.randbytes(rng.randrange(1, 65)), data[at:], b"\0" * 1000))
    if op == "delete":
        return op, data[:at] + data[at + rng.randrange(1, 33):]
    if op == "duplicate":
        return op, data[:at] + data[at:at + rng.randrange(1, 65)] + data[at:]
    insert = {"insert": lambda: rng.randbytes(rng.randrange(1, 17)),
              "non_utf8": lambda: rng.choice(_NON_UTF8),
              "nesting": lambda: _nesting(rng),
              "huge_number": lambda: _huge_number(rng),
              "token": lambda: rng.choice(_TOKENS)}.get(op, lambda: rng.randbytes(1))()
    return op, data[:at] + insert + data[at:]


def _mutate_bytes(rng, data, ops):
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        name, data = _byte_op(rng, data)
        ops.append(name)
    return data


# --- mutations of JSON ----------------------------------------------------------

class _Raw:
    """JSON text put in verbatim (what json.dumps cannot write: NaN, 10**5000 digits, nesting)."""

    def __init__(self, text):
        self.text = text


def _nasty_value(rng, old):
    choices = [True, False, None, 0, -1, 1, 2, 3, 2 ** 64, 10 ** 28, 1.5, 16.0, -0.0, 1e308, 5e-324,
               "", "zz", "1", [], {}, [1, 2], {"a": 1}, "x" * 100_000,
               _Raw("NaN"), _Raw("Infinity"), _Raw("-Infinity"), _Raw("1e999"), _Raw("9" * 5000),
               _Raw('"\\ud800"'), _Raw("[" * 2000 + "]" * 2000), _Raw("[" * 40 + "]" * 40)]
    if isinstance(old, str):
        hexes = "0123456789abcdef"
        i = rng.randrange(len(old)) if old else 0
        choices += [old[:i] + rng.choice(hexes) + old[i + 1:], "0" + old, old.upper(), " " + old,
                    "0x" + old, "-" + old, old[:-1], old + "0", old[:i] + "_" + old[i:]]
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        choices += [old + 1, old - 1, -old, float(old), str(old), old * 2 ** 40]
    return rng.choice(choices)


def _paths(obj, prefix=()):
    """Every (path, value) in nested dicts, depth first."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((prefix + (k,), v))
            out.extend(_paths(v, prefix + (k,)))
    return out


def _dumps(obj, raws, canonical):
    if canonical:        # as CipherVector.to_bytes writes metadata
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    else:
        text = json.dumps(obj, indent=1, ensure_ascii=False)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"@@raw{i}@@"), raw.text)
    return text


def _mutate_json(rng, data, ops, canonical=False):
    """One field-level mutation of the JSON object in ``data``; the new bytes."""
    obj = json.loads(data)
    path, old = rng.choice(_paths(obj))
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    raws = []

    def put(value):
        # Raw JSON goes in as a placeholder string, replaced after dumping.
        if isinstance(value, _Raw):
            raws.append(value)
            return "@@raw0@@"
        return value

    op = rng.choice(("replace", "replace", "replace", "remove", "add", "twice"))
    ops.append(f"json_{op}")
    if op == "remove":
        del parent[key]
    elif op == "add":
        parent[rng.choice(("extra", "p", "h_s", "version", "kind", "bits"))] = put(_nasty_value(rng, None))
    elif op == "replace":
        parent[key] = put(_nasty_value(rng, old))
    text = _dumps(obj, raws, canonical)
    if op == "twice":
        text = text.replace("{", "{" + json.dumps(str(key)) + ": " + json.dumps(old) + ", ", 1)
    return text.encode("utf-8", errors="surrogatepass")


# --- mutations of vectors as a forger makes them -----------------------------------

def _reseal(body):
    import hashlib
    return body + hashlib.sha256(body).digest()


def _frame(data):
    """(header, metadata, ciphertext bytes) of a well-formed vector."""
    meta_len = int.from_bytes(data[20:24], "big")
    return data[:_HEADER], data[_HEADER:_HEADER + meta_len], data[_HEADER + meta_len:-_DIGEST]


def _forge(rng, corpus, ops):
    head, meta, body = _frame(corpus.vector_bytes)
    kind = rng.choice(("header", "meta", "meta", "ciphertext", "bytes"))
    ops.append(f"forge_{kind}")
    if kind == "header":
        field = rng.choice(((4, 5), (5, 6), (6, 14), (14, 16), (16, 20), (20, 24)))
        size = field[1] - field[0]
        value = rng.choice((0, 1, 2, (1 << (8 * size)) - 1, rng.getrandbits(8 * size),
                            int.from_bytes(head[field[0]:field[1]], "big") + rng.choice((-1, 1))))
        value %= 1 << (8 * size)
        head = head[:field[0]] + value.to_bytes(size, "big") + head[field[1]:]
    elif kind == "meta":
        meta = (_mutate_json(rng, meta, ops, canonical=rng.random() < 0.7) if rng.random() < 0.7
                else _mutate_bytes(rng, meta, ops))
        if rng.random() < 0.9:      # a careful forger also fixes the length field
            head = head[:20] + len(meta).to_bytes(4, "big")
    elif kind == "ciphertext":
        pub, width = corpus.pub, corpus.pub.ciphertext_bytes
        i = rng.randrange(len(body) // width)
        c = rng.choice((0, 1, pub.n, pub.n2, pub.n2 + 1, pub.n2 - 1, corpus.priv.p * 3,
                        (1 << (8 * width)) - 1, rng.randrange(pub.n2)))
        body = body[:i * width] + c.to_bytes(width, "big") + body[(i + 1) * width:]
    else:
        return _reseal(_mutate_bytes(rng, head + meta + body, ops))
    return _reseal(head + meta + body)


# --- one case -------------------------------------------------------------------------

def _python_values(rng, params, ops):
    """Encoding parameters with one value JSON cannot carry."""
    d = dict(params)
    key = rng.choice(sorted(d) + ["scheme", 7])
    value = rng.choice((float("nan"), float("inf"), -float("inf"), 10 ** 5000, -(10 ** 5000), 10 ** 28,
                        np.int64(16), np.uint8(255), np.float64(0.5), np.bool_(True), True, 16.0,
                        b"16", object(), [16], (16,), {"x": 1}, None, 2 ** 63, 1e-320))
    ops.append(f"python_{type(value).__name__}")
    d[key] = value
    return d


def _input(rng, target, corpus, ops):
    """A mutated input for ``target``."""
    if target == "vector":
        return _mutate_bytes(rng, corpus.vector_bytes, ops)
    if target == "vector_forged":
        return _forge(rng, corpus, ops)
    if target == "encoding_dict":
        return _python_values(rng, corpus.params, ops)
    text = {"public_key": corpus.public_text, "private_key": corpus.private_text,
            "encoding": corpus.params_text}[target]
    return _mutate_json(rng, text, ops) if rng.random() < 0.5 else _mutate_bytes(rng, text, ops)


def _read(target, data, corpus):
    """Run the reader of ``target`` on ``data``."""
    if target in ("vector", "vector_forged"):
        return CipherVector.from_bytes(data, corpus.pub)
    if target == "public_key":
        return _keys.PublicKey.from_json(data)
    if target == "private_key":
        return _keys.PrivateKey.from_json(data)
    if target == "encoding":
        return EncodingParams.from_dict(safejson.loads(data, what="encoding parameters",
                                                       max_bytes=MAX_META_BYTES))
    return EncodingParams.from_dict(data)


def _valid_params(p):
    """True when ``p`` describes the layout :meth:`EncodingParams.build` makes of its own inputs."""
    try:
        ints = (p.value_bits, p.guard_bits, p.slot_bits, p.slots, p.plaintext_bits)
        if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in ints):
            return False
        if not (isinstance(p.alpha, float) and math.isfinite(p.alpha)):
            return False
        return EncodingParams.build(plaintext_bits=p.plaintext_bits, alpha=p.alpha,
                                    value_bits=p.value_bits, guard_bits=p.guard_bits) == p
    except Exception:     # noqa: BLE001 - any failure here means "not valid"
        return False


def _judge(target, data, value, corpus):
    """The outcome of an accepted input."""
    if target in ("vector", "vector_forged"):
        if value == corpus.vector:
            return "accepted_unchanged"
        # Another vector: legitimate only as the exact canonical bytes of a valid
        # one, which only a forger (recomputing the checksum) can make.
        if target == "vector_forged" and value.validated and value.to_bytes() == bytes(data):
            return "accepted_well_formed"
        return "wrongly_accepted"
    if target in ("public_key", "private_key"):
        pub = value if target == "public_key" else value.public_key
        same = (pub.n, pub.h_s) == (corpus.pub.n, corpus.pub.h_s)
        if target == "private_key":
            same = same and (value.p, value.q) == (corpus.priv.p, corpus.priv.q)
        return "accepted_unchanged" if same else "wrongly_accepted"
    if value.to_dict() == corpus.params:
        return "accepted_unchanged"
    return "accepted_well_formed" if _valid_params(value) else "wrongly_accepted"


class _Timeout(BaseException):
    """Raised by the wall-clock alarm inside a case that runs too long."""


def _on_alarm(signum, frame):
    raise _Timeout


def _timed(fn, limit):
    """``fn()`` under a wall-clock alarm (main thread, POSIX); (value, exception, seconds)."""
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    t0 = time.perf_counter()
    try:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            return fn(), None, time.perf_counter() - t0
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout as e:
        return None, e, time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - classifying every exception is the point
        return None, e, time.perf_counter() - t0


def _case(seed, index, target, corpus, limit):
    """Run case ``index``; (outcome, error class name or None, ops, input, seconds)."""
    rng = random.Random(f"{seed}:{index}")
    ops = []
    data = _input(rng, target, corpus, ops)
    value, err, dt = _timed(lambda: _read(target, data, corpus), limit)
    if isinstance(err, _Timeout) or dt > limit:
        return "hangs", None, ops, data, dt
    if err is None:
        try:
            return _judge(target, data, value, corpus), None, ops, data, dt
        except Exception as e:  # noqa: BLE001 - a value that cannot even be compared or re-encoded
            return "wrongly_accepted", f"accepted, then {type(e).__name__}: {str(e)[:150]}", ops, data, dt
    if isinstance(err, HeflError):
        return "typed", type(err).__name__, ops, data, dt
    return "untyped", f"{type(err).__name__}: {str(err)[:200]}", ops, data, dt


def _empty_counts():
    return {**{k: 0 for k in OUTCOMES}, "typed_errors": {}}


def _short(v):
    # repr of an int over 4300 digits raises; show its size instead.
    if isinstance(v, int) and v.bit_length() > 256:
        return f"<{v.bit_length()}-bit int>"
    return repr(v)[:80]


def _describe(data):
    if isinstance(data, (bytes, bytearray)):
        return {"bytes": len(data), "head_hex": bytes(data[:96]).hex()}
    return {"python": {_short(k): _short(v) for k, v in data.items()}}


def run_fuzz(cases, seed=None, *, targets=TARGETS, case_timeout=1.0, progress=None):
    """Run ``cases`` mutation cases over ``targets``; the report (see the module docstring).

    Parameters
    ----------
    cases : int
    seed : int, optional
        Default: random; recorded in the report either way.
    targets : sequence of str
        Subset of :data:`TARGETS`; case ``i`` goes to ``targets[i % len(targets)]``.
    case_timeout : float
        Seconds after which a case counts as a hang.
    progress : callable, optional
        Called with ``(cases done, cases)`` now and then.
    """
    seed = secrets.randbits(32) if seed is None else int(seed)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise HeflError(f"unknown fuzz target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    t0 = time.perf_counter()
    corpus = build_corpus(seed)
    per = {t: _empty_counts() for t in targets}
    mutations, failures, slowest = Counter(), [], 0.0
    old_handler = signal.signal(signal.SIGALRM, _on_alarm) if hasattr(signal, "SIGALRM") and \
        threading.current_thread() is threading.main_thread() else None
    try:
        for i in range(cases):
            target = targets[i % len(targets)]
            outcome, err, ops, data, dt = _case(seed, i, target, corpus, case_timeout)
            slowest = max(slowest, dt)
            mutations.update(ops)
            counts = per[target]
            if outcome == "typed":
                counts["typed_errors"][err] = counts["typed_errors"].get(err, 0) + 1
            else:
                counts[outcome] += 1
            if outcome in FAILURES and len(failures) < _MAX_LISTED:
                failures.append({"case": i, "target": target, "outcome": outcome, "error": err,
                                 "mutations": ops, "seconds": round(dt, 3), **_describe(data)})
            if progress is not None and (i + 1) % 10_000 == 0:
                progress(i + 1, cases)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGALRM, old_handler)
    total = _empty_counts()
    for counts in per.values():
        for k in OUTCOMES:
            total[k] += counts[k]
        for k, v in counts["typed_errors"].items():
            total["typed_errors"][k] = total["typed_errors"].get(k, 0) + v
    return {**report_meta("fuzz", 1), "seed": seed, "cases": cases, "case_timeout_s": case_timeout,
            "corpus_key_bits": CORPUS_KEY_BITS, "seconds": round(time.perf_counter() - t0, 2),
            "slowest_case_s": round(slowest, 4), **total, "targets": per,
            "mutations": dict(sorted(mutations.items())), "failures": failures,
            "passed": all(total[k] == 0 for k in FAILURES)}


# --- CLI --------------------------------------------------------------------------------

def add_arguments(parser):
    """Arguments of ``hefl fuzz``."""
    parser.add_argument("--cases", type=int, default=100_000, help="number of mutated inputs")
    parser.add_argument("--seed", type=int, default=None, help="seed of corpus and mutations "
                        "(default: random, printed and recorded)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the counts here, e.g. build/reports/fuzz.json (default: print only)")
    parser.add_argument("--target", action="append", choices=TARGETS, metavar="NAME",
                        help=f"fuzz only this reader (repeatable; default: all of {', '.join(TARGETS)})")
    parser.add_argument("--case-timeout", type=float, default=1.0,
                        help="seconds after which one case counts as a hang")


def run(args):
    """Entry point of ``hefl fuzz``: 0 when untyped, hangs and wrongly_accepted are all 0."""
    if args.cases < 1:
        raise HeflError(f"--cases must be at least 1, not {args.cases}")
    if args.json:
        check_output_dir(Path(args.json).parent)
    seed = secrets.randbits(32) if args.seed is None else args.seed
    print(f"hefl fuzz: {args.cases} cases, seed {seed} (--seed {seed} reproduces this run)", flush=True)
    rep = run_fuzz(args.cases, seed, targets=tuple(args.target or TARGETS), case_timeout=args.case_timeout,
                   progress=lambda done, n: print(f"  {done}/{n} cases", flush=True))
    for t, c in rep["targets"].items():
        typed = sum(c["typed_errors"].values())
        print(f"  {t:<14} typed {typed:>6}  " + "  ".join(f"{k} {c[k]}" for k in OUTCOMES))
    print("total: " + ", ".join(f"{k} {rep[k]}" for k in OUTCOMES)
          + f"; typed errors {rep['typed_errors']}; {rep['seconds']} s")
    if args.json:
        print(f"wrote {write_json_atomic(args.json, rep)}")
    if not rep["passed"]:
        for f in rep["failures"][:5]:
            print(f"  case {f['case']} ({f['target']}, {'+'.join(f['mutations'])}): {f['outcome']} "
                  f"{f['error'] or ''}", file=sys.stderr)
        print("hefl fuzz: FAILED: some inputs were not refused with a typed error", file=sys.stderr)
        return 1
    return 0
