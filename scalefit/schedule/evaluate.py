"""Evaluating a curve law under LR schedules: predicted curves, ranked comparisons, scores against data.

* :func:`predict_schedule`: the law's loss curve under one schedule, the loss at the last step (and at
  step ``at``), each with its own percentile interval over bootstrap draws;
* :func:`compare_schedules`: the loss of several schedules at the last (or one) step, ranked, with paired
  differences to the best (the same draw for every schedule, so shared uncertainty cancels);
* :func:`predict_for` / :func:`compare_for`: the same for a :class:`~scalefit.schedule.params.CurveParams`,
  with the memory estimate checked before any dense LR array is made and :func:`horizon_warnings` for
  schedules longer than the fitted curves (what ``scalefit schedule predict|compare`` call);
* :func:`curve_metrics` / :func:`score_curves`: per-run R², MAE and relative errors against observed curves;
* :func:`write_schedule_csv`: a ``step,lr`` file a trainer can read (through the one atomic writer).

Results are dataclasses whose ``to_dict()`` is the JSON the CLI prints; bootstrap samples are attributes,
never JSON keys. Code written against the dicts these functions used to return keeps working: a
:class:`SchedulePrediction` and a :class:`ComparedSchedule` also read as mappings (``pred["final_loss"]``,
``set(pred)``, samples included).

Resources: a dense curve reports every step up to :data:`DEFAULT_POINTS` points and thins itself beyond
unless ``every`` is given; working memory is estimated (:func:`curve_bytes`) and held against the
``memory_bytes`` limit before the work.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..errors import option_error
from .spec import Schedule, as_lr, check_memory, lr_bytes, parse_schedule

if TYPE_CHECKING:
    from .params import CurveParams

DEFAULT_POINTS = 25_000  # a dense curve reports every step up to this many points, then thins itself
_OUT_BYTES = 120  # bytes per reported point of a curve (numbers, Python lists, JSON text)
HORIZON_SLACK = 1.05  # a schedule this much longer than the longest fitted curve is an extrapolation


# ------------------------------------------------------------------------------------------------ resources
def curve_bytes(law, steps: int, points: int, n_theta: int = 1) -> int:
    """Working memory of ``law.curve`` on a ``steps``-step schedule at ``points`` steps with ``n_theta``
    parameter vectors (the law's own estimate, CurveLaw.curve_bytes), plus the reported numbers."""
    return int(law.curve_bytes(int(steps), int(points), int(n_theta))) + _OUT_BYTES * int(points)


def default_every(steps: int) -> int:
    """The reporting stride of a dense curve when none is asked: 1 up to DEFAULT_POINTS steps."""
    return max(1, -(-int(steps) // DEFAULT_POINTS))


def check_step(value, steps: int, what: str = "at", schedule: str = "") -> int:
    """A step index of a ``steps``-step schedule (0 .. steps-1), or DataError naming the parameter ``what``."""
    try:
        step = int(value)
    except (TypeError, ValueError, OverflowError):
        raise option_error(what, value, "not a whole step number") from None
    if step != value or not 0 <= step < steps:
        which = f"schedule '{schedule}'" if schedule else "the schedule"
        raise option_error(what, value, f"{which} has steps 0..{steps - 1}")
    return step


def schedule_steps(schedule: "str | Schedule | np.ndarray") -> int:
    """The number of steps of a spec, a Schedule or a dense LR array, without generating the array."""
    if isinstance(schedule, (str, Schedule)):
        return parse_schedule(schedule).steps
    return len(schedule)


def prediction_steps(eta: np.ndarray, every: int = 1) -> np.ndarray:
    """Steps at which to report a curve: every ``every`` steps from the first with LR area, plus the last."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise option_error("every", every, "use a positive whole number of steps")
    every = min(int(every), eta.size)  # a larger stride reports the first and the last step only
    first = int(np.argmax(np.cumsum(eta) > 0))
    return np.unique(np.r_[np.arange(first, eta.size, every), eta.size - 1])


def horizon_warnings(lengths: Mapping[str, int], fitted_steps: int | None, calibrated: bool = False) -> list[str]:
    """One message per schedule (name -> number of steps) that runs past the longest fitted curve.

    Curve laws identify their long-horizon terms poorly: a multipower fit on the official 24k-step
    MPL curves predicts the final loss of the 72k-step cosine 0.025 too low (1 %); the observed loss
    lies 0.019 above the top of the 95 % bootstrap interval. The user should know it is an extrapolation.
    """
    if not fitted_steps:
        return []
    error = ("the interval includes the extrapolation error measured on the fitted curves" if calibrated else
             "the interval does not include that error (use the calibrated interval)")
    return [f"{name}: {n:,} steps is {n / fitted_steps:.1f}x the longest fitted curve ({fitted_steps:,} steps): "
            f"the long-horizon loss is extrapolated and {error}"
            for name, n in lengths.items() if n > HORIZON_SLACK * fitted_steps]


def final_loss(law, theta, eta: np.ndarray, warmup: int | None = None) -> np.ndarray:
    """Predicted loss at the last step of ``eta`` for each row of theta (k, p) -> (k,)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    if theta.shape[0] == 1:
        return np.array([law.final_loss_grad(theta[0], eta, warmup)[0]])
    return law.curve(theta, eta, [eta.size - 1])[:, 0]


def _interval(samples: np.ndarray, ci: float) -> tuple[float, float]:
    from ..stats import percentile_interval

    lo, hi = percentile_interval(np.asarray(samples, dtype=float), ci)
    return float(lo), float(hi)


# ------------------------------------------------------------------------------------------------ results
class _ReadsAsMapping:
    """Read-only mapping access over ``to_dict()`` plus the bootstrap samples, as the dicts these
    results replace: ``r["final_loss"]``, ``"samples" in r``, ``set(r)``."""

    _sample_keys: tuple[str, ...] = ()

    def _mapping(self) -> dict:
        out = self.to_dict()
        out.update({k: getattr(self, k) for k in self._sample_keys if getattr(self, k) is not None})
        return out

    def __getitem__(self, key):
        return self._mapping()[key]

    def __iter__(self):
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __contains__(self, key) -> bool:
        return key in self._mapping()

    def keys(self):
        return self._mapping().keys()

    def get(self, key, default=None):
        return self._mapping().get(key, default)


@dataclass(eq=False)
class SchedulePrediction(_ReadsAsMapping):
    """A predicted loss curve (:func:`predict_schedule`). Each quoted number has its own interval:
    ``final_loss_interval`` at ``final_step``, ``loss_at_step_interval`` at ``at_step``."""

    steps: np.ndarray  # the reported steps
    loss: np.ndarray  # the predicted loss at each
    every: int
    final_step: int
    final_loss: float
    peak_lr: float
    end_lr: float
    lr: np.ndarray = field(repr=False)  # the dense LR the curve was computed for
    at_step: int | None = None
    loss_at_step: float | None = None
    ci: float | None = None  # set with the intervals (bootstrap draws given)
    final_loss_interval: tuple[float, float] | None = None
    loss_at_step_interval: tuple[float, float] | None = None
    samples: np.ndarray | None = field(default=None, repr=False)  # final loss per draw
    samples_at_step: np.ndarray | None = field(default=None, repr=False)
    schedule: str | None = None  # the schedule's name (set by predict_for)
    warnings: list[str] = field(default_factory=list)
    interval: str = "confidence"  # what the intervals bound (see predict_for)

    _sample_keys = ("samples", "samples_at_step")

    def to_dict(self) -> dict:
        out = {"steps": self.steps.tolist(), "loss": self.loss.tolist(), "every": self.every,
               "final_step": self.final_step, "final_loss": self.final_loss, "peak_lr": self.peak_lr,
               "end_lr": self.end_lr}
        if self.at_step is not None:
            out["at_step"], out["loss_at_step"] = self.at_step, self.loss_at_step
        if self.final_loss_interval is not None:
            out["ci"], out["interval"] = self.ci, self.interval
            out["final_loss_low"], out["final_loss_high"] = self.final_loss_interval
            if self.loss_at_step_interval is not None:
                out["loss_at_step_low"], out["loss_at_step_high"] = self.loss_at_step_interval
        if self.schedule is not None:
            out["schedule"], out["warnings"] = self.schedule, list(self.warnings)
        return out


@dataclass(eq=False)
class ComparedSchedule(_ReadsAsMapping):
    """One schedule of :func:`compare_schedules`: its loss at ``step`` and the difference to the best."""

    schedule: str
    step: int
    final_loss: float  # the loss at ``step`` (the last step unless ``at`` was given)
    end_lr: float
    steps: int
    interval: tuple[float, float] | None = None
    vs_best: float = 0.0
    vs_best_interval: tuple[float, float] | None = None  # paired: the same draw for every schedule
    samples: np.ndarray | None = field(default=None, repr=False)

    _sample_keys = ("samples",)

    def to_dict(self) -> dict:
        out = {"schedule": self.schedule, "step": self.step, "final_loss": self.final_loss, "end_lr": self.end_lr,
               "steps": self.steps}
        if self.interval is not None:
            out["low"], out["high"] = self.interval
        out["vs_best"] = self.vs_best
        if self.vs_best_interval is not None:
            out["vs_best_low"], out["vs_best_high"] = self.vs_best_interval
        return out


@dataclass(eq=False)
class ScheduleComparison:
    """Ranked schedules (best first) at one interval level, with horizon warnings and the dense LRs."""

    rows: list[ComparedSchedule]
    ci: float
    warnings: list[str] = field(default_factory=list)
    lrs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    interval: str = "confidence"

    @property
    def has_intervals(self) -> bool:
        return any(r.interval is not None for r in self.rows)

    def to_dict(self) -> dict:
        return {"ci": self.ci, "interval": self.interval, "schedules": [r.to_dict() for r in self.rows],
                "warnings": list(self.warnings)}


@dataclass(eq=False)
class CurveScores:
    """Per-run metrics of :func:`curve_metrics` (each with ``held_out``) and their means over the
    held-out runs (over every run when none is held out)."""

    runs: list[dict]
    mean_r2: float
    mean_mae: float

    def to_dict(self) -> dict:
        return {"runs": self.runs, "mean_r2": self.mean_r2, "mean_mae": self.mean_mae}


# ------------------------------------------------------------------------------------------------ predict / compare
def predict_schedule(law, theta, eta, *, every: int | None = None, draws: np.ndarray | None = None,
                     ci: float = 0.95, at: int | None = None, progress=None) -> SchedulePrediction:
    """The law's predicted loss curve under ``eta`` (a spec, a Schedule or a dense LR array), and the loss
    at the last step (and at step ``at``), each with its own percentile interval over bootstrap ``draws``.

    ``every``: the reporting stride; None reports every step up to DEFAULT_POINTS points and thins
    beyond (``.every`` says which). ``progress(phase, done, total)`` hears how far each part got (when
    ``law.curve`` takes a progress callback). Memory is checked against the ``memory_bytes`` limit
    before the work."""
    eta = as_lr(eta)
    T = eta.size
    target = None if at is None else check_step(at, T)
    stride = default_every(T) if every is None else every
    steps = prediction_steps(eta, stride)
    n_draws = 0 if draws is None or len(draws) < 2 else len(draws)
    check_memory(max(curve_bytes(law, T, steps.size), curve_bytes(law, T, 2, max(n_draws, 1))),
                 f"a {T:,}-step schedule reported at {steps.size:,} steps (--every {stride})")
    theta = np.asarray(theta, float)[None]
    # A dense curve may use approximate (blocked) sums; the numbers quoted on their own are computed
    # exactly, first, and stand in the curve at their steps (no step is evaluated twice).
    def curve(theta, at_steps, phase):
        if progress is not None and "progress" in inspect.signature(law.curve).parameters:
            return law.curve(theta, eta, at_steps, progress=lambda done, total: progress(phase, done, total))
        return law.curve(theta, eta, at_steps)

    quoted = [T - 1] + ([target] if target is not None else [])
    exact = curve(theta, quoted, "exact loss")[0]
    loss = np.empty(steps.size)
    known = np.isin(steps, quoted)
    rest = steps[~known]
    if rest.size:
        loss[~known] = curve(theta, rest, "loss curve")[0]
    value = dict(zip(quoted, exact))
    loss[known] = [value[int(t)] for t in steps[known]]
    out = SchedulePrediction(steps, loss, int(min(stride, T)), int(T - 1), float(exact[0]), float(eta.max()),
                             float(eta[-1]), eta)
    if target is not None:
        out.at_step, out.loss_at_step = target, float(exact[1])
    if n_draws:
        with np.errstate(all="ignore"):
            samples = curve(np.asarray(draws, float), quoted, "intervals")
        out.ci = ci
        out.samples = samples[:, 0]
        out.final_loss_interval = _interval(samples[:, 0], ci)
        if target is not None:
            out.samples_at_step = samples[:, 1]
            out.loss_at_step_interval = _interval(samples[:, 1], ci)
    return out


def compare_schedules(law, theta, schedules: Mapping[str, np.ndarray], *, draws=None, ci: float = 0.95,
                      at: int | None = None, progress=None) -> list[ComparedSchedule]:
    """Final (or step ``at``) predicted loss for each schedule, ranked, with intervals and paired
    differences to the best (the same bootstrap draw for every schedule, so shared uncertainty cancels).
    ``progress("schedules", done, total)`` is called after each schedule."""
    rows = []
    n_draws = 0 if draws is None or len(draws) < 2 else len(draws)
    for i, (name, eta) in enumerate(schedules.items()):
        eta = as_lr(eta)
        target = eta.size - 1 if at is None else check_step(at, eta.size, schedule=name)
        check_memory(curve_bytes(law, eta.size, 1, max(n_draws, 1)), f"schedule '{name}' ({eta.size:,} steps)")
        value = float(law.curve(np.asarray(theta, float)[None], eta, [target])[0, 0])
        row = ComparedSchedule(name, target, value, float(eta[-1]), int(eta.size))
        if n_draws:
            with np.errstate(all="ignore"):
                row.samples = law.curve(np.asarray(draws, float), eta, [target])[:, 0]
            row.interval = _interval(row.samples, ci)
        rows.append(row)
        if progress is not None:
            progress("schedules", i + 1, len(schedules))
    rows.sort(key=lambda r: r.final_loss)
    best = rows[0]
    for r in rows:
        r.vs_best = r.final_loss - best.final_loss
        if r.samples is not None:
            r.vs_best_interval = _interval(r.samples - best.samples, ci)
    return rows


def _widen(params: "CurveParams", interval: str, center: float, bounds, steps: int):
    from ..stats import widen

    if bounds is None or interval == "confidence":
        return bounds
    return widen(center, bounds[0], bounds[1], params.halfwidth(interval, steps))


def predict_for(params: "CurveParams", name: str, schedule, *, every: int | None = None, at: int | None = None,
                progress=None, interval: str = "auto") -> SchedulePrediction:
    """:func:`predict_schedule` with ``params``' law, theta, draws and level, for the schedule ``name``
    (a spec, a Schedule or a dense LR array); the whole job's memory is checked before the LR array is
    made (:func:`check_prediction`), and ``.warnings`` says whether the schedule runs past the fitted curves.
    ``interval``: "confidence" (the law's mean), "prediction" (+ a new run's offset) or "calibrated"
    (+ the law's extrapolation error measured by backtests), see :meth:`CurveParams.halfwidth`; "auto"
    (default) the most honest of these the parameters can give (:meth:`CurveParams.resolve_interval`)."""
    interval = params.resolve_interval(interval)
    params.halfwidth(interval, 1)  # an unusable kind fails before any work
    stride = check_prediction(params, name, schedule, every)
    out = predict_schedule(params.law, params.theta, as_lr(schedule), every=stride, draws=params.draws,
                           ci=params.ci, at=at, progress=progress)
    out.schedule, out.interval = name, interval
    out.final_loss_interval = _widen(params, interval, out.final_loss, out.final_loss_interval, out.final_step + 1)
    if out.at_step is not None:
        out.loss_at_step_interval = _widen(params, interval, out.loss_at_step, out.loss_at_step_interval,
                                           out.at_step + 1)
    out.warnings = horizon_warnings({name: out.final_step + 1}, params.fitted_steps, calibrated=interval == "calibrated")
    out.warnings += bias_warnings(params.law, {name: schedule})
    return out


def bias_warnings(law, schedules: Mapping[str, object]) -> list[str]:
    """One message per schedule whose kind the law declares a known bias for (``CurveLaw.known_bias``);
    dense LR arrays have no kind and get none."""
    bias = getattr(law, "known_bias", None) or {}
    out = []
    for name, schedule in schedules.items():
        kind = None
        if isinstance(schedule, Schedule):
            kind = schedule.kind
        elif isinstance(schedule, str):
            kind = parse_schedule(schedule).kind
        if kind in bias:
            out.append(f"{name}: law '{law.name}' on {kind} schedules: {bias[kind]}")
    return out


def check_prediction(params: "CurveParams", name: str, schedule, every: int | None = None) -> int:
    """The reporting stride of :func:`predict_for` (``every``, or :func:`default_every`), once the memory
    of the whole prediction (LR array, curve, intervals) is held against the limit: a LimitError naming
    the schedule before any work."""
    T = schedule_steps(schedule)
    stride = every or default_every(T)
    n_points = -(-T // stride) + 1
    n_draws = max(params.n_draws, 1)
    check_memory(lr_bytes(T) + max(curve_bytes(params.law, T, n_points), curve_bytes(params.law, T, 2, n_draws)),
                 f"{name}: {T:,} steps reported every {stride:,} (--every)")
    return stride


def compare_for(params: "CurveParams", schedules: Mapping[str, object], *, at: int | None = None,
                progress=None, interval: str = "auto") -> ScheduleComparison:
    """:func:`compare_schedules` with ``params``, for name -> spec, Schedule or dense LR array; the
    memory of all of them is checked before any array is made. ``interval`` as in :func:`predict_for`
    (for each schedule's loss; the paired differences to the best keep the bootstrap interval, as the
    model error is largely shared between schedules)."""
    interval = params.resolve_interval(interval)
    params.halfwidth(interval, 1)
    n_draws = max(params.n_draws, 1)
    sizes = [schedule_steps(s) for s in schedules.values()]
    check_memory(sum(8 * T for T in sizes) + max(lr_bytes(T) + curve_bytes(params.law, T, 1, n_draws) for T in sizes),
                 f"{len(sizes)} schedule(s) of up to {max(sizes):,} steps")
    lrs = {name: as_lr(s) for name, s in schedules.items()}
    rows = compare_schedules(params.law, params.theta, lrs, draws=params.draws, ci=params.ci, at=at,
                             progress=progress)
    for r in rows:  # each loss gets the kind asked for; the paired differences stay the bootstrap's
        r.interval = _widen(params, interval, r.final_loss, r.interval, r.step + 1)
    warnings = horizon_warnings({name: eta.size for name, eta in lrs.items()}, params.fitted_steps,
                                calibrated=interval == "calibrated") + bias_warnings(params.law, schedules)
    return ScheduleComparison(rows, params.ci, warnings, lrs, interval)


# ------------------------------------------------------------------------------------------------ files and data
def write_schedule_csv(path, eta: np.ndarray, *, force: bool = False):
    """``step,lr`` CSV a trainer can read, written atomically; never overwrites without ``force``."""
    from .._io import atomic_write

    eta = np.asarray(eta, float)

    def write(fh, chunk: int = 1 << 16):  # streamed: no second copy of a long schedule as one string
        fh.write("step,lr\n")
        for a in range(0, eta.size, chunk):
            fh.write("".join(f"{a + i},{v:.10g}\n" for i, v in enumerate(eta[a:a + chunk].tolist())))

    return atomic_write(path, write, force=force)


def curve_metrics(law, theta, data) -> list[dict]:
    """Per-run R^2, MAE, RMSE, mean and worst relative error of the prediction (the MPL paper's metrics)."""
    design = law.prepare(data)
    pred = law.predict(np.asarray(theta, float)[None], design)[0]
    y = data.column("loss")
    runs = data.run_names
    out = []
    for run in dict.fromkeys(runs):
        m = runs == run
        e = y[m] - pred[m]
        ss = float(np.sum((y[m] - y[m].mean()) ** 2))
        out.append({"run": str(run), "n": int(m.sum()), "r2": 1 - float(np.sum(e**2)) / ss if ss > 0 else float("nan"),
                    "mae": float(np.mean(np.abs(e))), "rmse": float(np.sqrt(np.mean(e**2))),
                    "pred_err": float(np.mean(np.abs(e) / y[m])), "worst_err": float(np.max(np.abs(e) / y[m])),
                    "final_step": int(data.column("step")[m][-1]), "final_loss": float(y[m][-1]),
                    "final_pred": float(pred[m][-1])})
    return out


def score_curves(law, theta, data, holdout=()) -> CurveScores:
    """:func:`curve_metrics` with each run marked ``held_out`` (named in ``holdout``), and the mean R²
    and MAE over the held-out runs, or over every run when none is held out."""
    held_names = set(holdout or ())
    metrics = curve_metrics(law, theta, data)
    for m in metrics:
        m["held_out"] = m["run"] in held_names
    held = [m for m in metrics if m["held_out"]] or metrics
    return CurveScores(metrics, sum(m["r2"] for m in held) / len(held), sum(m["mae"] for m in held) / len(held))
