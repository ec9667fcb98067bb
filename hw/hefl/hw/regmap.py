"""The kernel's register map and buffer layout, defined once, as data.

Everything that needs a register offset, a field position or a descriptor
index reads it from here: the AXI4-Lite slave (:mod:`hefl.hw.axil_ctrl`),
the kernel top (:mod:`hefl.hw.kernel`), ``kernel.xml``
(:mod:`hefl.flows.kernel_xml`), the host driver and the docs. No offset is
typed anywhere else. (After OpenTitan's ``data/otbn.hjson``.)

This module is pure data: it imports neither Amaranth nor anything slow, so
the host runtime can import it on every call path.

Usage::

    from hefl.hw.regmap import REGMAP, LAYOUT

    REGMAP.reg("ctrl").offset                 # 0x00
    REGMAP.reg("ctrl").field("ap_done").mask  # 0x2
    for arg in REGMAP.args: ...               # desc, result, table (64-bit pointers)
    LAYOUT.desc.index("jobs")                 # 1
    LAYOUT.pack_job_header(LAYOUT.op("powmod"), tag=3, count=1024)

Control semantics (Vitis ``ap_ctrl_hs``)
---------------------------------------
* ``ctrl.ap_start``: the host writes 1; the kernel clears it when it accepts
  the start (the same cycle it pulses ``ap_ready``). Writing 0 has no effect.
  With ``ctrl.auto_restart`` set, acceptance leaves ``ap_start`` set.
* ``ctrl.ap_done``: set when a run has finished (all results and the result
  header written); cleared by a read of ``ctrl`` (clear-on-read).
* ``ctrl.ap_idle``: high whenever no run is in progress.
* ``ctrl.ap_ready``: set when the kernel accepts ``ap_start``; cleared by a
  read of ``ctrl`` (like ``ap_done``).
* ``gie`` bit 0 gates the ``interrupt`` output; ``ier`` selects which
  events (bit 0 done, bit 1 ready) set ``isr``; ``isr`` bits are toggled by
  writing 1 (the usual way to acknowledge them). ``interrupt = gie & |isr``.
"""

from dataclasses import dataclass
from dataclasses import field as _dc_field
from enum import Enum

__all__ = ["KERNEL_NAME", "Access", "Field", "Register", "Arg", "RegisterMap", "REGMAP",
           "LimbField", "HeaderLayout", "BufferLayout", "LAYOUT"]


#: The kernel's name: its Verilog top, its ``kernel.xml`` name and what the
#: host asks XRT for.
KERNEL_NAME = "hefl_kernel"


class Access(str, Enum):
    """How the host sees a register field (the hardware side follows)."""

    #: Host reads and writes; the hardware only reads it.
    RW = "rw"
    #: Host reads; the hardware drives it.
    RO = "ro"
    #: Host writes 1 to set; the hardware clears it (``ap_start``).
    W1S = "w1s"
    #: Set by a hardware event, cleared when the host reads the register.
    RC = "rc"
    #: Set by a hardware event, toggled by the host writing 1 (``isr``).
    TOW = "tow"


@dataclass(frozen=True)
class Field:
    """A bit field of a 32-bit register.

    Attributes
    ----------
    name : str
        Field name, unique within its register.
    lsb : int
        Position of the least significant bit.
    width : int
        Width in bits.
    access : Access
        Host-side semantics.
    doc : str
        One line for the docs.
    """

    name: str
    lsb: int
    width: int
    access: Access
    doc: str = ""

    @property
    def mask(self):
        """The field's bits within the register word."""
        return ((1 << self.width) - 1) << self.lsb

    def get(self, word):
        """Extract this field from a register word."""
        return (word >> self.lsb) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class Register:
    """A 32-bit register of the ``s_axi_control`` slave.

    Attributes
    ----------
    name : str
        Register name (unique), also the name of the matching RTL port.
    offset : int
        Byte offset, a multiple of 4.
    fields : tuple of Field
        The register's fields; a plain data register has one 32-bit field
        named like the register.
    doc : str
        One line for the docs.
    """

    name: str
    offset: int
    fields: tuple
    doc: str = ""

    def field(self, name):
        """The field called ``name``; :class:`KeyError` if there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"Register {self.name!r} has no field {name!r}")

    @property
    def access(self):
        """The access of a single-field register (``None`` for mixed ones)."""
        kinds = {f.access for f in self.fields}
        return kinds.pop() if len(kinds) == 1 else None


@dataclass(frozen=True)
class Arg:
    """A kernel argument as Vitis sees it (one entry of ``kernel.xml``).

    Attributes
    ----------
    name : str
        Argument name (``desc``, ``result``).
    offset : int
        Byte offset of its first (low) register.
    size : int
        Size in bytes (8 for a 64-bit pointer).
    type : str
        C type for ``kernel.xml`` (``void*`` for a buffer pointer).
    port : str
        The AXI port it addresses (``m_axi_gmem``) or ``s_axi_control`` for
        a scalar.
    registers : tuple of str
        Names of the 32-bit registers holding it, low word first.
    doc : str
        One line for the docs.
    required : bool
        A run needs it; an optional argument a host leaves out is 0 (a
        null pointer: the run does not use it).
    """

    name: str
    offset: int
    size: int
    type: str
    port: str
    registers: tuple
    doc: str = ""
    required: bool = True

    @property
    def is_pointer(self):
        return self.type.endswith("*")


@dataclass(frozen=True)
class RegisterMap:
    """An ordered collection of registers plus the kernel arguments.

    Iterating yields the registers in offset order.
    """

    registers: tuple
    args: tuple
    addr_bits: int = 12
    control_port: str = "s_axi_control"
    memory_port: str = "m_axi_gmem"
    _by_name: dict = _dc_field(default=None, repr=False, compare=False)

    def __post_init__(self):
        by_name = {}
        offsets = set()
        for r in self.registers:
            if r.name in by_name:
                raise ValueError(f"Duplicate register name {r.name!r}")
            if r.offset % 4 or r.offset in offsets or r.offset >= 1 << self.addr_bits:
                raise ValueError(f"Bad or duplicate offset {r.offset:#x} of register {r.name!r}")
            used = 0
            for f in r.fields:
                if f.lsb < 0 or f.width <= 0 or f.lsb + f.width > 32 or used & f.mask:
                    raise ValueError(f"Field {f.name!r} of {r.name!r} overlaps or leaves 32 bits")
                used |= f.mask
            by_name[r.name] = r
            offsets.add(r.offset)
        for a in self.args:
            regs = [by_name[n] for n in a.registers]
            if regs[0].offset != a.offset or len(regs) * 4 != a.size:
                raise ValueError(f"Argument {a.name!r} does not match its registers")
        object.__setattr__(self, "_by_name", by_name)

    def __iter__(self):
        return iter(sorted(self.registers, key=lambda r: r.offset))

    def __len__(self):
        return len(self.registers)

    def reg(self, name):
        """The register called ``name``; :class:`KeyError` if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"No register {name!r} in the kernel register map") from None

    def arg(self, name):
        """The kernel argument called ``name``."""
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"No kernel argument {name!r}")


def _word(name, offset, access, doc):
    return Register(name, offset, (Field(name, 0, 32, access, doc),), doc)


# HWCFG registers: the hardware's build parameters, read-only, so the host
# can check a descriptor's geometry before sending it. Values come from the
# kernel's constructor arguments (see hefl.hw.kernel). (name, offset, doc).
_HWCFG = (
    ("hw_word_bits", 0x20, "word width w of the BatchEngine"),
    ("hw_words", 0x24, "words per operand s (R = 2^(w*s))"),
    ("hw_lanes", 0x28, "number of ModExp lanes E"),
    ("hw_window_bits", 0x2C, "modexp window k"),
    ("hw_max_exp_bits", 0x30, "longest exponent a POWMOD job may declare"),
    ("hw_data_bits", 0x34, "m_axi_gmem data width DW"),
    ("hw_engines", 0x38, "sub-engines the lanes are split into (one per SLR on Alveo)"),
    ("hw_features", 0x3C, "feature bits (LAYOUT.features): job types beyond the first three"),
    ("hw_table_max", 0x4C, "most entries one TABLE_PRODUCT job may name (0: no TABLE_PRODUCT)"),
)

REGMAP = RegisterMap(
    registers=(
        Register("ctrl", 0x00, (
            Field("ap_start", 0, 1, Access.W1S, "start a run; cleared by the kernel on accept"),
            Field("ap_done", 1, 1, Access.RC, "run finished; clear-on-read"),
            Field("ap_idle", 2, 1, Access.RO, "no run in progress"),
            Field("ap_ready", 3, 1, Access.RC, "start accepted; clear-on-read"),
            Field("auto_restart", 7, 1, Access.RW, "keep ap_start set on accept"),
        ), "ap_ctrl_hs control and status"),
        Register("gie", 0x04, (
            Field("enable", 0, 1, Access.RW, "global interrupt enable"),
        ), "global interrupt enable"),
        Register("ier", 0x08, (
            Field("done", 0, 1, Access.RW, "interrupt on ap_done"),
            Field("ready", 1, 1, Access.RW, "interrupt on ap_ready"),
        ), "interrupt enable"),
        Register("isr", 0x0C, (
            Field("done", 0, 1, Access.TOW, "ap_done interrupt pending; write 1 to toggle"),
            Field("ready", 1, 1, Access.TOW, "ap_ready interrupt pending; write 1 to toggle"),
        ), "interrupt status"),
        _word("desc_lo", 0x10, Access.RW, "descriptor buffer address, bits 31:0"),
        _word("desc_hi", 0x14, Access.RW, "descriptor buffer address, bits 63:32"),
        _word("result_lo", 0x18, Access.RW, "result buffer address, bits 31:0"),
        _word("result_hi", 0x1C, Access.RW, "result buffer address, bits 63:32"),
        *(_word(name, off, Access.RO, doc) for name, off, doc in _HWCFG),
        _word("status", 0x40, Access.RO, "status flags of the last run (as in the result header)"),
        _word("cycles_lo", 0x44, Access.RO, "kernel cycles of the last run, bits 31:0"),
        _word("cycles_hi", 0x48, Access.RO, "kernel cycles of the last run, bits 63:32"),
        _word("table_lo", 0x50, Access.RW, "table buffer address, bits 31:0"),
        _word("table_hi", 0x54, Access.RW, "table buffer address, bits 63:32"),
    ),
    args=(
        Arg("desc", 0x10, 8, "void*", "m_axi_gmem", ("desc_lo", "desc_hi"),
            "job descriptor buffer (read)"),
        Arg("result", 0x18, 8, "void*", "m_axi_gmem", ("result_lo", "result_hi"),
            "result buffer (written)"),
        Arg("table", 0x50, 8, "void*", "m_axi_gmem", ("table_lo", "table_hi"),
            "table of Montgomery-form entries for TABLE_PRODUCT jobs (read; 0 when unused)",
            required=False),
    ),
)

#: Names of the read-only hardware-configuration registers, in offset order.
HWCFG_REGS = tuple(name for name, _, _ in _HWCFG)
__all__.append("HWCFG_REGS")


# --- buffer layout ----------------------------------------------------------

@dataclass(frozen=True)
class LimbField:
    """A bit field within one 64-bit limb (job header)."""

    name: str
    lsb: int
    width: int

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb

    def get(self, limb):
        return (limb >> self.lsb) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class HeaderLayout:
    """A buffer header: ``limbs`` 64-bit limbs, named ones at fixed indices."""

    names: tuple
    limbs: int = 8

    def index(self, name):
        """Limb index of header field ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"No header field {name!r}") from None


@dataclass(frozen=True)
class BufferLayout:
    """Descriptor and result buffer formats (little-endian 64-bit limbs).

    Descriptor at ``desc``::

        limb 0..7   header: magic | version<<32, jobs J, words s, word bits w,
                    N', stream limbs, table entries T, 0
        then        N, R^2 mod N, R mod N   (s limbs each, in this order)
        then        the job stream: per job one header limb
                    (op | tag<<2 | count<<18) and its operand limbs:
                    POWMOD s + ceil(count/w), MULMOD 2s, PRODUCT count*s,
                    TABLE_PRODUCT s + ceil(count/p) (see below).

    TABLE_PRODUCT (op 3) names ``count = W`` entries of the table at
    ``table`` instead of carrying them: its operand limbs are one plain
    factor ``f`` (``s`` limbs), then the ``W`` entry indices, 16 bits each,
    ``p = min(4, w // 16)`` to a limb (:meth:`BufferLayout.indices_per_limb`:
    they fit the limb's ``w``-bit word, which the kernel forwards as is),
    least significant first (unused high slots of the last limb are 0).
    Entry ``i`` is the ``s`` limbs at ``table + 8·s·i``, in Montgomery form
    (``T·R mod N``). Next to its lane, the sub-engine fetches the entries
    and hands the lane ``f`` and then the ``W`` entries, in index order, as
    one job of ``W + 1`` factors, whose result is ``f · Π T mod N``, plain
    (the lane's TABLE_PRODUCT: ``W`` MontMuls, no R² corrections).

    Result at ``result``::

        limb 0..7   status, cycles, jobs completed, the HWCFG registers
                    (two per limb, in REGMAP order, low word first), 0
        then        result of tag t at limb 8 + t*s (s limbs, value < N)

    Every w-bit word is zero-extended into a 64-bit limb. Both buffers must
    be 8-byte aligned (XRT buffers are 4 KiB aligned).

    The kernel rejects (status ``bad_job``) a job whose tag is not below J,
    whose count is out of range or that names a table entry not below T:
    POWMOD needs ``count <= hw_max_exp_bits`` (0 declares an empty
    exponent: result 1 mod N), MULMOD ``count == 2``, PRODUCT
    ``count >= 1``, TABLE_PRODUCT ``1 <= count <= hw_table_max`` and
    ``T >= 1``. J may be at most 2^16 (the tag width), T at most 2^16 (the
    index width).
    """

    limb_bits: int = 64
    magic: int = 0x4845464C  # "HEFL"
    version: int = 1
    desc: HeaderLayout = HeaderLayout(
        ("magic", "jobs", "words", "word_bits", "nprime", "stream_limbs", "table_entries",
         "reserved7"))
    result: HeaderLayout = HeaderLayout(
        ("status", "cycles", "jobs_done", "hwcfg0", "hwcfg1", "hwcfg2", "hwcfg3", "hwcfg4"))
    #: Constants following the descriptor header, in order (``const_wr_sel``).
    constants: tuple = ("n", "r2_mod_n", "r_mod_n")
    #: Job-header fields.
    job_fields: tuple = (LimbField("op", 0, 2), LimbField("tag", 2, 16), LimbField("count", 18, 16))
    #: Job opcodes (the BatchEngine's ``JobOp`` values).
    ops: tuple = (("powmod", 0), ("mulmod", 1), ("product", 2), ("table_product", 3))
    #: Operand limbs after each job type's header, for the docs.
    op_operands: tuple = (("powmod", "s + ceil(count / w)"), ("mulmod", "2s"),
                          ("product", "count · s"),
                          ("table_product",
                           "s (plain factor) + ceil(count / p), p = min(4, w // 16) 16-bit indices"))
    #: Bits of one TABLE_PRODUCT entry index (the table holds at most 2^16 entries).
    table_index_bits: int = 16
    #: Bits of ``hw_features``: what a kernel implements beyond POWMOD, MULMOD, PRODUCT.
    features: tuple = (("table_product", 1),)
    #: Result status flags (bit values).
    status_flags: tuple = (("bad_magic", 1), ("geometry", 2), ("bad_job", 4),
                           ("stream_length", 8), ("bus_error", 16))
    #: Status flag meanings, for error messages.
    status_docs: tuple = (
        ("bad_magic", "bad magic or version in the descriptor header"),
        ("geometry", "descriptor words s or word bits w differ from the hardware's"),
        ("bad_job", "a job has a bad op, tag or count"),
        ("stream_length", "the job stream's length differs from the header's stream_limbs"),
        ("bus_error", "a memory read or write returned an AXI error response"),
    )

    @property
    def limb_bytes(self):
        """Bytes per limb: the unit of every buffer address and size."""
        return self.limb_bits // 8

    @property
    def magic_word(self):
        """Descriptor header limb 0."""
        return self.magic | (self.version << 32)

    @property
    def header_limbs(self):
        return self.desc.limbs

    def job_field(self, name):
        for f in self.job_fields:
            if f.name == name:
                return f
        raise KeyError(f"No job-header field {name!r}")

    def op(self, name):
        """Opcode of job type ``name`` (``powmod``, ``mulmod``, ``product``, ``table_product``)."""
        return dict(self.ops)[name]

    def feature(self, name):
        """Bit of feature ``name`` in the ``hw_features`` register."""
        return dict(self.features)[name]

    def indices_per_limb(self, word_bits):
        """TABLE_PRODUCT entry indices per limb: as many 16-bit ones as fit a ``w``-bit word (≤ 4).

        0 when ``w < 16``: such a kernel has no TABLE_PRODUCT.
        """
        return min(self.limb_bits, word_bits) // self.table_index_bits

    @property
    def table_product_max(self):
        """Most entries a TABLE_PRODUCT job can name at all: its lane job has ``count + 1`` factors.

        A kernel's own limit, ``hw_table_max``, is lower (its index buffers).
        """
        return (1 << self.job_field("count").width) - 2

    def pack_indices(self, indices, word_bits):
        """The limbs carrying TABLE_PRODUCT entry ``indices`` (:meth:`indices_per_limb`, first lowest)."""
        b, per = self.table_index_bits, self.indices_per_limb(word_bits)
        if per < 1:
            raise ValueError(f"{word_bits}-bit words hold no {b}-bit table index")
        limbs = []
        for j in range(0, len(indices), per):
            limb = 0
            for i, x in enumerate(indices[j:j + per]):
                if not 0 <= x < 1 << b:
                    raise ValueError(f"Table index {x} does not fit {b} bits")
                limb |= x << (b * i)
            limbs.append(limb)
        return limbs

    def unpack_indices(self, limbs, count, word_bits):
        """The first ``count`` entry indices of TABLE_PRODUCT index ``limbs``."""
        b, per = self.table_index_bits, self.indices_per_limb(word_bits)
        return [(limbs[i // per] >> (b * (i % per))) & ((1 << b) - 1) for i in range(count)]

    def pack_hwcfg(self, values):
        """Result-header limbs ``hwcfg0..4`` from HWCFG register values by name."""
        words = [int(values.get(n, 0)) & 0xFFFFFFFF for n in HWCFG_REGS]
        words += [0] * (-len(words) % 2)
        return [words[i] | words[i + 1] << 32 for i in range(0, len(words), 2)]

    def unpack_hwcfg(self, limbs):
        """HWCFG register values by name from the result header's ``hwcfg0..4`` limbs."""
        words = [w for limb in limbs for w in (int(limb) & 0xFFFFFFFF, int(limb) >> 32)]
        return dict(zip(HWCFG_REGS, words))

    @property
    def hwcfg_limbs(self):
        """Result-header indices of the HWCFG limbs, in order."""
        return tuple(self.result.index(f"hwcfg{i}") for i in range(-(-len(HWCFG_REGS) // 2)))

    def status_flag(self, name):
        return dict(self.status_flags)[name]

    def decode_status(self, status):
        """Names of the flags set in a status word (unknown bits as ``bitN``)."""
        names = [n for n, bit in self.status_flags if status & bit]
        known = sum(bit for _, bit in self.status_flags)
        names += [f"bit{i}" for i in range(self.limb_bits) if (status & ~known) >> i & 1]
        return names

    def pack_job_header(self, op, tag, count):
        """One job-header limb; raises :class:`ValueError` if a field overflows."""
        limb = 0
        for f, v in zip(self.job_fields, (op, tag, count)):
            if not 0 <= v < 1 << f.width:
                raise ValueError(f"Job {f.name} {v} does not fit {f.width} bits")
            limb |= v << f.lsb
        return limb

    def unpack_job_header(self, limb):
        """``(op, tag, count)`` of a job-header limb."""
        return tuple(f.get(limb) for f in self.job_fields)

    def job_operand_limbs(self, op, count, words, word_bits):
        """Operand limbs that follow a job header (not counting the header)."""
        if op == self.op("powmod"):
            return words + -(-count // word_bits)
        if op == self.op("mulmod"):
            return 2 * words
        if op == self.op("product"):
            return count * words
        if op == self.op("table_product"):
            return words + -(-count // self.indices_per_limb(word_bits))
        raise ValueError(f"Unknown job op {op}")

    def constants_limbs(self, words):
        return len(self.constants) * words

    def result_limb(self, tag, words):
        """Limb index in the result buffer where the result of ``tag`` starts."""
        return self.result.limbs + tag * words

    def result_buffer_limbs(self, jobs, words):
        return self.result.limbs + jobs * words


LAYOUT = BufferLayout()
