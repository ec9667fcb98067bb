"""What the hefl ServerApp and ClientApp put into Flower's records.

Flower moves :class:`~flwr.app.RecordDict` objects between the SuperLink
and the SuperNodes. hefl adds two :class:`~flwr.app.ConfigRecord` entries
beside Flower's usual ``arrays`` / ``config`` / ``metrics``:

``hefl-update`` (client → server, train replies)
    ``ciphertext``: ``CipherVector.to_bytes()`` of the client's encoded,
    packed and encrypted contribution; ``fingerprint``: the key it was
    made under (the bytes carry it too; this copy lets a log line name it
    without parsing).

``hefl-global`` (server → clients, train and evaluate instructions)
    ``ciphertext``: the encrypted packed sum of the last round;
    ``summands``: how many client vectors were multiplied into it;
    ``weight-sum``: ``Σ w_k`` over those clients; ``round``: the round
    that produced it. All of it is public; only key holders can turn it
    into a model.

What a client encrypts
----------------------
The server never learns the global model, so it cannot send it in the
clear; the clients are stateless between rounds (a SuperNode starts a
fresh ClientApp process per message). So the encrypted sum itself *is*
the global model: each client encrypts its weighted local model
``w_k·θ_k`` (``w_k = n_k / N``, N = ``total-examples`` of the run config,
as in :mod:`hefl.fedavg.client`), clipped to ``[-alpha, alpha]``. A key
holder decrypts the sum over the accepted clients S and divides by
``Σ_S w_k``: that is exactly FedAvg's sample-weighted mean
``Σ_S n_k θ_k / Σ_S n_k`` of the (clipped) local models, up to the
encoder's quantisation error, however many clients were excluded.

Reference mode (``reference = true`` in the run config, the demo's and
the tests' setting) additionally sends each client's clipped model in
the clear as Flower's ``arrays``, so that Flower's own FedAvg aggregation
runs on the very same updates. It exists to verify the encrypted path;
it defeats the purpose of the encryption and is logged as such.
"""

__all__ = [
    "UPDATE", "GLOBAL", "THETA", "NUM_EXAMPLES", "TRAIN_KEYS", "RUN_DEFAULTS",
    "garble_spec", "nan_round",
]

#: client → server: the encrypted contribution
UPDATE = "hefl-update"
#: server → clients: the encrypted global model (sum of the last round)
GLOBAL = "hefl-global"
#: name of the single array in the ``arrays`` ArrayRecord
THETA = "theta"
#: Flower's FedAvg weighting key
NUM_EXAMPLES = "num-examples"

#: run-config keys forwarded to the clients in every train/evaluate config
TRAIN_KEYS = (
    "dataset", "data-seed", "beta", "model", "local-epochs", "lr", "batch-size",
    "seed", "alpha", "value-bits", "guard-bits", "total-examples", "client-backend",
    "reference",
)

#: run-config defaults (also in host/hefl/flower/app/pyproject.toml); the launcher
#: overrides them with ``flwr run --run-config``.
RUN_DEFAULTS = {
    "num-server-rounds": 3,
    "num-clients": 3,
    "evaluate-nodes": 1,
    "dataset": "digits",
    "data-seed": 0,
    "beta": 0.5,
    "model": "softmax",
    "local-epochs": 2,
    "lr": 0.1,
    "batch-size": 32,
    "seed": 0,
    "alpha": 1.0,
    "value-bits": 16,
    "guard-bits": 4,
    "total-examples": 0,
    "backend": "cpu",
    "client-backend": "cpu",
    "reference": True,
    "round-timeout": 300.0,
    "public-key": "",
    "out-dir": "",
}


def garble_spec(node_config):
    """Fault injection read from a node config: ``(round, mode)`` or ``None``.

    A SuperNode started with ``--node-config 'garble-round=2
    garble-mode="truncate"'`` corrupts its upload in round 2 the way a
    faulty or malicious client would (:func:`hefl.fedavg.client.garble`
    modes). For tests and demos of the server's exclusion path only.
    """
    rnd = node_config.get("garble-round")
    if rnd is None:
        return None
    return int(rnd), str(node_config.get("garble-mode", "truncate"))


def nan_round(node_config):
    """Fault injection: the round in which this node's update turns NaN, or ``None``.

    ``--node-config 'nan-round=1'`` plants a NaN in the node's local model
    in round 1, as a diverged training run would; the ClientApp must refuse
    to encrypt it (:class:`~hefl.errors.NonFiniteUpdateError`), Flower
    returns the error to the server, and the server excludes the node.
    """
    rnd = node_config.get("nan-round")
    return None if rnd is None else int(rnd)
