"""Transports: how the one device driver reaches a card or its model.

``sim`` drives the Verilator model of the kernel (a C++ harness loaded with
ctypes), ``xrt`` an Alveo card through pyxrt. Both implement
:class:`~hefl.transport.base.Transport`; the driver above them
(:class:`hefl.accel.device.DeviceAccelerator`) is the same code path.
"""

from hefl.transport.base import Buffer, Transport

__all__ = ["Buffer", "Transport"]
