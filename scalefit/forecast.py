"""Forecasts from a fitted (or published) point law: loss at (N, D), compute-optimal allocation, and the
compute-optimal data for a given model size -- each with a percentile interval from the same bootstrap
draws that gave the parameter intervals.

Compute is C = 6 N D. A law may give a closed form ``optimal_params(theta, compute) -> (k, m)`` (Chinchilla
does); otherwise N_opt(C) = argmin_N L(N, C / 6N) is found on a fine log grid with parabolic refinement.
numpy only: ``scalefit predict`` must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DataError, option_error, shown
from .law import Columns, Law
from .stats import require_run_scale, with_run_noise
from .units import check_in_range

INTERVALS = ("confidence", "prediction", "calibrated")
_INPUTS = ("params", "tokens", "compute")

# What a forecast accepts: thousands of times beyond the largest runs so far, yet small enough that
# C = 6ND and every law stay finite (1e308 tokens would overflow and print nonsense without a word).
INPUT_RANGES = {"params": (1.0, 1e16, "parameters"), "tokens": (1.0, 1e24, "tokens"),
                "compute": (6.0, 1e41, "FLOPs"), "unique_tokens": (1.0, 1e24, "tokens")}


def check_input(name: str, value, param: str | None = None) -> float:
    """``value`` as a float once it is a finite number inside ``INPUT_RANGES[name]``; else one DataError
    naming the parameter ``param`` (default ``name``) and the value."""
    lo, hi, unit = INPUT_RANGES[name]
    return check_in_range(value, param or name, lo, hi, unit, accepted_by="a forecast")


@dataclass
class Quantity:
    value: float
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass
class Forecast:
    params: Quantity
    tokens: Quantity
    compute: Quantity
    loss: Quantity
    mode: str  # "given" | "compute-optimal" | "optimal-tokens" | "optimal-params"
    warnings: list[str] = field(default_factory=list)
    interval: str = "confidence"  # what loss.low/high bound: the law's mean, or a new run's observed loss
    calibration: dict | None = None  # interval="calibrated": the model-error half-width added to the loss
    repetition: dict | None = None  # unique_tokens given: epochs and what the repeated data is worth
    allocation: dict | None = None  # N_opt ∝ C^a, D_opt ∝ C^b (scalefit.allocation), for laws that have them

    def to_dict(self) -> dict:
        out = {
            "params": self.params.value,
            "tokens": self.tokens.value,
            "compute": self.compute.value,
            "loss": self.loss.to_dict(),
            "mode": self.mode,
            "interval": self.interval,
            "warnings": list(self.warnings),
        }
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.repetition is not None:
            out["repetition"] = dict(self.repetition)
        if self.allocation is not None:
            out["allocation"] = dict(self.allocation)
        for key in ("params", "tokens", "compute"):
            q = getattr(self, key)
            if q.low is not None:
                out[f"{key}_low"], out[f"{key}_high"] = q.low, q.high
        return out


def _rowwise_loss(law: Law, theta: np.ndarray, params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """L(theta_i; N_i, D_i) for each row i: theta (k, p), params and tokens (k,) -> (k,).

    ``predict`` evaluates every theta at every input, so take the diagonal of small blocks: O(32 k).
    """
    design = law.prepare(Columns(params=params, tokens=tokens))
    k = theta.shape[0]
    out = np.empty(k)
    for s in range(0, k, 32):
        block = law.predict(theta[s : s + 32], {key: v[s : s + 32] for key, v in design.items()})
        out[s : s + 32] = np.diagonal(block)
    return out


def _has_closed_form(law: Law, theta: np.ndarray) -> bool:
    closed = getattr(law, "optimal_params", None)
    return closed is not None and closed(theta[:1], np.array([1e20])) is not None


def optimal_params_rowwise(law: Law, theta: np.ndarray, compute: np.ndarray) -> np.ndarray:
    """N_opt for row i of theta at compute_i: (k, p), (k,) -> (k,)."""
    theta = np.atleast_2d(theta)
    compute = np.broadcast_to(np.asarray(compute, dtype=float), (theta.shape[0],))
    if _has_closed_form(law, theta):
        with np.errstate(all="ignore"):
            return law.optimal_params(theta, compute[:, None])[:, 0]
    # Golden-section search on log N along each row's iso-compute line (unimodal for these laws).
    a = np.full(theta.shape[0], np.log(1e3))
    b = np.log(compute / 6e3)
    g = (np.sqrt(5) - 1) / 2
    x1, x2 = b - g * (b - a), a + g * (b - a)

    def f(x):
        n = np.exp(x)
        with np.errstate(all="ignore"):
            v = _rowwise_loss(law, theta, n, compute / (6 * n))
        return np.where(np.isfinite(v), v, np.inf)

    f1, f2 = f(x1), f(x2)
    for _ in range(80):
        left = f1 < f2  # the minimum lies in [a, x2]: drop (x2, b]; else drop [a, x1)
        b = np.where(left, x2, b)
        a = np.where(left, a, x1)
        new_x1 = np.where(left, b - g * (b - a), x2)
        new_x2 = np.where(left, x1, a + g * (b - a))
        f_new = f(np.where(left, new_x1, new_x2))  # one new evaluation per row and iteration
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
        x1, x2 = new_x1, new_x2
    x = 0.5 * (a + b)
    edge = (x - np.log(1e3) < 1e-3) | (np.log(compute / 6e3) - x < 1e-3)
    return np.where(edge, np.nan, np.exp(x))


def optimal_params(law: Law, theta: np.ndarray, compute: np.ndarray) -> np.ndarray:
    """N_opt(C) for every theta row and every compute value: (k, p), (m,) -> (k, m)."""
    theta = np.atleast_2d(theta)
    compute = np.atleast_1d(np.asarray(compute, dtype=float))
    return np.stack([optimal_params_rowwise(law, theta, np.full(theta.shape[0], c)) for c in compute], axis=1)


def _iso_compute_slope(law: Law, theta: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """dL/dt along N e^t, D e^-t (fixed compute) at t = 0: zero exactly when N is compute-optimal.

    Positive: a larger model at this compute is worse, so N is above the optimum for C = 6ND.
    """
    h = 1e-4
    with np.errstate(all="ignore"):
        up = _rowwise_loss(law, theta, n * np.exp(h), d * np.exp(-h))
        down = _rowwise_loss(law, theta, n * np.exp(-h), d * np.exp(h))
    return up - down


def _bisect_log(sign_fn, lo: np.ndarray, hi: np.ndarray, iters: int = 50) -> np.ndarray:
    """Root of a function increasing-in-sign on [lo, hi] (log space), per row; NaN when no sign change inside."""
    lo_edge, hi_edge = lo.copy(), hi.copy()
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        go_up = sign_fn(mid)
        lo, hi = np.where(go_up, mid, lo), np.where(go_up, hi, mid)
    x = np.exp(0.5 * (lo + hi))
    x[(hi_edge - hi < 1e-6) | (lo - lo_edge < 1e-6)] = np.nan
    return x


def optimal_tokens(law: Law, theta: np.ndarray, params: float) -> np.ndarray:
    """D such that ``params`` is the compute-optimal size for C = 6 N D; (k,)."""
    theta = np.atleast_2d(theta)
    k = theta.shape[0]
    n = np.full(k, float(params))
    # Too little data makes N too large for its compute (slope > 0): raise D.
    return _bisect_log(lambda log_d: _iso_compute_slope(law, theta, n, np.exp(log_d)) > 0,
                       np.full(k, np.log(params * 1e-3)), np.full(k, np.log(params * 1e7)))


def optimal_params_for_tokens(law: Law, theta: np.ndarray, tokens: float) -> np.ndarray:
    """N such that ``tokens`` is the compute-optimal data for C = 6 N D; (k,)."""
    theta = np.atleast_2d(theta)
    k = theta.shape[0]
    d = np.full(k, float(tokens))
    # N below the optimum (slope < 0): raise N.
    return _bisect_log(lambda log_n: _iso_compute_slope(law, theta, np.exp(log_n), d) < 0,
                       np.full(k, np.log(tokens * 1e-7)), np.full(k, np.log(tokens * 1e3)))


def _interval(samples: np.ndarray | None, ci: float, center: float, stretch: float) -> tuple[float | None, float | None]:
    from .stats import percentile_interval

    if samples is None or np.isfinite(samples).sum() < 2:
        return None, None
    lo, hi = percentile_interval(np.asarray(samples), ci, center, stretch)
    return float(lo), float(hi)


def _range_warnings(ranges: dict, params: float, tokens: float) -> list[str]:
    out = []
    for role, value in (("params", params), ("tokens", tokens)):
        if role not in ranges or not np.isfinite(value):
            continue
        lo, hi = ranges[role]
        if value > hi * 1.0000001:
            out.append(f"{role} {value:.3g} is {value / hi:.3g}x beyond the largest fitted ({hi:.3g}): extrapolation")
        elif value < lo / 1.0000001:
            out.append(f"{role} {value:.3g} is {lo / value:.3g}x below the smallest fitted ({lo:.3g})")
    return out


def _implied(name: str, value: float, compute: float, other: str, other_value: float) -> float:
    """The third of (params, tokens, compute) from C = 6ND, inside the range a forecast accepts."""
    lo, hi, unit = INPUT_RANGES[name]
    if not lo <= value <= hi:
        raise DataError(f"compute={shown(compute)} with {other}={shown(other_value)} means {value:.3g} {unit}, "
                        f"outside the range a forecast accepts ({lo:g} to {hi:g} {unit})", options=("compute", other))
    return value


def _honest(q: Quantity) -> Quantity:
    """Never an interval beside a value that is not a finite number, nor a half-finite interval."""
    if not np.isfinite(q.value) or q.low is None or not (np.isfinite(q.low) and np.isfinite(q.high)):
        return Quantity(q.value, None, None)
    return q


class _HeldInputs(Law):
    """``law`` with some inputs held at one value (unique tokens): the (N, D) searches below run on it as
    on any (params, tokens) law."""

    def __init__(self, law: Law, **held: float):
        self.law, self.held = law, held
        for attr in ("name", "kind", "target", "params", "reference", "formula", "citation", "reference_units",
                     "origin"):
            setattr(self, attr, getattr(law, attr))
        self.inputs = tuple(role for role in law.inputs if role not in held)

    def prepare(self, data):
        cols = {role: data.column(role) for role in self.inputs}
        cols.update({role: np.full(len(data), value) for role, value in self.held.items()})
        return self.law.prepare(Columns(source=data.source, **cols))

    def predict(self, theta, design):
        return self.law.predict(theta, design)

    def jacobian(self, theta, design):
        return self.law.jacobian(theta, design)


def _hold_unique_tokens(law: Law, unique_tokens) -> Law:
    """The law to search with: a repeated-data law needs the unique tokens and holds them; others refuse them."""
    takes = "unique_tokens" in law.inputs
    if unique_tokens is None and takes:
        raise DataError(f"law '{law.name}' models repeated data: give unique_tokens, the number of distinct tokens "
                        f"available (e.g. 1e11)", options=("unique_tokens",))
    if unique_tokens is None:
        return law
    if not takes:
        raise DataError(f"law '{law.name}' assumes every training token is new; unique_tokens needs a law of repeated "
                        f"data (data_constrained)", options=("unique_tokens",))
    return _HeldInputs(law, unique_tokens=check_input("unique_tokens", unique_tokens))


def _repetition(law: Law, all_theta, n, d, unique_tokens: float, q, tokens_vary: bool) -> dict:
    """Epochs over the unique data, and the effective tokens and parameters the law credits them with."""
    out = {"unique_tokens": unique_tokens, "epochs": q(d / unique_tokens, tokens_vary).to_dict()}
    effective = getattr(law, "effective", None)
    if effective is not None:
        with np.errstate(all="ignore"):
            rows = [effective(all_theta[i : i + 1], n[i], d[i], unique_tokens) for i in range(len(n))]
        for key in ("tokens", "params"):
            out[f"effective_{key}"] = q(np.array([float(r[key][0, 0]) for r in rows])).to_dict()
    return out


def _no_optimum(law: Law, theta: np.ndarray, mode: str, *, params=None, tokens=None, compute=None) -> str:
    """Why there is no compute-optimal answer: which way the law keeps improving along the search line."""
    t = np.atleast_2d(theta)[:1]

    def loss(n, d):
        with np.errstate(all="ignore"):
            return float(_rowwise_loss(law, t, np.array([n]), np.array([d]))[0])

    if mode == "compute-optimal":
        n_lo, n_hi = 1e3, compute / 6e3
        bigger = loss(n_hi, compute / (6 * n_hi)) < loss(n_lo, compute / (6 * n_lo))
        where = (f"ever larger models on ever less data (up to {n_hi:.3g} params on 1e+03 tokens)" if bigger
                 else "ever smaller models on ever more data (down to 1e+03 params)")
        given = f"{compute:.3g} FLOPs"
        fix = "give params or tokens with compute to forecast a chosen allocation"
    elif mode == "optimal-tokens":
        d_lo, d_hi = params * 1e-3, params * 1e7
        more = _iso_compute_slope(law, t, np.array([params]), np.array([d_hi]))[0] > 0
        where = (f"more data for the same FLOPs (past {d_hi / params:.3g} tokens per parameter)" if more
                 else f"less data for the same FLOPs (below {d_lo / params:.3g} tokens per parameter)")
        given = f"{params:.3g} params"
        fix = "give tokens (or compute) with params to forecast a chosen budget"
    else:
        n_lo, n_hi = tokens * 1e-7, tokens * 1e3
        bigger = _iso_compute_slope(law, t, np.array([n_hi]), np.array([tokens]))[0] < 0
        where = (f"larger models for the same FLOPs (past {n_hi / tokens:.3g} params per token)" if bigger
                 else f"smaller models for the same FLOPs (below {n_lo / tokens:.3g} params per token)")
        given = f"{tokens:.3g} tokens"
        fix = "give params (or compute) with tokens to forecast a chosen model"
    # The option names appear only in ``fix`` (the CLI names them as flags): the rest says FLOPs and data.
    return (f"law '{law.name}' has no compute-optimal allocation for {given} with these parameters: at a fixed "
            f"FLOP budget its predicted loss keeps falling toward {where}, so the optimum is not a finite point "
            f"of the law; {fix}")


def _calibration_span(calibration, ranges) -> tuple[str, float]:
    """(role, largest fitted value) that a calibrated forecast's ratio is taken against; DataError when
    the fit has no calibration record or no fitted range."""
    if not isinstance(calibration, dict):
        raise DataError("interval='calibrated' needs the law's error beyond the fitted budgets, measured on "
                        "the fitted table: calibrate the fit first (scalefit.backtest.calibrate_points)", options=("interval",))
    role = "params" if calibration.get("by") == "params" else "flops"
    span = (ranges or {}).get(role)
    if not span or not (np.isfinite(span[1]) and span[1] > 0):
        raise DataError(f"interval='calibrated' needs the fitted range of {role}; refit", options=("interval",))
    return role, float(span[1])


def _calibrate_loss(q: Quantity, calibration: dict, ranges, params: float, compute: float,
                    ci: float) -> tuple[Quantity, dict]:
    """The loss's prediction interval widened by the model-error half-width at this forecast's ratio."""
    from .stats import model_error_halfwidth, widen

    role, top = _calibration_span(calibration, ranges)
    ratio = (params if role == "params" else compute) / top
    h = model_error_halfwidth(calibration, ratio, ci)
    if q.low is not None and np.isfinite(q.value):
        q = Quantity(q.value, *widen(q.value, q.low, q.high, h))
    folds = calibration.get("folds")
    return q, {"halfwidth_log": h, "ratio": ratio, "by": "params" if role == "params" else "compute",
               "folds": folds if isinstance(folds, int) else None,
               "scope": "loss only: the params/tokens/compute intervals are parameter uncertainty only"}


def forecast(law: Law, theta: np.ndarray, draws: np.ndarray | None = None, *, params: float | None = None,
             tokens: float | None = None, compute: float | None = None, ci: float = 0.95,
             ranges: dict | None = None, interval: str = "confidence",
             residual_scale: float | None = None, stretch: float = 1.0,
             calibration: dict | None = None, unique_tokens: float | None = None) -> Forecast:
    """One forecast from any two of (params, tokens, compute), or one of them with the compute-optimal rule.

    * params + tokens: the loss there.       * compute: the compute-optimal N, D and loss.
    * params: the compute-optimal D for N.   * tokens: the compute-optimal N for D.
    * compute with params or tokens: the other one from C = 6ND.

    ``interval="confidence"`` bounds the law's mean (parameter uncertainty only); ``"prediction"`` bounds
    the loss a new run would *observe* there, adding the fit's run-to-run scatter ``residual_scale``
    (log-normal, from fit.json) to every draw. ``stretch`` is the fit's interval stretch
    (``FitResult.stretch``), applied about each point value as for the parameters.

    ``"calibrated"`` widens the prediction interval of the loss by the law's own error beyond the fitted
    budgets, measured by next-budget backtests when fitting (``calibration``: the fit's
    ``diagnostics["extrapolation_errors"]``, see :func:`scalefit.backtest.calibrate_points`), at this
    forecast's ratio to the largest fitted compute (``ranges``). Only the loss is calibrated: the
    intervals of a compute-optimal N, D or C stay parameter uncertainty only (``Forecast.calibration``
    says so in the JSON).

    ``unique_tokens`` (laws of repeated data, such as ``data_constrained``, which require it): the distinct
    tokens available. Every search then holds it, so ``compute`` alone gives the compute-optimal allocation
    under that data limit, and ``Forecast.repetition`` says how many epochs that is and what the law
    credits the repeats with (effective tokens and parameters).
    """
    if interval not in INTERVALS:
        raise option_error("interval", interval, "use confidence or prediction, or calibrated (a calibrated fit)")
    if not (isinstance(ci, (int, float)) and 0 < ci < 1):
        raise option_error("ci", ci, "the interval level must lie strictly between 0 and 1, e.g. 0.95")
    if interval in ("prediction", "calibrated"):
        require_run_scale(residual_scale)  # before any work
    if interval == "calibrated":
        _calibration_span(calibration, ranges)
    if law.kind != "point" or not {"params", "tokens"} <= set(law.inputs):
        raise DataError(f"law '{law.name}' does not forecast from (params, tokens); "
                        f"use `scalefit schedule predict` for curve laws")
    given = sum(v is not None for v in (params, tokens, compute))
    if given == 0:
        raise DataError("give params, tokens or compute (or two of them)", options=_INPUTS)
    if given == 3:
        raise DataError("give at most two of params, tokens, compute (the third follows from C = 6ND)",
                        options=_INPUTS)
    params, tokens, compute = (None if v is None else check_input(name, v)
                               for name, v in (("params", params), ("tokens", tokens), ("compute", compute)))
    base_law, law = law, _hold_unique_tokens(law, unique_tokens)
    theta = np.asarray(theta, dtype=float)[None]
    all_theta = theta if draws is None else np.vstack([theta, draws])

    def per_row(x):
        return np.full(all_theta.shape[0], float(x))

    if params is not None and tokens is not None:
        n, d, mode = per_row(params), per_row(tokens), "given"
    elif compute is not None and params is not None:
        n, d, mode = per_row(params), per_row(_implied("tokens", compute / (6 * params), compute, "params", params)), "given"
    elif compute is not None and tokens is not None:
        n, d, mode = per_row(_implied("params", compute / (6 * tokens), compute, "tokens", tokens)), per_row(tokens), "given"
    elif compute is not None:
        n = optimal_params(law, all_theta, np.array([compute]))[:, 0]
        d, mode = compute / (6 * n), "compute-optimal"
    elif params is not None:
        d = optimal_tokens(law, all_theta, params)
        n, mode = per_row(params), "optimal-tokens"
    else:
        n, mode = optimal_params_for_tokens(law, all_theta, tokens), "optimal-params"
        d = per_row(tokens)
    searched = {"compute-optimal": n, "optimal-params": n, "optimal-tokens": d}.get(mode)
    if searched is not None and not np.isfinite(searched[0]):
        raise DataError(_no_optimum(law, theta, mode, params=params, tokens=tokens, compute=compute),
                        options=_INPUTS)
    with np.errstate(all="ignore"):
        loss = _rowwise_loss(law, all_theta, n, d)
    if not np.isfinite(loss[0]):
        raise DataError(f"law '{law.name}' gives no finite loss at {n[0]:.3g} params and {d[0]:.3g} tokens "
                        f"(the law overflows there); forecast closer to the fitted range")
    c = 6 * n * d
    warnings = []
    has_draws = draws is not None and len(draws) >= 2
    if searched is not None and has_draws:
        # Draws whose law has no optimum in the searched range lie beyond one end of the interval: an
        # interval that quietly left them out would be too narrow. Up to the share an interval may lose
        # at one end they are left out (and said so); beyond it there is no honest interval.
        lost = int(np.count_nonzero(~np.isfinite(searched[1:])))
        what = {"optimal-tokens": "compute-optimal data"}.get(mode, "compute-optimal allocation")
        if lost > (1 - ci) / 2 * (len(searched) - 1):
            has_draws = False
            warnings.append(f"{lost} of {len(searched) - 1} bootstrap draws have no {what} in the searched range; "
                            f"too many for a {ci:.0%} interval, so none is given")
        elif lost:
            warnings.append(f"{lost} of {len(searched) - 1} bootstrap draws have no {what} in the searched range "
                            f"and were left out of the interval")
    loss_samples = loss[1:] if has_draws else loss[:1]
    if interval in ("prediction", "calibrated"):
        if len(loss_samples) < 2:
            # Without draws only the run-to-run scatter is known: say the interval is too narrow.
            loss_samples = np.full(4000, loss[0])
            warnings.append("no bootstrap draws: the prediction interval has run-to-run noise only, no parameter "
                            "uncertainty (refit with --bootstrap N)")
        loss_samples = with_run_noise(loss_samples, residual_scale)
    if ranges:
        warnings += _range_warnings(ranges, float(n[0]), float(d[0]))
    sample = slice(1, None)

    def q(arr, varies=True):
        lo, hi = _interval(arr[sample], ci, arr[0], stretch) if (has_draws and varies) else (None, None)
        return _honest(Quantity(float(arr[0]), lo, hi))

    loss_q = Quantity(float(loss[0]), *_interval(loss_samples, ci, loss[0], stretch))
    calibrated = None
    if interval == "calibrated":
        loss_q, calibrated = _calibrate_loss(loss_q, calibration, ranges, float(n[0]), float(c[0]), ci)
        if not np.isfinite(calibrated["halfwidth_log"]):
            warnings.append("the calibrated interval is unbounded here: the fit's next-budget backtests have "
                            "fewer than 2 folds, too few to measure how far the law misses beyond the data")
    loss_q = _honest(loss_q)
    out = Forecast(
        params=q(n, mode in ("compute-optimal", "optimal-params")),
        tokens=q(d, mode in ("compute-optimal", "optimal-tokens")),
        compute=q(c, mode in ("optimal-tokens", "optimal-params")),
        loss=loss_q,
        mode=mode,
        interval=interval,
        warnings=warnings,
        calibration=calibrated,
        repetition=None if unique_tokens is None else _repetition(
            base_law, all_theta, n, d, law.held["unique_tokens"], q, mode in ("compute-optimal", "optimal-tokens")),
    )
    from .allocation import allocation_exponents

    # The exponents describe allocation with unlimited unique data: not shown beside a data-limited answer.
    out.allocation = None if unique_tokens is not None else allocation_exponents(base_law, theta[0], draws, ci, stretch)
    from .stats import check_contains

    # An interval far from its own estimate means draws that are not this fit's: refused, not printed.
    for name in ("loss", "params", "tokens", "compute"):
        quantity = getattr(out, name)
        if quantity.low is not None:
            check_contains(quantity.value, quantity.low, quantity.high, f"law '{law.name}': the forecast {name}")
    return out
