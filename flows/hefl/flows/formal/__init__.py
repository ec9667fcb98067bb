"""Formal checks of the bus interfaces and stream ports (``hefl formal``, ``make formal``)."""
