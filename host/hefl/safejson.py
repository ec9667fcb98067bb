"""Strict JSON for data from other parties: bounded, finite, UTF-8, or a typed error.

:func:`loads` is what every hefl reader of received JSON uses (ciphertext
vector metadata, key files). Where :func:`json.loads` would hang, recurse,
raise a plain :class:`ValueError` or accept values no hefl writer makes, it
raises :class:`~hefl.errors.SerializationError`, and nothing else:

=====================================  =======================================
input                                  what :func:`json.loads` does
=====================================  =======================================
more than ``max_bytes`` bytes          parses it all (a garbled length field
                                       can point at gigabytes)
bytes that are not UTF-8               ``UnicodeDecodeError``
nesting ~1000 deep                     ``RecursionError``
nesting deeper than ``max_depth``      accepts it
an integer of more than 4,300 digits   ``ValueError`` (CPython's int limit)
``NaN``, ``Infinity``, ``1e999``       accepts them (as non-finite floats)
a key given twice in one object        keeps the last, silently
a lone surrogate (``"\\ud800"``)       accepts a string that is not Unicode
=====================================  =======================================

Integers are limited to :data:`MAX_INT_DIGITS` digits: hefl stores big
numbers (moduli, ciphertexts) as hex strings or binary, never as JSON
integers, so a longer one is garbage.
"""

import json
import math

from hefl.errors import SerializationError

__all__ = ["loads", "MAX_DEPTH", "MAX_INT_DIGITS"]

#: Deepest nesting of arrays and objects accepted (hefl writes at most 3).
MAX_DEPTH = 32

#: Longest JSON integer accepted, sign included (2**128 has 39 digits).
MAX_INT_DIGITS = 40


class _Refused(Exception):
    """Raised inside the parser's hooks; turned into SerializationError with the caller's wording."""


def _parse_int(text):
    if len(text) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text):
    if len(text) > 64:
        raise _Refused(f"a number of {len(text)} characters")
    x = float(text)
    if not math.isfinite(x):
        raise _Refused(f"a number that is not finite ({text[:20]})")
    return x


def _parse_constant(name):
    raise _Refused(f"{name}, which is not a JSON number")


def _object(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"the key {dup[:40]!r} twice in one object")
    return d


def _check_tree(value, max_depth):
    """Depth and Unicode of a parsed value, without recursion."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("a string holding a lone surrogate (not Unicode)") from None
            continue
        if not isinstance(v, (dict, list)):
            continue
        if depth > max_depth:
            raise _Refused(f"nesting deeper than {max_depth}")
        children = list(v.values()) + list(v.keys()) if isinstance(v, dict) else v
        stack.extend((c, depth + 1) for c in children)


def loads(data, *, what, max_bytes, max_depth=MAX_DEPTH):
    """Parse ``data`` (UTF-8 bytes or a str) as strict JSON.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or str
    what : str
        What is being read, for the messages ("public key", "ciphertext
        vector metadata").
    max_bytes : int
        Largest input accepted, checked before anything is decoded (for a
        str: its length in characters).
    max_depth : int
        Deepest nesting of arrays and objects accepted.

    Returns
    -------
    object
        The parsed value (dict, list, str, int, float, bool or None).

    Raises
    ------
    SerializationError
        Anything in the module docstring's table, or text that is not JSON.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > max_bytes:
            raise SerializationError(f"{what} is {len(data)} bytes; at most {max_bytes} are read")
        try:
            text = bytes(data).decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            raise SerializationError(f"{what} is not UTF-8 (byte {e.start}: {e.reason})") from None
    elif isinstance(data, str):
        if len(data) > max_bytes:
            raise SerializationError(f"{what} is {len(data)} characters; at most {max_bytes} are read")
        text = data
    else:
        raise SerializationError(f"{what} must be JSON text or bytes, not {type(data).__name__}")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant, object_pairs_hook=_object)
        _check_tree(value, max_depth)
    except _Refused as e:
        raise SerializationError(f"{what} holds {e}") from None
    except RecursionError:
        raise SerializationError(f"{what} holds nesting deeper than {max_depth}") from None
    except json.JSONDecodeError as e:
        raise SerializationError(f"{what} is not valid JSON: {e}") from None
    return value
