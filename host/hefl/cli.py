"""The ``hefl`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int``, listed in :data:`COMMANDS`; this file only
dispatches, so a subcommand whose optional dependencies are missing does not
break the others. Errors that derive from :class:`hefl.errors.HeflError` are
printed as one line, never as a traceback.

The lazy subcommand registry is shared: :func:`add_subcommands` and
:func:`run_subcommand` build and run such a
``{name: (module, help)}`` table; ``hefl bench`` uses them for its
benchmarks, and ``hefl hw-report`` uses :func:`import_optional` for its
optional section modules.
"""

import argparse
import importlib
import sys

from hefl.errors import HeflError

__all__ = ["main", "COMMANDS", "add_subcommands", "run_subcommand", "import_optional"]

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
    "formal": ("hefl.flows.formal.cli", "formal proofs of the bus interfaces and stream ports (SymbiYosys)"),
}


def import_optional(module):
    """Import ``module``; ``(module, None)``, or ``(None, error)`` when a package is missing.

    Only :class:`ModuleNotFoundError` (the module or one of its optional
    dependencies is not installed) is caught: any other failure is a bug
    and propagates. ``error.name`` tells which module was missing.
    """
    try:
        return importlib.import_module(module), None
    except ModuleNotFoundError as e:
        return None, e


def add_subcommands(parser, table, *, dest, metavar):
    """Add one subparser per entry of ``table`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    table : dict
        name -> (module, one-line help); each module has ``add_arguments(parser)``
        and ``run(args) -> int``.
    dest, metavar : str
        Attribute that receives the chosen name, and its placeholder in the usage.

    A module that cannot be imported for a missing package is still listed,
    so the user learns what to install when running it
    (:func:`run_subcommand`). The defaults are keyed by ``dest`` so that
    tables can nest (``hefl bench paillier``).
    """
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    for name, (module, help_) in table.items():
        p = sub.add_parser(name, help=help_, description=help_)
        mod, missing = import_optional(module)
        p.set_defaults(**{f"_{dest}_module": module,
                          f"_{dest}_missing": None if missing is None else str(missing)})
        if mod is not None:
            mod.add_arguments(p)
    parser.set_defaults(**{f"_{dest}_parser": parser})
    return sub


def run_subcommand(args, *, dest, prog):
    """Run the subcommand :func:`add_subcommands` parsed into ``args``.

    Returns 2 after printing the help when none was given, or a one-line
    reason when its module is unavailable; else what its ``run`` returns
    (``None`` counts as 0).
    """
    name = getattr(args, dest, None)
    if not name:
        getattr(args, f"_{dest}_parser").print_help()
        return 2
    missing = getattr(args, f"_{dest}_missing")
    if missing:
        print(f"{prog} {name}: unavailable: {missing}", file=sys.stderr)
        return 2
    return importlib.import_module(getattr(args, f"_{dest}_module")).run(args) or 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hefl", description=__doc__.splitlines()[0])
    add_subcommands(parser, COMMANDS, dest="command", metavar="COMMAND")
    args = parser.parse_args(argv)
    try:
        return run_subcommand(args, dest="command", prog="hefl")
    except HeflError as e:
        print(f"hefl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hefl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
