"""The demo's outputs: ``report.json`` and ``accuracy.png``.

``report.json`` starts with the header every hefl report has
(``hefl_version``, ``schema`` "hefl-demo/2", ``created``) and ``status``
("running" while rounds remain, "complete", or "interrupted"/"failed" with
``error``), then ``backend``, ``key_bits``, ``model_parameters``,
``rounds`` (one dict per round: ``accuracy``, ``plaintext_accuracy``,
``loss``, ``seconds`` {train, encrypt, aggregate, decrypt}, ``bytes_up``,
``max_abs_error``, ``bound``, ``cycles``, ``dropped``, ``excluded``, ...),
``rounds_completed``, ``final_accuracy``, ``plaintext_final_accuracy``,
``within_bound`` (every round's ``max_abs_error`` ≤ its ``bound``) and the
configuration. The names shared with the Flower report are
:data:`hefl.reports.FIELD_NAMES` (``max_abs_error``, ``bound`` and
``bytes_up`` per round, the others at the top). It is written
atomically after every round, so an interrupted run keeps the rounds it
finished. The plot shows the HE and plaintext test accuracy per round.
"""

import os

from hefl.reports import write_json_atomic

__all__ = ["write_report", "write_json", "plot_accuracy", "REQUIRED_KEYS", "ROUND_KEYS"]

#: Top-level keys every report has.
REQUIRED_KEYS = ("hefl_version", "schema", "created", "status", "backend", "key_bits",
                 "model_parameters", "rounds", "rounds_completed", "final_accuracy",
                 "plaintext_final_accuracy", "within_bound", "config")

#: Keys of every entry of ``rounds``.
ROUND_KEYS = ("round", "accuracy", "plaintext_accuracy", "loss", "seconds", "bytes_up", "cycles",
              "dropped", "excluded", "max_abs_error", "bound")


def write_json(report, out_dir):
    """Write ``report.json`` into ``out_dir`` atomically; return its path."""
    return str(write_json_atomic(os.path.join(out_dir, "report.json"), report))


def write_report(report, out_dir):
    """Write ``report.json`` and ``accuracy.png`` into ``out_dir``; return their paths."""
    path = write_json(report, out_dir)
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
