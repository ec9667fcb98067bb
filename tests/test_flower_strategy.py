"""HomomorphicFedAvg: a malformed reply never aborts a round.

Three clients reply; client 2's reply is broken in one way per test. The
round must complete with clients 1 and 3 (their decrypted global equals
Flower's FedAvg of their two models within the bound), and client 2 must be
excluded with its reason in the history and in the log. Then the same for
evaluate replies, and ``start()`` end to end in one process (the example
app's ClientApps on a :class:`_flower_local.LocalGrid`).
"""

import hashlib
import json
import logging
import re
import struct

import numpy as np
import pytest

import flwr  # noqa: E402,F401  (the flower extra is part of make setup: never skip)

from flwr.app import Array, ArrayRecord, ConfigRecord, Error, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords  # noqa: E402

from _flower_local import (  # noqa: E402
    EXAMPLE_DIR,
    LocalGrid,
    example,
    reply_from,
    server_identity,
)
from hefl.errors import FlowerConfigError, FlowerRunError  # noqa: E402
from hefl.flower.keys import write_keypair  # noqa: E402
from hefl.flower.local_app import LocalClientApp  # noqa: E402
from hefl.flower.protocol import CIPHER_DTYPE, CIPHER_STYPE, EncodingSettings  # noqa: E402
from hefl.flower.records import (  # noqa: E402
    decrypt_arrays,
    encrypt_arrays,
    inspect_encrypted,
    is_encrypted,
    read_vector,
    save_decrypted,
)
from hefl.flower.report import fedavg_tolerance  # noqa: E402
from hefl.flower.strategy import HomomorphicFedAvg  # noqa: E402
from hefl.paillier import CipherVector, generate_keypair  # noqa: E402

SETTINGS = EncodingSettings(alpha=1.0, value_bits=16, guard_bits=12)
COUNTS = {1: 120, 2: 80, 3: 200}
BAD = 2


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def other_keys():
    return generate_keypair(512)


def _model(rng):
    return ArrayRecord({"w": Array((rng.standard_normal((6, 5)) * 0.2).astype(np.float32)),
                        "b": Array((rng.standard_normal(6) * 0.2).astype(np.float32)),
                        "s": Array((rng.standard_normal((2, 2, 2)) * 0.2).astype(np.float64))})


def _content(record, n, **metrics):
    return RecordDict({"arrays": record,
                       "metrics": MetricRecord({"num-examples": n, "loss": 0.25, **metrics})})


@pytest.fixture
def clients(seed, keys):
    """Models and good replies of nodes 1-3 for round 1."""
    rng = np.random.default_rng(seed)
    models = {k: _model(rng) for k in COUNTS}
    records = {k: encrypt_arrays(models[k], COUNTS[k], keys[0], private_key=keys[1],
                                 settings=SETTINGS, server_round=1, node_id=k) for k in COUNTS}
    return models, records


def _reframe(data, meta_json=None, body=None):
    """CipherVector bytes with new metadata / ciphertext body and a valid checksum."""
    head = struct.Struct(">4sBB8sHII")
    magic, version, flags, fp, bits, count, meta_len = head.unpack_from(data, 0)
    meta = data[head.size:head.size + meta_len] if meta_json is None else meta_json.encode()
    rest = data[head.size + meta_len:-32] if body is None else body
    width = (2 * bits + 7) // 8
    framed = head.pack(magic, version, flags, fp, bits, len(rest) // width, len(meta)) + meta + rest
    return framed + hashlib.sha256(framed).digest()


def _entry(data, count):
    return ArrayRecord({"hefl.ciphertext.0": Array(dtype=CIPHER_DTYPE, shape=(count,),
                                                   stype=CIPHER_STYPE, data=data)})


def _vector(record, pub):
    return read_vector(next(iter(record.values())), pub)


def _with_meta(record, pub, **changes):
    cv = _vector(record, pub)
    meta = {**cv.meta, **changes}
    return _entry(CipherVector(pub, cv.ciphertexts, meta).to_bytes(), len(cv))


def _with_cts(record, pub, cts):
    cv = _vector(record, pub)
    return _entry(CipherVector(pub, cts, cv.meta).to_bytes(), len(cts))


def _bytes(record):
    return next(iter(record.values())).data


# kind -> (make the bad reply content from (models, records, keys, other_keys), reason pattern)
def _long(m, r, k, o):
    cts = _vector(r[BAD], k[0]).ciphertexts
    return _content(_with_cts(r[BAD], k[0], cts + cts[:1]), COUNTS[BAD])


def _short(m, r, k, o):
    cts = _vector(r[BAD], k[0]).ciphertexts
    return _content(_with_cts(r[BAD], k[0], cts[:-1]), COUNTS[BAD])


def _nan_meta(m, r, k, o):
    cv = _vector(r[BAD], k[0])
    text = json.dumps({**cv.meta, "examples": float("nan")}, sort_keys=True,
                      separators=(",", ":"))
    data = _reframe(_bytes(r[BAD]), meta_json=text)
    return _content(_entry(data, len(cv)), COUNTS[BAD])


def _nan_in_extra_meta(m, r, k, o):
    cv = _vector(r[BAD], k[0])
    text = json.dumps({**cv.meta, "note": float("inf")}, separators=(",", ":"))
    return _content(_entry(_reframe(_bytes(r[BAD]), meta_json=text), len(cv)), COUNTS[BAD])


def _big_meta(m, r, k, o):
    return _content(_with_meta(r[BAD], k[0], layout=[["x" * 1000, "float32", [1]]] * 300),
                    COUNTS[BAD])


def _wrong_key(m, r, k, o):
    return _content(encrypt_arrays(m[BAD], COUNTS[BAD], o[0], private_key=o[1],
                                   settings=SETTINGS, server_round=1, node_id=BAD), COUNTS[BAD])


def _garbled(m, r, k, o):
    data = bytearray(_bytes(r[BAD]))
    data[len(data) // 2] ^= 0x40
    return _content(_entry(bytes(data), len(_vector(r[BAD], k[0]))), COUNTS[BAD])


def _truncated(m, r, k, o):
    return _content(_entry(_bytes(r[BAD])[:-100], len(_vector(r[BAD], k[0]))), COUNTS[BAD])


def _zero_ciphertext(m, r, k, o):
    cv = _vector(r[BAD], k[0])
    width = k[0].ciphertext_bytes
    body = bytes(width) + b"".join(c.to_bytes(width, "big") for c in cv.ciphertexts[1:])
    return _content(_entry(_reframe(_bytes(r[BAD]), body=body), len(cv)), COUNTS[BAD])


def _error(m, r, k, o):
    return Error(code=2, reason="ClientApp raised: out of memory")


def _list_metric(m, r, k, o):
    return _content(r[BAD], COUNTS[BAD], acc=[0.5, 0.75])


def _nan_metric(m, r, k, o):
    return _content(r[BAD], COUNTS[BAD], acc=float("nan"))


def _no_count(m, r, k, o):
    return RecordDict({"arrays": r[BAD], "metrics": MetricRecord({"loss": 0.5})})


def _float_count(m, r, k, o):
    return _content(r[BAD], float(COUNTS[BAD]))


def _count_mismatch(m, r, k, o):
    return _content(r[BAD], COUNTS[BAD] + 1)


def _two_metric_records(m, r, k, o):
    c = _content(r[BAD], COUNTS[BAD])
    c["more"] = MetricRecord({"x": 1.0})
    return c


def _plaintext_arrays(m, r, k, o):
    c = _content(r[BAD], COUNTS[BAD])
    c["model"] = m[BAD]
    return c


def _plaintext_only(m, r, k, o):
    return _content(m[BAD], COUNTS[BAD])


def _wrong_round(m, r, k, o):
    return _content(encrypt_arrays(m[BAD], COUNTS[BAD], k[0], private_key=k[1],
                                   settings=SETTINGS, server_round=7, node_id=BAD), COUNTS[BAD])


def _wrong_node(m, r, k, o):
    return _content(r[3], COUNTS[3])          # node 3's vector replayed by node 2


def _wrong_encoding(m, r, k, o):
    other = EncodingSettings(alpha=2.0, value_bits=16, guard_bits=12)
    return _content(encrypt_arrays(m[BAD], COUNTS[BAD], k[0], private_key=k[1], settings=other,
                                   server_round=1, node_id=BAD), COUNTS[BAD])


def _wrong_layout(m, r, k, o):
    shaped = ArrayRecord({"w": Array(np.zeros((5, 6), np.float32)), "b": m[BAD]["b"],
                          "s": m[BAD]["s"]})
    return _content(encrypt_arrays(shaped, COUNTS[BAD], k[0], private_key=k[1], settings=SETTINGS,
                                   server_round=1, node_id=BAD), COUNTS[BAD])


def _not_bytes_stype(m, r, k, o):
    rec = ArrayRecord({"hefl.ciphertext.0": Array(dtype=CIPHER_DTYPE, shape=(3,),
                                                  stype="pickle", data=b"\x80\x04junk")})
    return _content(rec, COUNTS[BAD])


KINDS = {
    "vector-one-too-long": (_long, r"VectorLengthError: vector holds"),
    "vector-one-too-short": (_short, r"VectorLengthError: vector holds"),
    # The vector reader refuses NaN in the metadata before the round checks see it.
    "nan-in-metadata": (_nan_meta, r"SerializationError: .*metadata holds NaN"),
    "nan-in-extra-metadata": (_nan_in_extra_meta, r"SerializationError: .*metadata holds Infinity"),
    "oversized-metadata": (_big_meta, r"SerializationError: .*exceeds"),
    "wrong-key": (_wrong_key, r"KeyMismatchError"),
    "garbled-bytes": (_garbled, r"SerializationError: .*checksum"),
    "truncated-bytes": (_truncated, r"SerializationError: .*truncated"),
    "ciphertext-out-of-range": (_zero_ciphertext, r"CiphertextRangeError"),
    "flower-error-reply": (_error, r"client error \(code 2\): ClientApp raised: out of memory"),
    "list-metric": (_list_metric, r"metric 'acc' is \[0.5, 0.75\]: only finite scalar"),
    "nan-metric": (_nan_metric, r"metric 'acc' is nan"),
    "no-num-examples": (_no_count, r"num-examples must be a positive integer, not None"),
    "float-num-examples": (_float_count, r"num-examples must be a positive integer, not 80.0"),
    "num-examples-differs-from-vector": (_count_mismatch, r"metadata 'examples' is 80"),
    "two-metric-records": (_two_metric_records, r"2 MetricRecords"),
    "plaintext-array-beside": (_plaintext_arrays, r"ArrayRecord 'model' that is not encrypted "
                                                  r"\(entries of type numpy.ndarray\)"),
    "plaintext-model": (_plaintext_only, r"ArrayRecord 'arrays' that is not encrypted"),
    "vector-for-another-round": (_wrong_round, r"metadata 'round' is 7"),
    "vector-of-another-node": (_wrong_node, r"metadata 'examples' is 200|metadata 'node' is 3"),
    "other-encoding": (_wrong_encoding, r"metadata 'encoding'"),
    "other-array-shapes": (_wrong_layout, r"metadata 'layout'"),
    "unknown-entry-type": (_not_bytes_stype, r"not encrypted \(entries of type pickle\)"),
}


def _strategy(keys, models):
    s = HomomorphicFedAvg(keys[0], settings=SETTINGS)
    s.set_model(models[1])
    return s


def _fedavg(models, nodes):
    return aggregate_arrayrecords(
        [RecordDict({"arrays": models[k], "metrics": MetricRecord({"num-examples": COUNTS[k]})})
         for k in nodes], "num-examples")


def _assert_global(record, models, nodes, keys):
    info = inspect_encrypted(record, keys[0])
    assert info.total_examples == sum(COUNTS[k] for k in nodes) and info.clients == len(nodes)
    expected = _fedavg(models, nodes)
    got = decrypt_arrays(record, keys[1])
    err = max(float(np.max(np.abs(got[k].numpy().astype(np.float64)
                                  - expected[k].numpy().astype(np.float64)))) for k in got.keys())
    assert err <= fedavg_tolerance(info, expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_malformed_train_reply_is_excluded_and_the_round_completes(kind, clients, keys,
                                                                   other_keys, caplog):
    make, reason = KINDS[kind]
    models, records = clients
    replies = [reply_from(k, _content(records[k], COUNTS[k])) for k in (1, 3)]
    replies.insert(1, reply_from(BAD, make(models, records, keys, other_keys)))
    strategy = _strategy(keys, models)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        record, metrics = strategy.aggregate_train(1, replies)
    h = strategy.history[1]
    assert h["included"] == [1, 3]
    assert list(h["excluded"]) == [str(BAD)]
    print(f"{kind}: {h['excluded'][str(BAD)]}")
    assert re.search(reason, h["excluded"][str(BAD)]), h["excluded"]
    assert f"node {BAD} excluded" in caplog.text and h["excluded"][str(BAD)][:40] in caplog.text
    assert metrics["loss"] == pytest.approx(0.25)
    _assert_global(record, models, [1, 3], keys)


def test_every_reply_excluded_keeps_the_last_global(clients, keys):
    models, records = clients
    strategy = _strategy(keys, models)
    replies = [reply_from(k, Error(code=2, reason="down")) for k in COUNTS]
    assert strategy.aggregate_train(1, replies) == (None, None)
    assert sorted(strategy.history[1]["excluded"]) == ["1", "2", "3"]


def test_malformed_evaluate_replies_are_excluded(keys, clients, caplog):
    models, records = clients
    strategy = _strategy(keys, models)
    good = [reply_from(k, RecordDict({"metrics": MetricRecord(
        {"num-examples": 10 * k, "accuracy": 0.1 * k})}), "evaluate") for k in (1, 3)]
    bad = [
        reply_from(4, Error(code=8, reason="crashed"), "evaluate"),
        reply_from(5, _content(records[1], 5, accuracy=0.9), "evaluate"),
        reply_from(6, RecordDict({"metrics": MetricRecord({"num-examples": 5,
                                                           "accuracy": [0.9]})}), "evaluate"),
        reply_from(7, RecordDict({"metrics": MetricRecord({"accuracy": 0.9})}), "evaluate"),
    ]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        metrics = strategy.aggregate_evaluate(1, good[:1] + bad + good[1:])
    assert metrics["accuracy"] == pytest.approx((10 * 0.1 + 30 * 0.3) / 40)
    ev = strategy.history[1]["evaluate"]
    assert sorted(ev["excluded"]) == ["4", "5", "6", "7"] and ev["nodes"] == 2
    assert "client error (code 8): crashed" in ev["excluded"]["4"]
    assert "may not carry arrays" in ev["excluded"]["5"]
    assert "only finite scalar" in ev["excluded"]["6"]
    assert "positive integer" in ev["excluded"]["7"]
    assert caplog.text.count("evaluate: node") == 4


# --- the whole round loop in one process -------------------------------------------------

@pytest.fixture(scope="module")
def federation(tmp_path_factory, keys):
    """Keys on disk and node configs of three example-app partitions."""
    d = tmp_path_factory.mktemp("keys")
    write_keypair(d, *keys)
    nodes = [{"partition-id": i, "num-partitions": 3, "hefl-key-dir": str(d)} for i in range(3)]
    return d, nodes


def _start(keys, nodes, out_dir=None, tamper=None, rounds=2, **kwargs):
    task = example("task")
    local = LocalClientApp(EXAMPLE_DIR, {}, nodes, reference=False)
    grid = LocalGrid(local, tamper)
    strategy = HomomorphicFedAvg(keys[0], settings=EncodingSettings(alpha=2.0, value_bits=24,
                                                                    guard_bits=12),
                                 out_dir=out_dir, min_available_nodes=3, min_train_nodes=3,
                                 fraction_evaluate=0.25, min_evaluate_nodes=1)
    initial = ArrayRecord({k: Array(v) for k, v in task.init_arrays(0).items()})
    with server_identity():
        result = strategy.start(grid, initial, num_rounds=rounds, train_config=ConfigRecord(),
                                **kwargs)
    return result, strategy, grid, local


def test_start_returns_the_encrypted_global_as_result_arrays(keys, federation, tmp_path):
    d, nodes = federation
    result, strategy, grid, local = _start(keys, nodes, out_dir=tmp_path)
    assert is_encrypted(result.arrays)
    info = inspect_encrypted(result.arrays, keys[0])
    assert info.round == 2 and info.clients == 3
    # A key holder's one call; the model evaluates like the federation said.
    model = save_decrypted(result.arrays, d, tmp_path / "model.npz")
    assert [k for k in model.keys()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert all(a.numpy().dtype == np.float32 for a in model.values())
    acc = local.evaluate(model)["accuracy"]
    assert result.evaluate_metrics_clientapp[2]["accuracy"] == pytest.approx(acc)
    assert acc > 0.8
    server = json.loads((tmp_path / "server.json").read_text())
    assert [h["round"] for h in server["rounds"]] == [1, 2]
    assert (tmp_path / "initial.npz").is_file() and (tmp_path / "round-2.hefl.npz").is_file()
    # Round 1: 3 train + 1 evaluate instructions; the initial model is the only
    # plaintext one ever sent, every later instruction carries an encrypted global.
    kinds = [m.metadata.message_type for m in grid.instructions]
    assert kinds == ["train"] * 3 + ["evaluate"] + ["train"] * 3 + ["evaluate"]
    assert not any(is_encrypted(m.content["arrays"]) for m in grid.instructions[:3])
    assert all(is_encrypted(m.content["arrays"]) for m in grid.instructions[3:])


def test_start_fails_loudly_when_no_round_aggregates(keys, federation):
    _, nodes = federation

    def broken(reply):
        if reply.metadata.message_type == "train":
            return reply_from(reply.metadata.src_node_id, Error(code=2, reason="broken"))
        return reply

    with pytest.raises(FlowerRunError, match="no round produced an encrypted global"):
        _start(keys, nodes, tamper=broken, rounds=1)


def test_server_side_evaluation_is_refused(keys, federation):
    _, nodes = federation
    with pytest.raises(FlowerConfigError, match="server-side evaluation"):
        _start(keys, nodes, rounds=1, evaluate_fn=lambda r, a: None)
