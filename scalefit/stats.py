"""Interval statistics: every interval scalefit prints comes from these functions.

A bootstrap over runs gives draws of the parameters; every derived number (a forecast, N_opt, a schedule's
final loss) is evaluated at each draw, and the interval is the central percentile of those values,
stretched about the estimate by a t factor when the runs are few (:func:`stretch_factor`). A *prediction*
interval adds one new run's scatter to each draw (:func:`with_run_noise`). :func:`noise_level` is the
objective's own unit of uncertainty, against which the solvers judge when a step no longer matters.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .errors import DataError


def percentile_interval(samples: np.ndarray, ci: float, center=None, stretch: float = 1.0):
    """Central percentile interval over axis 0 (non-finite draws ignored), stretched about ``center``.

    The stretch (see :func:`stretch_factor`) scales each end's distance from the estimate,
    in log space where everything is positive; the result always contains the plain interval.
    """
    q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
    samples = np.where(np.isfinite(samples), samples, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN interval, said elsewhere
        lo, hi = np.nanpercentile(samples, q, axis=0)
    if center is None or stretch == 1.0:
        return lo, hi
    c = np.broadcast_to(np.asarray(center, dtype=float), np.shape(lo))
    with np.errstate(all="ignore"):
        pos = (c > 0) & (lo > 0) & (hi > 0)
        lo_s = np.where(pos, c * (lo / c) ** stretch, c - stretch * (c - lo))
        hi_s = np.where(pos, c * (hi / c) ** stretch, c + stretch * (hi - c))
    return np.fmin(lo, lo_s), np.fmax(hi, hi_s)


def check_contains(value, lo, hi, where: str) -> None:
    """An interval must hold its own estimate. Far outside (by more than the interval's width) means the
    draws are not this fit's: an error. Just outside can be honest -- a percentile interval of a parameter
    at a bound -- so it is said in a warning rather than printed silently."""
    value, lo, hi = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (value, lo, hi))
    with np.errstate(invalid="ignore"):
        miss = np.fmax(lo - value, value - hi)
        tol = 1e-9 * np.maximum(1.0, np.abs(value))
        far = np.isfinite(value) & (miss > np.fmax(hi - lo, 0) + tol)
        near = np.isfinite(value) & (miss > tol) & ~far
    if np.any(far):
        i = int(np.argmax(far))
        raise DataError(f"{where}: the interval [{lo[i]:.6g}, {hi[i]:.6g}] does not contain its estimate "
                        f"{value[i]:.6g}: the bootstrap draws do not belong to this fit; refit")
    if np.any(near):
        i = int(np.argmax(near))
        warnings.warn(f"{where}: the estimate {value[i]:.6g} lies outside its own interval [{lo[i]:.6g}, "
                      f"{hi[i]:.6g}] (a parameter at a bound skews the bootstrap); read the interval with care",
                      stacklevel=3)


def checked_interval(samples: np.ndarray, ci: float, center, stretch: float, where: str):
    """:func:`percentile_interval` about ``center``, then :func:`check_contains`: how a forecast's interval
    is made wherever one is printed."""
    lo, hi = percentile_interval(samples, ci, center, stretch)
    check_contains(center, lo, hi, where)
    return lo, hi


def residual_scale(r: np.ndarray, n_free: int) -> float:
    """1.4826 MAD of the log residuals times sqrt(n/(n-q)): a noise scale that outliers do not inflate."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    if r.size <= n_free:
        return float("nan")
    mad = 1.4826 * _median(np.abs(r - _median(r)))
    return mad * math.sqrt(r.size / (r.size - n_free))


def noise_level(loss, r: np.ndarray, w: np.ndarray, n_free: int) -> float:
    """The objective rise that a one-standard-error move of a parameter costs at an optimum whose log
    residuals are ``r`` (row weights ``w``, robust ``loss`` of :mod:`scalefit.solver`): half the robust
    residual variance sum(w psi^2) / (n - q) / (share of weight inside the Huber width) (sigma^2 / 2 for
    least squares). Correlated residuals (loss curves) make the true value larger. A step gaining a small
    fraction of it moves the answer by a small fraction of its uncertainty: bootstrap draws and the
    searches of thinned curve tables stop there."""
    r = np.nan_to_num(r)
    inside = np.abs(r) <= loss.width
    share = max(float(np.sum(w * inside) / np.sum(w)), 1.0 / r.size)
    return 0.5 * float(np.sum(w * loss.psi(r) ** 2)) / max(r.size - n_free, 1) / share


def _median(x: np.ndarray) -> float:
    """np.median of finite values, by a partition (np.median imports numpy.ma, 15-30 ms of a point
    fit's whole process)."""
    n = x.size
    part = np.partition(x, [(n - 1) // 2, n // 2])
    return 0.5 * float(part[(n - 1) // 2] + part[n // 2])


def stretch_factor(n_runs: int, n_free: int, ci: float) -> float:
    """How much a bootstrap-over-runs interval is stretched about the estimate: t_{n-q} / z.

    The bootstrap sees the scatter of n runs as if it were known exactly; with q parameters fitted
    from them a t tail with n - q degrees of freedom is the honest one (1.06 for 25 runs and 5
    parameters, 1.14 for 15, 1.0 for many runs).

    Measured (benchmarks/calibration.py, Chinchilla truth, 200 simulated sweeps per design): with 5 sizes
    x 5 token budgets the reported 95 % intervals cover the true parameters and a 10x extrapolated
    forecast 95.5-99.0 % of the time (the plain percentile interval is already conservative there); with
    only 3 sizes at 2 % noise the plain interval covers 91.5 % and the stretched one 94.0-97.0 %.
    """
    p = 0.5 + ci / 2
    return float(_t_quantile(p, max(n_runs - n_free, 1)) / normal_quantile(p))


def normal_quantile(p: float) -> float:
    """The standard normal quantile (``statistics`` imported here: 3-5 ms that ``predict`` need not pay)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _t_quantile(p: float, df: int) -> float:
    """Student-t quantile for an integer number of degrees of freedom (every t factor here counts runs,
    curves or folds), without scipy: importing scipy.special cost a whole fit ~0.2 s of start-up.

    Newton's method on the exact CDF (the finite series of Abramowitz & Stegun 26.7.3-4 in
    theta = atan(t / sqrt(df))) from the Cornish-Fisher start (26.7.5); beyond _T_SERIES_MAX degrees of
    freedom the four-term Cornish-Fisher expansion alone, whose error is below 1e-12 there."""
    df = int(df)
    if df < 1 or not 0.0 < p < 1.0:
        raise ValueError(f"t quantile needs df >= 1 and 0 < p < 1 (df={df}, p={p})")
    if p < 0.5:
        return -_t_quantile(1.0 - p, df)
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    z = normal_quantile(p)
    t = z + sum(g(z) / df ** (i + 1) for i, g in enumerate(_CORNISH_FISHER))
    if df > _T_SERIES_MAX:
        return t
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    lo, hi = z, max(t, z) * 4.0 + 10.0  # the quantile lies above the normal one
    while _t_cdf(hi, df) < p and hi < 1e300:  # far tails of few degrees of freedom lie beyond that
        lo, hi = hi, hi * 4.0
    for _ in range(100):
        if not lo <= t <= hi:
            t = 0.5 * (lo + hi)  # Newton left the bracket: bisect instead
        excess = _t_cdf(t, df) - p
        if excess > 0:
            hi = t
        else:
            lo = t
        step = excess / math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))
        t -= step
        if abs(step) <= 1e-15 * max(1.0, abs(t)) or hi - lo <= 1e-15 * hi:
            break
    return t


_T_SERIES_MAX = 1000
_CORNISH_FISHER = (  # A&S 26.7.5: t = z + g1/df + g2/df^2 + g3/df^3 + g4/df^4
    lambda z: (z**3 + z) / 4,
    lambda z: (5 * z**5 + 16 * z**3 + 3 * z) / 96,
    lambda z: (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
    lambda z: (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
)


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for t >= 0 and an integer df >= 2 (A&S 26.7.3-4: a sum of df / 2 terms)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 c2 + 2.4/(3.5) c2^2 + ...))
        term, total = 1.0, 1.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        a = 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    else:  # even: sin (1 + 1/2 c2 + 1.3/(2.4) c2^2 + ...)
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        a = s * total
    return 0.5 + 0.5 * a


def require_run_scale(sigma) -> float:
    """The run-to-run scatter a prediction interval adds; DataError when the fit has none (too few runs)."""
    if not (isinstance(sigma, (int, float, np.floating)) and math.isfinite(sigma)):
        raise DataError("a prediction interval needs the fit's residual scale; refit with this scalefit version "
                        "(fit.json lacks diagnostics.residual_scale_log)")
    return float(sigma)


def with_run_noise(samples: np.ndarray, sigma: float) -> np.ndarray:
    """Loss draws of the law's mean -> draws of one new run's observed loss (log-normal scatter ``sigma``).

    Seeded: the same fit gives the same prediction interval every time. A fit too small to estimate its
    scatter (``sigma`` None or NaN) cannot give a prediction interval: DataError.
    """
    require_run_scale(sigma)
    noise = np.random.default_rng(0).normal(0.0, sigma, size=np.shape(samples)[0])
    return np.asarray(samples) * np.exp(noise).reshape((-1,) + (1,) * (np.ndim(samples) - 1))


# ------------------------------------------------------------------------------------------------ curve laws
def _t_prediction(n: int, ci: float) -> float:
    """Student-t factor of a prediction interval for one new value from ``n`` observed ones whose mean is
    estimated too (df n - 1): t_{n-1} * sqrt(1 + 1/n). inf below 2 values: nothing to estimate a scale from."""
    if n < 2:
        return math.inf
    return _t_quantile(0.5 + ci / 2, n - 1) * math.sqrt(1.0 + 1.0 / n)


def _t_zero_mean(n: int, ci: float) -> float:
    """Student-t factor for one new error from the root mean square of ``n`` observed errors of mean zero
    (a forecast is not bias-corrected, so the scale is their RMS and has n degrees of freedom): t_n.
    inf below 2 errors."""
    if n < 2:
        return math.inf
    return _t_quantile(0.5 + ci / 2, n)


def run_scatter_halfwidth(run_offsets, ci: float) -> float:
    """Half-width (log loss) that one new run's offset from the law adds: the per-run mean residuals'
    standard deviation times t_{runs-1} sqrt(1 + 1/runs). NaN with fewer than 2 runs."""
    x = np.asarray([v for v in (run_offsets or []) if v is not None and math.isfinite(v)], dtype=float)
    if x.size < 2:
        return float("nan")
    return _t_prediction(x.size, ci) * float(np.std(x, ddof=1))


def model_error_halfwidth(record: dict, ratio: float, ci: float) -> float:
    """Half-width (log loss) of the law's own extrapolation error for a forecast ``ratio`` times the
    longest fitted horizon, from the backtest errors in ``record``
    (:func:`scalefit.curve_backtest.extrapolation_errors`).

    Two parts in quadrature, each a t bound on one new error from its folds' root mean square
    (:func:`_t_zero_mean`): a new schedule misses like the leave-one-curve-out forecasts did, and a
    longer horizon adds the error per unit log-horizon that the half-length fits made, times log(ratio)
    (for ratio > 1). inf when a needed part has fewer than 2 folds: say so rather than pretend. A record
    without a "shape" key (:func:`scalefit.backtest.next_budget_errors`) has no shape part.
    """
    def rms(values):
        return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")

    shape = [e for e, _ in record.get("shape") or []]
    horizon = [e / math.log(r) for e, r in record.get("horizon") or [] if r > 1.0]
    h_shape = _t_zero_mean(len(shape), ci) * rms(shape) if shape else math.inf
    if "shape" not in record:  # a point law's record (next-budget backtests): no new-schedule part
        h_shape = 0.0
    h_hor = 0.0
    if ratio > 1.0:
        h_hor = _t_zero_mean(len(horizon), ci) * rms(horizon) * math.log(ratio) if horizon else math.inf
    return float(math.hypot(h_shape, h_hor))


def widen(center: float, lo: float, hi: float, halfwidth: float) -> tuple[float, float]:
    """The interval [lo, hi] about ``center`` widened by an independent error of ``halfwidth`` (log
    units): each side's log distance to the center is added in quadrature."""
    if not math.isfinite(halfwidth):
        return 0.0, math.inf
    dlo = math.log(center / lo) if lo > 0 else math.inf
    dhi = math.log(hi / center) if hi > 0 else math.inf
    return center * math.exp(-math.hypot(dlo, halfwidth)), center * math.exp(math.hypot(dhi, halfwidth))
