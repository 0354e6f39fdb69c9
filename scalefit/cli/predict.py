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
    unique_tokens: Optional[str] = typer.Option(None, "--unique-tokens", "-U", help="Repeated-data laws (data_constrained): distinct tokens available, e.g. 100B; with --compute alone, the best allocation under that limit (how many epochs)."),
    ci: Optional[float] = typer.Option(None, "--ci", help="Interval level (default: the fit's)."),
    interval: str = typer.Option("confidence", "--interval", help="confidence: the law's mean loss; prediction: a new run's observed loss (adds run-to-run noise); calibrated: prediction widened by the law's error beyond the fitted budgets (a fit made with --calibrate)."),
    hours: Optional[str] = typer.Option(None, "--hours", help="Wall-clock budget: search shapes for the lowest loss (see `scalefit cost search`)."),
    hardware: Optional[str] = typer.Option(None, "--hardware", "-H", help="With --hours: device, e.g. H100."),
    gpus: int = typer.Option(1, "--gpus", "-g", help="With --hours: number of devices."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help="With --hours: a cost.json from `scalefit cost calibrate`."),
    seq_len: Optional[float] = typer.Option(None, "--seq-len", help="With an hp.json (`scalefit hparams fit`): tokens per sequence, for the optimal batch in sequences."),
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
    u = echo_size(unique_tokens, "--unique-tokens", "tokens")
    for name, value in (("params", n), ("tokens", d), ("compute", c), ("unique_tokens", u)):
        if value is not None:
            check_input(name, value)  # absurd sizes are refused before anything is loaded
    if ci is not None and not 0 < ci < 1:
        raise DataError(f"--ci {ci}: the interval level must lie strictly between 0 and 1, e.g. 0.95")
    if fit_path and not (law or reference):
        from ..hparams import is_hparams_file

        if is_hparams_file(fit_path):  # an hp.json (`scalefit hparams fit`): optimal LR and batch, not a loss
            from .hparams import predict_from_file

            if c is not None or u is not None or hours is not None:
                raise DataError(f"{fit_path}: an hparams fit takes --params and --tokens (not --compute, "
                                f"--unique-tokens or --hours)")
            predict_from_file(fit_path, n, d, ci=ci, seq_len=seq_len, json_out=json_out)
            return
    if seq_len is not None:
        raise DataError("--seq-len applies to an hparams fit (an hp.json from `scalefit hparams fit`)")
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
                         calibration=src.fit.extrapolation_errors if src.fit is not None else None, unique_tokens=u)
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
    rep = result_fc.repetition
    for label, key in (("epochs over the unique tokens", "epochs"), ("effective tokens (D')", "effective_tokens"),
                       ("effective params (N')", "effective_params")):
        if rep is not None and key in rep:
            q = rep[key]
            band = f"[{fmt(q['low'], 4)}, {fmt(q['high'], 4)}]" if q["low"] is not None else "–"
            table.add_row(label, fmt(q["value"], 4) if key == "epochs" else f"{format_count(q['value'])}", band)
    alloc = result_fc.allocation
    if alloc is not None:  # the exponents papers quote, whatever was asked
        alpha, beta = alloc["exponents"]
        for key, top, what in (("a", beta, "N_opt"), ("b", alpha, "D_opt")):
            q = alloc[key]
            band = f"[{fmt(q['low'], 4)}, {fmt(q['high'], 4)}]" if q["low"] is not None else "–"
            table.add_row(f"{what} ∝ C^{key}, {key} = {top}/({alpha}+{beta})", fmt(q["value"], 4), band)
    console.print(table)
    cal = result_fc.calibration
    if cal is not None:
        console.print(f"calibrated: the loss interval adds the law's error beyond the fitted budgets, "
                      f"±{100 * cal['halfwidth_log']:.2f} % (log) at {cal['ratio']:.3g}x the largest fitted "
                      f"{cal['by']}, from {cal['folds']} next-budget backtest fold(s); other intervals are "
                      f"parameter uncertainty only", highlight=False)
