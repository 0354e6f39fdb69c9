"""Robust fitting: summed Huber loss on log residuals, multi-start, bootstrap over runs.

The objective is ``sum_i w_i * rho(log yhat_i - log y_i)`` with ``rho`` the Huber function of width
``delta`` (1e-3 by default, the Chinchilla recipe), plain least squares, or absolute error. It is
*summed*, not averaged: averaging shrinks the objective so much that solvers stop early, which is what
biased the published Chinchilla fit (Besiroglu et al. 2024).

Why a batched solver: the Chinchilla recipe starts from 4,500 grid points, and the bootstrap refits the
law a thousand times. Both are the same problem -- many independent small least-squares fits -- so they
run as one vectorised iteratively-reweighted Levenberg-Marquardt over a batch of parameter vectors
(``law.predict`` takes a (k, p) batch). The best few starts are then polished with
``scipy.optimize.least_squares(loss="huber")``, which minimises exactly the same objective.
"""

from __future__ import annotations

import inspect
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

from .errors import ConvergenceWarning, DataError, FitError
from .law import Law
from .limits import enforce
from .stats import stretch_factor

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
        a = np.abs(r)
        if math.isinf(d):
            return 0.5 * r * r
        return np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))

    def psi(self, r: np.ndarray) -> np.ndarray:
        d = self.width
        return r if math.isinf(d) else np.clip(r, -d, d)

    def irls_weight(self, r: np.ndarray) -> np.ndarray:
        d = self.width
        if math.isinf(d):
            return np.ones_like(r)
        a = np.abs(r)
        return np.where(a <= d, 1.0, d / np.maximum(a, 1e-300))


# --------------------------------------------------------------------------- parameter mapping
class Parameterization:
    """Maps the optimiser's free vector ``u`` to the law's full natural-unit vector ``theta``.

    Free parameters with ``log=True`` are optimised as log(value). ``fixed`` pins values (``--set``);
    ``ties`` makes one parameter equal another (``--tie beta=alpha``, as Gadre et al. do).
    """

    def __init__(self, law: Law, fixed: Mapping[str, float] | None = None, ties: Mapping[str, str] | None = None):
        names = law.param_names
        self.law = law
        self.names = names
        fixed = dict(fixed or {})
        ties = dict(ties or {})
        for name in list(fixed) + list(ties):
            if name not in names:
                raise DataError(f"law '{law.name}' has no parameter '{name}'; parameters are: {', '.join(names)}")
        for name, src in ties.items():
            if src not in names:
                raise DataError(f"--tie {name}={src}: law '{law.name}' has no parameter '{src}'")
            if src in ties or src in fixed:
                raise DataError(f"--tie {name}={src}: '{src}' must itself be free (not tied or fixed)")
            if name in fixed:
                raise DataError(f"parameter '{name}' is both fixed and tied")
        lo, hi = law.bounds_array()
        for name, value in fixed.items():
            i = names.index(name)
            if not (lo[i] <= value <= hi[i]):
                raise DataError(f"--set {name}={value}: outside the law's bounds [{lo[i]:g}, {hi[i]:g}]")
        self.fixed = {names.index(k): float(v) for k, v in fixed.items()}
        self.ties = {names.index(k): names.index(v) for k, v in ties.items()}
        self.free = [i for i in range(len(names)) if i not in self.fixed and i not in self.ties]
        if not self.free:
            raise DataError(f"law '{law.name}': every parameter is fixed or tied; nothing to fit")
        self.log = np.array([law.params[names[i]].log for i in self.free])
        self.lo = self._to_space(lo[self.free])
        self.hi = self._to_space(hi[self.free])
        # d theta / d theta_free: column j of ``expand`` says which full entries free j feeds.
        self.expand = np.zeros((len(names), len(self.free)))
        for j, i in enumerate(self.free):
            self.expand[i, j] = 1.0
        for i, src in self.ties.items():
            self.expand[i, self.free.index(src)] = 1.0

    @property
    def free_names(self) -> list[str]:
        return [self.names[i] for i in self.free]

    def to_theta(self, u: np.ndarray) -> np.ndarray:
        u = np.atleast_2d(u)
        free_vals = np.where(self.log, np.exp(u), u)
        theta = free_vals @ self.expand.T
        for i, v in self.fixed.items():
            theta[:, i] = v
        return theta

    def to_u(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return self._to_space(theta[:, self.free])

    def _to_space(self, free_vals: np.ndarray) -> np.ndarray:
        """Natural values of the free parameters -> optimiser space (log where declared)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.log, np.log(np.where(self.log, free_vals, 1.0)), free_vals)

    def jac_u(self, jac_theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Chain rule: d/du = d/dtheta @ expand, times exp(u) for log parameters."""
        j = jac_theta @ self.expand
        scale = np.where(self.log, np.exp(u), 1.0)  # (k, q)
        return j * scale[:, None, :]

    def clip(self, u: np.ndarray) -> np.ndarray:
        return np.clip(u, self.lo, self.hi)

    def start_grid(self, extra: np.ndarray | None = None) -> np.ndarray:
        """The law's init grid over the free parameters (duplicates removed), plus extra starts."""
        grids = [np.asarray(self.law.params[self.names[i]].init) for i in self.free]
        mesh = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, len(self.free))
        u = self._to_space(mesh)
        if extra is not None and len(extra):
            u = np.vstack([self.to_u(extra), u])
        u = u[np.all(np.isfinite(u), axis=1)]
        return self.clip(u)


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
        r = self.residuals(u)
        f = np.sum((self.w if w is None else w) * self.loss.rho(r), axis=-1)
        return np.where(np.isfinite(f), f, np.inf)

    def residuals_and_jac(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = self.param.to_theta(u)
        with np.errstate(all="ignore"):
            yhat, jac = self.law.predict_and_jacobian(theta, self.design)
            if jac is None:
                jac = self._numeric_jac(theta, yhat)
            r = np.log(yhat) - self.logy
            jr = jac / yhat[..., None]  # d log yhat = d yhat / yhat
        return r, self.param.jac_u(jr, u)

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
_SEARCH_ROWS = 50_000  # above this many rows the multi-start runs on an evenly thinned copy
_BLOCK = 512  # rows of the batch solved together: keeps the (k, n, q) Jacobian in cache
_MAX_ELEMENTS = 2**24  # cap on k * n * (q + 1) per block (~128 MB of float64), so 10M-row tables fit


def block_size(n: int, q: int) -> int:
    """How many parameter vectors to evaluate together on n rows with q free parameters."""
    return int(max(1, min(_BLOCK, _MAX_ELEMENTS // max(1, n * (q + 1)))))


def solve_batch(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *,
                max_iter: int = 200, ftol: float = 1e-12,
                progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve a batch of independent starts in cache- and memory-sized blocks; see :func:`_solve_block`.

    ``progress(done, total)`` hears every iteration: total = blocks x ``max_iter``; a block that converges
    early jumps to its end.
    """
    k = len(u0)
    block = block_size(problem.n, u0.shape[1])
    n_blocks = max(1, math.ceil(k / block))
    total = n_blocks * max_iter

    def tick(b):
        if progress is None:
            return None
        return lambda it: progress(b * max_iter + it, total)

    if k <= block:
        out = _solve_block(problem, u0, weights, max_iter=max_iter, ftol=ftol, on_iter=tick(0))
    else:
        w = None if weights is None else np.broadcast_to(weights, (k, problem.n))
        parts = [_solve_block(problem, u0[i : i + block], None if w is None else w[i : i + block],
                              max_iter=max_iter, ftol=ftol, on_iter=tick(i // block)) for i in range(0, k, block)]
        out = tuple(np.concatenate(x) for x in zip(*parts))
    if progress is not None:
        progress(total, total)
    return out


def _solve_block(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *,
                 max_iter: int = 200, ftol: float = 1e-12,
                 on_iter: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iteratively reweighted, damped Gauss-Newton (Levenberg-Marquardt) for k problems at once.

    Each row of ``u0`` is an independent start; ``weights`` is (n,) or (k, n) (bootstrap multiplicity
    times user weights). Returns (u, objective, converged). Steps are accepted only when the robust
    objective decreases, so every row descends monotonically; bounds are enforced by projection.
    """
    loss = problem.loss
    u = problem.param.clip(np.array(u0, dtype=float, copy=True))
    k, q = u.shape
    w_all = np.broadcast_to(problem.w if weights is None else weights, (k, problem.n))
    f = problem.objective(u, w_all)
    lam = np.full(k, 1e-3)
    converged = np.zeros(k, dtype=bool)
    active = np.isfinite(f)
    eye = np.eye(q)
    for it in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        if on_iter is not None:
            on_iter(it)
        ua, wa = u[idx], w_all[idx]
        r, J = problem.residuals_and_jac(ua)
        bad = np.zeros(idx.size, dtype=bool)
        if not (np.isfinite(r).all() and np.isfinite(J).all()):  # rare: scrub only when needed
            bad = ~np.all(np.isfinite(r), axis=1) | ~np.all(np.isfinite(J), axis=(1, 2))
            r = np.where(np.isfinite(r), r, 0.0)
            J = np.where(np.isfinite(J), J, 0.0)
        Jt = J.transpose(0, 2, 1)  # batched BLAS matmuls: several times faster than einsum here
        g = (Jt @ (wa * loss.psi(r))[..., None])[..., 0]
        H = (Jt * (wa * loss.irls_weight(r))[:, None, :]) @ J
        diag = np.diagonal(H, axis1=1, axis2=2)
        scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
        A = H + lam[idx, None, None] * scale[:, :, None] * eye
        try:
            step = -np.linalg.solve(A, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(A, g)])
        u_new = problem.param.clip(ua + step)
        f_new = problem.objective(u_new, wa)
        f_old = f[idx]
        better = (f_new < f_old) & ~bad
        small = better & ((f_old - f_new) <= ftol * np.maximum(f_old, 1e-300))
        u[idx[better]] = u_new[better]
        f[idx[better]] = f_new[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] * 0.3, 1e-12), lam[idx] * 10.0)
        # Done: a negligible improvement, or no step of any size improves (a minimum at working precision).
        stalled = lam[idx] > 1e10
        done = small | stalled | bad
        converged[idx[done & ~bad]] = True
        active[idx[done]] = False
    return u, f, converged


_POLISH_NFEV = 2000  # most residual evaluations one polish may spend


def _polish(problem: Problem, u: np.ndarray, on_eval: Callable[[int], None] | None = None) -> np.ndarray:
    """scipy's trust-region least squares with loss='huber': the same objective, handled exactly at bounds.

    ``on_eval(n)`` hears the number of residual evaluations so far (at most ``_POLISH_NFEV``).
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
                                max_nfev=_POLISH_NFEV)
    except (ValueError, np.linalg.LinAlgError):
        return u
    return res.x if np.all(np.isfinite(res.x)) else u


# --------------------------------------------------------------------------- multi-start
@dataclass
class StartReport:
    n_starts: int
    n_refined: int
    n_converged_best: int
    best_objective: float


def multistart(problem: Problem, starts: np.ndarray, *, keep: int = 32, polish: int = 4,
               progress: Callable[[str, int, int], None] | None = None) -> tuple[np.ndarray, float, StartReport]:
    """All starts in one batch, pruned by successive halving, the finalists run to convergence.

    ``progress(stage, done, total)`` hears each stage as it advances: "starts" (screening the grid),
    "refine" (the finalists run to convergence) and "polish" (scipy on the best few minima).
    """
    def report(stage):
        if progress is None:
            return None
        return lambda done, total: progress(stage, done, total)

    block = block_size(problem.n, starts.shape[1])
    f0 = np.concatenate([problem.objective(starts[i : i + block]) for i in range(0, len(starts), block)])
    ok = np.isfinite(f0)
    if not ok.any():
        raise FitError(f"law '{problem.law.name}': the law is not finite and positive at any starting point")
    u = starts[ok]
    f = f0[ok]
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
        u, f, _ = solve_batch(problem, u, max_iter=iters, progress=tick)
        done += cost
        order = np.argsort(f)[:survivors]
        u, f = u[order], f[order]
    u, f, conv = solve_batch(problem, u, max_iter=400, progress=report("refine"))
    order = np.argsort(f)
    u, f = u[order], f[order]
    best_u, best_f = u[0], f[0]
    # Polish the best few distinct minima with scipy; keep whichever is lowest.
    seen: list[np.ndarray] = []
    budget = polish * _POLISH_NFEV
    for cand in u[: max(polish * 4, polish)]:
        if any(np.allclose(cand, s, rtol=1e-4, atol=1e-6) for s in seen):
            continue
        seen.append(cand)
        offset = (len(seen) - 1) * _POLISH_NFEV
        pu = _polish(problem, cand, None if progress is None else
                     (lambda n, offset=offset: progress("polish", offset + min(n, _POLISH_NFEV), budget)))
        pf = problem.objective(pu[None])[0]
        if pf < best_f:
            best_u, best_f = pu, pf
        if progress is not None:
            progress("polish", len(seen) * _POLISH_NFEV, budget)
        if len(seen) >= polish:
            break
    if progress is not None:
        progress("polish", budget, budget)
    tol = 1e-6 * max(best_f, 1e-12) + 1e-12
    reached = int(np.sum(f <= best_f + max(tol, 1e-5 * best_f)))
    return best_u, float(best_f), StartReport(n_starts, len(u), reached, float(best_f))


# --------------------------------------------------------------------------- bootstrap
_DEDUP_ELEMENTS = 2**22  # draws x runs up to which all resamples are drawn at once (32 MiB of counts)


def _draw_counts(rng: np.random.Generator, n_runs: int, n_draws: int) -> np.ndarray:
    """(n_draws, n_runs) counts of each run in ``n_draws`` resamples with replacement, from ``rng``."""
    picks = rng.integers(0, n_runs, size=(n_draws, n_runs))
    flat = (np.arange(n_draws)[:, None] * n_runs + picks).ravel()
    return np.bincount(flat, minlength=n_draws * n_runs).reshape(n_draws, n_runs).astype(float)


def bootstrap_counts(n_runs: int, n_draws: int, seed: int | None) -> np.ndarray:
    """How often each run is drawn in each resample (runs resampled with replacement; a curve is one run).

    (n_draws, n_runs): small even for huge curve tables; rows get their run's count per chunk. Drawing
    the same resamples in consecutive slices of draws gives the same counts (the bootstrap streams them).
    """
    return _draw_counts(np.random.default_rng(seed), n_runs, n_draws)


def bootstrap_bytes(n_draws: int, n_runs: int, n_params: int) -> int:
    """Working memory the bootstrap holds at once: the draws (in solver and natural units, with copies),
    plus all run counts when resamples are drawn at once to solve repeated ones only once."""
    need = 4 * 8 * n_draws * max(n_params, 1)
    if n_draws * n_runs <= _DEDUP_ELEMENTS:
        need += 3 * 8 * n_draws * n_runs  # counts, picks and np.unique's sorted copy
    return int(need)


def _bootstrap_chunk(problem: Problem, u_hat: np.ndarray, counts: np.ndarray, run_codes: np.ndarray) -> np.ndarray:
    weights = counts[:, run_codes]  # expanded per chunk: never (n_draws, n_rows) at once
    u0 = np.repeat(u_hat[None], len(weights), axis=0)
    # ftol 1e-10: bootstrap spreads agree with 1e-12 to four digits at a third less work.
    u, f, _ = solve_batch(problem, u0, weights * problem.w, max_iter=300, ftol=1e-10)
    u[~np.isfinite(f)] = np.nan
    return u


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker process as soon as the process that started it is gone.

    loky keeps idle workers for minutes, and a parent killed with SIGKILL cannot tell them to stop; a
    worker whose parent has died is re-parented, so watching ``os.getppid()`` is enough (POSIX and Windows).
    loky starts its workers from the process that makes the executor, so a different parent pid here
    means that process died while this worker was starting.
    """
    if os.getppid() != parent:
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="scalefit-exit-with-parent", daemon=True).start()


def _effective_jobs(jobs: int) -> int:
    return _cpus() if jobs == -1 else int(jobs)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_bootstrap(problem: Problem, u_hat: np.ndarray, run_codes: np.ndarray, n_draws: int, seed: int | None,
                  jobs: int = 1, backend: str = "loky",
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Refit on ``n_draws`` resamples of runs, warm-started at the full-data optimum; (n_draws, q) in u.

    With few runs most resamples repeat (3 curves give only 10 distinct ones, 5 give 126), and a refit
    is a deterministic function of the run counts, so each distinct resample is solved once and the
    result repeated: the draws are identical to solving them all, at a fraction of the cost. With many
    runs and draws, resamples are drawn chunk by chunk as the solver needs them, so memory stays bounded
    (the counts of all draws at once would be draws x runs).
    """
    n_runs = int(run_codes.max()) + 1
    workers = _effective_jobs(jobs)
    enforce("jobs", workers, f"jobs={jobs}")
    enforce("memory_bytes", bootstrap_bytes(n_draws, n_runs, len(u_hat)),
            f"a bootstrap of {n_draws:,} draws over {n_runs:,} runs")
    cap = block_size(problem.n, len(u_hat))
    which = None
    if n_draws * n_runs <= _DEDUP_ELEMENTS:
        counts = bootstrap_counts(n_runs, n_draws, seed)
        distinct, which = np.unique(counts, axis=0, return_inverse=True)
        which = which.reshape(-1)
        n_solve = len(distinct)
    else:
        n_solve = n_draws
        cap = max(1, min(cap, _DEDUP_ELEMENTS // n_runs))
    chunk = 250 if workers == 1 else max(10, math.ceil(n_solve / (4 * workers)))
    chunk = min(chunk, cap)
    if which is not None:
        chunks: Iterator[np.ndarray] = (distinct[i : i + chunk] for i in range(0, n_solve, chunk))
    else:
        rng = np.random.default_rng(seed)
        chunks = (_draw_counts(rng, n_runs, min(chunk, n_draws - i)) for i in range(0, n_draws, chunk))
    out = []
    solved = 0

    def report(res):
        nonlocal solved
        out.append(res)
        solved += len(res)
        if progress:
            progress(round(n_draws * solved / n_solve), n_draws)

    if workers == 1 and backend == "loky":
        for c in chunks:
            report(_bootstrap_chunk(problem, u_hat, c, run_codes))
    else:
        from joblib import Parallel, delayed, parallel_config

        # loky's workers outlive an interrupted or killed parent unless told: each watches its parent.
        own = {"initializer": _exit_with_parent, "initargs": (os.getpid(),)} if backend == "loky" else {}
        with parallel_config(backend=backend, n_jobs=jobs, **own):
            results = Parallel(return_as="generator")(
                delayed(_bootstrap_chunk)(problem, u_hat, c, run_codes) for c in chunks)
            try:
                for res in results:
                    report(res)
            finally:  # on an interrupt: cancel queued chunks and stop the workers now, not at garbage collection
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results.close()
    draws = np.vstack(out)
    return draws if which is None else draws[which]


INTERVALS = ("stretched", "percentile")
BACKENDS = ("loky", "threading", "dask", "ray")
DELTA_RANGE = (1e-9, 1e10)  # Huber widths on log residuals: below, use loss="l1"; above, it is "lsq" already


def _label(names: Mapping[str, str] | None, param: str, value) -> str:
    """How an option is named in a message: ``jobs=0`` for Python callers, ``--jobs 0`` for the CLI."""
    name = (names or {}).get(param, param)
    if not name.startswith("-"):
        return f"{name}={value!r}"
    return f"{name} '{value}'" if isinstance(value, str) else f"{name} {value}"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_options(*, loss: str = "huber", delta: float = 1e-3, n_bootstrap: int = 0, ci: float = 0.95,
                  seed: int | None = 0, jobs: int = 1, backend: str = "loky", interval: str = "stretched",
                  names: Mapping[str, str] | None = None) -> None:
    """Validate :func:`fit`'s options before any work; one DataError naming the first bad one.

    ``fit`` calls this first; the CLI calls it before reading the table, with ``names`` mapping each
    parameter to its flag (``{"n_bootstrap": "--bootstrap"}``) so that the message names what the user typed.
    """
    def bad(param, value, rule):
        raise DataError(f"{_label(names, param, value)}: {rule}")

    if loss not in LOSSES:
        bad("loss", loss, f"use one of {', '.join(LOSSES)}")
    if not (isinstance(delta, (int, float, np.floating)) and not isinstance(delta, bool)
            and math.isfinite(delta) and DELTA_RANGE[0] <= delta <= DELTA_RANGE[1]):
        bad("delta", delta, f"the Huber width on log residuals must be a number from {DELTA_RANGE[0]:g} to "
                            f"{DELTA_RANGE[1]:g} (use loss l1 or lsq for the limits)")
    if not _is_int(n_bootstrap) or n_bootstrap < 0:
        bad("n_bootstrap", n_bootstrap, "the number of bootstrap draws must be a whole number >= 0")
    if not (isinstance(ci, (int, float, np.floating)) and not isinstance(ci, bool) and 0 < ci < 1):
        bad("ci", ci, "the interval level must lie strictly between 0 and 1, e.g. 0.95")
    if seed is not None and (not _is_int(seed) or seed < 0):
        bad("seed", seed, "the seed must be a whole number >= 0")
    if not _is_int(jobs) or not (jobs >= 1 or jobs == -1):
        bad("jobs", jobs, "use a positive number of workers, or -1 for one per CPU")
    enforce("jobs", _effective_jobs(jobs), _label(names, "jobs", jobs))
    if backend not in BACKENDS:
        bad("backend", backend, f"use one of {', '.join(BACKENDS)}")
    if interval not in INTERVALS:
        bad("interval", interval, f"use one of {', '.join(INTERVALS)}")


def _staged(progress: Callable | None) -> Callable[[str, int, int], None] | None:
    """``progress(done, total)`` hears the bootstrap (as always); a callback that takes a third argument,
    ``progress(done, total, stage)``, also hears the multi-start stages: "starts", "refine", "polish",
    "full-data" (refining on every row of a thinned huge table) and "bootstrap"."""
    if progress is None:
        return None
    try:
        params = inspect.signature(progress).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_stage = len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):  # a builtin without a signature: the two-argument form
        takes_stage = False

    def call(stage: str, done: int, total: int) -> None:
        if takes_stage:
            progress(done, total, stage)
        elif stage == "bootstrap":
            progress(done, total)

    return call


def _connect_cluster(backend: str) -> None:
    """dask: use the Client the caller made, or the cluster at DASK_SCHEDULER_ADDRESS; else say how to get one."""
    if backend != "dask":
        return
    try:
        import dask
        from distributed import get_client
    except ImportError:
        raise DataError("backend 'dask' needs the optional extra: pip install 'scalefit[dask]'") from None
    try:
        get_client(address=dask.config.get("scheduler-address", None))  # a new Client becomes the default
    except (ValueError, OSError) as exc:
        raise DataError(f"backend 'dask' found no cluster ({str(exc).splitlines()[0]}): create a "
                        f"distributed.Client first, or set DASK_SCHEDULER_ADDRESS=tcp://HOST:8786") from None


# --------------------------------------------------------------------------- public entry point
def _as_dataset(data, law: Law):
    """Accept a Dataset, a DataFrame or a file path (the Python twin of the CLI's RUNS argument)."""
    from .data import Dataset, from_frame, load_runs

    if isinstance(data, Dataset):
        return data
    required = [*law.inputs, law.target]
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        if law.kind == "curve":
            from .curves import load_curves

            return load_curves(data)
        return load_runs(data, required=required)
    if hasattr(data, "columns") and hasattr(data, "iloc"):
        return from_frame(data, required=required)
    raise DataError(f"data must be a Dataset, a DataFrame or a table path, got {type(data).__name__}")


def fit(
    law: Law | str,
    data,
    *,
    loss: str = "huber",
    delta: float = 1e-3,
    fixed: Mapping[str, float] | None = None,
    ties: Mapping[str, str] | None = None,
    n_bootstrap: int = 0,
    ci: float = 0.95,
    seed: int | None = 0,
    jobs: int = 1,
    backend: str = "loky",
    start: Mapping[str, float] | np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    interval: str = "stretched",
):
    """Fit ``law`` to ``data`` and return a :class:`FitResult`.

    Parameters
    ----------
    data : a :class:`scalefit.data.Dataset`, a pandas DataFrame, or the path of a table file (columns
        are matched to the law's roles by name or alias; use :func:`scalefit.data.load_runs` to map them).
    loss : "huber" (default), "lsq" or "l1", applied to log residuals and summed over rows.
    delta : Huber width on log residuals (1e-3: about 0.1 % relative error).
    fixed : parameters held at given values (``--set``); ties: ``{"beta": "alpha"}`` makes beta = alpha.
    n_bootstrap : resamples of runs for percentile intervals (0: asymptotic standard errors only).
    ci : central interval level. seed: seeds the bootstrap (same seed -> identical output).
    jobs, backend : joblib parallelism for the bootstrap (``loky``, ``threading``, ``dask``, ``ray``); jobs is
        a positive number of workers or -1 (one per CPU), at most ``scalefit.limits.limit("jobs")`` (4 per
        CPU; SCALEFIT_MAX_JOBS raises it). loky workers end with the process that started them.
    start : optional starting point (dict or full vector) added to the law's grid.
    progress : ``progress(done, total)`` as the bootstrap advances; a callback with a third argument,
        ``progress(done, total, stage)``, also hears the multi-start ("starts", "refine", "polish",
        "full-data"), which on large curve tables takes minutes. Options are validated before anything
        is read or fitted (:func:`check_options`).
    interval : "stretched" (default): each bootstrap percentile interval is stretched about the point
        estimate by :func:`stretch_factor` (in log space for positive quantities); "percentile": the
        plain percentile interval, which covers too rarely with few runs. Coverage of both, measured:
        benchmarks/results/calibration.md.
    """
    from .registry import get_law
    from .result import FitResult

    check_options(loss=loss, delta=delta, n_bootstrap=n_bootstrap, ci=ci, seed=seed, jobs=jobs, backend=backend,
                  interval=interval)
    stage = _staged(progress)
    law = get_law(law)
    data = _as_dataset(data, law)
    t0 = time.perf_counter()
    param = Parameterization(law, fixed, ties)
    n_free = len(param.free)
    n_rows = len(data)
    if n_bootstrap:
        # Before any work: the draws must fit in memory, and a cluster backend must have a cluster.
        enforce("memory_bytes", bootstrap_bytes(n_bootstrap, data.n_runs, max(n_free, len(law.param_names))),
                f"n_bootstrap={n_bootstrap:,} draws over {data.n_runs:,} runs")
        _connect_cluster(backend)
    if n_rows <= n_free:
        raise FitError(
            f"{data.source}: {n_rows} row(s) for {n_free} free parameter(s) of law '{law.name}'; "
            f"need more rows than parameters (or fix some with --set NAME=VALUE)"
        )
    weights = data.weights()
    if weights is not None and np.count_nonzero(weights) <= n_free:
        raise FitError(
            f"{data.source}: {np.count_nonzero(weights)} row(s) with non-zero weight for {n_free} free parameter(s) "
            f"of law '{law.name}'; need more weighted rows than parameters"
        )
    law.check_identifiable(data)
    law.check_fixed(data, dict(fixed or {}))
    design = law.prepare(data)
    y = data.column(law.target)
    problem = Problem(law, design, y, weights, param, RobustLoss(loss, delta))
    # Huge tables (dense loss curves): search the starts on an evenly thinned copy that keeps every run,
    # then refine the winner on all rows. The basin is found as well; the cost no longer scales with n.
    search, search_design, search_y = problem, design, y
    if len(data) > _SEARCH_ROWS:
        keep = np.arange(len(data)) % math.ceil(len(data) / _SEARCH_ROWS) == 0
        thin = data.subset(keep)
        search_design, search_y = law.prepare(thin), thin.column(law.target)
        search = Problem(law, search_design, search_y, None if weights is None else weights[keep], param,
                         RobustLoss(loss, delta))

    extra = law.start_points(search_design, search_y)
    if start is not None:
        vec = np.array([start[n] for n in law.param_names]) if isinstance(start, Mapping) else np.asarray(start)
        extra = vec[None] if extra is None else np.vstack([vec[None], extra])
    if extra is not None:
        extra = np.atleast_2d(np.asarray(extra, dtype=float))
        for i, v in param.fixed.items():
            extra[:, i] = v
    starts = param.start_grid(extra)
    u_hat, f_hat, report = multistart(search, starts, progress=stage)
    if search is not problem:
        # Refine on every row from the thinned optimum (already in the basin, so the bootstrap's tolerance
        # suffices); scipy's dense trust-region polish would cost more than it gains here.
        u_full, f_full, _ = solve_batch(problem, u_hat[None], max_iter=200, ftol=1e-10, progress=None if stage is None
                                        else (lambda d, t: stage("full-data", d, t)))
        u_hat, f_hat = u_full[0], float(f_full[0])
    t_fit = time.perf_counter() - t0

    draws_u = None
    if n_bootstrap:
        draws_u = run_bootstrap(problem, u_hat, data.run_codes, n_bootstrap, seed, jobs, backend,
                                None if stage is None else (lambda d, t: stage("bootstrap", d, t)))
    theta = param.to_theta(u_hat[None])[0]
    draws = None
    if draws_u is not None:
        good = np.all(np.isfinite(draws_u), axis=1)
        draws = param.to_theta(draws_u[good])
        if (~good).any():
            warnings.warn(f"{int((~good).sum())} bootstrap draw(s) failed and were left out", ConvergenceWarning, stacklevel=2)

    if law.kind != "point":
        # Curve laws learn from many steps per run, so runs - parameters is not their degrees of freedom;
        # their coverage is not measured yet: report the plain percentile interval.
        interval = "percentile"
    return FitResult.from_fit(
        law=law, data=data, problem=problem, param=param, u_hat=u_hat, theta=theta, objective=f_hat,
        report=report, draws=draws, settings={
            "loss": loss, "delta": delta, "fixed": dict(fixed or {}), "ties": dict(ties or {}),
            "n_bootstrap": n_bootstrap, "ci": ci, "seed": seed, "jobs": jobs, "backend": backend,
            "interval": interval if n_bootstrap else None,
            "stretch": stretch_factor(data.n_runs, len(param.free), ci) if interval == "stretched" else 1.0,
        }, timings={"fit_s": t_fit, "total_s": time.perf_counter() - t0},
    )
