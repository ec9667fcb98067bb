"""``hefl flower``: encrypted FedAvg on a local Flower federation.

Starts a Flower SuperLink and ``--clients`` SuperNodes on 127.0.0.1 as
separate processes, runs the hefl Flower App for ``--rounds`` rounds,
prints per-round accuracy and writes ``OUT/report.json``. Every process is
stopped at the end, also on failure. Needs the ``flower`` extra.
"""

import importlib.util
from pathlib import Path

from hefl.errors import BackendUnavailable, FlowerConfigError

__all__ = ["add_arguments", "run"]

_GARBLE_MODES = ("truncate", "zero", "flip")


def _garble(text):
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        part, rnd = int(parts[0]), int(parts[1])
    except ValueError:
        raise FlowerConfigError(f"--garble wants PARTITION:ROUND[:MODE], not {text!r}") from None
    mode = parts[2] if len(parts) == 3 else "truncate"
    if mode not in _GARBLE_MODES:
        raise FlowerConfigError(
            f"garble mode must be one of {', '.join(_GARBLE_MODES)}, not {mode!r}")
    return part, (rnd, mode)


def _nan(text):
    try:
        part, rnd = (int(x) for x in text.split(":"))
    except ValueError:
        raise FlowerConfigError(f"--nan wants PARTITION:ROUND, not {text!r}") from None
    return part, rnd


def add_arguments(parser):
    """Options of ``hefl flower``."""
    parser.add_argument("--out", type=Path, default=Path("build/flower"),
                        help="output directory (report.json, logs, keys); default build/flower")
    parser.add_argument("--clients", type=int, default=3, help="SuperNodes (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default 3)")
    parser.add_argument("--key-bits", type=int, default=1024,
                        help="Paillier modulus size (default 1024; 2048 works, slower)")
    parser.add_argument("--backend", default=None,
                        help="the server's accelerator for the ciphertext products (default sim, "
                             "falling back to cpu where the simulator cannot run)")
    parser.add_argument("--client-backend", default="cpu",
                        help="the clients' accelerator for encryption/decryption (default cpu)")
    parser.add_argument("--dataset", default="digits", help="digits, breast_cancer or wine")
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="data split and batch-order seed")
    parser.add_argument("--keys", type=Path, default=None,
                        help="reuse this key directory (public.json, private.json)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not send plaintext models for Flower's reference FedAvg")
    parser.add_argument("--garble", action="append", default=[], metavar="PARTITION:ROUND[:MODE]",
                        help="that node corrupts its upload in that round (fault injection)")
    parser.add_argument("--nan", action="append", default=[], metavar="PARTITION:ROUND",
                        help="that node's update turns NaN in that round (fault injection)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds for the whole Flower run (default 600)")


def run(args):
    """Run the demo; 0 on success."""
    if importlib.util.find_spec("flwr") is None:
        raise BackendUnavailable("Flower is not installed: pip install -e '.[flower]' (flwr 1.42)")
    # Imported here so `hefl --help` works without the flower extra.
    from hefl.flower.launch import FlowerRun, run_flower
    if args.clients < 1 or args.rounds < 1:
        raise FlowerConfigError("--clients and --rounds must be at least 1")
    garble = dict(_garble(g) for g in args.garble)
    nan = dict(_nan(g) for g in args.nan)
    for part in list(garble) + list(nan):
        if not 0 <= part < args.clients:
            raise FlowerConfigError(f"--garble partition {part} is not in 0..{args.clients - 1}")
    cfg = FlowerRun(out=args.out, clients=args.clients, rounds=args.rounds,
                    key_bits=args.key_bits, backend=args.backend,
                    client_backend=args.client_backend, dataset=args.dataset,
                    local_epochs=args.local_epochs, seed=args.seed,
                    reference=not args.no_reference, timeout=args.timeout, garble=garble, nan=nan,
                    keys=args.keys)
    run_flower(cfg)
    return 0
