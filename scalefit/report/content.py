"""What a fit report says, built once (:func:`build_report`) as plain blocks (:mod:`~scalefit.report.blocks`)
that :mod:`~scalefit.report.html` and :mod:`~scalefit.report.markdown` render: summary, law, parameters,
diagnostics in words, figures, forecasts and backtests (:mod:`~scalefit.report.forecasts`), provenance.
Also the two inputs a report needs: the fitted table (:func:`load_data`) and the fit.json (:func:`fit_payload`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .. import __version__
from .._io import json_safe
from ..errors import DataError
from .blocks import Bullets, Code, Figure, Paragraph, Report, Section, Table, interval, num, percent
from .forecasts import backtest_section, forecast_section


# ---------------------------------------------------------------------- inputs
def load_data(fit, table, *, source: str | None = None, lr_table=None, schedules: Mapping[str, str] | None = None,
              drop_invalid: bool = False):
    """The table ``fit`` was made from (a path, or a DataFrame named ``source``), read with the fit's recorded
    column mapping (derived columns, such as tokens from FLOPs, are derived again). Returns
    ``(dataset, note)``: the note says whether its content hash matches the one the fit recorded."""
    from ..curves import load_for

    recorded = fit.data_info.get("columns") or {}
    columns = {role: col for role, col in recorded.items() if "(" not in str(col)}  # "(flops / 6 params)": derived
    data = load_for(fit.law, table, columns=columns, lr_table=lr_table, schedules=schedules,
                    drop_invalid=drop_invalid, source=source)
    name = source or data.source
    expected, found = fit.data_info.get("hash"), data.content_hash()
    if expected == found:
        note = f"The data shown ({name}, {len(data)} rows) are the data this fit was made from (content hash {found})."
    else:
        note = (f"The data shown ({name}, content hash {found}) are not the data this fit was made from "
                f"(hash {expected}): the figures compare the fitted law with other runs.")
    return data, note


def fit_payload(fit) -> dict:
    """The fit as the fit.json object with its bootstrap draws inline, so a report alone loads back with
    :func:`scalefit.load_fit`, signed with a fresh checksum. A fit read from a file whose checksum did not
    hold (edited by hand, or unsigned) is embedded as the file says, unsigned anew, so that loading the
    report warns as loading the file does."""
    from .. import fitfile

    path = fit.meta.get("path")
    written = fitfile.read_payload(path) if path and Path(path).is_file() else None
    if written is not None and fit.meta.get("checksum") != "ok":
        payload = dict(written)
    else:
        payload = fit.to_dict()
        if written is not None:  # the version that made the fit, not the one making the report
            payload["scalefit_version"] = written.get("scalefit_version", payload["scalefit_version"])
    if fit.draws is not None:
        payload["draws"] = fit.draws.tolist()
    if written is None or fit.meta.get("checksum") == "ok":
        payload["checksum"] = fitfile.checksum(payload)
    return payload


# ---------------------------------------------------------------------- sections
def _law_section(fit) -> Section:
    law = fit.law
    title = (law.description or "").strip().splitlines()[0] if (law.description or "").strip() else ""
    blocks: list = []
    if title:
        blocks.append(Paragraph(title))
    blocks.append(Code(law.formula))
    if law.citation:
        blocks.append(Paragraph(f"Source: {law.citation}."))
    options = dict(law.options)
    if options:
        blocks.append(Paragraph("Law options: " + ", ".join(f"{k} = {v}" for k, v in options.items()) + "."))
    kind = ("a loss-curve law: it predicts each run's whole loss curve from its learning-rate schedule"
            if law.kind == "curve" else "a point law: it predicts each run's final loss")
    origin = "built into scalefit" if law.origin == "builtin" else f"loaded from {law.origin}"
    blocks.append(Paragraph(f"'{law.name}' is {kind}; it is {origin}."))
    return Section("The law", blocks, "law")


def _param_section(fit) -> Section:
    law, ci = fit.law, fit.ci
    rows = []
    for name, e in fit.params.items():
        notes = []
        if e.status == "fixed":
            notes.append("fixed (not fitted)")
        elif e.status.startswith("tied:"):
            notes.append(f"tied to {e.status[5:]}")
        if e.at_bound:
            lo, hi = law.params[name].bounds
            notes.append(f"AT A BOUND of [{lo:g}, {hi:g}]")
        if name in (fit.diagnostics.get("undetermined") or []):
            notes.append("not determined by the data")
        ok = fit.success
        rows.append([name, num(e.value), interval(e.low, e.high) if ok else "–",
                     num(e.stderr, 3) if ok else "–", "; ".join(notes), law.params[name].doc])
    caption = (f"Intervals: {fit.diagnostics.get('interval', 'not recorded')}. "
               f"'AT A BOUND' means the optimizer stopped at the edge of the range the law allows: the law may "
               f"not describe these data there.")
    blocks: list = [Table(["parameter", "value", f"{ci:.0%} interval", "std. error", "note", "meaning"], rows,
                          caption, [False, True, True, True, False, False])]
    alloc = fit.diagnostics.get("allocation")
    if isinstance(alloc, dict) and fit.success and all(isinstance(alloc.get(k), dict) for k in ("a", "b")):
        blocks.append(Table(["exponent", "value", f"{ci:.0%} interval", "meaning"],
                            [["a", num(alloc["a"].get("value"), 4), interval(alloc["a"].get("low"), alloc["a"].get("high"), 4),
                              "compute-optimal parameters grow as C^a"],
                             ["b", num(alloc["b"].get("value"), 4), interval(alloc["b"].get("low"), alloc["b"].get("high"), 4),
                              "compute-optimal tokens grow as C^b"]],
                            "Compute-optimal allocation exponents implied by the fitted law.", [False, True, True, False]))
    return Section("Fitted parameters", blocks, "parameters")


def _diagnostics_section(fit) -> Section:
    d = fit.diagnostics
    items = []
    r2, rmse = d.get("r2_log"), d.get("rmse_log")
    if not fit.success:
        items.append(f"The fit FAILED: {d.get('message', '')}. Its values are not estimates.")
    if r2 is not None and math.isfinite(r2):
        items.append(f"The law explains {100 * max(r2, 0):.2f} % of the variance of log loss (R² {r2:.5f}); "
                     f"a typical point sits {100 * math.expm1(rmse or 0):.2f} % from the law (RMSE of log loss "
                     f"{num(rmse, 3)}).")
    what = "curves" if fit.law.kind == "curve" else "runs"
    items.append(f"{fit.n_runs} {what}, {fit.n_points} points; objective {num(fit.objective)} "
                 f"({fit.settings.get('loss', 'huber')} on log loss, delta {num(fit.settings.get('delta'), 3)}).")
    best, refined = d.get("n_converged_best"), d.get("n_refined")
    if best is not None and refined:
        verdict = ("the optimum is well determined" if best >= 2 else
                   "the optimum may be poorly determined")
        items.append(f"{best} of {refined} refined starting points (from {d.get('n_starts')}) reached the best "
                     f"objective: {verdict}.")
    at_bound = d.get("at_bound") or []
    items.append("No parameter sits at a bound." if not at_bound else
                 f"At a bound: {', '.join(at_bound)} (the law may not describe these data).")
    weak = d.get("undetermined")
    if weak == []:
        items.append(f"Every free parameter is pinned down by these {what}.")
    blocks: list = [Bullets(items)]
    corr = d.get("correlations")
    ridges = [str(r) for r in (corr.get("ridges") or [])] if isinstance(corr, dict) else []
    if ridges:
        shown = ridges[:MAX_RIDGES] + ([f"... and {len(ridges) - MAX_RIDGES} more pairs"] if len(ridges) > MAX_RIDGES else [])
        blocks += [Paragraph("Parameters that trade off against each other (the data fix a combination better "
                             "than either one):"), Bullets(shown)]
    warns = [str(w) for w in d.get("warnings") or []]
    if warns:
        blocks.append(Paragraph("What to watch:"))
        blocks.append(Bullets(warns))
    worst = d.get("largest_residuals") or []
    if worst:
        rows = [[str(w.get("run")), num(w.get("loss"), 5), num(w.get("predicted"), 5),
                 percent(math.expm1(-w["residual"]) if isinstance(w.get("residual"), (int, float)) else None)]
                for w in worst]
        blocks.append(Table(["run", "observed loss", "law", "observed vs law"], rows,
                            f"The {len(rows)} {what} farthest from the fitted law (largest point of each).",
                            [False, True, True, True]))
    return Section("How well the law fits", blocks, "diagnostics")


def _summary_section(fit) -> Section:
    d = fit.diagnostics
    what = "loss curves" if fit.law.kind == "curve" else "training runs"
    items = [f"The {fit.law.name} law ({fit.law.formula}) was fitted to {fit.n_runs} {what} from "
             f"{fit.data_info.get('source') or 'a table'}."]
    r2 = d.get("r2_log")
    if not fit.success:
        items.append(f"The fit FAILED ({d.get('message', '')}): read nothing below as an estimate.")
    elif r2 is not None and math.isfinite(r2):
        items.append(f"It describes the data: the law explains {100 * r2:.2f} % of the variance of log loss.")
    free = [(n, e) for n, e in fit.params.items() if e.status == "free"]
    if fit.success and free:
        items.append("Fitted values" + (f" with {fit.ci:.0%} intervals" if free[0][1].low is not None else "") + ": "
                     + "; ".join(f"{n} = {num(e.value, 4)}" + (f" {interval(e.low, e.high, 4)}" if e.low is not None else "")
                                 for n, e in free) + ".")
    n_warn = len(d.get("warnings") or [])
    if n_warn:
        items.append(f"{n_warn} thing{'s' if n_warn > 1 else ''} to watch: see 'How well the law fits'.")
    return Section("Summary", [Bullets(items)], "summary")


def _figures_section(fit, data, data_note: str | None) -> Section:
    from ..law import CurveLaw
    from ..plot import plot_fit, plot_residuals

    law = fit.law
    blocks: list = []
    if data_note:
        blocks.append(Paragraph(data_note))
    if isinstance(law, CurveLaw):
        caption = ("Observed loss (points) against training step for each run, and the fitted law's loss curve "
                   "for the same learning-rate schedule (lines). Early, high losses are cut off the axis.")
        title = "Observed and predicted loss curves"
    elif law.kind == "point" and {"params", "tokens"} <= set(law.inputs):
        caption = ("Final loss of each run against its training compute (6 x parameters x tokens), coloured by "
                   "model size. Lines: the fitted law along each model size, with its bootstrap band; dashed red: "
                   "the lowest loss reachable at each compute (compute-optimal frontier); grey: the fitted range.")
        title = "The fitted law and the runs"
    else:
        caption = "Each run's observed value against the law's prediction; the dashed line is perfect agreement."
        title = "Observed against predicted"
    blocks.append(Figure("fit", title, caption, plot_fit(fit, data)))
    blocks.append(Figure("residuals", "Residuals",
                         "How far each observation sits from the law, in percent. Points scattered evenly around "
                         "zero are noise; a trend means the law's shape misses the data.",
                         plot_residuals(fit, data)))
    if isinstance(law, CurveLaw):
        blocks.append(_final_loss_table(fit, data))
    return Section("The fit against the data", blocks, "figures")


def _final_loss_table(fit, data) -> Table:
    steps, runs, y = data.column("step"), data.run_names, data.column(fit.law.target)
    pred = fit.evaluate(data, draws=False).value
    rows = []
    for run in dict.fromkeys(runs):
        m = np.flatnonzero(runs == run)
        last = m[np.argmax(steps[m])]
        rows.append([str(run), f"{int(steps[last]):,}", num(y[last], 5), num(pred[last], 5),
                     percent(y[last] / pred[last] - 1)])
    return Table(["run", "last step", "observed loss", "law", "observed vs law"], rows,
                 "Each run's last logged loss against the law.", [False, True, True, True, True])


def _span(role: str, x) -> str:
    return f"{int(x):,}" if role == "step" and isinstance(x, (int, float)) and math.isfinite(x) else num(x, 4)


def _provenance_section(fit, payload: dict, embedded: bool) -> Section:
    info, s, units = fit.data_info, fit.settings, fit.units
    ranges = info.get("ranges") or {}
    rows = [
        ["fitted with", f"scalefit {payload.get('scalefit_version') or '?'}"
                        f"{', ' + fit.meta['created'] if fit.meta.get('created') else ''}"],
        ["report made with", f"scalefit {__version__}"],
        ["law", f"{fit.law.name} ({fit.law.origin}; source hash {fit.meta.get('law_source_hash') or fit.law.source_hash()})"],
        ["data", f"{info.get('source', '?')}: {info.get('n_rows', '?')} rows, content hash {info.get('hash', '?')}"],
        ["columns", ", ".join(f"{role} = {col}" for role, col in (info.get("columns") or {}).items()) or "–"],
        ["fitted range", "; ".join(f"{role} {_span(role, lo)} to {_span(role, hi)}" for role, (lo, hi) in ranges.items())
         or "–"],
        ["units", ", ".join(f"{k} {v}" for k, v in units.items() if v) or "not recorded"],
        ["settings", f"loss {s.get('loss')}, delta {num(s.get('delta'), 3)}, seed {s.get('seed')}, "
                     f"{s.get('n_bootstrap', 0)} bootstrap draws ({s.get('bootstrap_method', '–')}), "
                     f"interval {s.get('interval', '–')} at {fit.ci:.0%}"],
    ]
    fixed, ties = s.get("fixed") or {}, s.get("ties") or {}
    if fixed or ties:
        rows.append(["fixed / tied", ", ".join([f"{k} = {v:g}" for k, v in fixed.items()] +
                                               [f"{k} = {v}" for k, v in ties.items()])])
    rows.append(["fit file", f"{fit.meta.get('path') or 'not saved'} (checksum {fit.meta.get('checksum') or 'new'})"])
    blocks: list = [Table(["", ""], rows, "", [False, False])]
    if embedded:
        blocks.append(Paragraph(
            "This report is also the fit: the complete fit.json (with its bootstrap draws) is embedded in it as "
            "a JSON script element with id 'fit'. Save that element's text as fit.json and "
            "scalefit.load_fit reads it back, predicting identically."))
    return Section("Provenance", blocks, "provenance")


# ---------------------------------------------------------------------- the report
def build_report(fit, data=None, *, at: Iterable = (), data_note: str | None = None,
                 embed: bool = True) -> Report:
    """Every section of a fit's report. ``data``: the fitted table (a Dataset) for figures; ``at``: forecast
    points (``"params=7B,tokens=1.4T"``, or mappings; for a curve law, schedule specs ``"NAME=SPEC"``);
    ``data_note``: what to say about the data (see :func:`load_data`)."""
    sections = [_summary_section(fit), _law_section(fit), _param_section(fit), _diagnostics_section(fit)]
    if data is not None:
        sections.append(_figures_section(fit, data, data_note))
    else:
        sections.append(Section("The fit against the data", [Paragraph(
            "No figures: give the fitted table (data=...) to draw the law against the runs and its residuals.")],
            "figures"))
    for extra in (forecast_section(fit, at), backtest_section(fit)):
        if extra is not None:
            sections.append(extra)
    payload = fit_payload(fit)
    sections.append(_provenance_section(fit, payload, embed))
    source = fit.data_info.get("source") or "a table"
    created = fit.meta.get("created")
    subtitle = (f"{fit.n_runs} {'curves' if fit.law.kind == 'curve' else 'runs'} from {source}"
                f"{', fitted ' + created if created else ''} · law: {fit.law.formula}")
    alerts = [] if fit.success else [f"FIT FAILED: {fit.diagnostics.get('message', '')}. The values below are not "
                                     f"estimates."]
    if fit.meta.get("checksum") == "mismatch":
        alerts.append(f"{fit.meta.get('path')} was changed after scalefit wrote it (checksum mismatch): its numbers "
                      f"may have been edited by hand.")
    alert = " ".join(alerts) or None
    text = json.dumps(json_safe(payload), indent=1, allow_nan=False) if embed else ""
    return Report(f"Scaling-law fit: {fit.law.name}", subtitle, alert, sections, text)


FORMATS = ("html", "md")
MAX_RIDGES = 4  # trade-off sentences shown; a 7-parameter law can have a dozen
_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def report_format(out, fmt: str | None = None) -> str:
    """``fmt`` (html or md), or the one ``out``'s suffix names."""
    from ..errors import option_error

    if fmt is not None:
        if fmt not in FORMATS:
            raise option_error("fmt", fmt, "use html or md")
        return fmt
    found = _SUFFIXES.get(Path(out).suffix.lower())
    if found is None:
        raise DataError(f"{out}: name the report .html or .md, or give fmt='html' or fmt='md'", options=("fmt",))
    return found
