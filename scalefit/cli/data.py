"""``scalefit data check``: validate a runs table without fitting."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, line, styled, warn

app = typer.Typer(no_args_is_help=True, help="Inspect and validate run tables.")


@app.command("check")
def check(
    runs: str = typer.Argument(..., help="Runs table: parquet, CSV or JSONL."),
    law: Optional[str] = typer.Option(None, "--law", "-l", help="Also check the columns this law needs."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file."),
    col: Optional[List[str]] = typer.Option(None, "--col", help='Map a role to a column: --col params="Model Size".'),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Report invalid rows as dropped instead of failing."),
    lr_table: Optional[str] = typer.Option(None, "--lr-table", help="Curve laws: dense table run, step, lr."),
    schedule: Optional[List[str]] = typer.Option(None, "--schedule",
                                                 help="Curve laws: RUN=SPEC, or SPEC for every run (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Read and validate RUNS: column roles found, value ranges, rows that would be dropped.

    A curve table (``--law`` a curve law, ``--lr-table`` or ``--schedule`` given, or a table with step and lr
    columns, as ``scalefit import`` writes) is checked as ``fit`` reads it, with those LR sources.
    """
    from ..data import from_frame, parse_column_mapping
    from ..errors import DataError
    from ..tables import read_table

    required = ["loss"]
    law_obj = None
    if law:
        from ..registry import get_law

        law_obj = get_law(law, law_file or [])
        required = [*law_obj.inputs, law_obj.target]
    table = runs  # read once: a table of unknown kind is read to look at its columns, then checked as it is
    if law_obj is not None:
        curve = law_obj.kind == "curve"
    elif lr_table or schedule:
        curve = True
    else:
        table = read_table(runs)
        curve = _looks_like_curves(table, runs, parse_column_mapping(col or []))
    if curve:
        from ..curves import load_curves, parse_schedule_options

        data = load_curves(table, source=runs, columns=parse_column_mapping(col or []), drop_invalid=drop_invalid,
                           lr_table=lr_table, schedules=parse_schedule_options(schedule))
    else:
        if lr_table or schedule:
            raise DataError("--lr-table and --schedule describe LR sequences: use them with --law and a curve law "
                            "(e.g. --law multipower)")
        data = from_frame(read_table(runs) if table is runs else table, source=runs,
                          columns=parse_column_mapping(col or []), required=required, drop_invalid=drop_invalid)
        if law_obj is not None:
            law_obj.check_identifiable(data)
    for dropped in data.dropped:
        warn(dropped)
    summary = {
        "file": runs,
        "rows": len(data),
        "runs": data.n_runs,
        "columns": data.columns,
        "ranges": data.ranges(),
        "dropped": data.dropped,
        "law": law_obj.name if law_obj else None,
        "curves": curve,
        "ok": True,
    }
    if curve:
        summary["lr_source"] = data.frame.attrs.get("lr_source", {})
    if json_out:
        emit_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"{runs}: {len(data)} rows, {data.n_runs} runs", title_justify="left")
    table.add_column("role")
    table.add_column("column")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    ranges = data.ranges()
    for role, column in data.columns.items():
        lo, hi = ranges.get(role, (None, None))
        table.add_row(role, column, f"{lo:.4g}" if lo is not None else "", f"{hi:.4g}" if hi is not None else "")
    console.print(table)
    if law_obj:
        done = f": the columns law '{law_obj.name}' needs are present and valid"
    elif curve:
        done = ": a curve table; every run has its LR at every step, as curve laws (e.g. multipower) need"
    else:
        done = ""
    console.print(line(styled("ok", "green"), done))


def _looks_like_curves(frame, source: str, columns: dict) -> bool:
    """A table with a step and an LR column (as ``scalefit import`` writes) is a curve table."""
    from ..data import from_frame

    found = from_frame(frame, source=source, columns=columns, derive_compute=False).columns
    return "step" in found and "lr" in found
