"""Backtests that rank laws honestly: hold out the largest models, fit on the rest, score the forecast.

Metric (Choshen, Zhang, Andreas 2024, "A Hitchhiker's Guide to Scaling Law Estimation"): absolute
relative error, ARE = mean |y - y_hat| / y over the test points. On checkpoint tables (a run with more
than one row) only a held-out run's checkpoints from 70 % of its training onward are scored, as in
that paper; all checkpoints of the other runs are fitted (optionally only those past ``min_tokens``).

``compare`` runs the same split for several laws and returns one row per law: in-range error (ARE on
the points it was fitted to), held-out error, fitted parameters and wall time. Given several splits and
``jobs``, it runs the backtests -- whole fits -- as parallel tasks (loky, or a dask or ray cluster).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .data import Dataset
from .errors import DataError, option_error, shown
from .law import Law

CHECKPOINT_FRACTION = 0.7  # Hitchhiker's Guide: score checkpoints from 70 % of training onward
_SPEC = re.compile(r"^\s*largest\s*(?::\s*(\d+)\s*)?$")


# ---------------------------------------------------------------------------- metric
def are(y, y_hat) -> float:
    """Absolute relative error, mean |y - y_hat| / y (Hitchhiker's Guide ``mean_normalized_distance``)."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    if y.shape != y_hat.shape:
        raise ValueError(f"are: shapes differ, {y.shape} vs {y_hat.shape}")
    if y.size == 0:
        return float("nan")
    return float(np.mean(np.abs(y - y_hat) / np.abs(y)))


# ---------------------------------------------------------------------------- splits
def parse_holdout(spec: str) -> int:
    """``largest`` -> 1, ``largest:K`` -> K; anything else is a DataError."""
    m = _SPEC.match(str(spec))
    if not m or (m.group(1) is not None and int(m.group(1)) < 1):
        raise option_error("holdout", spec, "expected 'largest' or 'largest:K' with K >= 1, e.g. largest:2")
    return int(m.group(1) or 1)


def check_min_tokens(min_tokens: float | None) -> None:
    if min_tokens is not None and not (isinstance(min_tokens, (int, float)) and math.isfinite(min_tokens)
                                       and min_tokens > 0):
        raise option_error("min_tokens", min_tokens, "must be a positive number of tokens")


def _check_fit_options(fit_fn: Callable | None, fit_kw: dict) -> None:
    """The core fitter's options are refused before any split is made or law fitted."""
    if fit_fn is None:
        from .fit import check_options

        known = ("loss", "delta", "n_bootstrap", "ci", "seed", "jobs", "backend", "interval")
        check_options(**{k: v for k, v in fit_kw.items() if k in known})


@dataclass
class Split:
    train: np.ndarray  # boolean row masks over the dataset
    test: np.ndarray
    held_out: list[str] = field(default_factory=list)  # what was held out, for reports
    checkpoints: bool = False


def _split_k(holdout: str | int, by: str, min_tokens: float | None) -> int:
    """K of a split that holds out the K largest, with ``by`` and ``min_tokens`` checked: what needs no table."""
    if by not in ("params", "compute"):
        raise option_error("by", by, "use 'params' or 'compute'")
    check_min_tokens(min_tokens)
    return parse_holdout(holdout) if isinstance(holdout, str) else int(holdout)


def holdout_split(
    data: Dataset,
    holdout: str | int = "largest",
    by: str = "params",
    checkpoint_fraction: float = CHECKPOINT_FRACTION,
    min_tokens: float | None = None,
) -> Split:
    """Rows to fit and rows to score when the K largest models are held out.

    by="params": the K largest distinct parameter counts (every run of those sizes) are held out.
    by="compute": the runs of the K largest compute budgets are held out (a run's compute is its largest
    ``flops``, i.e. its last checkpoint). Budgets are what ``scalefit isoflop`` finds
    (:func:`scalefit.isoflop.budget_ranks`): on an IsoFLOP table the whole largest budget, not its one
    largest run; a run on no budget is a budget of its own.
    """
    k = _split_k(holdout, by, min_tokens)
    runs = data.run_codes
    n_runs = runs.max() + 1
    checkpoints = np.bincount(runs).max() > 1
    if by == "params":
        sizes = data.column("params")
        distinct = np.unique(sizes)
        if distinct.size <= k:
            raise DataError(
                f"{data.source}: holdout='largest:{k}' leaves no model size to fit ({distinct.size} distinct "
                f"params values); hold out fewer", options=("holdout",)
            )
        cut = distinct[-k]
        test_runs = np.zeros(n_runs, dtype=bool)
        test_runs[np.unique(runs[sizes >= cut])] = True
        held = [f"params >= {cut:.3g}"]
    else:
        if not data.has("flops"):
            raise DataError(f"{data.source}: by='compute' needs a flops column (or params and tokens)", options=("by",))
        from .isoflop import budget_ranks

        run_compute = np.full(n_runs, -np.inf)
        np.maximum.at(run_compute, runs, data.column("flops"))
        if not np.all(np.isfinite(run_compute) & (run_compute > 0)):
            raise DataError(f"{data.source}: by='compute' needs a positive compute for every run; column "
                            f"{data.columns.get('flops', 'flops')!r} holds a zero, negative or missing value "
                            f"(fix it, or drop_invalid=True)", options=("by", "drop_invalid"))
        budget = budget_ranks(run_compute)
        if budget.max() + 1 <= k:
            raise DataError(f"{data.source}: holdout='largest:{k}' leaves no run to fit ({budget.max() + 1} compute "
                            f"budget(s))", options=("holdout",))
        test_runs = budget < k
        held = [f"compute >= {run_compute[test_runs].min():.3g} FLOPs"]
    test_rows = test_runs[runs]
    train = ~test_rows
    test = test_rows.copy()
    if checkpoints:
        tokens = data.column("tokens")
        run_max = np.zeros(n_runs)
        np.maximum.at(run_max, runs, tokens)
        test &= tokens >= checkpoint_fraction * run_max[runs]
        if min_tokens is not None:
            train &= tokens >= min_tokens
    if not train.any():
        raise DataError(f"{data.source}: the holdout split leaves no rows to fit")
    if not test.any():
        raise DataError(f"{data.source}: the holdout split leaves no rows to score")
    return Split(train, test, held, bool(checkpoints))


# ---------------------------------------------------------------------------- fitting
def fit_law(law: Law, data: Dataset, **kw):
    """The core fitter (multi-start, summed Huber of log residuals); a seam for tests and plugins."""
    from .fit import fit

    return fit(law, data, **kw)


def score_split(law: Law, theta, data: Dataset, split: Split) -> dict:
    """In-range and held-out ARE of a fitted parameter vector on a split of ``data``."""
    theta = np.asarray(theta, dtype=float)[None]
    train, test = data.subset(split.train), data.subset(split.test)
    fitted = law.predict(theta, law.prepare(train))[0]
    forecast = law.predict(theta, law.prepare(test))[0]
    return {
        "in_range_are": are(train.column(law.target), fitted),
        "holdout_are": are(test.column(law.target), forecast),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "held_out": split.held_out,
        "checkpoints": split.checkpoints,
    }


def polish(law: Law, data: Dataset, start, *, delta: float = 1e-3, max_nfev: int = 60) -> np.ndarray:
    """One warm-started bounded robust least-squares solve from ``start`` (p,): bootstrap replicates
    whose optimum sits next to the full-data one need no multi-start. Returns theta (p,)."""
    from scipy.optimize import least_squares

    design, log_y = law.prepare(data), np.log(data.column(law.target))
    lo, hi = law.bounds_array()
    is_log = np.array([law.params[n].log for n in law.param_names])
    lo_z, hi_z = np.where(is_log, np.log(np.maximum(lo, 1e-300)), lo), np.where(is_log, np.log(hi), hi)
    to_theta = lambda z: np.where(is_log, np.exp(z), z)  # noqa: E731

    def resid(z):
        with np.errstate(all="ignore"):
            r = np.log(law.predict(to_theta(z)[None], design)[0]) - log_y
        return np.where(np.isfinite(r), r, 1e3)

    def jac(z):
        theta = to_theta(z)
        with np.errstate(all="ignore"):
            j = law.jacobian(theta[None], design)[0] / law.predict(theta[None], design)[0][:, None]
        return np.where(np.isfinite(j), j * np.where(is_log, theta, 1.0), 0.0)

    start = np.asarray(start, dtype=float)
    z0 = np.where(is_log, np.log(np.maximum(start, 1e-300)), start)
    span = hi_z - lo_z
    z0 = np.clip(z0, lo_z + 1e-9 * span, hi_z - 1e-9 * span)
    has_jac = law.jacobian(start[None], design) is not None
    sol = least_squares(resid, z0, jac=jac if has_jac else "2-point", bounds=(lo_z, hi_z), loss="huber",
                        f_scale=delta, x_scale="jac", max_nfev=max_nfev)
    return to_theta(sol.x)


# ---------------------------------------------------------------------------- backtests
def backtest(
    law: Law,
    data: Dataset,
    holdout: str | int = "largest",
    by: str = "params",
    *,
    min_tokens: float | None = None,
    fit_fn: Callable | None = None,
    **fit_kw,
) -> dict:
    """Fit ``law`` without the largest models and score it: in-range and held-out ARE, and the training fit's
    AIC, BIC and free parameters (:func:`scalefit.fitreport.fit_statistics`: Gaussian log residuals, lmfit's
    convention; lower is better, and only differences between laws on the same rows count -- under ~2 says
    little). ``fit_fn(law, train, **fit_kw)`` replaces the core fitter and must return a FitResult."""
    _check_fit_options(fit_fn, fit_kw)
    split = holdout_split(data, holdout, by, min_tokens=min_tokens)
    train = data.subset(split.train)
    law.check_identifiable(train)
    t0 = time.perf_counter()
    res = (fit_fn or fit_law)(law, train, **fit_kw)
    seconds = time.perf_counter() - t0
    from .fitreport import fit_statistics

    theta = np.asarray(res.theta, dtype=float)
    return {
        "law": law.name,
        **score_split(law, theta, data, split),
        # AIC, BIC and free parameters of the fit on its own rows, as its report gives them.
        **fit_statistics(res),
        "params": dict(zip(law.param_names, map(float, theta))),
        "seconds": seconds,
    }


def _backtest_in(tables: dict | None, name, law: Law, holdout, by: str, min_tokens, fit_fn, fit_kw: dict) -> dict:
    """One parallel task of :func:`compare`, a whole backtest: on the table ``name`` of ``tables`` (dask, ray:
    every table reaches each worker once), or, where ``tables`` is None, on ``name``, the table itself (loky
    pickles what the tasks share with every task, so each takes only its own)."""
    data = name if tables is None else tables[name]
    return backtest(law, data, holdout, by, min_tokens=min_tokens, fit_fn=fit_fn, **fit_kw)


def compare(
    laws: Sequence[Law],
    data: Dataset | Mapping[str, Dataset],
    holdout: str | int | Sequence[str | int] = "largest",
    by: str = "params",
    *,
    min_tokens: float | None = None,
    progress: Callable[[str], None] | None = None,
    fit_fn: Callable | None = None,
    jobs: int = 1,
    backend: str = "loky",
    **fit_kw,
) -> list[dict]:
    """One backtest row per law on the same split (laws must share the data's columns).

    ``holdout`` may be a list of splits (``["largest", "largest:2"]``): one row per split and law, split
    by split, the laws in order within each. ``data`` may be a mapping of names to tables (the corpora of
    one study, :func:`scalefit.rowsets.group_rows`): every table gets every split and law, table by table,
    each row naming its table under ``"data"``; with ``jobs`` all go out as one stream of tasks (one wait
    for the last fit, not one per table). ``jobs``, ``backend``: run the backtests -- each a whole fit -- as
    parallel tasks (``loky``, ``threading``, ``dask``, ``ray``, as for :func:`scalefit.fit.fit`;
    :func:`scalefit.bootstrap.parallel_map`), the table sent to the workers once; the rows equal the serial
    ones, in the same order (``seconds`` aside), and each fit runs on one worker. ``progress(name)`` hears
    each law as its turn comes (with ``jobs``, as the rows before it arrive). Every split and option is
    checked before any fit.
    """
    from .bootstrap import parallel_map
    from .fit import check_options, connect_backend

    _check_fit_options(fit_fn, fit_kw)
    check_options(jobs=jobs, backend=backend)
    splits = list(holdout) if isinstance(holdout, (list, tuple)) else [holdout]
    if not splits:
        raise option_error("holdout", holdout, "give at least one split, e.g. 'largest'")
    named = isinstance(data, Mapping)
    tables = dict(data) if named else {None: data}
    if not tables:
        raise option_error("data", "{}", "give at least one table")
    for spec in splits:  # what needs no table fails as itself, before any table is named
        _split_k(spec, by, min_tokens)
    for name, table in tables.items():
        if not isinstance(table, Dataset):
            raise option_error("data", name, f"each table must be a Dataset, not {type(table).__name__}")
        for spec in splits:  # a bad split fails here, not in a worker after other fits ran
            try:
                holdout_split(table, spec, by, min_tokens=min_tokens)
            except DataError as exc:
                if not named:
                    raise
                raise type(exc)(f"table {shown(name)}: {exc}", options=exc.options) from None
    tasks = [(name, law, spec) for name in tables for spec in splits for law in laws]

    def labelled(row: dict, name) -> dict:
        return {"data": name, **row} if named else row

    rows: list[dict] = []
    if jobs == 1 and backend == "loky":
        for name, law, spec in tasks:
            if progress is not None:
                progress(law.name)
            rows.append(labelled(backtest(law, tables[name], spec, by, min_tokens=min_tokens, fit_fn=fit_fn,
                                          **fit_kw), name))
        return rows
    connect_backend(backend)
    if progress is not None and tasks:
        progress(tasks[0][1].name)
    arrays = {name: table.as_arrays() for name, table in tables.items()}  # the workers then need no pandas
    shared = arrays if backend in ("dask", "ray") else None  # see _backtest_in
    items = [(name if shared else arrays[name], law, spec, by, min_tokens, fit_fn, fit_kw)
             for name, law, spec in tasks]  # a list: it may all go out at once
    for row in parallel_map(_backtest_in, shared, items, jobs, backend):
        rows.append(labelled(row, tasks[len(rows)][0]))
        if progress is not None and len(rows) < len(tasks):
            progress(tasks[len(rows)][1].name)
    return rows


def required_roles(laws: Iterable[Law]) -> list[str]:
    roles: list[str] = []
    for law in laws:
        roles.extend([*law.inputs, law.target])
    return list(dict.fromkeys(roles))


# ---------------------------------------------------------------------------- calibration (point laws)
BUDGET_TOL = 0.25  # runs whose budgets lie within 25 % of a neighbour (chained) share one budget
MIN_FIT_BUDGETS = 3  # a fold fits on at least this many budgets (by default)
MAX_FOLDS = 4  # the largest budgets held out in turn (by default)


def run_budgets(data: Dataset, by: str = "compute", tol: float = BUDGET_TOL) -> tuple[np.ndarray, np.ndarray]:
    """Each run's budget -- its training compute (largest ``flops``: the last checkpoint) or its ``params``
    -- and its budget group, 0 for the largest: from the top, a group is every run within a factor
    ``1 + tol`` below the largest run not yet grouped (an IsoFLOP sweep's runs "at 1e20 FLOPs" differ by
    rounding; digitised tables scatter). Returns (value per run, group per run). Only the next-budget
    calibration uses it (every run must fall in a fold, each a factor ``1 + tol`` beyond what it is forecast
    from); the holdout split and ``scalefit isoflop`` share :func:`scalefit.isoflop.found_budgets`."""
    if by not in ("params", "compute"):
        raise option_error("by", by, "use 'params' or 'compute'")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise option_error("tol", tol, "must be a non-negative relative gap, e.g. 0.25")
    role = "flops" if by == "compute" else "params"
    if not data.has(role):
        raise DataError(f"{data.source}: by={by!r} needs a {role} column (or params and tokens)", options=("by",))
    runs = data.run_codes
    value = np.full(int(runs.max()) + 1, -np.inf)
    np.maximum.at(value, runs, data.column(role))
    group = np.full(value.size, -1)
    g = 0
    while (group < 0).any():
        top = value[group < 0].max()
        group[(group < 0) & (value >= top / (1 + tol))] = g
        g += 1
    return value, group


def budget_folds(value: np.ndarray, group: np.ndarray, tol: float = BUDGET_TOL) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each budget group from the largest, (runs fitted, runs forecast): the group is forecast from every
    run more than a factor ``1 + tol`` below its smallest member, so each forecast reaches at least that far
    beyond the fitted data. Folds with nothing left to fit are not listed."""
    out = []
    for g in range(int(group.max()) + 1):
        test = group == g
        train = value < value[test].min() / (1 + tol)
        if train.any():
            out.append((train, test))
    return out


def _final_rows(data: Dataset, runs: np.ndarray) -> np.ndarray:
    """Row mask of each listed run's last row (its most tokens): what a run "at its budget" observed."""
    codes = data.run_codes
    tokens = data.column("tokens") if data.has("tokens") else np.arange(len(data), dtype=float)
    order = np.lexsort((tokens, codes))
    last = order[np.r_[codes[order][1:] != codes[order][:-1], True]]  # each run's row with the most tokens
    keep = np.zeros(len(data), dtype=bool)
    keep[last[np.isin(codes[last], runs)]] = True
    return keep


def _fold_errors(law: Law, data: Dataset, *, by: str, folds: int | None, tol: float,
                 progress: Callable[[int, int], None] | None, fit_kw: dict) -> tuple[list, list, int]:
    """(rows of [fold, log error, ratio], notes, folds planned) of the rolling-origin next-budget backtest."""
    from .errors import FitError
    from .fit import fit

    value, group = run_budgets(data, by, tol)
    plan = budget_folds(value, group, tol)
    enough = [f for f in plan if np.unique(group[f[0]]).size >= MIN_FIT_BUDGETS]
    if folds is None:
        plan = enough[:MAX_FOLDS]
    elif isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 1:
        raise option_error("folds", folds, "must be a whole number of held-out budgets, at least 1")
    elif folds > len(plan):
        raise option_error("folds", folds, f"at most {len(plan)} budget group(s) by {by} can be held out one "
                                           f"after another on this table (each forecast from runs more than "
                                           f"{1 + tol:g}x below it)")
    else:
        plan = plan[:int(folds)]
    k = len(plan)
    rows, notes = [], []
    codes = data.run_codes
    for j, (train_runs, test_runs) in enumerate(plan):
        held = value[test_runs]
        name = f"budget {j + 1} ({by} {held.min():.3g} to {held.max():.3g})"
        try:
            train = data.subset(train_runs[codes])
            law.check_identifiable(train)
            theta = fit(law, train, identify=False, **fit_kw).theta
        except (DataError, FitError) as exc:  # too little left to fit: the fold is skipped, and said
            notes.append(f"{name} skipped: {exc}")
            continue
        final = _final_rows(data, np.flatnonzero(test_runs))
        test = data.subset(final)
        with np.errstate(all="ignore"):
            err = np.log(law.predict(np.asarray(theta, dtype=float)[None], law.prepare(test))[0]) \
                - np.log(test.column(law.target))
        fitted = float(value[train_runs].max())
        for e, v in zip(err, value[codes[final]]):  # one final row per held-out run, in row order
            if np.isfinite(e):
                rows.append([j, float(e), float(v / fitted)])
            else:
                notes.append(f"{name}: a forecast is not finite; that run is left out")
        if progress is not None:
            progress(j + 1, k)
    return rows, notes, k


def next_budget_errors(law: Law, data: Dataset, *, by: str = "compute", folds: int | None = None,
                       tol: float = BUDGET_TOL, progress: Callable[[int, int], None] | None = None,
                       **fit_kw) -> dict:
    """How far the law's forecasts miss one budget beyond this table: a rolling-origin backtest.

    The runs are grouped by budget (:func:`run_budgets`: training compute, or ``params`` with
    ``by="params"``); fold j forecasts the j-th largest group from a fit on every run more than a factor
    ``1 + tol`` below it (:func:`budget_folds`). ``folds``: how many groups are held out in turn; default
    as many as leave at least 3 budget groups to fit, at most 4. Each held-out run's last row is scored by
    its log error (log predicted - log observed) and its ratio (its budget / the largest fitted budget).

    The calibration unit is the fold: one entry per fold in ``"horizon"``, ``[e, r]`` with r the fold's
    geometric-mean ratio and e / log r the mean of its runs' e_i / log r_i (the law's miss per unit of
    log budget). Runs of one fold share one fitted law, so they are not independent errors, and their
    own scatter is already in the prediction interval: the mean keeps the shared miss and averages the
    scatter away. :func:`scalefit.stats.model_error_halfwidth` then takes t with as many degrees of
    freedom as folds, and is unbounded below 2 folds. Measured (40 simulated IsoFLOP sweeps, 9 budgets x
    7 sizes, 1 % noise, the largest budget forecast 3x beyond the fitted ones): per-fold mean with t_folds
    covered 99.6 % at a median width of 9.6 % (Kaplan-shaped truth, plain prediction interval 82.5 % at
    4.6 %) and 99.6 % at 7.6 % (Chinchilla truth; plain 93.9 % at 4.4 %); counting every run (RMS, t_runs)
    covered 100 % at 11.5 % and 10.1 %, the per-fold RMS 100 % at 14.9 % and 12.8 %. On Epoch's table
    the runs of a fold scatter more than the fold means differ (intra-fold correlation -0.4): the spread
    inside a fold is run noise, not a separate error each run adds.

    ``"runs"`` counts the runs scored, ``"folds"`` the folds that could be fitted. Fits without a
    bootstrap and without the identifiability scan (only point forecasts are scored); ``fit_kw`` go to
    :func:`scalefit.fit.fit`.
    """
    fit_kw = {k: v for k, v in fit_kw.items() if k not in ("n_bootstrap", "progress", "identify", "jobs", "backend")}
    rows, notes, planned = _fold_errors(law, data, by=by, folds=folds, tol=tol, progress=progress, fit_kw=fit_kw)
    horizon, per_fold = [], []
    for j in sorted({int(r[0]) for r in rows}):
        e, ratio = (np.array([r[i] for r in rows if r[0] == j]) for i in (1, 2))
        r_fold = float(np.exp(np.mean(np.log(ratio))))
        horizon.append([float(np.mean(e / np.log(ratio)) * math.log(r_fold)), r_fold])
        per_fold.append(int(e.size))
    if len(horizon) < 2:
        notes.append(f"{len(horizon)} fold(s) of {planned} planned could be scored: too few to measure the "
                     f"error one budget beyond the data; the calibrated interval beyond the fitted range is unbounded")
    return {"method": "next-budget", "by": by, "tol": float(tol), "horizon": horizon, "folds": len(horizon),
            "runs": len(rows), "runs_per_fold": per_fold, "notes": notes}


def calibrate_points(result, data: Dataset, *, by: str = "compute", folds: int | None = None,
                     progress: Callable[[int, int], None] | None = None):
    """Measure the fitted point law's error one budget beyond its own table (:func:`next_budget_errors`,
    with the fit's settings) and keep it in ``result.diagnostics["extrapolation_errors"]``, where
    ``result.evaluate(..., interval="calibrated")`` and :func:`scalefit.forecast.forecast` read it (saved
    with the fit). ``data``: the table ``result`` was fitted on. Returns ``result``; with fewer than 2
    folds a warning says the calibrated interval is unbounded beyond the fitted range."""
    if result.law.kind != "point":
        raise DataError(f"law '{result.law.name}' is not a point law; calibrate_points backtests budgets of "
                        f"point laws (curve laws: scalefit.curve_backtest.calibrate)")
    if not {"params", "tokens"} <= set(result.law.inputs):
        raise DataError(f"law '{result.law.name}' does not forecast from params and tokens; calibrate_points "
                        f"backtests compute budgets")
    s = result.settings
    record = next_budget_errors(result.law, data, by=by, folds=folds, loss=s.get("loss", "huber"),
                                delta=s.get("delta", 1e-3), fixed=s.get("fixed") or None,
                                ties=s.get("ties") or None, progress=progress)
    result.diagnostics["extrapolation_errors"] = record
    if record["folds"] < 2:
        result.diagnostics.setdefault("warnings", []).append(
            f"calibration: only {record['folds']} budget fold(s) could be backtested ({record['runs']} run(s)); "
            f"at least 2 are needed to measure how far the law misses beyond the data, so the calibrated "
            f"interval is unbounded beyond the fitted range")
    return result
