"""Command-line options shared by the commands that open an accelerator.

``hefl demo`` and ``hefl flower`` (and any later command) take the same
flags for the same things::

    --backend NAME        cpu, sim, xrt or serial (every backend this build knows)
    --xclbin PATH         the Alveo bitstream, for xrt (default $HEFL_XCLBIN)
    --port, --device PATH the board's serial port, for serial (e.g. /dev/ttyUSB0)

and :func:`backend_options` turns them into the keywords of
:func:`hefl.accel.get_accelerator` for a given backend.
"""

from hefl.accel.base import BACKEND_MODULES

__all__ = ["BACKENDS", "add_device_arguments", "backend_options"]

#: Every backend name, for ``choices=`` and help texts.
BACKENDS = tuple(BACKEND_MODULES)


def add_device_arguments(parser):
    """Add ``--xclbin`` and ``--port``/``--device`` to ``parser`` (or an argument group)."""
    parser.add_argument("--xclbin", default=None, metavar="PATH",
                        help="xclbin with hefl_kernel, for the xrt backend (default: $HEFL_XCLBIN)")
    parser.add_argument("--port", "--device", dest="port", default=None, metavar="PATH",
                        help="serial port of the ECP5 board, for the serial backend (e.g. /dev/ttyUSB0)")


def backend_options(name, args):
    """Keywords of ``get_accelerator(name, ...)`` from the parsed ``args``."""
    if name == "xrt" and getattr(args, "xclbin", None):
        return {"xclbin": args.xclbin}
    if name == "serial" and getattr(args, "port", None):
        return {"url": args.port}
    return {}
