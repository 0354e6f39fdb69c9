"""The multi-start: every start screened in one batch, the promising run to convergence, the best polished.

Where the law declares linear coefficients (:mod:`scalefit.varpro`), a start is one setting of the other
parameters with its coefficients solved exactly, so the Chinchilla recipe's 4,500 starts (180 coefficient
settings at each of 25 exponent pairs) become its 25 exponent pairs, each at its best coefficients.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import FitError
from .solver import Problem, block_size
from .varpro import project, solve, split_for

_REFINE_ITER = 400  # solver iterations for the finalists of the multi-start
_NOISE_AFTER = 20  # iterations after which a finalist's noise level is read (for a stopping tolerance)
# Coefficient steps per start when screening: enough to rank starts and drop those where the law is not
# finite; the solver projects every start it goes on with again, to its own tolerance, before its first
# step. A full projection here cost Epoch's fit 10-15 ms, an eighth of it; with 4 steps every start
# that reached the optimum still does (to 1e-7 relative).
_SCREEN_ITER = 4


@dataclass
class StartReport:
    """What the multi-start did: starts screened, finalists refined, finalists that reached the best;
    ``projected``: the linear coefficients solved exactly at each start (rather than gridded)."""

    n_starts: int
    n_refined: int
    n_converged_best: int
    best_objective: float
    projected: tuple[str, ...] = ()


def _screen(problem: Problem, starts: np.ndarray, split, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Each start's objective (where the law has linear coefficients, after ``_SCREEN_ITER`` steps on
    them), block by block; ``progress(done, total)`` in starts."""
    block = block_size(problem.n, starts.shape[1])
    us, fs = [], []
    for i in range(0, len(starts), block):
        if progress is not None:
            progress(i, len(starts))
        u = starts[i : i + block]
        if split is None:
            us.append(u)
            fs.append(problem.objective(u))
        else:
            u, f = project(problem, split, u, np.broadcast_to(problem.w, (len(u), problem.n)), max_iter=_SCREEN_ITER)
            us.append(u)
            fs.append(f)
    if progress is not None:
        progress(len(starts), len(starts))
    return np.concatenate(us), np.concatenate(fs)


def _interior(problem: Problem, u: np.ndarray) -> bool:
    """No free parameter within a millionth of its range of a bound (in the optimiser's space)."""
    lo, hi = problem.param.lo, problem.param.hi
    gap = 1e-6 * (hi - lo)
    return bool(np.all((u - lo > gap) & (hi - u > gap)))


def multistart(problem: Problem, starts: np.ndarray, *, keep: int = 32, n_polish: int = 4,
               progress: Callable[[str, int, int], None] | None = None, ftol: float = 1e-12,
               stop_fraction: float = 0.0) -> tuple[np.ndarray, float, StartReport]:
    """All starts in one batch, pruned by successive halving, the finalists run to convergence (a step
    gaining less than ``ftol`` of the objective, or ``stop_fraction`` of the noise level read at the best
    finalist after ``_NOISE_AFTER`` iterations (:func:`~scalefit.stats.noise_level`), ends a finalist).

    ``progress(stage, done, total)`` hears each stage as it advances: "starts" (screening the grid, then
    a few iterations for the promising), "refine" (the finalists run to convergence) and "polish" (scipy
    on the best few minima, when it runs).
    """
    def report(stage):
        if progress is None:
            return None
        return lambda done, total: progress(stage, done, total)

    split = split_for(problem.param)
    if split is not None:  # one start per setting of the other parameters, in the order given
        _, first = np.unique(starts[:, split.rest], axis=0, return_index=True)
        starts = starts[np.sort(first)]
    block = block_size(problem.n, starts.shape[1])
    u, f = _screen(problem, starts, split, report("starts"))
    ok = np.isfinite(f)
    if not ok.any():
        raise FitError(f"law '{problem.law.name}': the law is not finite and positive at any starting point")
    u, f = u[ok], f[ok]
    n_starts = len(starts)
    # Successive halving: a few cheap iterations for everyone, full effort for the promising.
    rounds, size = [], len(u)
    for iters, survivors in ((6, max(keep, len(u) // 10)), (20, keep)):
        if size > survivors:
            rounds.append((iters, survivors, math.ceil(size / block) * iters))
            size = survivors
    work, done = sum(r[2] for r in rounds), 0
    for iters, survivors, cost in rounds:
        tick = None if progress is None else (lambda d, _t, done=done: progress("starts", done + d, work))
        u, f, _ = solve(problem, u, max_iter=iters, progress=tick)
        done += cost
        order = np.argsort(f)[:survivors]
        u, f = u[order], f[order]
    atol, spent = 0.0, 0
    if stop_fraction:  # the noise level where the finalists are heading, not at a raw start (larger there)
        spent = _NOISE_AFTER
        u, f, _ = solve(problem, u, max_iter=spent, ftol=ftol)
        best = u[np.argmin(f)]
        atol = stop_fraction * problem.noise_level(best)
    u, f, conv = solve(problem, u, max_iter=_REFINE_ITER - spent, ftol=ftol, atol=atol, progress=report("refine"))
    order = np.argsort(f)
    u, f = u[order], f[order]
    best_u, best_f = u[0], f[0]
    # Polish the best few distinct minima with scipy; keep whichever is lowest. Projected finalists are
    # Newton-converged and ranked reliably: only the best can gain, and only from scipy's exact handling
    # of bounds, so an interior optimum is final (and the fit never imports scipy.optimize).
    if split is not None:
        n_polish = 0 if _interior(problem, best_u) else 1
    seen: list[np.ndarray] = []
    budget = n_polish * POLISH_NFEV
    for cand in u[: max(n_polish * 4, n_polish)]:
        if any(np.allclose(cand, s, rtol=1e-4, atol=1e-6) for s in seen):
            continue
        seen.append(cand)
        offset = (len(seen) - 1) * POLISH_NFEV
        pu = polish(problem, cand, None if progress is None else
                    (lambda n, offset=offset: progress("polish", offset + min(n, POLISH_NFEV), budget)))
        pf = problem.objective(pu[None])[0]
        if pf < best_f:
            best_u, best_f = pu, pf
        if progress is not None:
            progress("polish", len(seen) * POLISH_NFEV, budget)
        if len(seen) >= n_polish:
            break
    if progress is not None and budget:
        progress("polish", budget, budget)
    tol = 1e-6 * max(best_f, 1e-12) + 1e-12
    reached = int(np.sum(f <= best_f + max(tol, 1e-5 * best_f)))
    return best_u, float(best_f), StartReport(n_starts, len(u), reached, float(best_f),
                                          () if split is None else split.names)


POLISH_NFEV = 2000  # most residual evaluations one polish may spend


def polish(problem: Problem, u: np.ndarray, on_eval: Callable[[int], None] | None = None) -> np.ndarray:
    """scipy's trust-region least squares with loss='huber': the same objective, handled exactly at bounds.

    ``on_eval(n)`` hears the number of residual evaluations so far (at most ``POLISH_NFEV``).
    """
    from scipy.optimize import least_squares

    loss = problem.loss
    sw = np.sqrt(problem.w)
    calls = [0]

    def fun(x):
        calls[0] += 1
        if on_eval is not None:
            on_eval(calls[0])
        return sw * np.nan_to_num(problem.residuals(x[None])[0], nan=1e3)

    def jac(x):
        _, J = problem.residuals_and_jac(x[None])
        return sw[:, None] * np.nan_to_num(J[0])

    kind = {"huber": "huber", "lsq": "linear", "l1": "soft_l1"}[loss.kind]
    if loss.kind == "l1":  # no exact L1 in least_squares; the batched solver's answer stands
        return u
    lo, hi = problem.param.lo, problem.param.hi
    x0 = np.clip(u, lo + 1e-12 * (hi - lo), hi - 1e-12 * (hi - lo))
    try:
        # Extreme weights or values overflow inside scipy; a non-finite answer is rejected below anyway.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = least_squares(fun, x0, jac=jac, bounds=(lo, hi), loss=kind,
                                f_scale=loss.delta if loss.kind == "huber" else 1.0,
                                method="trf", x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15,
                                max_nfev=POLISH_NFEV)
    except (ValueError, np.linalg.LinAlgError):
        return u
    return res.x if np.all(np.isfinite(res.x)) else u
