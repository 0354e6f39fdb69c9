"""How a fit's parameters trade off: correlations at the optimum and across the bootstrap, and the ridges.

Two estimates, in the optimiser's coordinates (log of scale parameters such as A, B, E; the others as they
are), over the free parameters:

* **Jacobian**: the correlation matrix of the least-squares covariance ``(J' W J)^-1`` of the log residuals
  at the optimum (what lmfit reports as ``correl``). It is local: it describes the shape of the valley at the
  optimum.
* **bootstrap**: the correlation of the refits across the bootstrap draws, when there are draws. It is
  global: it follows a curved valley as far as the data let the refits wander.

Pairs with |r| above ``LISTED`` (0.5, lmfit's ``min_correl`` for reports) are listed; above ``RIDGE`` (0.9)
the pair is called a ridge in plain words: the data fix a combination of the two better than either, as
(A, alpha) and (B, beta) of every Chinchilla-type fit do.
"""

from __future__ import annotations

import math

import numpy as np

LISTED = 0.5
RIDGE = 0.9
SPACE = "optimiser's coordinates (log of scale parameters)"


def _to_corr(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(all="ignore"):
        corr = cov / np.outer(sd, sd)
    corr = np.where(np.outer(sd, sd) > 0, np.clip(corr, -1.0, 1.0), np.nan)
    np.fill_diagonal(corr, np.where(sd > 0, 1.0, np.nan))
    return corr


def jacobian_correlation(problem, u_hat: np.ndarray) -> np.ndarray | None:
    """Correlation matrix (q, q) of the free parameters from the Jacobian of the log residuals at ``u_hat``,
    weighted by the problem's row weights; None when there are no more rows than parameters or the
    Jacobian is not finite."""
    r, J = problem.residuals_and_jac(np.asarray(u_hat, dtype=float)[None])
    J = J[0]
    n, q = J.shape
    if q < 2 or n <= q or not np.all(np.isfinite(J)):
        return None
    w = np.asarray(problem.w, dtype=float)
    try:
        cov = np.linalg.pinv((J * w[:, None]).T @ J)
    except np.linalg.LinAlgError:
        return None
    return _to_corr(cov)


def draws_correlation(draws_u: np.ndarray | None) -> np.ndarray | None:
    """Correlation matrix of the bootstrap refits (draws in the optimiser's space); None under 3 draws."""
    if draws_u is None:
        return None
    draws_u = np.asarray(draws_u, dtype=float)
    draws_u = draws_u[np.all(np.isfinite(draws_u), axis=1)]
    if len(draws_u) < 3 or draws_u.shape[1] < 2:
        return None
    return _to_corr(np.cov(draws_u, rowvar=False))


def _as_lists(matrix: np.ndarray | None) -> list[list[float | None]] | None:
    if matrix is None:
        return None
    return [[float(x) if math.isfinite(x) else None for x in row] for row in matrix]


def ridge_note(a: str, b: str, r: float) -> str:
    return (f"{a} and {b} trade off (r = {r:+.3f}), a ridge: the data fix a combination of the two better than "
            f"either; judge the fit by the exponents and forecasts, not by {a} and {b} one at a time")


def correlation_record(names: list[str], jacobian: np.ndarray | None, bootstrap: np.ndarray | None) -> dict:
    """The ``diagnostics["correlations"]`` entry of a fit: both matrices (None where not estimated), the
    pairs above ``LISTED`` (strongest first) and a plain-words note per ridge (above ``RIDGE``)."""
    record = {"names": list(names), "space": SPACE, "jacobian": _as_lists(jacobian), "bootstrap": _as_lists(bootstrap)}
    record["pairs"] = pairs_above(record)
    record["ridges"] = [ridge_note(*p["params"], _strongest(p)) for p in record["pairs"] if p["ridge"]]
    return record


def pairs_above(record: dict | None, min_correl: float = LISTED) -> list[dict]:
    """The record's pairs whose strongest |r| exceeds ``min_correl`` (from the matrices, so a smaller
    ``min_correl`` than the record's lists more)."""
    if not record:
        return []
    names = record.get("names") or []
    out = []
    jac, boot = record.get("jacobian"), record.get("bootstrap")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            values = {"jacobian": jac[i][j] if jac else None, "bootstrap": boot[i][j] if boot else None}
            strongest = abs(_strongest(values))
            if strongest > min_correl:
                out.append({"params": [names[i], names[j]], **values, "ridge": strongest > RIDGE})
    out.sort(key=lambda p: -abs(_strongest(p)))
    return out


def _strongest(pair: dict) -> float:
    """The larger in size of a pair's two correlations (0 when neither was estimated)."""
    return max((v for v in (pair["jacobian"], pair["bootstrap"]) if v is not None), key=abs, default=0.0)
