"""``serial`` transport: the ECP5 board over its UART link (pyserial).

The board (:mod:`hefl.hw.ecp5_top`) is the kernel with block RAM for card
memory, reached through the framed protocol of :mod:`hefl.hw.link_proto`.
This transport maps the :class:`~hefl.transport.base.Transport` calls onto
that protocol, so :class:`hefl.accel.device.DeviceAccelerator` drives the
board exactly as it drives ``sim`` and ``xrt``:

=====================  ======================================================
Transport call         on the link
=====================  ======================================================
``alloc``/``free``     host-side bookkeeping of the board memory (first fit,
                       limb aligned; size from ``INFO``)
``write``/``read``     the host copy only
``sync_to_device``     ``WRITE_MEM`` of the limbs covering the range, in
                       chunks of at most ``max_write_len`` limbs (the
                       board's write buffer, from ``INFO``)
``sync_from_device``   ``READ_MEM`` likewise, chunks of at most ``max_len``
``read_reg``           ``READ_REG`` at the register map's offset
``start``              ``WRITE_REG`` of each argument's registers, then
                       ``ap_start`` in ``ctrl``
``wait``               polls ``ctrl`` until ``ap_done``; ``DeviceTimeout``
``abort``              nothing: the kernel has no abort; a run always ends
=====================  ======================================================

Errors and retries: an error reply (bad checksum, timeout, ...) or a reply
that does not arrive or does not decode is retried up to ``retries`` times
when repeating the request is harmless (memory reads and writes, argument
registers, plain register reads); then :class:`hefl.errors.LinkError`. A
memory write the board refused (bad checksum, timeout) wrote nothing (link
protocol v2), so repeating it is exact. Two
requests have side effects and are handled apart: reading ``ctrl`` clears
``ap_done``, so :meth:`wait` also ends when ``ap_idle`` is seen after a lost
``ctrl`` reply; and ``ap_start`` is re-sent only when ``ctrl`` shows the run
did not start.
"""

import struct
import time

from hefl.errors import BackendUnavailable, DeviceError, DeviceTimeout, LinkError
from hefl.hw import link_proto as lp
from hefl.hw.params import ECP5_UART_BAUD
from hefl.hw.regmap import LAYOUT, REGMAP
from hefl.transport.base import Buffer, Transport

__all__ = ["SerialTransport", "DEFAULT_BAUD"]

#: The board's UART rate (the ``baud`` of hefl.hw.ecp5_top.BOARD_DEFAULTS).
DEFAULT_BAUD = ECP5_UART_BAUD
#: Bytes per limb: board memory is allocated and moved in whole limbs.
_LIMB = LAYOUT.limb_bytes
#: Statuses with which the board refuses a frame before executing any of it
#: (link_proto: a bad checksum or a truncated frame writes nothing).
_REJECTED = frozenset({lp.Status.BAD_CRC, lp.Status.TIMEOUT})


class _Retry(Exception):
    """One attempt failed in a way a repeat may cure."""


class SerialTransport(Transport):
    """The board behind a serial port.

    Parameters
    ----------
    port : object, optional
        An open pyserial ``Serial`` (or anything with ``write``, ``read``,
        ``reset_input_buffer``): the board model's
        :class:`hefl.sim.board_model.BoardModelPort` in tests.
    url : str, optional
        Opened with ``serial.serial_for_url`` when ``port`` is not given
        (``/dev/ttyUSB0``, ``COM3``, ``socket://host:port`` ...).
    baudrate : int
        UART rate of the board build.
    timeout : float
        Seconds to wait for one reply before a retry.
    retries : int
        Attempts per request beyond the first.
    """

    name = "serial"

    def __init__(self, port=None, *, url=None, baudrate=DEFAULT_BAUD, timeout=2.0, retries=3):
        if port is None:
            if not url:
                raise BackendUnavailable("the serial backend needs a port: pass url='/dev/ttyUSB0' "
                                         "(or port=an open serial.Serial)")
            try:
                import serial
            except ModuleNotFoundError:
                raise BackendUnavailable("the serial backend needs pyserial: pip install pyserial") from None
            try:
                port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
            except (serial.SerialException, ValueError) as e:
                raise BackendUnavailable(f"cannot open serial port {url!r}: {e}") from None
        self.port = port
        self.url = url
        self.retries = int(retries)
        self.timeout = float(timeout)
        self.counters = {"requests": 0, "retries": 0, "errors": 0, "bytes_out": 0, "bytes_in": 0}
        info = lp.parse_info(self._request(lp.Cmd.INFO).payload)
        if info["version"] != lp.VERSION:
            raise DeviceError(f"the board speaks link protocol v{info['version']}, "
                              f"this host v{lp.VERSION}")
        self.mem_limbs = info["mem_limbs"]
        self.max_len = info["max_len"]
        self.max_write_len = info["max_write_len"]
        if not 1 <= self.max_write_len <= self.max_len:
            raise DeviceError(f"the board reports a write buffer of {self.max_write_len} limbs "
                              f"(max LEN {self.max_len}): not a usable board build")
        # Free list of (start limb, limbs), sorted; limb 0 is never handed out
        # so a zero device address is never a valid buffer.
        self._free = [(1, self.mem_limbs - 1)]
        self._done_seen = False

    # --- framing ------------------------------------------------------------

    def _exchange(self, frame):
        self.port.reset_input_buffer()
        self.port.write(frame)
        self.counters["requests"] += 1
        self.counters["bytes_out"] += len(frame)
        parser = lp.ReplyParser()
        deadline = time.monotonic() + self.timeout
        while True:
            chunk = self.port.read(parser.missing())
            if chunk:
                self.counters["bytes_in"] += len(chunk)
                try:
                    replies = parser.feed(chunk)
                except ValueError as e:
                    raise _Retry(f"garbled reply ({e})") from None
                if replies:
                    return replies[0]
            elif time.monotonic() > deadline:
                raise _Retry("no reply")
            if time.monotonic() > deadline + self.timeout:
                raise _Retry("no complete reply")

    def _request(self, cmd, addr=0, length=0, payload=b"", *, retry=True):
        """One request; the decoded OK reply, or :class:`LinkError` after the retries.

        ``retry=True`` repeats on any failure. ``retry=False`` (requests with
        side effects) repeats only when the board answered that it rejected
        the request (bad checksum, truncated): then nothing was executed. A
        lost or garbled reply leaves the outcome unknown, so the caller decides.
        """
        frame = lp.encode_request(cmd, addr, length, payload)
        why = ""
        for attempt in range(1 + self.retries):
            if attempt:
                self.counters["retries"] += 1
            try:
                r = self._exchange(frame)
            except _Retry as e:
                why = str(e)
                self.counters["errors"] += 1
                if retry:
                    continue
                break
            if r.status in _REJECTED:
                # The board refused the frame before acting on it, so it can
                # be repeated even with side effects. Its CMD byte is what the
                # board read, which a flipped bit in ours may have changed.
                self.counters["errors"] += 1
                why = r.describe()
                continue
            if r.cmd != cmd:
                why = f"reply to command 0x{r.cmd:02x}, expected 0x{int(cmd):02x}"
                self.counters["errors"] += 1
                if retry:
                    continue
                break
            if r.ok:
                return r
            self.counters["errors"] += 1
            why = r.describe()
            break              # repeating the same request cannot help
        raise LinkError(f"{lp.Cmd(cmd).name} at 0x{addr:x} failed on {self.url or 'the link'}: {why}")

    # --- registers ----------------------------------------------------------

    def _write_reg(self, name, value, *, retry=True):
        self._request(lp.Cmd.WRITE_REG, REGMAP.reg(name).offset, 1,
                      struct.pack("<I", value & 0xFFFFFFFF), retry=retry)

    def write_reg(self, name, value):
        """Write register ``name`` (the link owns the control port, as ``sim`` does)."""
        self._write_reg(name, value, retry=name != "ctrl")

    def read_reg(self, name):
        if name == "ctrl":
            # Clear-on-read bits: keep what this read saw for wait().
            v = self._read_ctrl()
            return v
        r = self._request(lp.Cmd.READ_REG, REGMAP.reg(name).offset, 1)
        return struct.unpack("<I", r.payload)[0]

    def _read_ctrl(self):
        r = self._request(lp.Cmd.READ_REG, REGMAP.reg("ctrl").offset, 1, retry=False)
        v = struct.unpack("<I", r.payload)[0]
        if REGMAP.reg("ctrl").field("ap_done").get(v):
            self._done_seen = True
        return v

    # --- buffers ------------------------------------------------------------

    def alloc(self, size):
        if not isinstance(size, int) or size <= 0:
            raise DeviceError(f"buffer size must be a positive integer, not {size!r}")
        limbs = -(-size // _LIMB)
        for i, (start, n) in enumerate(self._free):
            if n >= limbs:
                if n == limbs:
                    del self._free[i]
                else:
                    self._free[i] = (start + limbs, n - limbs)
                return Buffer(size=size, address=start * _LIMB, handle=bytearray(limbs * _LIMB))
        largest = max((n for _, n in self._free), default=0)
        raise DeviceError(f"board memory exhausted: {size} bytes asked, largest free block "
                          f"{largest * _LIMB} of {self.mem_limbs * _LIMB} bytes")

    def free(self, buf):
        self._check_live(buf)
        buf.freed = True
        self._free.append((buf.address // _LIMB, len(buf.handle) // _LIMB))
        self._free.sort()
        merged = []
        for start, n in self._free:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((start, n))
        self._free = merged

    def write(self, buf, data, offset=0):
        self._check_live(buf)
        data = memoryview(data).cast("B")
        self._check_range(buf, len(data), offset)
        buf.handle[offset:offset + len(data)] = data

    def read(self, buf, size=None, offset=0):
        self._check_live(buf)
        size = buf.size - offset if size is None else size
        self._check_range(buf, size, offset)
        return bytes(buf.handle[offset:offset + size])

    def _limb_span(self, buf, size, offset):
        # Whole limbs covering [offset, offset + size) of the buffer.
        size, offset = self._span(buf, size, offset)
        first = offset // _LIMB
        end = -(-(offset + size) // _LIMB)
        return first, end

    def sync_to_device(self, buf, size=None, offset=0):
        self._check_live(buf)
        lo, hi = self._limb_span(buf, size, offset)
        base = buf.address // _LIMB
        step = min(self.max_len, self.max_write_len)
        for first in range(lo, hi, step):
            n = min(step, hi - first)
            self._request(lp.Cmd.WRITE_MEM, base + first, n,
                          bytes(buf.handle[first * _LIMB:(first + n) * _LIMB]))

    def sync_from_device(self, buf, size=None, offset=0):
        self._check_live(buf)
        lo, hi = self._limb_span(buf, size, offset)
        base = buf.address // _LIMB
        for first in range(lo, hi, self.max_len):
            n = min(self.max_len, hi - first)
            r = self._request(lp.Cmd.READ_MEM, base + first, n)
            buf.handle[first * _LIMB:(first + n) * _LIMB] = r.payload

    # --- runs ---------------------------------------------------------------

    def start(self, **args):
        # An optional pointer left out is written as 0, like the other transports.
        args = {**{a.name: 0 for a in REGMAP.args if not a.required}, **args}
        for name, value in args.items():
            try:
                arg = REGMAP.arg(name)
            except KeyError:
                raise DeviceError(f"the kernel has no argument {name!r}") from None
            if isinstance(value, Buffer):
                self._check_live(value)
                value = value.address
            for i, reg in enumerate(arg.registers):
                self._write_reg(reg, value >> (32 * i))
        ctrl = REGMAP.reg("ctrl")
        self._done_seen = False
        # Clear a stale ap_done of an earlier run (clear-on-read).
        self._read_ctrl()
        self._done_seen = False
        start = ctrl.field("ap_start").mask
        for _ in range(1 + self.retries):
            try:
                self._write_reg("ctrl", start, retry=False)
                return
            except LinkError:
                # Did the write land? ap_start still set, busy, or done → yes.
                v = self._read_ctrl()
                if v & (start | ctrl.field("ap_done").mask) or not ctrl.field("ap_idle").get(v):
                    return
        raise LinkError("could not start the kernel over the link")

    def wait(self, timeout):
        ctrl = REGMAP.reg("ctrl")
        deadline = time.monotonic() + float(timeout)
        lost = False
        while True:
            if self._done_seen:
                self._done_seen = False
                return
            try:
                v = self._read_ctrl()
            except LinkError:
                lost = True      # that read may have cleared ap_done
                v = None
            if v is not None:
                if ctrl.field("ap_done").get(v):
                    self._done_seen = False
                    return
                if lost and ctrl.field("ap_idle").get(v) and not ctrl.field("ap_start").get(v):
                    return
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"the board did not finish within {timeout:g} s "
                                    f"(ctrl 0x{(v or 0):02x})")
            step = getattr(self.port, "step", None)
            if step is not None:
                step(2000)        # the model's clock only runs when asked
            else:
                time.sleep(0.001)

    def info(self):
        return {"transport": self.name, "url": self.url, "mem_bytes": self.mem_limbs * _LIMB,
                "max_len_limbs": self.max_len,
                "max_write_len_limbs": self.max_write_len, **self.counters}

    def close(self):
        close = getattr(self.port, "close", None)
        if close is not None:
            close()
