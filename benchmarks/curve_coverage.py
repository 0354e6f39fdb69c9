"""How often a curve law's 95 % intervals cover held-out runs, on real curves (issue #12 acceptance).

    python benchmarks/curve_coverage.py [--laws multipower,lr_annealing] [--sizes 25M,100M,400M] [--draws 200]

Official multi-power split: fit each law on the three training curves (cosine_24000, constant_24000,
wsdcon_9) with the default bootstrap (wild cluster: 3 curves), calibrate it (leave-one-curve-out and
half-horizon backtests on those three curves only), then predict the final loss of each of the six test
curves exactly as ``scalefit schedule predict --fit fit.json --schedule SPEC --interval KIND`` does, and
count how often each interval kind contains the observed final loss (mean of the last 3 logged points).
Course data (100M GPT, every step): fit on the cosine curve alone and on cosine + WSD, predict the others.
Nothing here is tuned on the test curves. Writes benchmarks/results/curve_coverage.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_schedule import ROOT, TEST, TRAIN, split  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "curve_coverage.md"
COURSE = ROOT.parent / "shared" / "data" / "loss_curves" / "course_gpt100m_20b" / "gpt_loss_lrs.parquet"
KINDS = ("confidence", "prediction", "calibrated")


def observed_final(data, run):
    """(observed final loss: the mean of the last 3 logged points, the step at their centre)."""
    from scalefit.curve_backtest import FINAL_POINTS

    m = data.run_names == run
    order = np.argsort(data.column("step")[m], kind="stable")
    last = data.column("step")[m][order][-FINAL_POINTS:]
    return float(np.mean(data.column("loss")[m][order][-FINAL_POINTS:])), int(last[len(last) // 2])


def fit_calibrated(law, train, draws):
    from scalefit.curve_backtest import calibrate
    from scalefit.fit import fit

    t0 = time.perf_counter()
    res = fit(law, train, n_bootstrap=draws, seed=0)
    t1 = time.perf_counter()
    res = calibrate(res, train)
    return res, t1 - t0, time.perf_counter() - t1


def predict_all(res, targets, data):
    """{run: {kind: (low, high)}, "final": predicted, "observed": ...} through the product's path: the
    forecast and its interval at the centre step of the 3 logged points averaged into the observed final
    loss (``schedule predict --at STEP``; the curves end at step 23936 of 24000, where a WSD cooldown is
    still dropping the loss, so the last step of the schedule is not what was observed)."""
    from scalefit.schedule import curve_params
    from scalefit.schedule.evaluate import predict_for

    params = curve_params(fit=res)
    out = {}
    for run, schedule in targets.items():
        observed, at = observed_final(data, run)
        row = {"observed": observed}
        for kind in KINDS:
            try:
                p = predict_for(params, run, schedule, interval=kind, at=at, every=10**9)
            except Exception as exc:  # an interval the fit cannot give (e.g. one curve): recorded as such
                row[kind] = (float("nan"), float("nan"), str(exc))
                continue
            row["final"] = p.loss_at_step
            row[kind] = p.loss_at_step_interval
        out[run] = row
    return out


def cell(row, kind):
    lo, hi = row[kind][:2]
    if not np.isfinite(lo) or not np.isfinite(hi):
        return "unbounded", None, None
    inside = lo <= row["observed"] <= hi
    width = (hi - lo) / row["final"]
    return f"[{lo:.4f}, {hi:.4f}] {'✓' if inside else '✗'} ({100 * width:.2f} %)", inside, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--laws", default="multipower,lr_annealing")
    parser.add_argument("--sizes", default="25M,100M,400M")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--course-every", type=int, default=200, help="keep every Nth step of the course curves "
                        "(200: about 170 points per curve, as dense as the MPL curves)")
    parser.add_argument("--parts", default="mpl,course", help="mpl (official split) and/or course")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from scalefit.registry import get_law
    from scalefit.schedule import score_curves

    lines = ["# Curve-law interval coverage on held-out real runs", "",
             "Produced by `python benchmarks/curve_coverage.py` (95 % intervals; ✓ the interval contains the observed",
             "final loss, the mean of the last 3 logged points; width relative to the forecast). confidence: the",
             "bootstrap alone; prediction: + a new run's offset; calibrated: + the law's extrapolation error",
             "measured by backtests on the training curves (see README, How far to trust a curve forecast).", ""]
    summary = []
    for law_name in args.laws.split(",") if "mpl" in args.parts else ():
        law = get_law(law_name)
        lines += [f"## {law_name}: official multi-power split (train: {', '.join(TRAIN)})", "",
                  "| size | test curve | observed | forecast | error | " + " | ".join(KINDS) + " |",
                  "|---|---|---|---|---|" + "---|" * len(KINDS)]
        tally = {k: [] for k in KINDS}
        for size in args.sizes.split(","):
            data = split(size)
            res, t_fit, t_cal = fit_calibrated(law, data["train"], args.draws)
            r2 = score_curves(law, res.theta, data["test"]).mean_r2
            preds = predict_all(res, TEST, data["test"])
            for run, row in preds.items():
                cells = []
                for kind in KINDS:
                    text, inside, width = cell(row, kind)
                    tally[kind].append((size, run, inside, width))
                    cells.append(text)
                err = row["final"] / row["observed"] - 1
                lines.append(f"| {size} | {run} | {row['observed']:.4f} | {row['final']:.4f} | {100 * err:+.2f} % | "
                             + " | ".join(cells) + " |")
            summary.append(f"{law_name} {size}: fit + {args.draws} draws {t_fit:.0f} s "
                           f"({res.settings['bootstrap_method']}, {res.settings['distinct_resamples']} distinct), "
                           f"calibration {t_cal:.0f} s, objective {res.objective:.4g}, mean test R² {r2:.4f}")
            print(summary[-1], flush=True)
        lines.append("")
        for kind in KINDS:
            judged = [t for t in tally[kind] if t[2] is not None]
            widths = [t[3] for t in judged]
            hit = sum(t[2] for t in judged)
            lines.append(f"- **{kind}**: {hit} of {len(judged)} covered"
                         + (f", median relative width {100 * statistics.median(widths):.2f} %" if widths else "")
                         + ("; 400M cosine_72000 " + ("covered" if any(t[0] == "400M" and t[1] == "cosine_72000"
                                                                        and t[2] for t in judged) else "missed")
                            if law_name == "multipower" else ""))
        lines.append("")
        OUT.write_text("\n".join(lines))  # each part is kept as soon as it is measured

    if COURSE.exists() and "course" in args.parts:
        full = pd.read_parquet(COURSE)
        last = full.groupby("schedule").step.transform("max")
        f = full[(full.step >= 200) & ((full.step % args.course_every == 0) | (full.step == last))]
        from scalefit.curves import load_curves

        # the losses thinned, the LR of every step (a dense LR table; wsd and cosine each miss one logged
        # step, whose LR is interpolated from its neighbours)
        lrs = pd.concat([g.set_index("step")[["lr"]].reindex(range(int(g.step.max()) + 1)).interpolate()
                         .reset_index().assign(run=run) for run, g in full.groupby("schedule")])
        data = load_curves(f[["schedule", "step", "loss"]].rename(columns={"schedule": "run"}), lr_table=lrs)
        runs = data.run_names
        for law_name in args.laws.split(","):
            law = get_law(law_name)
            lines += [f"## {law_name}: course data (100M GPT, every {args.course_every}th step)", "",
                      "| fitted on | predicted | observed | forecast | error | " + " | ".join(KINDS) + " |",
                      "|---|---|---|---|---|" + "---|" * len(KINDS)]
            for train in (["cosine"], ["cosine", "wsd"]):
                tr = data.subset(np.isin(runs, train))
                res, t_fit, t_cal = fit_calibrated(law, tr, args.draws)
                targets = {r: data.lr[r] for r in ("cosine", "wsd", "811") if r not in train}
                for run, row in predict_all(res, targets, data).items():
                    err = row["final"] / row["observed"] - 1
                    lines.append(f"| {' + '.join(train)} | {run} | {row['observed']:.4f} | {row['final']:.4f} | "
                                 f"{100 * err:+.2f} % | " + " | ".join(cell(row, k)[0] for k in KINDS) + " |")
                summary.append(f"{law_name} course {'+'.join(train)}: fit {t_fit:.0f} s, calibration {t_cal:.0f} s")
                print(summary[-1], flush=True)
            lines.append("")
    lines += ["## Timings", ""] + [f"- {s}" for s in summary] + [""]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
