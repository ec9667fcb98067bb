"""The demo's outputs: ``report.json`` and ``accuracy.png``.

``report.json`` holds ``backend``, ``key_bits``, ``rounds`` (one dict per
round: ``accuracy``, ``plaintext_accuracy``, ``loss``, ``seconds``
{train, encrypt, aggregate, decrypt}, ``bytes_up``, ``cycles``,
``dropped``, ``excluded``, ...), ``final_accuracy``,
``plaintext_final_accuracy`` and the configuration. The plot shows the HE
and plaintext test accuracy per round.
"""

import json
import math
import os

__all__ = ["write_report", "plot_accuracy", "REQUIRED_KEYS", "ROUND_KEYS"]

#: Top-level keys every report has.
REQUIRED_KEYS = ("backend", "key_bits", "rounds", "final_accuracy", "plaintext_final_accuracy",
                 "config")

#: Keys of every entry of ``rounds``.
ROUND_KEYS = ("round", "accuracy", "plaintext_accuracy", "loss", "seconds", "bytes_up", "cycles",
              "dropped", "excluded")


def _jsonable(x):
    # numpy scalars and int-keyed dicts (client ids) -> plain JSON types.
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_report(report, out_dir):
    """Write ``report.json`` and ``accuracy.png`` into ``out_dir``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "report.json")
    with open(path, "w") as f:
        json.dump(_jsonable(report), f, indent=2)
        f.write("\n")
    png = plot_accuracy(report, os.path.join(out_dir, "accuracy.png"))
    return path, png


def plot_accuracy(report, path):
    """HE vs plaintext test accuracy per round, as a PNG (matplotlib Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [0] + [r["round"] for r in report["rounds"]]
    init = report.get("initial_accuracy")
    he = [init] + [r["accuracy"] for r in report["rounds"]]
    pt = [init] + [r["plaintext_accuracy"] for r in report["rounds"]]
    if init is None:
        rounds, he, pt = rounds[1:], he[1:], pt[1:]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(rounds, pt, "o-", color="tab:gray", label="plaintext FedAvg", linewidth=2.5, alpha=0.6)
    ax.plot(rounds, he, "x--", color="tab:blue", label=f"Paillier-{report['key_bits']} FedAvg "
            f"({report['backend']})")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    cfg = report.get("config", {})
    ax.set_title(f"{cfg.get('dataset', '')} / {cfg.get('model', '')}, {cfg.get('clients', '?')} clients")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
