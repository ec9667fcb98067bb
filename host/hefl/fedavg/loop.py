"""The FedAvg round loop with homomorphic aggregation, and its plaintext twin.

One round, for the encrypted (HE) run:

1. every client trains ``local_epochs`` epochs from the HE global model and
   produces ``w_k·(θ_local − θ)`` clipped to ``[-alpha, alpha]``
   (``w_k = n_k / N``, :mod:`hefl.fedavg.client`); a client whose update is
   not finite is skipped;
2. each encodes, packs and encrypts its update and uploads the bytes;
3. each client drops out with probability ``drop_rate`` (seeded per round)
   mid-round: after it has encrypted, its upload never arrives. Its weight
   was already folded into its own update only, so the others' ciphertexts
   stay valid and nobody has to redo anything;
4. the aggregator, holding only the public key, validates every upload,
   excludes the bad ones and multiplies the rest (``product`` jobs);
5. the key holder decrypts, unpacks and divides by ``Σ w_k`` over the
   contributing clients: the FedAvg mean; the HE global model moves by it.

The plaintext reference keeps its own global model and, in the same round,
lets exactly the clients that contributed to the HE sum train from it with
the same batch order (same seeds), then averages their float updates with
the same weights, unclipped and unquantised. Both runs start from the same
initial model.

The report (:func:`run_fedavg`'s result, ``report.json``) is complete after
every round: ``on_report`` receives it each time with ``status`` "running"
and the totals so far, so that a run stopped at any point keeps what it
finished (``hefl demo`` writes it atomically each time). It starts with
:func:`hefl.reports.report_meta` (``hefl_version``, ``schema``,
``created``) and uses the field names shared with the Flower report
(:data:`hefl.reports.FIELD_NAMES`).

Per round the loop also checks the decrypted mean against the float mean of
the *same* clipped updates: it must equal the mean of their quantised
values (``Encoder.quantise``) up to float rounding, and lie within the
encoder's quantisation bound of the exact float mean. A violation raises
:class:`AggregationMismatchError`: it would mean the encrypted pipeline is
wrong, not merely imprecise.
"""

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from hefl import paillier
from hefl.accel import device_cycles
from hefl.encoding import Encoder
from hefl.errors import (
    AggregationMismatchError,
    DatasetError,
    EncodingError,
    NonFiniteUpdateError,
    PackingOverflowError,
)
from hefl.fedavg.aggregator import Aggregator
from hefl.fedavg.client import Client, garble
from hefl.fedavg.data import load_federated
from hefl.fedavg.keyholder import KeyHolder
from hefl.fedavg.model import make_model
from hefl.reports import report_meta

# AggregationMismatchError is defined in hefl.errors with every other error; re-exported here.
__all__ = ["FedAvgConfig", "run_fedavg", "AggregationMismatchError", "DEFAULT_KEY_BITS", "REPORT_SCHEMA"]

log = logging.getLogger("hefl.fedavg")

#: Default Paillier key size of the demo. Chosen so that ``make demo`` (sim
#: backend, defaults below) finishes within ~3 minutes on 2 cores; change it
#: here, or pass ``--key-bits 2048``.
DEFAULT_KEY_BITS = 1024

#: Version of the report's layout (``schema`` "hefl-demo/2"): 2 added the
#: header, ``status`` and the shared field names (``bound``, was ``error_bound``).
REPORT_SCHEMA = 2


@dataclass
class FedAvgConfig:
    """Every knob of a run; stored in the report.

    Attributes mirror the ``hefl demo`` options. ``backend`` is the
    aggregator's accelerator; ``client_backend`` and ``keyholder_backend``
    name the clients' and the key holder's (None: the same as ``backend``).
    ``garble_clients`` and
    ``nan_clients`` are fault-injection hooks: those clients upload a
    corrupted ciphertext vector (``garble_mode``) or compute a NaN update in
    every round. ``overflow_clients`` encrypt a plaintext that no honest
    encoding can produce (every slot at its maximum): the decoder must
    detect the overflow.
    """

    backend: str = "sim"
    client_backend: str = None
    keyholder_backend: str = None
    key_bits: int = DEFAULT_KEY_BITS
    clients: int = 8
    rounds: int = 10
    dataset: str = "digits"
    model: str = "softmax"
    local_epochs: int = 2
    lr: float = 0.1
    batch_size: int = 32
    seed: int = 0
    drop_rate: float = 0.0
    beta: float = 0.5
    alpha: float = 1.0
    value_bits: int = 16
    guard_bits: int = 4
    garble_clients: tuple = ()
    garble_mode: str = "truncate"
    nan_clients: tuple = ()
    overflow_clients: tuple = ()

    def check(self):
        """Raise :class:`~hefl.errors.HeflError` subclasses for impossible settings."""
        if self.rounds < 1:
            raise DatasetError(f"rounds must be at least 1, not {self.rounds}")
        if self.local_epochs < 1:
            raise DatasetError(f"local epochs must be at least 1, not {self.local_epochs}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise DatasetError(f"drop rate must lie in [0, 1), not {self.drop_rate}")
        if not self.lr > 0:
            raise DatasetError(f"learning rate must be positive, not {self.lr}")
        for what, ids in (("garble", self.garble_clients), ("nan", self.nan_clients),
                          ("overflow", self.overflow_clients)):
            for k in ids:
                if not 0 <= k < self.clients:
                    raise DatasetError(f"--{what}-client {k} is not a client index (0..{self.clients - 1})")
        if self.clients > (1 << self.guard_bits):
            raise PackingOverflowError(
                f"{self.clients} clients need more than {self.guard_bits} guard bits: a sum of "
                f"{self.clients} encodings could overflow its slots; pass --guard-bits "
                f"{max(1, (self.clients - 1).bit_length())} or fewer clients")
        if self.value_bits + self.guard_bits > 63:
            raise EncodingError("value bits + guard bits must be at most 63")


def _table_header():
    return (f"{'round':>5} {'HE acc':>7} {'plain':>7} {'loss':>7} {'train s':>8} {'enc s':>7} "
            f"{'agg s':>7} {'dec s':>7} {'bytes/client':>12} {'cycles':>12}  notes")


def _table_row(r):
    s = r["seconds"]
    cyc = "-" if r["cycles"] is None else f"{r['cycles']:,}"
    notes = []
    if r["dropped"]:
        notes.append(f"dropped {r['dropped']}")
    if r["skipped"]:
        notes.append(f"skipped {sorted(r['skipped'])}")
    if r["excluded"]:
        notes.append(f"excluded {sorted(r['excluded'])}")
    return (f"{r['round']:>5} {r['accuracy']:>7.4f} {r['plaintext_accuracy']:>7.4f} {r['loss']:>7.4f} "
            f"{s['train']:>8.3f} {s['encrypt']:>7.3f} {s['aggregate']:>7.3f} {s['decrypt']:>7.3f} "
            f"{r['bytes_up']:>12,} {cyc:>12}  {'; '.join(notes)}")


def _delta(c0, c1):
    return None if c0 is None or c1 is None else c1 - c0


def _overflow_upload(client, encoder, he, meta, length):
    """An in-range ciphertext vector whose plaintexts no honest encoding makes."""
    top = (1 << (encoder.slots * encoder.params.slot_bits)) - 1
    cv = he.encrypt([top] * encoder.plaintexts_for(length), meta=dict(meta, client=client.cid))
    return cv.to_bytes()


@dataclass
class _Run:
    """The parties, data and models of one run (:func:`_setup` makes it)."""

    cfg: FedAvgConfig
    data: object
    weights: list
    clients: list
    encoder: Encoder
    he_model: object
    pt_model: object
    expected_meta: dict
    accels: tuple
    client_he: paillier.Paillier
    aggregator: Aggregator
    keyholder: KeyHolder
    train_union: tuple       # (x, y) of all clients, for the global training loss

    @property
    def size(self):
        """Model parameters per update."""
        return self.he_model.size


def _setup(cfg, pub, priv, accel, client_accel, keyholder_accel):
    """Data, clients, encoder, both models and the three parties of a run."""
    data = load_federated(cfg.dataset, cfg.clients, seed=cfg.seed, beta=cfg.beta)
    total = sum(data.counts)
    weights = [n / total for n in data.counts]
    clients = [Client(k, c, weights[k], model=cfg.model, n_features=data.n_features,
                      n_classes=data.n_classes, epochs=cfg.local_epochs, lr=cfg.lr,
                      batch_size=cfg.batch_size, alpha=cfg.alpha)
               for k, c in enumerate(data.clients)]
    encoder = Encoder(plaintext_bits=pub.n.bit_length() - 1, alpha=cfg.alpha,
                      value_bits=cfg.value_bits, guard_bits=cfg.guard_bits)
    he_model = make_model(cfg.model, data.n_features, data.n_classes, seed=cfg.seed)
    pt_model = make_model(cfg.model, data.n_features, data.n_classes, seed=cfg.seed)
    expected_meta = {"encoding": encoder.params.to_dict(), "length": he_model.size}
    client_accel = accel if client_accel is None else client_accel
    keyholder_accel = accel if keyholder_accel is None else keyholder_accel
    return _Run(
        cfg=cfg, data=data, weights=weights, clients=clients, encoder=encoder,
        he_model=he_model, pt_model=pt_model, expected_meta=expected_meta,
        accels=(client_accel, accel, keyholder_accel),
        # Clients share the key pair (BatchCrypt's model), so they encrypt by CRT.
        client_he=paillier.Paillier(pub, priv, client_accel),
        aggregator=Aggregator(pub, accel, expected_meta, encoder.plaintexts_for(he_model.size)),
        keyholder=KeyHolder(pub, priv, keyholder_accel, encoder),
        train_union=data.train_union())


def _start_report(run):
    cfg, data, encoder, size = run.cfg, run.data, run.encoder, run.size
    return {
        **report_meta("demo", REPORT_SCHEMA), "status": "running", "rounds_completed": 0,
        "backend": cfg.backend, "key_bits": cfg.key_bits, "config": asdict(cfg),
        "backends": {"clients": cfg.client_backend or cfg.backend, "aggregator": cfg.backend,
                     "keyholder": cfg.keyholder_backend or cfg.backend},
        "dataset": data.info, "model_parameters": size,
        "encoding": dict(encoder.params.to_dict(), ciphertexts_per_client=encoder.plaintexts_for(size)),
        "initial_accuracy": run.he_model.accuracy(data.x_test, data.y_test), "rounds": [],
    }


def _train_clients(run, theta, rnd):
    """Every client's local training from ``theta``; (results, skipped client -> reason)."""
    cfg = run.cfg
    results, skipped = {}, {}
    for k in range(cfg.clients):
        try:
            results[k] = run.clients[k].train(theta, np.random.default_rng([cfg.seed, rnd, k]),
                                              poison_nan=k in cfg.nan_clients)
        except NonFiniteUpdateError as e:
            skipped[k] = str(e)
            log.warning("round %d: %s; client skipped", rnd, e)
    return results, skipped


def _encrypt_uploads(run, results, rnd):
    """Encode, pack, encrypt and serialise each update (fault injection included)."""
    cfg, pub = run.cfg, run.client_he.public_key
    uploads = {}
    meta = dict(run.expected_meta, round=rnd)
    for k, res in results.items():
        if k in cfg.overflow_clients:
            uploads[k] = _overflow_upload(run.clients[k], run.encoder, run.client_he, meta, run.size)
        else:
            uploads[k] = run.clients[k].encrypt(res.update, run.client_he, run.encoder, meta)
        if k in cfg.garble_clients:
            uploads[k] = garble(uploads[k], cfg.garble_mode, pub)
    return uploads


def _check_mean(run, mean, results, included, wsum, rnd):
    """Compare the decrypted mean with the float mean of the same updates; (max error, bound).

    Raises
    ------
    AggregationMismatchError
        Outside the quantisation bound, or not the mean of the quantised values.
    """
    encoder = run.encoder
    exact = sum(results[k].update for k in included) / wsum
    # Integer sum of what each client's encoding holds: the decrypted
    # mean must reproduce it to the last float rounding.
    quantised = sum(encoder.quantise(results[k].update) for k in included) / encoder.scale / wsum
    max_err = float(np.max(np.abs(mean - exact)))
    bound = run.keyholder.error_bound(len(included), wsum)
    q_err = float(np.max(np.abs(mean - quantised)))
    if max_err > bound or q_err > 1e-12 * run.cfg.alpha / wsum:
        raise AggregationMismatchError(
            f"round {rnd}: decrypted mean differs from the plaintext mean of the same "
            f"updates by {max_err:.3g} (bound {bound:.3g}) and from their quantised mean "
            f"by {q_err:.3g}")
    return max_err, bound


def _plaintext_step(run, included, rnd):
    """The plaintext reference: same contributors, same seeds, float FedAvg."""
    cfg, weights = run.cfg, run.weights
    theta_pt = run.pt_model.get_params()
    # Plain FedAvg: the unclipped weighted updates, no quantisation.
    upd = [run.clients[k].train(theta_pt, np.random.default_rng([cfg.seed, rnd, k])).raw
           for k in included]
    run.pt_model.set_params(theta_pt + sum(upd) / sum(weights[k] for k in included))


def _round(run, rnd):
    """One round of both runs; the report row and the HE model it started from."""
    cfg, accels, he_model = run.cfg, run.accels, run.he_model
    drop_rng = np.random.default_rng([cfg.seed, rnd, 0xD209])
    draws = drop_rng.random(cfg.clients)
    dropped = [k for k in range(cfg.clients) if draws[k] < cfg.drop_rate]
    cyc0 = device_cycles(accels)
    theta = he_model.get_params()

    t0 = time.perf_counter()
    results, skipped = _train_clients(run, theta, rnd)
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    uploads = _encrypt_uploads(run, results, rnd)
    t_enc = time.perf_counter() - t0
    cyc_enc = device_cycles(accels)
    bytes_up = max((len(b) for b in uploads.values()), default=0)
    # Drop-outs lose their upload on the way: the aggregator never sees it.
    uploads = {k: b for k, b in uploads.items() if k not in dropped}

    # Aggregation without the key.
    t0 = time.perf_counter()
    agg = run.aggregator.aggregate(uploads, rnd)
    t_agg = time.perf_counter() - t0
    cyc_agg = device_cycles(accels)

    # Decryption and the weighted mean; then the plaintext reference.
    t0 = time.perf_counter()
    included = agg.included
    max_err = bound = None
    if included:
        wsum = sum(run.weights[k] for k in included)
        mean = run.keyholder.mean_update(agg.cipher, run.size, len(included), wsum)
        t_dec = time.perf_counter() - t0
        max_err, bound = _check_mean(run, mean, results, included, wsum, rnd)
        he_model.set_params(theta + mean)
        _plaintext_step(run, included, rnd)
    else:
        t_dec = time.perf_counter() - t0
        log.warning("round %d: no client contributed; the global model is unchanged", rnd)
    cyc1 = device_cycles(accels)

    data, pt_model = run.data, run.pt_model
    x_train, y_train = run.train_union
    row = {
        "round": rnd,
        "accuracy": he_model.accuracy(data.x_test, data.y_test),
        "plaintext_accuracy": pt_model.accuracy(data.x_test, data.y_test),
        "loss": he_model.loss(x_train, y_train),
        "plaintext_loss": pt_model.loss(x_train, y_train),
        "seconds": {"train": t_train, "encrypt": t_enc, "aggregate": t_agg, "decrypt": t_dec},
        "bytes_up": bytes_up,
        "cycles": _delta(cyc0, cyc1),
        "cycles_by_phase": {"encrypt": _delta(cyc0, cyc_enc), "aggregate": _delta(cyc_enc, cyc_agg),
                            "decrypt": _delta(cyc_agg, cyc1)},
        "dropped": dropped,
        "skipped": skipped,
        "excluded": agg.excluded,
        "included": included,
        "clipped_values": int(sum(results[k].clipped for k in included)),
        "max_abs_error": max_err,
        "bound": bound,
        "model_gap": float(np.max(np.abs(he_model.get_params() - pt_model.get_params()))),
    }
    return row, theta


def _finish_report(report):
    """Totals over the rounds so far (again after every round)."""
    rounds = report["rounds"]
    last = rounds[-1]
    report["rounds_completed"] = len(rounds)
    report["final_accuracy"] = last["accuracy"]
    report["plaintext_final_accuracy"] = last["plaintext_accuracy"]
    report["accuracy_gap"] = abs(last["accuracy"] - last["plaintext_accuracy"])
    report["seconds"] = {p: sum(r["seconds"][p] for r in report["rounds"])
                         for p in ("train", "encrypt", "aggregate", "decrypt")}
    cyc = [r["cycles"] for r in report["rounds"]]
    report["cycles"] = None if any(c is None for c in cyc) else sum(cyc)
    report["within_bound"] = all(r["max_abs_error"] <= r["bound"] for r in rounds
                                 if r["max_abs_error"] is not None)
    return report


def run_fedavg(cfg, *, accel, keypair, client_accel=None, keyholder_accel=None, write=None,
               progress=True, on_round=None, on_report=None):
    """Run ``cfg.rounds`` rounds of FedAvg, encrypted and plaintext side by side.

    Parameters
    ----------
    cfg : FedAvgConfig
        The run's settings (checked first).
    accel : hefl.accel.Accelerator
        The aggregator's backend (ciphertext products).
    client_accel, keyholder_accel : hefl.accel.Accelerator, optional
        The clients' backend (encryption) and the key holder's (decryption);
        default ``accel``.
    keypair : tuple
        ``(PublicKey, PrivateKey)`` of the federation.
    write : callable, optional
        Receives each table line (default: ``tqdm.write`` when ``progress``
        is on, else nothing). Skipped and excluded clients are reported on
        the ``hefl.fedavg`` logger at WARNING level.
    progress : bool
        Show a progress bar over rounds.
    on_round : callable, optional
        Test hook, called after each round with a dict: ``round``,
        ``theta_before`` and ``theta_after`` (HE global model), ``included``,
        ``weights`` (``n_k / N`` of every client), ``encoder``, ``data``.
    on_report : callable, optional
        Called after each round with the report so far (``status``
        "running", totals over the rounds done): write it, and an
        interrupted run keeps them.

    Returns
    -------
    dict
        The report, ``status`` "complete" (see :func:`hefl.fedavg.report.write_report`).

    Raises
    ------
    PackingOverflowError
        A decrypted sum overflowed its slots.
    AggregationMismatchError
        The decrypted mean left the quantisation bound (a bug, never noise).
    """
    from tqdm import tqdm

    cfg.check()
    if write is None:
        write = tqdm.write if progress else (lambda s: None)
    pub, priv = keypair
    run = _setup(cfg, pub, priv, accel, client_accel, keyholder_accel)
    data, size, encoder = run.data, run.size, run.encoder
    report = _start_report(run)
    write(f"{cfg.dataset}: {len(run.train_union[1])} training samples over {cfg.clients} clients "
          f"{data.counts}, {len(data.y_test)} test samples; {cfg.model} model, {size} parameters "
          f"-> {encoder.plaintexts_for(size)} ciphertexts/client ({encoder.slots} values each)")
    write(_table_header())

    # disable=None: the bar shows on a terminal and stays out of logs and pipes.
    bar = tqdm(range(1, cfg.rounds + 1), desc="FedAvg rounds", unit="round",
               disable=None if progress else True,
               leave=False)
    for rnd in bar:
        row, theta = _round(run, rnd)
        report["rounds"].append(row)
        _finish_report(report)
        write(_table_row(row))
        if on_report is not None:
            on_report(report)
        if on_round is not None:
            on_round({"round": rnd, "theta_before": theta, "theta_after": run.he_model.get_params(),
                      "included": row["included"], "weights": run.weights, "encoder": encoder,
                      "data": data})
    bar.close()
    report["status"] = "complete"
    return report
