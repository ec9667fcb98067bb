"""``hefl flower``: a Flower App with encrypted FedAvg on a local federation.

Runs the example app (``examples/flower-multitensor``, or ``--app``) on a
SuperLink and ``--clients`` SuperNodes on 127.0.0.1 (TLS and SuperNode
authentication on) or in Flower's Simulation Runtime, for ``--rounds``
rounds; then, as the key holder, decrypts every round's global, checks it
against Flower's FedAvg of the same client models, computes the plaintext
reference locally, saves the final model and writes ``OUT/report.json``.
Every process is stopped at the end, on failure, and on SIGHUP, SIGTERM or
SIGINT. Needs the ``flower`` extra.
"""

import importlib.util
import tomllib
from pathlib import Path

from hefl.cli_options import BACKENDS, add_device_arguments, backend_options
from hefl.errors import BackendUnavailable, FlowerConfigError
from hefl.paillier.cli import add_key_bits_arguments, checked_key_bits

__all__ = ["add_arguments", "run", "parse_run_config"]

_RUNTIMES = ("deployment", "simulation")


def parse_run_config(items):
    """``KEY=VALUE`` strings (TOML values; bare words are strings) as a dict."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise FlowerConfigError(f"--run-config wants KEY=VALUE, not {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out[key.strip()] = value
    return out


def add_arguments(parser):
    """Options of ``hefl flower``."""
    parser.add_argument("--out", type=Path, default=Path("build/flower"),
                        help="output directory (report.json, logs, keys); default build/flower")
    parser.add_argument("--app", type=Path, default=None,
                        help="the Flower App to run (default: examples/flower-multitensor)")
    parser.add_argument("--runtime", choices=_RUNTIMES, default="deployment",
                        help="SuperLink + SuperNodes (default) or Flower's Simulation Runtime")
    parser.add_argument("--clients", type=int, default=3, help="SuperNodes (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default 3)")
    add_key_bits_arguments(parser, default=1024,
                           help="Paillier modulus size (1024 for the demo's speed; 2048 works, slower)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="the server's accelerator for the ciphertext products (default sim, "
                             "falling back to cpu where the simulator cannot run)")
    parser.add_argument("--client-backend", choices=BACKENDS, default="cpu",
                        help="the clients' accelerator for encryption/decryption (default cpu)")
    add_device_arguments(parser)
    parser.add_argument("--keys", type=Path, default=None,
                        help="reuse this key directory (public.json, private.json)")
    parser.add_argument("--insecure", action="store_true",
                        help="no TLS between the Flower processes (and no SuperNode auth)")
    parser.add_argument("--no-supernode-auth", action="store_true",
                        help="let any SuperNode connect (default: only registered keys)")
    parser.add_argument("--send-plaintext-reference", action="store_true",
                        help="clients ALSO send their clipped models in the clear, for the "
                             "server to run Flower's plaintext FedAvg beside (verification "
                             "only: the server then sees every model)")
    parser.add_argument("--run-config", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the app's [tool.flwr.app.config]")
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
    key_bits = checked_key_bits(args.key_bits, allow_insecure=args.insecure_test_key,
                                prog="hefl flower")
    backend_opts = backend_options(args.backend, args) if args.backend else {}
    cfg = FlowerRun(out=args.out, app=args.app, runtime=args.runtime, clients=args.clients,
                    rounds=args.rounds, key_bits=key_bits, backend=args.backend,
                    backend_options=backend_opts, client_backend=args.client_backend,
                    tls=not args.insecure,
                    supernode_auth=not (args.insecure or args.no_supernode_auth),
                    send_plaintext_reference=args.send_plaintext_reference,
                    run_config=parse_run_config(args.run_config), timeout=args.timeout,
                    keys=args.keys)
    run_flower(cfg)
    return 0
