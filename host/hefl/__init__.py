"""hefl — Paillier homomorphic encryption on FPGA, serving federated learning.

The package is spread over the repository's top-level folders, and the path
below each is the import path: ``host/hefl/`` is :mod:`hefl` itself
(runtime, golden models, Paillier, encoding, FedAvg, Flower, CLI),
``hw/hefl/hw/`` is :mod:`hefl.hw` (Amaranth gateware), ``flows/hefl/flows/``
is :mod:`hefl.flows` (Verilog, synthesis, bitstreams, reports),
``sim/hefl/sim/`` is :mod:`hefl.sim` (Verilator models and cocotb benches)
and ``bench/hefl/bench/`` is :mod:`hefl.bench`. Golden models live in
:mod:`hefl.golden` and are shared by the hardware tests and the host.
"""

__version__ = "0.1.0"
