"""The ServerApp: Flower's round loop with HomomorphicFedAvg.

The server holds the public key only. ``result.arrays`` is the encrypted
global model; it is written to ``hefl-out-dir`` (when set) for a key
holder, who turns it into a model with one call::

    from hefl.flower.records import save_decrypted
    save_decrypted("out/final-global.hefl.npz", "keys/", "model.npz")
"""

from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from flower_multitensor import task
from hefl.flower.records import save_encrypted
from hefl.flower.strategy import HomomorphicFedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-server-rounds`` rounds of encrypted FedAvg."""
    cfg = context.run_config
    nodes = int(cfg["min-nodes"])
    strategy = HomomorphicFedAvg.from_run_config(
        cfg, fraction_train=1.0, min_train_nodes=nodes, min_available_nodes=nodes,
        fraction_evaluate=float(cfg["fraction-evaluate"]),
        min_evaluate_nodes=int(cfg["min-evaluate-nodes"]))
    # The initial model is public (random): it is the only plaintext model sent.
    initial = ArrayRecord({k: Array(v) for k, v in task.init_arrays(cfg["seed"]).items()})
    result = strategy.start(grid=grid, initial_arrays=initial,
                            num_rounds=int(cfg["num-server-rounds"]),
                            timeout=float(cfg["round-timeout"]), train_config=ConfigRecord())
    if cfg["hefl-out-dir"]:
        save_encrypted(Path(cfg["hefl-out-dir"]) / "final-global.hefl.npz", result.arrays)
