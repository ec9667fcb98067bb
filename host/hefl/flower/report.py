"""``report.json`` of a Flower run, written by a key holder after the run.

The ServerApp's ``server.json`` says what the server saw: per round, the
accepted and excluded nodes (with reasons), sample counts, bytes, timings
and a description of every record each reply carried. The server cannot
say more: its globals are encrypted. This module, run by the launcher with
the private key, adds what only a key holder can know:

* each round's global, decrypted (``round-<r>.hefl.npz``), and its test
  accuracy (the app's own evaluate function, in this process);
* ``max_abs_error``: the largest difference between that global and
  Flower's FedAvg (``aggregate_arrayrecords``) of the client models
  trained from the previous decrypted global on the same partitions,
  replayed here (:mod:`hefl.flower.local_app`), against ``bound``, the
  quantisation bound plus the float rounding of the arrays' dtype;
* the plaintext reference: Flower's FedAvg over the same partitions from
  the same initial model, round after round, and its accuracy; no client
  model was sent for it;
* the final model, decrypted and saved (``final-model.npz``).

Field names follow :data:`hefl.reports.FIELD_NAMES`.
"""

import json
from pathlib import Path

import numpy as np

from hefl.errors import FlowerRunError
from hefl.flower.local_app import LocalClientApp, fedavg_round, max_abs_diff
from hefl.flower.protocol import CIPHER_STYPE
from hefl.flower.records import (
    decrypt_arrays,
    inspect_encrypted,
    load_arrays,
    load_encrypted,
    save_decrypted,
)
from hefl.reports import report_meta, write_json_atomic

__all__ = ["make_report", "fedavg_tolerance", "received_summary", "last_exception",
           "SCHEMA_VERSION"]

SCHEMA_VERSION = 2


def fedavg_tolerance(info, reference):
    """Largest acceptable |decrypted global − Flower's FedAvg| per value.

    The encoder's quantisation bound (:meth:`EncryptedInfo.error_bound
    <hefl.flower.records.EncryptedInfo.error_bound>`) plus float rounding in
    the arrays' own dtype: the decrypted mean is rounded once to it, and
    Flower's FedAvg of K models rounds each product and partial sum (2K + 1
    roundings of values up to ``max |reference|``).
    """
    eps = max(float(np.finfo(a.numpy().dtype).eps) for a in reference.values())
    scale = max(float(np.max(np.abs(a.numpy()), initial=0.0)) for a in reference.values())
    return info.error_bound() + (2 * info.clients + 2) * eps * scale


def received_summary(server):
    """What the server received from clients over the whole run, by record type.

    Returns
    -------
    dict
        ``array_stypes`` (every ``Array.stype`` seen), ``metric_keys``,
        ``config_keys``, ``errors`` (error replies) and ``plaintext_sent``
        (an array that is not a ciphertext vector was received).
    """
    stypes, metric_keys, config_keys, errors = set(), set(), set(), 0
    for h in server["rounds"]:
        phases = [h.get("received", {}), h.get("evaluate", {}).get("received", {})]
        for received in phases:
            for records in received.values():
                for rec in records:
                    if rec["type"] == "Error":
                        errors += 1
                    elif rec["type"] == "ArrayRecord":
                        stypes.update(e[1] for e in rec["entries"])
                    elif rec["type"] == "MetricRecord":
                        metric_keys.update(rec["keys"])
                    elif rec["type"] == "ConfigRecord":
                        config_keys.update(rec["keys"])
    return {"array_stypes": sorted(stypes), "metric_keys": sorted(metric_keys),
            "config_keys": sorted(config_keys), "errors": errors,
            "plaintext_sent": any(s != CIPHER_STYPE for s in stypes)}


def last_exception(log_path):
    """The exception line of the last traceback in a Flower log, or None."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    cause, in_tb = None, False
    for line in lines:
        if line.startswith("Traceback"):
            in_tb = True
        elif in_tb and line and not line[0].isspace():
            cause, in_tb = line.strip(), False
    return cause


def _server(out):
    path = out / "server.json"
    if not path.is_file():
        cause = last_exception(out / "logs" / "flwr-run.log")
        raise FlowerRunError(f"the ServerApp wrote no {path.name}"
                             + (f" ({cause})" if cause else "") + f"; see {out / 'logs'}")
    return json.loads(path.read_text())


def _partitions(h, node_to_partition, clients):
    """Partitions in round ``h``'s global, or None when they cannot be told."""
    included = h.get("included", [])
    if not h.get("excluded") and len(included) == clients:
        return list(range(clients))
    if all(n in node_to_partition for n in included):
        return sorted(node_to_partition[n] for n in included)
    return None


def _round(out, r, h, ctx):
    """One row of the report; updates ``ctx`` (previous globals) for the next round."""
    path = out / f"round-{r}.hefl.npz"
    if h is None or not h.get("included") or not path.is_file():
        raise FlowerRunError(f"round {r} produced no encrypted global; see {out / 'logs'}")
    record = load_encrypted(path)
    info = inspect_encrypted(record, ctx["key"].public_key)
    he = decrypt_arrays(record, ctx["key"])
    local, parts = ctx["local"], _partitions(h, ctx["node_to_partition"], ctx["clients"])
    err = bound = None
    if parts is not None:
        fedavg, _ = fedavg_round(local, ctx["he"], r, parts)
        err, bound = max_abs_diff(he, fedavg), fedavg_tolerance(info, fedavg)
    plain, _ = fedavg_round(local, ctx["plain"], r, parts if parts is not None
                            else list(range(ctx["clients"])))
    he_m, plain_m = local.evaluate(he, r), local.evaluate(plain, r)
    ctx["he"], ctx["plain"] = he, plain
    federated = (h.get("evaluate") or {}).get("metrics") or {}
    return {
        "round": r, "accuracy": he_m.get("accuracy"), "loss": he_m.get("loss"),
        "plaintext_accuracy": plain_m.get("accuracy"), "plaintext_loss": plain_m.get("loss"),
        "federated_accuracy": federated.get("accuracy"),
        "max_abs_error": err, "bound": bound, "partitions": parts,
        "included": h["included"], "excluded": h.get("excluded", {}),
        "examples": h.get("examples"), "groups": h.get("groups"),
        "bytes_up": max(h.get("bytes_up", {}).values(), default=0),
        "aggregate_s": h.get("aggregate_s"), "cycles": h.get("cycles"),
    }


def make_report(out, cfg, app_dir, run_config, node_configs, private_key, *, node_ids,
                seconds, federation_seconds, echo=print):
    """Check the run as a key holder and write ``out/report.json``; returns the report."""
    out = Path(out)
    server = _server(out)
    history = {h["round"]: h for h in server["rounds"]}
    local = LocalClientApp(app_dir, run_config, node_configs)
    initial = load_arrays(out / "initial.npz")
    ctx = {"key": private_key, "local": local, "clients": cfg.clients, "he": initial,
           "plain": initial, "node_to_partition": {v: k for k, v in node_ids.items()}}
    initial_metrics = local.evaluate(initial, 0)
    rows = [_round(out, r, history.get(r), ctx) for r in range(1, cfg.rounds + 1)]
    final = out / "final-global.hefl.npz"
    save_decrypted(final if final.is_file() else out / f"round-{cfg.rounds}.hefl.npz",
                   private_key, out / "final-model.npz")
    received = received_summary(server)
    report = {
        **report_meta("flower", SCHEMA_VERSION),
        "app": str(app_dir), "runtime": cfg.runtime,
        "tls": bool(cfg.tls) and cfg.runtime == "deployment",
        "supernode_auth": bool(cfg.supernode_auth) and cfg.runtime == "deployment",
        "send_plaintext_reference": bool(cfg.send_plaintext_reference),
        "plaintext_sent": received["plaintext_sent"], "received": received,
        "backend": server["backend"], "client_backend": run_config.get("hefl-client-backend"),
        "key_bits": server["key_bits"], "key_fingerprint": server["key_fingerprint"],
        "clients": cfg.clients, "model_parameters": server["model_parameters"],
        "arrays": server["layout"], "encoding": server["encoding"],
        "initial_accuracy": initial_metrics.get("accuracy"),
        "plaintext_reference": "Flower's FedAvg (aggregate_arrayrecords) over the same "
                               "partitions, replayed by the key holder in the launcher; no "
                               "client model was sent for it",
        "rounds": rows, "final_accuracy": rows[-1]["accuracy"],
        "plaintext_final_accuracy": rows[-1]["plaintext_accuracy"],
        "final_model": str(out / "final-model.npz"),
        "seconds": seconds, "federation_seconds": federation_seconds,
    }
    write_json_atomic(out / "report.json", report)
    _print(report, out, echo)
    return report


def _fmt(v, spec, width=0):
    return f"{'-':>{width}}" if v is None else format(v, spec)


def _print(report, out, echo):
    echo(f"{'round':>5} {'HE acc':>7} {'plain':>7} {'max|Δ|':>9} {'bound':>9} {'bytes/client':>12}"
         f" {'agg s':>7} {'cycles':>10}  excluded")
    for r in report["rounds"]:
        excl = "; ".join(f"node {k}: {v}" for k, v in r["excluded"].items()) or "-"
        echo(f"{r['round']:>5} {r['accuracy']:>7.4f} {_fmt(r['plaintext_accuracy'], '7.4f', 7)} "
             f"{_fmt(r['max_abs_error'], '9.2e', 9)} {_fmt(r['bound'], '9.2e', 9)} "
             f"{r['bytes_up']:>12} {_fmt(r['aggregate_s'], '7.3f', 7)} "
             f"{_fmt(r['cycles'], '>10,', 10)}  {excl}")
    echo(f"final accuracy {report['final_accuracy']:.4f} (HE), "
         f"{report['plaintext_final_accuracy']:.4f} (plaintext FedAvg, same partitions); "
         f"plaintext sent: {'YES' if report['plaintext_sent'] else 'no'}; "
         f"{report['seconds']:.1f} s; report {out / 'report.json'}")
