"""Shared pytest fixtures: every random test takes its seed from here.

Set ``HEFL_SEED`` to reproduce a run; the seed is printed in the header
and in each failing test's report.
"""

import os
import random
import secrets

import pytest

SEED = int(os.environ.get("HEFL_SEED", secrets.randbits(32)))


def pytest_report_header(config):
    return f"hefl random seed: HEFL_SEED={SEED}"


@pytest.fixture
def seed(request):
    """A per-test seed derived from the run seed and the test's name."""
    s = random.Random(f"{SEED}:{request.node.nodeid}").getrandbits(32)
    request.node.user_properties.append(("seed", s))
    print(f"seed={s} (HEFL_SEED={SEED})")
    return s


@pytest.fixture
def rng(seed):
    """A :class:`random.Random` seeded from :func:`seed`."""
    return random.Random(seed)


@pytest.fixture(scope="module")
def cpu_pool():
    """A cpu accelerator whose every batch of two or more runs on its process pool.

    Threshold 0: the parallel path, the one that runs in production.
    """
    from hefl.accel.cpu import CpuAccelerator
    acc = CpuAccelerator(workers=2, parallel_threshold_s=0.0)
    yield acc
    acc.close()


@pytest.fixture(scope="module")
def cpu_serial():
    """A cpu accelerator that computes everything in this process (one worker)."""
    from hefl.accel.cpu import CpuAccelerator
    acc = CpuAccelerator(workers=1)
    yield acc
    acc.close()


@pytest.fixture(scope="module")
def cpu_gmpy2():
    """A cpu accelerator on gmpy2 only (the native kernels off), in this process."""
    from hefl.accel.cpu import CpuAccelerator
    acc = CpuAccelerator(workers=1, native=False)
    yield acc
    acc.close()
