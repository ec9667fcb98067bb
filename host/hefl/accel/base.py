"""The Accelerator interface every backend implements.

All four calls work on a batch that shares one modulus (a Paillier key's
``n²``, ``p²`` or ``q²``) and take integers: ``int``, numpy integers or
gmpy2 ``mpz`` (never ``bool``, ``float`` or ``str``: ``int(3.9)`` would
quietly compute with 3); they return a list of plain ints in the order
given. Inputs are validated here, once, before any backend sees them: every
value must be an integer (:class:`~hefl.errors.OperandTypeError`), the
modulus odd and at least 3, every operand in ``[0, modulus)`` and every
exponent non-negative (:class:`~hefl.errors.OperandRangeError`).

:meth:`Accelerator.fixed_base` is the fourth call: exponentiations of one
fixed base from a precomputed table (:mod:`hefl.golden.fixedbase`), each a
product of table entries and an optional extra factor, on a schedule that
does not depend on the exponent (short-exponent Paillier encryption,
docs/design.md §1.6). Backends that hold the table in device memory
override ``_fixed_base``; the default multiplies the entries through
``_product``.
"""

import operator
from abc import ABC, abstractmethod

from hefl.errors import BackendUnavailable, OperandRangeError, OperandTypeError
from hefl.golden.fixedbase import FixedBaseTable, entry_indices
from hefl.golden.montgomery import check_modulus

__all__ = ["Accelerator", "get_accelerator", "register_backend", "BACKEND_MODULES", "device_cycles", "validate_modulus",
           "validate_operands", "validate_exponents"]


def _integer(v, what):
    """``v`` as an int: int, numpy integer or mpz; :class:`OperandTypeError` for anything else."""
    if type(v) is int:                     # the common case, first
        return v
    try:
        if not isinstance(v, bool):
            return operator.index(v)
    except TypeError:
        pass
    raise OperandTypeError(f"{what} is a {type(v).__name__}, not an integer (int, numpy integer or mpz)")


def _integers(values, what):
    """Every element of ``values`` as an int (see :func:`_integer`); ``what`` names an element."""
    try:
        items = list(values)
    except TypeError:
        raise OperandTypeError(f"{what}s must be a sequence of integers, not a "
                               f"{type(values).__name__}") from None
    return [_integer(v, f"{what} {i}") for i, v in enumerate(items)]


def validate_modulus(modulus):
    """``modulus`` as an int: an odd integer ≥ 3 (int, numpy integer or mpz), else a typed error."""
    modulus = _integer(modulus, "modulus")
    check_modulus(modulus, min_bits=2)
    return modulus


def validate_operands(values, modulus, what="operand"):
    """Integers only (:class:`OperandTypeError`), each in ``[0, modulus)`` (:class:`OperandRangeError`)."""
    out = _integers(values, what)
    for i, v in enumerate(out):
        if not 0 <= v < modulus:
            raise OperandRangeError(
                f"{what} {i} is outside [0, modulus): it has {v.bit_length()} bits"
                f"{' and is negative' if v < 0 else ''}, the modulus {modulus.bit_length()}")
    return out


def validate_exponents(values):
    """Integers only (:class:`OperandTypeError`), none negative (:class:`OperandRangeError`)."""
    out = _integers(values, "exponent")
    for i, v in enumerate(out):
        if v < 0:
            raise OperandRangeError(f"exponent {i} is negative; invert the base first")
    return out


class Accelerator(ABC):
    """Batch modular arithmetic over one modulus.

    Subclasses implement the ``_powmod``, ``_mulmod`` and ``_product`` hooks
    on validated inputs; the public methods validate and dispatch.

    Attributes
    ----------
    name : str
        Backend name (``"cpu"``, ``"sim"``, ``"xrt"``, ``"serial"``).
    stats : dict
        Counters the backend keeps (jobs, device cycles, seconds, ...).
    """

    name = "abstract"

    def __init__(self):
        self.stats = {"jobs": 0}

    # --- public API -----------------------------------------------------

    def powmod(self, bases, exps, modulus):
        """``[b^e mod modulus for b, e in zip(bases, exps)]``.

        Parameters
        ----------
        bases, exps : sequence of int
            Same length; bases in ``[0, modulus)``, exponents ≥ 0.
        modulus : int
            Odd modulus shared by the whole batch.
        """
        modulus = validate_modulus(modulus)
        bases = validate_operands(bases, modulus, "base")
        exps = validate_exponents(exps)
        if len(bases) != len(exps):
            raise OperandRangeError(f"{len(bases)} bases but {len(exps)} exponents")
        return self._dispatch(self._powmod, bases, exps, modulus)

    def powmod_secret(self, bases, exps, modulus, *, exp_bits):
        """:meth:`powmod` for secret exponents (private-key ones): time independent of them.

        Parameters
        ----------
        bases, exps, modulus
            As :meth:`powmod`.
        exp_bits : int
            The exponents' declared length, from the key size (``|p|`` for
            ``p - 1``, ``q mod (p - 1)`` or ``p``), never from their values:
            every exponent must be below ``2^exp_bits``, and a backend whose
            time follows a length uses this one.

        Backends implement ``_powmod_secret``: ``cpu`` with GMP's
        ``mpz_powm_sec``; the device backends with the kernel's constant
        schedule at the declared length. The default hook runs ``_powmod``,
        so a backend whose ``powmod`` is not constant-time must override it.
        """
        modulus = validate_modulus(modulus)
        bases = validate_operands(bases, modulus, "base")
        exps = validate_exponents(exps)
        if len(bases) != len(exps):
            raise OperandRangeError(f"{len(bases)} bases but {len(exps)} exponents")
        if isinstance(exp_bits, bool) or not isinstance(exp_bits, int) or exp_bits < 1:
            raise OperandRangeError(f"exp_bits must be a positive integer, not {exp_bits!r}")
        if any(e >> exp_bits for e in exps):
            raise OperandRangeError(f"a secret exponent is longer than its declared {exp_bits} bits")
        return self._dispatch(self._powmod_secret, bases, exps, modulus, exp_bits)

    def mulmod(self, a, b, modulus):
        """``[x · y mod modulus for x, y in zip(a, b)]``."""
        modulus = validate_modulus(modulus)
        a = validate_operands(a, modulus, "a")
        b = validate_operands(b, modulus, "b")
        if len(a) != len(b):
            raise OperandRangeError(f"{len(a)} left operands but {len(b)} right operands")
        return self._dispatch(self._mulmod, a, b, modulus)

    def product(self, groups, modulus):
        """Product of each group mod ``modulus``: the aggregation of K ciphertexts.

        Parameters
        ----------
        groups : sequence of sequence of int
            ``groups[i]`` holds the K ≥ 1 factors of result ``i``.
        """
        modulus = validate_modulus(modulus)
        checked = []
        for i, g in enumerate(groups):
            g = validate_operands(g, modulus, f"group {i} factor")
            if not g:
                raise OperandRangeError(f"group {i} is empty")
            checked.append(g)
        return self._dispatch(self._product, checked, modulus)

    def fixed_base(self, table, exps, factors=None):
        """``[table.base^e · f mod table.modulus for e, f in zip(exps, factors)]``.

        Each result is the product of the ``W`` table entries that ``e``'s
        digits select (and of ``f``): the same number of multiplications of
        full-size operands for every exponent.

        Parameters
        ----------
        table : hefl.golden.fixedbase.FixedBaseTable
            Built once per base and modulus (a Paillier key's ``h_s`` mod
            ``n²``, ``p²`` or ``q²``).
        exps : sequence of int
            Exponents in ``[0, 2^table.exp_bits)``; secret in encryption.
        factors : sequence of int, optional
            One extra factor per exponent, in ``[0, modulus)`` (Paillier's
            ``1 + m·n``); none when omitted.
        """
        if not isinstance(table, FixedBaseTable):
            raise OperandRangeError(f"fixed_base needs a FixedBaseTable, not {type(table).__name__}")
        modulus = validate_modulus(table.modulus)
        exps = validate_exponents(exps)
        if factors is not None:
            factors = validate_operands(factors, modulus, "factor")
            if len(factors) != len(exps):
                raise OperandRangeError(f"{len(exps)} exponents but {len(factors)} factors")
        for i, e in enumerate(exps):
            if e >> table.exp_bits:
                raise OperandRangeError(f"exponent {i} has {e.bit_length()} bits; the table holds "
                                        f"{table.exp_bits}")
        return self._dispatch(self._fixed_base, exps, table, factors)

    def _dispatch(self, hook, jobs, *rest):
        # Validated inputs to the backend's hook, one job per element of ``jobs``.
        if not jobs:
            return []
        self.stats["jobs"] += len(jobs)
        return hook(jobs, *rest)

    def close(self):
        """Release the device, worker processes or library."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- backend hooks ----------------------------------------------------

    @abstractmethod
    def _powmod(self, bases, exps, modulus): ...

    @abstractmethod
    def _mulmod(self, a, b, modulus): ...

    def _powmod_secret(self, bases, exps, modulus, exp_bits):
        return self._powmod(bases, exps, modulus)

    def _fixed_base(self, exps, table, factors):
        # Default: one product job per exponent, of its W entries (and factor).
        groups = []
        for i, e in enumerate(exps):
            g = [table.entry(j) for j in entry_indices(table, e)]
            if factors is not None:
                g.append(factors[i])
            groups.append(g)
        return self._product(groups, table.modulus)

    def _product(self, groups, modulus):
        # Default: a tree of mulmod batches, log2(K) device calls in all.
        level = [list(g) for g in groups]
        while any(len(g) > 1 for g in level):
            left, right, where = [], [], []
            for i, g in enumerate(level):
                for j in range(0, len(g) - 1, 2):
                    left.append(g[j])
                    right.append(g[j + 1])
                    where.append(i)
            prods = self._mulmod(left, right, modulus)
            nxt = [[] for _ in level]
            k = 0
            for i, g in enumerate(level):
                for j in range(0, len(g) - 1, 2):
                    nxt[i].append(prods[k])
                    k += 1
                if len(g) % 2:
                    nxt[i].append(g[-1])
            level = nxt
        return [g[0] for g in level]


def device_cycles(accels):
    """Kernel cycles counted so far over the distinct ``accels`` that count them.

    ``None`` when none does (the ``cpu`` backend counts no cycles). The same
    accelerator listed twice (one backend serving several parties) counts once.
    """
    seen, total = set(), None
    for a in accels:
        if id(a) in seen:
            continue
        seen.add(id(a))
        c = getattr(a, "stats", {}).get("cycles")
        if c is not None:
            total = (total or 0) + int(c)
    return total


_BACKENDS = {}
#: Backends this build knows, by name -> module (each registers itself on import).
BACKEND_MODULES = {"cpu": "hefl.accel.cpu", "sim": "hefl.accel.sim", "xrt": "hefl.accel.xrt",
                   "serial": "hefl.accel.serial"}


def register_backend(name, factory):
    """Make ``factory(**options)`` available as ``get_accelerator(name)``."""
    _BACKENDS[name] = factory


def get_accelerator(name="cpu", **options):
    """Return an :class:`Accelerator` for backend ``name``.

    Raises
    ------
    BackendUnavailable
        Unknown name, or the backend's software/hardware is missing.
    """
    if name not in _BACKENDS:
        # Backends register themselves on import; import the known ones lazily
        # so a missing optional dependency only hurts the backend that needs it.
        import importlib
        if name in BACKEND_MODULES:
            try:
                importlib.import_module(BACKEND_MODULES[name])
            except ModuleNotFoundError as e:
                if e.name and e.name.startswith("hefl.accel"):
                    raise BackendUnavailable(f"backend {name!r} is not implemented in this build") from None
                raise BackendUnavailable(f"backend {name!r} needs {e.name!r}, which is not installed") from e
    if name not in _BACKENDS:
        known = sorted(set(BACKEND_MODULES) | set(_BACKENDS))
        raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(known)}")
    return _BACKENDS[name](**options)
