"""A Flower client mod: the app sees plaintext arrays, the network only ciphertext.

Add it to any ClientApp whose ServerApp runs
:class:`hefl.flower.strategy.HomomorphicFedAvg`::

    from flwr.clientapp import ClientApp
    from hefl.flower.mod import homomorphic_mod

    app = ClientApp(mods=[homomorphic_mod])

    @app.train()
    def train(msg, context):             # unchanged Flower code
        arrays = msg.content["arrays"]   # plaintext: the mod decrypted the global
        ...
        return Message(RecordDict({"arrays": trained, "metrics": MetricRecord(
            {"num-examples": n, "train-loss": loss})}), reply_to=msg)

On the way **in** (train, evaluate, query) every encrypted ArrayRecord of
the message is replaced by its decryption (the sample-weighted global
model); a plaintext one (the public initial model of round 1) passes as it
is. On the way **out** every ArrayRecord of a train reply is replaced by
its encryption, weighted by the reply's ``num-examples``
(:func:`hefl.flower.records.encrypt_arrays`) and the metric
``hefl-clipped`` (values clipped to ``±alpha``) is added; an ArrayRecord in
any other reply is refused. So no plaintext model leaves the node, unless
the run config sets ``hefl-send-plaintext-reference = true``: then the
clipped model also travels in the clear under
:data:`~hefl.flower.protocol.REFERENCE_KEY`, for verification only.

What still travels in the clear is what the app itself puts into its
MetricRecords and ConfigRecords (counts, losses, accuracies): the mod
encrypts arrays, not metrics.

Settings come from the run config (:data:`hefl.flower.protocol.RUN_DEFAULTS`)
and, for ``hefl-key-dir`` and ``hefl-client-backend``, from the node config
first. A problem hefl detects (no key directory, a NaN in the model, a
global made under another key) becomes Flower's error reply
(``MOD_FAILED_PRECONDITION``) with the reason, and the server excludes the
node for that round.
"""

import logging

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    Context,
    Error,
    Message,
    MessageType,
    RecordDict,
)
from flwr.common.constant import ErrorCode

from hefl.accel import get_accelerator
from hefl.errors import FlowerConfigError, HeflError
from hefl.flower.keys import client_keypair
from hefl.flower.protocol import NUM_EXAMPLES, REFERENCE_KEY, EncodingSettings, setting
from hefl.flower.records import (
    count_clipped,
    decrypt_arrays,
    encrypt_arrays,
    is_encrypted,
)

__all__ = ["homomorphic_mod", "CLIPPED_METRIC"]

log = logging.getLogger("hefl.flower")

#: metric added to every train reply: values the clipping changed
CLIPPED_METRIC = "hefl-clipped"


def _error(msg, reason):
    log.error("hefl mod: %s", reason)
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=f"hefl: {reason}"),
                   reply_to=msg)


def _num_examples(reply):
    metrics = list(reply.content.metric_records.values())
    if len(metrics) != 1 or NUM_EXAMPLES not in metrics[0]:
        raise FlowerConfigError(f"a train reply needs exactly one MetricRecord with "
                                f"{NUM_EXAMPLES!r} to weight its arrays")
    return metrics[0], metrics[0][NUM_EXAMPLES]


def _server_round(msg):
    for rec in msg.content.config_records.values():
        if "server-round" in rec:
            return int(rec["server-round"])
    return 0


class _Node:
    """Keys, encoding and accelerator of this node for one message."""

    def __init__(self, context: Context):
        run, node = context.run_config, context.node_config
        self.public_key, self.private_key = client_keypair(run, node)
        self.settings = EncodingSettings.from_run_config(run)
        self.reference = bool(setting("hefl-send-plaintext-reference", run))
        self.accel = get_accelerator(str(setting("hefl-client-backend", run, node)))
        self.node_id = int(context.node_id)

    def open(self, msg):
        """The incoming message with every encrypted ArrayRecord decrypted.

        A new Message over a new RecordDict: the caller's message (which a
        strategy may share between nodes in one process) is not changed.
        """
        records = dict(msg.content.items())
        for key, rec in msg.content.array_records.items():
            if is_encrypted(rec):
                records[key] = decrypt_arrays(rec, self.private_key, accel=self.accel,
                                              settings=self.settings)
        return Message(content=RecordDict(records), metadata=msg.metadata)

    def seal(self, msg, reply):
        """Encrypt every ArrayRecord of a train reply, in place."""
        metrics, n = _num_examples(reply)
        rnd = _server_round(msg)
        clipped = 0
        for key, rec in list(reply.content.array_records.items()):
            clipped += count_clipped(rec, self.settings.alpha)
            reply.content[key] = encrypt_arrays(
                rec, n, self.public_key, private_key=self.private_key, settings=self.settings,
                accel=self.accel, server_round=rnd, node_id=self.node_id)
            if self.reference:
                reply.content[REFERENCE_KEY] = _clipped(rec, self.settings.alpha)
        metrics[CLIPPED_METRIC] = clipped


def _clipped(record, alpha):
    """The record clipped to ±alpha: exactly what was encoded, before quantisation."""
    arrays = {k: a.numpy() for k, a in record.items()}
    return ArrayRecord({k: Array(np.asarray(np.clip(x, -alpha, alpha), dtype=x.dtype))
                        for k, x in arrays.items()})


def homomorphic_mod(msg: Message, context: Context, call_next) -> Message:
    """Decrypt the encrypted global for the app; encrypt the app's train reply.

    A Flower mod (``ClientApp(mods=[homomorphic_mod])``); see the module
    docstring for what it changes and what it leaves alone.
    """
    try:
        node = _Node(context)
    except HeflError as e:
        return _error(msg, str(e))
    try:
        try:
            plain = node.open(msg)
        except HeflError as e:
            return _error(msg, f"cannot decrypt the global model: {type(e).__name__}: {e}")
        reply = call_next(plain, context)
        if reply.has_error():
            return reply
        is_train = msg.metadata.message_type.split(".")[0] == MessageType.TRAIN
        if not is_train:
            if reply.content.array_records:
                return _error(msg, f"a {msg.metadata.message_type} reply may not carry arrays "
                                   f"(only train replies are encrypted): "
                                   f"{list(reply.content.array_records)}")
            return reply
        try:
            node.seal(msg, reply)
        except HeflError as e:
            # Nothing of the reply is sent: not the arrays, not the metrics.
            return _error(msg, f"cannot encrypt the reply: {type(e).__name__}: {e}")
        return reply
    finally:
        node.accel.close()

