"""Federated learning across machines on Flower, with homomorphic aggregation.

DESIGN.md §4 layer 6. Optional: needs the ``flower`` extra
(``pip install -e .[flower]``, flwr 1.42).

* :mod:`hefl.flower.strategy` — the server-side strategy (key-less,
  validates and multiplies ciphertexts on a hefl Accelerator);
* :mod:`hefl.flower.client_app` — the ClientApp (train, encode, pack,
  encrypt; decrypt and apply the aggregate);
* :mod:`hefl.flower.server_app` — the ServerApp;
* :mod:`hefl.flower.keys` — key distribution through node/run config;
* :mod:`hefl.flower.protocol` — record names and run settings;
* :mod:`hefl.flower.launch` — SuperLink + SuperNodes on 127.0.0.1 as
  separate processes (``hefl flower``, ``make demo-flower``);
* ``host/flower/app/pyproject.toml`` — the Flower App for ``flwr run``.

This package imports nothing from flwr at import time, so ``hefl`` works
without the extra.
"""

__all__ = []
