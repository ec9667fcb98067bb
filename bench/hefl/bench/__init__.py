"""Benchmarks (installed as ``hefl.bench``). Each writes JSON; none is a test."""
