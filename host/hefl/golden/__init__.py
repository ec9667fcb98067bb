"""Golden models: pure Python on plain ints, no Amaranth, no cocotb.

Two tiers, each tested against the other: the one-line specifications
(``montmul_spec``, ``pow``) and bit-accurate models that follow the
hardware's words and schedule. The host runtime and the hardware tests
import the same models.
"""
