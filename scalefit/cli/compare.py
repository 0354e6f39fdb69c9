"""``scalefit compare``: backtest several laws on the same holdout split, one row per law."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, err_console, fmt, warn

_JSON_KEYS = ("law", "in_range_are", "holdout_are", "n_free", "aic", "bic", "params", "seconds", "n_train", "n_test")


def compare(
    runs: str = typer.Argument(..., help="Runs table (parquet, CSV, JSONL); one row per run or per checkpoint."),
    laws: str = typer.Option("chinchilla,kaplan,farseer", "--laws", help="Comma-separated law names."),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="'largest' (default) or 'largest:K': models held out; curve laws: 'loco' (default), 'run:NAME' or 'horizon:0.5'."),
    holdout_by: str = typer.Option("params", "--holdout-by", help="Rank models by 'params' or 'compute'."),
    col: Optional[List[str]] = typer.Option(None, "--col", help="ROLE=COLUMN mapping (repeatable)."),
    where: Optional[List[str]] = typer.Option(None, "--where", help="Keep rows with COLUMN=VALUE (repeatable)."),
    per: Optional[str] = typer.Option(None, "--per", help="Point laws: compare on each value of this column apart (e.g. --per dataset), one group of rows per value; with --jobs every fit goes out in one stream."),
    min_tokens: Optional[float] = typer.Option(None, "--min-tokens", help="Checkpoint tables: fit only rows with at least this many tokens."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Drop rows with NaN or non-positive values instead of failing."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Also load laws from this Python file."),
    delta: float = typer.Option(1e-3, "--delta", help="Huber delta on log residuals."),
    bootstrap: int = typer.Option(0, "--bootstrap", "-b", help="Curve laws: bootstrap draws per fold, for interval coverage."),
    lr_table: Optional[str] = typer.Option(None, "--lr-table", help="Curve laws: dense table run, step, lr."),
    schedule: Optional[List[str]] = typer.Option(None, "--schedule", help="Curve laws: RUN=SPEC LR schedule (repeatable)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel workers: point laws fit one law per task; curve laws share them in each fold's bootstrap (-1: one per CPU)."),
    backend: str = typer.Option("loky", "--backend", help="Parallel backend: loky, threading, dask (a running cluster: DASK_SCHEDULER_ADDRESS) or ray."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list, one object per law."),
):
    """Fit each law without the largest models and report in-range and held-out absolute relative error."""
    from ..backtest import check_min_tokens, holdout_split, parse_holdout, required_roles
    from ..backtest import compare as run_compare
    from ..data import from_frame, parse_column_mapping
    from ..errors import DataError
    from ..fit import check_options
    from ..registry import get_law
    from ..rowsets import filter_rows
    from ..tables import read_table

    kinds = {get_law(n.strip(), law_file or ()).kind for n in laws.split(",") if n.strip()}
    if per is not None and "curve" in kinds:
        raise DataError("--per works with point laws; for curve laws, run compare once per value with --where")
    if kinds == {"curve"}:
        return _compare_curves(runs, [get_law(n.strip(), law_file or ()) for n in laws.split(",") if n.strip()],
                               holdout or "loco", col, where, drop_invalid, delta, bootstrap, lr_table, schedule,
                               json_out, jobs, backend)
    if "curve" in kinds:
        raise DataError("--laws mixes curve laws with point laws; compare curve laws (multipower, lr_annealing) "
                        "with each other")
    holdout = holdout or "largest"
    parse_holdout(holdout)  # bad usage fails before anything is read
    if holdout_by not in ("params", "compute"):
        raise DataError(f"--holdout-by '{holdout_by}': use 'params' or 'compute'")
    check_options(delta=delta, jobs=jobs, backend=backend,
                  names={"delta": "--delta", "jobs": "--jobs", "backend": "--backend"})
    check_min_tokens(min_tokens)
    names = [n.strip() for n in laws.split(",") if n.strip()]
    if not names:
        raise DataError("--laws: give at least one law name, e.g. --laws chinchilla,kaplan")
    models = [get_law(n, law_file or ()) for n in names]
    frame = filter_rows(read_table(runs), where, runs)
    columns = parse_column_mapping(col or [])
    if per is None:
        data = from_frame(frame, source=runs, columns=columns, required=required_roles(models),
                          drop_invalid=drop_invalid)
        for line in data.dropped:
            warn(line)
        holdout_split(data, holdout, holdout_by, min_tokens=min_tokens)  # split errors before the progress bar
    else:
        if per in _JSON_KEYS:
            raise DataError(f"--per {per}: compare's rows have a field of that name; rename the column")
        data = _tables_per(frame, per, runs, columns, required_roles(models), drop_invalid)
        for table in data.values():  # each table's source names its group
            holdout_split(table, holdout, holdout_by, min_tokens=min_tokens)
    n_tables = 1 if per is None else len(data)

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("fitting", total=len(models) * n_tables)
        state = {"started": False}

        def progress(name):
            if state["started"]:
                bar.advance(task)
            state["started"] = True
            bar.update(task, description=f"fitting {name}")

        rows = run_compare(models, data, holdout, holdout_by, min_tokens=min_tokens, progress=progress, delta=delta,
                           jobs=jobs, backend=backend)
        bar.advance(task)

    if json_out:
        emit_json([{**({per: r["data"]} if per else {}), **{k: r[k] for k in _JSON_KEYS}} for r in rows])
        return
    if per is not None:
        _print_per(runs, per, holdout, rows)
        return
    from rich.table import Table

    best = min(rows, key=lambda r: r["holdout_are"])["law"]
    table = Table(title=f"{runs}: held out {rows[0]['held_out'][0]} ({rows[0]['n_test']} points), "
                        f"fitted on {rows[0]['n_train']}")
    for c in ("law", "in-range ARE", "held-out ARE", "k", "AIC", "BIC", "seconds"):
        table.add_column(c, justify="left" if c == "law" else "right", no_wrap=c in ("law", "held-out ARE"))
    for r in rows:
        mark = " *" if r["law"] == best else ""
        table.add_row(r["law"] + mark, f"{100 * r['in_range_are']:.3f} %", f"{100 * r['holdout_are']:.3f} %",
                      str(r["n_free"]), f"{r['aic']:.1f}", f"{r['bic']:.1f}", f"{r['seconds']:.2f}")
    console.print(table)
    for r in rows:  # below the table, so that the numbers above fit a narrow terminal
        console.print(f"{r['law']}: " + ", ".join(f"{k}={fmt(v, 4)}" for k, v in r["params"].items()),
                      highlight=False)
    console.print("* lowest held-out error; k free parameters; AIC/BIC (lower is better) on the fitted rows, "
                  "Gaussian log residuals: they judge the fit in range, the held-out error the forecast",
                  style="dim")


def _tables_per(frame, per: str, runs: str, columns, required, drop_invalid: bool) -> dict:
    """One runs table per value of column ``per`` (:func:`scalefit.rowsets.group_rows`), each validated
    on its own; rows with no ``per`` value are reported and left out."""
    from ..data import from_frame
    from ..rowsets import group_rows

    groups, missing = group_rows(frame, per, runs)
    if missing:
        warn(f"{runs}: {missing} row(s) with no {per} value left out")
    tables = {}
    for name, rows in groups.items():
        tables[name] = from_frame(rows, source=f"{runs} ({per}={name})", columns=columns, required=required,
                                  drop_invalid=drop_invalid)
        for line in tables[name].dropped:
            warn(line)
    return tables


def _print_per(runs: str, per: str, holdout: str, rows: list) -> None:
    """``compare --per``: one table, the rows of each value of ``per`` together, its best law marked."""
    from rich import box
    from rich.table import Table

    best = {}
    for r in rows:
        if r["data"] not in best or r["holdout_are"] < best[r["data"]]["holdout_are"]:
            best[r["data"]] = r
    # No vertical rules: a column more than the one-table view, and it still fits 80 columns.
    table = Table(title=f"{runs}: held out {holdout!r} within each {per}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for c in (per, "law", "in-range\nARE", "held-out\nARE", "k", "AIC", "BIC", "time"):
        table.add_column(c, justify="left" if c in (per, "law") else "right", no_wrap=True)
    for i, r in enumerate(rows):
        first = i == 0 or rows[i - 1]["data"] != r["data"]
        if first and i:
            table.add_section()
        mark = " *" if best[r["data"]] is r else ""
        table.add_row(str(r["data"]) if first else "", r["law"] + mark, f"{100 * r['in_range_are']:.3f} %",
                      f"{100 * r['holdout_are']:.3f} %", str(r["n_free"]), f"{r['aic']:.1f}", f"{r['bic']:.1f}",
                      f"{r['seconds']:.2f} s")
    console.print(table)
    for name, r in best.items():
        console.print(f"{name}: held out {r['held_out'][0]} ({r['n_test']} points), fitted on {r['n_train']}",
                      highlight=False)
    for r in rows:
        console.print(f"{r['data']} {r['law']}: " + ", ".join(f"{k}={fmt(v, 4)}" for k, v in r["params"].items()),
                      highlight=False)
    console.print(f"* lowest held-out error within its {per}; k free parameters; AIC/BIC (lower is better) on "
                  "the fitted rows, Gaussian log residuals: they compare laws on the same rows only", style="dim")


def _compare_curves(runs, models, holdout, col, where, drop_invalid, delta, bootstrap, lr_table, schedule, json_out,
                    jobs, backend):
    """``compare`` for curve laws: the same folds (leave one curve out, or half horizon) for every law."""
    from ..curve_backtest import compare_curves, curve_folds
    from ..curves import load_for, parse_schedule_options
    from ..data import parse_column_mapping
    from ..fit import check_options
    from ..rowsets import filter_rows
    from ..tables import read_table

    check_options(delta=delta, n_bootstrap=bootstrap, jobs=jobs, backend=backend,
                  names={"delta": "--delta", "n_bootstrap": "--bootstrap", "jobs": "--jobs", "backend": "--backend"})
    frame = filter_rows(read_table(runs), where, runs)
    data = load_for(models[0], frame, columns=parse_column_mapping(col or []), lr_table=lr_table,
                    schedules=parse_schedule_options(schedule), drop_invalid=drop_invalid)
    for line in data.dropped:
        warn(line)
    curve_folds(data, holdout)
    with err_console.status("backtesting") as status:
        rows = compare_curves(models, data, holdout, delta=delta, n_bootstrap=bootstrap, jobs=jobs, backend=backend,
                              progress=lambda name: status.update(f"backtesting {name} ({holdout})"))
    if json_out:
        emit_json(rows)
        return
    from rich.table import Table

    best = min(rows, key=lambda r: r["mean_abs_rel_error"])["law"]
    table = Table(title=f"{runs}: {holdout}, {rows[0]['folds']} fold(s)")
    for c in ("law", "final-loss |error|", "R² held out", "MAE held out", "intervals covered", "seconds"):
        table.add_column(c, justify="left" if c == "law" else "right")
    for r in rows:
        cov = "–" if r["intervals"] is None else f"{r['covered']} of {r['intervals']}"
        table.add_row(r["law"] + (" *" if r["law"] == best else ""), f"{100 * r['mean_abs_rel_error']:.3f} %",
                      fmt(r["mean_r2"], 4), fmt(r["mean_mae"], 4), cov, f"{r['seconds']:.1f}")
    console.print(table)
    console.print("* lowest final-loss error", style="dim")
