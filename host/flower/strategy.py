"""Server side: a Flower FedAvg strategy whose aggregation is homomorphic.

:class:`HomomorphicFedAvg` subclasses Flower's message-API
:class:`flwr.serverapp.strategy.FedAvg` and keeps Flower's sampling, round
loop, timeouts and metric aggregation. It changes what aggregation means:

* **train replies** carry each client's encrypted contribution as bytes
  (``hefl-update`` record, :mod:`hefl.flower.protocol`). The strategy parses
  and validates every one with the public key only
  (:class:`hefl.fedavg.aggregator.Aggregator`: format and checksum,
  ``0 < c < n²``, ``gcd(c, n) = 1``, key fingerprint, encoding parameters,
  vector length, round, and that the vector names the Flower node that
  sent it). A reply that fails any check, carries a Flower error or lacks
  its sample count is **excluded with its reason logged**; the round goes
  on with the others.
* the accepted vectors are multiplied slot by slot on the hefl Accelerator
  (``Paillier.aggregate`` → ``product`` jobs; any backend). The encrypted
  packed sum, with its summand count and ``Σ w_k``, becomes the global
  state sent to the clients next (``hefl-global``). The server holds no
  private key and never sees a model.
* in reference mode the clients also send the clipped model they encrypted
  in the clear; the strategy then runs Flower's own FedAvg aggregation
  (``aggregate_arrayrecords``) over exactly the accepted replies, and that
  plaintext global travels as Flower's ``arrays``. Key holders evaluate
  both, which is how the demo reports ``plaintext_final_accuracy`` and how
  the tests check the encrypted result against Flower's.

Each round's outcome (accepted and excluded nodes with reasons, sizes,
timings, evaluation metrics) is kept in :attr:`HomomorphicFedAvg.history`;
with ``out_dir`` set, the encrypted sum of round r is also written to
``round-r.hefl`` and the reference global to ``round-r-plaintext.npy`` so
that a key holder (or a test) can check them independently.
"""

import time
from logging import INFO, WARNING
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import (
    aggregate_arrayrecords,
    aggregate_metricrecords,
    validate_message_reply_consistency,
)

from ..errors import FlowerConfigError
from ..fedavg.aggregator import Aggregator
from .protocol import GLOBAL, NUM_EXAMPLES, THETA, UPDATE

__all__ = ["HomomorphicFedAvg"]


class HomomorphicFedAvg(FedAvg):
    """FedAvg with key-less, encrypted aggregation on a hefl Accelerator.

    Parameters
    ----------
    public_key : hefl.paillier.PublicKey
        The federation's public key (the only key the server has).
    accel : hefl.accel.Accelerator
        Backend for the ciphertext products.
    encoder : hefl.encoding.Encoder
        The federation's encoder; its parameters must match every vector.
    model_size : int
        Number of model parameters packed into each vector.
    total_examples : int
        N of ``w_k = n_k / N`` (public; sum of all clients' sample counts).
    reference : bool
        Also aggregate the clients' plaintext models with Flower's FedAvg
        (verification only: it discloses the models to the server).
    out_dir : str or Path, optional
        Where to write each round's encrypted sum and reference model.
    **kwargs
        Passed to :class:`flwr.serverapp.strategy.FedAvg` (sampling).
    """

    def __init__(self, *, public_key, accel, encoder, model_size, total_examples,
                 reference=False, out_dir=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(total_examples, int) or total_examples < 1:
            raise FlowerConfigError(
                f"total-examples must be a positive integer (Σ n_k of all clients), "
                f"not {total_examples!r}")
        self.public_key = public_key
        self.encoder = encoder
        self.model_size = int(model_size)
        self.total_examples = total_examples
        self.reference = bool(reference)
        self.out_dir = Path(out_dir) if out_dir else None
        self.aggregator = Aggregator(
            public_key, accel,
            {"encoding": encoder.params.to_dict(), "length": self.model_size})
        self.global_record = None     # ConfigRecord sent as GLOBAL, None before round 1
        self.history = {}             # round -> dict
        if self.reference:
            log(WARNING, "hefl: reference mode: clients also send their models in the clear "
                         "so Flower's plaintext FedAvg can be compared; for verification only")

    # --- sending ------------------------------------------------------------

    def _attach_global(self, messages):
        messages = list(messages)
        if self.global_record is not None:
            for m in messages:
                m.content[GLOBAL] = self.global_record
        return messages

    def configure_train(self, server_round, arrays, config, grid):
        """Flower's sampling and instructions, plus the encrypted global model."""
        return self._attach_global(super().configure_train(server_round, arrays, config, grid))

    def configure_evaluate(self, server_round, arrays, config, grid):
        """Same for evaluation: key holders decrypt the global model and test it."""
        return self._attach_global(super().configure_evaluate(server_round, arrays, config, grid))

    # --- receiving ----------------------------------------------------------

    def _exclude(self, excluded, server_round, node, reason):
        excluded[node] = reason
        log(WARNING, "hefl: round %d: node %d excluded: %s", server_round, node, reason)

    def _screen(self, server_round, replies):
        """Split replies into uploads (node -> bytes, counts) and exclusions."""
        uploads, counts, contents, excluded = {}, {}, {}, {}
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if msg.has_error():
                self._exclude(excluded, server_round, node, f"client error: {msg.error.reason}")
                continue
            content = msg.content
            rec = content.config_records.get(UPDATE)
            if rec is None or "ciphertext" not in rec:
                self._exclude(excluded, server_round, node, f"reply has no {UPDATE!r} ciphertext record")
                continue
            metrics = next(iter(content.metric_records.values()), {})
            n = metrics.get(NUM_EXAMPLES)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                self._exclude(excluded, server_round, node,
                              f"{NUM_EXAMPLES} must be a positive integer, not {n!r}")
                continue
            if self.reference and len(content.array_records) != 1:
                self._exclude(excluded, server_round, node,
                              "reference mode needs exactly one plaintext ArrayRecord")
                continue
            uploads[node], counts[node], contents[node] = rec["ciphertext"], n, content
        return uploads, counts, contents, excluded

    def aggregate_train(self, server_round, replies):
        """Validate the encrypted uploads and multiply the good ones.

        Returns
        -------
        (ArrayRecord or None, MetricRecord or None)
            Flower's plaintext FedAvg of the accepted replies in reference
            mode (None otherwise: Flower then keeps its previous arrays),
            and the weighted mean of the accepted replies' metrics.
        """
        replies = list(replies)
        t0 = time.perf_counter()
        uploads, counts, contents, excluded = self._screen(server_round, replies)
        agg = self.aggregator.aggregate(uploads, server_round)
        for node, reason in agg.excluded.items():
            self._exclude(excluded, server_round, node, reason)
        seconds = time.perf_counter() - t0
        entry = {
            "round": server_round, "sampled": len(replies), "included": agg.included,
            "excluded": {str(k): v for k, v in sorted(excluded.items())},
            "partition_ids": {}, "bytes_up": {str(k): len(uploads[k]) for k in sorted(uploads)},
            "aggregate_s": seconds,
        }
        self.history[server_round] = entry
        if agg.cipher is None:
            log(WARNING, "hefl: round %d: no valid upload; the global model stays as it was",
                server_round)
            return None, None
        weight_sum = sum(counts[k] for k in agg.included) / self.total_examples
        data = agg.cipher.to_bytes()
        self.global_record = ConfigRecord({
            "ciphertext": data, "summands": len(agg.included), "weight-sum": weight_sum,
            "round": server_round, "fingerprint": self.public_key.fingerprint,
        })
        entry.update(summands=len(agg.included), weight_sum=weight_sum,
                     aggregate_bytes=len(data), ciphertexts=len(agg.cipher))
        for k in agg.included:
            metrics = next(iter(contents[k].metric_records.values()))
            if "partition-id" in metrics:
                entry["partition_ids"][str(k)] = int(metrics["partition-id"])
        log(INFO, "hefl: round %d: aggregated %d encrypted updates (%d ciphertexts) in %.3f s; "
                  "%d excluded", server_round, len(agg.included), len(agg.cipher), seconds,
            len(excluded))
        accepted = [contents[k] for k in agg.included]
        arrays = None
        if self.reference:
            validate_message_reply_consistency(accepted, NUM_EXAMPLES, check_arrayrecord=True)
            # Flower's own FedAvg over exactly the replies the encrypted sum holds.
            arrays = aggregate_arrayrecords(accepted, NUM_EXAMPLES)
        metrics = aggregate_metricrecords(accepted, NUM_EXAMPLES)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / f"round-{server_round}.hefl").write_bytes(data)
            if arrays is not None:
                np.save(self.out_dir / f"round-{server_round}-plaintext.npy",
                        arrays[next(iter(arrays.keys()))].numpy())
        return arrays, metrics

    def aggregate_evaluate(self, server_round, replies):
        """Flower's weighted metric mean; also kept in :attr:`history`."""
        metrics = super().aggregate_evaluate(server_round, replies)
        if metrics is not None:
            self.history.setdefault(server_round, {"round": server_round})["evaluate"] = {
                k: (float(v) if not isinstance(v, list) else v) for k, v in metrics.items()}
        return metrics

    # --- initial state --------------------------------------------------------

    @staticmethod
    def initial_arrays(theta):
        """The ArrayRecord of an initial model (public, sent in the clear)."""
        return ArrayRecord({THETA: Array(np.asarray(theta, dtype=np.float64))})

