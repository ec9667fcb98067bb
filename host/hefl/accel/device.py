"""The device driver: one code path from the Accelerator calls to any transport.

``sim`` (the Verilator model), ``xrt`` (an Alveo card) and ``serial`` (the
ECP5 board) are each a :class:`DeviceAccelerator` over their
:class:`~hefl.transport.base.Transport`, made by a factory registered with
:func:`~hefl.accel.base.register_backend`; they differ in nothing else. A
:class:`Card` is one kernel behind one transport (its HWCFG, buffers,
constants); ``sim`` may hold one card per kernel width and picks one per
modulus (:meth:`DeviceAccelerator.card_for`). Statistics (batches, kernel
cycles, host seconds) are kept by the accelerator, once. Per batch::

    constants   N', R² mod N, R mod N for the hardware's (w, s), cached per modulus
    tables      fixed-base tables in Montgomery form, uploaded once per (table, card)
    descriptor  header | N | R² | R | job stream   (format: hefl.hw.regmap.LAYOUT)
    buffers     reused between batches, grown when too small
    run         write → sync → start(desc, result, table) → wait(timeout) → sync → read
    check       status flags → typed DeviceError; jobs completed; every result < N
    verify      a random sample recomputed with gmpy2 → VerificationError

Limbs are little-endian 64-bit words each holding one w-bit word
zero-extended (w ≤ 64, any value: 51-bit words are packed bit-exactly with
numpy, byte-multiple widths take a faster path).

Declared exponent lengths. A POWMOD batch's cycles are a function of its
declared exponent length only. :meth:`DeviceAccelerator.powmod` takes that
length explicitly, ``exp_bits=``, for secret exponents (the Paillier
decryption's ``p − 1``, ``q − 1``, λ ...): it must come from the key size,
never from the values, or the length of ``q mod (p − 1)`` rounded to the
window would reach the card and its timing. Without ``exp_bits`` (public
exponents: ``n`` in ``r^n``) the length is the longest exponent's, rounded
up to a whole number of windows: every job of the batch then takes the same
cycles, whatever its exponent's value. Exponents longer than
``hw_max_exp_bits`` are split (square-and-multiply by chunks:
``b^e = (b^e_hi)^(2^c) · b^e_lo``), each step a device batch, the number of
chunks from the declared length.

Fixed-base exponentiation (:meth:`~hefl.accel.base.Accelerator.fixed_base`)
runs as TABLE_PRODUCT jobs on a kernel that has them (``hw_features``): the
driver rebuilds the table with the card's window
(``table_window_bits``, e.g. 8: 64 entries per 512-bit exponent), converts
every entry to Montgomery form for the card's ``R``, uploads it once per
(table, card) and then sends per exponent only its entry indices and the
extra factor. Kernels without the feature, or whose memory cannot hold the
table, get the generic product jobs.
"""

import random
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from hefl.accel.base import (
    Accelerator,
    validate_exponents,
    validate_modulus,
    validate_operands,
)
from hefl.accel.cpu import powmod_sec_values
from hefl.errors import (
    DeviceError,
    DeviceStatusError,
    ModulusError,
    OperandRangeError,
    VerificationError,
)
from hefl.golden.fixedbase import build_table, windows
from hefl.golden.montgomery import mont_constants
from hefl.hw.params import CARD_TABLE_WINDOW_BITS
from hefl.hw.regmap import HWCFG_REGS, LAYOUT

__all__ = ["HardwareConfig", "Card", "DeviceAccelerator", "pack_words", "unpack_words"]

_LIMB = LAYOUT.limb_bits
_LIMB_BYTES = LAYOUT.limb_bytes
_TAGS = 1 << LAYOUT.job_field("tag").width
_COUNT_MAX = (1 << LAYOUT.job_field("count").width) - 1
_POWMOD, _MULMOD, _PRODUCT, _TABLE = (LAYOUT.op(n) for n in
                                      ("powmod", "mulmod", "product", "table_product"))
#: Fixed-base tables a card keeps uploaded (least recently used dropped first).
_TABLES_PER_CARD = 4


@dataclass(frozen=True)
class HardwareConfig:
    """The kernel's build parameters, as its HWCFG registers report them."""

    word_bits: int
    words: int
    lanes: int
    window_bits: int
    max_exp_bits: int
    data_bits: int
    engines: int = 1
    features: int = 0
    table_max: int = 0

    @classmethod
    def read(cls, transport):
        """Read every HWCFG register through ``transport``."""
        return cls.from_registers({name: transport.read_reg(name) for name in HWCFG_REGS})

    @classmethod
    def from_registers(cls, vals):
        """The configuration from HWCFG register values by name; checked."""
        cfg = cls(**{name.removeprefix("hw_"): int(v) for name, v in vals.items()})
        if (not 1 <= cfg.word_bits <= _LIMB or cfg.words < 1 or cfg.lanes < 1
                or cfg.max_exp_bits < 1 or cfg.engines < 1):
            raise DeviceError(f"the device reports an impossible configuration {cfg}; "
                              "is the right kernel loaded?")
        return cfg

    def has(self, feature):
        """Whether the kernel implements ``feature`` (a name of ``LAYOUT.features``)."""
        return bool(self.features & LAYOUT.feature(feature)) and (
            feature != "table_product" or self.table_max > 0)

    @property
    def max_modulus_bits(self):
        """Widest modulus: the hardware keeps results < 2N, which needs R > 4N."""
        return self.word_bits * self.words - 2

    def declared_exp_bits(self, max_bits):
        """Declared POWMOD length for a batch whose longest exponent has ``max_bits`` bits."""
        k = self.window_bits
        bits = max(1, -(-max(1, max_bits) // k) * k)
        return min(bits, self.max_exp_bits) if max_bits <= self.max_exp_bits else bits


def pack_words(values, word_bits, words):
    """Pack ints into an ``(n, words)`` uint64 array of ``word_bits``-bit words.

    Word ``j`` of value ``v`` is ``(v >> (w·j)) mod 2^w``, as
    :func:`hefl.golden.montgomery.to_words`; values must fit ``w·words`` bits.
    """
    n = len(values)
    w = word_bits
    nbytes = -(-w * words // 8)
    try:
        raw = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    except OverflowError:
        raise OperandRangeError(f"a value does not fit {words} words of {w} bits") from None
    if n == 0:
        return np.zeros((0, words), dtype=np.uint64)
    if w in (8, 16, 32, 64):
        return np.frombuffer(raw, dtype=f"<u{w // 8}").reshape(n, words).astype(np.uint64)
    byts = np.frombuffer(raw, dtype=np.uint8).reshape(n, nbytes)
    if w * words % 8 and (byts[:, -1] >> (w * words % 8)).any():
        raise OperandRangeError(f"a value does not fit {words} words of {w} bits")
    if w <= _LIMB - 7:
        # Word j starts at bit w·j: load the 8 bytes from its first byte and
        # shift by the bit offset (w + 7 <= 64 bits, so one load holds it).
        off = np.arange(words, dtype=np.int64) * w
        pad = np.zeros((n, nbytes + 8), dtype=np.uint8)
        pad[:, :nbytes] = byts
        idx = (off // 8)[:, None] + np.arange(8)
        load = pad[:, idx].reshape(n, words, 8).copy().view("<u8").reshape(n, words)
        return (load >> (off % 8).astype(np.uint64)) & np.uint64((1 << w) - 1)
    bits = np.unpackbits(byts, axis=1, bitorder="little")
    wide = np.zeros((n, words, _LIMB), dtype=np.uint8)
    wide[:, :, :w] = bits[:, :w * words].reshape(n, words, w)
    return np.packbits(wide, axis=2, bitorder="little").view("<u8").reshape(n, words)


def unpack_words(limbs, word_bits):
    """Inverse of :func:`pack_words`: an ``(n, words)`` limb array to ints.

    Raises
    ------
    DeviceError
        A limb holds bits above ``word_bits`` (the zero extension was broken).
    """
    limbs = np.asarray(limbs, dtype=np.uint64)
    n, words = limbs.shape
    w = word_bits
    if w < _LIMB and (limbs >> np.uint64(w)).any():
        bad = int(np.argwhere((limbs >> np.uint64(w)) != 0)[0][0])
        raise DeviceError(f"result {bad} has a limb wider than {w} bits: the device "
                          "broke the limb format")
    if w in (8, 16, 32, 64):
        raw = limbs.astype(f"<u{w // 8}").tobytes()
        step = words * w // 8
        return [int.from_bytes(raw[i * step:(i + 1) * step], "little") for i in range(n)]
    nbytes = -(-w * words // 8)
    if w <= _LIMB - 7:
        # Inverse of the load in pack_words: OR each word, shifted by its bit
        # offset, into the 8 bytes from its first byte (one word at a time,
        # all values at once; neighbours overlap only in the shared byte).
        out = np.zeros((n, nbytes + 8), dtype=np.uint8)
        for j in range(words):
            o = w * j
            shifted = (limbs[:, j] << np.uint64(o % 8)).astype("<u8")
            out[:, o // 8:o // 8 + 8] |= shifted.view(np.uint8).reshape(n, 8)
        return [int.from_bytes(out[i, :nbytes].tobytes(), "little") for i in range(n)]
    bits = np.unpackbits(limbs.astype("<u8").view(np.uint8).reshape(n, words, _LIMB_BYTES),
                         axis=2, bitorder="little")[:, :, :w].reshape(n, words * w)
    raw = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(raw[i].tobytes(), "little") for i in range(n)]


class Card:
    """One kernel behind one transport: what the driver keeps per device.

    Parameters
    ----------
    transport : hefl.transport.base.Transport
        Opened; this object owns it (closes it).

    Attributes
    ----------
    transport : Transport
    hw : HardwareConfig
        Read from the kernel's HWCFG registers when the card is opened.
    buffers : dict
        ``"desc"`` and ``"result"`` device buffers (``None`` before the
        first batch), reused between batches and grown when too small.
    constants : OrderedDict
        Montgomery constants per modulus for this ``hw`` (an LRU the driver fills).
    tables : OrderedDict
        Fixed-base tables uploaded to this card (:class:`CardTable`, an LRU
        the driver fills; evicted tables' buffers are freed).
    """

    def __init__(self, transport):
        self.transport = transport
        self.hw = HardwareConfig.read(transport)
        self.buffers = {"desc": None, "result": None}
        self.constants = OrderedDict()
        self.tables = OrderedDict()

    def beat_bytes(self, size):
        """``size`` rounded up to whole ``m_axi_gmem`` beats: the kernel reads and writes
        whole beats, so a buffer must end on one (XRT pads buffers to 4 KiB anyway)."""
        beat = max(1, self.hw.data_bits // 8)
        return -(-int(size) // beat) * beat

    def buffer(self, which, size):
        """Device buffer ``which`` of at least ``size`` bytes (the old one if it fits)."""
        buf = self.buffers[which]
        if buf is None or buf.size < size:
            if buf is not None:
                self.transport.free(buf)
            # Grow geometrically so a run of growing batches reallocates rarely.
            grown = max(size, 2 * buf.size if buf is not None else size, 4096)
            buf = self.transport.alloc(self.beat_bytes(grown))
            self.buffers[which] = buf
        return buf

    def null_pointer(self):
        """The ``table`` argument of a run without a table (0, or a transport's placeholder)."""
        return getattr(self.transport, "null_pointer", lambda: 0)()

    def close(self):
        """Free the buffers (best effort) and close the transport."""
        bufs = list(self.buffers.items()) + [(None, ct.buffer) for ct in self.tables.values()]
        for k, buf in bufs:
            if buf is not None and not buf.freed:
                try:
                    self.transport.free(buf)
                except Exception:
                    pass
            if k is not None:
                self.buffers[k] = None
        self.tables.clear()
        self.transport.close()


@dataclass(frozen=True)
class CardTable:
    """A fixed-base table as one card holds it.

    Attributes
    ----------
    table : hefl.golden.fixedbase.FixedBaseTable
        The table with the card's window (plain values; the card holds each
        entry times ``R`` mod the modulus).
    buffer : hefl.transport.base.Buffer
        The entries, ``s`` limbs each, entry ``i·2^k + d`` at limb ``i·s·2^k + d·s``.
    """

    table: object
    buffer: object

    @property
    def entries(self):
        return self.table.windows << self.table.k


@dataclass(frozen=True)
class _Target:
    """Where a batch runs: a card, the Montgomery constants of the modulus, a table if any."""

    card: Card
    mont: object     # hefl.golden.montgomery.MontConstants
    table: CardTable = None

    @property
    def hw(self):
        return self.card.hw


class DeviceAccelerator(Accelerator):
    """Batch modular arithmetic on a kernel behind a transport: every device backend.

    ``sim``, ``xrt`` and ``serial`` are this class over their transport,
    made by the factory each registers (:mod:`hefl.accel.sim`, ...). Its
    :attr:`stats` are the only count of batches and kernel cycles.

    Parameters
    ----------
    transport : hefl.transport.base.Transport, optional
        The card or its model; this object owns it (closes it).
    open_transport : callable, optional
        Instead of ``transport``: ``open_transport(width)`` opens a kernel of
        operand width ``width``, one of ``widths``. Each call then goes to
        the narrowest kernel that holds its modulus, opened on first use
        (the ``sim`` backend's right-sized kernels; see :meth:`card_for`).
    widths : sequence of int
        With ``open_transport``: the widths it can open.
    name : str, optional
        Backend name (``"sim"``, ``"xrt"``, ``"serial"``); default ``"device"``.
    timeout : float
        Seconds one device run may take before :class:`~hefl.errors.DeviceTimeout`.
    verify : float or int
        Results re-checked on the CPU per call: a fraction in ``(0, 1]``
        (``1.0`` checks all) or a count ``>= 1`` (int); ``0`` checks none.
    verify_seed : int, optional
        Seed of the sample choice (default: random).
    max_batch_bytes : int
        Largest descriptor of one run; larger calls are split.
    max_jobs : int, optional
        Most jobs per run (default and upper bound: the tag space, 2^16).
    table_window_bits : int
        Window ``k`` of the fixed-base tables the driver uploads
        (:data:`hefl.hw.params.CARD_TABLE_WINDOW_BITS`); lowered per table
        when its ``W·2^k`` entries would not fit the 16-bit indices.
    """

    name = "device"

    def __init__(self, transport=None, *, open_transport=None, widths=None, name=None,
                 timeout=300.0, verify=0, verify_seed=None, max_batch_bytes=64 << 20, max_jobs=None,
                 table_window_bits=CARD_TABLE_WINDOW_BITS):
        super().__init__()
        if (transport is None) == (open_transport is None):
            raise TypeError("give a transport or open_transport=, not both or neither")
        if open_transport is not None and not widths:
            raise TypeError("open_transport= needs the kernel widths it can open (widths=)")
        if name is not None:
            self.name = name
        self.timeout = float(timeout)
        if isinstance(verify, bool) or not isinstance(verify, (int, float)) or verify < 0 \
                or (isinstance(verify, float) and verify > 1):
            raise ValueError(f"verify must be a fraction in [0, 1] or a count >= 0, not {verify!r}")
        self.verify = verify
        self._vrng = random.Random(secrets.randbits(64) if verify_seed is None else verify_seed)
        self.max_batch_bytes = int(max_batch_bytes)
        self.max_jobs = min(int(max_jobs or _TAGS), _TAGS)
        if isinstance(table_window_bits, bool) or not isinstance(table_window_bits, int) \
                or not 1 <= table_window_bits <= LAYOUT.table_index_bits:
            raise ValueError(f"table_window_bits must be an integer in [1, "
                             f"{LAYOUT.table_index_bits}], not {table_window_bits!r}")
        self.table_window_bits = table_window_bits
        self._open = open_transport
        #: Kernel widths to choose from (``(None,)``: one card, opened with the transport given).
        self.widths = (None,) if transport is not None else tuple(sorted(int(w) for w in widths))
        #: width -> :class:`Card`, the cards opened so far.
        self.cards = {} if transport is None else {None: Card(transport)}
        # "cycles": kernel cycles from the result headers (the key every device
        # backend reports); "device_cycles" is the same number, spelled out.
        self.stats.update({"batches": 0, "cycles": 0, "device_cycles": 0, "verified": 0,
                           "table_uploads": 0,
                           "host_s": {"constants": 0.0, "table": 0.0, "pack": 0.0, "sync_to": 0.0,
                                      "run": 0.0, "sync_from": 0.0, "unpack": 0.0, "verify": 0.0}})

    # --- cards ------------------------------------------------------------

    def card_for(self, modulus):
        """The :class:`Card` that runs ``modulus`` (opened now if it is not yet).

        With one transport, its card. With ``open_transport``, the narrowest
        of :attr:`widths` that holds the modulus: a kernel pads every modulus
        to its own width, so a right-sized one saves cycles.

        Raises
        ------
        ModulusError
            Wider than the widest kernel.
        DeviceError
            The accelerator was closed.
        """
        if self._open is None:
            card = self.cards.get(None)
            if card is None:
                raise DeviceError(f"the {self.name} accelerator was closed")
            return card
        bits = modulus.bit_length()
        for width in self.widths:
            # A kernel of width L holds moduli up to w·s − 2 ≥ L bits.
            if bits <= width:
                if width not in self.cards:
                    self.cards[width] = Card(self._open(width))
                return self.cards[width]
        raise ModulusError(f"the {bits}-bit modulus is wider than the largest {self.name} kernel "
                           f"({self.widths[-1]} bits)")

    def _single(self):
        return next(iter(self.cards.values())) if len(self.cards) == 1 else None

    @property
    def hw(self):
        """:class:`HardwareConfig` of the only card opened (``None`` with none or several)."""
        card = self._single()
        return None if card is None else card.hw

    @property
    def transport(self):
        """Transport of the only card opened (``None`` with none or several)."""
        card = self._single()
        return None if card is None else card.transport

    # --- constants ------------------------------------------------------

    def constants(self, modulus):
        """Montgomery constants of ``modulus`` for the card that runs it (cached, LRU of 32)."""
        return self._target(modulus).mont

    def _target(self, modulus):
        card = self.card_for(modulus)
        cache = card.constants
        c = cache.get(modulus)
        if c is not None:
            cache.move_to_end(modulus)
            return _Target(card, c)
        hw = card.hw
        if modulus.bit_length() > hw.max_modulus_bits:
            raise ModulusError(f"the {modulus.bit_length()}-bit modulus is wider than this device's "
                               f"{hw.max_modulus_bits}-bit limit "
                               f"({hw.words} words of {hw.word_bits} bits)")
        t = time.perf_counter()
        c = mont_constants(modulus, hw.word_bits, hw.words)
        self.stats["host_s"]["constants"] += time.perf_counter() - t
        cache[modulus] = c
        if len(cache) > 32:
            cache.popitem(last=False)
        return _Target(card, c)

    def declared_exp_bits(self, max_bits):
        """Declared POWMOD length on the only card (see :meth:`HardwareConfig.declared_exp_bits`)."""
        return self.hw.declared_exp_bits(max_bits)

    # --- Accelerator hooks -----------------------------------------------

    def powmod(self, bases, exps, modulus, *, exp_bits=None):
        """``[b^e mod modulus ...]`` (:meth:`Accelerator.powmod`), with a declared exponent length.

        Parameters
        ----------
        exp_bits : int, optional
            Declared length of every exponent, for secret exponents: taken
            from the key size, never from the values, so the card's cycles
            (and the number of device batches) say nothing about them. Every
            exponent must be below ``2^exp_bits``. Omitted, the length is
            the longest exponent's (fine for public exponents).
        """
        if exp_bits is None:
            return super().powmod(bases, exps, modulus)
        if isinstance(exp_bits, bool) or not isinstance(exp_bits, int) or exp_bits < 1:
            raise OperandRangeError(f"exp_bits must be a positive integer, not {exp_bits!r}")
        modulus = validate_modulus(modulus)
        bases = validate_operands(bases, modulus, "base")
        exps = validate_exponents(exps)
        if len(bases) != len(exps):
            raise OperandRangeError(f"{len(bases)} bases but {len(exps)} exponents")
        for i, e in enumerate(exps):
            if e >> exp_bits:
                raise OperandRangeError(f"exponent {i} has {e.bit_length()} bits, more than the "
                                        f"declared {exp_bits}")
        return self._dispatch(self._powmod, bases, exps, modulus, exp_bits)

    def _powmod(self, bases, exps, modulus, exp_bits=None, *, secret=False):
        t = self._target(modulus)
        longest = exp_bits if exp_bits is not None else max(e.bit_length() for e in exps)
        if longest <= t.hw.max_exp_bits:
            out = self._powmod_direct(bases, exps, t, longest)
        else:
            out = self._powmod_split(bases, exps, t, longest)
        self._verify("powmod_secret" if secret else "powmod", (bases, exps), out, modulus)
        return out

    def _powmod_secret(self, bases, exps, modulus, exp_bits):
        # The card's schedule is fixed by the declared length, which comes
        # from the key size (Accelerator.powmod_secret), never the values.
        return self._powmod(bases, exps, modulus, exp_bits, secret=True)

    def _pack(self, values, words, t):
        """:func:`pack_words` with the card's word width, timed as ``pack``."""
        t0 = time.perf_counter()
        out = pack_words(values, t.hw.word_bits, words)
        self.stats["host_s"]["pack"] += time.perf_counter() - t0
        return out

    def _powmod_direct(self, bases, exps, t, bits):
        """One POWMOD batch whose exponents are declared ``bits`` long (rounded to the window)."""
        count = t.hw.declared_exp_bits(bits)
        elimbs = -(-count // t.hw.word_bits)
        body = np.concatenate([self._pack(bases, t.hw.words, t), self._pack(exps, elimbs, t)], axis=1)
        return self._run_uniform(_POWMOD, count, body, t)

    def _powmod_split(self, bases, exps, t, longest):
        # b^e with e = Σ d_i 2^(m·i), digits of m bits, most significant first:
        # acc = b^d_top; then acc = acc^(2^m) · b^d_i. 2^m needs m + 1 bits, so
        # m = limit - 1 keeps every declared length within the hardware's limit.
        # Every digit is declared m bits long and their number follows from
        # ``longest`` (the declared length when one was given).
        m = t.hw.max_exp_bits - 1
        if m < 1:
            raise OperandRangeError(f"exponents of {longest} bits exceed this device's "
                                    f"{t.hw.max_exp_bits}-bit limit")
        digits = -(-longest // m)
        mask = (1 << m) - 1
        acc = None
        for i in reversed(range(digits)):
            d = [(e >> (m * i)) & mask for e in exps]
            part = self._powmod_direct(bases, d, t, m)
            if acc is None:
                acc = part
            else:
                acc = self._powmod_direct(acc, [1 << m] * len(acc), t, m + 1)
                acc = self._mulmod_direct(acc, part, t)
        return acc

    def _mulmod(self, a, b, modulus):
        out = self._mulmod_direct(a, b, self._target(modulus))
        self._verify("mulmod", (a, b), out, modulus)
        return out

    def _mulmod_direct(self, a, b, t):
        s = t.hw.words
        body = np.concatenate([self._pack(a, s, t), self._pack(b, s, t)], axis=1)
        return self._run_uniform(_MULMOD, 2, body, t)

    def _product(self, groups, modulus):
        out = self._product_direct(groups, self._target(modulus))
        self._verify("product", (groups,), out, modulus)
        return out

    def _product_direct(self, groups, t):
        s = t.hw.words
        # The count field bounds K; longer groups are reduced in chunks first.
        while any(len(g) > _COUNT_MAX for g in groups):
            chunks, where = [], []
            for i, g in enumerate(groups):
                for j in range(0, len(g), _COUNT_MAX):
                    chunks.append(g[j:j + _COUNT_MAX])
                    where.append(i)
            partial = self._product_direct(chunks, t)
            regrouped = [[] for _ in groups]
            for i, p in zip(where, partial):
                regrouped[i].append(p)
            groups = regrouped
        ks = {len(g) for g in groups}
        if len(ks) == 1:
            # The usual aggregation: every slot has K factors, one dense block.
            k = ks.pop()
            flat = [x for g in groups for x in g]
            return self._run_uniform(_PRODUCT, k, self._pack(flat, s, t).reshape(len(groups), k * s), t)
        jobs = [(_PRODUCT, len(g), self._pack(g, s, t).reshape(-1)) for g in groups]
        return self._run_jobs(jobs, t)

    def _fixed_base(self, exps, table, factors):
        t = self._target(table.modulus)
        ct = self._card_table(t, table) if t.hw.has("table_product") else None
        if ct is None:
            # No TABLE_PRODUCT on this kernel, or no room for the table: product jobs.
            return super()._fixed_base(exps, table, factors)
        out = self._fixed_base_direct(exps, factors, _Target(t.card, t.mont, ct))
        self._verify("fixed_base", (exps, factors, table), out, table.modulus)
        return out

    def card_window_bits(self, exp_bits, hw=None):
        """The window of the card's table for ``exp_bits``-bit exponents (``None``: none fits).

        :attr:`table_window_bits`, lowered until the table's ``W·2^k``
        entries fit the 16-bit indices, or raised (to at most 16) until
        ``W`` is within the kernel's ``hw_table_max``.
        """
        hw = hw or self.hw
        limit = hw.table_max if hw is not None else LAYOUT.table_product_max

        def fits(k):
            return (windows(exp_bits, k) << k <= 1 << LAYOUT.table_index_bits
                    and windows(exp_bits, k) <= limit)

        k = self.table_window_bits
        while k > 1 and windows(exp_bits, k) << k > 1 << LAYOUT.table_index_bits:
            k -= 1
        while k < LAYOUT.table_index_bits and windows(exp_bits, k) > limit:
            k += 1
        return k if fits(k) else None

    def _card_table(self, t, table):
        """The card's copy of ``table`` (uploaded now if it is not yet); ``None`` if it cannot hold it."""
        card = t.card
        k = self.card_window_bits(table.exp_bits, t.hw)
        if k is None:
            return None
        key = (table.base, table.modulus, table.exp_bits, k)
        ct = card.tables.get(key)
        if ct is not None:
            card.tables.move_to_end(key)
            return ct
        t0 = time.perf_counter()
        mine = table if table.k == k else build_table(table.base, table.modulus, table.exp_bits, k)
        hw, m = t.hw, table.modulus
        r_bits = hw.word_bits * hw.words
        mont = [(v << r_bits) % m for row in mine.rows for v in row]
        limbs = pack_words(mont, hw.word_bits, hw.words).astype("<u8", copy=False)
        tr = card.transport
        try:
            buf = tr.alloc(card.beat_bytes(limbs.nbytes))
        except DeviceError:
            return None
        tr.write(buf, limbs.data)
        tr.sync_to_device(buf)
        ct = CardTable(mine, buf)
        card.tables[key] = ct
        if len(card.tables) > _TABLES_PER_CARD:
            _, old = card.tables.popitem(last=False)
            tr.free(old.buffer)
        self.stats["table_uploads"] += 1
        self.stats["host_s"]["table"] += time.perf_counter() - t0
        return ct

    def _fixed_base_direct(self, exps, factors, t):
        """TABLE_PRODUCT jobs: per exponent its factor (1 if none) and its ``W`` entry indices."""
        tab, s = t.table.table, t.hw.words
        W, k = tab.windows, tab.k
        n = len(exps)
        t0 = time.perf_counter()
        if k == 8:
            digits = np.frombuffer(b"".join(e.to_bytes(W, "little") for e in exps),
                                   dtype=np.uint8).reshape(n, W).astype(np.uint64)
        else:
            mask = (1 << k) - 1
            digits = np.array([[(e >> (k * i)) & mask for i in range(W)] for e in exps],
                              dtype=np.uint64).reshape(n, W)
        # Flat index i·2^k + d_i; p 16-bit indices to a limb, the first lowest.
        idx = digits + (np.arange(W, dtype=np.uint64) << np.uint64(k))
        per, b = LAYOUT.indices_per_limb(t.hw.word_bits), LAYOUT.table_index_bits
        idx = np.concatenate([idx, np.zeros((n, -W % per), dtype=np.uint64)], axis=1)
        idx = idx.reshape(n, -1, per)
        ilimbs = np.zeros(idx.shape[:2], dtype=np.uint64)
        for j in range(per):
            ilimbs |= idx[:, :, j] << np.uint64(b * j)
        self.stats["host_s"]["pack"] += time.perf_counter() - t0
        f = [1] * n if factors is None else factors
        body = np.concatenate([self._pack(f, s, t), ilimbs], axis=1)
        return self._run_uniform(_TABLE, W, body, t)

    # --- batches -----------------------------------------------------------

    def _run_uniform(self, op, count, body, t):
        """Jobs of one op and count whose operand limbs are the rows of ``body``."""
        return self._run_jobs([(op, count, row) for row in body], t, uniform=(op, count, body))

    def _run_jobs(self, jobs, t, uniform=None):
        """Split ``jobs`` into runs that fit the limits; results in job order."""
        hw = t.hw
        fixed = LAYOUT.header_limbs + LAYOUT.constants_limbs(hw.words)
        budget = max(1, self.max_batch_bytes // _LIMB_BYTES - fixed)
        out, start = [], 0
        while start < len(jobs):
            end, limbs = start, 0
            while end < len(jobs) and end - start < self.max_jobs:
                n = 1 + LAYOUT.job_operand_limbs(jobs[end][0], jobs[end][1], hw.words, hw.word_bits)
                if limbs and limbs + n > budget:
                    break
                limbs += n
                end += 1
            if uniform is not None:
                op, count, body = uniform
                out += self._run_batch_uniform(op, count, body[start:end], t)
            else:
                out += self._run_batch(jobs[start:end], t)
            start = end
        return out

    def _header(self, t, jobs, stream_limbs):
        hw, c = t.hw, t.mont
        hdr = [0] * LAYOUT.header_limbs
        d = LAYOUT.desc
        hdr[d.index("magic")] = LAYOUT.magic_word
        hdr[d.index("jobs")] = jobs
        hdr[d.index("words")] = hw.words
        hdr[d.index("word_bits")] = hw.word_bits
        hdr[d.index("nprime")] = c.nprime
        hdr[d.index("stream_limbs")] = stream_limbs
        hdr[d.index("table_entries")] = 0 if t.table is None else t.table.entries
        consts = {"n": c.n, "r2_mod_n": c.r2_mod_n, "r_mod_n": c.r_mod_n}
        k = pack_words([consts[name] for name in LAYOUT.constants], hw.word_bits, hw.words)
        return np.concatenate([np.array(hdr, dtype=np.uint64), k.reshape(-1)])

    def _tag_headers(self, op, counts, n):
        tags = np.arange(n, dtype=np.uint64)
        f = {name: LAYOUT.job_field(name) for name in ("op", "tag", "count")}
        return ((np.uint64(op) << np.uint64(f["op"].lsb)) | (tags << np.uint64(f["tag"].lsb))
                | (np.asarray(counts, dtype=np.uint64) << np.uint64(f["count"].lsb)))

    def _run_batch_uniform(self, op, count, body, t):
        t0 = time.perf_counter()
        n = len(body)
        heads = self._tag_headers(op, [count] * n, n)
        stream = np.concatenate([heads[:, None], body], axis=1).reshape(-1)
        desc = np.concatenate([self._header(t, n, stream.size), stream])
        self.stats["host_s"]["pack"] += time.perf_counter() - t0
        return self._execute(desc, n, t)

    def _run_batch(self, jobs, t):
        t0 = time.perf_counter()
        n = len(jobs)
        heads = self._tag_headers(0, [count for _, count, _ in jobs], n)
        heads |= np.array([op for op, _, _ in jobs], dtype=np.uint64) << np.uint64(LAYOUT.job_field("op").lsb)
        parts = []
        for h, (_, _, limbs) in zip(heads, jobs):
            parts.append(h.reshape(1))
            parts.append(limbs)
        stream = np.concatenate(parts)
        desc = np.concatenate([self._header(t, n, stream.size), stream])
        self.stats["host_s"]["pack"] += time.perf_counter() - t0
        return self._execute(desc, n, t)

    def _execute(self, desc, jobs, t):
        """One device run of a packed descriptor on ``t.card``; returns the ``jobs`` results."""
        card, hs = t.card, self.stats["host_s"]
        t0 = time.perf_counter()
        rbuf, rbytes = self._send(card, desc, jobs)
        t1 = time.perf_counter()
        tr = card.transport
        table = card.null_pointer() if t.table is None else t.table.buffer
        tr.start(desc=card.buffers["desc"], result=rbuf, table=table)
        try:
            tr.wait(self.timeout)
        except DeviceError:
            # Leave the device usable for the next call (or at least idle).
            tr.abort()
            raise
        t2 = time.perf_counter()
        tr.sync_from_device(rbuf, rbytes)
        raw = np.frombuffer(tr.read(rbuf, rbytes), dtype="<u8")
        t3 = time.perf_counter()
        out = self._results(raw, jobs, t)
        t4 = time.perf_counter()
        hs["sync_to"] += t1 - t0
        hs["run"] += t2 - t1
        hs["sync_from"] += t3 - t2
        hs["unpack"] += t4 - t3
        return out

    def _send(self, card, desc, jobs):
        """Write and sync the descriptor and a cleared result header; the result buffer and its size."""
        tr = card.transport
        dbytes = desc.size * _LIMB_BYTES
        rbytes = LAYOUT.result_buffer_limbs(jobs, card.hw.words) * _LIMB_BYTES
        dbuf = card.buffer("desc", dbytes)
        rbuf = card.buffer("result", rbytes)
        tr.write(dbuf, desc.astype("<u8", copy=False).data)
        # A stale header from an earlier run must never pass for this run's.
        hdr_bytes = LAYOUT.result.limbs * _LIMB_BYTES
        tr.write(rbuf, bytes(hdr_bytes))
        # Buffers grow geometrically and are reused: move only the bytes in use.
        tr.sync_to_device(dbuf, dbytes)
        tr.sync_to_device(rbuf, hdr_bytes)
        return rbuf, rbytes

    def _results(self, raw, jobs, t):
        """Check a run's result header (counting its cycles, here only) and unpack its results."""
        r, s = LAYOUT.result, t.hw.words
        status = int(raw[r.index("status")])
        cycles = int(raw[r.index("cycles")])
        done = int(raw[r.index("jobs_done")])
        self.stats["batches"] += 1
        self.stats["cycles"] += cycles
        self.stats["device_cycles"] += cycles
        if status:
            docs = dict(LAYOUT.status_docs)
            flags = LAYOUT.decode_status(status)
            why = "; ".join(docs.get(f, f) for f in flags)
            raise DeviceStatusError(f"the device rejected the batch (status 0x{status:x}: {why})",
                                    status=status, flags=flags)
        if done != jobs:
            raise DeviceError(f"the device completed {done} of {jobs} jobs without an error status")
        out = unpack_words(raw[r.limbs:r.limbs + jobs * s].reshape(jobs, s), t.hw.word_bits)
        for i, v in enumerate(out):
            if v >= t.mont.n:
                raise DeviceError(f"the device returned a result >= the modulus for job {i} "
                                  "of the batch; the result buffer is corrupt")
        return out

    # --- verification ----------------------------------------------------

    def _sample(self, n):
        v = self.verify
        if not v or n == 0:
            return []
        k = n if (isinstance(v, float) and v >= 1.0) else (
            max(1, round(v * n)) if isinstance(v, float) else min(int(v), n))
        return sorted(self._vrng.sample(range(n), k))

    def _verify(self, kind, inputs, out, modulus):
        idx = self._sample(len(out))
        if not idx:
            return
        import gmpy2
        t = time.perf_counter()
        m = gmpy2.mpz(modulus)
        for i in idx:
            if kind == "powmod":
                want = gmpy2.powmod(inputs[0][i], inputs[1][i], m)
            elif kind == "powmod_secret":
                # A private-key exponent: recomputed in constant time too.
                want = powmod_sec_values([inputs[0][i]], [inputs[1][i]], m)[0]
            elif kind == "fixed_base":
                exps, factors, table = inputs
                want = gmpy2.powmod(table.base, exps[i], m)
                if factors is not None:
                    want = want * factors[i] % m
            elif kind == "mulmod":
                want = gmpy2.mpz(inputs[0][i]) * inputs[1][i] % m
            else:
                want = gmpy2.mpz(1)
                for x in inputs[0][i]:
                    want = want * x % m
            if int(want) != out[i]:
                raise VerificationError(f"{kind} result {i} of {len(out)} disagrees with the CPU "
                                        f"(checked {len(idx)} results); do not trust this device's output")
        self.stats["verified"] += len(idx)
        self.stats["host_s"]["verify"] += time.perf_counter() - t

    # --- lifetime ----------------------------------------------------------

    def close(self):
        """Close every card (their buffers and transports); a second call does nothing."""
        for card in self.cards.values():
            card.close()
        self.cards.clear()
