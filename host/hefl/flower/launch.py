"""A local Flower federation: one SuperLink and K SuperNodes on 127.0.0.1.

:class:`LocalFederation` starts every Flower component as a separate OS
process, each in its own process group (session), on free ports, with all
Flower state under the output directory (``FLWR_HOME``) and Flower's
network side effects off (telemetry, update check, runtime ``uv sync``
of app dependencies: everything is already installed in this venv).
:meth:`LocalFederation.close` stops them all, also after a failure or a
timeout: SIGTERM to each process group, then SIGKILL to what is left. The
SuperLink starts its SuperExec (which runs the ServerApp) in a *detached*
session of its own; it is found by the ``--parent-pid`` on its command
line and stopped with the rest.

:func:`run_flower` is what ``hefl flower`` and ``make demo-flower`` run:
make (or reuse) a key pair, open the server's and the clients'
accelerators once (:func:`open_backend`: the sim backend builds its
simulated kernel here, not inside a Flower round), start the federation, ``flwr run`` the hefl
Flower App (``host/hefl/flower/app``) on it, and turn the ServerApp's
``server.json`` into ``report.json`` with per-round accuracy of the
encrypted run and of Flower's plaintext FedAvg on the same updates.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hefl.accel import get_accelerator
from hefl.errors import FlowerRunError, HeflError
from hefl.fedavg.data import load_federated
from hefl.flower.keys import PUBLIC_FILE, load_keypair, write_keypair
from hefl.paillier import generate_keypair

__all__ = ["LocalFederation", "FlowerRun", "run_flower", "APP_DIR", "free_port",
           "DEFAULT_BACKEND", "open_backend"]

#: the Flower App directory handed to ``flwr run``
APP_DIR = Path(__file__).resolve().parent / "app"

_BIN = Path(sys.executable).parent

#: The server's accelerator when none is asked for: the hardware model, as in
#: ``hefl demo`` (falls back to cpu, with a notice, where it cannot run).
DEFAULT_BACKEND = "sim"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(v))


def _wait_port(port, deadline, procs):
    while time.monotonic() < deadline:
        for name, p in procs:
            if p.poll() is not None:
                raise FlowerRunError(f"{name} exited with code {p.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise FlowerRunError(f"nothing listens on 127.0.0.1:{port} after the start timeout")


def _children_by_parent_pid(pid):
    """PIDs of processes started with ``--parent-pid <pid>`` (Flower's SuperExec)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for a, b in zip(argv, argv[1:]):
            if a == b"--parent-pid" and b == str(pid).encode():
                out.append(int(entry.name))
    return out


@dataclass
class LocalFederation:
    """SuperLink + SuperNodes as separate processes on 127.0.0.1.

    Parameters
    ----------
    workdir : Path
        Holds ``flwr-home`` (Flower's config and state) and ``logs``.
    node_configs : list of dict
        One node config per SuperNode (``partition-id``, ``key-dir``, ...).
    start_timeout : float
        Seconds the SuperLink may take to accept connections.

    Use as a context manager; :meth:`close` runs on exit whatever happened.
    """

    workdir: Path
    node_configs: list
    start_timeout: float = 60.0
    port: int = 0
    procs: list = field(default_factory=list)

    @property
    def env(self):
        """Environment of every Flower process: local state, no network side effects."""
        env = dict(os.environ)
        env.update({
            "FLWR_HOME": str(self.workdir / "flwr-home"),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            # SuperExec polls for new tasks once a second by default; every
            # round waits on it twice (train, evaluate).
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
            # Flower starts its helpers (flower-superexec, flwr-serverapp,
            # flwr-clientapp) by name: they must be this venv's.
            "PATH": f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        })
        return env

    def _spawn(self, name, argv):
        log = open(self.workdir / "logs" / f"{name}.log", "wb")
        try:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.procs.append((name, p))
        return p

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Start the SuperLink, wait for it, then start the SuperNodes."""
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        home = self.workdir / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # The connection `flwr run` uses (Flower reads $FLWR_HOME/config.toml).
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        self._spawn("superlink", [str(_BIN / "flower-superlink"), "--insecure",
                                  "--host", "127.0.0.1", "--port", str(self.port),
                                  "--disable-runtime-dependency-installation"])
        _wait_port(self.port, time.monotonic() + self.start_timeout, self.procs)
        for i, cfg in enumerate(self.node_configs):
            node_config = " ".join(f"{k}={_toml_value(v)}" for k, v in cfg.items())
            self._spawn(f"supernode-{i}", [
                str(_BIN / "flower-supernode"), "--insecure",
                "--superlink", f"127.0.0.1:{self.port}",
                "--host", "127.0.0.1", "--port", str(free_port()),
                "--node-config", node_config])

    def check_alive(self):
        """Raise if a component died."""
        for name, p in self.procs:
            if p.poll() is not None:
                raise FlowerRunError(f"{name} exited with code {p.returncode}; see "
                                     f"{self.workdir / 'logs' / (name + '.log')}")

    def run(self, run_config, timeout, echo=None):
        """``flwr run`` the hefl app on this federation and wait for it to end.

        Parameters
        ----------
        run_config : dict
            Overrides of the app's ``[tool.flwr.app.config]``.
        timeout : float
            Seconds for the whole run.
        echo : callable, optional
            Called with each line of the streamed run log.

        Raises
        ------
        FlowerRunError
            ``flwr run`` failed or timed out, or a component died.
        """
        self.check_alive()
        overrides = " ".join(f"{k}={_toml_value(v)}" for k, v in run_config.items())
        argv = [str(_BIN / "flwr"), "run", str(APP_DIR), "local", "--stream",
                "--run-config", overrides]
        log_path = self.workdir / "logs" / "flwr-run.log"
        with open(log_path, "w", encoding="utf-8") as log:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=self.env, stdin=subprocess.DEVNULL, text=True,
                                 errors="replace", start_new_session=True)
            self.procs.append(("flwr-run", p))

            def pump():
                for line in p.stdout:
                    log.write(line)
                    log.flush()
                    if echo is not None:
                        echo(line.rstrip("\n"))

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise FlowerRunError(f"flwr run did not finish within {timeout:.0f} s; "
                                     f"see {log_path}") from None
            reader.join(timeout=5)
        if rc != 0:
            raise FlowerRunError(f"flwr run exited with code {rc}; see {log_path}")

    def close(self, grace=10.0):
        """Stop every process this federation started (and Flower's helpers)."""
        groups = []
        for name, p in self.procs:
            groups.append(p.pid)
            # The SuperLink's SuperExec (and its ServerApp) run detached.
            groups.extend(_children_by_parent_pid(p.pid))
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        for name, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for name, p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


@dataclass
class FlowerRun:
    """Settings of one demo run (the ``hefl flower`` options)."""

    out: Path = Path("build/flower")
    clients: int = 3
    rounds: int = 3
    key_bits: int = 1024
    backend: str = None                           # server; None: DEFAULT_BACKEND or cpu
    client_backend: str = "cpu"
    dataset: str = "digits"
    local_epochs: int = 2
    seed: int = 0
    reference: bool = True
    timeout: float = 600.0
    garble: dict = field(default_factory=dict)    # partition -> (round, mode)
    nan: dict = field(default_factory=dict)       # partition -> round
    keys: Path = None                             # reuse a key directory


def open_backend(requested, moduli, echo=print):
    """Check a backend works for ``moduli`` before Flower starts; return its name.

    Opening a device here also builds (or loads) what it needs once, e.g.
    the sim backend's simulated kernel for each modulus width (cached under
    ``build/sim``), so the ServerApp and ClientApp processes find it ready.
    ``requested=None`` means :data:`DEFAULT_BACKEND`, falling back to
    ``cpu`` with a notice; an explicit request never falls back.
    """
    name = requested or DEFAULT_BACKEND
    if name == "cpu":
        return name
    try:
        t0 = time.perf_counter()
        accel = get_accelerator(name)
        try:
            for m in moduli:
                accel.mulmod([1], [1], m)
        finally:
            accel.close()
    except HeflError as e:
        if requested is not None:
            raise
        echo(f"hefl flower: backend {name!r} unavailable ({e}); falling back to 'cpu' "
             f"(pass --backend {name} to make this an error)")
        return "cpu"
    echo(f"hefl flower: {name} device ready in {time.perf_counter() - t0:.1f} s")
    return name


def _signal_to_exit(signum, frame):
    raise SystemExit(128 + signum)


def run_flower(cfg, echo=print):
    """Run the encrypted FedAvg demo on a local Flower federation.

    Returns
    -------
    dict
        The report, also written to ``cfg.out / "report.json"``.
    """
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("round-*")) + [out / "server.json", out / "report.json"]:
        old.unlink(missing_ok=True)
    t0 = time.perf_counter()
    if cfg.keys:
        key_dir = Path(cfg.keys).resolve()
        pub, priv = load_keypair(key_dir)
    else:
        key_dir = out / "keys"
        pub, priv = generate_keypair(cfg.key_bits)
        write_keypair(key_dir, pub, priv)
    backend = open_backend(cfg.backend, [pub.n2], echo)
    client_backend = open_backend(cfg.client_backend or "cpu", [priv.p2, priv.q2], echo)
    data = load_federated(cfg.dataset, cfg.clients, seed=cfg.seed)
    node_configs = []
    for i in range(cfg.clients):
        nc = {"partition-id": i, "num-partitions": cfg.clients, "key-dir": str(key_dir)}
        if i in cfg.garble:
            nc["garble-round"], nc["garble-mode"] = cfg.garble[i]
        if i in cfg.nan:
            nc["nan-round"] = cfg.nan[i]
        node_configs.append(nc)
    run_config = {
        "num-server-rounds": cfg.rounds, "num-clients": cfg.clients, "dataset": cfg.dataset,
        "data-seed": cfg.seed, "seed": cfg.seed, "local-epochs": cfg.local_epochs,
        "backend": backend, "client-backend": client_backend, "reference": cfg.reference,
        "total-examples": int(sum(data.counts)), "public-key": str(key_dir / PUBLIC_FILE),
        "out-dir": str(out),
    }
    echo(f"hefl flower: {cfg.clients} SuperNodes + SuperLink on 127.0.0.1, {cfg.rounds} rounds, "
         f"{pub.n.bit_length()}-bit key ({pub.fingerprint}); aggregation on {backend}, "
         f"clients on {client_backend}")
    # SIGTERM (make killed, CI timeout) must unwind through close() too.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _signal_to_exit) if main_thread else None
    try:
        with LocalFederation(out, node_configs) as fed:
            echo(f"hefl flower: SuperLink on 127.0.0.1:{fed.port}; logs in {out / 'logs'}")

            def progress(line):
                if "[ROUND" in line or "hefl:" in line:
                    echo("  " + line.split(":", 1)[-1].strip())

            fed.run(run_config, cfg.timeout, echo=progress)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    report = make_report(out, cfg, time.perf_counter() - t0)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    echo(f"{'round':>5} {'HE acc':>7} {'plain':>7} {'max|Δ|':>9} {'bound':>9} {'bytes/client':>12}"
         f" {'agg s':>7} {'cycles':>10}  excluded")
    for r in report["rounds"]:
        excl = "; ".join(f"partition {r['partition_ids'].get(k, '?')} (node {k}): {v}"
                         for k, v in r["excluded"].items()) or "-"
        echo(f"{r['round']:>5} {r['accuracy']:>7.4f} {_fmt(r['plaintext_accuracy'], '7.4f', 7)} "
             f"{_fmt(r['max_abs_diff'], '9.2e', 9)} {r['bound']:>9.2e} {r['bytes_up']:>12} "
             f"{r['aggregate_s']:>7.3f} {_fmt(r['cycles'], '>10,', 10)}  {excl}")
    echo(f"final accuracy {report['final_accuracy']:.4f} (HE), "
         f"{_fmt(report['plaintext_final_accuracy'], '.4f')} (Flower plaintext FedAvg); "
         f"{report['seconds']:.1f} s; report {out / 'report.json'}")
    return report


def _last_exception(log_path):
    """The exception line of the last traceback in a Flower log, or None."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    cause, in_tb = None, False
    for line in lines:
        if line.startswith("Traceback"):
            in_tb = True
        elif in_tb and line and not line[0].isspace():
            cause, in_tb = line.strip(), False
    return cause


def _fmt(v, spec, width=0):
    return f"{'-':>{width}}" if v is None else format(v, spec)


def make_report(out, cfg, seconds):
    """``report.json`` from the ServerApp's ``server.json``."""
    path = Path(out) / "server.json"
    if not path.is_file():
        cause = _last_exception(Path(out) / "logs" / "flwr-run.log")
        raise FlowerRunError(f"the ServerApp wrote no {path.name}"
                             + (f" ({cause})" if cause else "") + f"; see {Path(out) / 'logs'}")
    server = json.loads(path.read_text())
    rounds, initial = [], None
    for h in server["rounds"]:
        ev = h.get("evaluate")
        if h["round"] == 0:      # the public initial model, tested in round 1
            initial = ev
            continue
        if ev is None or "summands" not in h:
            raise FlowerRunError(f"round {h['round']} has no aggregate or no evaluation; "
                                 f"see {Path(out) / 'logs'}")
        up = list(h["bytes_up"].values())
        rounds.append({
            "round": h["round"], "accuracy": ev["accuracy"], "loss": ev["loss"],
            "plaintext_accuracy": ev.get("plaintext-accuracy"),
            "plaintext_loss": ev.get("plaintext-loss"),
            "max_abs_diff": ev.get("max-abs-diff"), "bound": ev["bound"],
            "included": h["included"], "excluded": h["excluded"],
            "partition_ids": h["partition_ids"], "summands": h["summands"],
            "weight_sum": h["weight_sum"], "bytes_up": max(up) if up else 0,
            "aggregate_s": h["aggregate_s"], "cycles": h.get("cycles"),
        })
    if len(rounds) != cfg.rounds:
        raise FlowerRunError(f"{len(rounds)} of {cfg.rounds} rounds completed")
    return {
        "backend": server["settings"]["backend"],
        "client_backend": server["settings"]["client-backend"], "key_bits": server["key_bits"],
        "key_fingerprint": server["key_fingerprint"], "clients": cfg.clients,
        "dataset": cfg.dataset, "model_size": server["model_size"],
        "encoding": server["encoding"], "reference": cfg.reference,
        "initial_accuracy": initial["accuracy"] if initial else None,
        "plaintext_reference": "Flower's FedAvg (aggregate_arrayrecords) over the same "
                               "accepted client updates, every round",
        "rounds": rounds, "final_accuracy": rounds[-1]["accuracy"],
        "plaintext_final_accuracy": rounds[-1]["plaintext_accuracy"],
        "seconds": seconds, "server_seconds": server["seconds"],
    }
