"""Run a Flower App on a local federation, then check it as a key holder.

Two runtimes, the two a Flower user has:

* :class:`LocalFederation` (Deployment Runtime): a SuperLink and K
  SuperNodes as separate processes on 127.0.0.1, **TLS on** (a fresh CA and
  server certificate, :mod:`hefl.flower.tls`) and **SuperNode
  authentication on** (an EC key pair per SuperNode, its public half
  registered with ``flwr supernode register``, the SuperLink started with
  ``--enable-supernode-auth``); ``flwr run APP local`` runs the app on it.
* :class:`SimulationFederation` (Simulation Runtime): ``flwr run APP sim
  --federation-config num-supernodes=K``, which starts Flower's own local
  simulation SuperLink (on loopback, without TLS: nothing leaves the
  machine, and Flower offers no TLS there).

Every process of a run carries a random marker in its environment
(``HEFL_FLOWER_RUN``), inherited by everything Flower starts below it
(SuperExecs, ServerApp and ClientApp processes, the simulation's Ray
workers, detached ones included). :meth:`_Processes.close` stops them all:
SIGTERM to each process group it started and to every process carrying the
marker, then SIGKILL to what is left. :func:`run_flower` runs it on SIGHUP,
SIGTERM and SIGINT as well as at the end, after success or failure.

:func:`run_flower` is what ``hefl flower`` and ``make demo-flower`` run:
make (or reuse) a key pair, open the accelerators once
(:func:`open_backend`), run the app for ``rounds`` rounds, then, as a key
holder in this process (:mod:`hefl.flower.local_app`), decrypt each
round's global, compare it with Flower's FedAvg of the client models
trained from the previous one, compute the plaintext FedAvg reference over
the same partitions (no client model is sent for it), decrypt and save the
final model, and write ``report.json``.
"""

import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hefl.accel import get_accelerator
from hefl.errors import FlowerConfigError, FlowerRunError, HeflError
from hefl.flower.keys import PUBLIC_FILE, load_keypair, write_keypair
from hefl.flower.local_app import app_config
from hefl.flower.protocol import RUN_DEFAULTS
from hefl.flower.tls import make_loopback_certificates, write_private_key
from hefl.paillier import generate_keypair
from hefl.paths import repo_root
from hefl.reports import check_output_dir

__all__ = ["LocalFederation", "SimulationFederation", "FlowerRun", "run_flower", "EXAMPLE_APP",
           "example_app", "free_port", "DEFAULT_BACKEND", "open_backend", "MARKER", "RUNTIMES",
           "marked_processes", "toml_value", "node_auth_key"]

#: environment variable every process of one run carries (its value is random)
MARKER = "HEFL_FLOWER_RUN"
#: the example app, relative to the checkout
EXAMPLE_APP = Path("examples") / "flower-multitensor"
#: ``--runtime`` choices
RUNTIMES = ("deployment", "simulation")
#: The server's accelerator when none is asked for: the hardware model, as in
#: ``hefl demo`` (falls back to cpu, with a notice, where it cannot run).
DEFAULT_BACKEND = "sim"

_BIN = Path(sys.executable).parent
_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def example_app():
    """The example Flower App of the checkout (``examples/flower-multitensor``)."""
    root = repo_root()
    if root is None or not (root / EXAMPLE_APP / "pyproject.toml").is_file():
        raise FlowerConfigError(f"no {EXAMPLE_APP} here (an installed hefl has no examples): "
                                f"pass --app PATH of a Flower App")
    return root / EXAMPLE_APP


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(v):
    """``v`` as a TOML value for Flower's ``--run-config`` / ``--node-config`` strings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(v))


def _config_string(values):
    return " ".join(f"{k}={toml_value(v)}" for k, v in values.items())


def marked_processes(token):
    """PIDs of the processes whose environment holds ``MARKER=token``."""
    want = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if want in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return [p for p in found if p != os.getpid()]


def _signal(pid, sig, group=False):
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Processes:
    """The processes of one run, all carrying one marker; stopped together."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.token = secrets.token_hex(8)
        self.procs = []
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.home = self.workdir / "flwr-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.extra_env = {}

    @property
    def env(self):
        """Environment of every Flower process: local state, no network side effects."""
        env = dict(os.environ)
        env.update({
            MARKER: self.token,
            "FLWR_HOME": str(self.home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            # Everything is installed in this venv; never `uv sync` at run time.
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            # SuperExec polls for new tasks once a second by default.
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
            # Flower starts its helpers (flower-superexec, flwr-serverapp,
            # flwr-clientapp) by name: they must be this venv's.
            "PATH": f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.extra_env,
        })
        return env

    def spawn(self, name, argv, **kw):
        """Start ``argv`` in a new session, output to ``logs/<name>.log``."""
        log = open(self.workdir / "logs" / f"{name}.log", "wb")
        try:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                 stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        finally:
            log.close()
        self.procs.append((name, p))
        return p

    def check_alive(self):
        """Raise if a long-running component died."""
        for name, p in self.procs:
            if p.poll() is not None and not name.startswith(("register-", "flwr-run")):
                raise FlowerRunError(f"{name} exited with code {p.returncode}; see "
                                     f"{self.workdir / 'logs' / (name + '.log')}")

    def run_flwr(self, argv, timeout, echo=None):
        """Run ``flwr ...`` to its end, streaming its output to a log (and ``echo``)."""
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
        """Stop every process of this run: SIGTERM, then SIGKILL after ``grace`` seconds.

        SIGHUP, SIGTERM and SIGINT are held back meanwhile (delivered after),
        so a second signal cannot cut the cleanup short.
        """
        main = threading.current_thread() is threading.main_thread()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS) if main else None
        try:
            self._stop(grace)
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _stop(self, grace):
        for _, p in self.procs:
            _signal(p.pid, signal.SIGTERM, group=True)
        for pid in marked_processes(self.token):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if all(p.poll() is not None for _, p in self.procs) \
                    and not marked_processes(self.token):
                break
            time.sleep(0.1)
        # Whatever is left, and whatever was started meanwhile.
        for _ in range(20):
            left = marked_processes(self.token)
            for _, p in self.procs:
                if p.poll() is None:
                    _signal(p.pid, signal.SIGKILL, group=True)
            if not left:
                break
            for pid in left:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.1)
        for _, p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []

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
        """Start the long-running components (none for a bare process set)."""


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


def node_auth_key(directory, i):
    """An EC P-384 key pair for SuperNode ``i`` in OpenSSH form (private 0600); paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP384R1())
    private = Path(directory) / f"supernode-{i}.key"
    write_private_key(private, key, openssh=True)
    public = private.with_suffix(".pub")
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH))
    return private, public


class LocalFederation(_Processes):
    """SuperLink + SuperNodes as separate processes on 127.0.0.1 (Deployment Runtime).

    Parameters
    ----------
    workdir : Path
        Holds ``flwr-home`` (Flower's config and state), ``logs`` and ``tls``.
    node_configs : list of dict
        One node config per SuperNode (``partition-id``, ``hefl-key-dir``, ...).
    tls : bool
        Serve every Flower API over TLS (default); ``False`` is ``--insecure``.
    supernode_auth : bool
        Register each SuperNode's public key and let only those connect
        (needs TLS: Flower refuses it otherwise).
    start_timeout : float
        Seconds the SuperLink may take to accept connections.

    Use as a context manager; :meth:`close` runs on exit whatever happened.
    :attr:`node_ids` maps SuperNode index to its Flower node id when
    authentication assigns them (``flwr supernode register``).
    """

    def __init__(self, workdir, node_configs, *, tls=True, supernode_auth=True,
                 start_timeout=60.0):
        super().__init__(workdir)
        if supernode_auth and not tls:
            raise FlowerConfigError("SuperNode authentication needs TLS (Flower refuses it "
                                    "with --insecure)")
        self.node_configs = list(node_configs)
        self.tls, self.supernode_auth = bool(tls), bool(supernode_auth)
        self.start_timeout = start_timeout
        self.port = 0
        self.certs = None
        self.node_ids = {}

    def tls_args(self, role):
        """TLS options of a ``superlink`` or ``supernode`` command line (``--insecure`` without)."""
        if not self.tls:
            return ["--insecure"]
        c = self.certs
        server = ["--ssl-certfile", str(c.server_cert), "--ssl-keyfile", str(c.server_key),
                  "--ssl-ca-certfile", str(c.ca_cert)]
        if role == "superlink":
            return server
        # A SuperNode verifies the SuperLink, and serves its own Runtime API
        # (to its SuperExec) over TLS with the same loopback certificate.
        return ["--root-certificates", str(c.ca_cert), *server]

    def start(self):
        """Certificates, the SuperLink, node registration, then the SuperNodes."""
        self.port = free_port()
        connection = f'[superlink]\ndefault = "local"\n\n[superlink.local]\n' \
                     f'address = "127.0.0.1:{self.port}"\n'
        if self.tls:
            self.certs = make_loopback_certificates(self.workdir / "tls")
            connection += f"root-certificates = {toml_value(self.certs.ca_cert)}\n"
        else:
            connection += "insecure = true\n"
        # The connection `flwr run` uses (Flower reads $FLWR_HOME/config.toml).
        (self.home / "config.toml").write_text(connection)
        self.spawn("superlink", [str(_BIN / "flower-superlink"), *self.tls_args("superlink"),
                                 *(["--enable-supernode-auth"] if self.supernode_auth else []),
                                 "--host", "127.0.0.1", "--port", str(self.port),
                                 "--disable-runtime-dependency-installation"])
        _wait_port(self.port, time.monotonic() + self.start_timeout, self.procs)
        keys = self._register_nodes() if self.supernode_auth else {}
        for i, cfg in enumerate(self.node_configs):
            auth = ["--auth-supernode-private-key", str(keys[i])] if i in keys else []
            self.spawn(f"supernode-{i}", [
                str(_BIN / "flower-supernode"), *self.tls_args("supernode"),
                "--superlink", f"127.0.0.1:{self.port}", "--host", "127.0.0.1",
                "--port", str(free_port()), *auth, "--node-config", _config_string(cfg)])

    def _register_nodes(self):
        """One key pair per SuperNode, public halves registered; index -> private key path."""
        d = self.workdir / "supernode-auth"
        d.mkdir(exist_ok=True)
        keys, regs = {}, []
        for i in range(len(self.node_configs)):
            keys[i], public = node_auth_key(d, i)
            regs.append(self.spawn(f"register-{i}", [str(_BIN / "flwr"), "supernode", "register",
                                                     str(public), "local"]))
        for i, p in enumerate(regs):
            try:
                rc = p.wait(timeout=self.start_timeout)
            except subprocess.TimeoutExpired:
                raise FlowerRunError(f"flwr supernode register {i} did not finish") from None
            text = (self.workdir / "logs" / f"register-{i}.log").read_text(errors="replace")
            found = re.search(r"SuperNode (\d+) registered", text)
            if rc != 0 or not found:
                raise FlowerRunError(f"flwr supernode register failed for SuperNode {i}; see "
                                     f"{self.workdir / 'logs' / f'register-{i}.log'}")
            self.node_ids[i] = int(found.group(1))
        return keys

    def run(self, app, run_config, timeout, echo=None):
        """``flwr run`` the app on this federation and wait for it to end.

        Raises
        ------
        FlowerRunError
            ``flwr run`` failed or timed out, or a component died.
        """
        self.check_alive()
        self.run_flwr([str(_BIN / "flwr"), "run", str(app), "local", "--stream",
                       "--run-config", _config_string(run_config)], timeout, echo)


class SimulationFederation(_Processes):
    """Flower's Simulation Runtime: ``flwr run APP sim`` with K virtual SuperNodes.

    ``flwr`` starts a local simulation SuperLink itself (detached, on the
    ports of ``FLWR_LOCAL_SUPERLINK_HTTP_API_PORT`` and
    ``FLWR_LOCAL_CONTROL_API_PORT``, here free ones) and the simulation
    runs the ClientApps on Ray workers; all of them carry the run's marker
    and are stopped by :meth:`close`. Node configs hold only Flower's
    ``partition-id`` and ``num-partitions``: keys come from the run config.
    """

    def __init__(self, workdir, num_supernodes, *, cpus_per_client=1):
        super().__init__(workdir)
        self.num_supernodes = int(num_supernodes)
        self.cpus_per_client = cpus_per_client
        self.extra_env = {"FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
                          "FLWR_LOCAL_CONTROL_API_PORT": str(free_port())}

    def start(self):
        """Write the ``sim`` connection (Flower's ``:local:`` address)."""
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "sim"\n\n[superlink.sim]\naddress = ":local:"\n')

    def run(self, app, run_config, timeout, echo=None):
        """``flwr run APP sim`` to its end."""
        federation = {"num-supernodes": self.num_supernodes,
                      "client-resources-num-cpus": self.cpus_per_client}
        self.run_flwr([str(_BIN / "flwr"), "run", str(app), "sim", "--stream",
                       "--federation-config", _config_string(federation),
                       "--run-config", _config_string(run_config)], timeout, echo)


@dataclass
class FlowerRun:
    """Settings of one run (the ``hefl flower`` options)."""

    out: Path = Path("build/flower")
    app: Path = None                              # None: the example app
    runtime: str = "deployment"
    clients: int = 3
    rounds: int = 3
    key_bits: int = 1024
    backend: str = None                           # server; None: DEFAULT_BACKEND or cpu
    backend_options: dict = field(default_factory=dict)   # xclbin / url for get_accelerator
    client_backend: str = "cpu"
    tls: bool = True
    supernode_auth: bool = True
    send_plaintext_reference: bool = False
    run_config: dict = field(default_factory=dict)   # more overrides of the app's config
    timeout: float = 600.0
    keys: Path = None                             # reuse a key directory


def open_backend(requested, moduli, echo=print, options=None):
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
        accel = get_accelerator(name, **(options or {}))
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


class _ExitOnSignals:
    """SIGHUP, SIGTERM and SIGINT unwind the stack (so every ``finally`` runs)."""

    def __enter__(self):
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = {s: signal.signal(s, _signal_to_exit) for s in _SIGNALS}
        return self

    def __exit__(self, *exc):
        if self.active:
            for s, h in self.previous.items():
                signal.signal(s, h)


def _run_config(cfg, app_dir, key_dir, backend, client_backend):
    declared = app_config(app_dir).get("config", {})
    missing = sorted(set(RUN_DEFAULTS) - set(declared))
    if missing:
        raise FlowerConfigError(f"{app_dir}/pyproject.toml does not declare {', '.join(missing)} "
                                f"under [tool.flwr.app.config] (flwr run overrides declared "
                                f"keys only; defaults: hefl.flower.protocol.RUN_DEFAULTS)")
    values = {
        "hefl-backend": backend, "hefl-client-backend": client_backend,
        "hefl-xclbin": str(cfg.backend_options.get("xclbin") or ""),
        "hefl-device": str(cfg.backend_options.get("url") or ""),
        "hefl-send-plaintext-reference": bool(cfg.send_plaintext_reference),
        "hefl-out-dir": str(Path(cfg.out).resolve()),
    }
    if cfg.runtime == "simulation":
        # Virtual nodes have no node config of their own: keys by run config.
        values["hefl-key-dir"] = str(key_dir)
    else:
        values["hefl-public-key"] = str(key_dir / PUBLIC_FILE)
    # The usual Flower App keys, where the app has them.
    for key, value in (("num-server-rounds", cfg.rounds), ("min-nodes", cfg.clients)):
        if key in declared:
            values[key] = value
    unknown = sorted(set(cfg.run_config) - set(declared))
    if unknown:
        raise FlowerConfigError(f"the app declares no run config key(s) {', '.join(unknown)}")
    return {**values, **cfg.run_config}


def _keys(cfg, out):
    if cfg.keys:
        key_dir = Path(cfg.keys).resolve()
        pub, priv = load_keypair(key_dir)
    else:
        key_dir = out / "keys"
        pub, priv = generate_keypair(cfg.key_bits)
        write_keypair(key_dir, pub, priv)
    return key_dir, pub, priv


def _clean(out):
    for old in (list(out.glob("round-*")) + [out / n for n in (
            "server.json", "report.json", "initial.npz", "final-global.hefl.npz",
            "final-model.npz")]):
        old.unlink(missing_ok=True)


def run_flower(cfg, echo=print):
    """Run a Flower App with encrypted FedAvg on a local federation; check and report it.

    Returns
    -------
    dict
        The report, also written to ``cfg.out / "report.json"``.
    """
    from hefl.flower.report import make_report
    if cfg.runtime not in RUNTIMES:
        raise FlowerConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, "
                                f"not {cfg.runtime!r}")
    if cfg.runtime == "simulation" and importlib.util.find_spec("ray") is None:
        raise FlowerConfigError("Flower's Simulation Runtime needs Ray: "
                                "pip install 'flwr[simulation]==1.42.0'")
    out = check_output_dir(Path(cfg.out)).resolve()
    app_dir = Path(cfg.app).resolve() if cfg.app else example_app()
    _clean(out)
    t0 = time.perf_counter()
    key_dir, pub, priv = _keys(cfg, out)
    backend = open_backend(cfg.backend, [pub.n2], echo, cfg.backend_options)
    client_backend = open_backend(cfg.client_backend or "cpu", [priv.p2, priv.q2], echo)
    run_config = _run_config(cfg, app_dir, key_dir, backend, client_backend)
    node_configs = [{"partition-id": i, "num-partitions": cfg.clients,
                     "hefl-key-dir": str(key_dir)} for i in range(cfg.clients)]
    if cfg.runtime == "simulation":
        federation = SimulationFederation(out, cfg.clients)
        where = "Flower's Simulation Runtime"
    else:
        federation = LocalFederation(out, node_configs, tls=cfg.tls,
                                     supernode_auth=cfg.supernode_auth)
        where = (f"SuperLink + {cfg.clients} SuperNodes on 127.0.0.1, "
                 f"TLS {'on' if cfg.tls else 'OFF'}, SuperNode auth "
                 f"{'on' if cfg.supernode_auth else 'off'}")
    echo(f"hefl flower: {app_dir.name} on {where}; {cfg.rounds} rounds, {pub.bits}-bit key "
         f"({pub.fingerprint}); aggregation on {backend}, clients on {client_backend}")
    if cfg.send_plaintext_reference:
        echo("hefl flower: WARNING: --send-plaintext-reference: clients also send their models "
             "in the clear")

    def progress(line):
        if "[ROUND" in line or "hefl:" in line:
            echo("  " + line.split(":", 1)[-1].strip())

    with _ExitOnSignals():
        with federation as fed:
            if cfg.runtime == "deployment":
                echo(f"hefl flower: SuperLink on 127.0.0.1:{fed.port}; logs in {out / 'logs'}")
            t_run = time.perf_counter()
            fed.run(app_dir, run_config, cfg.timeout, echo=progress)
            federation_s = time.perf_counter() - t_run
    report = make_report(out, cfg, app_dir, run_config, node_configs, priv,
                         node_ids=getattr(federation, "node_ids", {}),
                         seconds=time.perf_counter() - t0, federation_seconds=federation_s,
                         echo=echo)
    return report
