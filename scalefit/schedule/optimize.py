"""Optimising an LR schedule for a curve law: the free-form optimiser and the WSD and cosine searches.

:func:`optimize_schedule` minimises a curve law's predicted final loss over monotone non-increasing
post-warm-up schedules (Luo et al. 2025, Sec. 5), with the law's analytic gradient; ``family="wsd"``
keeps to the WSD family (:func:`search_wsd`, the cheap low-dimensional search that also seeds the
free-form optimiser). Either way the result (:class:`OptimizedSchedule`) carries the best WSD and the best
cosine as :class:`~scalefit.schedule.spec.Schedule` objects with their predicted losses, and, given
bootstrap draws, percentile intervals of the final loss and of the gains over both (paired: the same draw
for the three schedules). :func:`optimize_for` does the same for a
:class:`~scalefit.schedule.params.CurveParams` (what ``scalefit schedule optimize`` calls).

Resources: the optimiser holds O(steps) arrays; :func:`optimize_bytes` is checked against the
``memory_bytes`` limit first. One :class:`Budget` (``time_limit`` seconds) covers all of the work: the
WSD and cosine searches, the free-form optimiser and the intervals; whatever is cut short keeps its best candidate and
says so in ``message``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, option_error
from ..law import CurveLaw
from .descent import minimize_box, minimize_interval
from .evaluate import _interval, horizon_warnings
from .spec import Schedule, check_memory

if TYPE_CHECKING:
    from .params import CurveParams

_OPT_BYTES = 192  # bytes per step of the optimiser (LR, law gradient, knot interpolation, candidates)
FAMILIES = ("free", "wsd")
# the keys of a WSD-family result, in the order ``scalefit schedule optimize --family wsd --json`` prints
_WSD_KEYS = ("final_loss", "best_wsd", "best_cosine", "gain_vs_wsd", "gain_vs_cosine", "seconds", "spec", "end_lr",
             "peak", "warmup", "steps", "floor", "success", "message")


def optimize_bytes(steps: int) -> int:
    """Working memory of :func:`optimize_schedule` (and the WSD search) on a ``steps``-step horizon."""
    return _OPT_BYTES * int(steps)


_KEEP_FREED = 2 << 20  # float64s: a 16 MB block (see _keep_freed_pages)


def _keep_freed_pages() -> None:
    """Let the process reuse the pages of freed arrays instead of faulting in fresh ones (glibc's malloc;
    elsewhere harmless).

    The searches evaluate the law hundreds of times on arrays over every step, each evaluation allocating
    and freeing a dozen of them. glibc hands freed memory at the top of the heap back to the system once
    more than its trim threshold is free (twice the first large freed array: a few hundred KB here), so
    every evaluation faulted its pages in again: 0.4 of the 1.7 CPU seconds of ``schedule optimize`` went
    to the kernel. Freeing one block large enough to be served by mmap raises that threshold to twice the
    block's size (malloc's dynamic threshold), so up to 32 MB of freed heap is kept for the next arrays. The setting is the
    process's, not this call's: later work keeps up to 32 MB of freed heap too (glibc's own rule after any
    large array is freed; set ``MALLOC_TRIM_THRESHOLD_`` to choose otherwise)."""
    np.empty(_KEEP_FREED)  # allocated and freed at once, never touched


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (np.unique imports numpy.ma: 20 ms of the whole command)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def _loss_only(law, theta, warmup):
    theta = np.asarray(theta, dtype=float).ravel()
    return lambda eta: law.final_loss(theta, eta, warmup)  # final_loss_grad's number, without the gradient



@dataclass(eq=False)
class OptimizedSchedule:
    """Result of :func:`optimize_schedule`: the LR at every step and how it compares.

    ``best_wsd``, ``best_cosine`` and ``start`` (where the free-form optimiser started) are
    ``(Schedule, predicted final loss)``. The intervals are set when bootstrap draws were given and the
    time limit left room for them (else ``interval_note`` says why not)."""

    lr: np.ndarray
    final_loss: float
    peak: float
    warmup: int
    steps: int
    floor: float
    best_wsd: tuple[Schedule, float]
    best_cosine: tuple[Schedule, float]
    start: tuple[Schedule, float]
    iterations: int = 0
    seconds: float = 0.0
    success: bool = True
    message: str = ""
    trace: list = field(default_factory=list)  # objective at every evaluation
    family: str = "free"
    time_limit: float | None = None
    time_limited: bool = False  # the time limit cut a phase short (``message`` says which)
    ci: float | None = None
    final_loss_interval: tuple[float, float] | None = None
    gain_vs_wsd_interval: tuple[float, float] | None = None
    gain_vs_cosine_interval: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)  # the horizon runs past the fitted curves
    interval_note: str = ""  # why there are no intervals despite draws

    @property
    def gain_vs_wsd(self) -> float:
        return self.final_loss - self.best_wsd[1]

    @property
    def gain_vs_cosine(self) -> float:
        return self.final_loss - self.best_cosine[1]

    @property
    def monotone(self) -> bool:
        return bool(np.all(np.diff(self.lr[self.warmup:]) <= 0))

    @property
    def starts_at_peak(self) -> bool:
        return bool(self.lr[self.warmup] == self.peak)

    def to_dict(self) -> dict:
        out = {
            "final_loss": self.final_loss, "peak": self.peak, "warmup": self.warmup, "steps": self.steps,
            "floor": self.floor, "end_lr": float(self.lr[-1]),
            "best_wsd": {"schedule": str(self.best_wsd[0]), "final_loss": self.best_wsd[1]},
            "best_cosine": {"schedule": str(self.best_cosine[0]), "final_loss": self.best_cosine[1]},
            "gain_vs_wsd": self.gain_vs_wsd, "gain_vs_cosine": self.gain_vs_cosine,
            "iterations": self.iterations, "seconds": self.seconds, "success": self.success, "message": self.message,
        }
        if self.family == "wsd":  # no iterations; the winning spec instead
            out["spec"] = str(self.best_wsd[0])
            out = {key: out[key] for key in _WSD_KEYS}
        out.update(monotone=self.monotone, starts_at_peak=self.starts_at_peak, family=self.family,
                   time_limit=self.time_limit,
                   warnings=self.warnings + ([self.interval_note] if self.interval_note else []))
        if self.final_loss_interval is not None:
            out.update(final_loss_interval=self.final_loss_interval, gain_vs_wsd_interval=self.gain_vs_wsd_interval,
                       gain_vs_cosine_interval=self.gain_vs_cosine_interval)
        return out


def _base(kind: str, peak: float, steps: int, warmup: int, warmup_start: float, **opts) -> Schedule:
    return Schedule(kind, float(peak), int(steps), int(warmup), float(warmup_start), opts)


class Budget:
    """One time limit and one progress report for a whole schedule search (WSD grid, cosine search,
    free-form optimiser, intervals). ``progress(phase, done, total)`` is called as work completes;
    ``over()`` says that the time is up (each search then keeps the best candidate it has)."""

    def __init__(self, time_limit: float | None = None, progress=None):
        if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
            raise option_error("time_limit", time_limit, "use a positive number of seconds")
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
    ends = _distinct(np.concatenate([[floor], floor + (peak - floor) * np.array([0.01, 0.03, 0.1, 0.2, 0.3, 0.5])]))
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
    budget = budget or Budget()
    loss = _loss_only(law, theta, warmup)
    shapes = shapes or ("linear", "sqrt", "cosine", "square", "mirror_cosine")
    post = steps - warmup
    ends = _distinct(np.concatenate([[floor], floor + (peak - floor) * np.array([0.01, 0.03, 0.1])]))
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
        minimize_interval(scored, max(1, 0.6 * c0), min(post, 1.5 * c0), xtol=max(1.0, 0.002 * post))
    except _TimeUp:
        budget.stop("WSD refinement", 0, 1)
    best = best_box[0]
    return best[1], float(best[0])



def optimize_schedule(law, theta, *, peak: float, steps: int, warmup: int = 0, warmup_start: float = 0.0,
                      floor: float = 0.0, family: str = "free", draws: np.ndarray | None = None, ci: float = 0.95,
                      fitted_steps: int | None = None, max_iter: int = 150, time_limit: float | None = 60.0,
                      n_knots: int = 400, progress=None, budget: Budget | None = None) -> OptimizedSchedule:
    """The monotone non-increasing schedule (after a fixed warm-up, starting at ``peak``) that minimises
    the law's predicted loss at the last step (Luo et al. 2025, Sec. 5); ``family="wsd"``: the best WSD.

    Parametrisation: the LR is piecewise linear between a few hundred knots (dense near the end), with
    knot values floor + (peak - floor) exp(c_j), c_j = sum_{i<=j} v_i, v_i <= 0 and c_0 = 0 at the first
    post-warm-up step. Every iterate is therefore monotone, >= floor and starts at the peak; the box
    constraint on v suits a projected quasi-Newton method (:func:`~scalefit.schedule.descent.minimize_box`); the law's O(T) analytic gradient dL/deta maps to knots through the
    interpolation weights and to v by a reverse cumulative sum. The search starts from the best WSD of
    :func:`search_wsd` (the landscape is flat, so a good start matters more than iterations) and keeps
    the best iterate. The official optimiser (Adam on per-step decrements, 10,000 iterations) is replaced
    by this because it needs about a hundred gradient evaluations instead of ten thousand.

    ``draws`` (B, p) give intervals at level ``ci`` of the final loss and of the gains over the best WSD
    and cosine; ``fitted_steps`` (the longest fitted curve) adds a warning when ``steps`` runs past it.
    ``time_limit`` (seconds, None for none) covers the whole call: the WSD and cosine searches, the
    optimiser and the intervals; whatever is cut short keeps its best candidate and says so in
    ``message``. ``progress(phase, done, total)`` reports each evaluation. ``budget`` (a :class:`Budget`)
    replaces ``time_limit`` and ``progress``, to share one limit with the caller's further work.
    """
    if family not in FAMILIES:
        raise DataError(f"family '{family}': use free or wsd")
    if not isinstance(law, CurveLaw):
        raise DataError(f"law '{law.name}' is not a loss-curve law; schedule optimisation needs one "
                        f"(e.g. multipower, lr_annealing)")
    if not (0 <= warmup < steps - 1):
        raise DataError(f"warm-up ({warmup}) must leave at least 2 steps of the {steps}-step horizon")
    if not 0 <= floor < peak:
        raise DataError(f"floor ({floor:g}) must lie in [0, peak={peak:g})")
    budget = budget or Budget(time_limit, progress)
    _keep_freed_pages()
    check_memory(optimize_bytes(steps), f"optimising a {steps:,}-step schedule")
    theta = np.asarray(theta, dtype=float).ravel()
    kw = dict(peak=peak, steps=steps, warmup=warmup, warmup_start=warmup_start, floor=floor, budget=budget)
    wsd, wsd_loss = search_wsd(law, theta, **kw)
    cos, cos_loss = search_cosine(law, theta, **kw)
    if family == "wsd":
        res = OptimizedSchedule(wsd.lr(), wsd_loss, float(peak), int(warmup), int(steps), float(floor),
                                (wsd, wsd_loss), (cos, cos_loss), (wsd, wsd_loss), success=not budget.stopped,
                                message=budget.message or "searched the whole grid", family="wsd")
    else:
        res = _free_form(law, theta, (wsd, wsd_loss), (cos, cos_loss), budget, peak=peak, steps=steps,
                         warmup=warmup, warmup_start=warmup_start, floor=floor, max_iter=max_iter, n_knots=n_knots)
    res.time_limit, res.time_limited = budget.time_limit, bool(budget.stopped)
    res.warnings = horizon_warnings({"the optimised schedule": int(steps)}, fitted_steps)
    if draws is not None and len(draws) >= 2:
        _gain_intervals(res, law, np.asarray(draws, float), ci, budget)
    res.seconds = budget.elapsed()
    return res


def optimize_for(params: "CurveParams", **options) -> OptimizedSchedule:
    """:func:`optimize_schedule` with ``params``' law, theta, draws, level and fitted horizon; ``options``
    are the schedule's (peak, steps, warmup, warmup_start, floor) and the search's (family, time_limit,
    progress, ...)."""
    return optimize_schedule(params.law, params.theta, draws=params.draws, ci=params.ci,
                             fitted_steps=params.fitted_steps, **options)


def _free_form(law, theta, wsd_start, cos_best, budget: Budget, *, peak, steps, warmup, warmup_start, floor,
               max_iter, n_knots) -> OptimizedSchedule:
    """Projected L-BFGS over the knot decrements, from the best WSD (see :func:`optimize_schedule`)."""
    wsd, wsd_loss = wsd_start
    head = _base("constant", peak, steps, warmup, warmup_start).lr()[:warmup]
    span = peak - floor
    tiny = 1e-12 * span
    v_lo = -30.0  # bounds exp() away from underflow; never binding in practice
    # Knots: the LR is piecewise linear between them, dense near the end where the cooldown lives
    # (distance to the last step spaced geometrically); a few hundred knots resolve the optimum's shape
    # while keeping the optimiser cheap. The law's gradient maps to knots through the interpolation weights.
    post = steps - warmup
    dist = _distinct(np.round(np.geomspace(1, post - 1, n_knots)).astype(np.int64))
    knots = _distinct(np.concatenate([[0], (post - 1) - dist[::-1], [post - 1]]))
    t = np.arange(post)
    left = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, knots.size - 2)
    frac = (t - knots[left]) / (knots[left + 1] - knots[left])
    # One LR array and one scratch array serve every evaluation (no fresh arrays over every step).
    eta = np.empty(steps)
    eta[:warmup] = head
    tail, scratch = eta[warmup:], np.empty(post)

    def eta_of(v):
        c = np.concatenate([[0.0], np.cumsum(v)])  # knot 0 sits at the peak
        kv = floor + span * np.exp(c)
        np.take(kv, left, out=tail)
        np.take(np.diff(kv), left, out=scratch)
        np.multiply(scratch, frac, out=scratch)
        np.add(tail, scratch, out=tail)
        # exact arithmetic is already monotone; accumulate guards against a one-ulp rise
        np.minimum.accumulate(tail, out=tail)
        return eta, kv

    start = wsd.lr()[warmup:][knots]
    c0 = np.log(np.maximum(start - floor, tiny) / span)
    v0 = np.clip(np.diff(c0), v_lo, 0.0)
    best = {"f": np.inf, "v": v0}
    calls, trace = [0], []
    segments = knots[:-1]  # segment i: steps knots[i] .. knots[i+1] - 1 (the last one also the last step)

    def fg(v):
        calls[0] += 1
        lr, kv = eta_of(v)
        f, g = law.final_loss_grad(theta, lr, warmup)
        gt = g[warmup:]
        whole = np.add.reduceat(gt, segments)
        np.multiply(gt, frac, out=scratch)
        upper = np.add.reduceat(scratch, segments)  # the share of each segment's right knot
        gk = np.zeros(knots.size)
        gk[:-1] = whole - upper
        gk[1:] += upper
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
            res = minimize_box(fg, v0, v_lo, 0.0, max_iter=max_iter)
            nit, message = res.iterations, res.message
            success = res.converged or res.iterations == max_iter  # the limit is the design, not a failure
        except _TimeUp:
            budget.stop("free-form optimiser", calls[0], max_iter)
    if budget.stopped:
        message, success = budget.message, False
    eta, _ = eta_of(best["v"])
    f = float(best["f"])
    if not wsd_loss >= f:  # never report worse than the parametric start (nor an unevaluated iterate)
        eta, f = wsd.lr(), wsd_loss
    return OptimizedSchedule(eta, f, float(peak), int(warmup), int(steps), float(floor), (wsd, wsd_loss), cos_best,
                             (wsd, wsd_loss), nit or calls[0], budget.elapsed(), success, message, trace)


def _gain_intervals(res: OptimizedSchedule, law, draws: np.ndarray, ci: float, budget: Budget) -> None:
    """Intervals of the final loss and of the gains over the best WSD and cosine, from the same draws."""
    if budget.over():
        res.interval_note = f"no intervals: the time limit ({budget.time_limit:g} s) was reached first"
        return
    finals = []
    for i, eta in enumerate((res.lr, res.best_wsd[0].lr(), res.best_cosine[0].lr())):
        finals.append(law.curve(draws, eta, [res.steps - 1])[:, 0])
        budget.report("intervals", i + 1, 3)
    res.ci = ci
    res.final_loss_interval = _interval(finals[0], ci)
    res.gain_vs_wsd_interval = _interval(finals[0] - finals[1], ci)
    res.gain_vs_cosine_interval = _interval(finals[0] - finals[2], ci)


class _TimeUp(Exception):
    pass
