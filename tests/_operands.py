"""Random operands the cpu-backend and native-kernel tests share."""

import math

from hefl.golden.fixedbase import build_table


def odd_modulus(rng, bits):
    """A random odd modulus of exactly ``bits`` bits (5 for ``bits <= 2``)."""
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1)) if bits > 2 else 5


def random_table(rng, mod_bits, exp_bits, k):
    """The golden fixed-base table of a random unit modulo a random odd modulus."""
    m = odd_modulus(rng, mod_bits)
    while True:
        g = rng.randrange(2, m)
        if math.gcd(g, m) == 1:
            return build_table(g, m, exp_bits, k)
