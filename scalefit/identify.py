"""Which fitted parameters the data do not pin down.

:func:`undetermined` names the free parameters whose value the data leave open: moving one of them by a
factor of ``factor`` (2 by default: to half or double its value; a parameter optimised on a linear scale
by +-50 % of its size), while the others re-adjust, raises the objective by less than the noise does.
A report can then say "C, beta are not determined by these curves" instead of printing a silent interval.

Method (measured on the official Multi-Power-Law curves and on Epoch's Chinchilla points; numbers in
the module's tests and in the report of issue #12):

1. **Directions** -- the Jacobian of the log residuals at the optimum, weighted as the solver weights
   rows (row weights times the Huber IRLS weights), in the optimiser's space (log for scale parameters),
   columns scaled to unit norm, then its SVD. A right singular vector with a small singular value is a
   combination of parameters the data barely see. Its size alone does not decide: a well-determined
   Chinchilla fit on 240 points has a smallest ratio of 4e-3, while the Multi-Power fit at 400M, whose C
   moves by a factor of 2 at noise-level cost, has 3e-3 and 8e-3. So the SVD is the cheap screen, and
   the decision is statistical:
2. **Screen** -- the quadratic (linearised) profile: the objective rise for a factor-``factor`` change of
   parameter j with the others re-adjusted is ``0.5 * step_j**2 / var_j`` with ``var_j`` the diagonal of
   the inverse built from the SVD (singular values floored at 1e-12 of the largest, so a parameter on an
   exact null direction gets a rise of ~0). Parameters whose quadratic rise exceeds ``screen`` (30) times
   the noise threshold count as determined without a profile. Measured, the real profile came out up to 8
   times below the quadratic one where it mattered (B of Multi-Power 400M: 9.3 -> 1.25 thresholds), so 30
   leaves a margin of ~4 while sparing the costly profiles of clearly determined parameters.
3. **Profile** -- for the rest, the real profile: parameter j held at value * factor (then, unless that
   side is already flat, at value / factor), clipped to its bounds, every other free parameter re-optimised
   with the fit's own solver from two starts, the linear compensation along the weak direction and the
   optimum itself, in rounds of 5 iterations that stop once the rise is below the threshold, or once
   it stays clearly above it (by 10 times both the last round's gain and a Newton step's). Straight
   rays along the weak direction do not work: with two Chinchilla model sizes, E, A and alpha are exactly
   confounded (profile rise ~1e-12) yet a straight step of 10 % in alpha rises 400 times the threshold,
   the valley being curved.
4. **Threshold** -- the rise is compared with the drop-in-dispersion (robust likelihood-ratio) critical
   value ``0.5 * chi2_1(level) * lam`` (Schrader & Hettmansperger 1980), ``lam = sum w psi^2 / (n - q)``
   divided by the mean of ``w psi'`` -- for least squares this is the usual ``1.92 s^2``. Consecutive
   points of one loss curve are not independent (lag-1 autocorrelation of the residuals 0.78-0.93 on the
   official curves), so ``lam`` is inflated by the AR(1) factor ``(1 + rho) / (1 - rho)`` of the
   residuals' correlation between consecutive rows of a run (8x-30x there): within ``runs`` when given,
   else, for curve laws, over consecutive rows of the table (sorted by run and step; the few boundaries
   between runs barely count); point laws without ``runs`` get rho = 0. A floor of ``0.5 * (1e-7)**2 *
   sum(w)`` keeps noise-free data (exact fits) from flagging round-off.

A parameter is named when *either* side of its profile stays below the threshold (the data cannot rule
out doubling, or halving, it). Parameters at a bound are neither tested nor named -- the fit reports
them separately and their value is set by the bound, not by a flat objective -- but they stay free in the
profiles' re-optimisation, and a parameter that loses its effect because another sits at a bound (alpha
of ``A * S^-alpha`` with A at 0) shows a zero Jacobian column and is named. A tied parameter is named
with its source. A profile that finds a lower objective than the fit's (the optimum was not the best)
counts as flat too.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from .law import CurveLaw
from .parameterization import Parameterization
from .solver import Problem, gauss_newton, hold_at_bounds
from .stats import noise_level, normal_quantile
from .varpro import solve

_NULL = 1e-12  # singular values below this fraction of the largest are exact null directions
_FLOOR = 1e-7  # log-residual change per row below which two fits are the same to round-off
_AT_BOUND = 1e-6  # as in fit._diagnosis: within this fraction of the range from a bound
_RHO_MAX = 0.99
_ROUND, _MAX_ITER = 5, 100  # profile re-optimisation: iterations per round, in all (rounds of 5 decide
# sooner than rounds of 10: Epoch 33 -> 28 ms, multipower 400M 1.23 -> 0.99 s, the same rises; rounds
# of 3 restart the solver's damping so often that multipower took 6 s)
_SAFETY = 10.0  # a profile stops early once its rise exceeds the threshold by this many times what is left


@dataclass
class _Identification:
    """Everything measured on the way (for reports and tests): values refer to the free parameters."""

    names: list[str]  # the undetermined parameters (free ones, then their ties)
    free: list[str]  # names of the free parameters, in u order
    singular: np.ndarray  # singular values of the scaled weighted Jacobian, relative to the largest
    directions: np.ndarray  # (q, q) right singular vectors, one per row, over the tested columns
    threshold: float  # objective rise the noise allows
    rho: float  # lag-1 autocorrelation of the residuals within runs (0 without runs)
    quadratic: dict[str, float] = field(default_factory=dict)  # linearised profile rise per parameter
    profile: dict[str, tuple[float, float]] = field(default_factory=dict)  # rise up, rise down (screened ones)
    at_bound: list[str] = field(default_factory=list)


def undetermined(problem: Problem, u_hat: np.ndarray, *, runs: np.ndarray | None = None, factor: float = 2.0,
                 level: float = 0.95, screen: float = 30.0) -> list[str]:
    """Names of the parameters that the data do not determine at the optimum ``u_hat`` (the solver's space).

    ``runs``: the run of each row (``data.run_codes``); for loss curves it lets the noise threshold allow for
    the correlation between consecutive points of a run. ``factor``: the change tested (value * factor and
    value / factor; +-(1 - 1/factor) of the size for parameters on a linear scale). ``level``: confidence
    level of the threshold. ``screen``: how far above the threshold the quadratic approximation may be
    before the profile is skipped. See the module docstring for the method.
    """
    return _identify(problem, u_hat, runs=runs, factor=factor, level=level, screen=screen).names


# --------------------------------------------------------------------------- pieces
def _noise_threshold(problem: Problem, r: np.ndarray, q: int, runs: np.ndarray | None,
                     level: float) -> tuple[float, float]:
    """Objective rise allowed by the noise at ``level`` (robust likelihood ratio, one parameter), and rho."""
    w, loss = problem.w, problem.loss
    psi = loss.psi(r)
    n = r.size
    lam = 2.0 * noise_level(loss, r, w, q)  # the robust residual variance: sum w psi^2 / (n - q) / share inside
    rho = 0.0
    if runs is None and getattr(problem.law, "kind", "point") == "curve":
        runs = np.zeros(n, dtype=int)  # curve tables are sorted by (run, step): the few run boundaries barely count
    if runs is not None:
        runs = np.asarray(runs)
        same = runs[1:] == runs[:-1]
        a, b = psi[1:][same], psi[:-1][same]
        denom = math.sqrt(float(np.sum(a * a) * np.sum(b * b)))
        if a.size > 2 and denom > 0:
            rho = min(max(float(np.sum(a * b)) / denom, 0.0), _RHO_MAX)
    chi2 = normal_quantile(0.5 + level / 2) ** 2
    threshold = 0.5 * chi2 * lam * (1 + rho) / (1 - rho)
    return max(threshold, 0.5 * _FLOOR**2 * float(np.sum(w))), rho


def _steps(param: Parameterization, u_hat: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Target values of each free parameter (in u) above and below the optimum, clipped to the bounds."""
    log = param.log
    value = np.where(log, 0.0, u_hat)
    span = np.where(np.isfinite(param.hi - param.lo), param.hi - param.lo, 0.0)
    size = np.maximum(np.abs(value), 0.01 * span)
    size = np.where(size > 0, size, 1.0)
    lin = (1.0 - 1.0 / factor) * size
    up = np.where(log, u_hat + math.log(factor), u_hat + lin)
    down = np.where(log, u_hat - math.log(factor), u_hat - lin)
    return np.clip(up, param.lo, param.hi), np.clip(down, param.lo, param.hi)


def _at_bound(param: Parameterization, u_hat: np.ndarray) -> np.ndarray:
    span = param.hi - param.lo
    return np.minimum(u_hat - param.lo, param.hi - u_hat) <= _AT_BOUND * span


def _profile_problem(problem: Problem, j: int, value: float) -> Problem:
    """``problem`` with free parameter j (u order) held at natural ``value``; ties to it held there too."""
    param = problem.param
    names = param.names
    i = param.free[j]
    fixed = {names[k]: v for k, v in param.fixed.items()}
    fixed[names[i]] = value
    ties = {}
    for k, src in param.ties.items():
        if src == i:
            fixed[names[k]] = value * param.tie_scale[k]
        else:
            ties[names[k]] = param.tie_text(k)
    out = copy.copy(problem)
    out.param = Parameterization(problem.law, fixed, ties)
    return out


def _profile(problem: Problem, u_hat: np.ndarray, f_hat: float, Jw: np.ndarray, j: int, target: float,
             threshold: float) -> float:
    """Objective rise with free parameter j held at ``target`` (u) and the others re-optimised.

    Solved in rounds of ``_ROUND`` iterations that stop as soon as the rise is below ``threshold`` (the
    answer is then known), the solver has converged, or every start's rise exceeds the threshold by
    ``_SAFETY`` times both its last round's gain and a Newton step's (the answer is known the other way);
    unconverged, the rise is an upper bound.
    """
    param = problem.param
    du = target - u_hat[j]
    if du == 0.0:
        return math.inf
    others = [k for k in range(len(u_hat)) if k != j]
    if not others:  # nothing to re-optimise (and a Parameterization with nothing free is refused)
        moved = u_hat.copy()
        moved[j] = target
        return float(problem.objective(moved[None])[0]) - f_hat
    value = math.exp(target) if param.log[j] else target
    sub = _profile_problem(problem, j, value)
    # Linear compensation: the others' least-squares answer to the change in j (min-norm along null
    # directions), and the optimum itself in case the valley bends away from the linear answer.
    comp = -np.linalg.lstsq(Jw[:, others], Jw[:, j] * du, rcond=None)[0]
    starts = np.stack([u_hat[others] + comp, u_hat[others]])
    u = sub.param.clip(np.where(np.isfinite(starts), starts, u_hat[others]))
    best = math.inf
    # Curve laws' linear coefficients projected out: 3x faster on 12 long multipower curves; a point law's
    # five parameters solve faster without the projection's overhead.
    projected = isinstance(problem.law, CurveLaw)
    f_before = np.full(len(u), np.inf)
    for _ in range(_MAX_ITER // _ROUND):
        u, f, done = solve(sub, u, max_iter=_ROUND, ftol=1e-10, projected=projected)
        best = float(np.min(f))
        if best - f_hat < threshold or np.all(done | ~np.isfinite(f)):
            break
        # Above the threshold and still moving: the answer is known once no start can come down to it,
        # judged by both what the last round gained (a crawl along a curved valley, which the local
        # model below does not see: two Chinchilla model sizes' E) and what a Newton step would still
        # gain. On Epoch's points the rise is within 1e-8 of its converged value (threshold 1e-5) after
        # 20 iterations, and the iterations that converged it further were half of identification's time.
        if np.all(~np.isfinite(f) | (f - _SAFETY * np.maximum(f_before - f, _left(sub, u)) - f_hat >= threshold)):
            break
        f_before = f
    return best - f_hat if math.isfinite(best) else math.inf


def _left(problem: Problem, u: np.ndarray) -> np.ndarray:
    """What a full Newton step would still gain from each row of ``u`` (k, q): 0.5 g' H^+ g, with the
    Huber function's Newton curvature (1 inside its width, 0 outside: no curvature is credited where the
    loss is linear, so the estimate errs high); inf where it cannot be computed."""
    width = problem.loss.width
    w = np.broadcast_to(problem.w, (len(u), problem.n))
    g, H, bad = gauss_newton(problem, u, w, lambda r: (np.abs(r) <= width).astype(float))
    g, H = hold_at_bounds(u, g, H, problem.param.lo, problem.param.hi)  # no gain credited past a bound
    left = np.full(len(u), np.inf)
    for i in np.flatnonzero(~bad & np.all(np.isfinite(H), axis=(1, 2)) & np.all(np.isfinite(g), axis=1)):
        step = np.linalg.lstsq(H[i], g[i], rcond=None)[0]
        # A gradient outside the curvature's range (rows beyond the Huber width, an L1 loss) says nothing
        # about what is left: no estimate then.
        if np.linalg.norm(H[i] @ step - g[i]) <= 1e-6 * np.linalg.norm(g[i]):
            left[i] = max(0.5 * float(g[i] @ step), 0.0)
    return left


def _identify(problem: Problem, u_hat: np.ndarray, *, runs: np.ndarray | None = None, factor: float = 2.0,
              level: float = 0.95, screen: float = 30.0) -> _Identification:
    if not factor > 1.0:
        raise ValueError(f"factor={factor!r}: the change tested must be a factor above 1, e.g. 2")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r}: the confidence level must lie strictly between 0 and 1")
    param = problem.param
    u_hat = np.asarray(u_hat, dtype=float).reshape(-1)
    free = [param.names[i] for i in param.free]
    q = len(free)
    r, J = problem.residuals_and_jac(u_hat[None])
    r, J = r[0], J[0]
    bound = _at_bound(param, u_hat)
    empty = _Identification([], free, np.zeros(0), np.zeros((0, 0)), math.nan, 0.0,
                            at_bound=[free[j] for j in np.flatnonzero(bound)])
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(J))):
        return empty  # no local picture to judge from
    f_hat = float(problem.objective(u_hat[None])[0])
    threshold, rho = _noise_threshold(problem, r, q, runs, level)
    Jw = np.sqrt(problem.w * problem.loss.irls_weight(r))[:, None] * J

    # 1. Directions over the columns not at a bound (those are set by the bound, held where they are).
    cols = np.flatnonzero(~bound)
    if cols.size == 0:
        return empty
    norms = np.linalg.norm(Jw[:, cols], axis=0)
    scaled = Jw[:, cols] / np.where(norms > 0, norms, 1.0)
    _, s, vt = np.linalg.svd(scaled, full_matrices=scaled.shape[0] < scaled.shape[1])
    s = np.concatenate([s, np.zeros(cols.size - s.size)])  # fewer rows than columns: the rest are zero
    top = s[0] if s[0] > 0 else 1.0

    # 2. Quadratic profile rise of each column: 0.5 step^2 / var, var from the SVD; an exact null direction
    # (floored at _NULL) gives the columns on it a variance of ~1e24, so a rise of ~0.
    up, down = _steps(param, u_hat, factor)
    step = np.maximum(up - u_hat, u_hat - down)[cols]
    var = np.sum(vt**2 / np.maximum(s, _NULL * top)[:, None] ** 2, axis=0)
    with np.errstate(divide="ignore"):
        quad = np.where(norms > 0, 0.5 * step**2 * norms**2 / var, 0.0)

    # 3. The real profile for the candidates.
    found, quadratic, profile = [], {}, {}
    for c, j in enumerate(cols):
        quadratic[free[j]] = float(quad[c])
        if quad[c] > screen * threshold:
            continue
        rise_up = _profile(problem, u_hat, f_hat, Jw, j, up[j], threshold)
        # One flat side settles it: the other is not needed (nan in the details).
        rise_down = math.nan if rise_up < threshold else _profile(problem, u_hat, f_hat, Jw, j, down[j], threshold)
        profile[free[j]] = (rise_up, rise_down)
        if rise_up < threshold or rise_down < threshold:
            found.append(param.free[j])
    names = [param.names[i] for i in found]
    names += [param.names[k] for k, src in param.ties.items() if src in found]
    return _Identification(names, free, s / top, vt, threshold, rho, quadratic, profile,
                           [free[j] for j in np.flatnonzero(bound)])
