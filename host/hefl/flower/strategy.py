"""Server side: a Flower FedAvg strategy whose aggregation is homomorphic.

:class:`HomomorphicFedAvg` subclasses Flower's message-API
:class:`flwr.serverapp.strategy.FedAvg` and keeps Flower's sampling, round
loop, timeouts and metric aggregation. It changes what aggregation means:

* **train replies** carry each client's encrypted contribution as bytes
  (``hefl-update`` record, :mod:`hefl.flower.protocol`). The strategy parses
  and validates every one with the public key only
  (:class:`hefl.fedavg.aggregator.Aggregator`: format and checksum,
  ``0 < c < n²``, ``gcd(c, n) = 1``, key fingerprint, encoding parameters,
  vector length, round, that the vector names the Flower node that sent
  it, and that the sample count it was weighted with is the one the reply
  reports). A reply that fails any check, carries a Flower error or lacks
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

from hefl.accel import device_cycles
from hefl.errors import CiphertextError, FlowerConfigError, SerializationError
from hefl.fedavg.aggregator import Aggregator, MetadataMismatchError
from hefl.flower.protocol import GLOBAL, NUM_EXAMPLES, THETA, UPDATE

__all__ = ["HomomorphicFedAvg"]


class HomomorphicFedAvg(FedAvg):
    """FedAvg with key-less, encrypted aggregation on a hefl Accelerator.

    Parameters
    ----------
    public_key, accel
        The federation's public key (the only key the server has) and the
        backend of the :class:`~hefl.fedavg.aggregator.Aggregator` that
        receives, validates and multiplies the uploads.
    encoder : hefl.encoding.Encoder
        The federation's encoder; its parameters must match every vector.
    model_size : int
        Number of model parameters packed into each vector.
    total_examples : int
        N of ``w_k = n_k / N`` (public; sum of all clients' sample counts).
    num_rounds : int
        Rounds of the run (Flower's evaluate exchange runs after the last).
    reference : bool
        Also aggregate the clients' plaintext models with Flower's FedAvg
        (verification only: it discloses the models to the server).
    out_dir : str or Path, optional
        Where to write each round's encrypted sum and reference model.
    **kwargs
        Passed to :class:`flwr.serverapp.strategy.FedAvg` (sampling).
    """

    def __init__(self, *, public_key, accel, encoder, model_size, total_examples, num_rounds,
                 reference=False, out_dir=None, **kwargs):
        kwargs.setdefault("train_metrics_aggr_fn", _mean_metrics)
        super().__init__(**kwargs)
        self.num_rounds = int(num_rounds)
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
        # Receives and validates uploads, then multiplies them
        # (Paillier.aggregate → Accelerator.product); no private key.
        self.aggregator = Aggregator(
            public_key, accel,
            {"encoding": encoder.params.to_dict(), "length": self.model_size})
        self.accel = accel
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
        """Evaluation after the last round only.

        Clients test the global model they decrypt at the start of each
        train round and report it with their update, so the model of round
        r is evaluated in round r + 1; only the final one needs Flower's
        evaluate exchange (key holders decrypt it and test it).
        """
        if server_round < self.num_rounds:
            return []
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
                self._exclude(excluded, server_round, node,
                              f"reply has no {UPDATE!r} ciphertext record")
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

    def _receive(self, server_round, uploads, counts, excluded):
        """Parse and validate each upload with the public key; node -> CipherVector."""
        good = {}
        for node in sorted(uploads):
            try:
                cv = self.aggregator.receive(node, uploads[node], server_round)
                claimed = cv.meta.get("examples")
                if claimed != counts[node]:
                    # w_k inside the ciphertext must use the n_k the weight sum uses.
                    raise MetadataMismatchError(
                        f"vector was weighted for {claimed!r} examples, the reply "
                        f"reports {counts[node]}")
            except (CiphertextError, SerializationError) as e:
                self._exclude(excluded, server_round, node, f"{type(e).__name__}: {e}")
                continue
            good[node] = cv
        return good

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
        good = self._receive(server_round, uploads, counts, excluded)
        included = sorted(good)
        # The homomorphic sum: one `product` job per slot on the Accelerator.
        cycles0 = device_cycles([self.accel])
        cipher = self.aggregator.combine([good[k] for k in included]) if included else None
        seconds = time.perf_counter() - t0
        cycles1 = device_cycles([self.accel])
        entry = {
            "round": server_round, "sampled": len(replies), "included": included,
            "excluded": {str(k): v for k, v in sorted(excluded.items())},
            "partition_ids": {str(k): _partition(contents[k]) for k in sorted(contents)},
            "bytes_up": {str(k): len(uploads[k]) for k in sorted(uploads)},
            "aggregate_s": seconds,
            "cycles": None if cycles0 is None else cycles1 - cycles0,
        }
        self.history[server_round] = entry
        if cipher is None:
            log(WARNING, "hefl: round %d: no valid upload; the global model stays as it was",
                server_round)
            return None, None
        weight_sum = sum(counts[k] for k in included) / self.total_examples
        data = cipher.to_bytes()
        self.global_record = ConfigRecord({
            "ciphertext": data, "summands": len(included), "weight-sum": weight_sum,
            "round": server_round, "fingerprint": self.public_key.fingerprint,
        })
        entry.update(summands=len(included), weight_sum=weight_sum,
                     aggregate_bytes=len(data), ciphertexts=len(cipher))
        log(INFO, "hefl: round %d: aggregated %d encrypted updates (%d ciphertexts) in %.3f s; "
                  "%d excluded", server_round, len(included), len(cipher), seconds, len(excluded))
        accepted = [contents[k] for k in included]
        arrays = None
        if self.reference:
            validate_message_reply_consistency(accepted, NUM_EXAMPLES, check_arrayrecord=True)
            # Flower's own FedAvg over exactly the replies the encrypted sum holds.
            arrays = aggregate_arrayrecords(accepted, NUM_EXAMPLES)
        metrics = self.train_metrics_aggr_fn(accepted, NUM_EXAMPLES)
        # The trainers tested the global model of the previous round.
        self._record_evaluation(server_round - 1, metrics)
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
            self._record_evaluation(server_round, metrics)
        return metrics

    def _record_evaluation(self, server_round, metrics):
        ev = {}
        for k, v in metrics.items():
            if k.startswith("global-"):
                ev[k[len("global-"):]] = float(v)
            elif k in ("plaintext-accuracy", "plaintext-loss", "max-abs-diff"):
                ev[k] = float(v)
        if ev:
            self.history.setdefault(server_round, {"round": server_round})["evaluate"] = ev

    # --- initial state --------------------------------------------------------

    @staticmethod
    def initial_arrays(theta):
        """The ArrayRecord of an initial model (public, sent in the clear)."""
        return ArrayRecord({THETA: Array(np.asarray(theta, dtype=np.float64))})


def _mean_metrics(records, weighting_key):
    """Flower's weighted metric mean, without the (categorical) partition id."""
    metrics = aggregate_metricrecords(records, weighting_key)
    metrics.pop("partition-id", None)
    return metrics


def _partition(content):
    """The partition id a reply reports (display only; -1 when absent)."""
    metrics = next(iter(content.metric_records.values()), {})
    return int(metrics.get("partition-id", -1))

