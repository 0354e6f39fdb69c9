"""How often a point law's 95 % prediction intervals cover the next compute budget, plain and calibrated
(issue #12 part 4 acceptance), on Epoch's Chinchilla table and Gadre et al.'s over-training grid.

    python benchmarks/isoflop_coverage.py [--experiments 6] [--draws 200] [--sets epoch,rpj,c4_original,rw_original]

Each experiment holds out one compute budget (the runs within a factor 1.25 below the largest not yet held
out, :func:`scalefit.backtest.run_budgets`) and every run above it: the first experiment holds out the
largest budget, the next rolls back one budget, and so on. Chinchilla is fitted on every run more than a
factor 1.25 below the held-out budget, with a bootstrap over runs (``--draws``), and calibrated on that
training part only (:func:`scalefit.backtest.calibrate_points`: next-budget backtests inside it). Each
held-out run's observed loss is then checked against the plain prediction interval
(``interval="prediction"``) and the calibrated one (``interval="calibrated"``), through
``FitResult.evaluate`` exactly as ``scalefit predict`` gets them. Nothing is tuned on the held-out runs.
Writes benchmarks/results/isoflop_coverage.md.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "isoflop_coverage.md"
GADRE_SETS = ("rpj", "c4_original", "rw_original")


def load(name: str):
    from scalefit.data import from_frame

    if name == "epoch":  # as tests/conftest.py: the 5 highest losses dropped, as Epoch does
        df = pd.read_csv(SHARED / "chinchilla" / "svg_extracted_data.csv")
        df = df[df["loss"] < sorted(df["loss"])[-5]].reset_index(drop=True)
        return from_frame(df, source="epoch (Chinchilla, digitised)",
                          columns={"params": "Model Size", "flops": "Training FLOP"},
                          required=["params", "tokens", "loss"])
    df = pd.read_csv(SHARED / "gadre" / "gadre2024_final_losses.csv")
    df = df[df["dataset"] == name].reset_index(drop=True)
    return from_frame(df, source=f"gadre {name} (C4 val loss)",
                      columns={"params": "N", "tokens": "D", "loss": "loss_c4_val", "run": "name"},
                      required=["params", "tokens", "loss"])


def experiment(data, train_runs, test_runs, draws: int, seed: int) -> dict:
    """Fit + calibrate on the training runs, score the held-out runs' last rows under both intervals."""
    from scalefit.backtest import calibrate_points
    from scalefit.fit import fit

    codes = data.run_codes
    train, test = data.subset(train_runs[codes]), data.subset(test_runs[codes])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit("chinchilla", train, n_bootstrap=draws, seed=seed)
        res = calibrate_points(res, train)
        plain = res.evaluate(test, interval="prediction")
        cal = res.evaluate(test, interval="calibrated")
    y = test.column("loss")
    ratio = test.column("flops") / train.column("flops").max()
    record = res.extrapolation_errors
    return {"n_train": int(train.n_runs), "n_test": int(len(y)), "folds": record["folds"], "runs": record["runs"],
            "ratio": ratio, "error": np.log(plain.value / y),
            "plain_in": (plain.low <= y) & (y <= plain.high), "cal_in": (cal.low <= y) & (y <= cal.high),
            "plain_w": (plain.high - plain.low) / plain.value, "cal_w": (cal.high - cal.low) / cal.value,
            "seconds": time.perf_counter() - t0}


def run_set(name: str, n_exp: int, draws: int) -> list[dict]:
    from scalefit.backtest import BUDGET_TOL, budget_folds, run_budgets

    data = load(name)
    value, group = run_budgets(data, "compute", BUDGET_TOL)
    rows = []
    for i, (train_runs, test_runs) in enumerate(budget_folds(value, group, BUDGET_TOL)[:n_exp]):
        r = experiment(data, train_runs, test_runs, draws, seed=i)
        r.update(set=name, exp=i + 1, budget=(float(value[test_runs].min()), float(value[test_runs].max())))
        rows.append(r)
        print(f"{name} exp {i + 1}: budget {r['budget'][1]:.3g}, {r['n_train']} runs fitted, {r['folds']} folds, "
              f"plain {int(r['plain_in'].sum())}/{r['n_test']}, calibrated {int(r['cal_in'].sum())}/{r['n_test']} "
              f"({r['seconds']:.1f} s)", flush=True)
    return rows


def pct(x) -> str:
    return f"{100 * np.mean(x):.0f} %" if len(x) else "–"


def summary_row(label: str, rows: list[dict]) -> str:
    cat = {k: np.concatenate([r[k] for r in rows]) for k in ("plain_in", "cal_in", "plain_w", "cal_w", "error", "ratio")}
    n = len(cat["plain_in"])
    return (f"| {label} | {len(rows)} | {n} | {int(cat['plain_in'].sum())}/{n} ({pct(cat['plain_in'])}) | "
            f"{int(cat['cal_in'].sum())}/{n} ({pct(cat['cal_in'])}) | {100 * np.median(cat['plain_w']):.2f} % | "
            f"{100 * np.median(cat['cal_w']):.2f} % | {100 * np.median(np.abs(cat['error'])):.2f} % | "
            f"{np.median(cat['ratio']):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=6, help="budgets held out in turn per data set")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--sets", default="epoch," + ",".join(GADRE_SETS))
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = [r for name in args.sets.split(",") for r in run_set(name, args.experiments, args.draws)]
    head = ("| data set | experiments | held-out runs | plain 95 % PI covers | calibrated covers | plain median "
            "width | calibrated median width | median abs error | median ratio |\n|---|---|---|---|---|---|---|---|---|")
    lines = ["# Next-budget coverage of point-law prediction intervals (Chinchilla law)", "",
             f"`python benchmarks/isoflop_coverage.py --experiments {args.experiments} --draws {args.draws}` "
             f"({time.perf_counter() - t0:.0f} s). Each experiment holds out one compute budget (and every run "
             f"above it), fits Chinchilla with {args.draws} bootstrap draws on the runs more than 1.25x below "
             f"it and calibrates on those training runs only (next-budget backtests inside them); the held-out "
             f"runs are then checked against the plain 95 % prediction interval and the calibrated one. Widths "
             f"are (high - low) / forecast; ratio = a held-out run's compute / the largest fitted compute; error "
             f"= log forecast - log observed. Nothing is tuned on the held-out runs.", "", head]
    sets = list(dict.fromkeys(r["set"] for r in rows))
    for name in sets:
        lines.append(summary_row(name, [r for r in rows if r["set"] == name]))
    gadre = [r for r in rows if r["set"] in GADRE_SETS]
    if gadre and len(sets) > 1:
        lines.append(summary_row("gadre, all three corpora", gadre))
    lines.append(summary_row("all", rows))
    lines += ["", "## Per experiment", "",
              "| data set | exp | held-out compute | runs fitted | calibration folds (runs) | held out | plain covers "
              "| calibrated covers | plain width | calibrated width | errors (%) | ratios |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["budget"]
        span = f"{hi:.3g}" if math.isclose(lo, hi) else f"{lo:.3g}-{hi:.3g}"
        errs = ", ".join(f"{100 * e:+.1f}" for e in r["error"][:6]) + (" ..." if r["n_test"] > 6 else "")
        ratios = ", ".join(f"{x:.2f}" for x in r["ratio"][:6]) + (" ..." if r["n_test"] > 6 else "")
        lines.append(f"| {r['set']} | {r['exp']} | {span} | {r['n_train']} | {r['folds']} ({r['runs']}) | {r['n_test']} | "
                     f"{int(r['plain_in'].sum())} | {int(r['cal_in'].sum())} | {100 * np.median(r['plain_w']):.2f} % | "
                     f"{100 * np.median(r['cal_w']):.2f} % | {errs} | {ratios} |")
    lines += ["", "Held-out runs of one experiment share one fit, so they are not independent trials: read the "
              "coverage per experiment as well as pooled."]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
