"""``xrt`` backend: the driver over an Alveo card (pyxrt).

Same :class:`~hefl.accel.device.DeviceAccelerator` as ``sim`` and
``serial``; only the transport differs.
``get_accelerator("xrt", xclbin="build/alveo/hefl.xclbin")`` (or
``$HEFL_XCLBIN``). Without XRT's pyxrt this raises
:class:`~hefl.errors.BackendUnavailable` naming what to install.
"""

import os

from hefl.accel.base import register_backend
from hefl.accel.device import DeviceAccelerator
from hefl.errors import BackendUnavailable

__all__ = ["xrt_accelerator", "XrtAccelerator"]


def xrt_accelerator(*, xclbin=None, device_index=0, hwcfg=None, **driver):
    """Make the ``xrt`` backend.

    Parameters
    ----------
    xclbin : path-like, optional
        The xclbin with ``hefl_kernel`` (default ``$HEFL_XCLBIN``).
    device_index : int
        XRT device index.
    hwcfg : dict or path-like, optional
        HWCFG values (default: ``<xclbin>.hwcfg.json``).
    **driver
        :class:`DeviceAccelerator` options (``timeout``, ``verify``, ...).

    Returns
    -------
    DeviceAccelerator
    """
    from hefl.transport.xrt import XrtTransport, import_pyxrt
    # Check the software first: the most common problem, and the clearest message.
    import_pyxrt()
    xclbin = xclbin or os.environ.get("HEFL_XCLBIN")
    if not xclbin:
        raise BackendUnavailable("the xrt backend needs an xclbin: pass xclbin=... or set "
                                 "HEFL_XCLBIN (build one with `make xclbin PLATFORM=<platform>`)")
    return DeviceAccelerator(XrtTransport(xclbin, device_index=device_index, hwcfg=hwcfg),
                             name="xrt", **driver)


#: The name this backend had when it was a class of its own; same keywords.
XrtAccelerator = xrt_accelerator

register_backend("xrt", xrt_accelerator)
