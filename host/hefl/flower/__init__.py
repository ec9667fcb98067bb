"""Federated learning across machines on Flower, with homomorphic aggregation.

docs/design.md §3.7. Optional: needs the ``flower`` extra
(``pip install -e '.[flower]'``, flwr 1.42).

* :mod:`hefl.flower.strategy` — the server-side strategy (key-less,
  validates and multiplies ciphertexts on a hefl Accelerator);
* :mod:`hefl.flower.client_app` — the ClientApp (train, encode, pack,
  encrypt; decrypt and apply the aggregate);
* :mod:`hefl.flower.server_app` — the ServerApp;
* :mod:`hefl.flower.keys` — key distribution through node/run config;
* :mod:`hefl.flower.protocol` — record names and run settings;
* :mod:`hefl.flower.launch` — SuperLink + SuperNodes on 127.0.0.1 as
  separate processes (``hefl flower``, ``make demo-flower``);
* ``host/hefl/flower/app/pyproject.toml`` — the Flower App for ``flwr run``.

Across real machines (the launcher does the same on one host)::

    # key authority: one key pair for the clients, the public half for the server
    hefl keygen --bits 2048 --out keys   # public.json + private.json, the layout key-dir expects
    # server machine
    flower-superlink --insecure          # or with Flower's TLS options
    # each client machine k of K (key directory copied there)
    flower-supernode --insecure --superlink SERVER:PORT \\
        --node-config 'partition-id=k num-partitions=K key-dir="/path/keys"'
    # anywhere with a SuperLink connection in $FLWR_HOME/config.toml
    flwr run host/hefl/flower/app CONNECTION --stream --run-config \\
        'num-clients=K total-examples=N public-key="/srv/public.json" out-dir="/srv/run"'

Every node needs hefl installed (the FAB carries only the app's
``pyproject.toml``; its components live in the ``hefl`` package).

This package imports nothing from flwr at import time, so ``hefl`` works
without the extra.
"""

__all__ = []
