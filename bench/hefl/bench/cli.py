"""``hefl bench``: dispatcher over the benchmarks.

Each benchmark is a module with ``add_arguments(parser)`` and
``run(args) -> int``, registered in :data:`BENCHMARKS` by name; adding one
is one line here. The table is built and run by the same lazy registry as
the ``hefl`` subcommands (:func:`hefl.cli.add_subcommands`): a benchmark
whose optional dependency is missing is still listed, with the reason given
when it is run.
"""

from hefl.cli import add_subcommands, run_subcommand

__all__ = ["BENCHMARKS", "add_arguments", "run"]

#: benchmark name -> (module, one-line help)
BENCHMARKS = {
    "paillier": ("hefl.bench.paillier", "cpu backend vs python-paillier: ops/s and one FedAvg round"),
    "peers": ("hefl.bench.peers", "hefl vs python-paillier, pypaillier and SecretFlow HEU: encrypt/decrypt per second"),
    "kernels": ("hefl.bench.kernels", "cpu backend's IFMA kernels vs gmpy2, one core: secret powers and table products"),
    "host-overhead": ("hefl.bench.host_overhead", "device driver: host time per job (descriptor, packing, sync)"),
}


def add_arguments(parser):
    add_subcommands(parser, BENCHMARKS, dest="benchmark", metavar="BENCHMARK")


def run(args):
    return run_subcommand(args, dest="benchmark", prog="hefl bench")
