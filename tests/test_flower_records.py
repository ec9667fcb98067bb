"""The encrypted ArrayRecord: layout kept, FedAvg exact within its bound, files, refusals.

No processes: the client-side API (:mod:`hefl.flower.records`) and the
strategy's aggregation on hand-made replies. The reference each time is
Flower's own ``aggregate_arrayrecords`` on the same (clipped) client arrays.
"""

import numpy as np
import pytest

import flwr  # noqa: E402,F401  (the flower extra is part of make setup: never skip)

from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords  # noqa: E402

from _flower_local import reply_from  # noqa: E402
from hefl.errors import (  # noqa: E402
    EncodingError,
    KeyMismatchError,
    MetadataMismatchError,
    NonFiniteUpdateError,
    SerializationError,
)
from hefl.flower.keys import write_keypair  # noqa: E402
from hefl.flower.protocol import CIPHER_STYPE, EncodingSettings  # noqa: E402
from hefl.flower.records import (  # noqa: E402
    ArrayLayout,
    decrypt_arrays,
    encrypt_arrays,
    inspect_encrypted,
    is_encrypted,
    load_arrays,
    load_encrypted,
    save_decrypted,
    save_encrypted,
)
from hefl.flower.report import fedavg_tolerance  # noqa: E402
from hefl.flower.strategy import HomomorphicFedAvg  # noqa: E402
from hefl.paillier import generate_keypair  # noqa: E402

SETTINGS = EncodingSettings(alpha=1.0, value_bits=16, guard_bits=12)


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


def _model(rng, scale=0.3):
    """Four arrays of different shapes and three float dtypes, one a scalar."""
    return ArrayRecord({
        "conv.weight": Array((rng.standard_normal((4, 3, 3, 3)) * scale).astype(np.float32)),
        "conv.bias": Array((rng.standard_normal(4) * scale).astype(np.float64)),
        "head.weight": Array((rng.standard_normal((5, 36)) * scale).astype(np.float16)),
        "temperature": Array(np.asarray(rng.standard_normal() * scale, dtype=np.float32)),
    })


def _clip(record, alpha):
    return ArrayRecord({k: Array(np.asarray(np.clip(a.numpy(), -alpha, alpha)))
                        for k, a in record.items()})


def _replies(rng, keys, counts, server_round=1, settings=SETTINGS):
    """Encrypted replies of fresh models; the models as encrypted (clipped to alpha)."""
    pub, priv = keys
    models, replies = [], []
    for node, n in enumerate(counts, start=1):
        m = _model(rng)
        models.append(_clip(m, settings.alpha))
        rec = encrypt_arrays(m, n, pub, private_key=priv, settings=settings,
                             server_round=server_round, node_id=node)
        replies.append(reply_from(node, RecordDict(
            {"arrays": rec, "metrics": MetricRecord({"num-examples": n, "loss": 0.5})})))
    return models, replies


def _flower_fedavg(models, counts):
    return aggregate_arrayrecords(
        [RecordDict({"arrays": m, "metrics": MetricRecord({"num-examples": n})})
         for m, n in zip(models, counts)], "num-examples")


def _max_diff(a, b):
    assert list(a.keys()) == list(b.keys())
    for k in a.keys():
        assert a[k].numpy().dtype == b[k].numpy().dtype and a[k].shape == b[k].shape, k
    return max(float(np.max(np.abs(a[k].numpy().astype(np.float64)
                                   - b[k].numpy().astype(np.float64)))) for k in a.keys())


def test_layout_keeps_names_shapes_dtypes(seed, keys):
    rng = np.random.default_rng(seed)
    m = _model(rng)
    layout = ArrayLayout.of(m)
    assert [e[0] for e in layout.entries] == list(m.keys())
    assert layout.size == 108 + 4 + 180 + 1
    assert ArrayLayout.from_meta(layout.to_meta()) == layout
    back = layout.unflatten(layout.flatten(m))
    assert _max_diff(back, m) == 0.0


def test_single_update_decrypts_to_the_clipped_model(seed, keys):
    rng = np.random.default_rng(seed)
    m = _model(rng, scale=1.0)     # some values beyond alpha = 1
    pub, priv = keys
    rec = encrypt_arrays(m, 37, pub, private_key=priv, settings=SETTINGS, server_round=2,
                         node_id=9)
    assert is_encrypted(rec) and not is_encrypted(m)
    (entry,) = rec.values()
    assert entry.stype == CIPHER_STYPE
    info = inspect_encrypted(rec, pub)
    assert (info.round, info.examples, info.total_examples, info.clients) == (2, [37], 37, 1)
    clipped = _clip(m, 1.0)
    assert _max_diff(decrypt_arrays(rec, priv), clipped) <= fedavg_tolerance(info, clipped)


def test_encrypted_global_equals_flower_fedavg(seed, keys):
    rng = np.random.default_rng(seed)
    counts = [int(c) for c in rng.integers(1, 400, size=3)]
    models, replies = _replies(rng, keys, counts)
    strategy = HomomorphicFedAvg(keys[0], settings=SETTINGS)
    strategy.set_model(models[0])
    record, metrics = strategy.aggregate_train(1, replies)
    assert strategy.history[1]["excluded"] == {}
    assert metrics["loss"] == pytest.approx(0.5)
    info = inspect_encrypted(record, keys[0])
    assert info.total_examples == sum(counts) and info.clients == 3
    expected = _flower_fedavg(models, counts)
    err = _max_diff(decrypt_arrays(record, keys[1]), expected)
    print(f"counts {counts}: max |HE - FedAvg| = {err:.3e}, "
          f"bound {fedavg_tolerance(info, expected):.3e}")
    assert err <= fedavg_tolerance(info, expected)


def test_replies_beyond_the_guard_bits_go_into_groups(seed, keys):
    """2**4 = 16 summands per slot: counts 10, 9 and 8 need three groups, 9 and 7 one."""
    rng = np.random.default_rng(seed)
    small = EncodingSettings(alpha=1.0, value_bits=16, guard_bits=4)
    counts = [10, 9, 8]
    models, replies = _replies(rng, keys, counts, settings=small)
    strategy = HomomorphicFedAvg(keys[0], settings=small)
    strategy.set_model(models[0])
    record, _ = strategy.aggregate_train(1, replies)
    assert strategy.history[1]["groups"] == [[1], [2], [3]]
    info = inspect_encrypted(record, keys[0])
    assert info.examples == counts and len(record) == 3
    expected = _flower_fedavg(models, counts)
    assert _max_diff(decrypt_arrays(record, keys[1]), expected) <= fedavg_tolerance(info, expected)
    _, replies = _replies(rng, keys, [9, 7], settings=small)
    strategy.aggregate_train(1, replies)
    assert strategy.history[1]["groups"] == [[1, 2]]     # exactly 16: one group


def test_refusals_before_anything_is_encrypted(keys):
    pub, priv = keys
    good = ArrayRecord({"w": Array(np.zeros(3, np.float32))})
    with pytest.raises(EncodingError, match="only float arrays"):
        encrypt_arrays(ArrayRecord({"steps": Array(np.zeros(1, np.int64))}), 1, pub)
    with pytest.raises(NonFiniteUpdateError):
        encrypt_arrays(ArrayRecord({"w": Array(np.array([0.0, np.nan], np.float32))}), 1, pub)
    with pytest.raises(EncodingError, match="guard-bits"):
        encrypt_arrays(good, 2 ** 12 + 1, pub, settings=SETTINGS)
    for bad in (0, -3, True, 2.0):
        with pytest.raises(EncodingError, match="positive integer"):
            encrypt_arrays(good, bad, pub)
    rec = encrypt_arrays(good, 1, pub, private_key=priv)
    with pytest.raises(EncodingError, match="already encrypted"):
        encrypt_arrays(rec, 1, pub)


def test_flowers_own_fedavg_fails_loudly_on_an_encrypted_record(keys):
    """An encrypted record is never mistaken for a model by plain Flower code."""
    rec = encrypt_arrays(ArrayRecord({"w": Array(np.ones(4, np.float32))}), 3, keys[0])
    with pytest.raises(TypeError, match="serialization type"):
        next(iter(rec.values())).numpy()
    with pytest.raises(TypeError):
        aggregate_arrayrecords([RecordDict({"arrays": rec,
                                            "metrics": MetricRecord({"num-examples": 3})})],
                               "num-examples")


def test_wrong_key_and_inconsistent_groups_are_detected(seed, keys):
    rng = np.random.default_rng(seed)
    other = generate_keypair(512)
    rec = encrypt_arrays(_model(rng), 5, keys[0], private_key=keys[1])
    with pytest.raises(KeyMismatchError):
        decrypt_arrays(rec, other[1])
    small = EncodingSettings(alpha=1.0, value_bits=16, guard_bits=4)
    models, replies = _replies(rng, keys, [10, 9], settings=small)
    strategy = HomomorphicFedAvg(keys[0], settings=small)
    strategy.set_model(models[0])
    record, _ = strategy.aggregate_train(1, replies)
    del record["hefl.ciphertext.1"]            # a group lost on the way
    with pytest.raises(MetadataMismatchError, match="group|add up"):
        inspect_encrypted(record, keys[0])
    with pytest.raises(SerializationError, match="not an encrypted"):
        inspect_encrypted(models[0], keys[0])


def test_files_and_the_one_call_decrypt(seed, keys, tmp_path):
    rng = np.random.default_rng(seed)
    models, replies = _replies(rng, keys, [3, 4])
    strategy = HomomorphicFedAvg(keys[0], settings=SETTINGS)
    strategy.set_model(models[0])
    record, _ = strategy.aggregate_train(1, replies)
    path = save_encrypted(tmp_path / "global.hefl.npz", record)
    again = load_encrypted(path)
    assert {k: a.data for k, a in again.items()} == {k: a.data for k, a in record.items()}
    write_keypair(tmp_path / "keys", *keys)
    from_record = save_decrypted(record, keys[1], tmp_path / "a.npz")
    from_file = save_decrypted(path, tmp_path / "keys", tmp_path / "b.npz")
    assert _max_diff(from_record, from_file) == 0.0
    assert _max_diff(load_arrays(tmp_path / "b.npz"), from_record) == 0.0
    with pytest.raises(SerializationError):
        save_encrypted(tmp_path / "plain.npz", models[0])
