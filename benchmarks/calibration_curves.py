"""Coverage of curve-law intervals by simulation (issue #12): does the interval the fit chooses hold?

Truth: the multi-power law with the published 400M parameters. Each simulated table has 3, 5 or 10
curves under different schedules (6,000 steps, warm-up 500, peak 3e-4), logged every 100 steps, with a
per-run offset (log-normal, sd ``--offset``) and autocorrelated step noise (AR(1), rho 0.9, marginal sd
``--noise``) in log loss -- what real curves look like (MPL residuals have lag-1 correlation 0.8-0.9).
Each table is fitted with the default bootstrap (``auto``: wild cluster below 10 curves, runs from 10)
and the final loss of a 12,000-step cosine (twice the horizon) is forecast as ``schedule predict`` does.
Counted: how often the confidence interval contains the law's true value, and how often the prediction
and calibrated intervals contain the loss a new run would reach (true value times its own offset; the
chance of that is integrated exactly per table, see :func:`chance_inside`). The data come from
the law itself, so the law has no model error here: this checks the bootstrap and the run scatter, and
the real-data coverage (benchmarks/curve_coverage.py) checks the calibration against model error.

    python benchmarks/calibration_curves.py [--replicates 12,8,4] [--levels 0.0005:0.0008,0.003:0.003]
        (about 1 hour on one core; designs run side by side with --curves/--levels and --out each write
        their own file)
        -> benchmarks/results/calibration_curves.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "calibration_curves.md"
W = "peak=3e-4,warmup=500,steps=6000"
SCHEDULES = [f"cosine:{W},floor=3e-5", f"constant:{W}", f"two_stage:{W},switch=3000,low=9e-5",
             f"wsd:{W},cooldown=1200,floor=3e-5", f"linear:{W},floor=3e-5", f"two_stage:{W},switch=4000,low=3e-5",
             f"wsd:{W},cooldown=600,shape=sqrt,floor=0", f"cosine:{W},floor=0", f"two_stage:{W},switch=2000,low=1.5e-4",
             f"wsd:{W},cooldown=2400,shape=linear,floor=3e-5"]
TARGET = "cosine:peak=3e-4,warmup=500,steps=12000,floor=3e-5"


def simulate(law, theta, n_curves, rng, offset_sd, noise_sd, rho=0.9, every=100):
    from scalefit.curves import load_curves
    from scalefit.schedule import parse_schedule

    rows, specs = [], {}
    for i, spec in enumerate(SCHEDULES[:n_curves]):
        eta = parse_schedule(spec).lr()
        steps = np.arange(600, eta.size, every)
        mean = law.curve(theta[None], eta, steps)[0]
        e = np.empty(steps.size)
        e[0] = rng.normal(0, noise_sd)
        for k in range(1, steps.size):  # AR(1) with marginal sd noise_sd
            e[k] = rho * e[k - 1] + rng.normal(0, noise_sd * math.sqrt(1 - rho**2))
        loss = mean * np.exp(rng.normal(0, offset_sd) + e)
        run = f"r{i}"
        specs[run] = spec
        rows += [{"run": run, "step": int(s), "loss": float(v)} for s, v in zip(steps, loss)]
    return load_curves(pd.DataFrame(rows), schedules=specs)


def chance_inside(lo: float, hi: float, target: float, offset_sd: float) -> float:
    """The probability that [lo, hi] contains the truth: the law's value itself (``offset_sd`` 0), or a new
    run's final loss, target times a log-normal offset of sd ``offset_sd``, integrated exactly rather than
    drawn once: the same expected coverage with far less Monte Carlo noise per table."""
    if not lo <= hi:  # a NaN end: nothing is inside
        return 0.0
    if offset_sd == 0.0:
        return float(lo <= target <= hi)
    from statistics import NormalDist

    z = NormalDist()
    a = math.log(lo / target) / offset_sd if lo > 0 else -math.inf
    b = math.log(hi / target) / offset_sd if math.isfinite(hi) else math.inf
    return (z.cdf(b) if math.isfinite(b) else 1.0) - (z.cdf(a) if math.isfinite(a) else 0.0)


LEVELS = "0.0005:0.0008,0.003:0.003"  # offset sd : step-noise sd; the first is the official curves' noise
HEADER = """# Curve-law interval coverage by simulation

What `scalefit fit -b N` then `schedule predict` gives by default is the calibrated interval (the fit
calibrates curve laws when bootstrapping); confidence and prediction are the parts it is built on.

Truth: multipower with the published 400M parameters. Each table: 3, 5 or 10 curves of 6,000 steps under
different schedules (warm-up 500, peak 3e-4), logged every 100 steps, each with a per-run log offset and
AR(1) step noise (rho 0.9) in log loss; fitted with {draws} bootstrap draws (`auto`); target: the final loss
of a 12,000-step cosine (2x the fitted horizon). Coverage of the confidence interval: the share of tables
whose interval holds the law's own value; of the prediction and calibrated intervals: a new run's chance
of landing inside (the law's value times a log-normal offset of the same sd), integrated exactly per table
and averaged over tables (MC s.e.: the sample sd of the per-table values, chances or 0/1 hits, over
the square root of the number of tables). Produced by `python benchmarks/calibration_curves.py {argv}` (s / table: per
process).

The first noise level is the official curves': on the multipower fits of the official 25M/100M/400M
training split the within-run residual sd is 0.0003-0.0012 (lag-1 autocorrelation 0-0.73) and the per-run
mean offsets are at most 0.00035. The second has 6 times that offset and 3.75 times that step noise.
"""
FOOTER = """
Where the law is exactly right the calibrated interval over-covers at every size: its leave-one-curve-out
and half-horizon refits are weaker fits than the full one, so their forecast errors overstate the full
fit's. Below 10 curves the bootstrap under-covers: with these short curves the drop term's parameters are
not determined (one 3-curve table at the higher noise was fitted at Bslope 5.9e5, C 4.2e3, gamma 0 at its
bound, where the truth is 629, 2.02, 0.63; the forecast was 0.5 % low), and the draws, warm-started at
that optimum, explore its neighbourhood only.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", default="12,8,4", help="tables per design, or one count per design")
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--curves", default="3,5,10")
    parser.add_argument("--levels", default=LEVELS, help="noise levels, each OFFSET_SD:STEP_NOISE_SD (log), "
                        "comma-separated (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="the results file (default: %(default)s)")
    parser.add_argument("--calibrate", default="3,5,10", help="designs (curve counts) that are also calibrated "
                        "(backtests: one refit per curve plus one, so slow)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from scalefit.curve_backtest import calibrate
    from scalefit.fit import fit
    from scalefit.registry import get_law
    from scalefit.schedule import curve_params, parse_schedule
    from scalefit.schedule.evaluate import predict_for

    law = get_law("multipower")
    theta = law.reference_theta("400M")
    target = law.curve(theta[None], parse_schedule(TARGET).lr(), [11999])[0, 0]
    levels = [tuple(map(float, level.split(":"))) for level in args.levels.split(",")]
    rows = []

    def write():
        lines = [HEADER.format(draws=args.draws, argv=" ".join(sys.argv[1:]) or "(defaults)")]
        for offset, noise in levels:
            mine = [r for r in rows if r[0] == (offset, noise)]
            if not mine:
                continue
            lines += [f"## Offset sd {offset}, step noise sd {noise}", "",
                      "| curves | tables | bootstrap (auto) | interval | truth | coverage of 95 % | MC s.e. | "
                      "median width | s / table |", "|---|---|---|---|---|---|---|---|---|"]
            for _, n, reps, method, kind, p, se, w, sec in mine:
                truth = "the law's value" if kind == "confidence" else "a new run's final loss"
                lines.append(f"| {n} | {reps} | {method} | {kind} | {truth} | {100 * p:.1f} % | {100 * se:.1f} | "
                             f"{100 * w:.2f} % | {sec:.1f} |")
            lines.append("")
        args.out.write_text("\n".join(lines) + FOOTER)  # after every design: a long run keeps what it measured
        print("\n".join(lines), flush=True)

    replicates = dict(zip(args.curves.split(","), map(int, str(args.replicates).split(",")))) \
        if "," in str(args.replicates) else {}
    for offset, noise in levels:
        for n in map(int, args.curves.split(",")):
            n_reps = replicates.get(str(n), int(str(args.replicates).split(",")[0]))
            rng = np.random.default_rng(1000 + n)  # per design: one design can be re-run alone
            kinds = ["confidence", "prediction"] + (["calibrated"] if str(n) in args.calibrate.split(",") else [])
            hits = {k: [] for k in kinds}
            widths = {k: [] for k in kinds}
            method, t0 = None, time.perf_counter()
            for rep in range(n_reps):
                data = simulate(law, theta, n, rng, offset, noise)
                res = fit(law, data, n_bootstrap=args.draws, seed=rep, identify=False)
                if "calibrated" in kinds:
                    res = calibrate(res, data)
                method = res.settings["bootstrap_method"]
                params = curve_params(fit=res)
                for kind in kinds:
                    p = predict_for(params, "target", TARGET, every=12000, interval=kind)
                    lo, hi = p.final_loss_interval
                    hits[kind].append(chance_inside(lo, hi, target, 0.0 if kind == "confidence" else offset))
                    widths[kind].append((hi - lo) / p.final_loss)
                print(f"noise {offset}:{noise}, {n} curves, replicate {rep + 1}: " + ", ".join(
                    f"{k} {np.mean(v):.3f}" for k, v in hits.items()), flush=True)
            seconds = (time.perf_counter() - t0) / n_reps
            for kind in hits:
                p = float(np.mean(hits[kind]))
                # MC s.e. of the mean of the per-table values (chances, or 0/1 hits for the confidence interval)
                se = float(np.std(hits[kind], ddof=1) / math.sqrt(n_reps)) if n_reps > 1 else math.nan
                rows.append(((offset, noise), n, n_reps, method, kind, p, se, float(np.median(widths[kind])),
                             seconds))
            write()


if __name__ == "__main__":
    main()
