"""Client side: a Flower ClientApp that trains, encodes, packs and encrypts.

Each SuperNode is one party. Its node config names its data partition and
its key directory::

    flower-supernode --insecure --superlink 127.0.0.1:9092 \\
        --node-config 'partition-id=0 num-partitions=3 key-dir="/keys"'

On a **train** message the ClientApp

1. loads the key pair from ``key-dir`` (:mod:`hefl.flower.keys`) and its
   shard of the federated dataset (:func:`hefl.fedavg.data.load_federated`,
   the same seeded non-IID split on every node);
2. turns the server's ``hefl-global`` record into the current global model
   by decrypting the packed sum, unpacking it and dividing by ``Σ w_k``
   (:class:`hefl.fedavg.keyholder.KeyHolder`); in round 1 there is none
   and the public initial model in ``arrays`` is used;
3. trains locally (:mod:`hefl.fedavg.model`, seeded batch order);
4. clips ``w_k·θ_k`` to ``[-alpha, alpha]``, encodes and packs it
   (:class:`hefl.encoding.Encoder`) and encrypts it on the node's
   Accelerator (``client-backend`` of the run config); the reply carries
   the bytes (``hefl-update``), the sample count and, in reference mode
   only, the clipped model in the clear.

Before training it also tests the model it decrypted (the previous round's
global model) on the held-out test set and reports that in the train
reply, so Flower needs a separate **evaluate** exchange only after the last
round; an evaluate message gets the same metrics (:meth:`Party.test`:
accuracy and loss, and in reference mode those of Flower's plaintext FedAvg
model plus the largest difference between the two).

``nan-round`` in the node config makes the node's local model NaN in that
round (it must refuse to encrypt; :func:`hefl.flower.protocol.nan_round`);
``garble-round`` / ``garble-mode`` make it corrupt its upload in that round
(:func:`hefl.flower.protocol.garble_spec`). Both exercise the server's
exclusion path.
"""

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

from hefl.accel import get_accelerator
from hefl.encoding import Encoder
from hefl.errors import FlowerConfigError
from hefl.fedavg.client import check_and_clip, garble
from hefl.fedavg.data import load_federated
from hefl.fedavg.keyholder import KeyHolder
from hefl.fedavg.model import make_model
from hefl.flower.keys import node_keypair
from hefl.flower.protocol import (
    GLOBAL,
    NUM_EXAMPLES,
    THETA,
    UPDATE,
    garble_spec,
    nan_round,
)
from hefl.paillier import CipherVector, Paillier

__all__ = ["app", "Party"]

app = ClientApp()


def _node_int(node_config, key):
    if key not in node_config:
        raise FlowerConfigError(f"node config has no {key!r}; start the SuperNode with "
                                f"--node-config '{key}=...'")
    return int(node_config[key])


class Party:
    """Everything one node needs for one message: keys, data, encoder, model.

    Parameters
    ----------
    config : mapping
        The ``config`` ConfigRecord of the instruction (run settings).
    node_config : mapping
        The SuperNode's node config.
    """

    def __init__(self, config, node_config):
        self.config = config
        self.partition = _node_int(node_config, "partition-id")
        partitions = _node_int(node_config, "num-partitions")
        if not 0 <= self.partition < partitions:
            raise FlowerConfigError(
                f"partition-id {self.partition} is not in 0..{partitions - 1}")
        self.public_key, self.private_key = node_keypair(node_config)
        self.data = load_federated(str(config["dataset"]), partitions,
                                   seed=int(config["data-seed"]), beta=float(config["beta"]))
        self.shard = self.data.clients[self.partition]
        self.model = make_model(str(config["model"]), self.data.n_features, self.data.n_classes)
        self.encoder = Encoder(plaintext_bits=self.public_key.n.bit_length() - 1,
                               alpha=float(config["alpha"]), value_bits=int(config["value-bits"]),
                               guard_bits=int(config["guard-bits"]))
        self.total = int(config["total-examples"])
        if self.total < self.shard.n:
            raise FlowerConfigError(
                f"total-examples is {self.total}, less than this node's {self.shard.n} samples")
        self.weight = self.shard.n / self.total
        self.accel = get_accelerator(str(config["client-backend"]))
        self.keyholder = KeyHolder(self.public_key, self.private_key, self.accel, self.encoder)

    def close(self):
        """Release the accelerator (worker pools, device handles)."""
        self.accel.close()

    def global_theta(self, content):
        """The current global model: the decrypted ``hefl-global`` or the initial arrays.

        Returns
        -------
        (np.ndarray, float or None)
            Parameters and, when decrypted, the quantisation error bound of
            each entry.
        """
        rec = content.config_records.get(GLOBAL)
        if rec is None:
            return _theta(content["arrays"]), None
        cipher = CipherVector.from_bytes(rec["ciphertext"], self.public_key)
        summands, wsum = int(rec["summands"]), float(rec["weight-sum"])
        theta = self.keyholder.mean_update(cipher, self.model.size, summands, wsum)
        return theta, self.keyholder.error_bound(summands, wsum)

    def test(self, theta, bound, content, reference):
        """Metrics of the global model ``theta`` on the held-out test set.

        Keys ``global-accuracy``, ``global-loss`` and ``global-bound`` (the
        quantisation bound per entry, 0 for the public initial model); in
        reference mode also ``plaintext-accuracy``, ``plaintext-loss`` of
        Flower's FedAvg model (``arrays``) and ``max-abs-diff`` between the
        two models.
        """
        x, y = self.data.x_test, self.data.y_test
        m = make_model(str(self.config["model"]), self.data.n_features, self.data.n_classes)
        m.set_params(theta)
        out = {"global-accuracy": m.accuracy(x, y), "global-loss": m.loss(x, y),
               "global-bound": float(bound) if bound is not None else 0.0}
        if reference:
            ref = _theta(content["arrays"])
            out["max-abs-diff"] = float(np.max(np.abs(ref - theta)))
            m.set_params(ref)
            out["plaintext-accuracy"] = m.accuracy(x, y)
            out["plaintext-loss"] = m.loss(x, y)
        return out

    def fit(self, theta, server_round, poison=False):
        """Local SGD from ``theta``; returns the clipped ``w_k·θ_k`` and counts.

        ``poison`` plants a NaN (fault injection, :func:`~hefl.flower.protocol.nan_round`).

        Raises
        ------
        NonFiniteUpdateError
            The local model is not finite; nothing is encrypted.
        """
        m = self.model
        m.set_params(theta)
        rng = np.random.default_rng([int(self.config["seed"]), self.partition, server_round])
        with np.errstate(over="ignore", invalid="ignore"):
            m.train_epochs(self.shard.x, self.shard.y, epochs=int(self.config["local-epochs"]),
                           lr=float(self.config["lr"]), batch_size=int(self.config["batch-size"]),
                           rng=rng)
            scaled = self.weight * m.get_params()
        if poison:
            scaled[len(scaled) // 2] = np.nan
        clipped, n_clipped = check_and_clip(scaled, self.encoder.params.alpha,
                                            f"partition {self.partition}: local model")
        return clipped, n_clipped, m.loss(self.shard.x, self.shard.y)

    def encrypt(self, scaled, server_round, node_id):
        """Encode, pack and encrypt; the bytes name the round and the sending node."""
        meta = {"encoding": self.encoder.params.to_dict(), "length": self.model.size,
                "round": server_round, "client": node_id, "examples": self.shard.n}
        he = Paillier(self.public_key, self.private_key, self.accel)
        return he.encrypt(self.encoder.encode(scaled), meta=meta).to_bytes()


def _theta(arrays):
    return np.asarray(arrays[THETA].numpy(), dtype=np.float64)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train locally and reply with the encrypted, weighted local model."""
    config = msg.content["config"]
    server_round = int(config["server-round"])
    party = Party(config, context.node_config)
    try:
        theta, bound = party.global_theta(msg.content)
        # The model this node just decrypted is the last round's global
        # model: test it here, which saves Flower an evaluate exchange.
        metrics = party.test(theta, bound, msg.content, bool(config["reference"]))
        poison = nan_round(context.node_config) == server_round
        scaled, clipped, loss = party.fit(theta, server_round, poison=poison)
        data = party.encrypt(scaled, server_round, int(context.node_id))
    finally:
        party.close()
    spec = garble_spec(context.node_config)
    if spec is not None and spec[0] == server_round:
        data = garble(data, spec[1])
    metrics.update({NUM_EXAMPLES: party.shard.n, "partition-id": party.partition,
                    "train-loss": float(loss), "clipped": clipped})
    content = RecordDict({
        "metrics": MetricRecord(metrics),
        UPDATE: ConfigRecord({"ciphertext": data, "fingerprint": party.public_key.fingerprint}),
    })
    if bool(config["reference"]):
        # What was encrypted, divided back by w_k: Flower's FedAvg of these
        # equals the decrypted mean up to quantisation.
        content["arrays"] = ArrayRecord({THETA: Array(scaled / party.weight)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Decrypt the global model and test it (and Flower's plaintext one)."""
    config = msg.content["config"]
    party = Party(config, context.node_config)
    try:
        theta, bound = party.global_theta(msg.content)
    finally:
        party.close()
    metrics = party.test(theta, bound, msg.content, bool(config["reference"]))
    metrics[NUM_EXAMPLES] = int(len(party.data.y_test))
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
