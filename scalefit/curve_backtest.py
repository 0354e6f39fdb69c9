"""Backtests of loss-curve laws, and the extrapolation error they measure.

A practitioner checks a curve law the way it will be used: fit without something, forecast it.

* ``loco``: leave one curve out, refit on the others, forecast the held-out curve from its LR schedule
  (a new schedule shape, maybe a longer one); ``run:NAME[,NAME]`` holds out the named curves together.
* ``horizon:F``: fit every curve up to the fraction F of its length, forecast the rest (the long run
  from short ones).

Each held-out curve is scored by the relative error of its final loss (observed: the mean of its last
``FINAL_POINTS`` logged points; predicted: the law at the same steps) and by R² and MAE over its
held-out points; with intervals on, by whether the fold's interval covered the observed final loss.

:func:`extrapolation_errors` runs ``loco`` and ``horizon:0.5`` on the fitted table and keeps the
log errors with their extrapolation ratios; :func:`scalefit.stats.model_error_halfwidth` turns them into
the model-error part of a *calibrated* prediction interval (a conformal-style calibration on the
user's own curves), which the bootstrap cannot see: on the official multi-power split the law's
forecasts of new schedules miss by 0.2-1 %, 10x its in-sample residuals.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .data import Dataset
from .errors import DataError, FitError
from .law import CurveLaw

FINAL_POINTS = 3  # the observed final loss: mean of a curve's last 3 logged points (training loss is noisy)
CALIBRATION_HORIZON = 0.5  # the horizon fold of the calibration: fit the first half of every curve
CALIBRATION_CURVES = 10  # at most this many curves are left out in turn (bounds the refits of a big table)
_SPEC = re.compile(r"^\s*(loco|run:(?P<runs>.+)|horizon:(?P<frac>[0-9.eE+-]+))\s*$")


@dataclass
class CurveFold:
    name: str  # "loco:cosine_24000", "run:a,b", "horizon:0.5"
    kind: str  # "run" (whole curves held out) or "horizon" (the tail of every curve held out)
    train: np.ndarray  # row mask of the fitted points
    runs: list[str]  # curves scored


@dataclass
class HeldOutCurve:
    fold: str
    run: str
    observed_final: float
    predicted_final: float
    rel_error: float  # predicted / observed - 1
    ratio: float  # last scored step / longest fitted step (>1: a longer horizon than any fitted curve)
    r2: float  # over the held-out points
    mae: float
    n_points: int
    low: float | None = None
    high: float | None = None
    covered: bool | None = None


@dataclass
class CurveBacktest:
    holdout: str
    curves: list[HeldOutCurve]
    seconds: float
    folds: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def mean_abs_rel_error(self) -> float:
        return float(np.mean([abs(c.rel_error) for c in self.curves])) if self.curves else float("nan")

    @property
    def coverage(self) -> tuple[int, int] | None:
        judged = [c.covered for c in self.curves if c.covered is not None]
        return (sum(judged), len(judged)) if judged else None

    def to_dict(self) -> dict:
        cov = self.coverage
        return {"holdout": self.holdout, "folds": self.folds, "seconds": self.seconds,
                "mean_abs_rel_error": self.mean_abs_rel_error,
                "coverage": None if cov is None else {"covered": cov[0], "of": cov[1]},
                "curves": [asdict(c) for c in self.curves], "notes": list(self.notes)}


# ------------------------------------------------------------------------------------------------ splits
def parse_curve_holdout(spec: str) -> tuple[str, object]:
    """``loco`` | ``run:NAME[,NAME...]`` | ``horizon:F`` (0 < F < 1) -> (kind, argument); else DataError."""
    m = _SPEC.match(str(spec))
    if m is None:
        raise DataError(f"holdout={spec!r}: curve tables take 'loco', 'run:NAME[,NAME]' or 'horizon:F' "
                        f"with 0 < F < 1, e.g. horizon:0.5", options=('holdout',))
    if m.group("runs") is not None:
        names = [n.strip() for n in m.group("runs").split(",") if n.strip()]
        if not names:
            raise DataError(f"holdout={spec!r}: name at least one run, e.g. run:cosine_24000", options=('holdout',))
        return "run", names
    if m.group("frac") is not None:
        try:
            frac = float(m.group("frac"))
        except ValueError:
            frac = float("nan")
        if not (0 < frac < 1):
            raise DataError(f"holdout={spec!r}: the fitted fraction of every curve must lie in (0, 1), e.g. 0.5", options=('holdout',))
        return "horizon", frac
    return "loco", None


def curve_folds(data: Dataset, spec: str) -> list[CurveFold]:
    """The folds that ``spec`` means on ``data`` (a curve table)."""
    kind, arg = parse_curve_holdout(spec)
    runs = data.run_names
    names = list(dict.fromkeys(map(str, runs)))
    if kind == "horizon":
        steps = data.column("step")
        train = np.zeros(len(data), dtype=bool)
        for name in names:
            m = runs == name
            train |= m & (steps <= arg * steps[m].max())
        return [CurveFold(f"horizon:{arg:g}", "horizon", train, names)]
    if len(names) < 2:
        raise DataError(f"{data.source}: holdout={spec!r} needs at least 2 curves to fit on the rest; "
                        f"the table has {len(names)}", options=('holdout',))
    if kind == "run":
        missing = [n for n in arg if n not in names]
        if missing:
            raise DataError(f"{data.source}: holdout run '{missing[0]}' not found; runs are: {', '.join(names[:10])}")
        if len(set(arg)) == len(names):
            raise DataError(f"{data.source}: holdout={spec!r} holds out every curve; keep at least one to fit", options=('holdout',))
        return [CurveFold("run:" + ",".join(arg), "run", ~np.isin(runs, arg), list(arg))]
    return [CurveFold(f"loco:{n}", "run", runs != n, [n]) for n in names]


# ------------------------------------------------------------------------------------------------ scoring
def _final_steps(steps: np.ndarray) -> np.ndarray:
    return np.sort(steps)[-FINAL_POINTS:]


def score_curve(law: CurveLaw, theta: np.ndarray, data: Dataset, run: str, fold: CurveFold, fitted_steps: float,
                draws: np.ndarray | None = None, halfwidth: Callable[[float], float] | None = None,
                ci: float = 0.95) -> HeldOutCurve:
    """One held-out curve: final-loss error, R²/MAE over its held-out points, and interval coverage.

    ``draws`` give the fold's bootstrap interval; ``halfwidth(ratio)`` (log units) widens it for model
    error (:func:`scalefit.stats.widen`)."""
    from .stats import percentile_interval, widen

    m = data.run_names == run
    steps = data.column("step")[m].astype(int)
    y = data.column(law.target)[m]
    held = ~fold.train[m]
    eta = data.lr[run]
    last = _final_steps(steps)
    observed = float(np.mean(y[np.isin(steps, last)]))
    order = np.unique(np.concatenate([steps[held], last]))
    curve = law.curve(np.asarray(theta, float)[None], eta, order)[0]
    at = dict(zip(order.tolist(), curve))
    predicted = float(np.mean([at[int(s)] for s in last]))
    yh, ph = y[held], np.array([at[int(s)] for s in steps[held]])
    ss = float(np.sum((yh - yh.mean()) ** 2))
    r2 = 1.0 - float(np.sum((yh - ph) ** 2)) / ss if ss > 0 else float("nan")
    ratio = float(last[-1] / fitted_steps) if fitted_steps > 0 else float("inf")
    out = HeldOutCurve(fold.name, run, observed, predicted, predicted / observed - 1.0, ratio, r2,
                       float(np.mean(np.abs(yh - ph))) if yh.size else float("nan"), int(yh.size))
    if draws is not None and len(draws) >= 2:
        with np.errstate(all="ignore"):
            samples = law.curve(np.asarray(draws, float), eta, last).mean(axis=1)
        lo, hi = percentile_interval(samples, ci, predicted)
        if halfwidth is not None:
            lo, hi = widen(predicted, lo, hi, halfwidth(ratio))
        out.low, out.high = float(lo), float(hi)
        out.covered = bool(lo <= observed <= hi)
    return out


def curve_backtest(law: CurveLaw, data: Dataset, holdout: str = "loco", *,
                   progress: Callable[[int, int], None] | None = None,
                   calibrated: bool = False, **fit_kw) -> CurveBacktest:
    """Fit ``law`` on each fold of ``holdout`` and score the held-out curves (see the module docstring).

    ``fit_kw`` go to :func:`scalefit.fit.fit` (``n_bootstrap`` > 0 gives each fold an interval and the
    backtest its coverage). ``calibrated``: widen each fold's interval by the model error measured, by
    the same backtests, on that fold's own training curves (slow: a calibration per fold; this is how
    the calibrated interval's coverage is measured honestly)."""
    from .fit import fit
    from .schedule import curve_params

    if not isinstance(law, CurveLaw):
        raise DataError(f"law '{law.name}' is not a curve law; holdout={holdout!r} backtests loss curves", options=('holdout',))
    folds = curve_folds(data, holdout)
    t0 = time.perf_counter()
    ci = fit_kw.get("ci", 0.95)
    curves, notes = [], []
    for i, fold in enumerate(folds):
        train = data.subset(fold.train)
        res = fit(law, train, identify=False, **fit_kw)
        halfwidth = None
        if calibrated and res.draws is not None:
            # The fold's own calibrated interval, made exactly as schedule predict makes it.
            params = curve_params(fit=calibrate(res, train))

            def halfwidth(ratio, params=params):
                return params.halfwidth("calibrated", ratio * params.fitted_steps)
            notes.extend(f"{fold.name}: {n}" for n in res.diagnostics["extrapolation_errors"].get("notes", []))
        fitted = float(train.column("step").max())
        for run in fold.runs:
            curves.append(score_curve(law, res.theta, data, run, fold, fitted, res.draws, halfwidth, ci))
        if progress is not None:
            progress(i + 1, len(folds))
    return CurveBacktest(holdout, curves, time.perf_counter() - t0, len(folds), notes)


# ------------------------------------------------------------------------------------------------ calibration
def extrapolation_errors(law: CurveLaw, data: Dataset, *, progress: Callable[[int, int], None] | None = None,
                         **fit_kw) -> dict:
    """How far the law's forecasts miss one step beyond this table: the log errors (log predicted - log
    observed final loss) of ``loco`` (a new schedule; at most ``CALIBRATION_CURVES`` curves, evenly
    spread, are left out) and ``horizon:0.5`` (twice the fitted horizon),
    each with its extrapolation ratio. Stored with the fit; :func:`scalefit.stats.model_error_halfwidth`
    reads it. Fits without a bootstrap (only point forecasts are scored)."""
    from .fit import fit

    fit_kw = {k: v for k, v in fit_kw.items() if k not in ("n_bootstrap", "progress")}
    names = list(dict.fromkeys(map(str, data.run_names)))
    folds = curve_folds(data, "loco") if len(names) >= 2 else []
    if len(folds) > CALIBRATION_CURVES:  # many curves: leave out an evenly spread, fixed subset of them
        folds = [folds[i] for i in np.linspace(0, len(folds) - 1, CALIBRATION_CURVES).round().astype(int)]
    folds += curve_folds(data, f"horizon:{CALIBRATION_HORIZON:g}")
    shape, horizon, notes = [], [], []
    for i, fold in enumerate(folds):
        train = data.subset(fold.train)
        fitted = float(train.column("step").max())
        try:
            theta = fit(law, train, identify=False, **fit_kw).theta
        except (DataError, FitError) as exc:  # e.g. too few points left in a short curve: that fold is skipped, and said
            notes.append(f"fold {fold.name} skipped: {exc}")
            continue
        for run in fold.runs:
            c = score_curve(law, theta, data, run, fold, fitted)
            e = math.log1p(c.rel_error)
            if fold.kind == "horizon":
                # the run's own fitted horizon, not the longest curve's: this fold extrapolates each curve 2x
                m = (data.run_names == run) & fold.train
                own = float(data.column("step")[m].max())
                horizon.append([e, float(c.ratio * fitted / own)])
            else:
                shape.append([e, c.ratio])
        if progress is not None:
            progress(i + 1, len(folds))
    return {"method": "loco+horizon:0.5", "shape": shape, "horizon": horizon, "notes": notes}


def calibrate(result, data: Dataset, *, progress: Callable[[int, int], None] | None = None):
    """Measure the fitted curve law's extrapolation error on its own table (:func:`extrapolation_errors`,
    with the fit's settings) and keep it in ``result.diagnostics["extrapolation_errors"]``, where the
    calibrated intervals of ``scalefit schedule predict|compare`` read it (saved with the fit). Returns
    ``result``. A curve law only; one refit per curve plus one."""
    if not isinstance(result.law, CurveLaw):
        raise DataError(f"law '{result.law.name}' is not a curve law; calibrate=True backtests loss curves", options=('calibrate',))
    s = result.settings
    record = extrapolation_errors(result.law, data, loss=s.get("loss", "huber"), delta=s.get("delta", 1e-3),
                                  fixed=s.get("fixed") or None, ties=s.get("ties") or None, progress=progress)
    result.diagnostics["extrapolation_errors"] = record
    if len(record["shape"]) < 2:
        result.diagnostics.setdefault("warnings", []).append(
            "calibration: fewer than 2 curves to leave out, so the extrapolation error to a new schedule "
            "cannot be measured; the calibrated interval is unbounded")
    return result


def compare_curves(laws, data: Dataset, holdout: str = "loco", *,
                   progress: Callable[[str], None] | None = None, **fit_kw) -> list[dict]:
    """One row per curve law on the same folds of ``holdout``: mean |error| of the held-out final losses,
    mean R² and MAE over the held-out points, interval coverage (with ``n_bootstrap``), and the time."""
    rows = []
    curve_folds(data, holdout)  # a bad spec fails before any fit
    for law in laws:
        if progress is not None:
            progress(law.name)
        bt = curve_backtest(law, data, holdout, **fit_kw)
        cov = bt.coverage
        rows.append({"law": law.name, "holdout": holdout, "folds": bt.folds,
                     "mean_abs_rel_error": bt.mean_abs_rel_error,
                     "mean_r2": float(np.nanmean([c.r2 for c in bt.curves])),
                     "mean_mae": float(np.nanmean([c.mae for c in bt.curves])),
                     "covered": None if cov is None else cov[0], "intervals": None if cov is None else cov[1],
                     "seconds": bt.seconds, "curves": [asdict(c) for c in bt.curves]})
    return rows
