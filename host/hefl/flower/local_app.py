"""A Flower App's ClientApp driven in this process: the key holder's replay.

:class:`LocalClientApp` loads the ClientApp named in an app's
``pyproject.toml`` and sends it Flower Messages directly, one
:class:`~flwr.app.Context` per partition, exactly as a SuperNode would
(mods included). Nothing leaves the process. The launcher
(:mod:`hefl.flower.launch`), a key holder, uses it after a federation run
to

* compute the **plaintext reference**: Flower's FedAvg
  (``aggregate_arrayrecords``) over the same partitions, round after round
  (:func:`fedavg_round`, :func:`plaintext_fedavg`), without any client
  model being sent anywhere; and
* check each round's decrypted global against Flower's FedAvg of the
  client models trained from the previous decrypted global (the same
  client models the federation's nodes produced, for a deterministic app).

In-process replies carry the clipped plaintext model beside their
encryption (``hefl-send-plaintext-reference`` is set in *this* process's
run config only): the replay reads the values that were encrypted, before
quantisation. The app must read its hyperparameters from the run and node
configs (as Flower templates do), not from the server's train config: the
replay sends only ``server-round``.
"""

import importlib
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MessageType, Metadata, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from hefl.errors import FlowerConfigError, FlowerRunError
from hefl.flower.protocol import ARRAYS_KEY, NUM_EXAMPLES, REFERENCE_KEY

__all__ = ["LocalClientApp", "app_config", "fedavg_round", "plaintext_fedavg", "max_abs_diff"]


def app_config(app_dir):
    """``[tool.flwr.app]`` of the app's ``pyproject.toml``."""
    path = Path(app_dir) / "pyproject.toml"
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)["tool"]["flwr"]["app"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise FlowerConfigError(f"{path}: not a Flower App configuration ({e})") from None


def _load(ref, app_dir):
    module, _, attr = ref.partition(":")
    root = str(Path(app_dir).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise FlowerConfigError(f"cannot load {ref!r} from {app_dir}: {e}") from None


class LocalClientApp:
    """Send Flower Messages to an app's ClientApp in this process.

    Parameters
    ----------
    app_dir : str or Path
        The Flower App (its ``pyproject.toml`` names the ClientApp).
    run_config : dict
        Overrides of the app's ``[tool.flwr.app.config]`` (as ``flwr run
        --run-config`` gives them).
    node_configs : list of dict
        One node config per partition (``partition-id``, ``num-partitions``,
        ``hefl-key-dir``, ...).
    reference : bool
        Let replies carry the clipped plaintext model too (what the replay
        needs; it never leaves this process). ``False`` keeps the run
        config's own setting.
    app : flwr.clientapp.ClientApp, optional
        Use this ClientApp instead of the one the app names.

    Attributes
    ----------
    contexts : list of flwr.app.Context
        One per partition; node ids ``1 … K``.
    """

    def __init__(self, app_dir, run_config, node_configs, *, reference=True, app=None):
        cfg = app_config(app_dir)
        self.app = app if app is not None else _load(cfg["components"]["clientapp"], app_dir)
        self.run_config = {**cfg.get("config", {}), **run_config}
        if reference:
            self.run_config["hefl-send-plaintext-reference"] = True
        self.contexts = [Context(run_id=0, node_id=1 + i, node_config=dict(nc), state=RecordDict(),
                                 run_config=self.run_config)
                         for i, nc in enumerate(node_configs)]

    def handle(self, msg):
        """Deliver an instruction Message to the node it names; the reply Message."""
        ctx = next((c for c in self.contexts if c.node_id == msg.metadata.dst_node_id), None)
        if ctx is None:
            raise FlowerRunError(f"no local node {msg.metadata.dst_node_id}")
        return self.app(msg, ctx)

    def send(self, partition, message_type, arrays, server_round):
        """One message to partition ``partition``'s ClientApp; its reply Message."""
        ctx = self.contexts[partition]
        metadata = Metadata(run_id=0, message_id=f"local-{server_round}-{partition}",
                            src_node_id=0, dst_node_id=ctx.node_id, reply_to_message_id="",
                            group_id=str(server_round), created_at=time.time(), ttl=3600.0,
                            message_type=message_type)
        content = RecordDict({ARRAYS_KEY: arrays,
                              "config": ConfigRecord({"server-round": int(server_round)})})
        return self.app(Message(content=content, metadata=metadata), ctx)

    def evaluate(self, arrays, server_round=0, partition=0):
        """The metrics the app's evaluate function reports for ``arrays`` (a dict)."""
        reply = self.send(partition, MessageType.EVALUATE, arrays, server_round)
        if reply.has_error():
            raise FlowerRunError(f"local evaluate failed: {reply.error.reason}")
        return dict(next(iter(reply.content.metric_records.values())))


def fedavg_round(local, arrays, server_round, partitions):
    """Flower's FedAvg of the partitions' clipped client models trained from ``arrays``.

    Returns
    -------
    (ArrayRecord, dict)
        The FedAvg model and ``partition -> num-examples``.
    """
    records, counts = [], {}
    for k in partitions:
        reply = local.send(k, MessageType.TRAIN, arrays, server_round)
        if reply.has_error():
            raise FlowerRunError(f"local train of partition {k} failed: {reply.error.reason}")
        metrics = next(iter(reply.content.metric_records.values()))
        counts[k] = int(metrics[NUM_EXAMPLES])
        records.append(RecordDict({ARRAYS_KEY: reply.content[REFERENCE_KEY], "metrics": metrics}))
    return aggregate_arrayrecords(records, NUM_EXAMPLES), counts


def plaintext_fedavg(local, initial, rounds, partitions):
    """Plaintext FedAvg for ``rounds`` rounds from ``initial``; the global of each round."""
    out, arrays = [], initial
    for r in range(1, rounds + 1):
        arrays, _ = fedavg_round(local, arrays, r, partitions)
        out.append(arrays)
    return out


def max_abs_diff(a, b):
    """Largest |a − b| over all arrays of two records with the same names and shapes."""
    if list(a.keys()) != list(b.keys()):
        raise FlowerRunError(f"records differ in their arrays: {list(a)} vs {list(b)}")
    return max((float(np.max(np.abs(a[k].numpy().astype(np.float64)
                                    - b[k].numpy().astype(np.float64)), initial=0.0))
                for k in a.keys()), default=0.0)
