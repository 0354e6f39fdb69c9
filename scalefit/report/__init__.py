"""Fit reports a person who never ran scalefit can read: one self-contained HTML file, or Markdown for a
pull request or a CI summary.

* :mod:`~scalefit.report.content`: the sections, built once (:func:`build_report`) from the blocks of
  :mod:`~scalefit.report.blocks`: a summary, the law, the fitted parameters with intervals and at-bound
  flags, the diagnostics in words, the fit and residual figures, the forecasts asked for and the backtests
  the fit carries (:mod:`~scalefit.report.forecasts`), and where it all came from;
* :mod:`~scalefit.report.html`: one HTML file that opens offline, fit.json embedded;
* :mod:`~scalefit.report.markdown`: GitHub-flavoured Markdown, figures as SVG files beside it.

``write_report(fit, "report.html", data=dataset, at=["params=7B,tokens=1.4T"])`` is what ``scalefit
report`` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .blocks import Report
from .content import FORMATS, build_report, fit_payload, load_data, report_format
from .forecasts import check_at

__all__ = ["FORMATS", "Report", "build_report", "check_at", "check_markdown", "fit_payload", "load_data",
           "report_format", "write_report", "render_html", "render_markdown"]


def render_html(report: Report) -> str:
    from .html import render_html as _render

    return _render(report)


def render_markdown(report: Report, image_stem: str) -> tuple[str, dict[str, str]]:
    from .markdown import render_markdown as _render

    return _render(report, image_stem)


def check_markdown(report, new: str = "new fit", baseline: str = "baseline") -> str:
    """A baseline comparison (:func:`scalefit.check.compare`) as a Markdown table, for a CI summary."""
    from .markdown import check_markdown as _render

    return _render(report, new, baseline)


def write_report(fit, out, *, data=None, at: Iterable = (), fmt: str | None = None, data_note: str | None = None,
                 inputs: Iterable = (), force: bool = False) -> list[Path]:
    """Write ``fit``'s report to ``out`` (HTML or Markdown, from ``fmt`` or the suffix); Markdown figures go
    beside it as ``<stem>_<figure>.svg``. Every output is checked before any work (none may exist unless
    ``force``, none may be one of ``inputs``) and written atomically. Returns the paths written, report first."""
    from .._io import atomic_write, check_outputs

    out = Path(out)
    kind = report_format(out, fmt)
    at = check_at(fit, at)
    # Which figures a report has is known before drawing them: check every name they will take.
    planned = {"out": out}
    if kind == "md":
        from ..law import CurveLaw

        names = (["fit", "residuals"] if data is not None else []) + (
            ["forecast"] if at and isinstance(fit.law, CurveLaw) else [])
        planned.update({f"figure {n}": out.with_name(f"{out.stem}_{n}.svg") for n in names})
    check_outputs(planned, [p for p in inputs if p is not None], force=force)
    report = build_report(fit, data, at=at, data_note=data_note, embed=kind == "html")
    if kind == "html":
        return [atomic_write(out, render_html(report), force=force)]
    text, images = render_markdown(report, out.stem)
    written = [atomic_write(out.with_name(name), svg, force=force) for name, svg in images.items()]
    return [atomic_write(out, text, force=force), *written]
