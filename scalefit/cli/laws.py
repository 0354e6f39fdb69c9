"""``scalefit laws list|show``: what laws exist, where they came from, and their parameters."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, fmt, line, styled

app = typer.Typer(no_args_is_help=True, help="List the available laws and show one in detail.")

LawFileOpt = typer.Option(None, "--law-file", help="Also load laws from this Python file (repeatable).")


@app.command("list")
def list_laws(
    law_file: Optional[List[str]] = LawFileOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table."),
):
    """Every registered law: name, inputs, parameters and origin."""
    from ..registry import all_laws, register_file

    for path in law_file or []:
        register_file(path)
    laws = all_laws()
    if json_out:
        emit_json(
            [
                {"name": x.name, "kind": x.kind, "inputs": list(x.inputs), "params": x.param_names, "origin": x.origin}
                for x in sorted(laws.values(), key=lambda x: x.name)
            ]
        )
        return
    from rich.table import Table

    table = Table(title="scalefit laws")
    for col in ("law", "kind", "formula", "inputs", "params", "origin"):
        table.add_column(col)
    for x in sorted(laws.values(), key=lambda x: x.name):
        table.add_row(x.name, x.kind, x.formula, ", ".join(x.inputs), ", ".join(x.param_names), x.origin)
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Law name (see `scalefit laws list`)."),
    law_file: Optional[List[str]] = LawFileOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
):
    """Formula, citation, parameters with bounds and starting grid, and published reference values."""
    from ..registry import get_law

    law = get_law(name, law_file or [])
    if json_out:
        emit_json(law.to_dict())
        return
    from rich.table import Table

    console.print(line(styled(law.name, "bold"), f"  ({law.kind} law, {law.origin})"))
    console.print(f"  {law.formula}")
    if law.citation:
        console.print(line("  ", styled(law.citation, "dim")))
    console.print(f"  inputs: {', '.join(law.inputs)}  ->  {law.target}")
    table = Table(title="parameters")
    for col in ("name", "meaning", "bounds", "space", "starting grid", *law.reference):
        table.add_column(col)
    for pname, p in law.params.items():
        refs = [fmt(law.reference[s][pname], 6) for s in law.reference]
        grid = ", ".join(fmt(v, 3) for v in p.init)
        table.add_row(pname, p.doc, f"[{fmt(p.bounds[0], 3)}, {fmt(p.bounds[1], 3)}]",
                      "log" if p.log else "linear", grid, *refs)
    console.print(table)
    if law.reference_units:
        console.print("  reference units: " + ", ".join(f"{k}={v}" for k, v in law.reference_units.items()))
    if law.description:
        console.print()
        console.print(law.description, highlight=False, markup=False)
