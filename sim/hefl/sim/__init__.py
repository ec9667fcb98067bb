"""Simulation of the gateware: Verilator models, C++ harnesses, cocotb benches.

See ``sim/README.md``. Each C++ harness sits beside the module that builds
and loads it: :mod:`~hefl.sim.kernel_model` (the simulated card under the
``sim`` backend), :mod:`~hefl.sim.engine_model` (a C++-clocked BatchEngine)
and :mod:`~hefl.sim.board_model` (the ECP5 board behind a byte port). The
cocotb benches are in :mod:`hefl.sim.tb`.
"""
