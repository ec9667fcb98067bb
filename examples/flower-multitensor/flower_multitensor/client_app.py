"""The ClientApp: ordinary Flower code plus one mod.

``homomorphic_mod`` decrypts the encrypted global the server sends (the
app receives a plaintext ArrayRecord) and encrypts the train reply's arrays
(the server receives ciphertext only). Nothing else here knows about
encryption. The node's key pair comes from ``hefl-key-dir`` in its node
config (Deployment Runtime) or in the run config (Simulation Runtime).
"""

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_multitensor import task
from hefl.flower.mod import homomorphic_mod

app = ClientApp(mods=[homomorphic_mod])


def _data(context):
    cfg = context.run_config
    return task.load_partition(context.node_config["partition-id"],
                               context.node_config["num-partitions"],
                               seed=cfg["seed"], beta=cfg["beta"])


def _arrays(record):
    return {k: a.numpy() for k, a in record.items()}


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received model on this node's shard."""
    cfg = context.run_config
    (x, y), _ = _data(context)
    server_round = int(msg.content["config"]["server-round"])
    rng = np.random.default_rng([cfg["seed"], context.node_config["partition-id"], server_round])
    trained, loss = task.train(_arrays(msg.content["arrays"]), x, y, epochs=cfg["local-epochs"],
                               lr=cfg["lr"], batch_size=cfg["batch-size"], rng=rng)
    content = RecordDict({
        "arrays": ArrayRecord({k: Array(v) for k, v in trained.items()}),
        "metrics": MetricRecord({"num-examples": len(y), "train-loss": loss}),
    })
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Test the received (decrypted) global model on the shared test set."""
    _, (x, y) = _data(context)
    loss, accuracy = task.evaluate(_arrays(msg.content["arrays"]), x, y)
    metrics = MetricRecord({"num-examples": len(y), "loss": loss, "accuracy": accuracy})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
