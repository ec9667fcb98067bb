"""cocotb benches, run on Verilator by :func:`hefl.sim.runner.run_cocotb` by dotted name."""
