"""``scalefit hparams``: optimal peak learning rate and batch size (Step Law, Li et al. 2025)."""

from __future__ import annotations

import math
from typing import List, Optional

import typer

from ._output import console, emit_json, err_console, fmt, warn

app = typer.Typer(no_args_is_help=True, help="Optimal learning rate and batch size: fit the Step Law to a sweep, "
                                             "forecast it (Li et al. 2025).")

_OPTIMUM_HELP = ("How each (params, tokens) cell's optimum is placed: smooth (a robust quadratic in (log lr, "
                 "log batch) over the runs within --window of the best loss, placing it between grid points; "
                 "cells where it cannot be fitted keep the grid optimum) or grid (the best run: the authors' "
                 "procedure).")


@app.command("fit")
def fit(
    runs: str = typer.Argument(..., help="Sweep table: one row per run with params, tokens, lr, batch and loss."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the fit to this hp.json."),
    optimum: str = typer.Option("smooth", "--optimum", help=_OPTIMUM_HELP),
    col: Optional[List[str]] = typer.Option(None, "--col", help='Map a role (params, tokens, lr, batch, loss, '
                                            'seq_len, steps) to a column: --col params=Na (repeatable).'),
    seq_len: Optional[float] = typer.Option(None, "--seq-len", help="Tokens per sequence when the batch column "
                                            "counts sequences (default: a seq_len column, or inferred from "
                                            "tokens = steps x batch x seq_len)."),
    batch_unit: str = typer.Option("auto", "--batch-unit", help="What the batch column counts: auto, sequences "
                                   "or tokens."),
    bootstrap: int = typer.Option(1000, "--bootstrap", "-b", help="Bootstrap draws for intervals (0: none)."),
    resample: str = typer.Option("both", "--resample", help="What each bootstrap draw resamples: runs (within "
                                 "cells: the noise of placing an optimum), cells (the law's misfit between "
                                 "cells) or both."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed (same seed, same output)."),
    ci: float = typer.Option(0.95, "--ci", help="Interval level."),
    window: float = typer.Option(0.005, "--window", help="smooth: the loss band (relative) the local fit uses."),
    flat: float = typer.Option(0.005, "--flat", help="Report each cell's LR and batch range within this "
                               "fraction of its best loss."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (the hp.json contents)."),
):
    """Fit lr_opt = a N^alpha D^beta and B_opt = c D^gamma to the optima of a learning-rate / batch-size sweep."""
    from .._io import check_outputs
    from ..data import parse_column_mapping
    from ..hparams import check_options, fit_hparams, save_hparams, to_payload

    check_options(optimum=optimum, n_bootstrap=bootstrap, resample=resample, seed=seed, ci=ci, window=window,
                  flat=flat, batch_unit=batch_unit)
    check_outputs({"out": out}, [runs], force=force)
    result = fit_hparams(runs, optimum=optimum, columns=parse_column_mapping(col or []), seq_len=seq_len,
                         batch_unit=batch_unit, n_bootstrap=bootstrap, resample=resample, seed=seed, ci=ci,
                         window=window, flat=flat)
    if out:
        save_hparams(result, out, force=force)
    if json_out:  # the hp.json contents, less the bootstrap draws (they stay in the file)
        payload = {k: v for k, v in to_payload(result).items() if k not in ("draws", "checksum")}
        emit_json({"out": out, "n_draws": 0 if result.draws is None else len(result.draws), **payload})
        return
    _render_fit(result)
    if out:
        err_console.print(f"wrote {out}", highlight=False)


def _render_fit(result) -> None:
    from rich.table import Table

    d, s = result.data, result.settings
    boot = (f"{len(result.draws)} bootstrap draws resampling {s['resample']}" if result.draws is not None
            else "no bootstrap")
    if result.diagnostics.get("dropped_draws"):
        boot += (f" ({result.diagnostics['dropped_draws']} more dropped: their resampled cells could not "
                 f"determine the law)")
    console.print(f"Step Law fit — {result.source}: {d['n_runs']} runs in {d['n_cells']} cells; optimum "
                  f"{s['optimum']}; {boot}", highlight=False)
    cols = d["columns"]
    unit = (f"batch counts sequences of {fmt(result.seq_len, 6)} tokens ({d['seq_len_from']})"
            if d["batch_unit"] == "sequences" and result.seq_len else f"batch counts {d['batch_unit']}")
    console.print("columns: " + ", ".join(f"{k}={v!r}" for k, v in cols.items()) + f"; {unit}", highlight=False)
    _law_table(result)
    from ..units import format_count

    cells = Table(title=f"cell optima; 'within': the runs within {100 * s['flat']:g} % of the cell's best loss",
                  title_justify="left")
    for name in ("N", "D", "runs", "LR opt", "batch opt", "method", "LR within", "batch within"):
        cells.add_column(name, justify="left" if name == "method" else "right")
    notes = []
    for c in result.cells:
        mark = ""
        if c.note:
            notes.append(c.note)
            mark = f" [{len(notes)}]"
        cells.add_row(format_count(c.params), format_count(c.tokens), str(c.n_runs), f"{c.lr:.3g}",
                      format_count(c.batch_tokens), c.method + mark,
                      f"{c.flat_lr[0]:.2g}–{c.flat_lr[1]:.2g} ×{c.flat_lr[1] / c.flat_lr[0]:.2g}",
                      f"{format_count(c.flat_batch_tokens[0])}–{format_count(c.flat_batch_tokens[1])}")
    console.print(cells)
    for i, note in enumerate(notes, 1):
        console.print(f"[{i}] {note}", highlight=False)
    comp = Table(title="procedures compared: leave-one-cell-out (refit without each cell, predict its optimum), "
                       "rms log error", title_justify="left")
    for name in ("optimum", "alpha", "beta", "gamma", "fit LR", "LOCO LR", "LOCO LR vs grid", "LOCO batch"):
        comp.add_column(name, justify="left" if name == "optimum" else "right")
    for name, c in result.comparison.items():
        loco = c["loco"]
        comp.add_row(name + (" (used)" if name == s["optimum"] else ""), fmt(c["params"]["lr_coefN"], 3),
                     fmt(c["params"]["lr_coefD"], 3), fmt(c["params"]["bs_coefD"], 3), fmt(c["lr_rms_log"], 3),
                     _factor(loco["lr_rms_log"]), _factor(loco.get("lr_rms_log_vs_grid")),
                     _factor(loco["batch_rms_log"]))
    console.print(comp)
    console.print("LOCO LR: against each procedure's own cell optima; vs grid: against the best runs", highlight=False)


def _factor(rms) -> str:
    return "–" if rms is None or not math.isfinite(rms) else f"{rms:.3f} ×{math.exp(rms):.2f}"


def _law_table(result) -> None:
    from rich.table import Table

    iv = result.intervals()
    table = Table(title="lr_opt = a · N^alpha · D^beta    B_opt = c · D^gamma (tokens)", title_justify="left")
    for name in ("parameter", "value", f"{result.ci:.0%} interval" if iv else "interval", "log form"):
        table.add_column(name, justify="left" if name in ("parameter", "log form") else "right")
    for label, name, exp in (("a", "lr_intercept", True), ("alpha", "lr_coefN", False), ("beta", "lr_coefD", False),
                             ("c", "bs_intercept", True), ("gamma", "bs_coefD", False)):
        value = result.params[name]
        shown = (lambda v: fmt(math.exp(v), 4)) if exp else (lambda v: fmt(v, 4))
        table.add_row(label, shown(value), f"[{shown(iv[name][0])}, {shown(iv[name][1])}]" if iv else "–",
                      f"{name} = {value:.4f}")
    console.print(table)


def render_forecast(fc, json_out: bool) -> None:
    """Print one optimal-hyperparameter forecast (also ``scalefit predict --fit hp.json``)."""
    for message in fc.warnings:
        warn(message)
    if json_out:
        emit_json(fc.to_dict())
        return
    from rich.table import Table

    has = fc.lr_interval is not None
    table = Table(title=f"optimal hyperparameters at N={fc.params:.3g}, D={fc.tokens:.3g} — {fc.source}",
                  title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column(f"{fc.ci:.0%} interval" if has else "interval", justify="right")

    def span(iv, digits=4):
        return f"[{fmt(iv[0], digits)}, {fmt(iv[1], digits)}]" if iv is not None else "–"

    table.add_row("peak learning rate", fmt(fc.lr, 4), span(fc.lr_interval))
    table.add_row("batch size (tokens)", f"{fc.batch_tokens:,.0f}", span(fc.batch_tokens_interval, 3))
    if fc.seq_len:
        table.add_row(f"batch size (sequences of {fc.seq_len:g})", f"{fc.batch_sequences:,.0f}",
                      span(fc.batch_sequences_interval, 3))
    console.print(table)
    if fc.flat_lr:
        console.print(f"flat region: in the fitted cells, LRs from ×{fc.flat_lr[0] / fc.lr:.2f} to "
                      f"×{fc.flat_lr[1] / fc.lr:.2f} of the optimum reached within {100 * fc.flat:g} % of the best "
                      f"loss (median over cells): here {fmt(fc.flat_lr[0], 3)}–{fmt(fc.flat_lr[1], 3)}",
                      highlight=False)
    if not fc.seq_len:
        err_console.print("give --seq-len to see the batch in sequences", highlight=False)


def predict_from_file(fit_path: str, params: float | None, tokens: float | None, *, ci: float | None = None,
                      seq_len: float | None = None, json_out: bool = False) -> None:
    """``scalefit predict --fit hp.json`` and ``scalefit hparams predict``: load, forecast, print."""
    from ..errors import DataError
    from ..hparams import load_hparams

    if params is None or tokens is None:
        raise DataError(f"{fit_path}: an hparams fit forecasts the optimal LR and batch at a model size and a "
                        f"token budget: give --params and --tokens (e.g. --params 7B --tokens 1.4T)")
    render_forecast(load_hparams(fit_path).predict(params, tokens, ci=ci, seq_len=seq_len), json_out)


@app.command("predict")
def predict(
    fit_path: Optional[str] = typer.Option(None, "--fit", "-f", help="An hp.json from `scalefit hparams fit` or "
                                           "`scalefit hparams import`."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Use published values instead: steplaw."),
    params: str = typer.Option(..., "--params", "-N", help="Model size, e.g. 7B."),
    tokens: str = typer.Option(..., "--tokens", "-D", help="Training tokens, e.g. 1.4T."),
    seq_len: Optional[float] = typer.Option(None, "--seq-len", help="Tokens per sequence, for the batch in sequences."),
    ci: Optional[float] = typer.Option(None, "--ci", help="Interval level (default: the fit's)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Optimal peak LR and batch size (tokens and sequences) at a model size and token budget, with intervals."""
    from ..errors import DataError
    from ..hparams import published
    from ._options import echo_size

    n = echo_size(params, "--params", "params")
    d = echo_size(tokens, "--tokens", "tokens")
    if bool(fit_path) == bool(reference):
        raise DataError("give --fit hp.json or --reference steplaw (one of them)")
    if fit_path:
        predict_from_file(fit_path, n, d, ci=ci, seq_len=seq_len, json_out=json_out)
        return
    render_forecast(published(reference, seq_len=seq_len).predict(n, d, ci=ci), json_out)


@app.command("import")
def import_(
    draws: str = typer.Argument(..., help="The authors' bootstrap table (lr_intercept, lr_coefN, lr_coefD, "
                                "bs_intercept, bs_coefD), e.g. steplaw_fitted_bootstrap_params.csv."),
    out: str = typer.Option(..., "--out", "-o", help="Write this hp.json."),
    seq_len: Optional[float] = typer.Option(None, "--seq-len", help="Tokens per sequence, recorded for forecasts."),
    ci: float = typer.Option(0.95, "--ci", help="Interval level."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Make an hp.json from published bootstrap fits; its estimate is their mean (the authors' mean model)."""
    from .._io import check_outputs
    from ..hparams import import_draws, save_hparams

    check_outputs({"out": out}, [draws], force=force)
    result = import_draws(draws, seq_len=seq_len, ci=ci)
    save_hparams(result, out, force=force)
    if json_out:
        emit_json({"out": out, "params": result.params, "n_draws": len(result.draws),
                   "intervals": {k: list(v) for k, v in result.intervals().items()}})
        return
    _law_table(result)
    err_console.print(f"wrote {out} ({len(result.draws)} draws; estimate: {result.estimate})", highlight=False)
