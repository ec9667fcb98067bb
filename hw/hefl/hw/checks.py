"""Parameter checks shared by the gateware constructors, with one wording.

``TypeError(f"Word width must be an integer ≥ 2, not {w!r}")``: raised at
construction, before anything is elaborated (amaranth-soc's convention).
"""

__all__ = ["check_int"]


def check_int(name, value, minimum=1):
    """Raise :class:`TypeError` unless ``value`` is an int (not a bool) ≥ ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"{name} must be an integer ≥ {minimum}, not {value!r}")
