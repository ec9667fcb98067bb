"""``hefl bench``: dispatcher over the benchmarks.

Each benchmark is a module with ``add_arguments(parser)`` and
``run(args) -> int``, registered in :data:`BENCHMARKS` by name; adding one
is one line here. Modules are imported only when building the parser, and
one whose optional dependency is missing is still listed, with the reason
given when it is run.
"""

import importlib

__all__ = ["BENCHMARKS", "add_arguments", "run"]

#: benchmark name -> (module, one-line help)
BENCHMARKS = {
    "paillier": ("hefl.bench.paillier", "cpu backend vs python-paillier: ops/s and one FedAvg round"),
    "host-overhead": ("hefl.bench.host_overhead", "device driver: host time per job (descriptor, packing, sync)"),
}


def add_arguments(parser):
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, (module, help_) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_bench_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:
            p.set_defaults(_bench_missing=str(e))
    parser.set_defaults(_bench_parser=parser)


def run(args):
    if not getattr(args, "benchmark", None):
        args._bench_parser.print_help()
        return 2
    if getattr(args, "_bench_missing", None):
        print(f"hefl bench {args.benchmark}: unavailable: {args._bench_missing}")
        return 2
    return importlib.import_module(args._bench_module).run(args) or 0
