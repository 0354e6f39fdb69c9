"""The report's forecasts (the points or schedules asked for) and backtests (what the fit recorded)."""

from __future__ import annotations

import math
from typing import Iterable

from .blocks import Bullets, Figure, Paragraph, Section, Table, count, interval, num, percent


def check_at(fit, at: Iterable) -> list:
    """The forecast points ``at`` (see :func:`build_report`), each checked before any work: a point law's
    ``ROLE=SIZE`` pairs within the ranges a forecast accepts, a curve law's schedule specs parsed."""
    from ..check import parse_point
    from ..curves import named_spec
    from ..forecast import check_input
    from ..law import CurveLaw
    from ..schedule import parse_schedule

    out = []
    for item in at:
        if isinstance(fit.law, CurveLaw):
            parse_schedule(named_spec(item)[1])
        elif isinstance(item, str):
            for role, value in parse_point(item).items():
                check_input(role, value, "at")
        out.append(item)
    return out


def forecast_section(fit, at: Iterable) -> Section | None:
    at = list(at)
    if not at:
        return None
    from ..law import CurveLaw

    if isinstance(fit.law, CurveLaw):
        return _schedule_forecasts(fit, at)
    return _point_forecasts(fit, at)


def _point_forecasts(fit, at: list) -> Section:
    from ..check import parse_point
    from ..forecast import forecast

    ci = fit.ci
    kinds = ["confidence"] + (["prediction"] if fit.diagnostics.get("residual_scale_log") is not None else [])
    if fit.extrapolation_errors:
        kinds.append("calibrated")
    rows, notes = [], []
    for item in at:
        point = parse_point(item) if isinstance(item, str) else dict(item)
        label = item if isinstance(item, str) else ", ".join(f"{k}={v:.4g}" for k, v in point.items())
        common = dict(ci=ci, ranges=fit.data_info.get("ranges"), residual_scale=fit.diagnostics.get("residual_scale_log"),
                      stretch=fit.stretch, calibration=fit.extrapolation_errors, **point)
        results = {k: forecast(fit.law, fit.theta, fit.draws, interval=k, **common) for k in kinds}
        f = results["confidence"]
        mode = "" if f.mode == "given" else f" ({f.mode})"
        rows.append([label + mode, count(f.params.value), count(f.tokens.value), num(f.compute.value, 3),
                     num(f.loss.value, 5)] + [interval(results[k].loss.low, results[k].loss.high, 4) for k in kinds])
        notes.extend(f"{label}: {w}" for w in f.warnings if f"{label}: {w}" not in notes)
    head = ["asked", "params", "tokens", "FLOPs", "loss"] + [f"{ci:.0%} {k}" for k in kinds]
    words = {"confidence": "where the law's mean loss lies (parameter uncertainty only)",
             "prediction": "the loss one new run would observe (adds the run-to-run scatter)",
             "calibrated": "the prediction interval widened by the law's own error beyond the fitted budgets, "
                           "measured by backtests"}
    caption = "Intervals: " + "; ".join(f"{k}: {words[k]}" for k in kinds) + "."
    if fit.draws is None:
        caption = "The fit has no bootstrap draws, so forecasts have no intervals."
    blocks: list = [Table(head, rows, caption, [False, True, True, True, True] + [True] * len(kinds))]
    if notes:
        blocks.append(Bullets(notes))
    return Section("Forecasts", blocks, "forecasts")


def _schedule_forecasts(fit, at: list) -> Section:
    from ..curves import named_spec
    from ..plot import plot_schedules
    from ..schedule import curve_params, predict_for

    params = curve_params(fit=fit, source=str(fit.meta.get("path") or "this fit"))
    rows, notes, lrs = [], [], {}
    for item in at:
        name, spec = named_spec(item)
        if name is None:  # a bare spec: named by its kind and length
            from ..schedule import parse_schedule

            parsed = parse_schedule(spec)
            name = f"{parsed.kind} {parsed.steps:,} steps"
        pred = predict_for(params, name.strip(), spec.strip())
        lo_hi = pred.final_loss_interval or (None, None)
        rows.append([name.strip(), f"{pred.final_step + 1:,}", num(pred.final_loss, 5), interval(*lo_hi), pred.interval])
        notes.extend(pred.warnings)
        lrs[name.strip()] = pred.lr
    blocks: list = [Table(["schedule", "steps", "predicted final loss", f"{fit.ci:.0%} interval", "interval kind"], rows,
                          "The law's final loss under each schedule asked for. Calibrated intervals add the errors "
                          "the backtests below measured; prediction intervals add a new run's offset from the law.",
                          [False, True, True, True, False])]
    if notes:
        blocks.append(Bullets(notes))
    blocks.append(Figure("forecast", "Forecast loss curves",
                         "Top: the learning rate of each schedule asked for; bottom: the loss the fitted law predicts "
                         "under it, with the final value in the legend.",
                         plot_schedules(fit.law, fit.theta, lrs, None)))
    return Section("Forecasts", blocks, "forecasts")


def _ordinal(i: int) -> str:
    """0 -> "largest", 1 -> "2nd largest", ..."""
    if i == 0:
        return "largest"
    n = i + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} largest"


def backtest_section(fit) -> Section | None:
    from ..stats import model_error_halfwidth

    record = fit.extrapolation_errors
    if not isinstance(record, dict):
        return None
    ci = fit.ci
    blocks: list = []
    if "shape" in record:  # curve law: leave one curve out, and forecast each curve's second half
        rows = [["leave this curve out (a new schedule)", f"{r:.2f}x", percent(math.expm1(e))]
                for e, r in record.get("shape") or []]
        rows += [["fit the first half, forecast the end", f"{r:.2f}x", percent(math.expm1(e))]
                 for e, r in record.get("horizon") or []]
        blocks.append(Paragraph(
            "How far to trust a forecast: the law was refitted without each curve in turn and on the first half "
            "of every curve, and each held-out final loss was forecast. These errors are what a calibrated "
            "interval adds to a forecast."))
        h1, h2 = (model_error_halfwidth(record, r, ci) for r in (1.0, 2.0))
        adds = ("unbounded: too few backtests to measure the error" if math.isinf(h1) else
                f"±{100 * h1:.2f} % (log) at the fitted horizon and ±{100 * h2:.2f} % at twice it")
        blocks.append(Table(["backtest", "forecast horizon / fitted horizon", "forecast error (final loss)"], rows,
                            f"Calibrated {ci:.0%} intervals add {adds}.", [False, True, True]))
    else:  # point law: next-budget backtests
        per_fold = record.get("runs_per_fold") or []
        rows = [[_ordinal(i) + " budget", f"{r:.3g}x", str(per_fold[i]) if i < len(per_fold) else "–", percent(math.expm1(e))]
                for i, (e, r) in enumerate(record.get("horizon") or [])]
        blocks.append(Paragraph(
            f"How far to trust a forecast beyond the data: the law was refitted without each of the largest "
            f"{'compute budgets' if record.get('by', 'compute') == 'compute' else 'model sizes'} in turn and "
            f"forecast it from the runs below; the mean error of each held-out budget is below."))
        h10 = model_error_halfwidth(record, 10.0, ci)
        adds = ("unbounded beyond the fitted range (fewer than 2 budgets could be backtested)" if math.isinf(h10)
                else f"±{100 * h10:.2f} % (log) at 10x the largest fitted {record.get('by', 'compute')}")
        blocks.append(Table(["held out", "its budget / largest fitted", "runs", "mean forecast error"], rows,
                            f"Calibrated {ci:.0%} prediction intervals add {adds}, nothing inside the fitted range.",
                            [False, True, True, True]))
    if record.get("notes"):
        blocks.append(Bullets([str(n) for n in record["notes"]]))
    return Section("Backtests", blocks, "backtests")
