"""The board link's framed protocol, defined once: constants, CRC-8 and the frame codec.

Pure Python (no Amaranth): the gateware (:mod:`hefl.hw.link`) takes its
constants from here, and the host (:mod:`hefl.transport.serial`) and the
tests encode requests and decode replies with the functions below. Nothing
else types a command code, a status value or a field width.

Frames (all multi-byte fields little-endian)::

    request  SYNC | CMD | ADDR[4] | LEN[2] | HCRC | PAYLOAD | PCRC
    reply    SYNC | CMD | STATUS  | LEN[2] | HCRC | PAYLOAD | PCRC

* ``HCRC`` is the CRC-8 of the header bytes after ``SYNC`` (``CMD`` to
  ``LEN``), so a corrupted address or length is rejected before a single
  payload byte is acted on. ``PAYLOAD`` and ``PCRC`` are present only when
  the frame carries data (``LEN`` units of :data:`UNIT_BYTES` each);
  ``PCRC`` is the CRC-8 of the payload alone.
* ``LEN`` counts units: limbs (:data:`hefl.hw.regmap.LAYOUT`, 64 bits) for
  the memory commands, 32-bit registers for the register commands (always 1).
* Memory addresses are limb indices into the board's on-chip memory (the
  kernel's byte address of limb ``i`` is ``i · LAYOUT.limb_bytes``); register
  addresses are the byte offsets of :data:`hefl.hw.regmap.REGMAP`.

Commands and their replies:

==============  ======================================  =========================
command         request payload                         reply payload (status OK)
==============  ======================================  =========================
``INFO``        none (ADDR = LEN = 0)                   1 limb: see :func:`parse_info`
``READ_MEM``    none                                    LEN limbs from ADDR
``WRITE_MEM``   LEN limbs, written at ADDR after PCRC   none
``READ_REG``    none (LEN = 1)                          the 32-bit register
``WRITE_REG``   one 32-bit word (LEN = 1)               none
==============  ======================================  =========================

Errors: the reply carries the request's command byte (or 0 when none was
received), a non-zero status and no payload. A request with a bad header
checksum, an unknown command or an out-of-range address/length is
**drained**: the device ignores bytes until the line has been quiet for its
timeout, then replies, so stray payload bytes are never taken for a new
frame. A request cut short (no byte for the timeout) gets ``TIMEOUT``.

Writes take effect only after both checksums matched: **a frame whose
header or payload CRC fails, or that is cut short, writes nothing**. The
device holds a ``WRITE_MEM`` payload in a write buffer until its ``PCRC``
has been checked, then copies it to memory and replies; so a ``WRITE_MEM``
carries at most the buffer's size, ``max_write_len`` limbs (reported by
``INFO``; :data:`WRITE_BUFFER_LIMBS` on the boards built here), and a
longer one is drained and answered ``BAD_RANGE`` like any out-of-range
length. A ``WRITE_REG`` is
applied after its payload checksum matched, likewise. A write refused for a
checksum or a timeout can therefore be repeated as it is.
"""

import struct
from dataclasses import dataclass
from enum import IntEnum

from hefl.hw.regmap import LAYOUT

__all__ = ["SYNC", "Cmd", "Status", "UNIT_BYTES", "HEADER_BYTES", "REPLY_HEADER_BYTES", "MAX_LEN",
           "WRITE_BUFFER_LIMBS", "MAX_WRITE_BUFFER_LIMBS", "VERSION", "CRC_POLY", "crc8",
           "encode_request", "Reply", "ReplyParser", "info_payload", "parse_info",
           "STATUS_DOCS", "WRITES"]

#: First byte of every frame.
SYNC = 0xA5
#: Protocol version returned by ``INFO``. 2: WRITE_MEM buffered until its PCRC
#: matched (nothing written for a bad frame), ``max_write_len`` in ``INFO``.
VERSION = 2
#: CRC-8 generator x^8 + x^2 + x + 1 (CRC-8/SMBUS: init 0, no reflection, no xor-out).
CRC_POLY = 0x07
#: Request bytes after SYNC up to and including HCRC: CMD, ADDR[4], LEN[2], HCRC.
HEADER_BYTES = 8
#: Reply bytes after SYNC up to and including HCRC: CMD, STATUS, LEN[2], HCRC.
REPLY_HEADER_BYTES = 5
#: Largest LEN a frame may carry (the 16-bit field).
MAX_LEN = 0xFFFF
#: Limbs of the device's WRITE_MEM buffer (one block RAM of 64-bit limbs):
#: the default ``max_write_len`` of :class:`hefl.hw.link.Link`.
WRITE_BUFFER_LIMBS = 64
#: Largest ``max_write_len`` the ``INFO`` reply can report (its one-byte field).
MAX_WRITE_BUFFER_LIMBS = 0xFF


class Cmd(IntEnum):
    """Command codes (the ``CMD`` byte)."""

    INFO = 0x01
    READ_MEM = 0x02
    WRITE_MEM = 0x03
    READ_REG = 0x04
    WRITE_REG = 0x05


class Status(IntEnum):
    """Reply status codes (the ``STATUS`` byte)."""

    OK = 0x00
    BAD_CRC = 0x01       # header or payload checksum mismatch
    TIMEOUT = 0x02       # request truncated: no byte for the device's timeout
    BAD_CMD = 0x03       # unknown command byte
    BAD_RANGE = 0x04     # address/length outside memory, LEN 0 or > max (WRITE_MEM: max_write_len),
                         # register LEN != 1 or unaligned
    BUS_ERROR = 0x05     # the register bus answered with an error response


#: One line per status, for error messages.
STATUS_DOCS = {
    Status.OK: "ok",
    Status.BAD_CRC: "checksum mismatch (header or payload)",
    Status.TIMEOUT: "request truncated (the device timed out waiting for bytes)",
    Status.BAD_CMD: "unknown command",
    Status.BAD_RANGE: "address or length out of range",
    Status.BUS_ERROR: "register bus error response",
}

_LIMB, _REG = LAYOUT.limb_bytes, 4
#: Bytes per LEN unit, by command.
UNIT_BYTES = {Cmd.INFO: _LIMB, Cmd.READ_MEM: _LIMB, Cmd.WRITE_MEM: _LIMB,
              Cmd.READ_REG: _REG, Cmd.WRITE_REG: _REG}

#: Commands whose request carries the payload (the others' reply does).
WRITES = frozenset({Cmd.WRITE_MEM, Cmd.WRITE_REG})


def _crc_table():
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = ((c << 1) ^ CRC_POLY) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return tuple(table)


_TABLE = _crc_table()


def crc8(data, crc=0):
    """CRC-8 (poly 0x07, init ``crc``) of ``data`` (bytes-like)."""
    for b in bytes(data):
        crc = _TABLE[crc ^ b]
    return crc


def _header(cmd, mid, length):
    # mid: ADDR (4 bytes) for requests, STATUS (1 byte) for replies.
    body = bytes([cmd]) + mid + struct.pack("<H", length)
    return bytes([SYNC]) + body + bytes([crc8(body)])


def _payload(data):
    return bytes(data) + bytes([crc8(data)]) if data else b""


def encode_request(cmd, addr=0, length=0, payload=b""):
    """Bytes of one request frame.

    Parameters
    ----------
    cmd : Cmd or int
        Command code (any byte; unknown ones are useful in tests).
    addr : int
        Limb index (memory) or register byte offset.
    length : int
        LEN field, in units of :data:`UNIT_BYTES`.
    payload : bytes
        Write data; its length must be ``length`` units for the write commands.
    """
    if not 0 <= addr < 1 << 32 or not 0 <= length <= MAX_LEN:
        raise ValueError(f"address {addr} or length {length} does not fit the frame")
    if cmd in WRITES and len(payload) != length * UNIT_BYTES[Cmd(cmd)]:
        raise ValueError(f"{Cmd(cmd).name} of {length} units needs "
                         f"{length * UNIT_BYTES[Cmd(cmd)]} payload bytes, not {len(payload)}")
    return _header(cmd, struct.pack("<I", addr), length) + _payload(payload)


@dataclass(frozen=True)
class Reply:
    """A decoded reply frame."""

    cmd: int
    status: int
    payload: bytes

    @property
    def ok(self):
        return self.status == Status.OK

    def describe(self):
        """``STATUS_NAME (meaning)`` for error messages."""
        try:
            st = Status(self.status)
            return f"{st.name} ({STATUS_DOCS[st]})"
        except ValueError:
            return f"unknown status 0x{self.status:02x}"


class ReplyParser:
    """Incremental decoder of reply frames (bytes in any chunking).

    ``feed(data)`` returns the list of complete :class:`Reply` objects. A
    reply whose checksum does not match raises :class:`ValueError` (the
    caller turns that into a typed link error); bytes before ``SYNC`` are
    skipped.
    """

    def __init__(self):
        self._buf = bytearray()

    def missing(self):
        """Bytes still needed to complete the next reply (at least 1)."""
        buf = self._buf
        i = buf.find(SYNC)
        if i < 0:
            return 1 + REPLY_HEADER_BYTES
        h = REPLY_HEADER_BYTES
        have = len(buf) - i
        if have < 1 + h:
            return 1 + h - have
        cmd, status = buf[i + 1], buf[i + 2]
        (length,) = struct.unpack("<H", bytes(buf[i + 3:i + 5]))
        nbytes = 0
        if status == Status.OK and length and cmd in set(Cmd) and cmd not in WRITES:
            nbytes = length * UNIT_BYTES[Cmd(cmd)] + 1
        return max(1, 1 + h + nbytes - have)

    def feed(self, data):
        self._buf += data
        out = []
        while True:
            i = self._buf.find(SYNC)
            if i < 0:
                self._buf.clear()
                return out
            del self._buf[:i]
            h = REPLY_HEADER_BYTES
            if len(self._buf) < 1 + h:
                return out
            head = bytes(self._buf[1:h])
            if crc8(head) != self._buf[h]:
                del self._buf[:1]
                raise ValueError("reply header checksum mismatch")
            cmd, status = head[0], head[1]
            (length,) = struct.unpack("<H", head[2:4])
            nbytes = 0
            if status == Status.OK and length and cmd in set(Cmd) and cmd not in WRITES:
                nbytes = length * UNIT_BYTES[Cmd(cmd)]
            total = 1 + h + (nbytes + 1 if nbytes else 0)
            if len(self._buf) < total:
                return out
            payload = bytes(self._buf[1 + h:1 + h + nbytes])
            if nbytes and crc8(payload) != self._buf[total - 1]:
                del self._buf[:total]
                raise ValueError("reply payload checksum mismatch")
            del self._buf[:total]
            out.append(Reply(cmd, status, payload))


#: The ``INFO`` reply limb: version, max_write_len, max_len, mem_limbs.
_INFO = struct.Struct("<BBHI")


def info_payload(*, mem_limbs, max_len, max_write_len):
    """The ``INFO`` reply limb: version, largest WRITE_MEM LEN, largest LEN, memory size in limbs.

    The gateware (:class:`hefl.hw.link.Link`) answers with it; :func:`parse_info`
    reads it back: one definition of the layout for both sides.

    Parameters
    ----------
    mem_limbs : int
        Size of the board memory in limbs (32-bit field).
    max_len : int
        Largest LEN of a memory command (at most :data:`MAX_LEN`).
    max_write_len : int
        Largest LEN of a ``WRITE_MEM``: the write buffer's size (at most
        :data:`MAX_WRITE_BUFFER_LIMBS` and ``max_len``).
    """
    if not 1 <= max_write_len <= min(max_len, MAX_WRITE_BUFFER_LIMBS):
        raise ValueError(f"max_write_len {max_write_len} outside 1..min(max_len {max_len}, "
                         f"{MAX_WRITE_BUFFER_LIMBS})")
    return _INFO.pack(VERSION, max_write_len, max_len, mem_limbs)


def parse_info(payload):
    """``{"version", "max_write_len", "max_len", "mem_limbs"}`` of an ``INFO`` reply payload.

    A board of protocol version 1 sent 0 in place of ``max_write_len``; the
    host checks ``version`` before it uses the other fields.
    """
    if len(payload) != UNIT_BYTES[Cmd.INFO]:
        raise ValueError(f"INFO payload of {len(payload)} bytes, expected {UNIT_BYTES[Cmd.INFO]}")
    version, max_write_len, max_len, mem_limbs = _INFO.unpack(payload)
    return {"version": version, "max_write_len": max_write_len, "max_len": max_len,
            "mem_limbs": mem_limbs}
