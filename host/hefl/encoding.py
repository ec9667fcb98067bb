"""Clipping, quantisation and BatchCrypt-style packing of model updates.

A FedAvg client turns its float update into a few large integers, one
Paillier plaintext each; the aggregator multiplies the clients' ciphertexts,
which adds the plaintexts; the key holder decrypts the packed sum and
unpacks it here. One 2048-bit plaintext carries ~100 values, so a round
needs ~100× fewer encryptions than encrypting each value (BatchCrypt,
Zhang et al., USENIX ATC 2020).

Encoding of one value
---------------------
With ``b = value_bits`` let ``Q = 2**(b-1) - 1`` and ``s = Q / alpha``:

1. clip ``x`` to ``[-alpha, alpha]``;
2. quantise ``q = round(x·s)`` (round to nearest, ties to even; or
   stochastic rounding ``floor(x·s + U[0,1))`` when a numpy ``Generator`` is
   given, which is unbiased), so ``q ∈ [-Q, Q]``;
3. store the offset form ``u = q + Q ∈ [0, 2Q]``, which fits in ``b`` bits.

The quantised grid is symmetric (``-2**(b-1)`` is never used), so the value
range is ``2Q + 1 = 2**b - 1`` levels, the same resolution as BatchCrypt's
``b``-bit two's complement.

Why an offset and not two's complement in the slots: a sum of negative
two's-complement values borrows from the next slot, so decoding has to
undo the sign extension slot by slot and a corrupted sum cannot be told from
a legal one. With the offset every slot of a sum of ``K`` encodings is a
non-negative integer in ``[0, 2QK]``; decoding subtracts ``K·Q``. Any slot
above ``2QK`` is impossible for ``K`` honest summands and is reported as
:class:`~hefl.errors.PackingOverflowError`, so overflow detection is exact
for every single-slot excess. The sign needs no special case and the
plaintext never needs a signed interpretation mod ``n``.

Packing
-------
A slot is ``slot_bits = value_bits + guard_bits`` wide. With ``g`` guard
bits up to ``K = 2**g`` encodings can be added: ``2QK = (2**b - 2)·2**g <
2**(b+g)``, so no slot ever carries into its neighbour. A plaintext holds
``slots = plaintext_bits // slot_bits`` slots, value ``j·slots + i`` in slot
``i`` of plaintext ``j``, slot 0 in the least significant bits. Unused slots
of the last plaintext are 0 (not ``Q``) and must still be 0 after summing.

Callers pass ``plaintext_bits = n.bit_length() - 1`` for a Paillier modulus
``n``. Every slot sum stays below ``2**slot_bits``, so the packed sum of up to
``2**g`` plaintexts stays below ``2**(slots·slot_bits) ≤ 2**plaintext_bits
< n``: the addition mod ``n`` never wraps.

Decoding checks, each raising :class:`~hefl.errors.PackingOverflowError`:
more summands than ``2**g``; a plaintext with bits set above the last slot
(it cannot come from a legal sum: garbled ciphertext, wrong key, or a sum
that wrapped mod ``n``); a slot above ``2QK``; a nonzero unused slot.
What it cannot detect: a sum that is legal-looking for the ``summands``
claimed but made of a different number of encodings. The caller must pass
the true count (the FedAvg loop knows which clients it multiplied).

Integer weights: a ciphertext raised to a non-negative integer power ``w``
(Paillier scalar multiply) holds ``w`` copies of its encoding, offsets
included, so it counts as ``w`` summands: ``Σ w_k·encode(x_k)`` decodes
with ``summands = Σ w_k`` (≤ ``2**g``) to ``Σ w_k·q_k / s``.

Error bound
-----------
Round to nearest errs by at most ``1/(2s)`` per value and stochastic
rounding by less than ``1/s``, so the decoded sum of ``K`` encodings differs
from the sum of the clipped inputs by at most ``K/(2s)`` (``K/s``) per
element, plus float64 rounding slack; :meth:`Encoder.quantisation_bound`
returns that number.

Speed: packing works on bits with numpy (``unpackbits``/``packbits``) and
builds each plaintext with one ``int.from_bytes``; 100,000 values into
2047-bit plaintexts take about 2–3 ms each way on one core here
(``tests/test_encoding.py::test_real_size_round_trip`` prints it).
"""

import math
import numbers
import operator
from dataclasses import asdict, dataclass

import numpy as np

from hefl.errors import (
    EncodingError,
    NonFiniteUpdateError,
    PackingOverflowError,
    SerializationError,
)
from hefl.paillier.keys import MAX_KEY_BITS

__all__ = ["Encoder", "EncodingParams", "SCHEME", "MAX_VALUE_BITS", "MAX_SLOT_BITS", "MAX_PLAINTEXT_BITS"]

#: Name of the slot format, stored with the parameters so a receiver can
#: refuse data packed some other way.
SCHEME = "offset-binary/1"

#: float64 has a 53-bit significand: finer quantisation would be meaningless.
MAX_VALUE_BITS = 53

#: Slots are handled as uint64 in numpy; 63 keeps every slot sum and the
#: ``K·Q`` offset exact in int64 as well.
MAX_SLOT_BITS = 63

#: Widest plaintext: ``n.bit_length() - 1`` for the largest key hefl reads.
#: Parameters received with data cannot claim more (10**28 slots would be
#: accepted otherwise, and a decoder sized by them would try to allocate it).
MAX_PLAINTEXT_BITS = MAX_KEY_BITS - 1

# Float64 slack added to the error bound, relative to alpha: per summand,
# x·s and the final q/s round once each (2**-53 relative, 2**-40 covers them
# with room); the caller's own float sum of K clipped inputs can err by up to
# K·(K·alpha)·2**-53 with naive summation, hence a K² term (2**-52). Both stay
# far below a grid step for value_bits ≤ 40 and any practical K.
_FLOAT_SLACK = 2.0 ** -40


def _show(value):
    """A short repr for messages (received values can be huge: repr of a 5000-digit int raises)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_int(name, value, low, high=None):
    """Return ``value`` as int; TypeError for a non-integer, EncodingError out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {_show(value)}")
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f"at least {low}" if high is None else f"between {low} and {high}"
        raise EncodingError(f"{name} must be {rng}, not {_show(value)}")
    return value


def _index(name, value):
    """``value`` as an int (int, numpy integer, gmpy2 ``mpz``); TypeError otherwise, bool included."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {_show(value)}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {_show(value)}") from None


def _check_alpha(alpha, value_bits=MAX_VALUE_BITS):
    """``alpha`` as a float; its scale ``Q/alpha`` for ``value_bits`` must be finite too."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"Clipping bound alpha must be a positive real number, not {_show(alpha)}")
    try:
        alpha = float(alpha)
    except OverflowError:
        raise EncodingError(f"Clipping bound alpha is too large for a float: {_show(alpha)}") from None
    # A subnormal alpha would make the scale infinite and every value NaN.
    if not (math.isfinite(alpha) and alpha > 0 and math.isfinite(((1 << (value_bits - 1)) - 1) / alpha)):
        raise EncodingError(f"Clipping bound alpha must be a positive finite number, not {alpha!r}")
    return alpha


@dataclass(frozen=True)
class EncodingParams:
    """Everything a receiver needs to unpack a vector: goes into ciphertext meta.

    Attributes
    ----------
    alpha : float
        Clipping bound; values are clipped to ``[-alpha, alpha]``.
    value_bits : int
        Bits of one quantised value ``b`` (offset form ``[0, 2**b - 2]``).
    guard_bits : int
        Guard bits ``g``; up to ``2**g`` encodings may be summed.
    slot_bits : int
        ``value_bits + guard_bits``.
    slots : int
        Values per plaintext, ``plaintext_bits // slot_bits``.
    plaintext_bits : int
        Bits available in one plaintext (``n.bit_length() - 1``).
    """

    alpha: float
    value_bits: int
    guard_bits: int
    slot_bits: int
    slots: int
    plaintext_bits: int

    def __post_init__(self):
        # Validate here too, so parameters built by hand or read from JSON
        # cannot describe an impossible layout.
        b = _check_int("Value bits", self.value_bits, 2, MAX_VALUE_BITS)
        _check_alpha(self.alpha, b)
        g = _check_int("Guard bits", self.guard_bits, 0, MAX_SLOT_BITS - b)
        sb = _check_int("Slot bits", self.slot_bits, 1, MAX_SLOT_BITS)
        if sb != b + g:
            raise EncodingError(
                f"Slot bits must equal value bits + guard bits ({b + g}), not {sb!r}")
        pb = _check_int("Plaintext bits", self.plaintext_bits, sb, MAX_PLAINTEXT_BITS)
        slots = _check_int("Slots", self.slots, 1, MAX_PLAINTEXT_BITS)
        if slots != pb // sb:
            raise EncodingError(
                f"Slots must be plaintext bits // slot bits ({pb // sb}), not {slots!r}")

    @classmethod
    def build(cls, *, plaintext_bits, alpha, value_bits, guard_bits):
        """Derive ``slot_bits`` and ``slots`` and validate everything.

        Raises
        ------
        TypeError
            A parameter of the wrong type.
        EncodingError
            A parameter out of range, or a plaintext narrower than one slot.
        """
        b = _check_int("Value bits", value_bits, 2, MAX_VALUE_BITS)
        alpha = _check_alpha(alpha, b)
        g = _check_int("Guard bits", guard_bits, 0, MAX_SLOT_BITS - b)
        if isinstance(plaintext_bits, bool) or not isinstance(plaintext_bits, numbers.Integral):
            raise TypeError(f"Plaintext bits must be an integer, not {_show(plaintext_bits)}")
        if plaintext_bits < b + g:
            raise EncodingError(
                f"Plaintext bits must be at least one slot ({b} value + {g} guard bits = "
                f"{b + g}), not {_show(plaintext_bits)}; use a larger key or fewer bits")
        pb = _check_int("Plaintext bits", plaintext_bits, b + g, MAX_PLAINTEXT_BITS)
        return cls(alpha=alpha, value_bits=b, guard_bits=g, slot_bits=b + g,
                   slots=pb // (b + g), plaintext_bits=pb)

    def to_dict(self):
        """JSON-safe dict (plain ints, a float and the scheme name)."""
        d = asdict(self)
        d["alpha"] = float(self.alpha)
        d["scheme"] = SCHEME
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`, for parameters received with data.

        Raises
        ------
        SerializationError
            Not a dict, unknown scheme, missing or extra keys, or values that
            do not describe a valid layout (the message says which): this
            and nothing else, whatever ``d`` holds. Integers must be
            integers (not ``16.0``, not ``true``), and every size is
            bounded (:data:`MAX_PLAINTEXT_BITS`).
        """
        if not isinstance(d, dict):
            raise SerializationError(f"Encoding parameters must be a JSON object, not {type(d).__name__}")
        d = dict(d)
        scheme = d.pop("scheme", None)
        if not isinstance(scheme, str) or scheme != SCHEME:
            raise SerializationError(
                f"Encoding scheme {_show(scheme)} is not supported; this hefl reads {SCHEME!r}")
        fields = set(cls.__dataclass_fields__)
        if set(d) != fields:
            # repr: keys of a dict built in Python need not be strings.
            missing = sorted(map(repr, fields - set(d)))
            extra = sorted(map(_show, set(d) - fields))
            raise SerializationError(f"Encoding parameters malformed: missing [{', '.join(missing)}], "
                                     f"unexpected [{', '.join(extra)}]")
        try:
            d["alpha"] = _check_alpha(d["alpha"])
            return cls(**d)
        except (TypeError, EncodingError) as e:
            raise SerializationError(f"Encoding parameters invalid: {str(e)[:200]}") from None


class Encoder:
    """Clip, quantise and pack float vectors; unpack and check packed sums.

    Parameters
    ----------
    plaintext_bits : int
        Bits one plaintext may use; ``n.bit_length() - 1`` for Paillier
        modulus ``n`` (so every packed sum stays below ``n``).
    alpha : float
        Clipping bound (> 0).
    value_bits : int
        Quantised value width ``b``, 2 … 53.
    guard_bits : int
        Guard bits ``g`` ≥ 0; sums of up to ``2**g`` encodings decode.
        ``value_bits + guard_bits`` ≤ 63.

    Raises
    ------
    TypeError, EncodingError
        Bad parameters (see :meth:`EncodingParams.build`).

    Examples
    --------
    >>> enc = Encoder(plaintext_bits=2047, alpha=1.0, value_bits=16, guard_bits=4)
    >>> enc.slots, enc.max_summands
    (102, 16)
    >>> a, b = enc.encode(np.array([0.5, -0.25])), enc.encode(np.array([0.25, -0.5]))
    >>> enc.decode([x + y for x, y in zip(a, b)], length=2, summands=2).round(3).tolist()
    [0.75, -0.75]
    """

    def __init__(self, *, plaintext_bits, alpha, value_bits, guard_bits):
        self._init(EncodingParams.build(plaintext_bits=plaintext_bits, alpha=alpha,
                                        value_bits=value_bits, guard_bits=guard_bits))

    @classmethod
    def from_params(cls, params):
        """An encoder for given :class:`EncodingParams` (or their ``to_dict`` form)."""
        if isinstance(params, dict):
            params = EncodingParams.from_dict(params)
        if not isinstance(params, EncodingParams):
            raise TypeError(f"Parameters must be EncodingParams or a dict, not {params!r}")
        self = cls.__new__(cls)
        self._init(params)
        return self

    def _init(self, params):
        self._params = params
        self._q = (1 << (params.value_bits - 1)) - 1          # largest |q|
        self._scale = self._q / params.alpha                   # s: float -> grid
        self._packed_bits = params.slots * params.slot_bits    # used bits per plaintext
        self._nbytes = (self._packed_bits + 7) // 8

    # --- properties -----------------------------------------------------

    @property
    def params(self):
        """The :class:`EncodingParams` of this encoder."""
        return self._params

    @property
    def slots(self):
        """Values per plaintext."""
        return self._params.slots

    @property
    def max_summands(self):
        """Largest number of encodings whose sum still decodes: ``2**guard_bits``."""
        return 1 << self._params.guard_bits

    @property
    def scale(self):
        """Quantisation scale ``s``: one grid step is ``1/s``."""
        return self._scale

    def plaintexts_for(self, length):
        """Number of plaintexts :meth:`encode` produces for ``length`` values."""
        length = _check_int("Length", length, 0)
        return -(-length // self.slots)

    def __repr__(self):
        p = self._params
        return (f"Encoder(plaintext_bits={p.plaintext_bits}, alpha={p.alpha!r}, "
                f"value_bits={p.value_bits}, guard_bits={p.guard_bits})")

    # --- encode ---------------------------------------------------------

    def quantise(self, update, rng=None):
        """Clip and quantise to the integer grid ``[-Q, Q]`` (int64), no packing.

        Parameters and errors as :meth:`encode`. The FedAvg reference uses
        it to compute exactly what the encrypted path will sum.
        """
        x = self._as_vector(update)
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, not {rng!r}")
        # NaN/inf check first: nothing derived from a broken update may leave.
        if not np.all(np.isfinite(x)):
            bad = np.flatnonzero(~np.isfinite(x))
            raise NonFiniteUpdateError(
                f"Update holds {bad.size} non-finite value(s) (first at index {bad[0]}: "
                f"{x[bad[0]]!r}); nothing was encoded")
        alpha = self._params.alpha
        y = np.clip(x, -alpha, alpha) * self._scale
        if rng is None:
            q = np.rint(y)
        else:
            q = np.floor(y + rng.random(y.shape))
        # alpha·s can round to a hair above Q and stochastic rounding can
        # then step to Q+1: clamp on the grid, which also keeps the bound.
        return np.clip(q, -self._q, self._q).astype(np.int64)

    def encode(self, update, rng=None):
        """Clip, quantise and pack a float vector.

        Parameters
        ----------
        update : array_like, 1-D
            Real values (flatten multi-dimensional updates first).
        rng : numpy.random.Generator, optional
            When given, stochastic rounding drawn from it; otherwise round to
            nearest (deterministic).

        Returns
        -------
        list of int
            ``ceil(len(update) / slots)`` plaintexts, each in
            ``[0, 2**(slots·slot_bits))``.

        Raises
        ------
        NonFiniteUpdateError
            ``update`` holds NaN or ±inf (checked before anything else).
        EncodingError
            ``update`` is not a 1-D real vector.
        TypeError
            ``rng`` is not a numpy Generator.
        """
        q = self.quantise(update, rng)
        return self._pack((q + self._q).astype(np.uint64))

    def _as_vector(self, update):
        try:
            x = np.asarray(update)
        except Exception as e:  # ragged lists and the like
            raise EncodingError(f"Update must be a 1-D array of real numbers: {e}") from e
        if x.ndim != 1:
            raise EncodingError(
                f"Update must be a 1-D array (flatten it first), not shape {x.shape}")
        if x.dtype.kind not in "iuf":
            raise EncodingError(f"Update must hold real numbers, not dtype {x.dtype}")
        return x.astype(np.float64, copy=False)

    def _pack(self, u):
        """uint64 slot values -> list of plaintext ints (slot 0 lowest)."""
        p = self._params
        count = -(-u.size // p.slots)
        if count == 0:
            return []
        m = np.zeros(count * p.slots, dtype="<u8")
        m[:u.size] = u
        # Little-endian bytes of each slot -> bits (LSB first) -> keep the
        # low slot_bits of each -> concatenate the slots of a plaintext ->
        # bytes again. All in C; one int.from_bytes per plaintext.
        bits = np.unpackbits(m.view(np.uint8).reshape(count, p.slots, 8), axis=2,
                             bitorder="little")[:, :, :p.slot_bits]
        raw = np.packbits(bits.reshape(count, self._packed_bits), axis=1, bitorder="little")
        buf, nb = raw.tobytes(), raw.shape[1]
        return [int.from_bytes(buf[i * nb:(i + 1) * nb], "little") for i in range(count)]

    # --- decode ---------------------------------------------------------

    def decode(self, plaintexts, length, summands, modulus=None):
        """Unpack the sum of ``summands`` encodings into the float sum.

        Parameters
        ----------
        plaintexts : sequence of int
            Decrypted packed sums (ints, numpy ints or gmpy2 ``mpz``), as
            many as :meth:`plaintexts_for` ``(length)``.
        length : int
            Number of values encoded.
        summands : int
            How many encodings were added, 1 … :attr:`max_summands`; an
            encoding multiplied by an integer weight ``w`` counts ``w`` times.
        modulus : int, optional
            The Paillier ``n`` the plaintexts were decrypted under; when
            given, each plaintext must lie in ``[0, n)`` and the layout must
            fit below ``n``. The offset encoding never needs a signed
            interpretation.

        Returns
        -------
        numpy.ndarray
            float64, shape ``(length,)``: the sum (not the mean) of the
            quantised values, in the input's units.

        Raises
        ------
        PackingOverflowError
            ``summands > max_summands``, a plaintext with bits above the last
            slot, a slot larger than ``summands`` encodings can produce, or a
            nonzero unused slot.
        EncodingError
            Wrong number of plaintexts, negative plaintexts, plaintext ≥
            modulus, a modulus too small for this layout, ``summands < 1``.
        TypeError
            Non-integer ``length``, ``summands``, ``modulus`` or plaintexts.
        """
        length = _check_int("Length", length, 0)
        summands = self._check_summands(summands)
        if modulus is not None:
            modulus = self._check_modulus(modulus)
        want = self.plaintexts_for(length)
        try:
            n_given = len(plaintexts)
        except TypeError:
            raise TypeError(f"Plaintexts must be a sequence of ints, not {plaintexts!r}") from None
        if n_given != want:
            raise EncodingError(
                f"{length} values need {want} plaintexts of {self._params.slots} slots, got {n_given}")
        if want == 0:
            return np.zeros(0)
        slots = self._unpack(self._plaintext_bytes(plaintexts, modulus), want)
        used = self._check_slots(slots, length, summands)
        q_sum = used.astype(np.int64) - self._q * summands
        return q_sum / self._scale

    def _check_summands(self, summands):
        summands = _check_int("Summands", summands, 1)
        if summands > self.max_summands:
            raise PackingOverflowError(
                f"A sum of {summands} encodings overflows {self._params.guard_bits} guard bits "
                f"(at most {self.max_summands}); use more guard bits or aggregate in groups")
        return summands

    def _plaintext_bytes(self, plaintexts, modulus):
        """Each plaintext checked and as ``_nbytes`` little-endian bytes, concatenated."""
        buf = bytearray()
        for i, pt in enumerate(plaintexts):
            v = _index(f"Plaintext {i}", pt)
            if v < 0:
                raise EncodingError(f"Plaintext {i} is negative; decrypted plaintexts lie in [0, n)")
            if modulus is not None and v >= modulus:
                raise EncodingError(f"Plaintext {i} is not below the modulus; it was not reduced mod n")
            if v >> self._packed_bits:
                raise PackingOverflowError(
                    f"Plaintext {i} has bits set above its {self._params.slots} slots "
                    f"(bit {v.bit_length() - 1} of {self._packed_bits}): the sum overflowed or the "
                    "ciphertext was garbled or made under another key")
            buf += v.to_bytes(self._nbytes, "little")
        return bytes(buf)

    def _check_slots(self, slots, length, summands):
        """The ``length`` used slots, after checking every slot could come from ``summands`` encodings."""
        p = self._params
        # Honest sums of K offset values lie in [0, 2QK]; anything above is
        # an overflow or corruption, never a value.
        limit = 2 * self._q * summands
        used = slots[:length]
        over = np.flatnonzero(used > limit)
        if over.size:
            i = int(over[0])
            raise PackingOverflowError(
                f"{over.size} slot(s) exceed what {summands} summand(s) can produce "
                f"(first: value {i}, plaintext {i // p.slots} slot {i % p.slots}, "
                f"{int(used[i])} > {limit}): more summands than declared, or a garbled ciphertext")
        tail = np.flatnonzero(slots[length:])
        if tail.size:
            i = length + int(tail[0])
            raise PackingOverflowError(
                f"Unused slot {i % p.slots} of the last plaintext is nonzero: "
                "the ciphertext was garbled or packed with another length")
        return used

    def _check_modulus(self, modulus):
        modulus = _index("Modulus", modulus)
        if modulus < (1 << self._packed_bits):
            raise EncodingError(
                f"Modulus of {modulus.bit_length()} bits is too small for this layout "
                f"({self._packed_bits} packed bits need n > 2**{self._packed_bits})")
        return modulus

    def _unpack(self, buf, count):
        """Plaintext bytes -> flat uint64 slot values (inverse of :meth:`_pack`)."""
        p = self._params
        raw = np.frombuffer(buf, dtype=np.uint8).reshape(count, self._nbytes)
        bits = np.unpackbits(raw, axis=1, count=self._packed_bits, bitorder="little")
        bits = bits.reshape(count, p.slots, p.slot_bits)
        # Widen each slot's bits to 64 and pack back into little-endian uint64.
        wide = np.zeros((count, p.slots, 64), dtype=np.uint8)
        wide[:, :, :p.slot_bits] = bits
        return np.packbits(wide, axis=2, bitorder="little").view("<u8").reshape(-1)

    # --- error bound ----------------------------------------------------

    def quantisation_bound(self, summands, stochastic=False):
        """Largest |decode(sum of K encodings) − sum of the clipped inputs| per element.

        Parameters
        ----------
        summands : int
            ``K``, 1 … :attr:`max_summands`.
        stochastic : bool
            Whether the encodings used stochastic rounding (error < one grid
            step per value) rather than round to nearest (half a step).

        Returns
        -------
        float
            ``K·step/2`` (or ``K·step``) plus float64 slack
            ``K·alpha·(2**-40 + K·2**-52)``, where ``step = 1/s = alpha/Q``.
        """
        k = _check_int("Summands", summands, 1, self.max_summands)
        per_value = (1.0 if stochastic else 0.5) / self._scale
        float_slack = self._params.alpha * (_FLOAT_SLACK + k * 2.0 ** -52)
        return k * (per_value + float_slack)
