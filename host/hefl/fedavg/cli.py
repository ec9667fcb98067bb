"""``hefl demo``: federated training with homomorphic aggregation.

Runs :func:`hefl.fedavg.loop.run_fedavg` on the chosen backend, prints a
progress bar and one table line per round, and writes ``report.json`` and
``accuracy.png`` into ``--out``.

Who computes on what: ``--backend`` is the aggregator's accelerator, the
card a server would hold. Without it the simulated hardware (``sim``) is
used, falling back to ``cpu`` with a one-line notice when the simulator is
not available; an explicit ``--backend sim`` never falls back. Clients
encrypt and the key holder decrypts on ``cpu`` by default
(``--client-backend``, ``--keyholder-backend`` move them onto a device):
they are other parties' machines, and in the Verilator model a 1024-bit
key's encryption (two 1024-bit modexps by CRT) costs ~2.2M kernel cycles,
~2 s of simulation each, against ~0.7 ms with gmpy2 — 104 of them per round
would put a default run far past its 3-minute budget. The aggregation runs
on the simulated card in well under a second per round. ``--xclbin`` and
``--port``/``--device`` (:mod:`hefl.cli_options`) reach the xrt and serial
backends.

What is kept: ``--out`` is checked before any work (a folder that cannot be
written fails at once, in one line), ``report.json`` is rewritten
atomically after every round, and a run stopped by Ctrl-C or an error
leaves the rounds it finished, marked ``"status": "interrupted"`` (or
``"failed"``, with the error). A run that fails before its first round
leaves nothing behind, not even the folder it created.

Key sizes follow :func:`hefl.paillier.cli.checked_key_bits`: the default
1024 bits warns; below 1024, ``--insecure-test-key`` is required.
"""

import logging
import os
import sys
import time
from pathlib import Path

from hefl.accel import get_accelerator
from hefl.cli_options import BACKENDS, add_device_arguments, backend_options
from hefl.errors import BackendUnavailable
from hefl.fedavg.data import DATASETS
from hefl.fedavg.loop import DEFAULT_KEY_BITS, FedAvgConfig, run_fedavg
from hefl.fedavg.model import MODELS
from hefl.fedavg.report import plot_accuracy, write_json
from hefl.paillier.cli import add_key_bits_arguments, checked_key_bits, key_size_warning
from hefl.reports import check_output_dir

__all__ = ["add_arguments", "run", "DEFAULT_BACKEND", "DEFAULT_CLIENT_BACKEND",
           "DEFAULT_KEYHOLDER_BACKEND"]

#: Backend used when ``--backend`` is not given: the hardware model.
DEFAULT_BACKEND = "sim"

#: Default backends of the clients and of the key holder (see the module docstring).
DEFAULT_CLIENT_BACKEND = "cpu"
DEFAULT_KEYHOLDER_BACKEND = "cpu"

_D = FedAvgConfig()


def add_arguments(parser):
    """Add the ``hefl demo`` options to ``parser``."""
    g = parser.add_argument_group("run")
    g.add_argument("--backend", choices=BACKENDS, default=None,
                   help=f"the aggregator's accelerator, and by default everyone's (default: "
                        f"{DEFAULT_BACKEND}, falling back to cpu if the simulator is unavailable)")
    g.add_argument("--client-backend", choices=BACKENDS, default=None,
                   help=f"accelerator the clients encrypt on (default: {DEFAULT_CLIENT_BACKEND})")
    g.add_argument("--keyholder-backend", choices=BACKENDS, default=None,
                   help=f"accelerator the key holder decrypts on (default: {DEFAULT_KEYHOLDER_BACKEND})")
    add_device_arguments(g)
    add_key_bits_arguments(g, default=None, help=f"Paillier modulus size (default: {DEFAULT_KEY_BITS})")
    g.add_argument("--out", default="build/demo", help="directory for report.json and accuracy.png")
    g.add_argument("--seed", type=int, default=_D.seed, help="seed of data split, init, batches, drop-outs")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = parser.add_argument_group("federated learning")
    f.add_argument("--clients", type=int, default=_D.clients, help="number of clients K")
    f.add_argument("--rounds", type=int, default=_D.rounds, help="FedAvg rounds")
    f.add_argument("--dataset", choices=sorted(DATASETS), default=_D.dataset)
    f.add_argument("--model", choices=sorted(MODELS), default=_D.model)
    f.add_argument("--local-epochs", type=int, default=_D.local_epochs, help="local epochs per round")
    f.add_argument("--lr", type=float, default=_D.lr, help="local SGD learning rate")
    f.add_argument("--batch-size", type=int, default=_D.batch_size, help="local SGD batch size")
    f.add_argument("--beta", type=float, default=_D.beta,
                   help="Dirichlet label-skew concentration (smaller: more non-IID)")
    f.add_argument("--drop-rate", type=float, default=_D.drop_rate,
                   help="probability that a client drops out mid-round (its upload is lost after "
                        "it encrypted)")
    e = parser.add_argument_group("encoding")
    e.add_argument("--alpha", type=float, default=_D.alpha, help="clipping bound of the weighted update")
    e.add_argument("--value-bits", type=int, default=_D.value_bits, help="quantised value width")
    e.add_argument("--guard-bits", type=int, default=_D.guard_bits,
                   help="guard bits per slot (up to 2^g clients)")
    d = parser.add_argument_group("fault injection (debugging)")
    d.add_argument("--garble-client", type=int, action="append", default=[], metavar="K",
                   help="client K uploads a corrupted ciphertext vector every round (repeatable)")
    d.add_argument("--garble-mode", choices=["truncate", "flip", "zero", "n2"], default=_D.garble_mode)
    d.add_argument("--nan-client", type=int, action="append", default=[], metavar="K",
                   help="client K computes a NaN update every round (repeatable)")
    d.add_argument("--overflow-client", type=int, action="append", default=[], metavar="K",
                   help="client K encrypts an out-of-range plaintext (decoding must detect it)")


class _WriteHandler(logging.Handler):
    """Route the loop's warnings (skipped/excluded clients) into the round table."""

    def __init__(self, write):
        super().__init__(logging.INFO)
        self._write = write

    def emit(self, record):
        self._write(f"  {record.getMessage()}")


def _role_moduli(keypair):
    """The moduli each role's accelerator will see (CRT encryption and decryption use p², q²)."""
    pub, priv = keypair
    return {"aggregator": [pub.n2], "clients": [priv.p2, priv.q2], "keyholder": [priv.p2, priv.q2]}


def _open_role(role, requested, default, opened, moduli, ready, args):
    """Open (or reuse) the backend of ``role`` and make it ready for ``moduli``.

    The sim backend builds, or loads from ``build/sim``, one simulated kernel
    per modulus width on first use: a tiny job per modulus here keeps that
    one-off cost out of the first round's timings and makes a failed build
    happen now. A backend that is unavailable (missing software, failed
    build) falls back to cpu only when the user did not name it.

    Returns
    -------
    (Accelerator, str)
        The accelerator and its backend name.
    """
    name = requested or default
    try:
        if name not in opened:
            opened[name] = get_accelerator(name, **backend_options(name, args))
        accel = opened[name]
        if name != "cpu":
            t0 = time.perf_counter()
            for m in moduli:
                accel.mulmod([1], [1], m)
            ready[role] = time.perf_counter() - t0
            print(f"{name} device for the {role} ready in {ready[role]:.1f} s "
                  f"(a simulated kernel is built once per width and cached under build/sim)")
        return accel, name
    except BackendUnavailable as e:
        if requested is not None:
            raise
        print(f"hefl demo: backend {name!r} unavailable for the {role} ({e}); falling back to "
              f"'cpu' (pass --backend {name} to make this an error)", file=sys.stderr)
        return _open_role(role, "cpu", default, opened, moduli, ready, args)


class _ReportFile:
    """``report.json`` in ``out``: rewritten after every round, kept when the run stops.

    ``extra`` holds what the command adds to the loop's report (key
    generation and device times, accelerator counters).
    """

    def __init__(self, out):
        self.out = Path(out)
        self._created = not self.out.exists()
        check_output_dir(self.out)
        self.extra = {}
        self.latest = None
        self._t0 = None

    def rounds_start(self):
        """Start the clock of ``seconds.total`` (the rounds, as before keygen and device setup)."""
        self._t0 = time.perf_counter()

    def _full(self, report):
        seconds = dict(report.get("seconds", {}), **self.extra.get("seconds", {}),
                       total=time.perf_counter() - self._t0)
        return {**report, **{k: v for k, v in self.extra.items() if k != "seconds"}, "seconds": seconds}

    def round(self, report):
        """Write the report so far (the loop's ``on_report``)."""
        self.latest = self._full(report)
        write_json(self.latest, self.out)

    def finish(self, report):
        """The complete report and its plot; their paths."""
        self.latest = self._full(report)
        return write_json(self.latest, self.out), plot_accuracy(self.latest, self.out / "accuracy.png")

    def stopped(self, error):
        """Mark what was written as interrupted or failed; remove a folder this run made and left empty."""
        if self.latest is None:
            if self._created:
                try:
                    os.rmdir(self.out)
                except OSError:
                    pass
            return
        interrupted = isinstance(error, KeyboardInterrupt)
        self.latest["status"] = "interrupted" if interrupted else "failed"
        self.latest["error"] = "interrupted" if interrupted else f"{type(error).__name__}: {error}"
        write_json(self.latest, self.out)
        print(f"hefl demo: kept the {self.latest['rounds_completed']} finished round(s) in "
              f"{self.out / 'report.json'}", file=sys.stderr)


def _config(args, key_bits):
    """The run's :class:`FedAvgConfig` from the parsed arguments (checked)."""
    cfg = FedAvgConfig(
        backend=args.backend or DEFAULT_BACKEND,
        client_backend=args.client_backend or DEFAULT_CLIENT_BACKEND,
        keyholder_backend=args.keyholder_backend or DEFAULT_KEYHOLDER_BACKEND,
        key_bits=key_bits, clients=args.clients, rounds=args.rounds,
        dataset=args.dataset, model=args.model, local_epochs=args.local_epochs, lr=args.lr,
        batch_size=args.batch_size, seed=args.seed, drop_rate=args.drop_rate, beta=args.beta,
        alpha=args.alpha, value_bits=args.value_bits, guard_bits=args.guard_bits,
        garble_clients=tuple(args.garble_client), garble_mode=args.garble_mode,
        nan_clients=tuple(args.nan_client), overflow_clients=tuple(args.overflow_client))
    cfg.check()
    return cfg


def _key_bits(args):
    """The key size: ``--key-bits`` or the default, announced and checked."""
    if args.key_bits is None:
        print(f"key size: {DEFAULT_KEY_BITS}-bit Paillier (the default, DEFAULT_KEY_BITS in "
              "hefl.fedavg.loop): with the aggregation on the simulated 2048-bit kernel, "
              "`make demo` on a fresh clone stays within ~3 minutes on 2 cores, kernel build "
              "included; --key-bits 2048 works too, on the 4096-bit kernel (a longer first "
              "build, ~2x the cycles per round)")
    else:
        print(f"key size: {args.key_bits}-bit Paillier (--key-bits)")
    bits = DEFAULT_KEY_BITS if args.key_bits is None else args.key_bits
    # The warning waits until --out is checked too: an error is the one line then.
    return checked_key_bits(bits, allow_insecure=args.insecure_test_key, prog="hefl demo", warn=False)


def _open_roles(args, cfg, keypair, opened, extra):
    """The three roles' accelerators (setting ``cfg``'s backend names to what opened)."""
    moduli, t_ready = _role_moduli(keypair), {}
    accel, cfg.backend = _open_role("aggregator", args.backend, DEFAULT_BACKEND, opened,
                                    moduli["aggregator"], t_ready, args)
    client_accel, cfg.client_backend = _open_role(
        "clients", args.client_backend, DEFAULT_CLIENT_BACKEND, opened, moduli["clients"], t_ready, args)
    kh_accel, cfg.keyholder_backend = _open_role(
        "keyholder", args.keyholder_backend, DEFAULT_KEYHOLDER_BACKEND, opened,
        moduli["keyholder"], t_ready, args)
    extra.setdefault("seconds", {})["device_ready"] = t_ready
    print(f"clients encrypt on {_named(cfg.client_backend, client_accel)}, the aggregator multiplies on "
          f"{_named(cfg.backend, accel)}, the key holder decrypts on {_named(cfg.keyholder_backend, kh_accel)}")
    return accel, client_accel, kh_accel


def _named(backend, accel):
    # "cpu (avx512-ifma)": which kernel a cpu backend runs.
    kernel = getattr(accel, "kernel", None)
    return f"{backend} ({kernel})" if kernel else backend


def _accelerator_stats(opened):
    return {name: {k: v for k, v in (getattr(a, "stats", None) or {}).items()
                   if isinstance(v, (int, float, str))}
            for name, a in opened.items()}


def _rounds(args, cfg, keypair, accels, report_file):
    """Run the rounds with the loop's warnings routed into the table; the report."""
    from tqdm import tqdm
    accel, client_accel, kh_accel = accels
    write = print if args.no_progress else tqdm.write
    fl_log = logging.getLogger("hefl.fedavg")
    handler = _WriteHandler(write)
    fl_log.addHandler(handler)
    propagate, fl_log.propagate = fl_log.propagate, False
    report_file.rounds_start()
    try:
        return run_fedavg(cfg, accel=accel, client_accel=client_accel, keyholder_accel=kh_accel,
                          keypair=keypair, progress=not args.no_progress, write=write,
                          on_report=report_file.round)
    finally:
        fl_log.removeHandler(handler)
        fl_log.propagate = propagate


def run(args):
    """Run the demo; return the exit status."""
    from hefl.paillier import generate_keypair

    key_bits = _key_bits(args)
    cfg = _config(args, key_bits)
    report_file = _ReportFile(args.out)          # before any work: a bad --out fails now
    if key_size_warning(key_bits):
        print(f"hefl demo: warning: {key_size_warning(key_bits)}", file=sys.stderr)
    opened = {}
    try:
        t0 = time.perf_counter()
        keypair = generate_keypair(key_bits)
        report_file.extra["seconds"] = {"keygen": time.perf_counter() - t0}
        print(f"key pair generated in {report_file.extra['seconds']['keygen']:.2f} s")
        accels = _open_roles(args, cfg, keypair, opened, report_file.extra)
        report = _rounds(args, cfg, keypair, accels, report_file)
        report_file.extra["accelerator_stats"] = _accelerator_stats(opened)
        path, png = report_file.finish(report)
    except BaseException as e:
        report_file.stopped(e)
        raise
    finally:
        for a in opened.values():
            a.close()
    report = report_file.latest
    print(f"final accuracy: HE {report['final_accuracy']:.4f}, plaintext "
          f"{report['plaintext_final_accuracy']:.4f} (gap {report['accuracy_gap']:.4f}); "
          f"{report['seconds']['total']:.1f} s for {cfg.rounds} rounds")
    print(f"wrote {path} and {png}")
    return 0
