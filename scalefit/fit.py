"""Robust fitting: summed Huber loss on log residuals, multi-start, bootstrap over runs.

:func:`fit` is the entry point: it checks every option before any work (:func:`check_options`), turns
the data into the law's design, runs the multi-start of :mod:`scalefit.search` on the numerical engine
of :mod:`scalefit.solver` (objective, batched Levenberg-Marquardt; :mod:`scalefit.varpro` where a law
has linear coefficients), and bootstraps over runs. Huge tables are searched on an
evenly thinned copy that keeps every run, then refined on every row. The bootstrap resamples runs, not
rows (a curve is one run), refits each resample warm-started at the full-data optimum, is seeded, and runs
in parallel (:func:`scalefit.bootstrap.parallel_map`): ``loky`` or ``threading`` through joblib, or
scalefit's own tasks on a ``dask`` or ``ray`` cluster connected here. Progress reaches the caller stage by
stage. The diagnosis of the optimum (residuals, parameters at a bound, each parameter's status, asymptotic
standard errors) is computed here too, from the solver's internals, and handed to
:class:`scalefit.result.FitResult` as plain values.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from typing import Callable, Mapping

import numpy as np

from .bootstrap import (  # noqa: F401 (re-exported)
    BOOTSTRAPS,
    STOP_FRACTION,
    _effective_jobs,
    bootstrap_bytes,
    bootstrap_counts,
    bootstrap_method_for,
    distinct_resamples,
    run_bootstrap,
)
from .errors import ConvergenceWarning, DataError, FitError
from .law import Law
from .limits import enforce, with_sliding_malloc
from .parameterization import Parameterization
from .search import multistart
from .solver import LOSSES, Problem, RobustLoss, solve_batch
from .stats import stretch_factor
from .varpro import solve

# Curve tables: from twice this many rows the multi-start runs on a copy holding every k-th point of each run
# (at least this many rows). Dense curves' neighbouring points say nearly the same thing, and the
# multi-start's cost is rows x starts x iterations. Measured on multipower (synthetic, every step logged),
# before the stop below: 20 x 1,000 steps 44 s -> 19 s, 20 x 5,000 430 s -> 49 s, the same objective to
# 1e-15. Copies of 2,500 rows made the starts crawl along the flat drop-term valley for 400 iterations.
_SEARCH_ROWS = 5_000
# ... but never thinner than every 200th point: the refinement on every row must start close (10M rows:
# 35 s with a 50,000-row search, 42 s with a 5,000-row one, whose refinement took more full-table steps).
_MAX_EVERY = 200
# A thinned curve table's search and its refinement on every row stop once a step gains less than this
# fraction of the noise level (the objective change of a one-standard-error move), as bootstrap draws
# do. Multipower's drop term often has a direction the curves barely see (C at a bound, Bslope and beta
# trading off); Levenberg-Marquardt crawled along it for hundreds of iterations, 1e-7 of the objective
# or 1e-4 of the noise level in all (20 x 1,000 steps searched on 2,500 rows: 400 iterations, 60 s).
# Measured with it: 20 x 1,000 steps 13 s, 20 x 5,000 33 s; objectives 1e-12 to 1e-7 (relative) above
# the converged ones, at most 0.008 of the noise level.
_CURVE_STOP = STOP_FRACTION
_SEARCH_RUNS = 4_000  # point tables: above this many runs it runs on a subsample of this many, spread over the inputs


def _search_rows(law: Law, data) -> np.ndarray | None:
    """Which rows the multi-start searches on (None: all). Curve tables: every k-th point of each run, its
    first included (no run is lost, however short). Point tables: evenly spaced picks through the rows
    sorted by the law's inputs (the first most significant), so the subsample spans every input's range as
    the table does. The fit then refines on every row from the subsample's optimum, so the answer is the
    full table's (a curve table's to within 1e-3 of its noise level) and the search cost stops growing with
    the table (Epoch-like tables of 2,000 runs and more)."""
    n = len(data)
    if law.kind == "point" and n > _SEARCH_RUNS:
        order = np.lexsort([data.column(role) for role in reversed(law.inputs)])
        keep = np.zeros(n, dtype=bool)
        keep[order[np.linspace(0, n - 1, _SEARCH_RUNS).round().astype(int)]] = True
        return keep
    every = min(n // _SEARCH_ROWS, _MAX_EVERY)
    if every >= 2:
        codes = data.run_codes  # curve tables are sorted by run, then step
        first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        keep = np.zeros(n, dtype=bool)
        for start, end in zip(first.tolist(), [*first[1:].tolist(), n]):  # no row-sized index arrays
            keep[start:end:every] = True
        return keep
    return None


# --------------------------------------------------------------------------- diagnosis
def asymptotic_stderr(problem: Problem, u_hat: np.ndarray) -> np.ndarray | None:
    """Least-squares approximation s^2 (J'WJ)^-1 in the optimiser's space, mapped to natural units.
    J'WJ is summed row range by row range where the whole Jacobian would not fit the block budget."""
    n, q = problem.n, len(u_hat)
    if n <= q:
        return None
    ssr = jwj = None
    for rows in problem.row_parts(1, q) or [None]:
        piece = problem if rows is None else problem.sub(rows)
        r, J = piece.residuals_and_jac(u_hat[None])
        r, J = r[0], J[0]
        if not np.all(np.isfinite(J)):
            return None
        part = (np.sum(piece.w * r**2), (J * piece.w[:, None]).T @ J)
        ssr, jwj = part if ssr is None else (ssr + part[0], jwj + part[1])
    s2 = float(ssr / (n - q))
    try:
        cov_u = s2 * np.linalg.pinv(jwj)
    except np.linalg.LinAlgError:
        return None
    se_u = np.sqrt(np.clip(np.diag(cov_u), 0, None))
    param = problem.param
    free_vals = np.where(param.log, np.exp(u_hat), u_hat)
    se_free = np.where(param.log, free_vals * se_u, se_u)
    se = np.full(len(param.names), np.nan)
    se[param.free] = se_free
    for i, src in param.ties.items():
        se[i] = se[src] * param.tie_scale[i]
    return se


def _run_offsets(r: np.ndarray, w: np.ndarray, run_codes: np.ndarray) -> list[float]:
    """Each run's weighted mean of log observed - log predicted: how far the run sits from the law as a
    whole (a curve's offset; one row's residual when a run is one row). A prediction interval adds their
    scatter (:func:`scalefit.stats.run_scatter_halfwidth`)."""
    good = np.isfinite(r)
    num = np.bincount(run_codes[good], weights=-(w * r)[good], minlength=int(run_codes.max()) + 1)
    den = np.bincount(run_codes[good], weights=w[good], minlength=int(run_codes.max()) + 1)
    with np.errstate(all="ignore"):
        return [float(x) for x in num / den]


def _diagnosis(problem: Problem, param: Parameterization, u_hat: np.ndarray, report, with_stderr: bool,
               run_codes: np.ndarray) -> dict:
    """What the result reports about the optimum, as plain values for :meth:`FitResult.from_fit`."""
    names = param.names
    # Parameters at a bound (in the optimiser's space, relative to the range); a tie follows its source.
    at_bound = set()
    span = param.hi - param.lo
    for j, i in enumerate(param.free):
        if min(u_hat[j] - param.lo[j], param.hi[j] - u_hat[j]) <= 1e-6 * span[j]:
            at_bound.add(names[i])
    for i, src in param.ties.items():
        if names[src] in at_bound:
            at_bound.add(names[i])
    status = {name: "fixed" if i in param.fixed else (f"tied:{param.tie_text(i)}" if i in param.ties else "free")
              for i, name in enumerate(names)}
    r = problem.residuals(u_hat[None])[0]
    return {"residuals": r, "logy": problem.logy, "weights": problem.w, "run_offsets": _run_offsets(r, problem.w, run_codes),
            "at_bound": at_bound, "status": status, "n_free": len(param.free), "n_starts": report.n_starts,
            "n_refined": report.n_refined, "n_converged_best": report.n_converged_best,
            "projected": report.projected,
            "asymptotic_stderr": asymptotic_stderr(problem, u_hat) if with_stderr else None}


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
                  bootstrap_method: str = "auto", names: Mapping[str, str] | None = None) -> None:
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
    if bootstrap_method not in BOOTSTRAPS:
        bad("bootstrap_method", bootstrap_method, f"use one of {', '.join(BOOTSTRAPS)}")


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


def connect_backend(backend: str) -> None:
    """Make ``backend`` usable before any work; a DataError that says how when it is not.

    dask: use the Client the caller made, or the cluster at DASK_SCHEDULER_ADDRESS; else say how to get
    one. ray: check that it is installed (the first task joins the cluster at RAY_ADDRESS, or starts a
    local one; :func:`scalefit.bootstrap.parallel_map` runs ray's own tasks). loky and threading need nothing.
    """
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise DataError("backend 'ray' needs the optional extra: pip install 'scalefit[ray]'") from None
        return
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
    from .curves import load_for
    from .data import Dataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__") or (
            hasattr(data, "columns") and hasattr(data, "iloc")):
        return load_for(law, data)
    raise DataError(f"data must be a Dataset, a DataFrame or a table path, got {type(data).__name__}")


@with_sliding_malloc  # where the environment froze the C allocator's thresholds (a dask worker's)
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
    bootstrap_method: str = "auto",
    identify: bool = True,
    params=None,
    profile: bool = False,
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
    jobs, backend : parallelism for the bootstrap (``loky``, ``threading``, ``dask``, ``ray``): the draws go out
        in a few coarse tasks, each solved in memory-sized blocks, the problem sent once per worker; jobs is
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
    bootstrap_method : "runs" resamples runs with replacement; "wild" keeps every run and rescales each
        run's residuals by one random weight (wild cluster bootstrap: 3 curves give 216 distinct draws
        where run resampling gives 10); "auto" (default) is "wild" below 10 runs, "runs" from there on.
    identify : name the parameters the data do not determine (:func:`scalefit.identify.undetermined`: a
        profile per weakly seen parameter, seconds on a curve law); backtests turn it off.
    params : an lmfit ``Parameters`` (read by attribute; lmfit is not imported): ``vary=False`` fixes,
        ``min``/``max`` narrow the law's bounds, ``value`` adds a start, ``expr`` naming a parameter ties
        (see :mod:`scalefit.lmfit_bridge`). Combines with ``fixed`` and ``ties``; an explicit ``start`` wins.
    profile : also compute profile-likelihood intervals at level ``ci`` (:mod:`scalefit.profile`), stored
        in ``diagnostics["profile"]``.
    """
    from .registry import get_law
    from .result import FitResult

    check_options(loss=loss, delta=delta, n_bootstrap=n_bootstrap, ci=ci, seed=seed, jobs=jobs, backend=backend,
                  interval=interval, bootstrap_method=bootstrap_method)
    stage = _staged(progress)
    law = get_law(law)
    bounds = {}
    if params is not None:
        from .lmfit_bridge import constraints_from, merge, start_vector, with_bounds

        wanted = constraints_from(law, params)
        fixed, ties = merge(wanted, fixed, ties)
        law, bounds = with_bounds(law, wanted.bounds), {n: list(b) for n, b in wanted.bounds.items()}
        start = start_vector(law, wanted.start, fixed) if start is None else start
    data = _as_dataset(data, law)
    t0 = time.perf_counter()
    param = Parameterization(law, fixed, ties)
    n_free = len(param.free)
    n_rows = len(data)
    if n_bootstrap:
        # Before any work: the draws must fit in memory, and a cluster backend must have a cluster.
        enforce("memory_bytes", bootstrap_bytes(n_bootstrap, data.n_runs, max(n_free, len(law.param_names))),
                f"n_bootstrap={n_bootstrap:,} draws over {data.n_runs:,} runs")
        connect_backend(backend)
    if n_rows <= n_free:
        raise FitError(
            f"{data.source}: {n_rows} row(s) for {n_free} free parameter(s) of law '{law.name}'; "
            f"need more rows than parameters (or fix some with fixed={{'NAME': VALUE}})", options=("fixed",)
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
    search, search_design, search_y, search_runs = problem, design, y, data.run_codes
    keep = _search_rows(law, data)
    if keep is not None:
        thin = data.subset(keep)
        search_runs = thin.run_codes
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
    thinned_curves = search is not problem and law.kind == "curve"
    u_hat, f_hat, report = multistart(search, starts, progress=stage,
                                      stop_fraction=_CURVE_STOP if thinned_curves else 0.0)
    u_search = u_hat  # the thinned copy's own optimum, for the diagnoses made on that copy
    if search is not problem:
        # Refine on every row from the thinned optimum (already in the basin; a curve table's draws
        # need no more than the bootstrap's tolerance, a point table's answer gets the multi-start's);
        # scipy's dense trust-region polish would cost more than it gains here.
        # One vector on every row: where even that overflows the block budget (a 1M-row curve table), the
        # plain solver, whose Gauss-Newton sums go row range by row range (the projection's line search
        # holds several arrays over every row at once).
        refine = solve if problem.row_parts(1, len(u_hat)) is None else solve_batch
        # The noise level per row is the thinned copy's (no pass over every row of a 10M-row table for it).
        atol = _CURVE_STOP * search.noise_level(u_hat) if thinned_curves else 0.0
        u_full, f_full, _ = refine(problem, u_hat[None], max_iter=400, ftol=1e-12 if law.kind == "point" else 1e-10,
                                  atol=atol,
                                  progress=None if stage is None else (lambda d, t: stage("full-data", d, t)))
        u_hat, f_hat = u_full[0], float(f_full[0])
    t_fit = time.perf_counter() - t0

    draws_u, method, n_distinct = None, None, None
    if n_bootstrap:
        method = bootstrap_method_for(bootstrap_method, data.n_runs)
        draws_u = run_bootstrap(problem, u_hat, data.run_codes, n_bootstrap, seed, jobs, backend,
                                None if stage is None else (lambda d, t: stage("bootstrap", d, t)), method)
        n_distinct = int(len(np.unique(draws_u, axis=0)))
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
    diagnosis = _diagnosis(problem, param, u_hat, report, with_stderr=draws is None, run_codes=data.run_codes)
    from .correlation import correlation_record, draws_correlation, jacobian_correlation

    # The Jacobian on the thinned copy of a huge table: the valley's shape, not its depth, is wanted.
    diagnosis["correlations"] = correlation_record([param.names[i] for i in param.free],
                                                   jacobian_correlation(search, u_search), draws_correlation(draws_u))
    if profile:
        from .profile import profile_problem

        diagnosis["profile"] = profile_problem(problem, u_hat, level=ci, runs=data.run_codes)
    if identify:
        from .identify import undetermined

        # On the thinned copy for huge tables: each profile refits every free parameter, which on 10M rows
        # would cost more than the fit. Dense curves' neighbouring points are nearly one (lag-1 correlation
        # ~0.9, which the threshold allows for on all rows), so the copy loses little; if anything it names
        # a parameter that every row would just determine. At the copy's own optimum: the full table's
        # lies above the copy's minimum, which would understate every profile's rise.
        diagnosis["undetermined"] = undetermined(search, u_search, runs=search_runs)
    if law.kind == "point":  # one offset per row there: the residuals themselves, already summarised
        diagnosis["run_offsets"] = None
    return FitResult.from_fit(
        law=law, data=data, theta=theta, objective=f_hat, draws=draws, settings={
            "loss": loss, "delta": delta, "fixed": dict(fixed or {}), "ties": dict(ties or {}),
            "n_bootstrap": n_bootstrap, "ci": ci, "seed": seed, "jobs": jobs, "backend": backend,
            "interval": interval if n_bootstrap else None, "bootstrap_method": method,
            "distinct_resamples": n_distinct,
            # Only draws are stretched (and the t quantile costs a scipy import a plain fit need not pay).
            "stretch": stretch_factor(data.n_runs, len(param.free), ci) if n_bootstrap and interval == "stretched" else 1.0,
            **({"bounds": bounds} if bounds else {}),
        }, timings={"fit_s": t_fit, "total_s": time.perf_counter() - t0}, **diagnosis,
    )
