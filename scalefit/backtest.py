"""Backtests that rank laws honestly: hold out the largest models, fit on the rest, score the forecast.

Metric (Choshen, Zhang, Andreas 2024, "A Hitchhiker's Guide to Scaling Law Estimation"): absolute
relative error, ARE = mean |y - y_hat| / y over the test points. On checkpoint tables (a run with more
than one row) only a held-out run's checkpoints from 70 % of its training onward are scored, as in
that paper; all checkpoints of the other runs are fitted (optionally only those past ``min_tokens``).

``compare`` runs the same split for several laws and returns one row per law: in-range error (ARE on
the points it was fitted to), held-out error, fitted parameters and wall time.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .data import Dataset
from .errors import DataError
from .law import Law

CHECKPOINT_FRACTION = 0.7  # Hitchhiker's Guide: score checkpoints from 70 % of training onward
_SPEC = re.compile(r"^\s*largest\s*(?::\s*(\d+)\s*)?$")


# ---------------------------------------------------------------------------- metric
def are(y, y_hat) -> float:
    """Absolute relative error, mean |y - y_hat| / y (Hitchhiker's Guide ``mean_normalized_distance``)."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    if y.shape != y_hat.shape:
        raise ValueError(f"are: shapes differ, {y.shape} vs {y_hat.shape}")
    if y.size == 0:
        return float("nan")
    return float(np.mean(np.abs(y - y_hat) / np.abs(y)))


# ---------------------------------------------------------------------------- splits
def parse_holdout(spec: str) -> int:
    """``largest`` -> 1, ``largest:K`` -> K; anything else is a DataError."""
    m = _SPEC.match(str(spec))
    if not m or (m.group(1) is not None and int(m.group(1)) < 1):
        raise DataError(f"--holdout '{spec}': expected 'largest' or 'largest:K' with K >= 1, e.g. largest:2")
    return int(m.group(1) or 1)


def check_min_tokens(min_tokens: float | None) -> None:
    if min_tokens is not None and not (isinstance(min_tokens, (int, float)) and math.isfinite(min_tokens)
                                       and min_tokens > 0):
        raise DataError(f"--min-tokens {min_tokens}: must be a positive number of tokens")


def _check_fit_options(fit_fn: Callable | None, fit_kw: dict) -> None:
    """The core fitter's options are refused before any split is made or law fitted."""
    if fit_fn is None:
        from .fit import check_options

        known = ("loss", "delta", "n_bootstrap", "ci", "seed", "jobs", "backend", "interval")
        check_options(**{k: v for k, v in fit_kw.items() if k in known})


@dataclass
class Split:
    train: np.ndarray  # boolean row masks over the dataset
    test: np.ndarray
    held_out: list[str] = field(default_factory=list)  # what was held out, for reports
    checkpoints: bool = False


def holdout_split(
    data: Dataset,
    holdout: str | int = "largest",
    by: str = "params",
    checkpoint_fraction: float = CHECKPOINT_FRACTION,
    min_tokens: float | None = None,
) -> Split:
    """Rows to fit and rows to score when the K largest models are held out.

    by="params": the K largest distinct parameter counts (every run of those sizes) are held out.
    by="compute": the K runs with the largest training compute (a run's compute is its largest
    ``flops``, i.e. its last checkpoint) are held out.
    """
    k = parse_holdout(holdout) if isinstance(holdout, str) else int(holdout)
    if by not in ("params", "compute"):
        raise DataError(f"--holdout-by '{by}': use 'params' or 'compute'")
    check_min_tokens(min_tokens)
    runs = data.run_codes
    n_runs = runs.max() + 1
    checkpoints = np.bincount(runs).max() > 1
    if by == "params":
        sizes = data.column("params")
        distinct = np.unique(sizes)
        if distinct.size <= k:
            raise DataError(
                f"{data.source}: --holdout largest:{k} leaves no model size to fit ({distinct.size} distinct "
                f"params values); hold out fewer"
            )
        cut = distinct[-k]
        test_runs = np.zeros(n_runs, dtype=bool)
        test_runs[np.unique(runs[sizes >= cut])] = True
        held = [f"params >= {cut:.3g}"]
    else:
        if not data.has("flops"):
            raise DataError(f"{data.source}: --holdout-by compute needs a flops column (or params and tokens)")
        run_compute = np.full(n_runs, -np.inf)
        np.maximum.at(run_compute, runs, data.column("flops"))
        if n_runs <= k:
            raise DataError(f"{data.source}: --holdout largest:{k} leaves no run to fit ({n_runs} runs)")
        cut = np.sort(run_compute)[-k]
        test_runs = run_compute >= cut
        held = [f"compute >= {cut:.3g} FLOPs"]
    test_rows = test_runs[runs]
    train = ~test_rows
    test = test_rows.copy()
    if checkpoints:
        tokens = data.column("tokens")
        run_max = np.zeros(n_runs)
        np.maximum.at(run_max, runs, tokens)
        test &= tokens >= checkpoint_fraction * run_max[runs]
        if min_tokens is not None:
            train &= tokens >= min_tokens
    if not train.any():
        raise DataError(f"{data.source}: the holdout split leaves no rows to fit")
    if not test.any():
        raise DataError(f"{data.source}: the holdout split leaves no rows to score")
    return Split(train, test, held, bool(checkpoints))


# ---------------------------------------------------------------------------- fitting
def fit_law(law: Law, data: Dataset, **kw):
    """The core fitter (multi-start, summed Huber of log residuals); a seam for tests and plugins."""
    from .fit import fit

    return fit(law, data, **kw)


def score_split(law: Law, theta, data: Dataset, split: Split) -> dict:
    """In-range and held-out ARE of a fitted parameter vector on a split of ``data``."""
    theta = np.asarray(theta, dtype=float)[None]
    train, test = data.subset(split.train), data.subset(split.test)
    fitted = law.predict(theta, law.prepare(train))[0]
    forecast = law.predict(theta, law.prepare(test))[0]
    return {
        "in_range_are": are(train.column(law.target), fitted),
        "holdout_are": are(test.column(law.target), forecast),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "held_out": split.held_out,
        "checkpoints": split.checkpoints,
    }


def polish(law: Law, data: Dataset, start, *, delta: float = 1e-3, max_nfev: int = 60) -> np.ndarray:
    """One warm-started bounded robust least-squares solve from ``start`` (p,): bootstrap replicates
    whose optimum sits next to the full-data one need no multi-start. Returns theta (p,)."""
    from scipy.optimize import least_squares

    design, log_y = law.prepare(data), np.log(data.column(law.target))
    lo, hi = law.bounds_array()
    is_log = np.array([law.params[n].log for n in law.param_names])
    lo_z, hi_z = np.where(is_log, np.log(np.maximum(lo, 1e-300)), lo), np.where(is_log, np.log(hi), hi)
    to_theta = lambda z: np.where(is_log, np.exp(z), z)  # noqa: E731

    def resid(z):
        with np.errstate(all="ignore"):
            r = np.log(law.predict(to_theta(z)[None], design)[0]) - log_y
        return np.where(np.isfinite(r), r, 1e3)

    def jac(z):
        theta = to_theta(z)
        with np.errstate(all="ignore"):
            j = law.jacobian(theta[None], design)[0] / law.predict(theta[None], design)[0][:, None]
        return np.where(np.isfinite(j), j * np.where(is_log, theta, 1.0), 0.0)

    start = np.asarray(start, dtype=float)
    z0 = np.where(is_log, np.log(np.maximum(start, 1e-300)), start)
    span = hi_z - lo_z
    z0 = np.clip(z0, lo_z + 1e-9 * span, hi_z - 1e-9 * span)
    has_jac = law.jacobian(start[None], design) is not None
    sol = least_squares(resid, z0, jac=jac if has_jac else "2-point", bounds=(lo_z, hi_z), loss="huber",
                        f_scale=delta, x_scale="jac", max_nfev=max_nfev)
    return to_theta(sol.x)


# ---------------------------------------------------------------------------- backtests
def backtest(
    law: Law,
    data: Dataset,
    holdout: str | int = "largest",
    by: str = "params",
    *,
    min_tokens: float | None = None,
    fit_fn: Callable | None = None,
    **fit_kw,
) -> dict:
    """Fit ``law`` without the largest models and score it: in-range and held-out ARE."""
    _check_fit_options(fit_fn, fit_kw)
    split = holdout_split(data, holdout, by, min_tokens=min_tokens)
    train = data.subset(split.train)
    law.check_identifiable(train)
    t0 = time.perf_counter()
    res = (fit_fn or fit_law)(law, train, **fit_kw)
    seconds = time.perf_counter() - t0
    theta = np.asarray(res.theta, dtype=float)
    return {
        "law": law.name,
        **score_split(law, theta, data, split),
        "params": dict(zip(law.param_names, map(float, theta))),
        "seconds": seconds,
    }


def compare(
    laws: Sequence[Law],
    data: Dataset,
    holdout: str | int = "largest",
    by: str = "params",
    *,
    min_tokens: float | None = None,
    progress: Callable[[str], None] | None = None,
    fit_fn: Callable | None = None,
    **fit_kw,
) -> list[dict]:
    """One backtest row per law on the same split (laws must share the data's columns)."""
    _check_fit_options(fit_fn, fit_kw)
    rows = []
    for law in laws:
        if progress is not None:
            progress(law.name)
        rows.append(backtest(law, data, holdout, by, min_tokens=min_tokens, fit_fn=fit_fn, **fit_kw))
    return rows


def required_roles(laws: Iterable[Law]) -> list[str]:
    roles: list[str] = []
    for law in laws:
        roles.extend([*law.inputs, law.target])
    return list(dict.fromkeys(roles))
