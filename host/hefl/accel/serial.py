"""``serial`` backend: the device driver over the ECP5 board's UART link.

``get_accelerator("serial", url="/dev/ttyUSB0")`` opens the port, asks the
board for its memory size (link ``INFO``) and its hardware configuration
(HWCFG registers), and returns a :class:`~hefl.accel.device.DeviceAccelerator`
over a :class:`~hefl.transport.serial.SerialTransport`: the driver code
path of ``sim`` and ``xrt``, unchanged. Batches are sized so the descriptor
and result buffers fit the board's block RAM, growth included.
"""

from hefl.accel.base import register_backend
from hefl.accel.device import DeviceAccelerator
from hefl.hw.regmap import LAYOUT

__all__ = ["serial_accelerator"]


def serial_accelerator(*, url=None, port=None, baudrate=None, link_timeout=2.0, retries=3,
                       **driver):
    """Make the ``serial`` backend.

    Parameters
    ----------
    url : str, optional
        Serial port to open (pyserial ``serial_for_url``).
    port : object, optional
        An open port instead (pyserial ``Serial`` or the board model's port).
    baudrate : int, optional
        Defaults to the board build's rate.
    link_timeout, retries
        Per-request reply timeout (s) and retries of the link.
    **driver
        :class:`DeviceAccelerator` options (``timeout``, ``verify``, ...).

    Returns
    -------
    DeviceAccelerator
    """
    from hefl.transport.serial import DEFAULT_BAUD, SerialTransport
    tr = SerialTransport(port, url=url, baudrate=baudrate or DEFAULT_BAUD, timeout=link_timeout,
                         retries=retries)
    mem = tr.mem_limbs * LAYOUT.limb_bytes
    # The driver may allocate up to twice a buffer's size when it grows it,
    # and holds a descriptor and a result buffer at once: keep one run's
    # descriptor within a fifth of the memory (results are smaller).
    driver.setdefault("max_batch_bytes", mem // 5)
    return DeviceAccelerator(tr, name="serial", **driver)


register_backend("serial", serial_accelerator)
