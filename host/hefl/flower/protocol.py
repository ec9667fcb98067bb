"""What hefl puts into Flower's records, and the run settings that shape it.

Flower moves :class:`~flwr.app.RecordDict` objects between the ServerApp
and the ClientApps: an ``ArrayRecord`` of model arrays, a ``ConfigRecord``
and a ``MetricRecord``. hefl changes one thing: **model arrays travel
only encrypted**, as an *encrypted ArrayRecord*, in the same place Flower
puts a plaintext one (``"arrays"``), so a strategy, a mod and an app keep
their usual shape.

Encrypted ArrayRecord
---------------------
One or more entries, ``hefl.ciphertext.0`` … ``hefl.ciphertext.{G-1}``,
each a Flower :class:`~flwr.app.Array` with

* ``stype`` :data:`CIPHER_STYPE` (``"hefl.paillier.CipherVector/1"``),
  ``dtype`` :data:`CIPHER_DTYPE`, ``shape`` ``(C,)`` (C ciphertexts);
* ``data``: the bytes of one :class:`hefl.paillier.CipherVector`
  (docs/design.md §4.3: header, JSON metadata, fixed-width ciphertexts,
  SHA-256), validated by every receiver with its public key.

``Array.numpy()`` refuses such an entry (unknown ``stype``), so Flower's own
``FedAvg`` or a template that saves ``result.arrays`` as a model fails
loudly instead of averaging or saving ciphertext bytes.

What the vectors hold
---------------------
The arrays of the plaintext record, in record order, are flattened to one
vector of L values (each array's values in C order), clipped to
``[-alpha, alpha]``, quantised and packed by :class:`hefl.encoding.Encoder`
(``value-bits``, ``guard-bits``), and every packed plaintext is multiplied
by the client's example count ``n_k`` before encryption: each slot holds
``n_k·(q + Q)``, i.e. ``n_k`` summands in the encoder's terms. The product
of the clients' vectors then holds ``Σ n_k·(q_k + Q)`` and decodes with
``summands = Σ n_k``; dividing by ``Σ n_k`` gives FedAvg's sample-weighted
mean. The divisor is the sum of the ``num-examples`` counts Flower already
sends in the clear: nothing about the federation has to be known before
the run.

Packing overflow: a slot holds at most ``2**guard_bits`` summands, so a
group of replies whose ``Σ n_k`` exceeds that is split by the strategy into
several groups, each multiplied into its own vector (entry ``i`` of the
encrypted global); a key holder decodes each with its own summand count and
adds them. A single client with more than ``2**guard_bits`` examples is
refused (raise ``guard-bits``).

Metadata of an **update** (client → server, one entry)::

    {"format": "hefl.flower/1", "encoding": {...EncodingParams...},
     "layout": [[name, dtype, [shape...]], ...], "length": L,
     "round": r, "node": <Flower node id>, "examples": n_k}

Metadata of group ``i`` of a **global** (server → clients, and
``Result.arrays``)::

    {"format": "hefl.flower/1", "encoding": {...}, "layout": [...], "length": L,
     "round": r, "group": i, "groups": G, "examples": Σ_group n_k,
     "clients": c_group, "total-examples": Σ n_k}

The strategy builds the global's metadata itself; nothing a client wrote
into its metadata is forwarded.

Run config keys
---------------
Every key hefl reads starts with ``hefl-`` (:data:`RUN_DEFAULTS`); a
Flower App lists them under ``[tool.flwr.app.config]`` (Flower only lets
``flwr run --run-config`` override keys the app declares).
:data:`NODE_KEYS` may also be set per SuperNode (``--node-config``), and
there take precedence over the run config.
"""

import math
import numbers
from dataclasses import dataclass

from hefl.errors import FlowerConfigError

__all__ = [
    "FORMAT", "CIPHER_STYPE", "CIPHER_DTYPE", "CIPHER_PREFIX", "REFERENCE_KEY", "ARRAYS_KEY",
    "NUM_EXAMPLES", "UPDATE_META", "GLOBAL_META", "RUN_DEFAULTS", "NODE_KEYS",
    "EncodingSettings", "cipher_key", "setting",
]

#: format tag in every vector's metadata
FORMAT = "hefl.flower/1"
#: ``Array.stype`` of an entry holding CipherVector bytes
CIPHER_STYPE = "hefl.paillier.CipherVector/1"
#: ``Array.dtype`` of such an entry (one element per ciphertext)
CIPHER_DTYPE = "paillier-ciphertext"
#: entry names of an encrypted ArrayRecord: ``hefl.ciphertext.<group>``
CIPHER_PREFIX = "hefl.ciphertext."
#: RecordDict key of the clipped plaintext model, sent only with
#: ``hefl-send-plaintext-reference = true``
REFERENCE_KEY = "hefl-plaintext-reference"
#: where Flower's strategies put the model ArrayRecord
ARRAYS_KEY = "arrays"
#: Flower's FedAvg weighting key, sent in the clear by every client
NUM_EXAMPLES = "num-examples"

#: metadata keys of a client's update vector
UPDATE_META = frozenset({"format", "encoding", "layout", "length", "round", "node", "examples"})
#: metadata keys of each group vector of a global
GLOBAL_META = frozenset({"format", "encoding", "layout", "length", "round", "group", "groups",
                         "examples", "clients", "total-examples"})

#: run-config keys hefl reads, with their defaults
RUN_DEFAULTS = {
    # server side: the public key only (a key-dir's public.json also works)
    "hefl-public-key": "",
    # client side when the node config names none: public.json + private.json
    "hefl-key-dir": "",
    "hefl-alpha": 1.0,
    "hefl-value-bits": 16,
    "hefl-guard-bits": 16,
    # the aggregator's accelerator (any hefl backend) and its device options
    "hefl-backend": "cpu",
    "hefl-xclbin": "",
    "hefl-device": "",
    # the clients' accelerator for encryption and decryption
    "hefl-client-backend": "cpu",
    # verification only: clients also send the clipped model in the clear
    "hefl-send-plaintext-reference": False,
    # where the ServerApp writes server.json and each round's encrypted global
    "hefl-out-dir": "",
}

#: keys a SuperNode's node config may set for itself
NODE_KEYS = ("hefl-key-dir", "hefl-client-backend")


def cipher_key(group):
    """Entry name of group ``group`` in an encrypted ArrayRecord."""
    return f"{CIPHER_PREFIX}{int(group)}"


def setting(key, run_config, node_config=None):
    """The value of ``key``: node config (for :data:`NODE_KEYS`), run config, default.

    Raises
    ------
    FlowerConfigError
        ``key`` is not a hefl setting.
    """
    if key not in RUN_DEFAULTS:
        raise FlowerConfigError(f"{key!r} is not a hefl setting; known: {', '.join(RUN_DEFAULTS)}")
    if node_config is not None and key in NODE_KEYS and node_config.get(key) not in (None, ""):
        return node_config[key]
    value = run_config.get(key, RUN_DEFAULTS[key])
    return RUN_DEFAULTS[key] if value is None else value


def _number(key, value, kind):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not math.isfinite(float(value)):
        raise FlowerConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, "
                                f"not {value!r}")
    return kind(value)


@dataclass(frozen=True)
class EncodingSettings:
    """Clipping bound and bit widths of the federation's encoding.

    The same on every node (run config); the public key adds the plaintext
    size (:meth:`encoder`).
    """

    alpha: float = RUN_DEFAULTS["hefl-alpha"]
    value_bits: int = RUN_DEFAULTS["hefl-value-bits"]
    guard_bits: int = RUN_DEFAULTS["hefl-guard-bits"]

    @classmethod
    def from_run_config(cls, run_config):
        """Read ``hefl-alpha``, ``hefl-value-bits``, ``hefl-guard-bits``."""
        return cls(alpha=_number("hefl-alpha", setting("hefl-alpha", run_config), float),
                   value_bits=_number("hefl-value-bits",
                                      setting("hefl-value-bits", run_config), int),
                   guard_bits=_number("hefl-guard-bits",
                                      setting("hefl-guard-bits", run_config), int))

    def encoder(self, public_key):
        """The :class:`~hefl.encoding.Encoder` for ``public_key``'s plaintext size."""
        from hefl.encoding import Encoder
        return Encoder(plaintext_bits=public_key.n.bit_length() - 1, alpha=self.alpha,
                       value_bits=self.value_bits, guard_bits=self.guard_bits)
