"""Where a curve law's parameters come from for the schedule functions: a fit, a paper, or given values.

:func:`curve_params` turns one of

* a fitted curve law (a :class:`~scalefit.result.FitResult`, e.g. from ``load_fit``; its bootstrap draws
  give the intervals, and its longest fitted curve tells
  :func:`~scalefit.schedule.evaluate.horizon_warnings` when a schedule is an extrapolation),
* a curve law's published values (``law=get_law("multipower"), reference="400M"``; ``"default"`` is the
  first set),
* explicit values for every parameter (``law=..., overrides={...}``),

into a :class:`CurveParams`: the law (with any options), theta, draws, the interval level and a label of
the source. ``overrides`` also replace single values of a fit or of a published set; over a fit they drop
the bootstrap draws, which no longer describe the parameters (said in ``notes``).

The caller loads the fit or looks the law up (the CLI through :func:`scalefit.source.resolve`, which
handles a fit path, a law name, a reference set and given values for every command): this package is read
by ``scalefit.curves`` (schedule specs), which the fit and the registry reach, so importing them, or
``scalefit.source``, here would close an import cycle.
Errors are one-line :class:`~scalefit.errors.DataError` naming this function's parameters (``overrides``,
``reference``, ``ci``); the CLI names them as its flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import DataError, option_error
from ..law import CurveLaw

CURVE_INTERVALS = ("auto", "confidence", "prediction", "calibrated")


@dataclass(eq=False)
class CurveParams:
    """A curve law and its parameters: theta (p,), bootstrap draws (B, p) or None, and where they came from."""

    law: object
    theta: np.ndarray
    draws: np.ndarray | None
    source: str
    ci: float
    fitted_steps: int | None = None  # the longest fitted curve's last step (None: not from a fit)
    run_offsets: list | None = None  # each fitted curve's mean log offset from the law (prediction intervals)
    extrapolation_errors: dict | None = None  # backtest errors that calibrate intervals (curve_backtest)
    notes: list[str] = field(default_factory=list)  # what the caller should be told (dropped draws)

    def resolve_interval(self, interval: str) -> str:
        """``interval`` itself, or for "auto" the most honest kind this fit can give: "calibrated" when
        it carries backtest errors, else "prediction" when it has at least 2 fitted curves, else
        "confidence". Measured on held-out real curves (README, How far to trust a curve forecast), only
        the calibrated interval covers new schedules and longer horizons at the promised rate."""
        if interval not in CURVE_INTERVALS:
            raise option_error("interval", interval, f"use one of {', '.join(CURVE_INTERVALS)}")
        if interval != "auto":
            return interval
        if self.draws is None:
            return "confidence"
        if self.extrapolation_errors:
            return "calibrated"
        offsets = [v for v in (self.run_offsets or []) if v is not None]
        return "prediction" if len(offsets) >= 2 else "confidence"

    def halfwidth(self, interval: str, steps: int) -> float:
        """What ``interval`` adds (log loss, in quadrature) to the bootstrap interval of a forecast at
        ``steps`` steps: "confidence" nothing; "prediction" one new run's offset from the law (the fitted
        curves' scatter, t with runs - 1 degrees of freedom); "calibrated" that plus the law's own
        extrapolation error measured by backtests on the fitted curves (:mod:`scalefit.curve_backtest`)."""
        from ..stats import model_error_halfwidth, run_scatter_halfwidth

        interval = self.resolve_interval(interval)
        if interval == "confidence":
            return 0.0
        run = run_scatter_halfwidth(self.run_offsets, self.ci)
        if interval == "calibrated" and self.extrapolation_errors and not np.isfinite(run):
            return math.inf  # one fitted curve: neither its scatter nor a new schedule's error is known
        if not np.isfinite(run):
            raise DataError(f"{self.source}: interval={interval!r} needs the scatter of at least 2 fitted curves "
                            f"(a fit by this scalefit version); use interval='confidence'", options=("interval",))
        if interval == "prediction":
            return float(run)
        if not self.extrapolation_errors:
            raise DataError(f"{self.source}: interval='calibrated' needs the fit's backtest errors; fit with "
                            f"calibrate=True, or use interval='prediction'", options=("interval", "calibrate"))
        ratio = steps / self.fitted_steps if self.fitted_steps else 1.0
        return float(np.hypot(run, model_error_halfwidth(self.extrapolation_errors, ratio, self.ci)))

    @property
    def n_draws(self) -> int:
        return 0 if self.draws is None else len(self.draws)

    def to_dict(self) -> dict:
        return {"law": self.law.name, "source": self.source,
                "params": dict(zip(self.law.param_names, map(float, self.theta))),
                "options": getattr(self.law, "options", {}), "n_draws": self.n_draws}


def curve_params(*, fit=None, law=None, reference: str | None = None, overrides: Mapping[str, float] | None = None,
                 law_options: Mapping[str, str] | None = None, ci: float | None = None,
                 source: str | None = None) -> CurveParams:
    """A curve law's parameters from ``fit`` (a FitResult; ``source`` labels it, e.g. its path), or from
    ``law`` (a Law) with ``reference`` (a published set) or ``overrides`` for every parameter.
    ``law_options`` (name -> text) go to ``law.with_options``; ``ci`` defaults to the fit's level, else 0.95."""
    overrides = dict(overrides or {})
    if (fit is None) == (law is None):
        raise DataError("curve_params: give fit (a fitted curve law) or law (with reference or overrides), not "
                        + ("both" if fit is not None else "neither"))
    draws = fitted_steps = offsets = errors = None
    if fit is not None:
        offsets, errors = fit.diagnostics.get("run_offsets_log"), fit.diagnostics.get("extrapolation_errors")
        law_obj, theta, draws = fit.law, fit.theta.copy(), fit.draws
        level = ci if ci is not None else fit.ci
        source = source or "fit"
        fitted_steps = int(fit.data_info.get("ranges", {}).get("step", [0, 0])[1]) or None
    else:
        law_obj = law
        level = ci if ci is not None else 0.95
        theta, source = law_obj.published_or_given(reference, overrides, param="overrides")
    if not isinstance(law_obj, CurveLaw):
        raise DataError(f"law '{law_obj.name}' is not a loss-curve law; schedule commands need one "
                        f"(e.g. multipower, lr_annealing)")
    if law_options:
        law_obj = law_obj.with_options(**law_options)
    for name, value in overrides.items():
        if name not in law_obj.param_names:
            raise DataError(f"overrides={{{name!r}: ...}}: law '{law_obj.name}' has no such parameter; parameters "
                            f"are: {', '.join(law_obj.param_names)}", options=("overrides",))
        theta[law_obj.param_names.index(name)] = value
    notes = []
    if overrides and draws is not None:
        notes.append("--set overrides fitted values: bootstrap intervals are dropped")
        draws = None
    if not 0 < level < 1:
        raise option_error("ci", level, "must lie in (0, 1)")
    bad = [n for n, v in zip(law_obj.param_names, theta) if not math.isfinite(v)]
    if bad:
        raise DataError(f"{source}: parameter {bad[0]} is {theta[law_obj.param_names.index(bad[0])]}; "
                        f"every parameter must be a finite number")
    return CurveParams(law_obj, theta, draws, source, level, fitted_steps, run_offsets=offsets,
                       extrapolation_errors=errors, notes=notes)
