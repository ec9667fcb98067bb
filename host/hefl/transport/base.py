"""The transport interface: what the one device driver needs from a card.

A transport moves bytes and register values; it knows nothing of
Montgomery arithmetic or descriptors. The driver
(:class:`hefl.accel.device.DeviceAccelerator`) does the same sequence on
every transport, as XRT's own flow does::

    buf = t.alloc(n)            # device buffer (card memory)
    t.write(buf, data)          # host-side copy
    t.sync_to_device(buf)       # DMA to the card
    t.start(desc=buf, result=out, table=tab)   # set the kernel arguments, ap_start
    t.wait(timeout=10.0)        # or DeviceTimeout
    t.sync_from_device(out)
    t.read(out)

Register offsets come from :mod:`hefl.hw.regmap`; a transport turns the
kernel arguments into writes at the offsets the register map gives (``sim``)
or hands them to the runtime that does (``xrt``).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

__all__ = ["Buffer", "Transport"]


@dataclass(eq=False)
class Buffer:
    """One device buffer.

    Attributes
    ----------
    size : int
        Bytes.
    address : int
        Device address (what the kernel argument register receives).
    handle : object
        The transport's own object (a pyxrt ``bo``, or ``None``).
    """

    size: int
    address: int
    handle: object = field(default=None, repr=False)
    freed: bool = field(default=False, repr=False)


class Transport(ABC):
    """A card (or its model) behind one kernel instance.

    Attributes
    ----------
    name : str
        ``"sim"``, ``"xrt"`` ...
    """

    name = "abstract"

    # --- buffers ----------------------------------------------------------

    @abstractmethod
    def alloc(self, size):
        """Allocate a device buffer of ``size`` bytes and return a :class:`Buffer`."""

    @abstractmethod
    def free(self, buf):
        """Release ``buf``; using it afterwards is an error."""

    @abstractmethod
    def write(self, buf, data, offset=0):
        """Copy ``data`` (bytes-like) into the host side of ``buf`` at ``offset``."""

    @abstractmethod
    def read(self, buf, size=None, offset=0):
        """Return ``size`` bytes (default: to the end) of the host side of ``buf``."""

    @abstractmethod
    def sync_to_device(self, buf, size=None, offset=0):
        """Make bytes ``[offset, offset+size)`` (default: all) of ``buf`` visible to the kernel."""

    @abstractmethod
    def sync_from_device(self, buf, size=None, offset=0):
        """Make what the kernel wrote to ``buf`` (the given range) visible to :meth:`read`."""

    # --- registers and runs ---------------------------------------------

    @abstractmethod
    def read_reg(self, name):
        """Read the 32-bit control register ``name`` of the register map."""

    def write_reg(self, name, value):
        """Write the 32-bit control register ``name``.

        Only where the transport owns the control port (``sim``); with XRT
        the runtime writes the registers (kernel arguments, ``ap_start``).
        """
        from hefl.errors import DeviceError
        raise DeviceError(f"the {self.name} transport cannot write register {name!r} directly")

    @abstractmethod
    def start(self, **args):
        """Set the kernel arguments (``name=Buffer`` or ``name=int``) and start one run.

        Every required argument of :data:`hefl.hw.regmap.REGMAP` must be
        given; an optional one left out is a null pointer (0, or the
        transport's placeholder buffer).
        """

    @abstractmethod
    def wait(self, timeout):
        """Block until the run finishes; raise :class:`hefl.errors.DeviceTimeout` after ``timeout`` s."""

    def abort(self):
        """Bring the kernel back to idle after a failed or timed-out run (best effort)."""

    def info(self):
        """A dict describing the device (for reports and error messages)."""
        return {"transport": self.name}

    def close(self):
        """Release the device."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- helpers shared by the transports -------------------------------

    @staticmethod
    def _check_live(buf):
        from hefl.errors import DeviceError
        if not isinstance(buf, Buffer):
            raise TypeError(f"Buffer expected, not {type(buf).__name__}")
        if buf.freed:
            raise DeviceError(f"buffer at 0x{buf.address:x} was already freed")

    @classmethod
    def _span(cls, buf, size, offset):
        """``(size, offset)`` of a sync, checked; ``size=None`` means to the end."""
        size = buf.size - offset if size is None else int(size)
        cls._check_range(buf, size, int(offset))
        return size, int(offset)

    @staticmethod
    def _check_range(buf, size, offset):
        from hefl.errors import DeviceError
        if offset < 0 or size < 0 or offset + size > buf.size:
            raise DeviceError(f"access of {size} bytes at offset {offset} is outside "
                              f"the {buf.size}-byte buffer at 0x{buf.address:x}")
