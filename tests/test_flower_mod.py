"""The client mod: no plaintext model leaves a node unless asked, in so many words.

The first test runs the example app's train and evaluate functions behind
``homomorphic_mod`` for two whole rounds of ``HomomorphicFedAvg`` in one
process (default configuration) and captures every message a client
sends: only ciphertext vectors, counts and scalar metrics, and none of the
bytes of any model the app produced. The others check where keys come
from and the mod's refusals.
"""

import numpy as np
import pytest

import flwr  # noqa: E402,F401  (the flower extra is part of make setup: never skip)

from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402

from _flower_local import EXAMPLE_DIR, LocalGrid, example, server_identity  # noqa: E402
from hefl.flower.keys import write_keypair  # noqa: E402
from hefl.flower.local_app import LocalClientApp  # noqa: E402
from hefl.flower.mod import CLIPPED_METRIC, homomorphic_mod  # noqa: E402
from hefl.flower.protocol import CIPHER_STYPE, REFERENCE_KEY, EncodingSettings  # noqa: E402
from hefl.flower.records import decrypt_arrays, encrypt_arrays, is_encrypted  # noqa: E402
from hefl.flower.strategy import HomomorphicFedAvg  # noqa: E402
from hefl.paillier import generate_keypair  # noqa: E402

SETTINGS = EncodingSettings(alpha=2.0, value_bits=24, guard_bits=12)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    pub, priv = generate_keypair(512)
    write_keypair(d, pub, priv)
    return d, pub, priv


def _nodes(key_dir, k=3):
    return [{"partition-id": i, "num-partitions": k, "hefl-key-dir": str(key_dir)}
            for i in range(k)]


def test_default_client_sends_only_ciphertext_counts_and_scalar_metrics(keys):
    key_dir, pub, priv = keys
    produced = []       # what the app itself returned, before the mod encrypted it

    def spy(msg, ctx, call_next):
        reply = call_next(msg, ctx)
        if not reply.has_error():
            produced.extend(rec for rec in reply.content.array_records.values())
        return reply

    client = example("client_app")
    app = ClientApp(mods=[homomorphic_mod, spy])
    app.train()(client.train)
    app.evaluate()(client.evaluate)
    local = LocalClientApp(EXAMPLE_DIR, {}, _nodes(key_dir), reference=False, app=app)
    grid = LocalGrid(local)
    strategy = HomomorphicFedAvg(pub, settings=SETTINGS, min_available_nodes=3,
                                 min_train_nodes=3, fraction_evaluate=1.0, min_evaluate_nodes=3)
    task = example("task")
    with server_identity():
        strategy.start(grid, ArrayRecord({k: Array(v) for k, v in task.init_arrays(0).items()}),
                       num_rounds=2, train_config=ConfigRecord())
    sent = grid.replies
    assert len(sent) == 2 * (3 + 3) and len(produced) == 6
    payload = b""
    for reply in sent:
        assert not reply.has_error()
        content = reply.content
        assert not content.config_records
        (metrics,) = content.metric_records.values()
        assert all(type(v) in (int, float) for v in metrics.values()), dict(metrics)
        assert set(metrics) <= {"num-examples", "train-loss", CLIPPED_METRIC, "loss", "accuracy"}
        if reply.metadata.message_type == MessageType.TRAIN:
            (record,) = content.array_records.values()
            assert [a.stype for a in record.values()] == [CIPHER_STYPE]
            payload += b"".join(a.data for a in record.values())
        else:
            assert not content.array_records
    # None of the models the app produced is in what was sent, not even in part ...
    for record in produced:
        for a in record.values():
            raw = a.numpy().tobytes()
            assert raw[:32] not in payload and raw[-32:] not in payload
    # ... yet each train reply's ciphertext holds exactly that model.
    trains = [r for r in sent if r.metadata.message_type == MessageType.TRAIN]
    for record, reply in zip(produced, trains):
        back = decrypt_arrays(reply.content["arrays"], priv)
        for k in record.keys():
            assert np.max(np.abs(back[k].numpy() - record[k].numpy())) < 1e-6


def _tiny_app(result=None, evaluate_arrays=False):
    """A ClientApp (with the mod) whose train returns ``result(arrays)``."""
    app = ClientApp(mods=[homomorphic_mod])

    @app.train()
    def train(msg, ctx):
        arrays = msg.content["arrays"]
        out = result(arrays) if result else arrays
        return Message(RecordDict({"arrays": out, "metrics": MetricRecord(
            {"num-examples": 10, "loss": 1.0})}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg, ctx):
        content = RecordDict({"metrics": MetricRecord({"num-examples": 10, "accuracy": 1.0})})
        if evaluate_arrays:
            content["arrays"] = msg.content["arrays"]
        return Message(content, reply_to=msg)

    return app


def _model():
    return ArrayRecord({"w": Array(np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)),
                        "b": Array(np.ones(2, np.float64))})


def test_keys_from_the_node_config_first_then_the_run_config(keys, tmp_path):
    key_dir, pub, priv = keys
    app = _tiny_app()
    # Simulation Runtime style: no key in the node config, the run config names it.
    sim = LocalClientApp(EXAMPLE_DIR, {"hefl-key-dir": str(key_dir)},
                         [{"partition-id": 0, "num-partitions": 1}], reference=False, app=app)
    reply = sim.send(0, MessageType.TRAIN, _model(), 1)
    assert not reply.has_error() and is_encrypted(reply.content["arrays"])
    # The node config wins over the run config.
    wrong = LocalClientApp(EXAMPLE_DIR, {"hefl-key-dir": str(tmp_path / "nowhere")},
                           _nodes(key_dir, 1), reference=False, app=app)
    assert not wrong.send(0, MessageType.TRAIN, _model(), 1).has_error()
    # Neither: Flower's error reply naming the setting, and nothing of the app's.
    none = LocalClientApp(EXAMPLE_DIR, {}, [{"partition-id": 0}], reference=False, app=app)
    reply = none.send(0, MessageType.TRAIN, _model(), 1)
    assert reply.has_error() and "hefl-key-dir" in reply.error.reason
    assert not reply.has_content()


def test_plaintext_reference_only_when_the_flag_says_so(keys):
    key_dir, pub, priv = keys
    app = _tiny_app()
    plain = LocalClientApp(EXAMPLE_DIR, {"hefl-alpha": 2.0}, _nodes(key_dir, 1), reference=False,
                           app=app)
    reply = plain.send(0, MessageType.TRAIN, _model(), 1)
    assert list(reply.content.array_records) == ["arrays"]
    assert reply.content.metric_records["metrics"][CLIPPED_METRIC] == 4   # |x| > 2 of 14
    flagged = LocalClientApp(EXAMPLE_DIR, {"hefl-alpha": 2.0,
                                           "hefl-send-plaintext-reference": True},
                             _nodes(key_dir, 1), reference=False, app=app)
    reply = flagged.send(0, MessageType.TRAIN, _model(), 1)
    ref = reply.content[REFERENCE_KEY]
    np.testing.assert_array_equal(ref["w"].numpy(), np.clip(_model()["w"].numpy(), -2, 2))
    assert ref["b"].numpy().dtype == np.float64


def test_refusals_are_error_replies_without_content(keys):
    key_dir, pub, priv = keys
    nodes = _nodes(key_dir, 1)

    def nan(arrays):
        return ArrayRecord({"w": Array(np.full((3, 4), np.nan, np.float32)), "b": arrays["b"]})

    reply = LocalClientApp(EXAMPLE_DIR, {}, nodes, reference=False,
                           app=_tiny_app(nan)).send(0, MessageType.TRAIN, _model(), 1)
    assert reply.has_error() and "NonFiniteUpdateError" in reply.error.reason
    assert not reply.has_content()
    ints = LocalClientApp(EXAMPLE_DIR, {}, nodes, reference=False, app=_tiny_app(
        lambda a: ArrayRecord({"steps": Array(np.arange(3))})))
    reply = ints.send(0, MessageType.TRAIN, _model(), 1)
    assert reply.has_error() and "only float arrays" in reply.error.reason
    leaky = LocalClientApp(EXAMPLE_DIR, {}, nodes, reference=False,
                           app=_tiny_app(evaluate_arrays=True))
    reply = leaky.send(0, MessageType.EVALUATE, _model(), 1)
    assert reply.has_error() and "may not carry arrays" in reply.error.reason


def test_a_global_under_another_key_is_refused(keys):
    key_dir, pub, priv = keys
    other_pub, other_priv = generate_keypair(512)
    foreign = encrypt_arrays(_model(), 10, other_pub, private_key=other_priv)
    local = LocalClientApp(EXAMPLE_DIR, {}, _nodes(key_dir, 1), reference=False, app=_tiny_app())
    reply = local.send(0, MessageType.TRAIN, foreign, 2)
    assert reply.has_error() and "cannot decrypt the global model: KeyMismatchError" in \
        reply.error.reason
    # With our key it decrypts, the app gets plaintext, and the reply is encrypted again.
    ours = encrypt_arrays(_model(), 10, pub, private_key=priv, settings=SETTINGS)
    reply = local.send(0, MessageType.TRAIN, ours, 2)
    assert not reply.has_error()
    back = decrypt_arrays(reply.content["arrays"], priv)
    assert np.max(np.abs(back["w"].numpy() - np.clip(_model()["w"].numpy(), -2, 2))) < 1e-6
