"""``scalefit fit``: fit a law to a runs table, print estimates with intervals, write fit.json."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, err_console, fmt, info, warn


def fit_command(
    ctx: typer.Context,
    runs: str = typer.Argument(..., help="Runs table: parquet, CSV or JSONL (one row per run, or per step for curve laws)."),
    law: str = typer.Option("chinchilla", "--law", "-l", help="Law name (see `scalefit laws list`)."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file (repeatable)."),
    law_opt: Optional[List[str]] = typer.Option(None, "--law-opt", help="A law option, e.g. --law-opt lam=0.99 (repeatable; recorded in fit.json)."),
    col: Optional[List[str]] = typer.Option(None, "--col", help='Map a role to a column: --col params="Model Size" (repeatable).'),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Fix a parameter: --set E=1.69 (repeatable)."),
    tie: Optional[List[str]] = typer.Option(None, "--tie", help="Tie parameters: --tie beta=alpha, or a positive constant times one: --tie beta=1.1*alpha (repeatable)."),
    loss: str = typer.Option("huber", "--loss", help="huber (default), lsq or l1, on log residuals."),
    delta: float = typer.Option(1e-3, "--delta", help="Huber width on log residuals."),
    bootstrap: int = typer.Option(0, "--bootstrap", "-b", help="Bootstrap draws for intervals."),
    bootstrap_method: str = typer.Option("auto", "--bootstrap-method", help="runs (resample runs), wild (wild cluster: one weight per run's residuals) or auto (wild below 10 runs)."),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate", help="Measure the law's extrapolation error by backtests on this table for calibrated intervals. Curve laws: leave one curve out, half horizon (default: on with --bootstrap). Point laws (only when given): forecast the largest compute budgets in turn from the smaller ones, for `predict --interval calibrated`."),
    seed: int = typer.Option(0, "--seed", help="Seed for the bootstrap (same seed, same output)."),
    ci: float = typer.Option(0.95, "--ci", help="Interval level."),
    interval: str = typer.Option("stretched", "--interval", help="stretched (default: percentile interval stretched by t_{runs-params}/z) or percentile."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel workers for the bootstrap (-1: one per CPU; at most 4 per CPU unless SCALEFIT_MAX_JOBS says more)."),
    backend: str = typer.Option("loky", "--backend", help="Parallel backend: loky, threading, dask (a running cluster) or ray."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the fit to this fit.json."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out and --plot if they exist."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Draw the fit to this image (png, pdf, svg)."),
    loss_unit: Optional[str] = typer.Option(None, "--loss-unit", help="nats or bits (recorded in fit.json)."),
    params_convention: Optional[str] = typer.Option(None, "--params-convention", help="total or non-embedding."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Drop rows with NaN/inf/non-positive values (reported)."),
    lr_table: Optional[str] = typer.Option(None, "--lr-table", help="Curve laws: dense table run, step, lr."),
    schedule: Optional[List[str]] = typer.Option(None, "--schedule", help="Curve laws: RUN=SPEC LR schedule (repeatable)."),
    where: Optional[List[str]] = typer.Option(None, "--where", help="Keep rows with COLUMN=VALUE (repeatable), e.g. --where source=tensorboard:logs/a."),
    profile: bool = typer.Option(False, "--profile", help="Also compute profile-likelihood intervals (each free parameter held on a grid, the others refitted), shown beside the bootstrap interval."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when diagnostics flag a problem (bound, poor convergence)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="Backtest: fit without the 'largest' or 'largest:K' models and score them (ARE); curve laws: 'loco', 'run:NAME' or 'horizon:0.5'."),
    holdout_by: str = typer.Option("params", "--holdout-by", help="Rank models for --holdout by 'params' or 'compute'."),
    x_col: Optional[str] = typer.Option(None, "--x", help="loss_to_loss: the source loss column (role loss_x)."),
    y_col: Optional[str] = typer.Option(None, "--y", help="loss_to_loss: the target loss column (role loss_y)."),
):
    """Fit a law with the robust multi-start fitter; bootstrap over runs for intervals."""
    from ..data import parse_column_mapping
    from ..errors import CheckFailed
    from ..fit import check_options, fit
    from ..registry import get_law
    from ._options import library_flags, parse_assignments, parse_law_options, parse_ties

    # Everything that can be refused is refused before the table is read or a worker started. ``names``:
    # fit()'s parameters as this command's flags, from the one table the CLI boundary uses for every error.
    check_options(loss=loss, delta=delta, n_bootstrap=bootstrap, ci=ci, seed=seed, jobs=jobs, backend=backend,
                  interval=interval, bootstrap_method=bootstrap_method, names=library_flags(ctx.command))
    _check_outputs(out=out, plot=plot, force=force, inputs=[runs, lr_table])
    law_obj = get_law(law, law_file or []).with_options(**parse_law_options(law_opt))
    columns = parse_column_mapping(col or [])
    if x_col:
        columns["loss_x"] = x_col
    if y_col:
        columns["loss_y"] = y_col
    fixed = parse_assignments(set_)
    ties = parse_ties(tie)
    from ..curves import load_for, parse_schedule_options

    table = runs
    if where:  # a multi-experiment table: the rows asked for, read as `compare --where` reads them
        from ..rowsets import filter_rows
        from ..tables import read_table

        table = filter_rows(read_table(runs), where, runs)
    data = load_for(law_obj, table, source=runs, columns=columns, lr_table=lr_table,
                    schedules=parse_schedule_options(schedule), drop_invalid=drop_invalid, loss_unit=loss_unit,
                    params_convention=params_convention)
    for line in data.dropped:
        warn(f"{runs}: {line}")
    from ..law import CurveLaw

    curve = isinstance(law_obj, CurveLaw)
    split = full = curve_bt = None
    if holdout and curve:
        from ..curve_backtest import curve_folds

        curve_folds(data, holdout)  # a bad spec or run name fails before any fit
    elif holdout:
        from ..backtest import holdout_split

        split = holdout_split(full := data, holdout, holdout_by)
        data = full.subset(split.train)
    calibrate_budgets = bool(calibrate) and not curve  # point laws: opt-in next-budget backtests
    if calibrate_budgets and not {"params", "tokens"} <= set(law_obj.inputs):
        from ..errors import DataError

        raise DataError(f"--calibrate backtests compute budgets: law '{law_obj.name}' does not forecast from "
                        f"params and tokens")
    calibrate = curve and (bootstrap > 0 if calibrate is None else calibrate)

    fit_kw = dict(loss=loss, delta=delta, fixed=fixed, ties=ties, n_bootstrap=bootstrap, ci=ci, seed=seed, jobs=jobs,
                  backend=backend, bootstrap_method=bootstrap_method)
    progress_cb, progress_ctx = _progress(bootstrap)
    with progress_ctx:
        result = fit(law_obj, data, progress=progress_cb, interval=interval, profile=profile, **fit_kw)
        if calibrate:
            from ..curve_backtest import calibrate as run_calibration

            run_calibration(result, data, progress=_stage(progress_cb, "calibration"))
        if calibrate_budgets:
            from ..backtest import calibrate_points

            calibrate_points(result, data, progress=_stage(progress_cb, "calibration-budgets"))
        if holdout and curve:
            from ..curve_backtest import curve_backtest

            curve_bt = curve_backtest(law_obj, data, holdout, progress=_stage(progress_cb, "backtest"),
                                      calibrated=calibrate and bootstrap > 0, **fit_kw)
    if out:
        result.save(out, force=force)
    if plot:
        _plot(result, data, plot, force)
    backtest = None
    if split is not None:
        from ..backtest import score_split

        backtest = score_split(law_obj, result.theta, full, split)
    if curve_bt is not None:
        backtest = curve_bt.to_dict()
    if json_out:
        emit_json({**result.summary(), "backtest": backtest} if backtest else result.summary())
    else:
        print_fit(result)
        if calibrate_budgets:
            print_budget_calibration(result)
        if calibrate:
            print_curve_calibration(result)
        if curve_bt is not None:
            print_curve_backtest(curve_bt, result.ci)
        if backtest and curve_bt is None:
            console.print(f"backtest (held out {backtest['held_out'][0]}, {backtest['n_test']} points"
                          f"{', checkpoints from 70 % of training' if backtest['checkpoints'] else ''}): "
                          f"held-out ARE {100 * backtest['holdout_are']:.3f} %, "
                          f"in-range ARE {100 * backtest['in_range_are']:.3f} %", highlight=False)
        if out:
            info(f"wrote {out}")
        if plot:
            info(f"wrote {plot}")
    for message in result.diagnostics["warnings"]:
        if not message.startswith("dropped"):
            warn(message)
    if not result.success:
        warn(f"the fit failed: {result.diagnostics['message']}; its values are not estimates")
        if strict:
            raise CheckFailed(f"--strict: the fit failed: {result.diagnostics['message']}")
    if strict and (result.diagnostics["at_bound"] or result.diagnostics["n_converged_best"] < 2
                   or not result.diagnostics.get("r2_log", 1) > 0):
        raise CheckFailed("--strict: the fit's diagnostics flag a problem (see warnings above)")


def _check_outputs(*, out: str | None, plot: str | None, force: bool, inputs=()) -> None:
    """Refuse, before any work, an output that cannot or must not be written (a folder, an unwritable
    folder, an existing file without --force, --out and --plot naming one file, an input) or a plot
    format that cannot be drawn."""
    from .._io import check_outputs

    check_outputs({"out": out, "plot": plot}, inputs, force=force)
    if plot is not None:
        from ..plot import check_plot_path

        check_plot_path(plot, force, param="plot")


def _plot(result, data, path: str, force: bool) -> None:
    from ..plot import plot_fit

    plot_fit(result, data, path, force=force)


_STAGES = {"starts": "fit: screening starts", "refine": "fit: refining the best starts",
           "polish": "fit: polishing", "full-data": "fit: refining on every row", "bootstrap": "bootstrap",
           "calibration": "calibration: backtests on the fitted curves", "backtest": "backtest: folds",
           "calibration-budgets": "calibration: next-budget backtests"}


def _stage(progress_cb, stage: str):
    """A two-argument progress callback reporting as ``stage`` on the fit's bar (None without a bar)."""
    return None if progress_cb is None else (lambda done, total: progress_cb(done, total, stage))


def print_curve_calibration(result) -> None:
    """One line: what the backtests measured and what the calibrated interval adds at 1x and 2x the horizon."""
    from ..stats import model_error_halfwidth

    record = result.extrapolation_errors or {}
    shape, horizon = record.get("shape") or [], record.get("horizon") or []
    at1, at2 = (model_error_halfwidth(record, r, result.ci) for r in (1.0, 2.0))
    adds = ("unbounded (fewer than 2 folds)" if at1 == float("inf") else
            f"±{100 * at1:.2f} % (log) at the fitted horizon, ±{100 * at2:.2f} % at twice it")
    console.print(f"calibration: {len(shape)} leave-one-curve-out and {len(horizon)} half-horizon forecasts; "
                  f"calibrated intervals add {adds}", highlight=False)


def print_budget_calibration(result) -> None:
    """One line: how many next-budget folds and held-out runs calibrate ``predict --interval calibrated``."""
    record = result.extrapolation_errors or {}
    folds, runs = record.get("folds", 0), record.get("runs", 0)
    if folds < 2:  # the plain warning comes with the fit's warnings
        console.print(f"calibration: {folds} next-budget fold(s), {runs} held-out run(s): too few; the "
                      f"calibrated interval is unbounded beyond the fitted compute", highlight=False)
        return
    from ..stats import model_error_halfwidth

    per_decade = model_error_halfwidth(record, 10.0, result.ci)
    console.print(f"calibration: {folds} next-budget folds ({runs} held-out runs, one error per fold); "
                  f"`predict --interval calibrated` adds ±{100 * per_decade:.2f} % (log) at 10x the largest "
                  f"fitted compute, nothing inside the fitted range", highlight=False)


def print_curve_backtest(bt, ci: float) -> None:
    """One row per held-out curve: final-loss error, fit over the held-out points, interval coverage."""
    from rich.table import Table

    table = Table(title=f"backtest {bt.holdout}: {bt.folds} fold(s), {bt.seconds:.1f} s", title_justify="left")
    for name in ("fold", "curve", "observed final", "forecast", "error", "R² held out", "MAE held out",
                 f"{ci:.0%} interval"):
        table.add_column(name, justify="left" if name in ("fold", "curve") else "right")
    for c in bt.curves:
        interval = "–" if c.low is None else f"[{fmt(c.low)}, {fmt(c.high)}] {'✓' if c.covered else '✗'}"
        table.add_row(c.fold, c.run, fmt(c.observed_final, 5), fmt(c.predicted_final, 5),
                      f"{100 * c.rel_error:+.2f} %", fmt(c.r2, 4), fmt(c.mae, 3), interval)
    console.print(table)
    cov = bt.coverage
    line = f"mean |error| of the final loss {100 * bt.mean_abs_rel_error:.2f} %"
    if cov:
        line += f"; intervals covered {cov[0]} of {cov[1]}"
    console.print(line, highlight=False)


def _progress(total: int):
    """A rich progress bar on stderr for the multi-start and the bootstrap (``total``: bootstrap draws).

    The callback takes ``(done, total, stage)``, so the library reports every stage to it. Nothing is
    drawn when stderr is not a terminal (a log file gets no bar fragments).
    """
    import contextlib

    if not err_console.is_terminal:
        return None, contextlib.nullcontext()
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    task = progress.add_task(_STAGES["starts"], total=None)
    current = [None]

    def update(done: int, stage_total: int, stage: str = "bootstrap"):
        if stage != current[0]:
            current[0] = stage
            progress.update(task, description=_STAGES.get(stage, stage), total=stage_total, completed=0)
        progress.update(task, completed=done, total=stage_total)

    return update, progress


def print_fit(result) -> None:
    """The fit as rich tables: parameters with intervals, then fit statistics."""
    from rich.table import Table

    d = result.diagnostics
    ci = result.ci
    failed = not result.success
    title = f"{result.law.name}: {result.law.formula}"
    if failed:  # never let a failed fit read like an estimate
        title = f"FIT FAILED ({d['message']}) -- {title}"
    table = Table(title=title, title_justify="left", title_style="bold red" if failed else None)
    table.add_column("parameter")
    table.add_column("value" if not failed else "value (not an estimate)", justify="right")
    table.add_column(f"{ci:.0%} interval", justify="right")
    prof = (d.get("profile") or {}).get("params")
    if prof:
        table.add_column(f"{d['profile']['level']:.0%} profile", justify="right")
    table.add_column("stderr", justify="right")
    table.add_column("note")
    from ..fitreport import correlation_lines, profile_text, starts_text

    for name, e in result.params.items():
        interval = f"[{fmt(e.low)}, {fmt(e.high)}]" if e.low is not None and not failed else "–"
        note = e.status if e.status != "free" else ""
        if e.at_bound:
            note = (note + " at bound").strip()
        cells = [name, fmt(e.value, 6), interval]
        if prof:
            cells.append(profile_text(prof[name]) if name in prof and e.status != "fixed" and not failed else "–")
        table.add_row(*cells, fmt(e.stderr, 3) if not failed else "–", note)
    alloc = d.get("allocation")
    if alloc and not failed:  # the exponents papers quote: N_opt ∝ C^a, D_opt ∝ C^b
        alpha, beta = alloc["exponents"]
        for key, top, what in (("a", beta, "N_opt"), ("b", alpha, "D_opt")):
            q = alloc[key]
            cells = [key, fmt(q["value"], 4),
                     f"[{fmt(q['low'], 4)}, {fmt(q['high'], 4)}]" if q.get("low") is not None else "–"]
            table.add_row(*cells, *([""] if prof else []), "", f"{what} ∝ C^{key}, {key} = {top}/({alpha}+{beta})")
    console.print(table)
    stats = Table(show_header=False, box=None, padding=(0, 2))
    stats.add_row("runs / points", f"{result.n_runs} / {d['n_points']}")
    stats.add_row("objective", f"{result.objective:.6g} ({result.settings['loss']}, delta={result.settings['delta']:g})")
    stats.add_row("RMSE (log loss)", fmt(d["rmse_log"], 4))
    stats.add_row("R² (log loss)", fmt(d["r2_log"], 5))
    stats.add_row("starts", starts_text(d))
    stats.add_row("intervals", d["interval"])
    if d.get("largest_residuals"):
        worst = d["largest_residuals"][0]
        stats.add_row("largest residual", f"run {worst['run']}: {worst['residual']:+.4f} log "
                                          f"(loss {worst['loss']:.4g}, predicted {worst['predicted']:.4g})")
    if d.get("profile"):
        from ..fitreport import LOWER_OBJECTIVE

        stats.add_row("profile", f"{d['profile']['level']:.0%}: {d['profile'].get('rule', '')}"
                      + (f"; {LOWER_OBJECTIVE}" if d["profile"].get("lower_objective") else ""))
    console.print(stats)
    corr = d.get("correlations")
    lines = correlation_lines(corr)
    if lines and not failed:
        console.print(f"correlations (|r| > 0.5, {corr.get('space', '')}):", highlight=False)
        for line in lines + [f"    {note}" for note in corr.get("ridges") or []]:
            console.print(line, highlight=False)
