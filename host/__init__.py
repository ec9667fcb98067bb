"""hefl — Paillier homomorphic encryption on FPGA, serving federated learning.

The Python package ``hefl`` is laid out over the repository: ``host/`` is
``hefl`` (runtime, Paillier, encoding, FedAvg, CLI) and ``hw/`` is
``hefl.hw`` (Amaranth gateware). Golden models live in :mod:`hefl.golden`
and are shared by the hardware tests and the host.
"""

__version__ = "0.1.0"
