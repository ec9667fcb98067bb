"""Encrypted FedAvg on a real Flower deployment (SuperLink + 3 SuperNodes).

One federation run (module fixture, 512-bit key, cpu backend, 2 rounds) in
which SuperNode 2's local model turns NaN in round 1 (its ClientApp must
refuse to encrypt it) and SuperNode 1 truncates its upload in round 2. The
tests then check, independently of the code under test:

* the encrypted sum of each round, decrypted here with the private key,
  equals FedAvg of the clients' clipped local models *recomputed here*
  from the same data and seeds, within the encoder's quantisation bound;
  and Flower's own plaintext FedAvg of the same replies (the reference the
  strategy computed with ``aggregate_arrayrecords``) equals it to float
  precision;
* each faulty client is excluded with a logged reason and its round still
  completes with the other two;
* report.json holds what ``make demo-flower`` promises, and no Flower
  process outlives the run.
"""

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr", reason="needs the flower extra: pip install -e '.[dev,flower]'")

from conftest import SEED  # noqa: E402

from hefl.encoding import Encoder  # noqa: E402
from hefl.fedavg.data import load_federated  # noqa: E402
from hefl.fedavg.model import make_model  # noqa: E402
from hefl.flower import keys as flkeys  # noqa: E402
from hefl.flower.launch import FlowerRun, run_flower  # noqa: E402
from hefl.paillier import CipherVector, Paillier, generate_keypair  # noqa: E402

ROUNDS = 2
CLIENTS = 3
GARBLED = 1          # partition that truncates its upload ...
GARBLE_ROUND = 2     # ... in this round
NAN = 2              # partition whose update turns NaN ...
NAN_ROUND = 1        # ... in this round

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run the federation once; return (report, out dir, key pair, seed)."""
    seed = random.Random(f"{SEED}:flower").getrandbits(16)
    print(f"flower run seed={seed} (HEFL_SEED={SEED})")
    out = tmp_path_factory.mktemp("flower")
    pub, priv = generate_keypair(512)
    flkeys.write_keypair(out / "keys", pub, priv)
    cfg = FlowerRun(out=out, clients=CLIENTS, rounds=ROUNDS, key_bits=512, backend="cpu",
                    seed=seed, timeout=240.0, keys=out / "keys",
                    garble={GARBLED: (GARBLE_ROUND, "truncate")}, nan={NAN: NAN_ROUND})
    report = run_flower(cfg)
    return report, out, (pub, priv), seed


def _server(out):
    return json.loads((out / "server.json").read_text())


def _expected_fedavg(data, theta, partitions, server_round, seed, settings):
    """FedAvg of the clients' clipped, weighted local models, computed from scratch."""
    total = sum(data.counts)
    alpha = float(settings["alpha"])
    num, wsum = 0.0, 0.0
    for k in partitions:
        shard = data.clients[k]
        m = make_model("softmax", data.n_features, data.n_classes)
        m.set_params(theta)
        m.train_epochs(shard.x, shard.y, epochs=int(settings["local-epochs"]),
                       lr=float(settings["lr"]), batch_size=int(settings["batch-size"]),
                       rng=np.random.default_rng([seed, k, server_round]))
        w = shard.n / total
        num = num + np.clip(w * m.get_params(), -alpha, alpha)
        wsum += w
    return num / wsum, wsum


def test_encrypted_aggregate_matches_flower_fedavg(run):
    report, out, (pub, priv), seed = run
    server = _server(out)
    settings = server["settings"]
    data = load_federated("digits", CLIENTS, seed=seed, beta=float(settings["beta"]))
    encoder = Encoder(plaintext_bits=pub.n.bit_length() - 1, alpha=float(settings["alpha"]),
                      value_bits=int(settings["value-bits"]),
                      guard_bits=int(settings["guard-bits"]))
    assert server["encoding"] == encoder.params.to_dict()
    he = Paillier(pub, priv)
    theta = make_model("softmax", data.n_features, data.n_classes).get_params()
    try:
        initial = make_model("softmax", data.n_features, data.n_classes)
        assert report["initial_accuracy"] == pytest.approx(
            initial.accuracy(data.x_test, data.y_test), abs=1e-12)
        for h in server["rounds"]:
            r = h["round"]
            if r == 0:      # the initial model: tested, not aggregated
                continue
            partitions = sorted(h["partition_ids"][str(n)] for n in h["included"])
            cipher = CipherVector.from_bytes((out / f"round-{r}.hefl").read_bytes(), pub)
            assert len(cipher) == encoder.plaintexts_for(server["model_size"])
            summed = encoder.decode(he.decrypt(cipher), server["model_size"], h["summands"],
                                    modulus=pub.n)
            he_theta = summed / h["weight_sum"]
            expected, wsum = _expected_fedavg(data, theta, partitions, r, seed, settings)
            assert h["weight_sum"] == pytest.approx(wsum, rel=1e-12)
            bound = encoder.quantisation_bound(h["summands"]) / wsum
            err = float(np.max(np.abs(he_theta - expected)))
            print(f"round {r}: partitions {partitions}, max |HE − FedAvg| = {err:.3e}, "
                  f"bound {bound:.3e}")
            assert err <= bound
            # Flower's own FedAvg (aggregate_arrayrecords) over the same replies.
            flower = np.load(out / f"round-{r}-plaintext.npy")
            np.testing.assert_allclose(flower, expected, rtol=1e-9, atol=1e-12)
            # The clients evaluated the model they decrypted; so can we.
            m = make_model("softmax", data.n_features, data.n_classes)
            m.set_params(he_theta)
            assert report["rounds"][r - 1]["accuracy"] == pytest.approx(
                m.accuracy(data.x_test, data.y_test), abs=1e-12)
            theta = he_theta   # every client starts the next round from it
    finally:
        he.close()


def test_garbled_client_excluded_round_completes(run):
    report, out, _, _ = run
    rounds = {r["round"]: r for r in report["rounds"]}
    bad = rounds[GARBLE_ROUND]
    assert len(bad["excluded"]) == 1
    (node, reason), = bad["excluded"].items()
    assert "SerializationError" in reason and "truncated" in reason
    assert node not in {str(n) for n in bad["included"]}
    assert bad["summands"] == CLIENTS - 1
    assert bad["partition_ids"][node] == GARBLED
    assert sorted(bad["partition_ids"][str(n)] for n in bad["included"]) == \
        [k for k in range(CLIENTS) if k != GARBLED]
    # The reason is in the Flower run's log, naming the node.
    log = (out / "logs" / "flwr-run.log").read_text()
    assert f"node {node} excluded: SerializationError" in log
    # The round went on: evaluated after aggregation of the other two.
    assert 0.0 < bad["accuracy"] <= 1.0


def test_report_and_clean_shutdown(run):
    report, out, (pub, _), _ = run
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["final_accuracy"] == report["final_accuracy"]
    assert len(on_disk["rounds"]) == ROUNDS
    assert on_disk["key_bits"] == 512 and on_disk["key_fingerprint"] == pub.fingerprint
    assert abs(on_disk["final_accuracy"] - on_disk["plaintext_final_accuracy"]) <= 0.005
    # No process of this run is left: none carries its FLWR_HOME.
    assert _processes_with(f"FLWR_HOME={out / 'flwr-home'}".encode()) == []


def test_server_is_configured_with_the_public_key_only(run):
    _, out, _, _ = run
    settings = _server(out)["settings"]
    assert settings["public-key"].endswith(flkeys.PUBLIC_FILE)
    assert "private" not in json.dumps(settings)


def _processes_with(marker):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_timeout_stops_every_process(tmp_path):
    """A run that overruns its deadline raises and leaves no Flower process behind."""
    from hefl.errors import FlowerRunError
    cfg = FlowerRun(out=tmp_path, clients=2, rounds=1, key_bits=512, backend="cpu",
                    timeout=0.5)
    with pytest.raises(FlowerRunError, match="did not finish"):
        run_flower(cfg)
    assert _processes_with(f"FLWR_HOME={tmp_path / 'flwr-home'}".encode()) == []


def test_nan_update_refused_by_client_and_excluded(run):
    report, out, _, _ = run
    r = {x["round"]: x for x in report["rounds"]}[NAN_ROUND]
    assert len(r["excluded"]) == 1 and r["summands"] == CLIENTS - 1
    (node, reason), = r["excluded"].items()
    # The ClientApp raised before encrypting; Flower carried the error back.
    assert reason.startswith("client error") and "NonFiniteUpdateError" in reason
    assert sorted(r["partition_ids"][str(n)] for n in r["included"]) == \
        [k for k in range(CLIENTS) if k != NAN]
    assert f"node {node} excluded: client error" in (out / "logs" / "flwr-run.log").read_text()
