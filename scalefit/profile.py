"""Profile-likelihood intervals: each free parameter held at a grid of values, the others refitted.

For free parameter j, the profile is ``P_j(v) = min over the others of the objective with j held at v``; the
interval is where ``P_j(v) - P_j(v_hat)`` stays below a threshold. All grid points of all parameters are
solved as one batch by the fit's own solver (:func:`scalefit.solver.solve_batch`), each warm-started at the
optimum (and at the optimum moved along the linear compensation of the others, since Chinchilla's valley is
a curved ridge); the held parameter keeps its value because its Jacobian column is zeroed, so the
Levenberg-Marquardt step never moves it. A coarse grid (1/8 to 8 times the quadratic guess of the
half-width) brackets each end; two finer grids inside the bracket and interpolation in the signed square
root of the rise (linear for a quadratic profile) place it.

**Threshold** (the drop-in-dispersion test of Schrader & Hettmansperger 1980, as in
:mod:`scalefit.identify`): a rise of ``0.5 * F(level; 1, n - q) * lam`` in the objective, with
``lam = sum w psi^2 / (n - q)`` over the mean of ``w psi'`` (psi the derivative of the loss). For least squares
this is ``0.5 * F * s^2``: exactly the F-test that lmfit's ``conf_interval`` inverts (tests check the two
agree). For the Huber loss it is the robust analogue, which assumes independent rows with a symmetric error
distribution and a smooth enough objective for the likelihood-ratio approximation; with loss curves the
rows of one run are correlated, and ``lam`` is inflated by the AR(1) factor of the residuals within runs.
The bootstrap interval assumes instead that the runs are a sample from the runs one could have trained; the
two answer differently when the law is wrong or the runs are few, which is why both are shown.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .solver import Problem, solve_batch

_COARSE = np.array([0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0])  # multiples of the quadratic half-width
_FINE = 6  # interior points per refinement round
_ROUNDS = 2
_MAX_ITER = 300
_BLOCK_TARGETS = 512  # grid points solved per solve_batch call (each has two starts)


class _Held:
    """``problem`` with, in each row of a batch, one free parameter held: its Jacobian column is zeroed.

    Quacks like :class:`scalefit.solver.Problem` for :func:`solve_batch` (residuals, objective, Jacobian,
    rows of a batch); a zero column gives a zero gradient and an isolated row of the damped normal
    equations, so the held parameter's step is exactly 0 and it stays at its start value.
    """

    def __init__(self, problem: Problem, mask: np.ndarray):
        self.problem, self.mask = problem, mask
        self.param, self.n, self.w, self.loss, self.law = problem.param, problem.n, problem.w, problem.loss, problem.law

    def rows(self, idx) -> "_Held":
        out = copy.copy(self)
        out.mask = self.mask[idx]
        return out

    def residuals(self, u):
        return self.problem.residuals(u)

    def objective(self, u, w=None):
        return self.problem.objective(u, w)

    def residuals_and_jac(self, u):
        r, J = self.problem.residuals_and_jac(u)
        return r, J * self.mask[: len(u), None, :]


def noise_threshold(problem: Problem, u_hat: np.ndarray, level: float, runs: np.ndarray | None = None) -> float:
    """The objective rise at the ``level`` end of a profile interval (module docstring): identify's robust
    chi-square(1) threshold with the F(1, n - q) quantile in place of the chi-square one."""
    from scipy.stats import chi2, f

    from .identify import _noise_threshold

    r = problem.residuals(np.asarray(u_hat, dtype=float)[None])[0]
    q = len(problem.param.free)
    base, _ = _noise_threshold(problem, np.nan_to_num(r), q, runs, level)
    dof = max(problem.n - q, 1)
    return base * float(f.ppf(level, 1, dof)) / float(chi2.ppf(level, 1))


def _curvature(problem: Problem, u_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Jw, V): the IRLS-weighted Jacobian at the optimum and the inverse of its normal matrix (for the
    quadratic guess of each half-width and the linear compensation of the others)."""
    r, J = problem.residuals_and_jac(u_hat[None])
    r, J = np.nan_to_num(r[0]), np.nan_to_num(J[0])
    Jw = np.sqrt(problem.w * problem.loss.irls_weight(r))[:, None] * J
    return Jw, np.linalg.pinv(Jw.T @ Jw)


def _rises(problem: Problem, u_hat: np.ndarray, f_hat: float, Jw: np.ndarray, which: np.ndarray,
           targets: np.ndarray) -> np.ndarray:
    """Objective rise with free parameter ``which[k]`` held at ``targets[k]`` (u), the others refitted."""
    q = len(u_hat)
    out = np.empty(len(targets))
    for s in range(0, len(targets), _BLOCK_TARGETS):
        js, ts = which[s : s + _BLOCK_TARGETS], targets[s : s + _BLOCK_TARGETS]
        m = len(js)
        plain = np.repeat(u_hat[None], m, axis=0)
        plain[np.arange(m), js] = ts
        comp = plain.copy()
        for k, (j, t) in enumerate(zip(js, ts)):
            others = [c for c in range(q) if c != j]
            if others:
                shift = -np.linalg.lstsq(Jw[:, others], Jw[:, j] * (t - u_hat[j]), rcond=None)[0]
                comp[k, others] += np.where(np.isfinite(shift), shift, 0.0)
        starts = problem.param.clip(np.concatenate([plain, comp]))
        starts[np.arange(2 * m), np.concatenate([js, js])] = np.concatenate([ts, ts])
        mask = np.ones((2 * m, q))
        mask[np.arange(2 * m), np.concatenate([js, js])] = 0.0
        _, f, _ = solve_batch(_Held(problem, mask), starts, max_iter=_MAX_ITER, ftol=1e-12)
        out[s : s + m] = np.fmin(f[:m], f[m:]) - f_hat
    return out


def _crossing(t0: float, t1: float, r0: float, r1: float, threshold: float) -> float:
    """Where the rise crosses ``threshold`` between two grid points, interpolating sqrt(rise) linearly."""
    a, b = math.sqrt(max(r0, 0.0)), math.sqrt(max(r1, 0.0))
    c = math.sqrt(threshold)
    if b <= a:
        return t1
    return t0 + (t1 - t0) * (c - a) / (b - a)


def profile_problem(problem: Problem, u_hat: np.ndarray, *, level: float = 0.95,
                    runs: np.ndarray | None = None) -> dict:
    """Profile intervals of every free parameter of ``problem`` at its optimum ``u_hat``; see the module
    docstring. Returns ``{"level", "threshold", "params": {name: {"low", "high", "low_open", "high_open"}},
    "lower_objective"}`` in natural units; an end the profile never reaches within the bounds is the bound,
    marked open. A tied parameter gets its source's interval."""
    param = problem.param
    u_hat = np.asarray(u_hat, dtype=float).reshape(-1)
    q = len(u_hat)
    f_hat = float(problem.objective(u_hat[None])[0])
    threshold = noise_threshold(problem, u_hat, level, runs)
    Jw, V = _curvature(problem, u_hat)
    guess = np.sqrt(np.clip(2.0 * threshold * np.diag(V), 0.0, None))
    span = param.hi - param.lo
    guess = np.where(np.isfinite(guess) & (guess > 0), guess, np.where(np.isfinite(span), 0.1 * span, 1.0))
    sides = [(j, sign) for j in range(q) for sign in (-1.0, 1.0)]
    # Per side: the bracket (last point below, first point above the threshold) as (t, rise) pairs.
    inner = {side: (u_hat[side[0]], 0.0) for side in sides}
    outer: dict = {}
    lower = False

    def limit(j, sign):
        return param.hi[j] if sign > 0 else param.lo[j]

    which, targets, keys = [], [], []
    for j, sign in sides:
        pts = np.unique(np.clip(u_hat[j] + sign * guess[j] * _COARSE, param.lo[j], param.hi[j]))
        pts = pts[pts != u_hat[j]]
        for t in (pts if sign > 0 else pts[::-1]):
            which.append(j), targets.append(t), keys.append((j, sign))
    for _ in range(_ROUNDS + 1):
        if not targets:
            break
        rises = _rises(problem, u_hat, f_hat, Jw, np.array(which), np.array(targets))
        lower = lower or bool(np.any(rises < -1e-9 * max(abs(f_hat), 1e-300)))
        # Points of one side arrive ordered outward from the optimum.
        for side in {k for k in keys}:
            got = [(t, r) for k, t, r in zip(keys, targets, rises) if k == side]
            for t, r in got:
                if r >= threshold:
                    outer[side] = (t, r)
                    break
                inner[side] = (t, r)
        which, targets, keys = [], [], []
        for side in sides:
            if side in outer:
                (t0, _), (t1, _) = inner[side], outer[side]
                for t in np.linspace(t0, t1, _FINE + 2)[1:-1]:
                    which.append(side[0]), targets.append(t), keys.append(side)
    out = {}
    for j, i in enumerate(param.free):
        ends = {}
        for sign in (-1.0, 1.0):
            side = (j, sign)
            if side in outer:
                (t0, r0), (t1, r1) = inner[side], outer[side]
                ends[sign] = (_crossing(t0, t1, r0, r1, threshold), False)
            else:
                ends[sign] = (limit(j, sign), True)
        natural = {s: (math.exp(t) if param.log[j] else float(t), open_) for s, (t, open_) in ends.items()}
        out[param.names[i]] = {"low": natural[-1.0][0], "high": natural[1.0][0],
                               "low_open": natural[-1.0][1], "high_open": natural[1.0][1]}
    for k, src in param.ties.items():
        if param.names[src] in out:
            out[param.names[k]] = dict(out[param.names[src]])
    return {"level": level, "threshold": threshold, "objective": f_hat, "params": out, "lower_objective": lower,
            "rule": _rule(problem, threshold, level)}


def _rule(problem: Problem, threshold: float, level: float) -> str:
    what = "least-squares F test, as lmfit's conf_interval" if problem.loss.kind == "lsq" else \
        f"robust likelihood ratio on the {problem.loss.kind} objective"
    rows = "loss-curve rows correlated within a run (AR(1))" if problem.law.kind == "curve" else "independent rows"
    return (f"the objective stays within {threshold:.4g} of its minimum = 0.5 F({level:g}; 1, n - q) x the "
            f"residual scale ({what}; assumes {rows})")


def profile_intervals(result, data, level: float | None = None) -> dict:
    """Profile intervals for a fitted ``result`` on the ``data`` it was fitted to (a Dataset, a DataFrame or
    a table path), with the fit's loss, fixed and tied parameters; the record is also stored in
    ``result.diagnostics["profile"]`` so that reports, ``--json`` and fit.json show it. ``level`` defaults to
    the fit's interval level."""
    from .curves import load_for
    from .data import Dataset
    from .errors import DataError
    from .lmfit_bridge import with_bounds
    from .parameterization import Parameterization
    from .solver import RobustLoss

    law = result.law
    if not isinstance(data, Dataset):
        data = load_for(law, data)
    level = result.ci if level is None else level
    if not 0 < level < 1:
        raise DataError(f"level={level!r}: the interval level must lie strictly between 0 and 1, e.g. 0.95",
                        options=("level",))
    settings = result.settings
    bounds = {n: tuple(b) for n, b in (settings.get("bounds") or {}).items()}
    law = with_bounds(law, bounds)
    param = Parameterization(law, settings.get("fixed") or None, settings.get("ties") or None)
    problem = Problem(law, law.prepare(data), data.column(law.target), data.weights(), param,
                      RobustLoss(settings.get("loss") or "huber", settings.get("delta") or 1e-3))
    u_hat = param.to_u(result.theta[None])[0]
    record = profile_problem(problem, u_hat, level=level, runs=data.run_codes)
    result.diagnostics["profile"] = record
    return record
