"""Homomorphic FedAvg for any Flower App: model arrays travel only encrypted.

docs/design.md §3.7 and §4.6. Optional: needs the ``flower`` extra
(``pip install -e '.[flower]'``, flwr 1.42; ``flwr[simulation]`` for the
Simulation Runtime).

Two changes turn a Flower App's FedAvg into homomorphic FedAvg::

    # ClientApp: the app keeps working on plaintext ArrayRecords
    from hefl.flower.mod import homomorphic_mod
    app = ClientApp(mods=[homomorphic_mod])

    # ServerApp: the strategy multiplies ciphertexts with the public key only
    from hefl.flower.strategy import HomomorphicFedAvg
    strategy = HomomorphicFedAvg.from_run_config(context.run_config, min_available_nodes=3)
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=3)
    # result.arrays is the encrypted global; a key holder decrypts it:
    #   hefl.flower.records.save_decrypted(result.arrays, "keys/", "model.npz")

* :mod:`hefl.flower.records` — the client-side API: encrypt an ArrayRecord
  (any arrays, shapes, float dtypes; weighted by the example count) into the
  documented encrypted ArrayRecord, decrypt one back, files;
* :mod:`hefl.flower.mod` — the client mod doing that around any ClientApp;
* :mod:`hefl.flower.strategy` — ``HomomorphicFedAvg``: per-reply validation,
  exclusion with reasons, aggregation on any hefl backend;
* :mod:`hefl.flower.protocol` — the record format and the ``hefl-*`` run
  settings;
* :mod:`hefl.flower.keys` — key pairs from node or run config;
* :mod:`hefl.flower.tls` — loopback TLS certificates;
* :mod:`hefl.flower.launch` — local federations (SuperLink + SuperNodes with
  TLS and SuperNode authentication, or the Simulation Runtime) for
  ``hefl flower`` and ``make demo-flower``;
* :mod:`hefl.flower.local_app`, :mod:`hefl.flower.report` — the key
  holder's replay of a ClientApp in-process and the run's report.

The example app is ``examples/flower-multitensor`` (``flwr run`` it as is).
This package imports nothing from flwr at import time, so ``hefl`` works
without the extra.
"""

__all__ = []
