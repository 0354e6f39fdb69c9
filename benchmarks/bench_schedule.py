"""Speed of the schedule-aware laws and the schedule optimiser, on the official Multi-Power-Law data.

    python benchmarks/bench_schedule.py [--repeat 3]

Prints a markdown table (medians over --repeat runs) and writes it to benchmarks/results/schedule.md.
Data come from ../shared/data/loss_curves (never copied into the project).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MPL = ROOT.parent / "shared" / "data" / "loss_curves" / "mpl_official"
OUT = ROOT / "benchmarks" / "results" / "schedule.md"
W = "peak=3e-4,warmup=2160"
TRAIN = {
    "cosine_24000": f"cosine:{W},steps=24000,floor=3e-5",
    "constant_24000": f"constant:{W},steps=24000",
    "wsdcon_9": f"two_stage:{W},steps=16000,switch=8000,low=9e-5",
}
TEST = {
    "constant_72000": f"constant:{W},steps=72000",
    "cosine_72000": f"cosine:{W},steps=72000,floor=3e-5",
    "wsd_20000_24000": f"wsd:{W},steps=24000,cooldown=4000,shape=exp,floor=3e-5",
    "wsdld_20000_24000": f"wsd:{W},steps=24000,cooldown=4000,shape=linear,floor=3e-5",
    "wsdcon_3": f"two_stage:{W},steps=16000,switch=8000,low=3e-5",
    "wsdcon_18": f"two_stage:{W},steps=16000,switch=8000,low=1.8e-4",
}
OFFICIAL_TEST = {"25M": (0.9988, 0.00376), "100M": (0.9983, 0.00435), "400M": (0.9978, 0.00484)}


def timed(fn, repeat):
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def split(size):
    from scalefit.curves import load_curves

    tidy = pd.read_csv(MPL / "mpl_curves_tidy.csv")
    tidy = tidy[(tidy.model_size == size) & (tidy.step != 24000)]
    return {name: load_curves(tidy[tidy.schedule.isin(list(specs))], columns={"run": "schedule"}, schedules=specs)
            for name, specs in (("train", TRAIN), ("test", TEST))}


def twelve_curves(law):
    """12 curves of 20,000 steps from the 400M parameters (cosine, WSD, two-stage and constant at four
    peaks), logged every 100 steps with 0.3 % noise: the size of a small schedule sweep."""
    from scalefit.curves import load_curves
    from scalefit.schedule import parse_schedule

    rng = np.random.default_rng(0)
    theta = law.reference_theta("400M")
    rows, specs = [], {}
    for i, peak in enumerate((2e-4, 3e-4, 4e-4)):
        for kind in ("cosine:floor=10%", "wsd:cooldown=0.2,floor=0", "two_stage:switch=12000,low=10%", "constant"):
            name, extra = kind.split(":") if ":" in kind else (kind, "")
            spec = f"{name}:peak={peak},steps=20000,warmup=1000" + (f",{extra}" if extra else "")
            if name == "two_stage":
                spec = spec.replace("low=10%", f"low={peak / 10:g}")
            run = f"{name}_{i}"
            specs[run] = spec
            eta = parse_schedule(spec).lr()
            steps = np.arange(1100, 20000, 100)
            loss = law.curve(theta[None], eta, steps)[0] * np.exp(rng.normal(0, 0.003, steps.size))
            rows += [{"run": run, "step": int(s), "loss": float(v)} for s, v in zip(steps, loss)]
    return load_curves(pd.DataFrame(rows), schedules=specs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="400M", help="comma-separated model sizes to fit (25M,100M,400M)")
    parser.add_argument("--only", choices=("twelve",), help="time one case and print it (no results file): "
                        "twelve = multipower on 12 simulated curves x 20,000 steps with 200 draws")
    args = parser.parse_args()
    if not MPL.exists():
        sys.exit(f"shared data not found at {MPL}")
    from scalefit.fit import fit
    from scalefit.registry import get_law
    from scalefit.schedule import curve_metrics, optimize_schedule, parse_schedule
    from scalefit.solver import RobustLoss

    law = get_law("multipower")
    exact = law.with_options(resolution="exact")
    rows = []
    if args.only == "twelve":
        twelve = twelve_curves(law)
        times = [timed(lambda: fit(law, twelve, n_bootstrap=200, seed=0), 1)[0] for _ in range(args.repeat)]
        print(f"multipower, 12 curves x 20,000 steps, 200 draws: median {statistics.median(times):.1f} s "
              f"({', '.join(f'{t:.1f}' for t in times)}; load {os.getloadavg()[0]:.2f})")
        return

    # 1. Fitting on the official training split; score the six held-out curves.
    for size in args.sizes.split(","):
        data = split(size)
        sec, result = timed(lambda data=data: fit(law, data["train"]), args.repeat)
        design = exact.prepare(data["train"])
        y = data["train"].column("loss")

        def objective(theta, design=design, y=y):
            return float(np.sum(RobustLoss("huber", 1e-3).rho(np.log(exact.predict(theta[None], design)[0]) - np.log(y))))

        ours = curve_metrics(exact, result.theta, data["test"])
        r2, mae = np.mean([m["r2"] for m in ours]), np.mean([m["mae"] for m in ours])
        o_r2, o_mae = OFFICIAL_TEST[size]
        rows.append((f"fit multipower, {size} official training split ({len(y)} points)", sec, "< 60 s",
                     f"objective {objective(result.theta):.3e} (official params {objective(law.reference_theta(size)):.3e}); "
                     f"test R² {r2:.4f} / MAE {mae:.5f} (official {o_r2} / {o_mae}); "
                     f"{result.diagnostics['n_converged_best']}/{result.diagnostics['n_refined']} starts at the best"))
        if size == "400M":
            for method, draws in (("runs", 200), ("wild", 1000)):
                sec, boot = timed(lambda data=data, method=method, draws=draws: fit(
                    law, data["train"], n_bootstrap=draws, seed=0, bootstrap_method=method), 1)
                rows.append((f"the same fit + {draws:,} draws, {method} bootstrap", sec, "–",
                             f"{boot.settings['distinct_resamples']} distinct draws (3 curves: 10 distinct run "
                             f"resamples, 216 wild ones; each distinct draw is solved once)"))
            twelve = twelve_curves(law)
            sec, boot = timed(lambda twelve=twelve: fit(law, twelve, n_bootstrap=200, seed=0), 1)
            rows.append(("multipower on 12 simulated curves x 20,000 steps (logged every 100), 200 draws", sec,
                         "< 60 s", f"{boot.settings['bootstrap_method']} bootstrap, "
                         f"{boot.settings['distinct_resamples']} distinct draws, {len(twelve):,} points"))

    # 2. Evaluating a 100,000-step schedule.
    theta = law.reference_theta("400M")
    eta = parse_schedule("cosine:peak=3e-4,steps=100000,warmup=2160,floor=3e-5").lr()
    sec, value = timed(lambda: law.final_loss_grad(theta, eta), max(args.repeat, 20))
    rows.append(("final loss + gradient of a 100,000-step cosine (every step an LR change)", sec, "< 50 ms",
                 f"L(T) = {value[0]:.6f}"))
    steps = np.arange(0, 100000, 100)[1:]
    sec, value = timed(lambda: law.curve(theta, eta, steps), max(args.repeat, 5))
    rows.append(("loss curve of the same schedule at every 100th step (1,000 points)", sec, "–",
                 f"{value.shape[1]} points"))
    tissue = get_law("lr_annealing")
    every = np.arange(1, 100000)
    sec, value = timed(lambda: tissue.curve(tissue.reference_theta(), eta, every), max(args.repeat, 5))
    rows.append(("lr_annealing loss curve of the same schedule at every step", sec, "< 50 ms", f"{value.shape[1]} points"))

    # 3. The optimiser (400M published parameters, peak 3e-4, warm-up 2160, 24,000 steps, floor 0).
    sec, res = timed(lambda: optimize_schedule(law, theta, peak=3e-4, steps=24000, warmup=2160, floor=0.0), args.repeat)
    rows.append(("optimise the schedule, 400M published parameters, 24,000 steps", sec, "< 10 s",
                 f"final loss {res.final_loss:.6f} (official optimiser 2.689053); best WSD {res.best_wsd[1]:.6f}; "
                 f"best cosine {res.best_cosine[1]:.6f}; {res.iterations} iterations"))

    def fmt_time(s):
        return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"

    lines = [
        "# scalefit schedule benchmarks",
        "",
        f"Median of {args.repeat}+ runs; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}.",
        "",
        "| task | time | target | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {task} | {fmt_time(sec)} | {target} | {note} |" for task, sec, target, note in rows]
    lines += [
        "",
        "Fit: summed Huber (delta 1e-3) of log residuals over every logged point of cosine_24000, constant_24000",
        "and wsdcon_9 (rows at step 24000 dropped, as the official loader does); test metrics are per-curve",
        "R^2 / MAE on raw loss averaged over the six official test curves, predicted exactly (no blocked sums).",
        "The official parameters come from AdamW stopped after ~100 steps: their training objective is 2-13x",
        "higher than the optimum found here, yet they extrapolate better to the 3x-longer cosine_72000: the",
        "shape of the loss drop (C, beta, gamma) is not identified by 24k-step curves, and where the optimiser",
        "stops decides the test score (benchmarks/mpl_split_study.py re-runs the official recipe).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
