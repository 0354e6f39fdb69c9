"""``scalefit fit``: fit a law to a runs table, print estimates with intervals, write fit.json."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, err_console, fmt, info, warn


def fit_command(
    runs: str = typer.Argument(..., help="Runs table: parquet, CSV or JSONL (one row per run, or per step for curve laws)."),
    law: str = typer.Option("chinchilla", "--law", "-l", help="Law name (see `scalefit laws list`)."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file (repeatable)."),
    law_opt: Optional[List[str]] = typer.Option(None, "--law-opt", help="A law option, e.g. --law-opt lam=0.99 (repeatable; recorded in fit.json)."),
    col: Optional[List[str]] = typer.Option(None, "--col", help='Map a role to a column: --col params="Model Size" (repeatable).'),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Fix a parameter: --set E=1.69 (repeatable)."),
    tie: Optional[List[str]] = typer.Option(None, "--tie", help="Tie parameters: --tie beta=alpha (repeatable)."),
    loss: str = typer.Option("huber", "--loss", help="huber (default), lsq or l1, on log residuals."),
    delta: float = typer.Option(1e-3, "--delta", help="Huber width on log residuals."),
    bootstrap: int = typer.Option(0, "--bootstrap", "-b", help="Bootstrap resamples of runs for intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed for the bootstrap (same seed, same output)."),
    ci: float = typer.Option(0.95, "--ci", help="Interval level."),
    interval: str = typer.Option("stretched", "--interval", help="stretched (default: percentile interval stretched by t_{runs-params}/z) or percentile."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel workers for the bootstrap (-1: one per CPU; at most 4 per CPU unless SCALEFIT_MAX_JOBS says more)."),
    backend: str = typer.Option("loky", "--backend", help="joblib backend: loky, threading, dask or ray."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the fit to this fit.json."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out and --plot if they exist."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Draw the fit to this image (png, pdf, svg)."),
    loss_unit: Optional[str] = typer.Option(None, "--loss-unit", help="nats or bits (recorded in fit.json)."),
    params_convention: Optional[str] = typer.Option(None, "--params-convention", help="total or non-embedding."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Drop rows with NaN/inf/non-positive values (reported)."),
    lr_table: Optional[str] = typer.Option(None, "--lr-table", help="Curve laws: dense table run, step, lr."),
    schedule: Optional[List[str]] = typer.Option(None, "--schedule", help="Curve laws: RUN=SPEC LR schedule (repeatable)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when diagnostics flag a problem (bound, poor convergence)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="Backtest: fit without the 'largest' or 'largest:K' models and score them (ARE)."),
    holdout_by: str = typer.Option("params", "--holdout-by", help="Rank models for --holdout by 'params' or 'compute'."),
    x_col: Optional[str] = typer.Option(None, "--x", help="loss_to_loss: the source loss column (role loss_x)."),
    y_col: Optional[str] = typer.Option(None, "--y", help="loss_to_loss: the target loss column (role loss_y)."),
):
    """Fit a law with the robust multi-start fitter; bootstrap over runs for intervals."""
    from ..data import parse_column_mapping
    from ..errors import CheckFailed
    from ..fit import check_options, fit
    from ..registry import get_law
    from ._options import parse_assignments, parse_law_options, parse_ties

    # Everything that can be refused is refused before the table is read or a worker started.
    check_options(loss=loss, delta=delta, n_bootstrap=bootstrap, ci=ci, seed=seed, jobs=jobs, backend=backend,
                  interval=interval, names=FIT_FLAGS)
    _check_outputs(out=out, plot=plot, force=force, inputs=[runs, lr_table])
    law_obj = get_law(law, law_file or []).with_options(**parse_law_options(law_opt))
    columns = parse_column_mapping(col or [])
    if x_col:
        columns["loss_x"] = x_col
    if y_col:
        columns["loss_y"] = y_col
    fixed = parse_assignments(set_)
    ties = parse_ties(tie)
    if backend in ("dask", "ray"):
        _register_backend(backend)
    from ..curves import load_for, parse_schedule_options

    data = load_for(law_obj, runs, columns=columns, lr_table=lr_table, schedules=parse_schedule_options(schedule),
                    drop_invalid=drop_invalid, loss_unit=loss_unit, params_convention=params_convention)
    for line in data.dropped:
        warn(f"{runs}: {line}")
    split = full = None
    if holdout:
        from ..backtest import holdout_split

        split = holdout_split(full := data, holdout, holdout_by)
        data = full.subset(split.train)

    progress_cb, progress_ctx = _progress(bootstrap)
    with progress_ctx:
        result = fit(law_obj, data, loss=loss, delta=delta, fixed=fixed, ties=ties, n_bootstrap=bootstrap,
                     ci=ci, seed=seed, jobs=jobs, backend=backend, progress=progress_cb, interval=interval)
    if out:
        result.save(out, force=force)
    if plot:
        _plot(result, data, plot, force)
    backtest = None
    if split is not None:
        from ..backtest import score_split

        backtest = score_split(law_obj, result.theta, full, split)
    if json_out:
        emit_json({**result.summary(), "backtest": backtest} if backtest else result.summary())
    else:
        print_fit(result)
        if backtest:
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


# fit()'s parameters as the user typed them, so that a refused value is named by its flag.
FIT_FLAGS = {"loss": "--loss", "delta": "--delta", "n_bootstrap": "--bootstrap", "ci": "--ci", "seed": "--seed",
             "jobs": "--jobs", "backend": "--backend", "interval": "--interval"}


def _check_outputs(*, out: str | None, plot: str | None, force: bool, inputs=()) -> None:
    """Refuse, before any work, an output that cannot or must not be written (a folder, an unwritable
    folder, an existing file without --force, --out and --plot naming one file, an input) or a plot
    format that cannot be drawn."""
    from .._io import check_outputs

    check_outputs({"--out": out, "--plot": plot}, inputs, force=force)
    if plot is not None:
        from ..plot import check_plot_path

        check_plot_path(plot, force)


def _plot(result, data, path: str, force: bool) -> None:
    from ..plot import plot_fit

    plot_fit(result, data, path, force=force)


def _register_backend(backend: str) -> None:
    """dask/ray register their joblib backends on import; a clear error when they are not installed."""
    from ..errors import DataError

    try:
        if backend == "dask":
            import distributed  # noqa: F401  (registers joblib's "dask" backend)
        else:
            from ray.util.joblib import register_ray

            register_ray()
    except ImportError:
        raise DataError(f"--backend {backend} needs the optional extra: pip install 'scalefit[{backend}]'") from None


_STAGES = {"starts": "fit: screening starts", "refine": "fit: refining the best starts",
           "polish": "fit: polishing", "full-data": "fit: refining on every row", "bootstrap": "bootstrap"}


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
    table.add_column("stderr", justify="right")
    table.add_column("note")
    for name, e in result.params.items():
        interval = f"[{fmt(e.low)}, {fmt(e.high)}]" if e.low is not None and not failed else "–"
        note = e.status if e.status != "free" else ""
        if e.at_bound:
            note = (note + " at bound").strip()
        table.add_row(name, fmt(e.value, 6), interval, fmt(e.stderr, 3) if not failed else "–", note)
    console.print(table)
    stats = Table(show_header=False, box=None, padding=(0, 2))
    stats.add_row("runs / points", f"{result.n_runs} / {d['n_points']}")
    stats.add_row("objective", f"{result.objective:.6g} ({result.settings['loss']}, delta={result.settings['delta']:g})")
    stats.add_row("RMSE (log loss)", fmt(d["rmse_log"], 4))
    stats.add_row("R² (log loss)", fmt(d["r2_log"], 5))
    stats.add_row("starts", f"{d['n_starts']} evaluated, {d['n_refined']} refined, "
                             f"{d['n_converged_best']} reached the best objective")
    stats.add_row("intervals", d["interval"])
    if d.get("largest_residuals"):
        worst = d["largest_residuals"][0]
        stats.add_row("largest residual", f"run {worst['run']}: {worst['residual']:+.4f} log "
                                          f"(loss {worst['loss']:.4g}, predicted {worst['predicted']:.4g})")
    console.print(stats)
