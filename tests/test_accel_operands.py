"""The accelerator takes integers only: int, numpy integers, gmpy2.mpz (issue 16, strict operands)."""

import gmpy2
import numpy as np
import pytest

from hefl.accel import get_accelerator
from hefl.accel.base import validate_exponents, validate_modulus, validate_operands
from hefl.errors import HeflError, OperandRangeError, OperandTypeError
from hefl.golden.fixedbase import build_table


@pytest.fixture(scope="module")
def cpu():
    acc = get_accelerator("cpu", workers=1)
    yield acc
    acc.close()


def test_the_issue_examples_raise(cpu):
    with pytest.raises(OperandTypeError, match="base 0 is a float"):
        cpu.powmod([3.9], [2.7], 7)
    with pytest.raises(OperandTypeError, match="base 0 is a str"):
        cpu.powmod(["5"], [1], 7)
    # Typed, and still what callers catching TypeError or OperandRangeError expect.
    assert issubclass(OperandTypeError, (HeflError, TypeError, OperandRangeError))


@pytest.mark.parametrize("bad", [3.0, 3.9, "5", True, False, None, b"\x05", 1 + 0j, [3],
                                 np.float64(3.0), np.bool_(True), gmpy2.mpfr(3)])
def test_every_position_refuses_a_non_integer(cpu, bad):
    m = 1009
    calls = [lambda: cpu.powmod([bad], [1], m), lambda: cpu.powmod([2], [bad], m),
             lambda: cpu.mulmod([bad], [1], m), lambda: cpu.mulmod([1], [bad], m),
             lambda: cpu.product([[1, bad]], m), lambda: cpu.powmod([2], [1], bad)]
    for call in calls:
        with pytest.raises(OperandTypeError):
            call()


def test_numpy_and_mpz_are_integers(cpu):
    m = 1009
    bases = [np.int64(3), np.uint16(5), gmpy2.mpz(7), 11]
    exps = [np.int32(100), gmpy2.mpz(3), np.uint8(200), 2 ** 70]
    want = [pow(int(b), int(e), m) for b, e in zip(bases, exps)]
    assert cpu.powmod(bases, exps, np.int64(m)) == want
    assert cpu.powmod(bases, exps, gmpy2.mpz(m)) == want
    assert cpu.mulmod(np.array([2, 3]), np.array([4, 5]), m) == [8, 15]
    assert all(type(v) is int for v in validate_operands([gmpy2.mpz(2), np.int8(3)], m))
    assert type(validate_modulus(gmpy2.mpz(m))) is int


def test_validators_name_the_element():
    with pytest.raises(OperandTypeError, match="a 2 is a float"):
        validate_operands([1, 2, 2.0], 7, "a")
    with pytest.raises(OperandTypeError, match="exponent 1 is a bool"):
        validate_exponents([1, True])
    with pytest.raises(OperandTypeError, match="sequence of integers"):
        validate_exponents(5)
    with pytest.raises(OperandRangeError, match="negative"):
        validate_exponents([np.int64(-1)])


def test_fixed_base_exponents_and_factors(cpu):
    m = 1009
    table = build_table(5, m, exp_bits=8, k=2)
    assert cpu.fixed_base(table, [np.uint8(3), gmpy2.mpz(4)], [2, np.int64(3)]) == \
        [pow(5, 3, m) * 2 % m, pow(5, 4, m) * 3 % m]
    with pytest.raises(OperandTypeError):
        cpu.fixed_base(table, [3.0])
    with pytest.raises(OperandTypeError):
        cpu.fixed_base(table, [3], [2.5])
