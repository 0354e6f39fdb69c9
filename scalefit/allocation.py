"""Allocation exponents: how a compute-optimal model and its data grow with compute, N_opt ∝ C^a, D_opt ∝ C^b.

For L = E + A/N^alpha + B/D^beta under C = 6ND, a = beta/(alpha+beta) and b = alpha/(alpha+beta) (a + b = 1):
the numbers papers quote (Hoffmann et al. 2022: a = 0.46, b = 0.54 for approach 3). The same holds for the
Kaplan form with an entropy term, E + [(A/N)^(alpha/beta) + B/D]^beta. Intervals come from the fit's bootstrap
draws, like every other derived number.

Which parameters are the N and D exponents: a law declares them with ``allocation_exponents = ("alpha",
"beta")``; a law that does not declare a pair has none (matching parameter names is not enough: a user's law
named alike may have another form).
"""

from __future__ import annotations

import numpy as np

from .stats import percentile_interval


def exponent_names(law) -> tuple[str, str] | None:
    """(N exponent, D exponent) parameter names of ``law``, or None when it declares no such pair."""
    declared = getattr(law, "allocation_exponents", None)
    return tuple(declared) if declared else None


def allocation_exponents(law, theta, draws=None, ci: float = 0.95, stretch: float = 1.0) -> dict | None:
    """``{"a": {value, low, high}, "b": {...}, "exponents": [alpha, beta names]}`` for ``law`` at ``theta``
    (intervals from ``draws``, stretched like the parameters'), or None for a law without the pair."""
    names = exponent_names(law)
    if names is None:
        return None
    i, j = (law.param_names.index(n) for n in names)
    rows = np.asarray(theta, dtype=float)[None] if draws is None else np.vstack([np.asarray(theta, float)[None], draws])
    with np.errstate(all="ignore"):
        a = rows[:, j] / (rows[:, i] + rows[:, j])
    if not np.isfinite(a[0]):
        return None
    out = {"exponents": list(names)}
    for key, values in (("a", a), ("b", 1.0 - a)):
        low = high = None
        if len(values) > 2:
            lo, hi = percentile_interval(values[1:], ci, values[0], stretch)
            if np.isfinite(lo) and np.isfinite(hi):
                low, high = float(lo), float(hi)
        out[key] = {"value": float(values[0]), "low": low, "high": high}
    return out
