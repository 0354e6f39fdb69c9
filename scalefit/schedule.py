"""Learning-rate schedules: one spec syntax, dense generators, and the schedule optimiser.

A schedule is written as ``NAME:key=value,key=value``, for example::

    cosine:peak=3e-4,steps=24000,warmup=2160,floor=3e-5
    wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=0.2,shape=sqrt,floor=0
    two_stage:peak=3e-4,steps=16000,warmup=2160,switch=8000,low=9e-5

and turned into a dense float64 array with one LR per optimiser step ``t = 0 .. steps-1`` (what every
curve law consumes). Conventions, chosen to match the official Multi-Power-Law code (Luo et al. 2025),
so that published parameters and schedules line up step for step:

* warm-up: ``W`` steps, linear ``linspace(warmup_start * peak, peak, W)`` (``eta_{W-1} = peak``);
* cosine / linear decay run over the post-warm-up steps, ``u = (t - W) / (T - W)``;
* WSD holds the peak until ``D = T - floor(f T)`` (``cooldown=f`` as a fraction, or a step count when
  ``>= 1``), then cools down with ``u = (t - D) / (T - D)`` (Hägele et al. 2024 shapes);
* ``floor`` is an absolute LR, or a percentage of the peak when written ``10%``.

Parsing is a small hand-written tokenizer (never ``eval``); unknown names, keys or values raise a
one-line :class:`~scalefit.errors.DataError` that lists the valid ones.

The optimiser (:func:`optimize_schedule`) minimises a curve law's predicted final loss over monotone
non-increasing post-warm-up schedules (Luo et al. 2025, Sec. 5), with the law's analytic gradient, and
:func:`search_wsd` does the cheap low-dimensional search over the WSD family.

Resources: every dense array here is O(steps). Before one is allocated, its size is estimated and held
against the ``memory_bytes`` limit (:func:`check_memory`; ``SCALEFIT_MAX_MEMORY`` raises it), so an
absurd horizon is a one-line error instead of an out-of-memory kill. A dense curve reports every step up
to :data:`DEFAULT_POINTS` points and thins itself beyond unless ``every`` is given. The optimiser's
``time_limit`` covers all of its work (the WSD and cosine searches as well as L-BFGS-B).
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .errors import DataError
from .limits import enforce

MAX_PEAK = 1e3  # no optimiser trains at a larger LR (as scalefit.curves.MAX_LR for LR tables)
MAX_STEPS = 2**53  # step counts beyond this are not exact in float64 and wrap around in int64
DEFAULT_POINTS = 25_000  # a dense curve reports every step up to this many points, then thins itself
_LR_BYTES = 48  # bytes per step to generate one LR array (the array and its temporaries)
_OUT_BYTES = 120  # bytes per reported point of a curve (numbers, Python lists, JSON text)
_OPT_BYTES = 192  # bytes per step of the optimiser (LR, law gradient, knot interpolation, candidates)

# ------------------------------------------------------------------------------------------------ shapes
COOLDOWN_SHAPES = ("linear", "sqrt", "cosine", "square", "mirror_cosine", "exp")


def cooldown_shape(u: np.ndarray, shape: str, high: float, low: float) -> np.ndarray:
    """phi(u) for u in [0, 1]: the WSD cooldown from ``high`` to ``low`` (Hägele et al. 2024, Sec. 3).

    linear: low + (high-low)(1-u);  sqrt: low + (high-low)(1-sqrt u);  cosine: low + (high-low)(1+cos pi u)/2;
    square: low + (high-low)(1-u^2);  mirror_cosine: 2 linear - cosine;  exp: high^(1-u) low^u (geometric).
    """
    span = high - low
    if shape == "linear":
        return low + span * (1.0 - u)
    if shape == "sqrt":
        return low + span * (1.0 - np.sqrt(u))
    if shape == "cosine":
        return low + 0.5 * span * (1.0 + np.cos(np.pi * u))
    if shape == "square":
        return low + span * (1.0 - u * u)
    if shape == "mirror_cosine":
        return 2.0 * (low + span * (1.0 - u)) - (low + 0.5 * span * (1.0 + np.cos(np.pi * u)))
    if shape == "exp":
        return high ** (1.0 - u) * low**u
    raise DataError(f"cooldown shape '{shape}' is unknown; valid shapes: {', '.join(COOLDOWN_SHAPES)}")


# ------------------------------------------------------------------------------------------------ spec
_COMMON = {
    "peak": "peak LR (required)",
    "steps": "total optimiser steps T, warm-up included (required)",
    "warmup": "linear warm-up steps W (default 0)",
    "warmup_start": "warm-up starts at this fraction of the peak (default 0)",
}
_KINDS: dict[str, dict[str, str]] = {
    "constant": {},
    "cosine": {"floor": "final LR (default 0; '10%' = fraction of peak)"},
    "linear": {"floor": "final LR (default 0)"},
    "wsd": {
        "cooldown": "cooldown length: fraction of T if < 1, else steps (default 0.2)",
        "shape": f"cooldown shape: {'|'.join(COOLDOWN_SHAPES)} (default linear)",
        "floor": "LR at the end of the cooldown (default 0)",
    },
    "two_stage": {"switch": "step where the LR drops (required)", "low": "LR after the switch (required)"},
    "multistep": {
        "milestones": "fractions of T where the LR drops, '/'-separated (default 0.8/0.9)",
        "factor": "multiplier at each milestone (default 1/sqrt(10): the 8-1-1 schedule)",
    },
    "cos_inf": {
        "hold": "final constant phase: fraction of T if < 1, else steps (default 0.2)",
        "floor": "LR of the constant phase (default 10%)",
    },
}
_ALIASES = {"const": "constant", "cos": "cosine", "twostage": "two_stage", "two-stage": "two_stage",
            "811": "multistep", "8-1-1": "multistep", "step": "multistep", "cosine_constant": "cos_inf",
            "cos-inf": "cos_inf"}
_SHAPE_ALIASES = {"1-sqrt": "sqrt", "one_minus_sqrt": "sqrt", "cos": "cosine", "geometric": "exp",
                  "exponential": "exp", "mirror-cosine": "mirror_cosine", "quadratic": "square"}


def _printable(text: str) -> str:
    """User text for a one-line message: control characters (a newline in a spec) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _spec_error(spec: str, why: str) -> DataError:
    return DataError(_printable(f"schedule '{spec}': {why}"))


def _number(spec: str, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        from .units import parse_count

        try:
            value = parse_count(text, what=key)
        except DataError:
            raise _spec_error(spec, f"{key}='{text}' is not a number") from None
    if not math.isfinite(value):
        raise _spec_error(spec, f"{key}='{text}' is not finite")
    return value


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule spec. ``lr()`` gives the dense LR array, ``str()`` the canonical spec."""

    kind: str
    peak: float
    steps: int
    warmup: int = 0
    warmup_start: float = 0.0
    options: Mapping[str, object] = field(default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def parse(cls, spec: str) -> "Schedule":
        return parse_schedule(spec)

    def __str__(self) -> str:
        parts = [f"peak={self.peak:g}", f"steps={self.steps}"]
        if self.warmup:
            parts.append(f"warmup={self.warmup}")
        if self.warmup_start:
            parts.append(f"warmup_start={self.warmup_start:g}")
        for key, value in self.options.items():
            if isinstance(value, tuple):
                value = "/".join(f"{v:g}" for v in value)
            elif isinstance(value, float):
                value = f"{value:g}"
            parts.append(f"{key}={value}")
        return f"{self.kind}:" + ",".join(parts)

    @property
    def spec(self) -> str:
        return str(self)

    # ---------------------------------------------------------------- generation
    def _floor(self, default: float = 0.0) -> float:
        return float(self.options.get("floor", default))

    def _steps_of(self, value: float) -> int:
        """A length given as a fraction of T (< 1) or as a step count."""
        return int(math.floor(value * self.steps)) if value < 1 else int(value)

    def lr(self) -> np.ndarray:
        """The LR at every step t = 0 .. steps-1 (float64), warm-up included.

        Raises :class:`~scalefit.limits.LimitError` before allocating when the array and its temporaries
        would exceed the ``memory_bytes`` limit."""
        check_memory(lr_bytes(self.steps), f"schedule '{self}'")
        T, W, peak = self.steps, self.warmup, self.peak
        t = np.arange(T, dtype=float)
        k = self.kind
        if k == "constant":
            eta = np.full(T, peak)
        elif k in ("cosine", "linear"):
            low = self._floor()
            u = np.clip((t - W) / max(T - W, 1), 0.0, 1.0)
            eta = low + (peak - low) * (0.5 * (1.0 + np.cos(np.pi * u)) if k == "cosine" else 1.0 - u)
        elif k == "wsd":
            low = self._floor()
            D = T - self._steps_of(float(self.options.get("cooldown", 0.2)))
            u = np.clip((t - D) / max(T - D, 1), 0.0, 1.0)
            eta = np.where(t < D, peak, cooldown_shape(u, str(self.options.get("shape", "linear")), peak, low))
        elif k == "two_stage":
            eta = np.where(t < float(self.options["switch"]), peak, float(self.options["low"]))
        elif k == "multistep":
            miles = self.options.get("milestones", (0.8, 0.9))
            factor = float(self.options.get("factor", 10 ** -0.5))
            drops = sum((t >= round(m * T)).astype(float) for m in miles)
            eta = peak * factor**drops
        elif k == "cos_inf":
            low = self._floor(0.1 * peak)
            end = T - self._steps_of(float(self.options.get("hold", 0.2)))
            u = np.clip((t - W) / max(end - W, 1), 0.0, 1.0)
            eta = low + 0.5 * (peak - low) * (1.0 + np.cos(np.pi * u))
        else:  # pragma: no cover - parse() rejects unknown kinds
            raise DataError(f"schedule kind '{k}' is unknown")
        if W:
            eta[:W] = np.linspace(self.warmup_start * peak, peak, W)
        return eta


def parse_schedule(spec: str) -> Schedule:
    """``'wsd:peak=3e-4,steps=24000,...'`` -> :class:`Schedule`; DataError naming what is wrong."""
    if isinstance(spec, Schedule):
        return spec
    text = str(spec).strip()
    if ":" in text:
        name, body = text.split(":", 1)
    else:
        name, body = text, ""
    name = name.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in _KINDS:
        raise _spec_error(text, f"unknown schedule '{name}'; valid: {', '.join(_KINDS)} "
                                f"(write NAME:peak=3e-4,steps=24000,...)")
    valid = {**_COMMON, **_KINDS[name]}
    raw: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in body.split(","))):
        if "=" not in item:
            raise _spec_error(text, f"'{item}' is not key=value; keys for {name}: {', '.join(valid)}")
        key, value = (s.strip() for s in item.split("=", 1))
        key = key.lower().replace("-", "_")
        if key not in valid:
            raise _spec_error(text, f"unknown key '{key}' for {name}; valid keys: {', '.join(valid)}")
        if key in raw:
            raise _spec_error(text, f"key '{key}' is given twice")
        raw[key] = value
    for key in ("peak", "steps") + (("switch", "low") if name == "two_stage" else ()):
        if key not in raw:
            raise _spec_error(text, f"missing required key '{key}' ({valid[key]})")

    peak = _number(text, "peak", raw.pop("peak"))
    if not 0 < peak <= MAX_PEAK:
        raise _spec_error(text, f"peak must be positive and at most {MAX_PEAK:g}, got {peak:g}")
    steps_f = _number(text, "steps", raw.pop("steps"))
    warm_f = _number(text, "warmup", raw.pop("warmup", "0"))
    for key, v in (("steps", steps_f), ("warmup", warm_f)):
        if v != int(v) or v < 0:
            raise _spec_error(text, f"{key} must be a non-negative whole number of steps, got {v:g}")
    steps, warmup = int(steps_f), int(warm_f)
    if steps < 2:
        raise _spec_error(text, "steps must be at least 2")
    if steps > MAX_STEPS:
        raise _spec_error(text, f"steps={steps_f:g} is too large for a step count (at most 2**53)")
    if warmup >= steps:
        raise _spec_error(text, f"warmup ({warmup}) must be shorter than steps ({steps})")
    warmup_start = _number(text, "warmup_start", raw.pop("warmup_start", "0"))
    if not 0 <= warmup_start <= 1:
        raise _spec_error(text, "warmup_start is a fraction of the peak in [0, 1]")

    opts: dict[str, object] = {}
    for key, value in raw.items():
        if key == "shape":
            shape = _SHAPE_ALIASES.get(value.lower(), value.lower())
            if shape not in COOLDOWN_SHAPES:
                raise _spec_error(text, f"shape '{value}' is unknown; valid shapes: {', '.join(COOLDOWN_SHAPES)}")
            opts[key] = shape
        elif key == "milestones":
            miles = tuple(_number(text, key, v) for v in value.split("/") if v.strip())
            if not miles or any(not 0 < m < 1 for m in miles) or list(miles) != sorted(miles):
                raise _spec_error(text, "milestones are increasing fractions of steps in (0, 1), e.g. 0.8/0.9")
            opts[key] = miles
        elif key == "floor" and value.endswith("%"):
            opts[key] = _number(text, key, value[:-1]) / 100.0 * peak
        else:
            opts[key] = _number(text, key, value)
    if "floor" in opts and not 0 <= opts["floor"] <= peak:
        raise _spec_error(text, f"floor must lie in [0, peak={peak:g}], got {opts['floor']:g}")
    for key in ("cooldown", "hold"):
        if key in opts:
            v = opts[key]
            if not (0 < v < 1 or (v >= 1 and v == int(v) and v <= steps - warmup)):
                raise _spec_error(text, f"{key} is a fraction in (0, 1) or a whole number of steps <= {steps - warmup}")
    if name == "wsd" and opts.get("shape") == "exp" and opts.get("floor", 0.0) <= 0:
        raise _spec_error(text, "shape=exp (geometric) needs floor > 0, e.g. floor=3e-5")
    if name == "two_stage":
        if not 0 < opts["switch"] < steps or opts["switch"] != int(opts["switch"]):
            raise _spec_error(text, f"switch must be a step in (0, {steps})")
        opts["switch"] = int(opts["switch"])
        if not 0 <= opts["low"] <= peak:
            raise _spec_error(text, f"low must lie in [0, peak={peak:g}]")
    if name == "multistep" and "factor" in opts and not 0 < opts["factor"] <= 1:
        raise _spec_error(text, "factor must lie in (0, 1]")
    return Schedule(name, peak, steps, warmup, warmup_start, opts)


def schedule_help() -> str:
    """Every schedule kind and its keys, for --help texts and error messages."""
    lines = ["common keys: " + ", ".join(f"{k} ({v})" for k, v in _COMMON.items())]
    for kind, keys in _KINDS.items():
        lines.append(f"{kind}: " + (", ".join(f"{k} ({v})" for k, v in keys.items()) or "no extra keys"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ resources
def check_memory(nbytes: float, context: str) -> None:
    """Hold an estimate of working memory against the ``memory_bytes`` limit (LimitError naming it)."""
    enforce("memory_bytes", nbytes, context)


def lr_bytes(steps: int) -> int:
    """Bytes to generate one dense LR array of ``steps`` steps."""
    return _LR_BYTES * int(steps)


def curve_bytes(law, steps: int, points: int, n_theta: int = 1) -> int:
    """Working memory of ``law.curve`` on a ``steps``-step schedule at ``points`` steps with ``n_theta``
    parameter vectors, plus the reported numbers; the law's own estimate when it has one."""
    own = getattr(law, "curve_bytes", None)
    core = own(int(steps), int(points), int(n_theta)) if callable(own) else (
        64 * int(steps) + 8 * int(points) * (6 + 4 * int(n_theta)))
    return int(core) + _OUT_BYTES * int(points)


def optimize_bytes(steps: int) -> int:
    """Working memory of :func:`optimize_schedule` (and the WSD search) on a ``steps``-step horizon."""
    return _OPT_BYTES * int(steps)


def default_every(steps: int) -> int:
    """The reporting stride of a dense curve when none is asked: 1 up to DEFAULT_POINTS steps."""
    return max(1, -(-int(steps) // DEFAULT_POINTS))


def check_step(value, steps: int, what: str = "--at", schedule: str = "") -> int:
    """A step index of a ``steps``-step schedule (0 .. steps-1), or DataError naming ``what``."""
    try:
        step = int(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{what} {value}: not a whole step number") from None
    if step != value or not 0 <= step < steps:
        which = f"schedule '{schedule}'" if schedule else "the schedule"
        raise DataError(f"{what} {value}: {which} has steps 0..{steps - 1}")
    return step


def as_lr(schedule: "str | Schedule | np.ndarray") -> np.ndarray:
    """A spec string, a Schedule or an array -> validated dense float64 LR array."""
    if isinstance(schedule, (str, Schedule)):
        return parse_schedule(schedule).lr()
    eta = np.asarray(schedule, dtype=float)
    if eta.ndim != 1 or eta.size < 2:
        raise DataError("an LR sequence must be a 1-d array with at least 2 steps")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise DataError("an LR sequence must be finite and non-negative")
    return eta


# ------------------------------------------------------------------------------------------------ evaluation
def final_loss(law, theta, eta: np.ndarray, warmup: int | None = None) -> np.ndarray:
    """Predicted loss at the last step of ``eta`` for each row of theta (k, p) -> (k,)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    if theta.shape[0] == 1 and hasattr(law, "final_loss_grad"):
        return np.array([law.final_loss_grad(theta[0], eta, warmup)[0]])
    return law.curve(theta, eta, [eta.size - 1])[:, 0]


def _loss_only(law, theta, warmup):
    theta = np.asarray(theta, dtype=float).ravel()
    if hasattr(law, "final_loss"):  # the same number as final_loss_grad's, without the gradient's cost
        return lambda eta: law.final_loss(theta, eta, warmup)
    if hasattr(law, "final_loss_grad"):
        return lambda eta: law.final_loss_grad(theta, eta, warmup)[0]
    return lambda eta: float(law.curve(theta[None], eta, [eta.size - 1])[0, 0])


@dataclass
class OptimizedSchedule:
    """Result of :func:`optimize_schedule`: the LR at every step and how it compares."""

    lr: np.ndarray
    final_loss: float
    peak: float
    warmup: int
    steps: int
    floor: float
    best_wsd: tuple[str, float]  # (spec, predicted final loss)
    best_cosine: tuple[str, float]
    start: tuple[str, float]  # where the free-form optimiser started
    iterations: int = 0
    seconds: float = 0.0
    success: bool = True
    message: str = ""
    trace: list = field(default_factory=list)  # objective at every evaluation

    def to_dict(self) -> dict:
        return {
            "final_loss": self.final_loss, "peak": self.peak, "warmup": self.warmup, "steps": self.steps,
            "floor": self.floor, "end_lr": float(self.lr[-1]),
            "best_wsd": {"schedule": self.best_wsd[0], "final_loss": self.best_wsd[1]},
            "best_cosine": {"schedule": self.best_cosine[0], "final_loss": self.best_cosine[1]},
            "gain_vs_wsd": self.final_loss - self.best_wsd[1], "gain_vs_cosine": self.final_loss - self.best_cosine[1],
            "iterations": self.iterations, "seconds": self.seconds, "success": self.success, "message": self.message,
        }


def _base(kind: str, peak: float, steps: int, warmup: int, warmup_start: float, **opts) -> Schedule:
    return Schedule(kind, float(peak), int(steps), int(warmup), float(warmup_start), opts)


class Budget:
    """One time limit and one progress report for a whole schedule search (WSD grid, cosine search,
    free-form optimiser, intervals). ``progress(phase, done, total)`` is called as work completes;
    ``over()`` says that the time is up (each search then keeps the best candidate it has)."""

    def __init__(self, time_limit: float | None = None, progress=None):
        if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
            raise DataError(f"--time-limit {time_limit:g}: use a positive number of seconds")
        self.t0 = time.perf_counter()
        self.time_limit = time_limit
        self.progress = progress
        self.stopped: str = ""  # the phase the time limit cut short, if any

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def over(self) -> bool:
        return self.time_limit is not None and self.elapsed() > self.time_limit

    def stop(self, phase: str, done: int, total: int) -> None:
        if not self.stopped:
            self.stopped = f"{phase} after {done} of {total} evaluations"

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    @property
    def message(self) -> str:
        return (f"stopped at the time limit ({self.time_limit:g} s) in the {self.stopped}; kept the best "
                f"schedule found (--time-limit raises the limit)") if self.stopped else ""


def search_cosine(law, theta, *, peak, steps, warmup=0, warmup_start=0.0, floor=0.0, budget: Budget | None = None):
    """Best cosine (to its own end LR >= floor) by a 1-d search over the end LR: (Schedule, loss)."""
    budget = budget or Budget()
    loss = _loss_only(law, theta, warmup)
    ends = np.unique(np.concatenate([[floor], floor + (peak - floor) * np.array([0.01, 0.03, 0.1, 0.2, 0.3, 0.5])]))
    scored = []
    for i, e in enumerate(ends):
        if scored and budget.over():
            budget.stop("cosine search", i, ends.size)
            break
        s = _base("cosine", peak, steps, warmup, warmup_start, floor=float(e))
        scored.append((loss(s.lr()), s))
        budget.report("cosine search", i + 1, ends.size)
    best = min(scored, key=lambda c: c[0])
    return best[1], float(best[0])


_WSD_FRACS = (0.2, 0.15, 0.25, 0.12, 0.3, 0.1, 0.4, 0.08, 0.5, 0.06, 0.04, 0.7, 0.02, 0.9)  # likeliest first


def search_wsd(law, theta, *, peak, steps, warmup=0, warmup_start=0.0, floor=0.0, shapes=None,
               budget: Budget | None = None):
    """Low-dimensional search over the WSD family (cooldown fraction, shape, end LR >= floor).

    A grid over the three, then a bounded 1-d refinement of the cooldown length for the best shape and
    end LR. Returns (Schedule, predicted final loss). Near the optimum the landscape is flat: the best
    WSD lands within ~1e-3 of the free-form optimum (Luo et al. 2025; reference Sec. 2.6). The grid runs
    the likeliest cooldown fractions first, so a search cut short by ``budget`` keeps a good candidate.
    """
    from scipy.optimize import minimize_scalar

    budget = budget or Budget()
    loss = _loss_only(law, theta, warmup)
    shapes = shapes or ("linear", "sqrt", "cosine", "square", "mirror_cosine")
    post = steps - warmup
    ends = np.unique(np.concatenate([[floor], floor + (peak - floor) * np.array([0.01, 0.03, 0.1])]))
    grid = [(f, shape, end) for f in _WSD_FRACS for shape in shapes for end in ends]
    best = (np.inf, None)
    for i, (f, shape, end) in enumerate(grid):
        if best[1] is not None and budget.over():
            budget.stop("WSD search", i, len(grid))
            return best[1], float(best[0])
        cool = max(1, int(round(f * post)))
        s = _base("wsd", peak, steps, warmup, warmup_start, cooldown=cool, shape=shape, floor=float(end))
        v = loss(s.lr())
        if v < best[0]:
            best = (v, s)
        budget.report("WSD search", i + 1, len(grid))
    s0 = best[1]

    def at(cool):
        cool = int(round(np.clip(cool, 1, post)))
        return _base("wsd", peak, steps, warmup, warmup_start, cooldown=cool, shape=s0.options["shape"],
                     floor=s0.options["floor"])

    def scored(c):
        if budget.over():
            raise _TimeUp
        cand = at(c)
        v = loss(cand.lr())
        if v < best[0]:
            best_box[0] = (v, cand)
        return v

    best_box = [best]
    c0 = s0.options["cooldown"]
    try:
        res = minimize_scalar(scored, bounds=(max(1, 0.6 * c0), min(post, 1.5 * c0)),
                              method="bounded", options={"xatol": max(1.0, 0.002 * post)})
        scored(res.x)
    except _TimeUp:
        budget.stop("WSD refinement", 0, 1)
    best = best_box[0]
    return best[1], float(best[0])


def optimize_schedule(law, theta, *, peak: float, steps: int, warmup: int = 0, warmup_start: float = 0.0,
                      floor: float = 0.0, max_iter: int = 150, time_limit: float | None = 60.0,
                      n_knots: int = 400, progress=None, budget: Budget | None = None) -> OptimizedSchedule:
    """The monotone non-increasing schedule (after a fixed warm-up, starting at ``peak``) that minimises
    the law's predicted loss at the last step (Luo et al. 2025, Sec. 5).

    Parametrisation: the LR is piecewise linear between a few hundred knots (dense near the end), with
    knot values floor + (peak - floor) exp(c_j), c_j = sum_{i<=j} v_i, v_i <= 0 and c_0 = 0 at the first
    post-warm-up step. Every iterate is therefore monotone, >= floor and starts at the peak; the box
    constraint on v suits L-BFGS-B; the law's O(T) analytic gradient dL/deta maps to knots through the
    interpolation weights and to v by a reverse cumulative sum. The search starts from the best WSD of
    :func:`search_wsd` (the landscape is flat, so a good start matters more than iterations) and keeps
    the best iterate. The official optimiser (Adam on per-step decrements, 10,000 iterations) is replaced
    by this because it needs about a hundred gradient evaluations instead of ten thousand.

    ``time_limit`` (seconds, None for none) covers the whole call: the WSD and cosine searches and the
    optimiser; whatever is cut short keeps its best candidate and says so in ``message``.
    ``progress(phase, done, total)`` reports each evaluation. ``budget`` (a :class:`Budget`) replaces
    ``time_limit`` and ``progress``, to share one limit with the caller's further work.
    """
    from scipy.optimize import minimize

    if not hasattr(law, "final_loss_grad"):
        raise DataError(f"law '{law.name}' has no final-loss gradient; use the WSD search (--family wsd)")
    if not (0 <= warmup < steps - 1):
        raise DataError(f"warm-up ({warmup}) must leave at least 2 steps of the {steps}-step horizon")
    if not 0 <= floor < peak:
        raise DataError(f"floor ({floor:g}) must lie in [0, peak={peak:g})")
    budget = budget or Budget(time_limit, progress)
    check_memory(optimize_bytes(steps), f"optimising a {steps:,}-step schedule")
    t0 = budget.t0
    theta = np.asarray(theta, dtype=float).ravel()
    kw = dict(peak=peak, steps=steps, warmup=warmup, warmup_start=warmup_start, floor=floor, budget=budget)
    wsd, wsd_loss = search_wsd(law, theta, **kw)
    cos, cos_loss = search_cosine(law, theta, **kw)

    head = _base("constant", peak, steps, warmup, warmup_start).lr()[:warmup]
    span = peak - floor
    tiny = 1e-12 * span
    v_lo = -30.0  # bounds exp() away from underflow; never binding in practice
    # Knots: the LR is piecewise linear between them, dense near the end where the cooldown lives
    # (distance to the last step spaced geometrically); a few hundred knots resolve the optimum's shape
    # while keeping L-BFGS-B cheap. The law's gradient maps to knots through the interpolation weights.
    post = steps - warmup
    dist = np.unique(np.round(np.geomspace(1, post - 1, n_knots)).astype(np.int64))
    knots = np.unique(np.concatenate([[0], (post - 1) - dist[::-1], [post - 1]]))
    t = np.arange(post)
    left = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, knots.size - 2)
    frac = (t - knots[left]) / (knots[left + 1] - knots[left])

    def eta_of(v):
        c = np.concatenate([[0.0], np.cumsum(v)])  # knot 0 sits at the peak
        kv = floor + span * np.exp(c)
        tail = kv[left] + (kv[left + 1] - kv[left]) * frac
        # exact arithmetic is already monotone; accumulate guards against a one-ulp rise
        return np.concatenate([head, np.minimum.accumulate(tail)]), kv

    start = wsd.lr()[warmup:][knots]
    c0 = np.log(np.maximum(start - floor, tiny) / span)
    v0 = np.clip(np.diff(c0), v_lo, 0.0)
    best = {"f": np.inf, "v": v0}
    calls, trace = [0], []

    def fg(v):
        calls[0] += 1
        eta, kv = eta_of(v)
        f, g = law.final_loss_grad(theta, eta, warmup)
        gt = g[warmup:]
        gk = np.bincount(left, gt * (1.0 - frac), knots.size) + np.bincount(left + 1, gt * frac, knots.size)
        gc = gk * (kv - floor)  # d/dc_j
        gv = np.cumsum(gc[::-1])[::-1][1:]  # d/dv_i = sum_{j >= i} d/dc_j
        if f < best["f"]:
            best.update(f=f, v=v.copy())
        trace.append(f)
        budget.report("free-form optimiser", min(calls[0], max_iter), max_iter)
        if budget.over():
            raise _TimeUp
        return f, gv

    message, success, nit = "converged", True, 0
    if budget.stopped or budget.over():
        budget.stop("free-form optimiser", 0, max_iter)
        best["v"] = v0
    else:
        try:
            res = minimize(fg, v0, jac=True, method="L-BFGS-B", bounds=[(v_lo, 0.0)] * v0.size,
                           options={"maxiter": max_iter, "maxcor": 20, "ftol": 1e-15, "gtol": 1e-12})
            nit, message, success = int(res.nit), str(res.message), bool(res.success) or res.status == 1
        except _TimeUp:
            budget.stop("free-form optimiser", calls[0], max_iter)
    if budget.stopped:
        message, success = budget.message, False
    eta, _ = eta_of(best["v"])
    f = float(best["f"])
    if not wsd_loss >= f:  # never report worse than the parametric start (nor an unevaluated iterate)
        eta, f = wsd.lr(), wsd_loss
    return OptimizedSchedule(eta, f, float(peak), int(warmup), int(steps), float(floor), (str(wsd), wsd_loss),
                             (str(cos), cos_loss), (str(wsd), wsd_loss), nit or calls[0],
                             time.perf_counter() - t0, success, message, trace)


class _TimeUp(Exception):
    pass


# ------------------------------------------------------------------------------------------------ predict / compare
def _interval(samples: np.ndarray, ci: float) -> tuple[float, float]:
    q = 100 * (1 - ci) / 2
    lo, hi = np.nanpercentile(samples, [q, 100 - q])
    return float(lo), float(hi)


def prediction_steps(eta: np.ndarray, every: int = 1) -> np.ndarray:
    """Steps at which to report a curve: every ``every`` steps from the first with LR area, plus the last."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise DataError(f"--every {every}: use a positive whole number of steps")
    every = min(int(every), eta.size)  # a larger stride reports the first and the last step only
    first = int(np.argmax(np.cumsum(eta) > 0))
    return np.unique(np.r_[np.arange(first, eta.size, every), eta.size - 1])


def predict_schedule(law, theta, eta, *, every: int | None = None, draws: np.ndarray | None = None,
                     ci: float = 0.95, at: int | None = None, progress=None) -> dict:
    """The law's predicted loss curve under ``eta``, and the loss at the last step (and at step ``at``),
    each with its own percentile interval over bootstrap ``draws`` when given.

    ``every``: the reporting stride; None reports every step up to DEFAULT_POINTS points and thins
    beyond (``out["every"]`` says which). Keys name their step: ``final_loss``, ``final_loss_low``,
    ``final_loss_high`` are at ``final_step``; ``loss_at_step``, ``loss_at_step_low``,
    ``loss_at_step_high`` at ``at_step``. ``progress(phase, done, total)`` hears how far each part got
    (when ``law.curve`` takes a progress callback). Memory is checked against the ``memory_bytes``
    limit before the work."""
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
    out = {"steps": steps.tolist(), "loss": loss.tolist(), "every": int(min(stride, T)), "final_step": int(T - 1),
           "final_loss": float(exact[0]), "peak_lr": float(eta.max()), "end_lr": float(eta[-1])}
    if target is not None:
        out["at_step"], out["loss_at_step"] = target, float(exact[1])
    if n_draws:
        with np.errstate(all="ignore"):
            samples = curve(np.asarray(draws, float), quoted, "intervals")
        out["ci"] = ci
        out["samples"] = samples[:, 0]
        out["final_loss_low"], out["final_loss_high"] = _interval(samples[:, 0], ci)
        if target is not None:
            out["samples_at_step"] = samples[:, 1]
            out["loss_at_step_low"], out["loss_at_step_high"] = _interval(samples[:, 1], ci)
    return out


def compare_schedules(law, theta, schedules: Mapping[str, np.ndarray], *, draws=None, ci: float = 0.95,
                      at: int | None = None, progress=None) -> list[dict]:
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
        row = {"schedule": name, "step": target, "final_loss": value, "end_lr": float(eta[-1]), "steps": int(eta.size)}
        if draws is not None and len(draws) >= 2:
            with np.errstate(all="ignore"):
                row["samples"] = law.curve(np.asarray(draws, float), eta, [target])[:, 0]
            row["low"], row["high"] = _interval(row["samples"], ci)
        rows.append(row)
        if progress is not None:
            progress("schedules", i + 1, len(schedules))
    rows.sort(key=lambda r: r["final_loss"])
    best = rows[0]
    for r in rows:
        r["vs_best"] = r["final_loss"] - best["final_loss"]
        if "samples" in r:
            r["vs_best_low"], r["vs_best_high"] = _interval(r["samples"] - best["samples"], ci)
    return rows


def write_schedule_csv(path, eta: np.ndarray, *, force: bool = False):
    """``step,lr`` CSV a trainer can read, written atomically; never overwrites without ``force``."""
    from ._io import atomic_write

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
