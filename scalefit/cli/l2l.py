"""``scalefit pair`` and ``scalefit translate``: loss-to-loss helpers (Brandfonbrener et al. 2024)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, err_console, fmt


def pair(
    runs: str = typer.Argument(..., help="Runs table: one row per model, losses as columns."),
    x_loss: str = typer.Option(..., "--x-loss", help="Source loss column (e.g. val_loss)."),
    y_loss: Optional[str] = typer.Option(None, "--y-loss", help="Target loss column (default: the same as --x-loss)."),
    x_data: Optional[str] = typer.Option(None, "--x-data", help="Training set of the source runs (value of --data-col)."),
    y_data: Optional[str] = typer.Option(None, "--y-data", help="Training set of the target runs (default: same runs)."),
    data_col: str = typer.Option("data", "--data-col", help="Column naming each run's training set."),
    by: str = typer.Option("params,tokens", "--by", help="Columns that identify a model across training sets."),
    x_name: Optional[str] = typer.Option(None, "--x-name", help="Name of the source loss in the output."),
    y_name: Optional[str] = typer.Option(None, "--y-name", help="Name of the target loss in the output."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output table (.parquet or .csv)."),
    fit_out: Optional[str] = typer.Option(None, "--fit", help="Also fit the paper's way (E's from single-dataset fits, OLS) and write this fit.json."),
    e_law: str = typer.Option("kaplan_e", "--e-law", help="--fit: law whose E gives the entropies (kaplan_e or chinchilla)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="--fit: give an entropy instead of fitting it: --set E_x=1.97."),
    fit_ey: bool = typer.Option(False, "--fit-ey", help="--fit: fit E_y with kappa and K instead of taking it from a single-dataset fit."),
    bootstrap: int = typer.Option(0, "--bootstrap", "-b", help="--fit: resample models; the entropies are refitted in every draw."),
    seed: int = typer.Option(0, "--seed", help="--fit: bootstrap seed."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out / --fit if they exist."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Build a loss-to-loss table: one row per model pair, the two losses side by side.

    Same training set and two loss columns: train-to-test. Two training sets: runs joined on --by
    (params and tokens): train-to-train on val_loss, test-to-test on a shared test column.
    """
    from .._io import check_outputs, write_table
    from ..data import read_table
    from ..errors import DataError
    from ..l2l import fit_pairing
    from ..l2l import pair as make_pairs
    from ._options import parse_assignments

    if not out and not fit_out:
        raise DataError("pair: give --out pairs.parquet (the paired table), --fit l2l.json (the fit), or both")
    check_outputs({"out": out, "fit_out": fit_out}, [runs], force=force)
    given = parse_assignments(set_)
    unknown = set(given) - {"E_x", "E_y"}
    if unknown:
        raise DataError(f"--set {sorted(unknown)[0]}: pair --fit only takes E_x and E_y (kappa and K are fitted)")
    frame = read_table(runs)
    keys = [k.strip() for k in by.split(",") if k.strip()]
    pairs = make_pairs(frame, x_loss=x_loss, y_loss=y_loss, x_data=x_data, y_data=y_data, data_col=data_col,
                       keys=keys, x_name=x_name, y_name=y_name, source=runs)
    xn, yn = pairs.columns[len(keys)], pairs.columns[len(keys) + 1]
    if out:
        write_table(pairs, out, force=force)
    summary = {"out": out, "n_pairs": len(pairs), "x": xn, "y": yn}
    if fit_out:
        res = fit_pairing(frame, x_loss=x_loss, y_loss=y_loss, x_data=x_data, y_data=y_data, data_col=data_col,
                          keys=keys, E_x=given.get("E_x"), E_y=given.get("E_y"), e_law=e_law, fit_ey=fit_ey,
                          n_bootstrap=bootstrap, seed=seed, source=runs)
        result = res.to_fit_result(source=runs)
        result.save(fit_out, force=force)
        summary["fit"] = {"out": fit_out, "params": res.params,
                          "intervals": {k: list(v) for k, v in (res.intervals() or {}).items()}}
    if json_out:
        emit_json(summary if fit_out else {k: summary[k] for k in ("out", "n_pairs", "x", "y")})
        return
    if out:
        console.print(f"{len(pairs)} pairs → {out} (x: {xn}, y: {yn})", highlight=False)
    if fit_out:
        iv = res.intervals() or {}
        text = ", ".join(f"{k}={fmt(v, 5)}" + (f" [{fmt(iv[k][0], 4)}, {fmt(iv[k][1], 4)}]" if k in iv else "")
                         for k, v in res.params.items())
        console.print(f"L_y = K (L_x - E_x)^kappa + E_y on {res.n_pairs} pairs: {text} → {fit_out}", highlight=False)
    elif out:
        err_console.print(f"next: scalefit fit {out} --law loss_to_loss --x {xn} --y {yn}", highlight=False)


def translate(
    source: str = typer.Option(..., "--from", help="fit.json of the source training set's kaplan_e law."),
    via: str = typer.Option(..., "--via", help="fit.json of the train-to-train loss_to_loss fit."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the translated law as fit.json."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the translated parameters as JSON."),
):
    """Translate a scaling law to another training set: alpha' = kappa alpha, beta' = kappa beta,
    A' = A K^(1/(kappa alpha)), B' = B K^(1/(kappa beta)), E' = E_y."""
    from .._io import check_outputs
    from ..l2l import translate_fit
    from ..result import load_fit

    check_outputs({"out": out}, [source, via], force=force)
    result = translate_fit(load_fit(source), load_fit(via))
    if out:
        result.save(out, force=force)
    if json_out:
        emit_json({"law": result.law.name, "params": {n: e.to_dict() for n, e in result.params.items()},
                   "translated": result.settings["translated"]})
        return
    from rich.table import Table

    t = result.settings["translated"]
    table = Table(title=f"{result.law.name} translated via kappa={fmt(t['kappa'])}, K={fmt(t['K'])}")
    table.add_column("param")
    table.add_column("translated", justify="right")
    table.add_column(f"{result.ci:.0%} interval", justify="right")
    for name, e in result.params.items():
        table.add_row(name, fmt(e.value, 6), f"[{fmt(e.low)}, {fmt(e.high)}]" if e.low is not None else "–")
    console.print(table)
    if out:
        err_console.print(f"wrote {out}", highlight=False)
