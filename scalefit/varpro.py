"""Variable projection: solve the linear coefficients exactly, search only the rest.

In E + A/N^alpha + B/D^beta the coefficients (E, A, B) enter linearly once the exponents are fixed, and
they are what makes the problem hard: (A, alpha) and (B, beta) trade off along a flat ridge, where a
plain Levenberg-Marquardt crawls, and a multi-start must grid them (the Chinchilla recipe's 4,500
starts are 180 coefficient settings for each of 25 exponent pairs). Here a law declares such parameters
``linear`` (:class:`scalefit.law.Param`) and the fitter

* solves them for fixed others (:func:`project`): a weighted linear least-squares start on relative
  errors, then a few damped Gauss-Newton steps on exactly the fit's objective (Huber on log residuals),
  inside their bounds. Cheap: the basis functions are the law's Jacobian columns, evaluated once;
* steps only the other parameters (:func:`_vp_block`): the Gauss-Newton matrix's Schur complement onto
  them is the normal matrix of Kaufman's reduced Jacobian, so each step moves along the ridge with the
  coefficients re-optimised, then projects again and keeps the step only when the objective falls.

The objective is the same function everywhere, so results agree with the full solver's to its
tolerance; the search just needs far fewer iterations and starts. Laws without linear parameters, and
fits where they are all fixed or tied, keep the plain solver (:func:`solve` decides).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import numpy as np

from .parameterization import Parameterization
from .solver import Problem, damped, gauss_newton, hold_at_bounds, lm_loop, normal_equations, solve_batch, summed

_INNER_ITER = 25  # steps on the coefficients per projection inside the solver (2-4 are typical; fewer cut
# how many starts reach the best optimum: 4 of Epoch's 25 with 8 steps, against 24; the multi-start's
# screen, which the solver's first projection redoes, takes 4)
_INNER_FTOL = 1e-13
_INNER_SHARE = 1e-2  # of the outer step's promised decrease, below which an inner step's gain stops it
_RIDGE = 1e-10  # relative to each diagonal entry of a coefficient step's matrix
_LENGTHS = np.array([1.0, 0.5, 0.25, 0.1, 0.02])  # step lengths tried where Newton's full step fails


class Split:
    """A fit's free parameters split into the linear coefficients and the rest, as column indices of u.

    A linear parameter that another one is tied to stays with the rest (the tie makes the law nonlinear in it).
    """

    def __init__(self, param: Parameterization):
        linear = set(param.law.linear_params)
        sources = set(param.ties.values())
        self.lin = [j for j, i in enumerate(param.free) if param.names[i] in linear and i not in sources]
        self.rest = [j for j in range(len(param.free)) if j not in self.lin]
        self.theta_idx = [param.free[j] for j in self.lin]  # where the coefficients sit in theta
        self.names = tuple(param.names[i] for i in self.theta_idx)
        lo, hi = param.law.bounds_array()
        self.lo, self.hi = lo[self.theta_idx], hi[self.theta_idx]
        self.log = param.log[self.lin]


def split_for(param: Parameterization) -> Split | None:
    """The split when variable projection applies (some free linear and some free other parameters)."""
    split = Split(param)
    return split if split.lin and split.rest else None


# Small per-row products written out: numpy's matmul on strided batches of tiny matrices can round
# differently with the batch's size, and a bootstrap draw must not depend on which others share its batch.
def _mv(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row-wise A @ x for (k, a, b) and (k, b)."""
    return np.sum(A * x[:, None, :], axis=2)


def _mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Row-wise A @ B for (k, a, b) and (k, b, c)."""
    return np.sum(A[:, :, :, None] * B[:, None, :, :], axis=2)


def _pinv(M: np.ndarray, rcond: float) -> np.ndarray:
    """Batched pseudo-inverse that survives what extreme data make of a matrix: rows with a non-finite
    entry, or whose SVD LAPACK cannot finish, get zeros (no step), the others their pseudo-inverse."""
    good = np.all(np.isfinite(M), axis=(1, 2))
    out = np.zeros(M.shape[:1] + M.shape[:0:-1])
    if not good.any():
        return out
    try:
        out[good] = np.linalg.pinv(M[good], rcond=rcond)
    except np.linalg.LinAlgError:
        for i in np.flatnonzero(good):
            try:
                out[i] = np.linalg.pinv(M[i], rcond=rcond)
            except np.linalg.LinAlgError:
                pass
    return out


def _finite(x: np.ndarray, **replace) -> np.ndarray:
    """``np.nan_to_num(x, **replace)``, without its cost (several microseconds, thousands of calls per fit)
    in the usual case where every entry is finite already. That case returns ``x`` itself: never write
    into the result."""
    return x if np.isfinite(x).all() else np.nan_to_num(x, **replace)


def _curvature(loss, r: np.ndarray) -> np.ndarray:
    """Newton's weights for the Huber function: 1 inside its width and (almost) 0 outside. The IRLS
    weights width/|r| of :mod:`scalefit.solver` are a safe majoriser but converge only linearly: on
    Epoch's bootstrap draws the projected solver needs 15 iterations with these, over 50 with those.
    The small weight outside keeps the matrix invertible when few residuals lie inside the width."""
    d = loss.width
    if math.isinf(d):
        return np.ones_like(r)
    a = np.abs(r)
    return np.where(a <= d, 1.0, 1e-3 * d / np.maximum(a, 1e-300))


def _log_resid(offset, basis, c, logy):
    """log(offset + basis @ c) - log y for coefficient rows c (..., m); basis (..., n, m)."""
    with np.errstate(all="ignore"):
        return np.log(offset + (basis @ c[..., None])[..., 0]) - logy


def _direction(J_t: np.ndarray, g: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The Gauss-Newton step -(J' W J)^-1 g with row weights ``weight`` (a relative ridge keeps it finite)."""
    H = (J_t * weight[:, None, :]) @ J_t.transpose(0, 2, 1)
    diag = np.maximum(np.diagonal(H, axis1=1, axis2=2), 1e-300)
    with np.errstate(all="ignore"):
        A = H + _RIDGE * diag[:, :, None] * np.eye(H.shape[1])
        try:
            step = np.linalg.solve(A, g[..., None])[..., 0]
        except np.linalg.LinAlgError:  # extreme data: a singular or non-finite matrix somewhere in the batch
            step = _mv(_pinv(A, 1e-15), g)
    return -_finite(step)


def _least_squares_start(basis, offset, logy, w, split):
    """Coefficients minimising the weighted squared relative error, (yhat - y)/y ~ log yhat - log y,
    clipped into their bounds (a start; the exact objective is minimised after)."""
    with np.errstate(all="ignore"):
        y = np.exp(logy)
        scaled = basis / y[..., None]
        scaled_t = scaled.transpose(0, 2, 1)
        normal = (scaled_t * w[:, None, :]) @ scaled
        rhs = (scaled_t @ (w * (1.0 - offset / y))[..., None])[..., 0]
        c = _mv(_pinv(normal, 1e-13), rhs)
    return np.clip(_finite(c, nan=0.0), split.lo, split.hi)


def project(problem: Problem, split: Split, u: np.ndarray, w: np.ndarray,
            also: np.ndarray | None = None, ftol: float = _INNER_FTOL,
            max_iter: int = _INNER_ITER) -> tuple[np.ndarray, np.ndarray]:
    """``u`` (k, q) with its linear coefficients replaced by their optimum for its other parameters, and
    the objective there; see :func:`_project`."""
    return _project(problem, split, u, w, _offset_basis(problem, split, u), also, ftol, max_iter)[:2]


def _offset_basis(problem: Problem, split: Split, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of the prediction free of the coefficients, and their basis, at u (from the law's basis)."""
    theta = problem.param.to_theta(u)
    return _without_coefficients(*problem.linear_basis(theta, split.names), theta, split)


def _without_coefficients(yhat: np.ndarray, basis: np.ndarray, theta: np.ndarray,
                          split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(yhat minus the coefficients' terms, the basis), the basis in one memory layout everywhere
    (matmul's rounding depends on it)."""
    basis = np.ascontiguousarray(basis)
    with np.errstate(all="ignore"):
        return yhat - (basis @ theta[:, split.theta_idx][..., None])[..., 0], basis


def _project(problem: Problem, split: Split, u: np.ndarray, w: np.ndarray, parts: tuple,
             also: np.ndarray | None = None, ftol: float = _INNER_FTOL, max_iter: int = _INNER_ITER,
             gain_tol: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``u`` (k, q) with its linear coefficients replaced by their optimum for its other parameters, and
    the objective there (inf where no feasible coefficients were found). ``w`` (k, n): row weights.

    Starts, the best kept: the coefficients ``u`` carries, least squares on relative errors, and ``also``
    (k, m natural values; the solver passes the previous iterate's). ``ftol``: stop when a step gains less
    than this fraction of the objective, or after ``max_iter`` steps. Without the second start, half of Epoch's
    25 exponent starts stall; without the third, a bootstrap draw whose predicted coefficients land far
    off can end above where it began. ``parts``: the prediction without the coefficients' terms, and
    their basis (k, n, m), at u.
    ``gain_tol`` (k,): also stop a row once a step gains less than this (absolute).

    Returns the projected u, the objective, and the log residuals and predictions at the coefficients found."""
    param = problem.param
    theta = param.to_theta(u)
    offset, basis = parts
    c = theta[:, split.theta_idx]
    logy = np.broadcast_to(problem.logy, offset.shape)
    ok = np.all(np.isfinite(basis), axis=(1, 2)) & np.all(np.isfinite(offset), axis=1)
    if not ok.all():
        basis = np.where(ok[:, None, None], basis, 0.0)
        offset = np.where(ok[:, None], offset, 1.0)
    starts = [c, _least_squares_start(basis, offset, logy, w, split)]
    if also is not None:
        starts.append(np.clip(also, split.lo, split.hi))
    trial = np.stack(starts, axis=1)  # (k, s, m)
    r_t = _log_resid(offset[:, None], basis[:, None], trial, logy[:, None])
    f_t = summed(problem.loss, r_t, w[:, None, :])
    pick, at = np.argmin(f_t, axis=1), np.arange(len(c))
    c, r, f = trial[at, pick], r_t[at, pick], f_t[at, pick]
    active = np.isfinite(f) & ok
    loss = problem.loss
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ci, wi, bi, oi, li, ri = c[idx], w[idx], basis[idx], offset[idx], logy[idx], r[idx]
        with np.errstate(all="ignore"):
            J_t = (bi / np.exp(ri + li)[..., None]).transpose(0, 2, 1)  # d log yhat / dc = basis / yhat
        g = (J_t @ (wi * loss.psi(ri))[..., None])[..., 0]
        # Newton's full step first (fast near the optimum). Where it does not lower the objective, IRLS's
        # direction too (a majoriser: it descends where Newton's, with few residuals inside the Huber
        # width, points nowhere useful), at full and shorter lengths along both, evaluated at once.
        newton = _direction(J_t, g, wi * _curvature(loss, ri))
        c_new = np.clip(ci + newton, split.lo, split.hi)
        r_new = _log_resid(oi, bi, c_new, li)
        f_new = summed(problem.loss, r_new, wi)
        short = np.flatnonzero(~(f_new < f[idx]))
        if short.size:
            J_s = J_t[short]
            irls = _direction(J_s, g[short], wi[short] * loss.irls_weight(ri[short]))
            both = np.stack([newton[short], irls], axis=1)  # (s, 2, m)
            lengths = (_LENGTHS[None, :, None, None] * both[:, None]).reshape(short.size, -1, both.shape[-1])
            trial = np.clip(ci[short, None, :] + lengths, split.lo, split.hi)
            r_t = _log_resid(oi[short, None], bi[short, None], trial, li[short, None])
            f_t = summed(problem.loss, r_t, wi[short, None, :])
            pick, at = np.argmin(f_t, axis=1), np.arange(short.size)
            c_new[short], r_new[short], f_new[short] = trial[at, pick], r_t[at, pick], f_t[at, pick]
        better = f_new < f[idx]
        tol = ftol * np.maximum(f[idx], 1e-300)
        small = ~better | ((f[idx] - f_new) <= (tol if gain_tol is None else np.maximum(tol, gain_tol[idx])))
        keep = idx[better]
        c[keep], r[keep], f[keep] = c_new[better], r_new[better], f_new[better]
        active[idx[small]] = False
    out = u.copy()
    with np.errstate(divide="ignore"):
        out[:, split.lin] = np.where(split.log, np.log(np.maximum(c, 1e-300)), c)
    out = param.clip(out)
    f = np.where(ok, f, np.inf)
    with np.errstate(all="ignore"):
        return out, f, r, offset + (basis @ c[..., None])[..., 0]


def _vp_block(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *, split: Split,
              max_iter: int = 200, ftol: float = 1e-12, atol: float = 0.0,
              on_iter: Callable[[int], None] | None = None,
              exact_objective: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the non-linear parameters with the coefficients projected out; the same
    contract as :func:`scalefit.solver._solve_block` (rows are independent; monotone descent; bounds).

    Where the law gives its basis and Jacobian from one evaluation (``linear_parts``) and the block is
    not cut into row ranges (:meth:`~scalefit.solver.Problem.row_parts` is None), each iteration evaluates the law once: at the trial point, for the
    projection and for the next step's Jacobian (the coefficients change only linear terms). Rows of
    zero weight (runs left out of a bootstrap draw) are then not evaluated during the iterations where the
    law can skip them; the end point is checked on every row (a law not finite there fails the draw)."""
    loss = problem.loss
    u = problem.param.clip(np.array(u0, dtype=float, copy=True))
    w_all = np.broadcast_to(problem.w if weights is None else weights, (len(u), problem.n))
    L, R = np.array(split.lin), np.array(split.rest)
    lo, hi = problem.param.lo, problem.param.hi
    is_lin = np.isin(np.arange(lo.size), L)
    curvature = partial(_curvature, loss)
    fused = (isinstance(problem, Problem) and getattr(problem.law, "linear_parts", None) is not None
             and problem.row_parts(*u.shape) is None)
    masked = fused and not np.all(w_all > 0)

    def evaluate(pa, ua, wa, also=None, inner_ftol=_INNER_FTOL, gain_tol=None):
        """The projection at ua, and (fused) the residuals and Jacobian where it lands."""
        param = pa.param
        if not fused:
            parts = _offset_basis(pa, split, ua)
            return _project(pa, split, ua, wa, parts, also, inner_ftol, gain_tol=gain_tol)[:2], None
        need = wa > 0 if masked else None
        theta = param.to_theta(ua)
        rest = np.delete(theta, split.theta_idx, axis=1)
        if len(theta) > 1 and np.all(rest == rest[0]):
            # One setting of the other parameters for every row (bootstrap draws start at the optimum):
            # the law is evaluated once (the same numbers, row for row, as evaluating every row).
            _, basis, jacobian, predict = pa.linear_parts(theta[:1], split.names)
            yhat, basis = predict(theta), np.repeat(basis, len(theta), axis=0)
        else:
            yhat, basis, jacobian, _ = pa.linear_parts(theta, split.names, need)
        if need is not None:  # rows left out: neutral values (finite, and weighted 0 everywhere)
            basis = np.where(need[..., None], basis, 0.0)
            yhat = np.where(need, yhat, 1.0)
        out, f, r, yhat_c = _project(pa, split, ua, wa, _without_coefficients(yhat, basis, theta, split), also,
                                     inner_ftol, gain_tol=gain_tol)
        with np.errstate(all="ignore"):
            J = jacobian(param.to_theta(out))
            J /= yhat_c[..., None]
        return (out, f), (r, param.jac_u(J, out))

    def propose(pa, ua, wa, lam, held=None):
        if held is None:
            g, H, bad = gauss_newton(pa, ua, wa, curvature)
        else:
            g, H, bad = normal_equations(loss, *held, wa, curvature)
        # Coefficients pushed past a bound are held on their own gradient; the other parameters on the
        # reduced gradient below, the one their step follows (the two differ while the projection is loose).
        g, H = hold_at_bounds(ua, g, H, np.where(is_lin, lo, -np.inf), np.where(is_lin, hi, np.inf))
        # Schur complement onto the other parameters: their Gauss-Newton step with the coefficients
        # following along (the coefficients' own step is the linear prediction; projection then corrects it).
        H_ll, H_lr, H_rr = H[:, L][:, :, L], H[:, L][:, :, R], H[:, R][:, :, R]
        with np.errstate(all="ignore"):
            X = _mm(_pinv(H_ll, 1e-13), np.concatenate([H_lr, g[:, L, None]], axis=2))
            S = H_rr - _mm(H_lr.transpose(0, 2, 1), X[:, :, :-1])
            g_r = g[:, R] - _mv(H_lr.transpose(0, 2, 1), X[:, :, -1])
            g_r, S = hold_at_bounds(ua[:, R], g_r, S, lo[R], hi[R])
            step_r = -_mv(_pinv(damped(S, lam), 1e-15), g_r)
            step_l = -(X[:, :, -1] + _mv(X[:, :, :-1], step_r))
        u_new = ua.copy()
        u_new[:, R] += _finite(step_r)
        u_new[:, L] += _finite(step_l)
        c_old = problem.param.to_theta(ua)[:, split.theta_idx]
        promised = -np.sum(step_r * (g_r + 0.5 * _mv(S, step_r)), axis=1)
        # The coefficients a tenth as tight as the outer steps, and no tighter than a small share of the
        # decrease this step promises: IRLS's linear tail (few residuals inside the Huber width) would
        # otherwise spend up to 25 inner steps per projection far from the optimum.
        (u_new, f_new), state = evaluate(pa, problem.param.clip(u_new), wa, also=c_old,
                                         inner_ftol=max(_INNER_FTOL, 0.1 * ftol),
                                         gain_tol=_INNER_SHARE * np.maximum(_finite(promised), 0.0))
        return (u_new, f_new, bad, promised) + (() if state is None else (state,))

    (u, f), state = evaluate(problem, u, w_all)
    u, f, converged = lm_loop(problem, u, f, w_all, propose, max_iter=max_iter, ftol=ftol, atol=atol,
                              on_iter=on_iter, carry=state)
    # As everyone else computes it (the projection's agrees to rounding). Masked: the rows left out were
    # never evaluated, and a point where the law is not finite on them fails here, as it would unmasked.
    if exact_objective or masked:
        f = np.where(np.isfinite(f), problem.objective(u, w_all), np.inf)
    return u, f, converged


def solve(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *, max_iter: int = 200,
          ftol: float = 1e-12, atol: float = 0.0, progress: Callable[[int, int], None] | None = None,
          projected: bool = True, exact_objective: bool = True):
    """:func:`scalefit.solver.solve_batch` with the linear coefficients projected out where the law
    declares some (and some other parameter is free) and ``projected`` is true; the plain solver otherwise.
    ``exact_objective=False``: the projected solver returns its own objective values (equal to rounding;
    one evaluation of the law fewer, for callers that need only the solution and whether it is finite)."""
    split = split_for(problem.param) if projected else None
    block = None if split is None else partial(_vp_block, split=split, exact_objective=exact_objective)
    return solve_batch(problem, u0, weights, max_iter=max_iter, ftol=ftol, atol=atol, progress=progress,
                       block_solver=block)
