"""FedAvg with homomorphic aggregation, end to end, against an independent plaintext FedAvg.

Each run records, per round, the HE global model before and after the
round and which clients contributed. The test then recomputes that round
itself — local training with the model module and the same seeds, the
sample-count weighted mean of the clipped updates in float — and asserts
the HE model moved by that mean within the quantisation bound, which it
computes from the encoder's parameters (``K · alpha / (2Q) / Σw``) and also
takes from ``Encoder.quantisation_bound``.
"""

import json
import math

import numpy as np
import pytest

from hefl.accel import get_accelerator
from hefl.errors import BackendUnavailable, KeyMismatchError, PackingOverflowError
from hefl.fedavg.aggregator import Aggregator, MetadataMismatchError
from hefl.fedavg.loop import DEFAULT_KEY_BITS, FedAvgConfig, run_fedavg
from hefl.fedavg.model import make_model
from hefl.fedavg.report import REQUIRED_KEYS, ROUND_KEYS
from hefl.paillier import Paillier, generate_keypair


@pytest.fixture(scope="module")
def keypair():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def cpu():
    accel = get_accelerator("cpu")
    yield accel
    accel.close()


def _independent_round_check(cfg, info):
    """Recompute one round's plaintext FedAvg step from the HE model it started from."""
    data, enc = info["data"], info["encoder"]
    before, after, included = info["theta_before"], info["theta_after"], info["included"]
    if not included:
        assert np.array_equal(before, after)
        return 0.0, 0.0
    n = np.array(data.counts, dtype=float)
    w = n / n.sum()
    updates = []
    for k in included:
        m = make_model(cfg.model, data.n_features, data.n_classes)
        m.set_params(before)
        c = data.clients[k]
        m.train_epochs(c.x, c.y, epochs=cfg.local_epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                       rng=np.random.default_rng([cfg.seed, info["round"], k]))
        updates.append(np.clip(w[k] * (m.get_params() - before), -cfg.alpha, cfg.alpha))
    wsum = w[included].sum()
    # FedAvg over the contributors: Σ n_k Δ_k / Σ n_k (clipped as sent).
    expected = sum(updates) / wsum
    q = 2 ** (cfg.value_bits - 1) - 1
    bound = len(included) * cfg.alpha / (2 * q) / wsum
    assert math.isclose(enc.quantisation_bound(len(included)) / wsum, bound, rel_tol=1e-6)
    err = float(np.max(np.abs((after - before) - expected)))
    assert err <= bound * (1 + 1e-6), f"round {info['round']}: error {err} > bound {bound}"
    return err, bound


def _run(cfg, accel, keypair):
    trace = []
    report = run_fedavg(cfg, accel=accel, keypair=keypair, progress=False,
                        on_round=lambda info: trace.append(_independent_round_check(cfg, info)))
    assert len(trace) == cfg.rounds == len(report["rounds"])
    return report, trace


def _check_report(report, cfg):
    for key in REQUIRED_KEYS:
        assert key in report
    for r in report["rounds"]:
        for key in ROUND_KEYS:
            assert key in r
        assert set(r["seconds"]) == {"train", "encrypt", "aggregate", "decrypt"}
        assert all(v >= 0 for v in r["seconds"].values())
    assert report["final_accuracy"] == report["rounds"][-1]["accuracy"]


def _expected_bytes(keypair, cfg, params):
    """Size of one upload from the wire format: header, ciphertexts, SHA-256; plus metadata."""
    pub = keypair[0]
    slots = (pub.n.bit_length() - 1) // (cfg.value_bits + cfg.guard_bits)
    count = -(-params // slots)
    return 24 + count * ((2 * pub.n.bit_length() + 7) // 8) + 32


def test_end_to_end_cpu(cpu, keypair, seed):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=4, rounds=3, seed=seed)
    report, trace = _run(cfg, cpu, keypair)
    _check_report(report, cfg)
    print("per-round |HE - plaintext| and bound:", trace)
    assert all(r["included"] == [0, 1, 2, 3] for r in report["rounds"])
    # One upload = the wire format's fixed part plus the JSON metadata (< 1 KiB).
    fixed = _expected_bytes(keypair, cfg, report["model_parameters"])
    assert all(fixed < r["bytes_up"] < fixed + 1024 for r in report["rounds"])
    # Both runs start from the same model; one round apart they differ by quantisation only.
    assert report["rounds"][0]["model_gap"] <= trace[0][1] * (1 + 1e-6)
    # The separately trained plaintext FedAvg stays close in accuracy (one test sample is 0.0028).
    assert abs(report["final_accuracy"] - report["plaintext_final_accuracy"]) <= 0.02
    assert report["final_accuracy"] > 0.8


@pytest.mark.sim
def test_end_to_end_sim_matches_cpu(cpu, seed):
    """Every party on the Verilator model of the kernel: same models as on cpu, cycles counted.

    A 112-bit key keeps n² (224 bits) inside the 256-bit simulated kernel the
    sim backend's own tests build, so this adds no kernel build.
    """
    keypair = generate_keypair(112)
    sim = get_accelerator("sim", operand_bits=256)
    cfg = FedAvgConfig(backend="sim", key_bits=112, clients=3, rounds=2, dataset="wine", seed=seed,
                       guard_bits=2)
    try:
        thetas = {}
        for name, accel in (("sim", sim), ("cpu", cpu)):
            thetas[name] = []

            def on_round(info, models=thetas[name]):
                _independent_round_check(cfg, info)
                models.append(info["theta_after"])

            report = run_fedavg(cfg, accel=accel, keypair=keypair, progress=False, on_round=on_round)
            _check_report(report, cfg)
            if name == "sim":
                print("sim cycles per round:", [r["cycles_by_phase"] for r in report["rounds"]])
                for r in report["rounds"]:
                    assert all(c > 0 for c in r["cycles_by_phase"].values())
                    assert r["cycles"] == sum(r["cycles_by_phase"].values())
            else:
                assert all(r["cycles"] is None for r in report["rounds"])
        # Decryption is exact: the fresh randomness differs, the global models must not.
        for a, b in zip(thetas["sim"], thetas["cpu"], strict=True):
            assert np.array_equal(a, b)
    finally:
        sim.close()


def test_drop_out_renormalises(cpu, keypair, seed):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=6, rounds=3, seed=seed, drop_rate=0.5)
    report, trace = _run(cfg, cpu, keypair)
    dropped_any = False
    for r in report["rounds"]:
        # The drop-outs are the seeded draws, independent of everything else.
        draws = np.random.default_rng([seed, r["round"], 0xD209]).random(cfg.clients)
        assert r["dropped"] == [k for k in range(cfg.clients) if draws[k] < cfg.drop_rate]
        assert r["included"] == [k for k in range(cfg.clients) if k not in r["dropped"]]
        dropped_any |= bool(r["dropped"])
    print("dropped per round:", [r["dropped"] for r in report["rounds"]])
    assert dropped_any or cfg.drop_rate == 0


@pytest.mark.parametrize("mode,error", [("truncate", "SerializationError"), ("flip", "SerializationError"),
                                        ("zero", "CiphertextRangeError"), ("n2", "CiphertextRangeError")])
def test_garbled_ciphertext_excluded(cpu, keypair, seed, mode, error):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=3, rounds=1, seed=seed, dataset="wine",
                       garble_clients=(1,), garble_mode=mode)
    report, _ = _run(cfg, cpu, keypair)
    r = report["rounds"][0]
    assert r["included"] == [0, 2]
    assert list(r["excluded"]) == [1] and r["excluded"][1].startswith(error), r["excluded"]


def test_nan_update_rejected_at_client(cpu, keypair, seed):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=3, rounds=2, seed=seed, dataset="wine",
                       nan_clients=(2,))
    report, _ = _run(cfg, cpu, keypair)
    for r in report["rounds"]:
        assert r["included"] == [0, 1]
        assert list(r["skipped"]) == [2] and "non-finite" in r["skipped"][2]
        assert not r["excluded"]


def test_packing_overflow_surfaces(cpu, keypair, seed):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=3, rounds=1, seed=seed, dataset="wine",
                       overflow_clients=(0,))
    with pytest.raises(PackingOverflowError, match="overflowed"):
        run_fedavg(cfg, accel=cpu, keypair=keypair, progress=False)


def test_too_many_clients_for_guard_bits(cpu, keypair):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=5, guard_bits=2, dataset="wine")
    with pytest.raises(PackingOverflowError, match="guard bits"):
        run_fedavg(cfg, accel=cpu, keypair=keypair, progress=False)


def test_aggregator_rejects_wrong_key_and_metadata(cpu, keypair):
    pub, priv = keypair
    other_pub, other_priv = generate_keypair(512)
    expected = {"encoding": {"x": 1}, "length": 3}
    agg = Aggregator(pub, cpu, expected, expected_count=2)
    assert agg.he.private_key is None  # the aggregator never holds the private key
    good = Paillier(pub, priv, cpu).encrypt([1, 2], meta=dict(expected, round=1, client=0)).to_bytes()
    wrong_key = Paillier(other_pub, other_priv, cpu).encrypt(
        [1, 2], meta=dict(expected, round=1, client=1)).to_bytes()
    stale = Paillier(pub, priv, cpu).encrypt([1, 2], meta=dict(expected, round=0, client=2)).to_bytes()
    other_enc = Paillier(pub, priv, cpu).encrypt(
        [1, 2], meta=dict(expected, encoding={"x": 2}, round=1, client=3)).to_bytes()
    impostor = Paillier(pub, priv, cpu).encrypt([1, 2], meta=dict(expected, round=1, client=0)).to_bytes()
    short = Paillier(pub, priv, cpu).encrypt([1], meta=dict(expected, round=1, client=5)).to_bytes()
    res = agg.aggregate({0: good, 1: wrong_key, 2: stale, 3: other_enc, 4: impostor, 5: short}, 1)
    assert res.included == [0]
    assert res.excluded[1].startswith(KeyMismatchError.__name__)
    for k in (2, 3, 4, 5):
        assert res.excluded[k].startswith(MetadataMismatchError.__name__), res.excluded[k]
    assert Paillier(pub, priv, cpu).decrypt(res.cipher) == [1, 2]


def test_default_demo_meets_targets(cpu):
    """The `make demo` settings (digits, softmax, seed 0) on cpu: ≥ 0.90 and within 0.005."""
    cfg = FedAvgConfig(backend="cpu")
    assert cfg.key_bits == DEFAULT_KEY_BITS
    report, trace = _run(cfg, cpu, generate_keypair(cfg.key_bits))
    print("final", report["final_accuracy"], "plaintext", report["plaintext_final_accuracy"])
    assert report["final_accuracy"] >= 0.90
    assert abs(report["final_accuracy"] - report["plaintext_final_accuracy"]) <= 0.005


def test_2048_bit_key(cpu, seed):
    cfg = FedAvgConfig(backend="cpu", key_bits=2048, clients=3, rounds=1, seed=seed, dataset="wine")
    report, _ = _run(cfg, cpu, generate_keypair(2048))
    assert report["encoding"]["plaintext_bits"] == 2047


def test_cli_writes_report_and_plot(tmp_path, capsys):
    from hefl.cli import main
    out = tmp_path / "demo"
    rc = main(["demo", "--backend", "cpu", "--key-bits", "512", "--insecure-test-key", "--clients", "3",
               "--rounds", "2",
               "--dataset", "wine", "--model", "mlp", "--drop-rate", "0.2", "--garble-client", "1",
               "--no-progress", "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "client 1 excluded" in text.out
    report = json.loads((out / "report.json").read_text())
    for key in REQUIRED_KEYS:
        assert key in report
    assert report["backend"] == "cpu" and report["key_bits"] == 512 and len(report["rounds"]) == 2
    for r in report["rounds"]:
        for key in ROUND_KEYS:
            assert key in r
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("failure", ["open", "build"])
def test_cli_backend_fallback(tmp_path, capsys, monkeypatch, failure):
    """Without --backend a missing simulator (no library, or a kernel that fails to build) falls
    back to cpu with one line; asked for explicitly, it is an error."""
    import hefl.fedavg.cli as demo_cli
    from hefl.accel import Accelerator
    from hefl.cli import main
    real = demo_cli.get_accelerator

    class UnbuildableSim(Accelerator):
        # Opens fine; its first job needs a kernel that cannot be built, as the sim backend's does.
        name = "sim"

        def _powmod(self, *a):
            raise BackendUnavailable("building the simulated device failed (test)")

        _mulmod = _product = _powmod

    def fake(name, **kw):
        if name == "sim":
            if failure == "open":
                raise BackendUnavailable("backend 'sim' is not built (test)")
            return UnbuildableSim()
        return real(name, **kw)

    monkeypatch.setattr(demo_cli, "get_accelerator", fake)
    args = ["--key-bits", "512", "--insecure-test-key", "--clients", "2", "--rounds", "1", "--dataset", "wine",
            "--no-progress"]
    assert main(["demo", *args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.count("falling back to 'cpu'") == 1 and "(test)" in err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["backend"] == "cpu" and report["backends"]["aggregator"] == "cpu"
    # Asked for explicitly, sim never falls back.
    assert main(["demo", "--backend", "sim", *args, "--out", str(tmp_path / "b")]) == 2
    assert "(test)" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.sim
def test_cli_every_party_on_sim(tmp_path, capsys):
    """`hefl demo --backend sim` with every role on the simulated card (256-bit kernel, 112-bit key)."""
    from hefl.cli import main
    out = tmp_path / "demo"
    rc = main(["demo", "--backend", "sim", "--client-backend", "sim", "--keyholder-backend", "sim",
               "--key-bits", "112", "--insecure-test-key", "--guard-bits", "2", "--clients", "3", "--rounds", "1",
               "--dataset", "wine", "--no-progress", "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "sim device for the aggregator ready" in text.out
    report = json.loads((out / "report.json").read_text())
    assert report["backends"] == {"clients": "sim", "aggregator": "sim", "keyholder": "sim"}
    r = report["rounds"][0]
    assert r["cycles"] > 0 and r["cycles"] == sum(r["cycles_by_phase"].values())
    # The table line carries the same cycle count.
    assert f"{r['cycles']:,}" in text.out


def test_round_without_contributors_keeps_the_model(cpu, keypair, seed):
    cfg = FedAvgConfig(backend="cpu", key_bits=512, clients=2, rounds=2, seed=seed, dataset="wine",
                       drop_rate=0.9)
    report, _ = _run(cfg, cpu, keypair)    # the check asserts θ unchanged when nobody contributed
    prev = report["initial_accuracy"]
    for r in report["rounds"]:
        draws = np.random.default_rng([seed, r["round"], 0xD209]).random(cfg.clients)
        assert r["dropped"] == [k for k in range(2) if draws[k] < 0.9]
        if not r["included"]:
            assert r["accuracy"] == prev and r["max_abs_error"] is None and r["cycles"] is None
        prev = r["accuracy"]


def test_client_rejects_a_diverged_update(seed):
    """A learning rate that blows the model up gives inf/NaN: rejected before any encoding."""
    from hefl.errors import NonFiniteUpdateError
    from hefl.fedavg.client import Client
    from hefl.fedavg.data import load_federated
    fd = load_federated("wine", 2, seed=seed)
    c = Client(0, fd.clients[0], 0.5, model="softmax", n_features=fd.n_features,
               n_classes=fd.n_classes, epochs=3, lr=1e305, batch_size=8, alpha=1.0)
    with pytest.raises(NonFiniteUpdateError, match="client 0: update holds"):
        c.train(np.zeros(fd.n_features * fd.n_classes + fd.n_classes), np.random.default_rng(seed))


def test_keyholder_checks_the_aggregate_metadata(cpu, keypair):
    from hefl.encoding import Encoder
    from hefl.errors import EncodingError
    from hefl.fedavg.keyholder import KeyHolder
    pub, priv = keypair
    enc = Encoder(plaintext_bits=pub.n.bit_length() - 1, alpha=1.0, value_bits=16, guard_bits=4)
    other = Encoder(plaintext_bits=pub.n.bit_length() - 1, alpha=0.5, value_bits=16, guard_bits=4)
    kh = KeyHolder(pub, priv, cpu, enc)
    he = Paillier(pub, priv, cpu)
    x = np.array([0.25, -0.5, 0.125])
    good = he.encrypt(enc.encode(x), meta={"encoding": enc.params.to_dict(), "length": 3})
    assert np.allclose(kh.mean_update(he.aggregate([good, good]), 3, 2, 0.5), 2 * x / 0.5,
                       atol=kh.error_bound(2, 0.5))
    wrong = he.encrypt(other.encode(x), meta={"encoding": other.params.to_dict(), "length": 3})
    with pytest.raises(EncodingError, match="encoded with"):
        kh.mean_update(wrong, 3, 1, 1.0)
    with pytest.raises(EncodingError, match="carries 3 values"):
        kh.mean_update(good, 4, 1, 1.0)
