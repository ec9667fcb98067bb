"""The hefl ServerApp: runs :class:`HomomorphicFedAvg` on Flower's Grid.

Run config keys (defaults in :data:`hefl.flower.protocol.RUN_DEFAULTS` and
``host/hefl/flower/app/pyproject.toml``): ``public-key`` (path of the public key;
the server reads nothing else of the key), ``num-server-rounds``,
``num-clients`` (Flower waits for that many SuperNodes and samples all of
them for training), ``evaluate-nodes`` (how many key holders evaluate the
final model), ``backend`` (hefl Accelerator for the ciphertext products,
the card a server would hold), ``client-backend`` (the clients'
accelerator), the dataset, model and encoding settings forwarded to the
clients, and
``out-dir``: where ``server.json`` (per-round history) and the per-round
encrypted sums are written.
"""

import json
import time
from logging import INFO
from pathlib import Path

from flwr.app import ConfigRecord, Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from hefl.accel import get_accelerator
from hefl.encoding import Encoder
from hefl.errors import FlowerConfigError
from hefl.fedavg.data import load_federated
from hefl.fedavg.model import make_model
from hefl.flower.keys import run_public_key
from hefl.flower.protocol import RUN_DEFAULTS, TRAIN_KEYS
from hefl.flower.strategy import HomomorphicFedAvg

__all__ = ["app", "run_settings", "model_shape"]

app = ServerApp()


def run_settings(run_config):
    """Run config merged over :data:`RUN_DEFAULTS`, unknown keys rejected."""
    unknown = sorted(set(run_config) - set(RUN_DEFAULTS))
    if unknown:
        raise FlowerConfigError(f"unknown run config key(s): {', '.join(unknown)}")
    return {**RUN_DEFAULTS, **dict(run_config)}


def model_shape(settings):
    """``(n_features, n_classes)`` of the run's dataset (public metadata)."""
    data = load_federated(str(settings["dataset"]), int(settings["num-clients"]),
                          seed=int(settings["data-seed"]), beta=float(settings["beta"]))
    return data.n_features, data.n_classes


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-server-rounds`` rounds of encrypted FedAvg and write ``server.json``."""
    s = run_settings(context.run_config)
    pub = run_public_key(s)
    n_features, n_classes = model_shape(s)
    model = make_model(str(s["model"]), n_features, n_classes)
    encoder = Encoder(plaintext_bits=pub.n.bit_length() - 1, alpha=float(s["alpha"]),
                      value_bits=int(s["value-bits"]), guard_bits=int(s["guard-bits"]))
    clients = int(s["num-clients"])
    if clients > encoder.max_summands:
        raise FlowerConfigError(f"{clients} clients need more than {s['guard-bits']} guard bits")
    evaluators = int(s["evaluate-nodes"])
    if not 1 <= evaluators <= clients:
        raise FlowerConfigError(f"evaluate-nodes must lie in 1..{clients}, not {evaluators}")
    out_dir = Path(str(s["out-dir"])) if s["out-dir"] else None
    accel = get_accelerator(str(s["backend"]))
    # Open the device for n² now (a simulated kernel is built or loaded on
    # first use), so round 1's aggregation time is the aggregation's.
    t0 = time.perf_counter()
    accel.mulmod([1], [1], pub.n2)
    log(INFO, "hefl: %s accelerator ready for n² in %.1f s", s["backend"],
        time.perf_counter() - t0)
    strategy = HomomorphicFedAvg(
        public_key=pub, accel=accel, encoder=encoder, model_size=model.size,
        total_examples=int(s["total-examples"]), num_rounds=int(s["num-server-rounds"]),
        reference=bool(s["reference"]),
        out_dir=out_dir, min_train_nodes=clients, min_available_nodes=clients,
        # Every key holder decrypts the same model: evaluating it on a few
        # nodes (the test set is shared) saves a process start per node.
        min_evaluate_nodes=evaluators, fraction_evaluate=min(1.0, (evaluators + 0.5) / clients))
    config = ConfigRecord({k: s[k] for k in TRAIN_KEYS})
    t0 = time.perf_counter()
    try:
        strategy.start(grid=grid, initial_arrays=strategy.initial_arrays(model.get_params()),
                       num_rounds=int(s["num-server-rounds"]), timeout=float(s["round-timeout"]),
                       train_config=config, evaluate_config=ConfigRecord(dict(config)))
    finally:
        accel.close()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = {
            "settings": {k: v for k, v in s.items()}, "key_fingerprint": pub.fingerprint,
            "key_bits": pub.n.bit_length(), "model_size": model.size,
            "encoding": encoder.params.to_dict(), "seconds": time.perf_counter() - t0,
            "rounds": [strategy.history[r] for r in sorted(strategy.history)],
        }
        (out_dir / "server.json").write_text(json.dumps(summary, indent=2) + "\n")
