"""``scalefit report``: a fit as one self-contained HTML page, or Markdown for a pull request."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import emit_json, info


def report_command(
    fit_path: str = typer.Argument(..., help="A fit.json written by `scalefit fit --out`."),
    out: str = typer.Option(..., "--out", "-o", help="Write the report here: report.html (one offline file) or report.md (figures as SVG files beside it)."),
    data: Optional[str] = typer.Option(None, "--data", help="The fitted table (runs.csv or .parquet): draws the fit, the residuals and, for curve laws, each run's observed and predicted curve."),
    where: Optional[List[str]] = typer.Option(None, "--where", help="With --data: keep rows with COLUMN=VALUE, as the fit did (repeatable)."),
    at: Optional[List[str]] = typer.Option(None, "--at", help="Forecast here: params=7B,tokens=1.4T or compute=5.76e23; for a curve law a schedule NAME=SPEC (repeatable)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="html or md (default: from the --out suffix)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the report (and its figure files) if they exist."),
    lr_table: Optional[str] = typer.Option(None, "--lr-table", help="With --data, curve laws: dense table run, step, lr."),
    schedule: Optional[List[str]] = typer.Option(None, "--schedule", help="With --data, curve laws: RUN=SPEC, or SPEC for every run (repeatable)."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="With --data: drop rows with NaN/inf/non-positive values, as the fit did."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (the files written)."),
):
    """Write a report of a fit that a person who never ran scalefit can read: the law, the parameters with
    intervals, the diagnostics in words, figures, forecasts and backtests; the HTML embeds the fit.json."""
    from ..curves import parse_schedule_options
    from ..report import load_data, report_format, write_report
    from ..result import load_fit

    kind = report_format(out, fmt)  # a bad name or format fails before anything is read
    schedules = parse_schedule_options(schedule)
    fit = load_fit(fit_path, law_file or [])
    dataset = note = None
    if data is not None:
        table = data
        if where:  # a multi-experiment table: the rows the fit used, read as `fit --where` reads them
            from ..rowsets import filter_rows
            from ..tables import read_table

            table = filter_rows(read_table(data), where, data)
        dataset, note = load_data(fit, table, source=data, lr_table=lr_table, schedules=schedules,
                                  drop_invalid=drop_invalid)
    written = write_report(fit, out, data=dataset, at=at or [], fmt=kind, data_note=note,
                           inputs=[fit_path, data, lr_table], force=force)
    if json_out:
        emit_json({"format": kind, "written": [str(p) for p in written]})
        return
    for path in written:
        info(f"wrote {path}")
