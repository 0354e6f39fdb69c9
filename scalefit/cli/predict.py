"""``scalefit predict``: loss at a size and data budget, or the compute-optimal allocation, with intervals."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, fmt, warn


def predict_command(
    fit_path: Optional[str] = typer.Option(None, "--fit", "-f", help="A fit.json written by `scalefit fit --out`."),
    law: Optional[str] = typer.Option(None, "--law", "-l", help="With --reference: forecast from published values."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Use the law's published values (optionally name the set)."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file (repeatable)."),
    params: Optional[str] = typer.Option(None, "--params", "-N", help="Model size, e.g. 7B."),
    tokens: Optional[str] = typer.Option(None, "--tokens", "-D", help="Training tokens, e.g. 1.4T."),
    compute: Optional[str] = typer.Option(None, "--compute", "-C", help="Training FLOPs (6ND), e.g. 5.76e23."),
    ci: Optional[float] = typer.Option(None, "--ci", help="Interval level (default: the fit's)."),
    interval: str = typer.Option("confidence", "--interval", help="confidence: the law's mean loss; prediction: a new run's observed loss (adds run-to-run noise); calibrated: prediction widened by the law's error beyond the fitted budgets (a fit made with --calibrate)."),
    hours: Optional[str] = typer.Option(None, "--hours", help="Wall-clock budget: search shapes for the lowest loss (see `scalefit cost search`)."),
    hardware: Optional[str] = typer.Option(None, "--hardware", "-H", help="With --hours: device, e.g. H100."),
    gpus: int = typer.Option(1, "--gpus", "-g", help="With --hours: number of devices."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help="With --hours: a cost.json from `scalefit cost calibrate`."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Forecast loss: give two of --params/--tokens/--compute, or one for the compute-optimal rest; or --hours
    with --hardware and --gpus for the best model shape in a wall-clock budget."""
    from ..errors import DataError
    from ..forecast import check_input, forecast
    from ._options import echo_size

    n = echo_size(params, "--params", "params")
    d = echo_size(tokens, "--tokens", "tokens")
    c = echo_size(compute, "--compute", "FLOPs")
    for name, value in (("params", n), ("tokens", d), ("compute", c)):
        if value is not None:
            check_input(name, value)  # absurd sizes are refused before anything is loaded
    if ci is not None and not 0 < ci < 1:
        raise DataError(f"--ci {ci}: the interval level must lie strictly between 0 and 1, e.g. 0.95")
    h = None
    if hours is not None:
        from ..cost import check_gpus, check_range

        h = echo_size(hours, "--hours", "hours")
        check_range("hours", h)
        check_gpus(gpus)
    if interval in ("prediction", "calibrated") and law and reference and not fit_path:  # before the law is looked up
        raise DataError(f"--interval {interval} needs a fit (--fit fit.json): published values carry no "
                        "run-to-run scatter" + (" nor backtest errors" if interval == "calibrated" else ""))
    from ..source import resolve

    src = resolve(fit_path, law, reference, law_files=law_file, ci=ci)
    law_obj, theta, draws, level, source = src.law, src.theta, src.draws, src.ci, src.source
    if hours is not None:  # "what loss can I reach in 72 hours": the cost model's shape search
        from .cost import run_search

        if n is not None or d is not None or c is not None:
            raise DataError("--hours searches model shapes itself; drop --params/--tokens/--compute")
        run_search(law_obj, theta, draws, level, src.units, stretch=src.stretch, hours=h, hardware=hardware, gpus=gpus,
                   calibration=calibration, json_out=json_out, source=source)
        return
    if interval == "calibrated" and src.fit is not None and src.law.kind == "point" \
            and src.fit.extrapolation_errors is None:
        raise DataError(f"{fit_path}: --interval calibrated needs the law's error beyond the fitted budgets; "
                        f"refit with `scalefit fit ... --calibrate`")
    result_fc = forecast(law_obj, theta, draws, params=n, tokens=d, compute=c, ci=level, ranges=src.ranges,
                         interval=interval, residual_scale=src.residual_scale, stretch=src.stretch,
                         calibration=src.fit.extrapolation_errors if src.fit is not None else None)
    for message in result_fc.warnings:
        warn(message)
    if json_out:
        emit_json(result_fc.to_dict())
        return
    from rich.table import Table

    title = {"given": "forecast", "compute-optimal": "compute-optimal allocation",
             "optimal-tokens": "compute-optimal tokens for this size",
             "optimal-params": "compute-optimal size for these tokens"}[result_fc.mode]
    table = Table(title=f"{title} — {source}", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    has_interval = result_fc.loss.low is not None
    table.add_column(f"{level:.0%} {interval} interval" if has_interval else "interval", justify="right")
    from ..units import format_count

    for label, q, human in (("params", result_fc.params, True), ("tokens", result_fc.tokens, True),
                            ("compute (FLOPs)", result_fc.compute, False), ("loss", result_fc.loss, False)):
        value = f"{format_count(q.value)} ({q.value:.4g})" if human else fmt(q.value, 6)
        interval = f"[{fmt(q.low, 4)}, {fmt(q.high, 4)}]" if q.low is not None else "–"
        table.add_row(label, value, interval)
    table.add_row("tokens / param", fmt(result_fc.tokens.value / result_fc.params.value, 4), "")
    console.print(table)
    cal = result_fc.calibration
    if cal is not None:
        console.print(f"calibrated: the loss interval adds the law's error beyond the fitted budgets, "
                      f"±{100 * cal['halfwidth_log']:.2f} % (log) at {cal['ratio']:.3g}x the largest fitted "
                      f"{cal['by']}, from {cal['folds']} next-budget backtest fold(s); other intervals are "
                      f"parameter uncertainty only", highlight=False)
