"""Run reports: one header, atomic writes, output paths checked before any work.

Every JSON report hefl writes (``hefl demo``, ``hefl flower``, benchmarks,
``hefl hw-report``, ``hefl sim``, ``hefl fuzz``) starts with the same three
fields, so a reader can tell what wrote it and when::

    {"hefl_version": "0.1.0", "schema": "hefl-demo/2", "created": "2026-12-01T07:23:14Z", ...}

and the demo and Flower reports name the same things the same way
(:data:`FIELD_NAMES`). Reports are written atomically (a temporary file in
the same folder, then a rename), so an interrupted run leaves either the
previous complete report or the new one, never half a file; runs write
theirs after every round.
"""

import json
import math
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from hefl.errors import OutputPathError

__all__ = ["report_meta", "write_json_atomic", "check_output_dir", "jsonable", "FIELD_NAMES"]

#: The names shared by the demo's and the Flower run's reports (and what they mean).
FIELD_NAMES = {
    "model_parameters": "number of scalar model parameters encrypted per client and round",
    "max_abs_error": "largest |decrypted global - plaintext FedAvg| over the model, this round",
    "bound": "quantisation bound max_abs_error must stay within",
    "final_accuracy": "test accuracy of the last round's decrypted global model",
    "plaintext_final_accuracy": "test accuracy of plaintext FedAvg over the same partitions",
    "bytes_up": "bytes one client uploads per round (ciphertext vector)",
    "key_bits": "bit length of the Paillier modulus n",
}


def _version():
    from hefl import __version__
    return __version__


def report_meta(kind, schema_version):
    """The header every report starts with: ``hefl_version``, ``schema``, ``created`` (UTC)."""
    return {"hefl_version": _version(), "schema": f"hefl-{kind}/{int(schema_version)}",
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def jsonable(x):
    """``x`` as plain JSON types: numpy scalars → Python, non-finite floats → ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json_atomic(path, data):
    """Write ``data`` (made :func:`jsonable`) to ``path`` atomically; return the path.

    Raises
    ------
    OutputPathError
        The folder cannot be written (the message names it).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(jsonable(data), f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def check_output_dir(path):
    """Create ``path`` if needed and prove it writable, before a run does any work.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    OutputPathError
        It is a file, or cannot be created or written (one line, naming it).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"output folder {path} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".hefl-write-test.{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputPathError(f"output folder {path} is not writable: {e.strerror or e}") from None
    return path
