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
optional section modules. Every parser it makes shows each option's default
in ``--help`` (:class:`DefaultsHelpFormatter`).

One name per concept, in every subcommand:

==================  ==========================================================
``--key-bits B``    bit length of the Paillier modulus ``n``
``--out DIR``       the folder a command writes into
``--json PATH``     the one JSON report file a command writes
``--seed S``        the seed of everything random (printed when not given)
``--backend NAME``  an accelerator (:data:`hefl.cli_options.BACKENDS`), with
                    ``--xclbin`` and ``--port``/``--device`` for xrt and serial
==================  ==========================================================
"""

import argparse
import copy
import importlib
import re
import sys

from hefl.errors import HeflError

__all__ = ["main", "COMMANDS", "add_subcommands", "run_subcommand", "import_optional",
           "DefaultsHelpFormatter"]

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
    "fuzz": ("hefl.fuzz", "mutation fuzz of the readers of vectors, keys and encodings (typed errors only)"),
    "formal": ("hefl.flows.formal.cli", "formal proofs of the bus interfaces and stream ports (SymbiYosys)"),
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help text that ends with "(default: X)" for every option with a default.

    Left out where the help already mentions its default (it can say what
    ``None`` means: "default: random, printed") and for on/off flags and
    empty lists, where a default says nothing. Options without help get
    the default alone.
    """

    # "(default 2048)", "(default: random)", "; default: all" -- not "the default plan".
    _SAYS_DEFAULT = re.compile(r"\(default|default:", re.IGNORECASE)

    @classmethod
    def _shows_default(cls, action):
        d = action.default
        return (bool(action.option_strings) and d is not None and d is not argparse.SUPPRESS
                and not isinstance(d, bool) and d != [] and not cls._SAYS_DEFAULT.search(action.help or ""))

    def _get_help_string(self, action):
        if action.help and self._shows_default(action):
            return f"{action.help} (default: %(default)s)"
        return action.help

    def _format_action(self, action):
        if not action.help and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


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
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=DefaultsHelpFormatter)
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
    """Entry point of ``hefl``: the exit status (2 and one line on stderr for a :class:`HeflError`)."""
    from hefl import __version__
    parser = argparse.ArgumentParser(prog="hefl", description=__doc__.splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hefl {__version__}")
    add_subcommands(parser, COMMANDS, dest="command", metavar="COMMAND")
    args = parser.parse_args(argv)
    try:
        return run_subcommand(args, dest="command", prog="hefl")
    except HeflError as e:
        # One line, whatever the message holds.
        print(f"hefl {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hefl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
