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

import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .errors import ConvergenceWarning, DataError, FitError
from .law import Law

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
                max_iter: int = 200, ftol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve a batch of independent starts in cache- and memory-sized blocks; see :func:`_solve_block`."""
    k = len(u0)
    block = block_size(problem.n, u0.shape[1])
    if k <= block:
        return _solve_block(problem, u0, weights, max_iter=max_iter, ftol=ftol)
    w = None if weights is None else np.broadcast_to(weights, (k, problem.n))
    parts = [_solve_block(problem, u0[i : i + block], None if w is None else w[i : i + block],
                          max_iter=max_iter, ftol=ftol) for i in range(0, k, block)]
    return tuple(np.concatenate(x) for x in zip(*parts))


def _solve_block(problem: Problem, u0: np.ndarray, weights: np.ndarray | None = None, *,
                 max_iter: int = 200, ftol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
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


def _polish(problem: Problem, u: np.ndarray) -> np.ndarray:
    """scipy's trust-region least squares with loss='huber': the same objective, handled exactly at bounds."""
    from scipy.optimize import least_squares

    loss = problem.loss
    sw = np.sqrt(problem.w)

    def fun(x):
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
                                method="trf", x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=2000)
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


def multistart(problem: Problem, starts: np.ndarray, *, keep: int = 32, polish: int = 4) -> tuple[np.ndarray, float, StartReport]:
    """All starts in one batch, pruned by successive halving, the finalists run to convergence."""
    block = block_size(problem.n, starts.shape[1])
    f0 = np.concatenate([problem.objective(starts[i : i + block]) for i in range(0, len(starts), block)])
    ok = np.isfinite(f0)
    if not ok.any():
        raise FitError(f"law '{problem.law.name}': the law is not finite and positive at any starting point")
    u = starts[ok]
    f = f0[ok]
    n_starts = len(starts)
    # Successive halving: a few cheap iterations for everyone, full effort for the promising.
    for iters, survivors in ((6, max(keep, len(u) // 10)), (20, keep)):
        if len(u) <= survivors:
            continue
        u, f, _ = solve_batch(problem, u, max_iter=iters)
        order = np.argsort(f)[:survivors]
        u, f = u[order], f[order]
    u, f, conv = solve_batch(problem, u, max_iter=400)
    order = np.argsort(f)
    u, f = u[order], f[order]
    best_u, best_f = u[0], f[0]
    # Polish the best few distinct minima with scipy; keep whichever is lowest.
    seen: list[np.ndarray] = []
    for cand in u[: max(polish * 4, polish)]:
        if any(np.allclose(cand, s, rtol=1e-4, atol=1e-6) for s in seen):
            continue
        seen.append(cand)
        pu = _polish(problem, cand)
        pf = problem.objective(pu[None])[0]
        if pf < best_f:
            best_u, best_f = pu, pf
        if len(seen) >= polish:
            break
    tol = 1e-6 * max(best_f, 1e-12) + 1e-12
    reached = int(np.sum(f <= best_f + max(tol, 1e-5 * best_f)))
    return best_u, float(best_f), StartReport(n_starts, len(u), reached, float(best_f))


# --------------------------------------------------------------------------- bootstrap
def bootstrap_counts(n_runs: int, n_draws: int, seed: int | None) -> np.ndarray:
    """How often each run is drawn in each resample (runs resampled with replacement; a curve is one run).

    (n_draws, n_runs): small even for huge curve tables; rows get their run's count per chunk.
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_runs, size=(n_draws, n_runs))
    counts = np.zeros((n_draws, n_runs))
    np.add.at(counts, (np.arange(n_draws)[:, None], picks), 1.0)
    return counts


def _bootstrap_chunk(problem: Problem, u_hat: np.ndarray, counts: np.ndarray, run_codes: np.ndarray) -> np.ndarray:
    weights = counts[:, run_codes]  # expanded per chunk: never (n_draws, n_rows) at once
    u0 = np.repeat(u_hat[None], len(weights), axis=0)
    # ftol 1e-10: bootstrap spreads agree with 1e-12 to four digits at a third less work.
    u, f, _ = solve_batch(problem, u0, weights * problem.w, max_iter=300, ftol=1e-10)
    u[~np.isfinite(f)] = np.nan
    return u


def run_bootstrap(problem: Problem, u_hat: np.ndarray, run_codes: np.ndarray, n_draws: int, seed: int | None,
                  jobs: int = 1, backend: str = "loky",
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Refit on ``n_draws`` resamples of runs, warm-started at the full-data optimum; (n_draws, q) in u.

    With few runs most resamples repeat (3 curves give only 10 distinct ones, 5 give 126), and a refit
    is a deterministic function of the run counts, so each distinct resample is solved once and the
    result repeated: the draws are identical to solving them all, at a fraction of the cost.
    """
    counts = bootstrap_counts(int(run_codes.max()) + 1, n_draws, seed)
    distinct, which = np.unique(counts, axis=0, return_inverse=True)
    n_solve = len(distinct)
    chunk = 250 if jobs == 1 else max(10, math.ceil(n_solve / (4 * max(jobs, 1))))
    chunk = min(chunk, block_size(problem.n, len(u_hat)))
    chunks = [distinct[i : i + chunk] for i in range(0, n_solve, chunk)]
    out = []

    def report():
        if progress:
            progress(round(n_draws * sum(len(o) for o in out) / n_solve), n_draws)

    if jobs == 1 and backend == "loky":
        for c in chunks:
            out.append(_bootstrap_chunk(problem, u_hat, c, run_codes))
            report()
    else:
        from joblib import Parallel, delayed, parallel_config

        with parallel_config(backend=backend, n_jobs=jobs):
            for res in Parallel(return_as="generator")(delayed(_bootstrap_chunk)(problem, u_hat, c, run_codes) for c in chunks):
                out.append(res)
                report()
    return np.vstack(out)[which.reshape(-1)]


INTERVALS = ("stretched", "percentile")


def stretch_factor(n_runs: int, n_free: int, ci: float) -> float:
    """How much a bootstrap-over-runs interval is stretched about the estimate: t_{n-q} / z.

    The bootstrap sees the scatter of n runs as if it were known exactly; with q parameters fitted
    from them a t tail with n - q degrees of freedom is the honest one (1.06 for 25 runs and 5
    parameters, 1.14 for 15, 1.0 for many runs).

    Measured (benchmarks/calibration.py, Chinchilla truth, 200 simulated sweeps per design): with 5 sizes
    x 5 token budgets the reported 95 % intervals cover the true parameters and a 10x extrapolated
    forecast 96.5-99.5 % of the time (the plain percentile interval is already conservative there); with
    only 3 sizes at 2 % noise the plain interval covers 93 % and the stretched one 94.5-98.5 %.
    """
    from scipy.stats import norm, t

    p = 0.5 + ci / 2
    return float(t.ppf(p, max(n_runs - n_free, 1)) / norm.ppf(p))


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
    jobs, backend : joblib parallelism for the bootstrap (``loky``, ``threading``, ``dask``, ``ray``).
    start : optional starting point (dict or full vector) added to the law's grid.
    interval : "stretched" (default): each bootstrap percentile interval is stretched about the point
        estimate by :func:`stretch_factor` (in log space for positive quantities); "percentile": the
        plain percentile interval, which covers too rarely with few runs. Coverage of both, measured:
        benchmarks/results/calibration.md.
    """
    from .registry import get_law
    from .result import FitResult

    law = get_law(law)
    data = _as_dataset(data, law)
    if loss not in LOSSES:
        raise DataError(f"loss '{loss}': use one of {', '.join(LOSSES)}")
    if not (isinstance(delta, (int, float)) and delta > 0 and math.isfinite(delta)):
        raise DataError(f"delta must be a positive number, got {delta!r}")
    if not 0 < ci < 1:
        raise DataError(f"ci must lie in (0, 1), got {ci!r}")
    if n_bootstrap < 0:
        raise DataError(f"--bootstrap must be >= 0, got {n_bootstrap}")
    if interval not in INTERVALS:
        raise DataError(f"interval '{interval}': use one of {', '.join(INTERVALS)}")
    if n_bootstrap:
        _connect_cluster(backend)
    t0 = time.perf_counter()
    param = Parameterization(law, fixed, ties)
    n_free = len(param.free)
    n_rows = len(data)
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
    u_hat, f_hat, report = multistart(search, starts)
    if search is not problem:
        # Refine on every row from the thinned optimum (already in the basin, so the bootstrap's tolerance
        # suffices); scipy's dense trust-region polish would cost more than it gains here.
        u_full, f_full, _ = solve_batch(problem, u_hat[None], max_iter=200, ftol=1e-10)
        u_hat, f_hat = u_full[0], float(f_full[0])
    t_fit = time.perf_counter() - t0

    draws_u = None
    if n_bootstrap:
        draws_u = run_bootstrap(problem, u_hat, data.run_codes, n_bootstrap, seed, jobs, backend, progress)
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
