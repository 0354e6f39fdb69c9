"""``scalefit isoflop``: Chinchilla approach 2 (IsoFLOP profiles) with intervals and its known biases."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, fmt, warn


def _band(q: dict, digits: int = 4) -> str:
    return f"[{fmt(q['low'], digits)}, {fmt(q['high'], digits)}]" if q.get("low") is not None else "–"


def isoflop_command(
    runs: str = typer.Argument(..., help="Runs table (parquet, CSV, JSONL): params, loss, and flops (or budget, or tokens)."),
    budgets: Optional[str] = typer.Option(None, "--budgets", help="Nominal budgets, e.g. 6e18,1e19,3e19: each run joins the nearest within --tol (default: found from the table)."),
    tol: float = typer.Option(0.1, "--tol", help="How far (relative) a run's compute may lie from its budget."),
    min_runs: int = typer.Option(3, "--min-runs", help="Runs a budget needs (at least 3: a parabola)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", "-b", help="Resamples of runs within budgets for the intervals."),
    ci: float = typer.Option(0.95, "--ci", help="Interval level."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resampling."),
    compute: Optional[str] = typer.Option(None, "--compute", "-C", help="Also forecast N_opt and D_opt at this compute, e.g. 5.76e23."),
    col: Optional[List[str]] = typer.Option(None, "--col", help="ROLE=COLUMN mapping (repeatable)."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Drop rows with NaN or non-positive values instead of failing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Fit a parabola of loss against log N per compute budget, take each minimum, and fit N_opt ∝ C^a and
    D_opt ∝ C^b across budgets, with intervals from resampling runs within budgets."""
    from ..data import load_runs, parse_column_mapping
    from ..isoflop import isoflop, parse_budgets
    from ._options import echo_size

    listed = parse_budgets(budgets) if budgets is not None else None
    c = echo_size(compute, "--compute", "FLOPs")
    data = load_runs(runs, columns=parse_column_mapping(col or []), required=["params", "loss", "flops"],
                     drop_invalid=drop_invalid)
    for message in data.dropped:
        warn(message)
    result = isoflop(data, budgets=listed, tol=tol, min_runs=min_runs, n_bootstrap=bootstrap, ci=ci, seed=seed,
                     compute=c)
    for message in result.notes + result.warnings:
        warn(message)
    if json_out:
        emit_json(result.to_dict())
        return
    from rich.table import Table

    from ..units import format_count

    table = Table(title=f"IsoFLOP profiles — {runs} ({result.grouping})", title_justify="left")
    for name in ("C (FLOPs)", "runs", "N trained", "N_opt", f"{result.ci:.0%} CI", "D_opt", "vertex"):
        table.add_column(name, justify="right", no_wrap=True)
    for b in result.budgets:
        band = f"{format_count(b.n_opt_low)}–{format_count(b.n_opt_high)}" if b.n_opt_low is not None else "–"
        table.add_row(f"{b.compute:.3g}", str(b.runs), f"{format_count(b.params_min)}–{format_count(b.params_max)}",
                      format_count(b.n_opt), band, format_count(b.d_opt), f"{b.offset:+.2f}")
    console.print(table)
    console.print(f"N_opt ∝ C^a: a = {fmt(result.a['value'], 4)} {_band(result.a)}    "
                  f"D_opt ∝ C^b: b = {fmt(result.b['value'], 4)} {_band(result.b)}    "
                  f"({result.ci:.0%} intervals, {result.n_bootstrap} resamples of runs within budgets)", highlight=False)
    console.print("vertex: where N_opt lies in the sizes trained (-1 the smallest, 0 the centre, +1 the largest); "
                  "interval –: too many resamples of that budget have no minimum", style="dim")
    fc = result.forecast
    if fc is not None:
        n, d = fc["n_opt"], fc["d_opt"]
        console.print(f"at {fc['compute']:.3g} FLOPs: N_opt = {format_count(n['value'])} {_band(n, 3)}, "
                      f"D_opt = {format_count(d['value'])} {_band(d, 3)}", highlight=False)
