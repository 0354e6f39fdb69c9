"""``scalefit schedule predict|compare|optimize``: a curve law's loss under LR schedules.

Parameters come from ``--fit fit.json`` (with its bootstrap draws for intervals), from published values
(``--law multipower --reference 400M``), or directly (``--law NAME --set NAME=VALUE ...``; ``--set`` also
overrides single values of a fit or reference set). Schedules are specs (``--schedule SPEC``, see
``scalefit schedule kinds``) or a dense LR file (``--lr-table FILE --run NAME``).

Each command parses and checks its options (one ``error:`` line naming the option and value, exit 2,
before any work), makes one library call (:mod:`scalefit.schedule`: ``predict_for``, ``compare_for`` or
``optimize_for``, on the parameters that ``source.resolve`` and then ``curve_params`` resolve) and
renders the result: a rich table, one JSON object (``--json``) or a figure (``--plot``). Warnings go to
stderr; work that runs for more than a second shows a progress bar there.
"""

from __future__ import annotations

import math
import time
from typing import List, Optional

import typer

from ._output import console, emit_json, err_console, fmt, info, line, styled, warn

app = typer.Typer(no_args_is_help=True, help="Predict, compare and optimise LR schedules with a curve law.")

FitOpt = typer.Option(None, "--fit", "-f", help="A fit.json of a curve law (scalefit fit --out).")
LawOpt = typer.Option(None, "--law", "-l", help="Law name, with --reference SET or --set NAME=VALUE.")
RefOpt = typer.Option(None, "--reference", help="Published parameter set, e.g. 400M ('default': the law's first set).")
SetOpt = typer.Option(None, "--set", help="NAME=VALUE: a parameter value (repeatable; overrides --fit/--reference).")
LawOptOpt = typer.Option(None, "--law-opt", help="KEY=VALUE law option, e.g. lam=0.99 or convention=paper.")
LawFileOpt = typer.Option(None, "--law-file", help="Load laws from this Python file (repeatable).")
LrTableOpt = typer.Option(None, "--lr-table", help="Dense LR table (run, step, lr) to read a schedule from.")
RunOpt = typer.Option(None, "--run", help="Run(s) of --lr-table to use (repeatable).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")
PlotOpt = typer.Option(None, "--plot", help="Write a figure (.png, .pdf or .svg).")
CiOpt = typer.Option(None, "--ci", help="Interval level (default: the fit's, or 0.95).")
IntervalOpt = typer.Option("auto", "--interval", help="confidence (the law's mean), prediction (+ a new run's offset), calibrated (+ the law's extrapolation error measured by backtests at fit time) or auto (default: the most honest the fit can give).")
ForceOpt = typer.Option(False, "--force", help="Overwrite --plot if it exists.")


class _Progress:
    """A rich progress bar on stderr that appears only once the work has taken over a second (as the
    bootstrap bar of ``scalefit fit``); ``update(phase, done, total)``, one bar per phase."""

    def __init__(self, delay: float = 1.0):
        self.t0, self.delay = time.perf_counter(), delay
        self.bar = None
        self.tasks: dict[str, int] = {}

    def update(self, phase: str, done: float, total: float) -> None:
        if self.bar is None:
            if time.perf_counter() - self.t0 < self.delay:
                return
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                TimeElapsedColumn(), console=err_console, transient=True)
            self.bar.start()
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _one_blas_thread() -> None:
    """One BLAS thread for this process, unless the user set a number (call it before numpy is imported).

    The schedule optimiser works on a few hundred knots: its BLAS calls are too small to gain
    from threads, whose spinning costs more than the work. On a busy 2-core machine the whole command took
    half the wall time and 40 % less CPU on one thread; the fastest runs were alike
    (benchmarks/results/startup.md)."""
    import os
    import sys

    if "numpy" not in sys.modules:  # read when numpy loads its BLAS, not after
        for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")


def _check_ci(ci: Optional[float]) -> None:
    if ci is not None and not 0 < ci < 1:  # also refuses nan
        from ..errors import DataError

        raise DataError(f"--ci {ci:g}: the interval level must lie in (0, 1), e.g. 0.95")


def _whole(text: Optional[str], flag: str, minimum: int) -> Optional[int]:
    """A step-count option (``5000``, ``5k``, ``2.4e4``) as an int >= minimum, or None when not given."""
    if text is None:
        return None
    from ..errors import DataError
    from ..units import parse_count

    value = parse_count(text, what=flag)
    if value != math.floor(value) or value < minimum:
        raise DataError(f"{flag} {text}: use a whole number of steps >= {minimum}")
    return int(value)


def _check_inputs(**paths) -> None:
    """Each user file (--lr-table, --data, ...) is a readable regular file within the size limit."""
    from .._io import check_input_file

    for flag, path in paths.items():
        if path is not None:
            check_input_file(path, f"file (--{flag.replace('_', '-')})")


def _params(fit_path, law, reference, set_, law_opt, law_file, ci):
    """The law's parameters: scalefit.source.resolve loads --fit or looks --law up, then
    scalefit.schedule.curve_params checks them for a curve law; what it notes is said on stderr."""
    from ..schedule import curve_params
    from ..source import resolve
    from ._options import parse_assignments, parse_law_options

    _check_ci(ci)
    overrides = parse_assignments(set_)
    src = resolve(fit_path, law, reference, set_values=overrides, law_files=law_file, ci=ci)
    found = {"fit": src.fit, "source": src.source} if src.fit is not None else {"law": src.law, "reference": reference}
    p = curve_params(**found, overrides=overrides, law_options=parse_law_options(law_opt), ci=ci)
    for note in p.notes:
        warn(note)
    return p


def _schedules(specs, lr_table, runs) -> dict:
    """name -> Schedule (from --schedule, not yet generated) or dense LR array (from --lr-table/--run)."""
    from ..errors import DataError
    from ..schedule import parse_schedule

    out = {}
    for spec in specs or []:
        sched = parse_schedule(spec)
        out[str(sched)] = sched
    if lr_table:
        from pathlib import Path

        from ..curves import read_lr_table

        _check_inputs(lr_table=lr_table)
        table = read_lr_table(lr_table, list(runs or []) or [Path(lr_table).stem])
        wanted = list(runs or [])
        if not wanted:
            if len(table) != 1:
                raise DataError(f"{lr_table}: holds {len(table)} runs; pick one with --run NAME "
                                f"(runs: {', '.join(list(table)[:10])})")
            wanted = list(table)
        for run in wanted:
            if run not in table:
                raise DataError(f"--run {run}: not in {lr_table}; runs are: {', '.join(list(table)[:10])}")
            out[f"{lr_table}:{run}"] = table[run]
    elif runs:
        raise DataError("--run needs --lr-table FILE")
    if not out:
        raise DataError("give a schedule: --schedule SPEC (e.g. cosine:peak=3e-4,steps=24000,warmup=2160) "
                        "or --lr-table FILE --run NAME")
    return out


def _short_names(names: list[str]) -> tuple[list[str], str]:
    """Spec strings without the key=value pairs they all share (shown once above the table)."""
    parts = [n.split(":", 1) if ":" in n and "=" in n else [n, ""] for n in names]
    pairs = [set(p[1].split(",")) - {""} for p in parts]
    common = set.intersection(*pairs) if len(pairs) > 1 and all(pairs) else set()
    if not common:
        return names, ""
    order = [kv for kv in parts[0][1].split(",") if kv in common]
    short = [f"{kind}:" + ",".join(kv for kv in body.split(",") if kv not in common) if body else kind
             for kind, body in parts]
    return [s.rstrip(":") for s in short], ",".join(order)


@app.command("kinds")
def kinds():
    """The schedule spec syntax: every kind and its keys."""
    from ..schedule import schedule_help

    console.print("NAME:key=value,key=value   e.g. wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=0.2,shape=sqrt",
                  highlight=False, markup=False)
    console.print(schedule_help(), highlight=False, markup=False)


@app.command("predict")
def predict(
    schedule: Optional[str] = typer.Option(None, "--schedule", "-s", help="Schedule spec (see `scalefit schedule kinds`)."),
    lr_table: Optional[str] = LrTableOpt,
    run: Optional[str] = typer.Option(None, "--run", help="Run of --lr-table to predict."),
    fit_path: Optional[str] = FitOpt,
    law: Optional[str] = LawOpt,
    reference: Optional[str] = RefOpt,
    set_: Optional[List[str]] = SetOpt,
    law_opt: Optional[List[str]] = LawOptOpt,
    law_file: Optional[List[str]] = LawFileOpt,
    every: Optional[str] = typer.Option(None, "--every", help="Report every K-th step (the last step is always "
                                        "included; default: every step up to 25,000 steps, else about 25,000 points)."),
    at: Optional[str] = typer.Option(None, "--at", help="Also report the loss at this step (with its interval)."),
    data: Optional[str] = typer.Option(None, "--data", help="Observed curves to score and plot against the prediction."),
    col: Optional[List[str]] = typer.Option(None, "--col", help="ROLE=COLUMN for --data (repeatable)."),
    data_schedule: Optional[List[str]] = typer.Option(None, "--data-schedule", help="RUN=SPEC: LR of a --data run."),
    data_lr_table: Optional[str] = typer.Option(None, "--data-lr-table", help="Dense LR table for the --data runs."),
    holdout: Optional[List[str]] = typer.Option(None, "--holdout", help="Mark this --data run as held out (repeatable)."),
    ci: Optional[float] = CiOpt,
    interval: str = IntervalOpt,
    plot: Optional[str] = PlotOpt,
    force: bool = ForceOpt,
    json_out: bool = JsonOpt,
):
    """The predicted loss curve of a fitted (or published) law under one schedule."""
    from ..schedule import check_prediction, check_step, predict_for, schedule_steps

    # Everything the user typed is checked before any work.
    _check_ci(ci)
    every, at = _whole(every, "--every", 1), _whole(at, "--at", 0)
    _check_inputs(data=data, data_lr_table=data_lr_table)
    if plot:
        from ..plot import check_plot_path

        check_plot_path(plot, force, param="plot")
    if data is None and (schedule is None and lr_table is None):
        _schedules(None, None, None)  # raises the how-to message
    scheds = {}
    if schedule is not None or lr_table is not None:
        scheds = _schedules([schedule] if schedule else None, lr_table, [run] if run else None)
        name, sched = next(iter(scheds.items()))
        T = schedule_steps(sched)
        if at is not None:
            check_step(at, T)
    p = _params(fit_path, law, reference, set_, law_opt, law_file, ci)
    interval = p.resolve_interval(interval)
    p.halfwidth(interval, 1)  # a kind this fit cannot give fails before the work
    out, pred = {}, None
    if scheds:
        stride = check_prediction(p, name, sched, every)  # the memory of the whole job, before any work
        if every is None and stride > 1:
            info(f"{T:,} steps: reporting every {stride:,}th step (--every 1 reports all)")
        with _Progress() as bar:
            pred = predict_for(p, name, sched, every=stride, at=at, progress=bar.update, interval=interval)
        for message in pred.warnings:
            warn(message)
        out = pred.to_dict()
    if data is not None:
        from ..curves import load_curves, parse_schedule_options
        from ..data import parse_column_mapping
        from ..schedule import score_curves

        ds = load_curves(data, columns=parse_column_mapping(col or []), lr_table=data_lr_table,
                         schedules=parse_schedule_options(data_schedule))
        out.update(score_curves(p.law, p.theta, ds, holdout or ()).to_dict())
    out.update(p.to_dict())
    if plot:
        from ..plot import plot_curves, plot_schedules

        if data is not None:
            plot_curves(p.law, p.theta, ds, plot, holdout=holdout or (), force=force)
        else:
            plot_schedules(p.law, p.theta, {pred.schedule: pred.lr}, plot, force=force)
    if json_out:
        emit_json(out)
        return
    _print_predict(out)
    if plot:
        info(f"wrote {plot}")


def _interval_text(out: dict, key: str) -> str:
    """'  [low, high] (95%)' for the number ``key`` of a prediction (its own interval), or ''."""
    if f"{key}_low" not in out:
        return ""
    if not (out[key + "_high"] is not None and math.isfinite(out[key + "_high"])):
        return f"  unbounded ({out['ci']:.0%} {out['interval']}: the fitted curves cannot measure this error)"
    return f"  [{fmt(out[key + '_low'], 6)}, {fmt(out[key + '_high'], 6)}] ({out['ci']:.0%} {out['interval']})"


def _print_predict(out: dict) -> None:
    from rich.table import Table

    console.print(line(styled(out['law'], "bold"), f" from {out['source']}"), highlight=False)
    if "steps" in out:
        console.print(f"schedule {out['schedule']}", highlight=False, markup=False)
        steps, loss = out["steps"], out["loss"]
        table = Table(title="predicted loss")
        table.add_column("step", justify="right")
        table.add_column("loss", justify="right")
        picks = sorted(set([0, *range(0, len(steps), max(1, len(steps) // 10)), len(steps) - 1]))
        for i in picks:
            table.add_row(str(steps[i]), fmt(loss[i], 6))
        console.print(table)
        console.print(f"final loss at step {out['final_step']}: {out['final_loss']:.6f}"
                      f"{_interval_text(out, 'final_loss')}", highlight=False)
        if "at_step" in out:
            console.print(f"loss at step {out['at_step']}: {out['loss_at_step']:.6f}"
                          f"{_interval_text(out, 'loss_at_step')}", highlight=False)
    if "runs" in out:
        table = Table(title="observed vs predicted")
        for c in ("run", "points", "R²", "MAE", "RMSE", "final obs", "final pred"):
            table.add_column(c, justify="right" if c != "run" else "left")
        for m in out["runs"]:
            table.add_row(m["run"] + (" (held out)" if m["held_out"] else ""), str(m["n"]), f"{m['r2']:.5f}",
                          f"{m['mae']:.5f}", f"{m['rmse']:.5f}", f"{m['final_loss']:.4f}", f"{m['final_pred']:.4f}")
        console.print(table)
        console.print(f"mean R² {out['mean_r2']:.5f}, mean MAE {out['mean_mae']:.5f}", highlight=False)


@app.command("compare")
def compare(
    schedule: Optional[List[str]] = typer.Option(None, "--schedule", "-s", help="Schedule spec (repeatable)."),
    lr_table: Optional[str] = LrTableOpt,
    run: Optional[List[str]] = RunOpt,
    fit_path: Optional[str] = FitOpt,
    law: Optional[str] = LawOpt,
    reference: Optional[str] = RefOpt,
    set_: Optional[List[str]] = SetOpt,
    law_opt: Optional[List[str]] = LawOptOpt,
    law_file: Optional[List[str]] = LawFileOpt,
    at: Optional[str] = typer.Option(None, "--at", help="Compare the loss at this step instead of the last."),
    ci: Optional[float] = CiOpt,
    interval: str = IntervalOpt,
    plot: Optional[str] = PlotOpt,
    force: bool = ForceOpt,
    json_out: bool = JsonOpt,
):
    """Final (or --at step) predicted loss of several schedules, ranked, with intervals."""
    from ..schedule import check_step, compare_for, schedule_steps

    _check_ci(ci)
    at = _whole(at, "--at", 0)
    if plot:
        from ..plot import check_plot_path

        check_plot_path(plot, force, param="plot")
    scheds = _schedules(schedule, lr_table, run)
    if at is not None:
        for name, sched in scheds.items():
            check_step(at, schedule_steps(sched), schedule=name)
    p = _params(fit_path, law, reference, set_, law_opt, law_file, ci)
    interval = p.resolve_interval(interval)
    p.halfwidth(interval, 1)
    with _Progress() as bar:
        result = compare_for(p, scheds, at=at, progress=bar.update, interval=interval)
    for message in result.warnings:
        warn(message)
    if plot:
        from ..plot import plot_schedules

        plot_schedules(p.law, p.theta, result.lrs, plot, force=force)
    if json_out:
        emit_json({**p.to_dict(), **result.to_dict()})
        return
    _print_compare(p, result, at)
    if plot:
        info(f"wrote {plot}")


def _print_compare(p, result, at: Optional[int]) -> None:
    from rich.table import Table

    console.print(line(styled(p.law.name, "bold"), f" from {p.source}"), highlight=False)
    table = Table(title="predicted loss" + (f" at step {at}" if at is not None else " at the last step"))
    has_ci = result.has_intervals
    for c in ("schedule", "steps", "loss", *((f"{result.ci:.0%} {result.interval} interval",) if has_ci else ()),
              "vs best",
              *((f"vs best {result.ci:.0%}",) if has_ci else ())):
        table.add_column(c, justify="left" if c == "schedule" else "right", overflow="fold")
    labels, common = _short_names([r.schedule for r in result.rows])
    if common:
        console.print(f"all schedules: {common}", highlight=False, markup=False)
    for r, label in zip(result.rows, labels):
        cells = [label, str(r.steps), f"{r.final_loss:.5f}"]
        if has_ci:
            cells.append(f"[{r.interval[0]:.5f}, {r.interval[1]:.5f}]" if math.isfinite(r.interval[1]) else "unbounded")
        cells.append(f"{r.vs_best:+.5f}")
        if has_ci:
            cells.append(f"[{r.vs_best_interval[0]:+.5f}, {r.vs_best_interval[1]:+.5f}]")
        table.add_row(*cells)
    console.print(table)


@app.command("optimize")
def optimize(
    peak: float = typer.Option(..., "--peak", help="Peak LR (held from the end of warm-up until the decay)."),
    steps: str = typer.Option(..., "--steps", help="Total steps T, warm-up included (e.g. 24000 or 24k)."),
    warmup: str = typer.Option("0", "--warmup", help="Linear warm-up steps."),
    warmup_start: float = typer.Option(0.0, "--warmup-start", help="Warm-up starts at this fraction of the peak."),
    floor: float = typer.Option(0.0, "--floor", help="Lowest LR the schedule may reach."),
    family: str = typer.Option("free", "--family", help="free: any monotone schedule; wsd: the WSD family only."),
    fit_path: Optional[str] = FitOpt,
    law: Optional[str] = LawOpt,
    reference: Optional[str] = RefOpt,
    set_: Optional[List[str]] = SetOpt,
    law_opt: Optional[List[str]] = LawOptOpt,
    law_file: Optional[List[str]] = LawFileOpt,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the schedule as CSV (step,lr)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out and --plot if they exist."),
    time_limit: float = typer.Option(60.0, "--time-limit", help="Seconds for the whole search (WSD grid, cosine, "
                                     "free-form optimiser, intervals); cut short, each part keeps its best."),
    ci: Optional[float] = CiOpt,
    plot: Optional[str] = PlotOpt,
    json_out: bool = JsonOpt,
):
    """The monotone schedule minimising the predicted final loss, against the best cosine and WSD."""
    _one_blas_thread()
    from pathlib import Path

    from .._io import refuse_overwrite
    from ..errors import DataError
    from ..schedule import FAMILIES, MAX_PEAK, MAX_STEPS, Budget, check_memory, optimize_bytes, optimize_for

    # Every option is checked before any work.
    T, W = _whole(steps, "--steps", 2), _whole(warmup, "--warmup", 0)
    if T > MAX_STEPS:
        raise DataError(f"--steps {steps}: too large for a step count (at most 2**53)")
    if W > T - 2:
        raise DataError(f"--warmup {warmup}: the warm-up must leave at least 2 of the {T:,} steps (--steps {steps})")
    if not (math.isfinite(peak) and 0 < peak <= MAX_PEAK):
        raise DataError(f"--peak {peak:g}: the peak LR must be a positive number up to {MAX_PEAK:g}")
    if not (math.isfinite(floor) and 0 <= floor < peak):
        raise DataError(f"--floor {floor:g}: the lowest LR must lie in [0, peak={peak:g})")
    if not (math.isfinite(warmup_start) and 0 <= warmup_start <= 1):
        raise DataError(f"--warmup-start {warmup_start:g}: a fraction of the peak in [0, 1]")
    if family not in FAMILIES:
        raise DataError(f"--family '{family}': use free or wsd")
    _check_ci(ci)
    Budget(time_limit)  # checks --time-limit
    if out:
        if Path(out).suffix.lower() not in (".csv", ".txt"):
            raise DataError(f"--out {out}: the schedule is written as CSV; use a .csv file name")
        refuse_overwrite(out, force)
    if plot:
        from ..plot import check_plot_path

        check_plot_path(plot, force, param="plot")
    check_memory(optimize_bytes(T), f"--steps {steps}")
    p = _params(fit_path, law, reference, set_, law_opt, law_file, ci)
    with _Progress() as bar:
        res = optimize_for(p, peak=peak, steps=T, warmup=W, warmup_start=warmup_start, floor=floor, family=family,
                           time_limit=time_limit, progress=bar.update)
    for message in res.warnings:
        warn(message)
    if res.time_limited:
        warn(res.message)
    if res.interval_note:
        warn(res.interval_note)
    if out:
        from ..schedule import write_schedule_csv

        write_schedule_csv(out, res.lr, force=force)
    if plot:
        from ..plot import plot_schedules

        plot_schedules(p.law, p.theta, {"optimized": res.lr, "best WSD": res.best_wsd[0].lr(),
                                        "best cosine": res.best_cosine[0].lr()}, plot,
                       highlight="optimized", title=f"{p.source}: schedule minimising the final loss", force=force)
    if json_out:
        emit_json({**res.to_dict(), "schedule": str(out) if out else None, **p.to_dict()})
        return
    _print_optimized(p, res)
    if out:
        info(f"wrote {out}")
    if plot:
        info(f"wrote {plot}")


def _print_optimized(p, res) -> None:
    from rich.table import Table

    console.print(line(styled(p.law.name, "bold"), f" from {p.source}: peak {res.peak:g}, warm-up {res.warmup}, "
                       f"{res.steps} steps, floor {res.floor:g}"), highlight=False)
    table = Table(title="predicted final loss")
    table.add_column("schedule", overflow="fold")
    table.add_column("final loss", justify="right")
    table.add_column("vs optimized", justify="right")
    best = res.final_loss
    (wsd_label, cos_label), common = _short_names([str(res.best_wsd[0]), str(res.best_cosine[0])])
    table.add_row(f"optimized ({res.family})", f"{best:.6f}", "")
    table.add_row(f"best {wsd_label}", f"{res.best_wsd[1]:.6f}", f"{res.best_wsd[1] - best:+.6f}")
    table.add_row(f"best {cos_label}", f"{res.best_cosine[1]:.6f}", f"{res.best_cosine[1] - best:+.6f}")
    console.print(table)
    info(f"monotone: {res.monotone}; starts at peak: {res.starts_at_peak}; end LR {res.lr[-1]:.3g}; "
         f"{res.seconds:.1f} s")
    if res.final_loss_interval is not None:
        lo, hi = res.final_loss_interval
        console.print(f"final loss {res.ci:.0%} interval over {p.n_draws} draws: [{lo:.5f}, {hi:.5f}]", highlight=False)
