"""The fit result and its ``fit.json`` artifact.

``fit.json`` records what is needed to trust and reuse a fit: the scalefit version, the law and a hash of
its source, a hash of the input data and the column mapping, units, parameter values with intervals,
objective and diagnostics, the settings, and the bootstrap draws (inline; beside it as
``*.draws.parquet`` when large). Reading it back predicts bit-identically (JSON floats round-trip
exactly). Writes are atomic; an existing file is never overwritten unless asked.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import DataError
from .law import Columns, Law
from .stats import checked_interval, percentile_interval, residual_scale, with_run_noise


@dataclass(frozen=True)
class Estimate:
    value: float
    stderr: float | None = None
    low: float | None = None
    high: float | None = None
    at_bound: bool = False
    status: str = "free"  # free | fixed | tied:<name>

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "stderr": self.stderr, "low": self.low, "high": self.high,
                "at_bound": self.at_bound, "status": self.status}


@dataclass(frozen=True)
class Prediction:
    """A forecast: point values (n,), percentile interval from the bootstrap draws, and the draws."""

    value: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    draws: np.ndarray | None = field(default=None, repr=False)


MIN_R2 = 0.5  # below this the law explains less of log loss than the noise does: no estimate to report


def _judge_success(objective: float, r2: float) -> tuple[bool, str]:
    """scipy-style success flag: a fit that does not describe the data must not look like an estimate."""
    if not math.isfinite(objective):
        return False, "the objective is not finite at the optimum"
    if math.isnan(r2):
        return False, "loss does not vary across the fitted rows: there is nothing for the law to explain"
    if not r2 >= MIN_R2:
        return False, (f"the law explains {max(r2, 0.0):.0%} of the variance of log loss (R² {r2:.3f} < {MIN_R2}): "
                       f"it does not describe these data (pure noise, wrong columns, or mixed data sets)")
    return True, "ok"


def _interval_text(settings: dict, ci: float, draws) -> str:
    if draws is None:
        return "asymptotic standard errors only (run with --bootstrap N for intervals)"
    wild = settings.get("bootstrap_method") == "wild"
    what = "wild cluster bootstrap (one weight per run)" if wild else "bootstrap over run resamples"
    distinct = settings.get("distinct_resamples")
    text = f"{ci:.0%} percentile of {len(draws)} draws of a {what}"
    if distinct is not None:
        text += f", {distinct} distinct"
    if settings.get("stretch", 1.0) != 1.0:
        text += f", stretched x{settings['stretch']:.3f} (t with runs - parameters degrees of freedom)"
    return text


def _num(x, digits: int) -> str:
    return f"{x:.{digits}g}" if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def _finite_or_none(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class FitResult:
    """A fitted law: parameter estimates, intervals, diagnostics, and forecasts from the same draws."""

    def __init__(self, law: Law, theta: np.ndarray, params: dict[str, Estimate], *, objective: float,
                 n_runs: int, n_points: int, diagnostics: dict, settings: dict, data_info: dict,
                 units: dict, draws: np.ndarray | None = None, timings: dict | None = None,
                 meta: dict | None = None):
        self.law = law
        self.theta = np.asarray(theta, dtype=float)
        self.params = params
        self.objective = float(objective)
        self.n_runs = int(n_runs)
        self.n_points = int(n_points)
        self.diagnostics = diagnostics
        self.settings = settings
        self.data_info = data_info
        self.units = units
        self.draws = None if draws is None else np.asarray(draws, dtype=float)
        self.timings = timings or {}
        self.meta = meta or {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_fit(cls, *, law, data, theta, objective, residuals, logy, weights, at_bound, status, n_free,
                 n_starts, n_refined, n_converged_best, asymptotic_stderr, draws, settings, timings,
                 run_offsets=None, undetermined=None, correlations=None, profile=None, projected=None):
        """Assemble a fit from plain values that :func:`scalefit.fit.fit` computed at the optimum.

        ``residuals``, ``logy`` and ``weights`` are per row (log predicted minus log observed, log loss,
        unit-mean weights); ``at_bound`` names the parameters at a bound; ``status`` maps every parameter
        to free, fixed or tied:<name>; ``n_free`` counts the free ones; the three counts describe the
        multi-start; ``asymptotic_stderr`` (natural units, or None) is used when there are no ``draws``;
        ``run_offsets`` is each run's mean log residual (observed - law), whose scatter a prediction adds;
        ``undetermined`` names the free parameters the data do not pin down (None: not examined);
        ``projected`` names the linear coefficients solved exactly at every start (:mod:`scalefit.varpro`);
        ``correlations`` (:func:`scalefit.correlation.correlation_record`) and ``profile``
        (:func:`scalefit.profile.profile_problem`) are stored as they are.
        """
        from .allocation import allocation_exponents

        names = law.param_names
        ci = settings["ci"]
        r = np.asarray(residuals, dtype=float)
        logy = np.asarray(logy, dtype=float)
        w = np.asarray(weights, dtype=float)
        n_points = len(r)
        at_bound = set(at_bound)
        rmse = float(np.sqrt(np.sum(w * r**2) / np.sum(w)))
        ss_tot = float(np.sum(w * (logy - np.average(logy, weights=w)) ** 2))
        r2 = 1.0 - float(np.sum(w * r**2)) / ss_tot if ss_tot > 0 else float("nan")

        stderr = asymptotic_stderr if draws is None else np.std(draws, axis=0, ddof=1)
        if draws is not None and len(draws) >= 2:
            lows, highs = percentile_interval(draws, ci, theta, settings.get("stretch", 1.0))
        else:
            lows = highs = [None] * len(names)
        estimates = {}
        for i, name in enumerate(names):
            fixed = status[name] == "fixed"
            estimates[name] = Estimate(
                value=float(theta[i]),
                stderr=None if fixed or stderr is None else _finite_or_none(stderr[i]),
                low=None if fixed else _finite_or_none(lows[i]),
                high=None if fixed else _finite_or_none(highs[i]),
                at_bound=name in at_bound,
                status=status[name],
            )

        # Runs by code, names read for the five rows shown (data.run_names is a string per row: 60 MB at 1M).
        run_codes = data.run_codes
        order = np.argsort(-np.abs(r))
        worst, seen = [], set()
        for i in order:
            if run_codes[i] in seen:
                continue
            seen.add(run_codes[i])
            worst.append({"run": data.run_name(i), "residual": float(r[i]),
                          "loss": float(np.exp(logy[i])), "predicted": float(np.exp(logy[i] + r[i]))})
            if len(worst) == 5:
                break

        messages = []
        for name in sorted(at_bound):
            lo, hi = law.params[name].bounds
            value = estimates[name].value
            meaning = dict(law.params[name].edges).get("low" if abs(value - lo) <= abs(value - hi) else "high")
            messages.append(f"parameter '{name}' = {value:.6g} sits at a bound of [{lo:g}, {hi:g}]: "
                            + (meaning or "the law may not describe these data, or the bound is too tight"))
        if undetermined:
            what = "curves" if law.kind == "curve" else "runs"
            past = (f"past step {int(data.column('step').max()):,}" if law.kind == "curve" and "step" in data.frame
                    else "outside the fitted range")
            messages.append(f"{', '.join(undetermined)} {'is' if len(undetermined) == 1 else 'are'} not determined by "
                            f"these {what} (doubling or halving {'it' if len(undetermined) == 1 else 'each'} "
                            f"costs less than the noise): forecasts {past} depend on "
                            f"{'it' if len(undetermined) == 1 else 'them'}")
        if n_converged_best < 2:
            messages.append(f"only {n_converged_best} of {n_refined} refined starts reached the best "
                            f"objective; the optimum may be poorly determined")
        n_runs = data.n_runs
        if draws is not None and 4 <= n_runs < 3 * n_free:
            messages.append(f"{n_runs} runs for {n_free} free parameters: bootstrap intervals from so few "
                            f"runs are too narrow; treat them as a lower bound on the uncertainty")
        if draws is not None and n_runs < 4:
            messages.append(f"the intervals rest on {n_runs} run(s): a {n_runs}-run table cannot show how a new run "
                            f"or a new schedule scatters; read the bootstrap's as a lower bound"
                            + ("" if law.kind == "point" else " (calibrated intervals add the backtests' errors)"))
        if draws is not None and len(draws) < settings["n_bootstrap"]:
            messages.append(f"{settings['n_bootstrap'] - len(draws)} bootstrap draw(s) failed")
        if data.dropped:
            messages.extend(data.dropped)

        success, message = _judge_success(objective, r2)
        diagnostics = {
            "success": success,
            "message": message,
            "n_points": int(n_points),
            "rmse_log": rmse,
            "r2_log": r2,
            "n_starts": n_starts,
            "n_refined": n_refined,
            "n_converged_best": n_converged_best,
            "projected": list(projected or []),
            "at_bound": sorted(at_bound),
            "largest_residuals": worst,
            "interval": _interval_text(settings, ci, draws),
            # Run-to-run scatter of log loss (robust, dof-corrected): what a prediction interval adds.
            "residual_scale_log": residual_scale(r, n_free),
            "run_offsets_log": None if run_offsets is None else [_finite_or_none(v) for v in run_offsets],
            "undetermined": None if undetermined is None else list(undetermined),
            "correlations": correlations,
            "allocation": allocation_exponents(law, theta, draws, ci, settings.get("stretch", 1.0)),
            "warnings": messages,
        }
        if profile is not None:
            diagnostics["profile"] = profile
        data_info = {"source": data.source, "hash": data.content_hash(), "columns": dict(data.columns),
                     "n_rows": len(data), "ranges": data.ranges(), "dropped": list(data.dropped)}
        return cls(law, theta, estimates, objective=objective, n_runs=n_runs, n_points=n_points,
                   diagnostics=diagnostics, settings=settings, data_info=data_info, units=dict(data.units),
                   draws=draws, timings=timings)

    # ------------------------------------------------------------------ forecasts
    @property
    def param_names(self) -> list[str]:
        return list(self.params)

    @property
    def extrapolation_errors(self) -> dict | None:
        """The backtest errors that calibrate a curve law's prediction intervals (None until
        :func:`scalefit.curve_backtest.calibrate` has run on this fit)."""
        return self.diagnostics.get("extrapolation_errors")

    @property
    def success(self) -> bool:
        """False when the fit did not describe the data (``diagnostics["message"]`` says why)."""
        return bool(self.diagnostics.get("success", True))

    @property
    def stretch(self) -> float:
        """Factor applied to every bootstrap interval about its estimate (1.0: plain percentile)."""
        return float(self.settings.get("stretch") or 1.0)

    @property
    def ci(self) -> float:
        return float(self.settings.get("ci", 0.95))

    def evaluate(self, inputs, draws: bool = True, interval: str = "confidence") -> Prediction:
        """The law at prepared inputs (a Dataset or Columns): point values and percentile interval.

        ``interval="confidence"`` bounds the law's mean; ``"prediction"`` bounds a new run's observed
        value, adding the fit's run-to-run scatter (``diagnostics["residual_scale_log"]``) to each draw;
        ``"calibrated"`` (point laws fitted with :func:`scalefit.backtest.calibrate_points`) widens the
        prediction interval row by row by the law's own error beyond the fitted budgets, measured by
        next-budget backtests on the fitted table (:meth:`calibration_halfwidth`).
        """
        if interval == "calibrated":
            return self._calibrated(inputs, draws)
        design = self.law.prepare(inputs)
        value = self.law.predict(self.theta[None], design)[0]
        if not draws or self.draws is None or len(self.draws) < 2:
            return Prediction(value)
        with np.errstate(all="ignore"):
            samples = self.law.predict(self.draws, design)
        if interval == "prediction":
            samples = with_run_noise(samples, self.diagnostics.get("residual_scale_log"))
        elif interval != "confidence":
            raise DataError(f"interval '{interval}': use confidence or prediction, or calibrated (a calibrated fit)",
                            options=("interval",))
        lo, hi = checked_interval(samples, self.ci, value, self.stretch, self.meta.get("path") or "this fit")
        return Prediction(value, lo, hi, samples)

    def calibration_halfwidth(self, inputs) -> np.ndarray:
        """Per row of ``inputs``, the log half-width of the law's extrapolation error that the calibrated
        interval adds (:func:`scalefit.stats.model_error_halfwidth` of the stored record at the row's
        ratio: its compute, or params for a record made ``by="params"``, over the largest fitted one;
        0 inside the fitted range, inf when the record has fewer than 2 folds). DataError without a record."""
        from .stats import model_error_halfwidth

        record = self.extrapolation_errors
        if self.law.kind != "point":
            raise DataError(f"law '{self.law.name}' is a curve law: its calibrated intervals come from "
                            f"scalefit.schedule (interval='calibrated' there)", options=("interval",))
        if not isinstance(record, dict):
            raise DataError(f"{self.meta.get('path') or 'this fit'}: interval='calibrated' needs the law's error "
                            f"beyond the fitted budgets, measured on the fitted table: calibrate "
                            f"the fit first (scalefit.backtest.calibrate_points)", options=("interval",))
        role = "params" if record.get("by") == "params" else "flops"
        span = (self.data_info.get("ranges") or {}).get(role)
        if not span:
            raise DataError(f"{self.meta.get('path') or 'this fit'}: the fitted range of {role} is not recorded; "
                            f"refit to use interval='calibrated'", options=("interval",))
        if role == "flops" and not inputs.has("flops"):
            x = 6.0 * inputs.column("params") * inputs.column("tokens")
        else:
            x = inputs.column(role)
        return np.array([model_error_halfwidth(record, float(r), self.ci) for r in np.asarray(x) / float(span[1])])

    def _calibrated(self, inputs, draws: bool) -> Prediction:
        """The prediction interval widened per row by :meth:`calibration_halfwidth` (see :meth:`evaluate`)."""
        from .stats import widen

        h = self.calibration_halfwidth(inputs)
        pred = self.evaluate(inputs, draws, "prediction")
        if pred.low is None:
            return pred
        lo, hi = zip(*(widen(c, a, b, w) for c, a, b, w in zip(pred.value, pred.low, pred.high, h)))
        return Prediction(pred.value, np.array(lo), np.array(hi), pred.draws)

    def predict(self, data=None, interval: str = "confidence", **inputs) -> Prediction:
        """Forecast at given inputs, e.g. ``fit.predict(params=7e9, tokens=1.4e12, interval="prediction")``."""
        return self.evaluate(data if data is not None else Columns(**inputs), interval=interval)

    # ------------------------------------------------------------------ serialisation
    def summary(self) -> dict[str, Any]:
        """The stable ``fit --json`` object."""
        return {
            "law": self.law.name,
            "n_runs": self.n_runs,
            "objective": self.objective,
            "params": {n: e.to_dict() for n, e in self.params.items()},
            "diagnostics": self.diagnostics,
            "units": self.units,
            "settings": self.settings,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "scalefit.fit/1",
            "scalefit_version": __version__,
            "created": self.meta.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "law": {"name": self.law.name, "origin": self.law.origin, "source_hash": self.meta.get("law_source_hash") or self.law.source_hash(),
                    "formula": self.law.formula, "options": dict(self.law.options)},
            "data": self.data_info,
            "units": self.units,
            "settings": self.settings,
            "param_names": self.param_names,
            "theta": [float(v) for v in self.theta],
            "params": {n: e.to_dict() for n, e in self.params.items()},
            "objective": self.objective,
            "n_runs": self.n_runs,
            "n_points": self.n_points,
            "diagnostics": self.diagnostics,
            "timings": self.timings,
        }

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write ``fit.json`` atomically (and a content-named draws parquet file beside it when the draws
        are large; see :mod:`scalefit.fitfile`)."""
        from .fitfile import write

        return write(path, self.to_dict(), self.draws, self.param_names, force=force)

    def report(self, min_correl: float = 0.5) -> str:
        """The fit as plain text in lmfit's familiar sections: [[Model]], [[Fit Statistics]], [[Variables]]
        (with the allocation exponents and, when computed, profile intervals), [[Correlations]] above
        ``min_correl`` with the ridges in words, and [[Warnings]] (a failed fit says so first)."""
        from .fitreport import text_report

        return text_report(self, min_correl)

    def fit_report(self, min_correl: float = 0.5) -> str:
        """lmfit's name for :meth:`report`."""
        return self.report(min_correl)

    def to_lmfit(self):
        """The fit as an lmfit ``Parameters`` (values, stderr, bounds, ties as ``expr``, correlations as
        ``correl``); imports lmfit. See :mod:`scalefit.lmfit_bridge`."""
        from .lmfit_bridge import to_lmfit

        return to_lmfit(self)

    def _repr_html_(self) -> str:
        """A notebook's view: the parameter table and the fit statistics (all text escaped)."""
        from html import escape

        d, ci = self.diagnostics, self.ci
        rows = "".join(
            f"<tr><td>{escape(n)}</td><td>{e.value:.6g}</td><td>"
            + (f"[{e.low:.5g}, {e.high:.5g}]" if e.low is not None and e.high is not None and self.success else "–")
            + f"</td><td>{escape(e.status + (' · at bound' if e.at_bound else '')) if e.status != 'free' or e.at_bound else ''}"
            "</td></tr>" for n, e in self.params.items())
        head = escape(f"{self.law.name}: {self.law.formula}")
        if not self.success:
            head = f"<b style='color:#b00'>FIT FAILED</b> ({escape(str(d.get('message', '')))}) — " + head
        warns = "".join(f"<li>{escape(str(w))}</li>" for w in d.get("warnings", []))
        return (f"<div><p>{head}</p><table><thead><tr><th>parameter</th><th>value</th><th>{ci:.0%} interval</th>"
                f"<th>note</th></tr></thead><tbody>{rows}</tbody></table>"
                f"<p>{self.n_runs} runs, {self.n_points} points · objective {self.objective:.6g} · "
                f"R² (log loss) {_num(d.get('r2_log'), 5)} · {escape(str(d.get('interval', '')))}</p>"
                + (f"<ul>{warns}</ul>" if warns else "") + "</div>")

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={e.value:.5g}" for n, e in self.params.items())
        return f"<FitResult {self.law.name}: {body}; objective={self.objective:.6g}>"


# ---------------------------------------------------------------------- loading
def load_fit(path: str | Path, law_files: list[str] | tuple[str, ...] = ()) -> FitResult:
    """Read ``fit.json`` as untrusted input (see :mod:`scalefit.fitfile`); the law is looked up by name in
    the registry (``law_files`` are loaded first) and never imported from a path the file names."""
    from . import fitfile
    from .registry import get_law

    path = Path(path)
    payload = fitfile.read_payload(path)
    law = get_law(fitfile.law_name(path, payload), law_files)
    options = fitfile.law_options(path, payload)
    if options:
        law = law.with_options(**options)
    status = fitfile.checksum_status(payload)
    if status == "mismatch":
        warnings.warn(f"{path}: contents changed after scalefit wrote it (checksum mismatch); "
                      f"numbers may have been edited by hand", stacklevel=2)
    elif status == "missing":
        warnings.warn(f"{path}: has no checksum, so scalefit cannot tell whether it was edited by hand", stacklevel=2)
    recorded_hash = payload["law"].get("source_hash")
    if isinstance(recorded_hash, str) and recorded_hash != law.source_hash():
        warnings.warn(f"{path}: law '{law.name}' has changed since this fit was made (source hash "
                      f"{recorded_hash[:16]} vs {law.source_hash()}); consider refitting", stacklevel=2)
    v = fitfile.parse(path, payload, law)
    params = {n: Estimate(**v["params"][n]) for n in v["names"]}
    created = payload.get("created")
    return FitResult(
        law, v["theta"], params, objective=v["objective"], n_runs=v["n_runs"], n_points=v["n_points"],
        diagnostics=v["diagnostics"], settings=v["settings"], data_info=v["data_info"], units=v["units"],
        draws=v["draws"], timings=v["timings"],
        meta={"created": created if isinstance(created, str) else None, "path": str(path),
              "law_source_hash": recorded_hash if isinstance(recorded_hash, str) else None,
              "checksum": status},
    )
