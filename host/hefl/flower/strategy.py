"""Server side: Flower's FedAvg with key-less, homomorphic aggregation.

:class:`HomomorphicFedAvg` subclasses Flower's message-API
:class:`flwr.serverapp.strategy.FedAvg` and keeps its sampling, round loop,
timeouts and instructions. What changes is what the server can see and
do: it holds the federation's **public key only**, and

* every train reply must carry its model as an encrypted ArrayRecord
  (:mod:`hefl.flower.protocol`). Each reply is checked on its own, with the
  public key: a Flower error reply; the MetricRecord (exactly one;
  ``num-examples`` a positive integer within ``2**guard_bits``; every other
  metric a finite number, no lists); the arrays (one encrypted record of one
  vector, no plaintext array); the vector bytes (size, format, checksum,
  key fingerprint, ``0 < c < n²``, ``gcd(c, n) = 1``); its metadata (exactly
  the update keys, this run's encoding and array layout, this round, the
  node that sent it, the sample count the reply reports); its length. A
  reply that fails any check is **excluded with its reason logged**, and
  the round goes on with the others;
* the accepted vectors are multiplied slot by slot on a hefl Accelerator
  (``Paillier.aggregate`` → ``product`` jobs; any backend), in groups whose
  ``Σ n_k`` stays within the packing's ``2**guard_bits`` summands. The
  encrypted global (the documented record, with metadata the strategy
  writes itself) is what ``aggregate_train`` returns: Flower sends it to the
  clients as next round's ``arrays`` and keeps it as ``Result.arrays``. Key
  holders decrypt it (:func:`hefl.flower.records.decrypt_arrays`,
  :func:`~hefl.flower.records.save_decrypted`); the server cannot.

``Result.arrays`` is therefore never a plaintext model: it is the last
encrypted global, and :meth:`HomomorphicFedAvg.start` raises
:class:`~hefl.errors.FlowerRunError` when no round produced one.
Server-side evaluation (``evaluate_fn``) needs a plaintext model and is
refused.

With ``send_plaintext_reference=True`` (``hefl-send-plaintext-reference``),
the clients also send their clipped model in the clear and the strategy
runs Flower's own ``aggregate_arrayrecords`` over exactly the accepted
replies, writing it beside the encrypted global: verification only, it
discloses every client model to the server.

Each round's outcome (accepted and excluded nodes with reasons, sample
counts, bytes, groups, timings, and a description of every record each
reply carried) is kept in :attr:`HomomorphicFedAvg.history`; with
``out_dir`` set it is written to ``server.json`` after every exchange,
with the initial model (``initial.npz``, public) and each round's
encrypted global (``round-<r>.hefl.npz``).
"""

import json
import math
import time
from logging import INFO, WARNING
from pathlib import Path
from types import SimpleNamespace

from flwr.app import ArrayRecord, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from hefl.accel import Accelerator, device_cycles, get_accelerator
from hefl.cli_options import backend_options
from hefl.errors import (
    FlowerConfigError,
    FlowerRunError,
    HeflError,
    MetadataMismatchError,
    VectorLengthError,
)
from hefl.flower.keys import server_public_key
from hefl.flower.protocol import (
    FORMAT,
    NUM_EXAMPLES,
    REFERENCE_KEY,
    UPDATE_META,
    EncodingSettings,
    cipher_key,
    setting,
)
from hefl.flower.records import (
    ArrayLayout,
    cipher_array,
    is_encrypted,
    max_vector_bytes,
    read_vector,
    save_arrays,
    save_encrypted,
)
from hefl.paillier import Paillier
from hefl.reports import report_meta, write_json_atomic

__all__ = ["HomomorphicFedAvg", "scalar_metric_mean", "check_metrics", "describe_content"]

# Metadata slack over the expected layout and encoding (digits of ids and counts).
_META_SLACK = 1024


class _Refused(Exception):
    """A reply the strategy will not use (the message is the logged reason)."""


def _canon(value):
    # Equality that tells 1 from True and 1 from 1.0, and never equals NaN.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_metrics(content, weighting_key=NUM_EXAMPLES, max_examples=None):
    """The sample count of a reply, after checking its MetricRecord.

    Parameters
    ----------
    content : flwr.app.RecordDict
    weighting_key : str
        Key of the sample count (Flower's ``num-examples``).
    max_examples : int, optional
        Largest acceptable count.

    Returns
    -------
    int

    Raises
    ------
    _Refused
        Not exactly one MetricRecord; a missing, non-integer or out-of-range
        count; or another metric that is not a finite number (lists included:
        hefl aggregates scalar metrics only).
    """
    records = list(content.metric_records.values())
    if len(records) != 1:
        raise _Refused(f"reply has {len(records)} MetricRecords; exactly one is aggregated")
    metrics = records[0]
    n = metrics.get(weighting_key)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise _Refused(f"{weighting_key} must be a positive integer, not {_short(n)}")
    if max_examples is not None and n > max_examples:
        raise _Refused(f"{weighting_key} is {n}; one vector carries at most {max_examples} "
                       f"(2**guard-bits)")
    for key, value in metrics.items():
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            raise _Refused(f"metric {key!r} is {_short(value)}: only finite scalar metrics "
                           f"are aggregated")
    return n


def scalar_metric_mean(records, weighting_key):
    """Weighted mean of each scalar metric over the replies that report it.

    Like Flower's ``aggregate_metricrecords``, but a key missing from some
    replies is averaged over the others instead of failing the round; the
    replies were screened by :func:`check_metrics` first.
    """
    sums, weights = {}, {}
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        w = metrics[weighting_key]
        for key, value in metrics.items():
            if key != weighting_key:
                sums[key] = sums.get(key, 0.0) + w * value
                weights[key] = weights.get(key, 0) + w
    return MetricRecord({k: sums[k] / weights[k] for k in sums})


def describe_content(msg):
    """What a reply carried, record by record (names and types, never values)."""
    if msg.has_error():
        return [{"type": "Error", "code": int(msg.error.code)}]
    out = []
    for key, rec in msg.content.items():
        entry = {"record": key, "type": type(rec).__name__}
        if isinstance(rec, ArrayRecord):
            entry["entries"] = [[k, a.stype, a.dtype] for k, a in rec.items()]
        else:
            entry["keys"] = {k: type(v).__name__ for k, v in rec.items()}
        out.append(entry)
    return out


class HomomorphicFedAvg(FedAvg):
    """FedAvg whose aggregation multiplies ciphertexts with the public key only.

    Parameters
    ----------
    public_key : hefl.paillier.PublicKey
        The federation's public key: the only key the server has.
    accel : Accelerator or str
        The aggregator's backend, or a backend name (``cpu``, ``sim``,
        ``xrt``, ``serial``) to open with ``accel_options``; a backend opened
        here is closed when :meth:`start` returns.
    accel_options : dict, optional
        Keywords of :func:`hefl.accel.get_accelerator` (``xclbin``, ``url``).
    settings : EncodingSettings
        Clipping bound and bit widths every client must use.
    send_plaintext_reference : bool
        Also accept and aggregate the clients' clipped plaintext models
        (verification only; see the module docstring).
    out_dir : str or Path, optional
        Where to write ``server.json``, ``initial.npz`` and the encrypted
        globals.
    **kwargs
        :class:`flwr.serverapp.strategy.FedAvg` options (sampling,
        ``weighted_by_key``, metric aggregation functions).
    """

    def __init__(self, public_key, *, accel="cpu", accel_options=None,
                 settings=EncodingSettings(), send_plaintext_reference=False, out_dir=None,
                 **kwargs):
        kwargs.setdefault("train_metrics_aggr_fn", scalar_metric_mean)
        kwargs.setdefault("evaluate_metrics_aggr_fn", scalar_metric_mean)
        super().__init__(**kwargs)
        self.public_key = public_key
        self.settings = settings
        self.encoder = settings.encoder(public_key)
        if isinstance(accel, Accelerator):
            self.accel, self._own_accel = accel, False
        else:
            self.accel, self._own_accel = get_accelerator(str(accel), **(accel_options or {})), True
        self.he = Paillier(public_key, None, self.accel)
        self.reference = bool(send_plaintext_reference)
        self.out_dir = Path(out_dir) if out_dir else None
        self.layout = None
        self.history = {}
        if self.reference:
            log(WARNING, "hefl: send-plaintext-reference is on: clients also send their clipped "
                         "models in the clear (verification only; the server sees every model)")

    @classmethod
    def from_run_config(cls, run_config, **kwargs):
        """A strategy configured from a run config's ``hefl-*`` keys.

        Reads the public key (``hefl-public-key``, or ``public.json`` of
        ``hefl-key-dir``), the encoding, ``hefl-backend`` with
        ``hefl-xclbin`` / ``hefl-device``, ``hefl-send-plaintext-reference``
        and ``hefl-out-dir``; ``kwargs`` go to the constructor (FedAvg's
        sampling options).
        """
        backend = str(setting("hefl-backend", run_config))
        device = SimpleNamespace(xclbin=setting("hefl-xclbin", run_config) or None,
                                 port=setting("hefl-device", run_config) or None)
        kwargs.setdefault("send_plaintext_reference",
                          bool(setting("hefl-send-plaintext-reference", run_config)))
        kwargs.setdefault("out_dir", str(setting("hefl-out-dir", run_config)) or None)
        return cls(server_public_key(run_config), accel=backend,
                   accel_options=backend_options(backend, device),
                   settings=EncodingSettings.from_run_config(run_config), **kwargs)

    # --- the model and the run -------------------------------------------------

    def set_model(self, arrays):
        """Fix the array layout every update must carry (from the public initial model)."""
        self.layout = ArrayLayout.of(arrays)
        self._count = self.encoder.plaintexts_for(self.layout.size)
        expected = {"format": FORMAT, "encoding": self.encoder.params.to_dict(),
                    "layout": self.layout.to_meta()}
        self._max_bytes = max_vector_bytes(self.public_key, self._count,
                                           len(_canon(expected)) + _META_SLACK)

    def summary(self):
        """Flower's FedAvg summary plus the encryption settings."""
        super().summary()
        log(INFO, "\t└──> hefl: %d-bit key %s, %s, aggregation on %s",
            self.public_key.bits, self.public_key.fingerprint, self.encoder, self.accel.name)

    def start(self, grid, initial_arrays, num_rounds=3, timeout=3600, train_config=None,
              evaluate_config=None, evaluate_fn=None):
        """Flower's round loop; returns its Result with the encrypted global as ``arrays``.

        Raises
        ------
        FlowerConfigError
            ``evaluate_fn`` given (the server holds no plaintext model), or
            an encrypted or non-float initial model.
        FlowerRunError
            No round produced an encrypted global (every reply was excluded).
        """
        if evaluate_fn is not None:
            raise FlowerConfigError("server-side evaluation needs a plaintext model; the "
                                    "server holds only the encrypted global (evaluate on the "
                                    "clients, or decrypt with the key)")
        try:
            self.set_model(initial_arrays)
        except HeflError as e:
            raise FlowerConfigError(f"initial arrays: {e}") from None
        if self.out_dir is not None:
            save_arrays(self.out_dir / "initial.npz", initial_arrays)
        t0 = time.perf_counter()
        # Open the device for n² now (a simulated kernel is built or loaded on
        # first use), so round 1's aggregation time is the aggregation's.
        self.accel.mulmod([1], [1], self.public_key.n2)
        log(INFO, "hefl: %s accelerator ready in %.1f s", self.accel.name, time.perf_counter() - t0)
        try:
            result = super().start(grid, initial_arrays, num_rounds=num_rounds, timeout=timeout,
                                   train_config=train_config, evaluate_config=evaluate_config)
        finally:
            if self._own_accel:
                self.accel.close()
        if not is_encrypted(result.arrays):
            raise FlowerRunError("no round produced an encrypted global model (every reply was "
                                 "excluded; see the log for the reasons)")
        return result

    # --- receiving ------------------------------------------------------------------

    def _exclude(self, entry, server_round, node, reason, phase="train"):
        entry.setdefault("excluded", {})[str(node)] = reason
        log(WARNING, "hefl: round %d %s: node %d excluded: %s", server_round, phase, node, reason)

    def _split_arrays(self, content):
        encrypted, reference = [], None
        for key, rec in content.array_records.items():
            if is_encrypted(rec):
                encrypted.append(rec)
            elif key == REFERENCE_KEY and self.reference:
                reference = rec
            else:
                kinds = sorted({a.stype for a in rec.values()})
                raise _Refused(f"reply carries an ArrayRecord {key!r} that is not encrypted "
                               f"(entries of type {', '.join(kinds) or 'none'}); models travel "
                               f"encrypted only")
        if len(encrypted) != 1 or len(encrypted[0]) != 1:
            raise _Refused(f"an update is one encrypted ArrayRecord of one vector, this reply "
                           f"has {[list(r.keys()) for r in encrypted]}")
        if self.reference and (reference is None or ArrayLayout.of(reference) != self.layout):
            raise _Refused(f"send-plaintext-reference is on, and the reply has no valid "
                           f"{REFERENCE_KEY!r} record")
        return next(iter(encrypted[0].values())), reference

    def _check_meta(self, meta, server_round, node, n):
        if set(meta) != UPDATE_META:
            raise MetadataMismatchError(f"metadata keys {sorted(meta)}, an update has "
                                        f"{sorted(UPDATE_META)}")
        expected = {"format": FORMAT, "encoding": self.encoder.params.to_dict(),
                    "layout": self.layout.to_meta(), "length": self.layout.size,
                    "round": server_round, "node": node, "examples": n}
        for key in sorted(UPDATE_META):
            if _canon(meta[key]) != _canon(expected[key]):
                raise MetadataMismatchError(f"metadata {key!r} is {_short(meta[key])}, this "
                                            f"reply needs {_short(expected[key])}")

    def _accept(self, server_round, msg):
        """One train reply as ``(examples, vector, reference, bytes)``; raises if refused."""
        node = int(msg.metadata.src_node_id)
        if msg.has_error():
            raise _Refused(f"client error (code {msg.error.code}): {msg.error.reason}")
        n = check_metrics(msg.content, self.weighted_by_key, self.encoder.max_summands)
        array, reference = self._split_arrays(msg.content)
        cv = read_vector(array, self.public_key, max_bytes=self._max_bytes)
        self._check_meta(cv.meta, server_round, node, n)
        if len(cv) != self._count:
            raise VectorLengthError(f"vector holds {len(cv)} ciphertexts, {self.layout.size} "
                                    f"values pack into {self._count}")
        return n, cv, reference, len(array.data)

    def _groups(self, accepted):
        """Nodes in groups whose Σ n_k fits the packing (≤ 2**guard_bits summands each)."""
        groups, load = [[]], 0
        for node in sorted(accepted):
            n = accepted[node][0]
            if groups[-1] and load + n > self.encoder.max_summands:
                groups.append([])
                load = 0
            groups[-1].append(node)
            load += n
        return groups

    def _global(self, server_round, accepted, groups):
        total = sum(accepted[k][0] for k in accepted)
        entries = {}
        for i, nodes in enumerate(groups):
            cv = self.he.aggregate([accepted[k][1] for k in nodes])
            # Fresh metadata: nothing a client wrote is forwarded.
            cv.meta = {"format": FORMAT, "encoding": self.encoder.params.to_dict(),
                       "layout": self.layout.to_meta(), "length": self.layout.size,
                       "round": server_round, "group": i, "groups": len(groups),
                       "examples": sum(accepted[k][0] for k in nodes), "clients": len(nodes),
                       "total-examples": total}
            entries[cipher_key(i)] = cipher_array(cv)
        return ArrayRecord(entries)

    def aggregate_train(self, server_round, replies):
        """Validate every reply on its own, then multiply the accepted ciphertexts.

        Returns
        -------
        (ArrayRecord or None, MetricRecord or None)
            The encrypted global of this round (None when no reply was
            accepted: Flower then keeps the previous one) and the weighted
            mean of the accepted replies' scalar metrics.
        """
        if self.layout is None:
            raise FlowerConfigError("call set_model(initial_arrays) (or start()) first")
        replies = list(replies)
        t0 = time.perf_counter()
        entry = self.history.setdefault(server_round, {"round": server_round})
        entry.update(sampled=len(replies), excluded={}, received={})
        accepted = {}
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            entry["received"][str(node)] = describe_content(msg)
            try:
                accepted[node] = self._accept(server_round, msg)
            except (_Refused, HeflError) as e:
                reason = str(e) if isinstance(e, _Refused) else f"{type(e).__name__}: {e}"
                self._exclude(entry, server_round, node, reason)
        entry.update(included=sorted(accepted),
                     examples={str(k): v[0] for k, v in sorted(accepted.items())},
                     bytes_up={str(k): v[3] for k, v in sorted(accepted.items())})
        if not accepted:
            log(WARNING, "hefl: round %d: no valid update; the global model stays as it was",
                server_round)
            self._write_history()
            return None, None
        groups = self._groups(accepted)
        cycles0 = device_cycles([self.accel])
        record = self._global(server_round, accepted, groups)
        cycles1 = device_cycles([self.accel])
        seconds = time.perf_counter() - t0
        entry.update(groups=groups, total_examples=sum(v[0] for v in accepted.values()),
                     ciphertexts=self._count, aggregate_s=seconds,
                     global_bytes=sum(len(a.data) for a in record.values()),
                     cycles=None if cycles0 is None else cycles1 - cycles0)
        log(INFO, "hefl: round %d: multiplied %d encrypted updates (%d ciphertexts each, %d "
                  "group(s)) in %.3f s; %d excluded", server_round, len(accepted), self._count,
            len(groups), seconds, len(entry["excluded"]))
        by_node = {int(m.metadata.src_node_id): m for m in replies}
        contents = {k: by_node[k].content for k in sorted(accepted)}
        metrics = self.train_metrics_aggr_fn(list(contents.values()), self.weighted_by_key)
        if self.out_dir is not None:
            save_encrypted(self.out_dir / f"round-{server_round}.hefl.npz", record)
            if self.reference:
                self._save_reference(server_round, accepted, contents)
        self._write_history()
        return record, metrics

    def _save_reference(self, server_round, accepted, contents):
        # Flower's own FedAvg over exactly the replies in the encrypted sum.
        records = [RecordDict({"arrays": accepted[k][2],
                               "metrics": next(iter(c.metric_records.values()))})
                   for k, c in contents.items()]
        save_arrays(self.out_dir / f"round-{server_round}-plaintext-reference.npz",
                    aggregate_arrayrecords(records, self.weighted_by_key))

    def aggregate_evaluate(self, server_round, replies):
        """Weighted mean of the accepted evaluate replies' scalar metrics.

        A reply with a Flower error, arrays, or metrics :func:`check_metrics`
        refuses is excluded with its reason; the others are aggregated.
        """
        replies = list(replies)
        entry = self.history.setdefault(server_round, {"round": server_round})
        ev = entry.setdefault("evaluate", {"excluded": {}, "received": {}})
        good = []
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            ev["received"][str(node)] = describe_content(msg)
            try:
                if msg.has_error():
                    raise _Refused(f"client error (code {msg.error.code}): {msg.error.reason}")
                if msg.content.array_records:
                    raise _Refused("an evaluate reply may not carry arrays")
                check_metrics(msg.content, self.weighted_by_key)
            except _Refused as e:
                self._exclude(ev, server_round, node, str(e), phase="evaluate")
                continue
            good.append(msg.content)
        metrics = self.evaluate_metrics_aggr_fn(good, self.weighted_by_key) if good else None
        ev["metrics"] = dict(metrics) if metrics is not None else None
        ev["nodes"] = len(good)
        self._write_history()
        return metrics

    def _write_history(self):
        if self.out_dir is None:
            return
        write_json_atomic(self.out_dir / "server.json", {
            **report_meta("flower-server", 1),
            "key_bits": self.public_key.bits, "key_fingerprint": self.public_key.fingerprint,
            "backend": self.accel.name, "encoding": self.encoder.params.to_dict(),
            "send_plaintext_reference": self.reference,
            "layout": self.layout.to_meta() if self.layout else None,
            "model_parameters": self.layout.size if self.layout else None,
            "rounds": [self.history[r] for r in sorted(self.history)],
        })
