"""The batched robust solver: objective, problem, Levenberg-Marquardt.

The objective is ``sum_i w_i * rho(log yhat_i - log y_i)`` with ``rho`` the Huber function of width
``delta`` (1e-3 by default, the Chinchilla recipe), plain least squares, or absolute error. It is
*summed*, not averaged: averaging shrinks the objective so much that solvers stop early, which is what
biased the published Chinchilla fit (Besiroglu et al. 2024).

Why a batched solver: the Chinchilla recipe starts from 4,500 grid points, and the bootstrap refits the
law a thousand times. Both are the same problem -- many independent small least-squares fits -- so they
run as one vectorised iteratively-reweighted Levenberg-Marquardt over a batch of parameter vectors
(``law.predict`` takes a (k, p) batch). The best few starts are then polished with
``scipy.optimize.least_squares(loss="huber")`` (:func:`scalefit.search.polish`), which minimises exactly
the same objective.

This is the numerical engine only: it takes a law, its prepared design, targets and weights, and the
mapping of the optimiser's vector to the law's parameters (:mod:`scalefit.parameterization`). Laws with
linear coefficients are solved through :mod:`scalefit.varpro` (which drives this solver's blocks), the
multi-start lives in :mod:`scalefit.search`; reading tables, the bootstrap over runs, parallel backends
and the diagnosis in :mod:`scalefit.fit`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .law import Law
from .parameterization import Parameterization
from .stats import noise_level

LOSSES = ("huber", "lsq", "l1")
_L1_EPS = 1e-9  # absolute error is Huber with a vanishing width: smooth enough for the solver


# --------------------------------------------------------------------------- loss functions
@dataclass(frozen=True)
class RobustLoss:
    """rho(r) and the two derived quantities the solver needs: psi = rho' and IRLS weights psi/r."""

    kind: str = "huber"
    delta: float = 1e-3

    @property
    def width(self) -> float:
        return {"huber": self.delta, "lsq": math.inf, "l1": _L1_EPS}[self.kind]

    def rho(self, r: np.ndarray) -> np.ndarray:
        d = self.width
        if math.isinf(d):
            return 0.5 * r * r
        a = np.abs(r)
        m = np.minimum(a, d)  # m (a - m/2) is r^2/2 inside the width and d (|r| - d/2) outside: one pass
        return m * (a - 0.5 * m)

    def psi(self, r: np.ndarray) -> np.ndarray:
        d = self.width
        return r if math.isinf(d) else np.clip(r, -d, d)

    def irls_weight(self, r: np.ndarray) -> np.ndarray:
        d = self.width
        if math.isinf(d):
            return np.ones_like(r)
        a = np.abs(r)
        return np.where(a <= d, 1.0, d / np.maximum(a, 1e-300))


# --------------------------------------------------------------------------- the problem
def _unit_mean(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    w = w / w.max()  # first by the largest, so the mean cannot overflow
    return w / w.mean()


class Problem:
    """Residuals r = log(yhat) - log(y) and their Jacobian in ``u`` for a batch of parameter vectors."""

    def __init__(self, law: Law, design: dict, y: np.ndarray, weights: np.ndarray | None,
                 param: Parameterization, loss: RobustLoss):
        self.law = law
        self.design = design
        self.logy = np.log(np.asarray(y, dtype=float))
        self.n = self.logy.size
        # Weights are relative: rescaled to mean 1 (the optimum is unchanged) so that extreme ones
        # (1e300) cannot overflow the normal equations.
        self.w = np.ones(self.n) if weights is None else _unit_mean(weights)
        self.param = param
        self.loss = loss
        self.has_jac = None  # decided on first call

    def with_targets(self, logy: np.ndarray) -> "Problem":
        """This problem with one row of observed log losses per parameter vector ((k, n): the wild
        bootstrap's pseudo-data), solved as one batch; rows are taken along by :meth:`rows`."""
        other = copy.copy(self)
        other.logy = np.asarray(logy, dtype=float)
        return other

    def rows(self, idx) -> "Problem":
        """The problem for the parameter vectors ``idx`` of a batch (itself unless targets are per row)."""
        return self if self.logy.ndim == 1 else self.with_targets(self.logy[idx])

    def _yhat(self, theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.law.predict(theta, self.design)

    def residuals(self, u: np.ndarray) -> np.ndarray:
        theta = self.param.to_theta(u)
        yhat = self._yhat(theta)
        with np.errstate(all="ignore"):
            r = np.log(yhat) - self.logy
        return np.where(np.isfinite(r), r, np.nan)

    def objective(self, u: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        return summed(self.loss, self.residuals(u), self.w if w is None else w)

    def noise_level(self, u: np.ndarray, r: np.ndarray | None = None) -> float:
        """:func:`scalefit.stats.noise_level` at the point ``u`` (its residuals ``r`` where already known):
        the objective change of a one-standard-error move, the scale of every stopping tolerance."""
        return noise_level(self.loss, self.residuals(u[None])[0] if r is None else r, self.w, len(u))

    def predict_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """yhat and d yhat / d theta in natural units (central differences when the law has no Jacobian)."""
        with np.errstate(all="ignore"):
            yhat, jac = self.law.predict_and_jacobian(theta, self.design)
            if jac is None:
                jac = self._numeric_jac(theta, yhat)
        return yhat, jac

    def linear_basis(self, theta: np.ndarray, names) -> tuple[np.ndarray, np.ndarray]:
        """yhat and the basis functions of the linear parameters ``names`` (:meth:`Law.linear_basis`)."""
        with np.errstate(all="ignore"):
            yhat, basis = self.law.linear_basis(theta, self.design)
            if basis is None:
                yhat, jac = self.predict_and_jacobian(theta)
                return yhat, jac[..., [self.law.param_names.index(n) for n in names]]
        order = self.law.linear_params
        return yhat, basis[..., [order.index(n) for n in names]]

    def linear_parts(self, theta: np.ndarray, names, need: np.ndarray | None = None):
        """(yhat, basis of the linear parameters ``names``, ``jacobian(theta2)``, ``predict(theta2)`` at any
        theta2 that differs from theta in linear parameters only) from one evaluation, where the law has
        ``linear_parts`` (else None). ``need`` (k, n): the rows each vector needs (others may be incomplete)."""
        fused = getattr(self.law, "linear_parts", None)
        if fused is None:
            return None
        with np.errstate(all="ignore"):
            yhat, basis, jacobian, predict = fused(theta, self.design, need=need)
        order = self.law.linear_params
        return yhat, basis[..., [order.index(n) for n in names]], jacobian, predict

    @property
    def analytic_jacobian(self) -> bool:
        """Whether the law computes its Jacobian itself (then with the prediction, for little more)."""
        return type(self.law).jacobian is not Law.jacobian or type(self.law).predict_and_jacobian is not Law.predict_and_jacobian

    def residuals_and_jac(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        yhat, jac = self.predict_and_jacobian(self.param.to_theta(u))
        with np.errstate(all="ignore"):
            r = np.log(yhat) - self.logy
            if jac.flags.writeable and jac.flags.owndata:  # a law's fresh array: divided in place (one
                jac /= yhat[..., None]                     # (k, n, p) array fewer at the solver's peak)
            else:
                jac = jac / yhat[..., None]  # d log yhat = d yhat / yhat
        return r, self.param.jac_u(jac, u)

    def row_parts(self, k: int, q: int) -> list[slice] | None:
        """Row ranges for :func:`gauss_newton` where k vectors' Jacobian over every row would not fit the
        block budget (a 1M-row curve table: 10 arrays of n x (q + 1) for one vector alone) and the design can
        be cut by rows (each entry an array over them); None when it fits or cannot be cut (chunked pairs)."""
        from .limits import limit

        budget = limit("block_bytes")
        per_row = _COPIES * 8 * k * (q + 1)
        if per_row * self.n <= budget or not all(
                isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == self.n for v in self.design.values()):
            return None
        rows = max(1, budget // per_row)
        return [slice(a, min(a + rows, self.n)) for a in range(0, self.n, rows)]

    def sub(self, rows: slice) -> "Problem":
        """This problem on the rows ``rows`` only (see :meth:`row_parts`)."""
        other = copy.copy(self)
        other.design = {key: value[rows] for key, value in self.design.items()}
        other.logy = self.logy[..., rows]
        other.w = self.w[rows]
        other.n = other.logy.shape[-1]
        return other

    def _numeric_jac(self, theta: np.ndarray, yhat: np.ndarray) -> np.ndarray:
        """Batched central differences in theta (used when a law gives no analytic Jacobian)."""
        k, p = theta.shape
        out = np.empty(yhat.shape + (p,))
        for j in range(p):
            h = 1e-6 * np.maximum(np.abs(theta[:, j]), 1e-8)
            tp, tm = theta.copy(), theta.copy()
            tp[:, j] += h
            tm[:, j] -= h
            out[..., j] = (self.law.predict(tp, self.design) - self.law.predict(tm, self.design)) / (2 * h[:, None])
        return out


# --------------------------------------------------------------------------- batched solver
_BLOCK = 512  # most parameter vectors solved together (on 2,000 rows, time per vector is flat from 16 up)
# float64 arrays of n x (q + 1) that one parameter vector keeps alive at a block's peak: the Jacobian, its
# chain-rule and weighted copies, the law's temporaries (measured: 5 plain, 8-12 with variable projection).
_COPIES = 10


def block_size(n: int, q: int, budget: int | None = None) -> int:
    """How many parameter vectors to evaluate together on n rows with q free parameters: as many as keep a
    block's working memory within ``budget`` bytes (default: ``limits.limit("block_bytes")``, 48 MiB, raised
    by SCALEFIT_BLOCK_MEMORY), at least 1 and at most _BLOCK."""
    from .limits import limit

    budget = limit("block_bytes") if budget is None else budget
    return int(max(1, min(_BLOCK, budget // (_COPIES * 8 * max(1, n) * (q + 1)))))


def solve_batch(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *,
                max_iter: int = 200, ftol: float = 1e-12, atol: float = 0.0,
                progress: Callable[[int, int], None] | None = None,
                block_solver: Callable | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve a batch of independent starts in cache- and memory-sized blocks; see :func:`_solve_block`
    (or ``block_solver``, which takes the same arguments: :mod:`scalefit.varpro` passes its own).

    ``progress(done, total)`` hears every iteration: total = blocks x ``max_iter``; a block that converges
    early jumps to its end.
    """
    solve_block = _solve_block if block_solver is None else block_solver
    k = len(u0)
    block = block_size(problem.n, u0.shape[1])
    n_blocks = max(1, math.ceil(k / block))
    total = n_blocks * max_iter

    def tick(b):
        if progress is None:
            return None
        return lambda it: progress(b * max_iter + it, total)

    opts = dict(max_iter=max_iter, ftol=ftol, atol=atol)
    if k <= block:
        out = solve_block(problem, u0, weights, on_iter=tick(0), **opts)
    else:
        w = None if weights is None else np.broadcast_to(weights, (k, problem.n))
        parts = [solve_block(problem.rows(slice(i, i + block)), u0[i : i + block], None if w is None else w[i : i + block],
                             on_iter=tick(i // block), **opts) for i in range(0, k, block)]
        out = tuple(np.concatenate(x) for x in zip(*parts))
    if progress is not None:
        progress(total, total)
    return out


def gauss_newton(problem: Problem, u: np.ndarray, w: np.ndarray, curvature: Callable[[np.ndarray], np.ndarray]):
    """The robust objective's gradient g = J'(w psi(r)) and Gauss-Newton matrix H = J'(w curvature(r)) J at
    each row of u (w: (k, n) row weights), and which rows had a non-finite residual or Jacobian (scrubbed to
    0 in the sums). Summed row range by row range where :meth:`Problem.row_parts` says so (a problem-like
    object without it, such as the profile's, in one piece)."""
    loss = problem.loss
    parts = problem.row_parts(*u.shape) if isinstance(problem, Problem) else None
    k, q = u.shape
    g, H, bad = np.zeros((k, q)), np.zeros((k, q, q)), np.zeros(k, dtype=bool)
    for rows in parts or [None]:
        piece, wp = (problem, w) if rows is None else (problem.sub(rows), w[:, rows])
        g_part, H_part, bad_part = normal_equations(loss, *piece.residuals_and_jac(u), wp, curvature)
        if rows is None:
            return g_part, H_part, bad_part
        g, H, bad = g + g_part, H + H_part, bad | bad_part
    return g, H, bad


def normal_equations(loss: RobustLoss, r: np.ndarray, J: np.ndarray, w: np.ndarray, curvature: Callable):
    """:func:`gauss_newton`'s sums from residuals r (k, n) and their Jacobian J (k, n, q)."""
    bad = np.zeros(len(r), dtype=bool)
    if not (np.isfinite(r).all() and np.isfinite(J).all()):  # rare: scrub only when needed
        bad = ~np.all(np.isfinite(r), axis=1) | ~np.all(np.isfinite(J), axis=(1, 2))
        r = np.where(np.isfinite(r), r, 0.0)
        J = np.where(np.isfinite(J), J, 0.0)
    Jt = J.transpose(0, 2, 1)  # batched BLAS matmuls: several times faster than einsum here
    g = (Jt @ (w * loss.psi(r))[..., None])[..., 0]
    H = (Jt * (w * curvature(r))[:, None, :]) @ J
    return g, H, bad


def hold_at_bounds(u: np.ndarray, g: np.ndarray, H: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """(g, H) with every parameter that sits on a bound its gradient pushes it past held there (its row and
    column of H 0 but for its own diagonal entry, its gradient 0): the others then take the Newton step of
    the problem without it (projected Newton, Bertsekas 1982). Clipping the full step instead wastes the
    others' move on one the bound cancels, and the quadratic model's promise is never met: multi-power
    with its drop term off (Bslope at 0) crawled through rejected steps, 12 on 34k rows where this takes
    2. ``u`` is on a bound exactly when it is there: the solvers clip to the bounds."""
    pin = ((u <= lo) & (g > 0)) | ((u >= hi) & (g < 0))
    if not pin.any():
        return g, H
    free = ~pin
    diag = np.diagonal(H, axis1=1, axis2=2)
    keep = np.where(pin, np.where(diag > 0, diag, 1.0), 0.0)  # a held entry keeps the matrix's scale
    H = np.where(free[:, :, None] & free[:, None, :], H, 0.0) + keep[:, :, None] * np.eye(H.shape[1])
    return np.where(free, g, 0.0), H


def damped(H: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """H + lam diag(H) for a batch of Gauss-Newton matrices (Marquardt's scaling; a diagonal entry far
    below the largest is lifted so that a flat direction cannot make the matrix singular)."""
    diag = np.diagonal(H, axis1=1, axis2=2)
    scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
    return H + lam[:, None, None] * scale[:, :, None] * np.eye(H.shape[1])


def lm_loop(problem: Problem, u: np.ndarray, f: np.ndarray, w_all: np.ndarray, propose: Callable, *,
            max_iter: int, ftol: float, atol: float = 0.0, on_iter: Callable[[int], None] | None = None,
            carry: tuple | None = None):
    """The Levenberg-Marquardt bookkeeping both block solvers share: per row, a damping ``lam``, a step
    accepted only when the objective falls, done on a negligible gain or once no step helps.

    ``propose(problem_rows, u_rows, w_rows, lam_rows)`` -> (u_new, f_new, bad, promised): the trial
    points, their objective, rows whose residuals or Jacobian were not finite, and the decrease the
    step's quadratic model promised (None: a rejected step says nothing; the row then runs until the
    damping blows up). A row is done when it gains less than ``ftol`` times its objective or ``atol``.
    ``u`` and ``f`` are updated in place; returns (u, f, converged).

    ``carry``: arrays (rows first) that describe each row's current point, such as its residuals and
    Jacobian, found with the trial point's objective (an accepted step needs no second evaluation):
    ``propose`` takes their active rows fifth and returns the trial points' fifth; accepted rows keep them."""
    k = len(u)
    lam = np.full(k, 1e-3)
    converged = np.zeros(k, dtype=bool)
    active = np.isfinite(f)
    for it in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        if on_iter is not None:
            on_iter(it)
        extra = () if carry is None else (carry if idx.size == k else tuple(c[idx] for c in carry),)
        u_new, f_new, bad, promised, *state = propose(problem.rows(idx), u[idx], w_all[idx], lam[idx], *extra)
        f_old = f[idx]
        better = (f_new < f_old) & ~bad
        tol = np.maximum(ftol * np.maximum(f_old, 1e-300), atol)
        if promised is None:
            small = better & ((f_old - f_new) <= tol)
        else:  # at the optimum a rejected step's promise is the test (waiting for lam to blow up costs ~15 steps)
            small = (f_old - np.where(better, f_new, f_old - promised)) <= tol
        u[idx[better]] = u_new[better]
        f[idx[better]] = f_new[better]
        if carry is not None:
            for held, new in zip(carry, state[0]):
                held[idx[better]] = new[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] * 0.3, 1e-12), lam[idx] * 10.0)
        # Done: a negligible improvement, or no step of any size improves (a minimum at working precision).
        stalled = lam[idx] > 1e10
        done = small | stalled | bad
        converged[idx[done & ~bad]] = True
        active[idx[done]] = False
    return u, f, converged


def summed(loss: RobustLoss, r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The objective from residuals r (k, n): inf where it is not finite (as :meth:`Problem.objective`)."""
    with np.errstate(all="ignore"):
        f = np.sum(w * loss.rho(r), axis=-1)
    return np.where(np.isfinite(f), f, np.inf)


def _solve_block(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *,
                 max_iter: int = 200, ftol: float = 1e-12, atol: float = 0.0,
                 on_iter: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iteratively reweighted, damped Gauss-Newton (Levenberg-Marquardt) for k problems at once.

    Each row of ``u0`` is an independent start; ``weights`` is (n,) or (k, n) (bootstrap multiplicity
    times user weights). Returns (u, objective, converged). Steps are accepted only when the robust
    objective decreases, so every row descends monotonically; bounds are enforced by projection.

    Where the law computes its Jacobian with its prediction and the block's Jacobian fits the memory
    budget, a trial point's residuals and Jacobian come from one evaluation and an accepted step's are
    kept for the next (one law evaluation per iteration instead of two).
    """
    loss = problem.loss
    u = problem.param.clip(np.array(u0, dtype=float, copy=True))
    w_all = np.broadcast_to(problem.w if weights is None else weights, (len(u), problem.n))
    fused = isinstance(problem, Problem) and problem.analytic_jacobian and problem.row_parts(*u.shape) is None

    def propose(pa, ua, wa, lam, held=None):
        if held is None:
            g, H, bad = gauss_newton(pa, ua, wa, loss.irls_weight)
        else:
            g, H, bad = normal_equations(loss, *held, wa, loss.irls_weight)
        g, H = hold_at_bounds(ua, g, H, problem.param.lo, problem.param.hi)
        A = damped(H, lam)
        try:
            step = -np.linalg.solve(A, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(A, g)])
        u_new = problem.param.clip(ua + step)
        if held is None:
            return u_new, pa.objective(u_new, wa), bad, None
        with np.errstate(all="ignore"):  # a trial point may lie where the law overflows
            r, J = pa.residuals_and_jac(u_new)
        return u_new, summed(loss, r, wa), bad, None, (r, J)

    if not fused:
        return lm_loop(problem, u, problem.objective(u, w_all), w_all, propose, max_iter=max_iter, ftol=ftol,
                       atol=atol, on_iter=on_iter)
    with np.errstate(all="ignore"):
        r, J = problem.residuals_and_jac(u)
    u, f, converged = lm_loop(problem, u, summed(loss, r, w_all), w_all, propose, max_iter=max_iter,
                              ftol=ftol, atol=atol, on_iter=on_iter, carry=(r, J))
    # The objective exactly as everyone else computes it (the law's prediction alone may round differently).
    return u, np.where(np.isfinite(f), problem.objective(u, w_all), np.inf), converged
