"""``scalefit check``: fail CI when a refitted law drifts from its baseline fit."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._output import console, emit_json, fmt, info, styled, warn


def check_command(
    ctx: typer.Context,
    fit_path: str = typer.Argument(..., help="The new fit.json (from `scalefit fit --out`)."),
    baseline: str = typer.Option(..., "--baseline", help="The baseline fit.json to compare against."),
    at: Optional[List[str]] = typer.Option(None, "--at", help="Also compare the loss forecast here: params=7B,tokens=1.4T (repeatable)."),
    tol: Optional[List[str]] = typer.Option(None, "--tol", help="Absolute tolerance, overriding the rule: --tol alpha=0.01 (repeatable; 'loss' = every forecast)."),
    rtol: Optional[List[str]] = typer.Option(None, "--rtol", help="Relative tolerance: --rtol E=0.5% (repeatable)."),
    rule: str = typer.Option("interval", "--rule", help="interval: new estimate inside the baseline's interval; overlap: the intervals overlap."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    junit: Optional[str] = typer.Option(None, "--junit", help="Also write a JUnit XML report (one test case per quantity; replaced each run)."),
    report_format: Optional[str] = typer.Option(None, "--report", help="md: print the comparison as a GitHub-flavoured Markdown table instead (for a CI job summary: >> $GITHUB_STEP_SUMMARY)."),
    update: bool = typer.Option(False, "--update-baseline", help="Accept the new fit: rewrite the baseline atomically, keeping the old one as BASELINE.<time>.prev."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file (repeatable)."),
):
    """Compare a fit with a baseline: exit 0 within tolerance, 1 on drift, 2 when they cannot be compared."""
    import sys
    from pathlib import Path

    from .._io import atomic_write
    from ..check import compare, parse_tolerances, update_baseline
    from ..errors import CheckFailed, DataError
    from ..registry import register_file
    from ..result import load_fit
    from ._options import to_flags

    if report_format not in (None, "md"):
        raise DataError(f"--report {report_format}: the one report format is md (Markdown)")
    if report_format and json_out:
        raise DataError("give --json or --report md, not both")
    for path in law_file or []:
        register_file(path)
    if update:
        if Path(baseline).exists():
            try:
                _print(compare(load_fit(fit_path), load_fit(baseline), at=at or [],
                               tol=parse_tolerances(tol, "tol"), rtol=parse_tolerances(rtol, "rtol"), rule=rule))
            except DataError as exc:
                warn(f"not comparable with the old baseline ({to_flags(str(exc), exc.options, ctx.command)}); "
                     "replacing it anyway")
        kept = update_baseline(fit_path, baseline)
        info(f"baseline {baseline} updated from {fit_path}" + (f"; previous kept as {kept}" if kept else ""))
        return
    report = compare(load_fit(fit_path), load_fit(baseline), at=at or [],
                     tol=parse_tolerances(tol, "tol"), rtol=parse_tolerances(rtol, "rtol"), rule=rule)
    if junit:
        _refuse_clobber(junit, fit_path, baseline)
        atomic_write(junit, report.to_junit(f"scalefit check {fit_path} vs {baseline}"), force=True,
                     remedy="another --junit path")
    if json_out:
        emit_json(report.to_dict())
    elif report_format == "md":
        from ..report import check_markdown

        sys.stdout.write(check_markdown(report, new=fit_path, baseline=baseline))
        if junit:
            info(f"wrote {junit}")
    else:
        _print(report)
        if junit:
            info(f"wrote {junit}")
    for note in report.notes:
        info(note)
    if not report.passed:
        names = ", ".join(r.name for r in report.drifted)
        raise CheckFailed(f"{len(report.drifted)} of {len(report.rows)} quantities drifted from {baseline}: {names} "
                          f"(accept the new fit with --update-baseline)")


def _print(report) -> None:
    from rich.table import Table

    rule = {"interval": f"new value inside the baseline's {report.ci:.0%} interval",
            "overlap": f"new and baseline {report.ci:.0%} intervals overlap"}[report.rule]
    table = Table(title=f"check: drift unless {rule} (or within --tol/--rtol)", title_justify="left")
    for col, justify in (("quantity", "left"), ("baseline", "right"), ("new", "right"), ("change", "right"),
                         ("allowed", "left"), ("verdict", "left")):
        table.add_column(col, justify=justify)
    for r in report.rows:
        rel = f" ({100 * r.rel_change:+.2f}%)" if r.rel_change is not None else ""
        verdict = styled("ok", "green") if r.ok else styled("DRIFT", "bold red")
        table.add_row(r.name, fmt(r.baseline, 6), fmt(r.new, 6), f"{r.change:+.3g}{rel}", r.allowed, verdict)
    console.print(table)


def _refuse_clobber(junit: str, *inputs: str) -> None:
    """--junit replaces its report each run, but never an input or a file that is not a JUnit report."""
    import os
    from pathlib import Path

    from ..errors import DataError

    path = Path(junit)
    if any(os.path.lexists(p) and path.exists() and path.resolve() == Path(p).resolve() for p in inputs):
        raise DataError(f"--junit {junit}: that is one of the fits being compared; name another file")
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip()
        if not head.startswith(b"<?xml") and not head.startswith(b"<testsuite"):
            raise DataError(f"--junit {junit}: exists and is not a JUnit report; refusing to replace it")
