"""The example app on real Flower runtimes: SuperLink + 3 SuperNodes, and the Simulation Runtime.

One run per runtime (module fixtures; 512-bit key, cpu backend, 2 rounds),
launched as ``hefl flower`` launches it: the Deployment Runtime with TLS
and SuperNode authentication on, the Simulation Runtime through ``flwr
run`` with Flower's local simulation SuperLink. The tests then check,
independently of the launcher's own report:

* the encrypted global of each round, decrypted here, equals Flower's
  FedAvg (``aggregate_arrayrecords``) of the client models *recomputed
  here* with the example's task functions from the previous decrypted
  global, within the quantisation bound;
* what the server received from the clients: ciphertext vectors and
  scalar metrics only;
* report.json holds what ``make demo-flower`` promises;
* no process of a run outlives it: at the end, on a timeout, and on
  SIGHUP, SIGTERM or SIGINT to ``hefl flower`` mid-run.
"""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import flwr  # noqa: E402,F401  (the flower extra is part of make setup: never skip)

from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords  # noqa: E402

from _flower_local import EXAMPLE_DIR, example  # noqa: E402
from hefl.errors import FlowerRunError  # noqa: E402
from hefl.flower.keys import write_keypair  # noqa: E402
from hefl.flower.local_app import app_config  # noqa: E402
from hefl.flower.protocol import CIPHER_STYPE  # noqa: E402
from hefl.flower.records import decrypt_arrays, inspect_encrypted, load_arrays  # noqa: E402
from hefl.flower.records import load_encrypted  # noqa: E402
from hefl.flower.launch import FlowerRun, run_flower  # noqa: E402
from hefl.flower.report import fedavg_tolerance  # noqa: E402
from hefl.paillier import generate_keypair  # noqa: E402
from hefl.reports import FIELD_NAMES  # noqa: E402

ROUNDS = 2
CLIENTS = 3

pytestmark = pytest.mark.slow


def _need_ray():
    import ray  # noqa: F401  (flwr[simulation] is part of make setup: never skip)


def _flwr_home_processes(out):
    """PIDs of processes whose FLWR_HOME is this run's (every Flower process of it)."""
    marker = f"FLWR_HOME={Path(out) / 'flwr-home'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module", params=["deployment", "simulation"])
def run(request, tmp_path_factory):
    """Run the example app once on the runtime; (runtime, report, out, keys)."""
    if request.param == "simulation":
        _need_ray()
    out = tmp_path_factory.mktemp(f"flower-{request.param}")
    pub, priv = generate_keypair(512)
    write_keypair(out / "keys", pub, priv)
    cfg = FlowerRun(out=out, runtime=request.param, clients=CLIENTS, rounds=ROUNDS, key_bits=512,
                    backend="cpu", timeout=300.0, keys=out / "keys")
    t0 = time.perf_counter()
    report = run_flower(cfg)
    print(f"{request.param}: {time.perf_counter() - t0:.1f} s")
    return request.param, report, out, (pub, priv)


def _client_models(arrays, server_round, settings):
    """The three clients' clipped models trained from ``arrays``, recomputed here."""
    task = example("task")
    alpha = settings["hefl-alpha"]
    records = []
    for k in range(CLIENTS):
        (x, y), _ = task.load_partition(k, CLIENTS, seed=settings["seed"], beta=settings["beta"])
        rng = np.random.default_rng([settings["seed"], k, server_round])
        trained, _ = task.train({n: a.numpy() for n, a in arrays.items()}, x, y,
                                epochs=settings["local-epochs"], lr=settings["lr"],
                                batch_size=settings["batch-size"], rng=rng)
        clipped = ArrayRecord({n: Array(np.clip(v, -alpha, alpha)) for n, v in trained.items()})
        records.append(RecordDict({"arrays": clipped,
                                   "metrics": MetricRecord({"num-examples": len(y)})}))
    return records


def test_each_global_equals_flower_fedavg_of_the_same_client_models(run):
    runtime, report, out, (pub, priv) = run
    settings = app_config(EXAMPLE_DIR)["config"]
    previous = load_arrays(out / "initial.npz")
    for r in range(1, ROUNDS + 1):
        record = load_encrypted(out / f"round-{r}.hefl.npz")
        info = inspect_encrypted(record, pub)
        assert info.round == r and info.clients == CLIENTS
        he = decrypt_arrays(record, priv)
        fedavg = aggregate_arrayrecords(_client_models(previous, r, settings), "num-examples")
        err = max(float(np.max(np.abs(he[k].numpy().astype(np.float64)
                                      - fedavg[k].numpy().astype(np.float64))))
                  for k in fedavg.keys())
        bound = fedavg_tolerance(info, fedavg)
        print(f"{runtime} round {r}: max |HE - Flower FedAvg| = {err:.3e} (bound {bound:.3e})")
        assert err <= bound
        assert [he[k].numpy().dtype for k in he.keys()] == [np.float32] * 4
        previous = he          # every client starts the next round from it


def test_the_server_received_ciphertext_and_scalar_metrics_only(run):
    runtime, report, out, _ = run
    server = json.loads((out / "server.json").read_text())
    for h in server["rounds"]:
        for phase in (h["received"], h["evaluate"]["received"]):
            for node, records in phase.items():
                for rec in records:
                    assert rec["type"] in ("ArrayRecord", "MetricRecord"), rec
                    if rec["type"] == "ArrayRecord":
                        assert [e[1] for e in rec["entries"]] == [CIPHER_STYPE]
                    else:
                        assert set(rec["keys"].values()) <= {"int", "float"}
    assert report["received"]["array_stypes"] == [CIPHER_STYPE]
    assert report["plaintext_sent"] is False and report["send_plaintext_reference"] is False


def test_report_holds_what_the_demo_promises(run):
    runtime, report, out, (pub, _) = run
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["schema"] == "hefl-flower/2" and on_disk["runtime"] == runtime
    for name in ("model_parameters", "final_accuracy", "plaintext_final_accuracy", "key_bits"):
        assert name in FIELD_NAMES and on_disk[name] is not None, name
    for name in ("max_abs_error", "bound", "bytes_up"):
        assert name in FIELD_NAMES and all(r[name] is not None for r in on_disk["rounds"]), name
    assert on_disk["model_parameters"] == 32 * 64 + 32 + 10 * 32 + 10
    assert on_disk["key_bits"] == 512 and on_disk["key_fingerprint"] == pub.fingerprint
    assert len(on_disk["rounds"]) == ROUNDS
    assert all(r["max_abs_error"] <= r["bound"] for r in on_disk["rounds"])
    assert all(r["excluded"] == {} and r["partitions"] == [0, 1, 2] for r in on_disk["rounds"])
    assert abs(on_disk["final_accuracy"] - on_disk["plaintext_final_accuracy"]) <= 0.005
    assert on_disk["final_accuracy"] > 0.85
    # The clients' own evaluation of the decrypted global agrees with the key holder's.
    assert on_disk["rounds"][-1]["federated_accuracy"] == pytest.approx(on_disk["final_accuracy"])
    assert (out / "final-model.npz").is_file()
    if runtime == "deployment":
        assert on_disk["tls"] is True and on_disk["supernode_auth"] is True
        assert "https://127.0.0.1" in (out / "logs" / "superlink.log").read_text()


def test_no_process_outlives_the_run(run):
    _, _, out, _ = run
    assert _flwr_home_processes(out) == []


def test_timeout_stops_every_process(tmp_path):
    """A run that overruns its deadline raises and leaves no Flower process behind."""
    cfg = FlowerRun(out=tmp_path, clients=2, rounds=1, key_bits=512, backend="cpu", timeout=0.5)
    with pytest.raises(FlowerRunError, match="did not finish"):
        run_flower(cfg)
    assert _flwr_home_processes(tmp_path) == []


@pytest.mark.parametrize("sig,runtime", [(signal.SIGHUP, "deployment"),
                                         (signal.SIGTERM, "simulation"),
                                         (signal.SIGINT, "deployment")],
                         ids=["SIGHUP-deployment", "SIGTERM-simulation", "SIGINT-deployment"])
def test_a_signal_mid_run_leaves_no_process(sig, runtime, tmp_path):
    """``hefl flower`` killed mid-round stops the SuperLink, SuperNodes, SuperExecs, all."""
    if runtime == "simulation":
        _need_ray()
    argv = [str(Path(sys.executable).parent / "hefl"), "flower", "--out", str(tmp_path),
            "--runtime", runtime, "--clients", "2", "--rounds", "5", "--key-bits", "512", "--insecure-test-key",
            "--backend", "cpu"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL)
    started, lines = threading.Event(), []

    def read():
        for line in p.stdout:
            lines.append(line)
            if "[ROUND 1" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert started.wait(180), "".join(lines)
        assert _flwr_home_processes(tmp_path), "no Flower process found mid-run"
        p.send_signal(sig)
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 128 + sig, "".join(lines)
    assert _flwr_home_processes(tmp_path) == []


def test_only_registered_supernodes_may_join(tmp_path):
    """SuperNode authentication: a SuperNode whose key was not registered is refused."""
    from hefl.flower.launch import _BIN, LocalFederation, node_auth_key, free_port
    with LocalFederation(tmp_path, [{"partition-id": 0, "num-partitions": 1}]) as fed:
        (registered,) = fed.node_ids.values()
        key, _ = node_auth_key(tmp_path, 99)
        rogue = fed.spawn("rogue", [
            str(_BIN / "flower-supernode"), *fed.tls_args("supernode"),
            "--superlink", f"127.0.0.1:{fed.port}", "--host", "127.0.0.1",
            "--port", str(free_port()), "--auth-supernode-private-key", str(key),
            "--max-retries", "1"])
        assert rogue.wait(timeout=60) != 0
        assert "Failed to activate SuperNode" in (tmp_path / "logs" / "rogue.log").read_text()
        deadline = time.monotonic() + 30
        log = tmp_path / "logs" / "superlink.log"
        while f"Activated node_id={registered}" not in log.read_text():
            assert time.monotonic() < deadline, "the registered SuperNode never joined"
            time.sleep(0.2)
        assert log.read_text().count("Activated node_id=") == 1
    assert _flwr_home_processes(tmp_path) == []
