"""What the calibrated curve interval reads, where the law is exact and where it is not (issue #12).

    python benchmarks/calibration_records.py [--tables 6] [--sizes 25M,100M,400M]

The calibrated interval of a curve law is a function of its backtest record alone: the leave-one-curve-out
forecast errors and the half-horizon errors per unit of log horizon
(:func:`scalefit.curve_backtest.extrapolation_errors`). This script sets those records side by side with
the misses they are meant to bound:

* simulated 3-curve tables from the 400M multi-power parameters (the design and noise of
  ``calibration_curves.py``: the official curves' noise), where the miss is the full fit's forecast of
  a 12,000-step cosine against the law's own value;
* the official 3-curve training split at 25M, 100M and 400M, where the misses are the six held-out
  curves' final losses (mean of the last 3 logged points) against the fit's forecast at the centre step
  of those points (as ``curve_coverage.py`` scores them; two of the six run 3x the fitted horizon, and
  each carries its run's own offset, where the simulated misses are at 2x against the law's value).

Where the records look alike and the misses do not, no calibration that reads only the record can be
right in both places. Writes benchmarks/results/calibration_records.md.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_schedule import ROOT, TEST, split  # noqa: E402
from calibration_curves import TARGET, simulate  # noqa: E402
from curve_coverage import observed_final  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "calibration_records.md"


def rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else math.nan


def record_summary(law, data) -> tuple[float, float]:
    """(rms of the leave-one-curve-out log errors, rms of the half-horizon log errors per unit log horizon)."""
    from scalefit.curve_backtest import extrapolation_errors

    rec = extrapolation_errors(law, data, loss="huber", delta=1e-3)
    shape = [e for e, _ in rec["shape"]]
    per_log = [e / math.log(r) for e, r in rec["horizon"] if r > 1.0]
    return rms(shape), rms(per_log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=6, help="simulated 3-curve tables")
    parser.add_argument("--sizes", default="25M,100M,400M")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from scalefit.fit import fit
    from scalefit.registry import get_law
    from scalefit.schedule import parse_schedule

    t0 = time.perf_counter()
    law = get_law("multipower")
    theta = law.reference_theta("400M")
    eta = parse_schedule(TARGET).lr()
    truth = float(law.curve(theta[None], eta, np.array([eta.size - 1]))[0][0])
    lines = ["# The calibrated interval's input beside the misses it bounds", "",
             "Produced by `python benchmarks/calibration_records.py` (see its docstring). loco: root mean square of",
             "the leave-one-curve-out log forecast errors; horizon: root mean square of the half-horizon log errors",
             "per unit of log horizon. Both in % of the loss; the calibrated half-width at twice the fitted horizon",
             "is about 3.2 x hypot(loco, 0.69 x horizon) with 3 curves.", "",
             "| table | loco rms | horizon rms per log | misses of the full fit's forecasts |", "|---|---|---|---|"]
    sims = []
    for rep in range(args.tables):
        data = simulate(law, theta, 3, np.random.default_rng(rep), 0.0005, 0.0008)
        res = fit(law, data)
        pred = float(law.curve(res.theta[None], eta, np.array([eta.size - 1]))[0][0])
        miss = math.log(pred / truth)
        loco, hor = record_summary(law, data)
        sims.append((loco, hor, abs(miss)))
        lines.append(f"| simulated, seed {rep} | {100 * loco:.2f} | {100 * hor:.2f} | "
                     f"{100 * miss:+.3f} (the 2x cosine, against the law's value) |")
        print(lines[-1], flush=True)
    reals = []
    for size in args.sizes.split(","):
        data = split(size)
        res = fit(law, data["train"])  # as curve_coverage.py fits it
        misses = []
        for run in TEST:
            observed, step = observed_final(data["test"], run)
            lr = data["test"].lr[run]
            pred = float(law.curve(res.theta[None], lr, np.array([step]))[0][0])
            misses.append(math.log(pred / observed))
        loco, hor = record_summary(law, data["train"])
        reals.append((loco, hor, max(map(abs, misses))))
        lines.append(f"| official split, {size} | {100 * loco:.2f} | {100 * hor:.2f} | "
                     f"{', '.join(f'{100 * m:+.2f}' for m in misses)} (the six test curves) |")
        print(lines[-1], flush=True)
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    lines += ["", f"- Simulated (the law exact): median loco {100 * med(sims, 0):.2f} %, horizon {100 * med(sims, 1):.2f} "
              f"% per log; median |miss| {100 * med(sims, 2):.3f} %.",
              f"- Real (official split): median loco {100 * med(reals, 0):.2f} %, horizon {100 * med(reals, 1):.2f} % "
              f"per log; median of the largest |miss| per size {100 * med(reals, 2):.2f} %.",
              "", f"Whole run {time.perf_counter() - t0:.0f} s on {os.cpu_count()} cores."]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
