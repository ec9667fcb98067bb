"""Amaranth gateware: Montgomery multiplier, modexp, batch engine, kernel.

Every width and size lives in :mod:`hefl.hw.params`.
"""
