"""Accelerators: one interface (:class:`Accelerator`), several backends.

``cpu`` (gmpy2, all cores) is the reference and the fallback; ``sim`` (the
Verilator model of the kernel), ``xrt`` (an Alveo card through pyxrt) and
``serial`` (the ECP5 board) are each the one device driver,
:class:`~hefl.accel.device.DeviceAccelerator`, over their transport. Use
:func:`get_accelerator` to get one by name.
"""

from hefl.accel.base import (
    Accelerator,
    device_cycles,
    get_accelerator,
    register_backend,
)

__all__ = ["Accelerator", "get_accelerator", "register_backend", "device_cycles"]
