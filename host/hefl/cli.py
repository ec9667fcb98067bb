"""The ``hefl`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int``; this file only dispatches, so a subcommand whose
optional dependencies are missing does not break the others. Errors that
derive from :class:`hefl.errors.HeflError` are printed as one line, never as
a traceback.
"""

import argparse
import importlib
import sys

from hefl.errors import HeflError

__all__ = ["main", "COMMANDS"]

#: subcommand -> (module, one-line help)
COMMANDS = {
    "demo": ("hefl.fedavg.cli", "federated training with homomorphic aggregation"),
    "bench": ("hefl.bench.cli", "benchmarks (CPU backend vs python-paillier, hardware)"),
    "keygen": ("hefl.paillier.cli", "generate a Paillier key pair"),
    "hw-report": ("hefl.flows.report", "cycle counts and resource reports of the cores"),
    "sim": ("hefl.sim.cli", "run random jobs on the Verilator model of the kernel"),
    "flower": ("hefl.flower.cli", "encrypted FedAvg on a local Flower federation (SuperLink + SuperNodes)"),
    "alveo": ("hefl.flows.alveo", "Alveo flow: kernel Verilog, kernel.xml, package_xo Tcl, v++ (xo/xclbin)"),
    "bitstream": ("hefl.flows.ecp5", "ECP5 (ULX3S 85F) bitstream and timing report with open tools"),
}


def _build_parser():
    parser = argparse.ArgumentParser(prog="hefl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:
            # Still listed, so the user learns what to install when running it.
            p.set_defaults(_missing=str(e))
    return parser


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"hefl {args.command}: unavailable: {args._missing}", file=sys.stderr)
        return 2
    try:
        return importlib.import_module(args._module).run(args) or 0
    except HeflError as e:
        print(f"hefl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hefl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
