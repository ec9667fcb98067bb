"""``xrt`` backend: the driver over an Alveo card (pyxrt).

Same :class:`~hefl.accel.device.DeviceAccelerator` as ``sim``; only the
transport differs. ``get_accelerator("xrt", xclbin="build/alveo/hefl.xclbin")``
(or ``$HEFL_XCLBIN``). Without XRT's pyxrt this raises
:class:`~hefl.errors.BackendUnavailable` naming what to install.
"""

import os

from hefl.accel.base import register_backend
from hefl.accel.device import DeviceAccelerator
from hefl.errors import BackendUnavailable

__all__ = ["XrtAccelerator"]


class XrtAccelerator(DeviceAccelerator):
    """The ``xrt`` backend.

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
    """

    name = "xrt"

    def __init__(self, *, xclbin=None, device_index=0, hwcfg=None, **driver):
        from hefl.transport.xrt import XrtTransport, import_pyxrt
        # Check the software first: the most common problem, and the clearest message.
        import_pyxrt()
        xclbin = xclbin or os.environ.get("HEFL_XCLBIN")
        if not xclbin:
            raise BackendUnavailable("the xrt backend needs an xclbin: pass xclbin=... or set "
                                     "HEFL_XCLBIN (build one with `make xclbin PLATFORM=<platform>`)")
        super().__init__(XrtTransport(xclbin, device_index=device_index, hwcfg=hwcfg), **driver)


register_backend("xrt", XrtAccelerator)
