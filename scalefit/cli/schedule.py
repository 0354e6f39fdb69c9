"""``scalefit schedule predict|compare|optimize``: a curve law's loss under LR schedules.

Parameters come from ``--fit fit.json`` (with its bootstrap draws for intervals), from published values
(``--law multipower --reference 400M``), or directly (``--law NAME --set NAME=VALUE ...``; ``--set`` also
overrides single values of a fit or reference set). Schedules are specs (``--schedule SPEC``, see
``scalefit schedule kinds``) or a dense LR file (``--lr-table FILE --run NAME``).
"""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, fmt, info, line, styled, warn

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


class _Params:
    """Where the law's parameters came from: law, theta (p,), draws (B, p) or None, a label."""

    def __init__(self, law, theta, draws, source, ci, fitted_steps=None):
        self.law, self.theta, self.draws, self.source, self.ci = law, theta, draws, source, ci
        self.fitted_steps = fitted_steps  # the longest fitted curve's last step (None: not from a fit)

    def horizon_warnings(self, schedules: dict) -> list[str]:
        """Say (on stderr) which schedules run past the longest curve the law was fitted on.

        Curve laws identify their long-horizon terms poorly: a multipower fit on the official 24k-step
        MPL curves predicts the final loss of the 72k-step cosine 0.025 too low (1 %); the observed loss
        lies 0.019 above the top of the 95 % bootstrap interval. The user should know it is an extrapolation.
        """
        if not self.fitted_steps:
            return []
        out = []
        for name, eta in schedules.items():
            if len(eta) > 1.05 * self.fitted_steps:
                out.append(f"{name}: {len(eta):,} steps is {len(eta) / self.fitted_steps:.1f}x the longest fitted "
                           f"curve ({self.fitted_steps:,} steps): the long-horizon loss is extrapolated and the "
                           f"interval does not include that error")
        for message in out:
            warn(message)
        return out

    def to_dict(self):
        return {"law": self.law.name, "source": self.source,
                "params": dict(zip(self.law.param_names, map(float, self.theta))),
                "options": getattr(self.law, "options", {}), "n_draws": 0 if self.draws is None else len(self.draws)}


def _params(fit_path, law, reference, set_, law_opt, law_file, ci) -> _Params:
    import numpy as np

    from ..errors import DataError
    from ._options import parse_assignments

    if fit_path and (law or reference):
        raise DataError("give either --fit or --law (with --reference or --set), not both")
    overrides = parse_assignments(set_)
    draws = fitted_steps = None
    if fit_path:
        from ..result import load_fit

        result = load_fit(fit_path, law_file or [])
        law_obj, theta, draws = result.law, result.theta.copy(), result.draws
        level = ci if ci is not None else result.ci
        source = str(fit_path)
        fitted_steps = int(result.data_info.get("ranges", {}).get("step", [0, 0])[1]) or None
    elif law:
        from ..registry import get_law

        law_obj = get_law(law, law_file or [])
        level = ci if ci is not None else 0.95
        if reference:
            theta = law_obj.reference_theta(None if reference == "default" else reference)
            source = f"{law_obj.name} published values ({reference if reference != 'default' else next(iter(law_obj.reference))})"
        else:
            missing = [n for n in law_obj.param_names if n not in overrides]
            if missing:
                raise DataError(f"law '{law_obj.name}': no value for {', '.join(missing)}; give --set NAME=VALUE for "
                                f"each, or --reference SET (sets: {', '.join(law_obj.reference) or 'none'})")
            theta = np.zeros(law_obj.n_params)
            source = "--set values"
    else:
        raise DataError("give --fit fit.json, or --law NAME with --reference SET or --set NAME=VALUE")
    if law_obj.kind != "curve" or not hasattr(law_obj, "curve"):
        raise DataError(f"law '{law_obj.name}' is not a loss-curve law; schedule commands need one "
                        f"(e.g. multipower, lr_annealing)")
    from ._options import parse_law_options

    options = parse_law_options(law_opt)
    if options:
        law_obj = law_obj.with_options(**options)
    for name, value in overrides.items():
        if name not in law_obj.param_names:
            raise DataError(f"--set {name}: law '{law_obj.name}' has no such parameter; parameters are: "
                            f"{', '.join(law_obj.param_names)}")
        theta[law_obj.param_names.index(name)] = value
    if overrides and draws is not None:
        warn("--set overrides fitted values: bootstrap intervals are dropped")
        draws = None
    if not 0 < level < 1:
        raise DataError(f"--ci must lie in (0, 1), got {level}")
    return _Params(law_obj, theta, draws, source, level, fitted_steps)


def _schedules(specs, lr_table, runs) -> dict:
    """name -> dense LR array from --schedule specs and --lr-table/--run."""
    from ..errors import DataError
    from ..schedule import parse_schedule

    out = {}
    for spec in specs or []:
        sched = parse_schedule(spec)
        out[str(sched)] = sched.lr()
    if lr_table:
        from pathlib import Path

        from ..curves import _read_lr_table
        from ..data import read_table

        frame = read_table(lr_table)
        table = _read_lr_table(frame, list(runs or []) or [Path(lr_table).stem])
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
    every: int = typer.Option(1, "--every", help="Report every K-th step (the last step is always included)."),
    at: Optional[int] = typer.Option(None, "--at", help="Also report the loss at this step (with its interval)."),
    data: Optional[str] = typer.Option(None, "--data", help="Observed curves to score and plot against the prediction."),
    col: Optional[List[str]] = typer.Option(None, "--col", help="ROLE=COLUMN for --data (repeatable)."),
    data_schedule: Optional[List[str]] = typer.Option(None, "--data-schedule", help="RUN=SPEC: LR of a --data run."),
    data_lr_table: Optional[str] = typer.Option(None, "--data-lr-table", help="Dense LR table for the --data runs."),
    holdout: Optional[List[str]] = typer.Option(None, "--holdout", help="Mark this --data run as held out (repeatable)."),
    ci: Optional[float] = CiOpt,
    plot: Optional[str] = PlotOpt,
    json_out: bool = JsonOpt,
):
    """The predicted loss curve of a fitted (or published) law under one schedule."""
    p = _params(fit_path, law, reference, set_, law_opt, law_file, ci)
    if data is None and (schedule is None and lr_table is None):
        _schedules(None, None, None)  # raises the how-to message
    out = {}
    if schedule is not None or lr_table is not None:
        scheds = _schedules([schedule] if schedule else None, lr_table, [run] if run else None)
        name, eta = next(iter(scheds.items()))
        from ..schedule import predict_schedule

        out = predict_schedule(p.law, p.theta, eta, every=every, draws=p.draws, ci=p.ci, at=at)
        out.pop("samples", None)
        out["schedule"] = name
        out["warnings"] = p.horizon_warnings({name: eta})
    if data is not None:
        from ..curves import load_curves, parse_schedule_options
        from ..data import parse_column_mapping
        from ..schedule import curve_metrics

        ds = load_curves(data, columns=parse_column_mapping(col or []), lr_table=data_lr_table,
                         schedules=parse_schedule_options(data_schedule))
        metrics = curve_metrics(p.law, p.theta, ds)
        for m in metrics:
            m["held_out"] = m["run"] in set(holdout or [])
        out["runs"] = metrics
        held = [m for m in metrics if m["held_out"]] or metrics
        out["mean_r2"] = sum(m["r2"] for m in held) / len(held)
        out["mean_mae"] = sum(m["mae"] for m in held) / len(held)
    out.update(p.to_dict())
    if plot:
        from ..plot import plot_curves, plot_schedules

        if data is not None:
            plot_curves(p.law, p.theta, ds, plot, holdout=holdout or ())
        else:
            plot_schedules(p.law, p.theta, {out["schedule"]: eta}, plot)
    if json_out:
        emit_json(out)
        return
    _print_predict(out)
    if plot:
        info(f"wrote {plot}")


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
        interval = f"  [{fmt(out['low'], 6)}, {fmt(out['high'], 6)}] ({out['ci']:.0%})" if "low" in out else ""
        console.print(f"final loss at step {out['final_step']}: {out['final_loss']:.6f}{interval}", highlight=False)
        if "at_step" in out:
            console.print(f"loss at step {out['at_step']}: {out['loss_at_step']:.6f}", highlight=False)
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
    at: Optional[int] = typer.Option(None, "--at", help="Compare the loss at this step instead of the last."),
    ci: Optional[float] = CiOpt,
    plot: Optional[str] = PlotOpt,
    json_out: bool = JsonOpt,
):
    """Final (or --at step) predicted loss of several schedules, ranked, with intervals."""
    from ..schedule import compare_schedules

    p = _params(fit_path, law, reference, set_, law_opt, law_file, ci)
    scheds = _schedules(schedule, lr_table, run)
    rows = compare_schedules(p.law, p.theta, scheds, draws=p.draws, ci=p.ci, at=at)
    for r in rows:
        r.pop("samples", None)
    horizon = p.horizon_warnings(scheds)
    if plot:
        from ..plot import plot_schedules

        plot_schedules(p.law, p.theta, scheds, plot)
    if json_out:
        emit_json({**p.to_dict(), "ci": p.ci, "schedules": rows, "warnings": horizon})
        return
    from rich.table import Table

    console.print(line(styled(p.law.name, "bold"), f" from {p.source}"), highlight=False)
    table = Table(title="predicted loss" + (f" at step {at}" if at is not None else " at the last step"))
    has_ci = any("low" in r for r in rows)
    for c in ("schedule", "steps", "loss", *((f"{p.ci:.0%} interval",) if has_ci else ()), "vs best",
              *((f"vs best {p.ci:.0%}",) if has_ci else ())):
        table.add_column(c, justify="left" if c == "schedule" else "right", overflow="fold")
    labels, common = _short_names([r["schedule"] for r in rows])
    if common:
        console.print(f"all schedules: {common}", highlight=False, markup=False)
    for r, label in zip(rows, labels):
        cells = [label, str(r["steps"]), f"{r['final_loss']:.5f}"]
        if has_ci:
            cells.append(f"[{r['low']:.5f}, {r['high']:.5f}]")
        cells.append(f"{r['vs_best']:+.5f}")
        if has_ci:
            cells.append(f"[{r['vs_best_low']:+.5f}, {r['vs_best_high']:+.5f}]")
        table.add_row(*cells)
    console.print(table)
    if plot:
        info(f"wrote {plot}")


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
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    ci: Optional[float] = CiOpt,
    plot: Optional[str] = PlotOpt,
    json_out: bool = JsonOpt,
):
    """The monotone schedule minimising the predicted final loss, against the best cosine and WSD."""
    from pathlib import Path

    import numpy as np

    from ..errors import DataError
    from ..schedule import _interval, optimize_schedule, search_cosine, search_wsd
    from ..units import parse_count

    T = parse_count(steps, "--steps")
    W = parse_count(warmup, "--warmup")
    if T != int(T) or W != int(W) or T < 2 or W < 0:
        raise DataError(f"--steps and --warmup must be whole numbers of steps (got {steps}, {warmup})")
    T, W = int(T), int(W)
    if not peak > 0:
        raise DataError(f"--peak must be positive, got {peak}")
    if family not in ("free", "wsd"):
        raise DataError(f"--family '{family}': use free or wsd")
    if out and Path(out).exists() and not force:
        raise DataError(f"{out}: already exists; pass --force to overwrite it")
    if out and Path(out).suffix.lower() not in (".csv", ".txt"):
        raise DataError(f"--out {out}: the schedule is written as CSV; use a .csv file name")
    p = _params(fit_path, law, reference, set_, law_opt, law_file, ci)
    kw = dict(peak=peak, steps=T, warmup=W, warmup_start=warmup_start, floor=floor)
    if not 0 <= floor < peak:
        raise DataError(f"--floor ({floor:g}) must lie in [0, peak={peak:g})")
    if family == "free":
        res = optimize_schedule(p.law, p.theta, **kw)
        eta, result = res.lr, res.to_dict()
        wsd_spec, cos_spec = res.best_wsd[0], res.best_cosine[0]
    else:
        import time

        t0 = time.perf_counter()
        wsd, wsd_loss = search_wsd(p.law, p.theta, **kw)
        cos, cos_loss = search_cosine(p.law, p.theta, **kw)
        eta = wsd.lr()
        result = {"final_loss": wsd_loss, "best_wsd": {"schedule": str(wsd), "final_loss": wsd_loss},
                  "best_cosine": {"schedule": str(cos), "final_loss": cos_loss}, "gain_vs_wsd": 0.0,
                  "gain_vs_cosine": wsd_loss - cos_loss, "seconds": time.perf_counter() - t0, "spec": str(wsd),
                  "end_lr": float(eta[-1]), "peak": peak, "warmup": W, "steps": T, "floor": floor}
        wsd_spec, cos_spec = str(wsd), str(cos)
    monotone = bool(np.all(np.diff(eta[W:]) <= 0))
    result.update(monotone=monotone, starts_at_peak=bool(eta[W] == peak), family=family,
                  warnings=p.horizon_warnings({"the optimised schedule": eta}))
    if p.draws is not None and len(p.draws) >= 2:
        from ..schedule import parse_schedule

        finals = {k: p.law.curve(p.draws, e, [T - 1])[:, 0]
                  for k, e in (("optimized", eta), ("wsd", parse_schedule(wsd_spec).lr()),
                               ("cosine", parse_schedule(cos_spec).lr()))}
        result["final_loss_interval"] = _interval(finals["optimized"], p.ci)
        result["gain_vs_wsd_interval"] = _interval(finals["optimized"] - finals["wsd"], p.ci)
        result["gain_vs_cosine_interval"] = _interval(finals["optimized"] - finals["cosine"], p.ci)
    if out:
        from ..schedule import write_schedule_csv

        write_schedule_csv(out, eta, force=force)
    result["schedule"] = str(out) if out else None
    if plot:
        from ..plot import plot_schedules
        from ..schedule import parse_schedule

        plot_schedules(p.law, p.theta, {"optimized": eta, "best WSD": parse_schedule(wsd_spec).lr(),
                                        "best cosine": parse_schedule(cos_spec).lr()}, plot,
                       highlight="optimized", title=f"{p.source}: schedule minimising the final loss")
    result.update(p.to_dict())
    if json_out:
        emit_json(result)
        return
    from rich.table import Table

    console.print(line(styled(p.law.name, "bold"), f" from {p.source}: peak {peak:g}, warm-up {W}, {T} steps, floor {floor:g}"),
                  highlight=False)
    table = Table(title="predicted final loss")
    table.add_column("schedule", overflow="fold")
    table.add_column("final loss", justify="right")
    table.add_column("vs optimized", justify="right")
    best = result["final_loss"]
    (wsd_label, cos_label), common = _short_names([wsd_spec, cos_spec])
    table.add_row(f"optimized ({family})", f"{best:.6f}", "")
    table.add_row(f"best {wsd_label}", f"{result['best_wsd']['final_loss']:.6f}", f"{result['best_wsd']['final_loss'] - best:+.6f}")
    table.add_row(f"best {cos_label}", f"{result['best_cosine']['final_loss']:.6f}", f"{result['best_cosine']['final_loss'] - best:+.6f}")
    console.print(table)
    info(f"monotone: {monotone}; starts at peak: {result['starts_at_peak']}; end LR {eta[-1]:.3g}; "
         f"{result.get('seconds', 0):.1f} s")
    if "final_loss_interval" in result:
        lo, hi = result["final_loss_interval"]
        console.print(f"final loss {p.ci:.0%} interval over {len(p.draws)} draws: [{lo:.5f}, {hi:.5f}]", highlight=False)
    if out:
        info(f"wrote {out}")
    if plot:
        info(f"wrote {plot}")
