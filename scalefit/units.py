"""Human number strings: ``7B``, ``1.3b``, ``350M``, ``2T``, ``5.8e23``, ``70_000_000`` (decimal powers)."""

from __future__ import annotations

import math
import re

from .errors import DataError, option_error

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([kKmMbBgGtTpP]?)\s*$")


def parse_count(text: str | float | int, what: str = "value") -> float:
    """Parse a count such as ``7B`` into a float; raise DataError naming ``what`` otherwise.

    Suffixes are decimal: K=1e3, M=1e6, B=G=1e9, T=1e12, P=1e15 (case-insensitive).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _NUMBER.match(str(text))
        if not match:
            raise DataError(
                f"{what}: '{text}' is not a number; use digits with an optional K/M/B/T suffix, e.g. 7B or 5.8e23"
            )
        value = float(match.group(1).replace("_", "")) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(value):
        raise DataError(f"{what}: '{text}' is not a finite number")
    return value


def parse_positive(text: str | float | int, what: str = "value") -> float:
    value = parse_count(text, what)
    if value <= 0:
        raise DataError(f"{what}: '{text}' must be positive")
    return value


def check_in_range(value, param: str, lo: float, hi: float, unit: str = "", accepted_by: str = "scalefit") -> float:
    """``value`` as a float once it is a finite positive number in [lo, hi]; else one DataError in the
    project's one template (:func:`~scalefit.errors.option_error`), naming the Python parameter ``param``
    and the value (every range check of an option goes here)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise option_error(param, value, "must be a number") from None
    if not (math.isfinite(x) and x > 0):
        raise option_error(param, x, "must be a positive number")
    if not lo <= x <= hi:
        span = f"{lo:g} to {hi:g}" if lo > 0 else f"at most {hi:g}"
        raise option_error(param, x, f"outside the range {accepted_by} accepts ({span}{' ' + unit if unit else ''})")
    return x


def format_count(value: float) -> str:
    """Short human form: 7.00e9 -> '7B', 1.4e12 -> '1.4T'."""
    if value is None or not math.isfinite(value):
        return str(value)
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
