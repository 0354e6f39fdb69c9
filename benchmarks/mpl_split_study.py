"""Why the official multi-power-law fit extrapolates better than the optimum of its own objective.

    python benchmarks/mpl_split_study.py [--sizes 25M,100M,400M]

Issue #4 asks that fitting `multipower` on the official training split (cosine_24000, constant_24000,
wsdcon_9) predicts the six held-out curves at least as well as the published parameters. This study
puts side by side, for each model size, on the same objective (summed Huber, delta 1e-3, of log
residuals) and the same test metrics (per-curve R^2 and MAE on raw loss, averaged over the six curves):

* the published parameters;
* scalefit's fit (the optimum of the objective; every start agrees);
* the official recipe (reference laws_schedule.md Sec. 2.5) re-run here from its description: a
  135-start L-BFGS-B fit of the reduced model L0 + A S^-alpha - B (eta_max - eta_t), then C, beta,
  gamma = 1, 0.5, 0.5 and AdamW (lr 5e-2 for L0, A, B, C and 5e-3 for alpha, beta, gamma, weight decay
  0.01, at most 200 steps, stop after 20 steps without improvement, keep the best);
* the same recipe without weight decay, which isolates what the decay does.

The recipe is written here for this study only, to test whether the published test score is a
property of the data or of the optimiser's trajectory. Measured (benchmarks/results/mpl_split_study.md):
the optimum fits the training curves 2-13x better but extrapolates worse; B barely leaves the reduced
model's value in the recipe (its AdamW step is at most ~0.05 per iteration against B ~ 500); and the
test score moves with details of the stop: re-run here the recipe meets the bar on 25M and 100M but
not on 400M, and without weight decay on none. scalefit therefore does not ship it as a fitting method.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_schedule import OFFICIAL_TEST, ROOT, split  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "mpl_split_study.md"


def huber(r):
    """The fitter's own objective term (Huber, delta 1e-3, on log residuals)."""
    from scalefit.solver import RobustLoss

    return RobustLoss("huber", 1e-3).rho(r)


def reduced_fit(data):
    """Stage 1 of the recipe: the reduced model on a 135-point grid, L-BFGS-B from each start."""
    from scipy.optimize import minimize
    from scipy.stats import linregress

    y = data.column("loss")
    steps = data.column("step").astype(int)
    runs = data.run_names
    area, drop = np.empty_like(y), np.empty_like(y)
    for run, eta in data.lr.items():
        m = runs == run
        area[m] = np.cumsum(eta)[steps[m]]
        drop[m] = eta.max() - eta[steps[m]]
    floor = y.min()
    line = linregress(np.log(area), np.log(y - floor + 0.01))

    def objective(p):
        pred = p[0] + p[1] * area ** -p[2] - p[3] * drop
        with np.errstate(all="ignore"):
            return float(np.sum(huber(np.log(np.maximum(pred, 1e-10)) - np.log(y))))

    grid = itertools.product(np.linspace(floor - 0.2, floor + 0.2, 5), np.exp(line.intercept) + np.array([-0.1, 0, 0.1]),
                             -line.slope + np.array([-0.1, 0, 0.1]), np.linspace(100, 1000, 3))
    fits = [minimize(objective, start, method="L-BFGS-B", bounds=[(0, None)] * 4,
                     options=dict(maxiter=100_000, ftol=1e-9, gtol=1e-6, eps=1e-8)) for start in grid]
    return min(fits, key=lambda f: f.fun).x


def recipe(law, data, weight_decay=0.01):
    """Stage 2: AdamW from the reduced fit, two step sizes, early stopping; returns (theta, last step)."""
    design = law.prepare(data)
    logy = np.log(data.column("loss"))
    theta = np.array([*reduced_fit(data), 1.0, 0.5, 0.5])
    lr = np.array([5e-2, 5e-2, 5e-3, 5e-2, 5e-2, 5e-3, 5e-3])  # L0 A alpha B C beta gamma
    m = np.zeros(7)
    v = np.zeros(7)
    best, best_f, since = theta.copy(), np.inf, 0
    for t in range(1, 201):
        pred, jac = law.predict_and_jacobian(theta[None], design)
        r = np.log(pred[0]) - logy
        f = float(np.sum(huber(r)))
        g = jac[0].T @ (np.clip(r, -1e-3, 1e-3) / pred[0])  # d huber / d theta
        if f < best_f:
            best, best_f, since = theta.copy(), f, 0
        else:
            since += 1
        if since >= 20 or np.linalg.norm(g) < 1e-5:
            break
        theta = theta * (1 - lr * weight_decay)  # decoupled weight decay, as torch.optim.AdamW
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return best, t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25M,100M,400M")
    args = parser.parse_args()
    from scalefit.fit import fit
    from scalefit.registry import get_law
    from scalefit.schedule import curve_metrics

    law = get_law("multipower").with_options(resolution="exact")
    lines = ["# Multi-power law: official training split -> six held-out curves", "",
             "Objective: summed Huber (delta 1e-3) of log residuals on the training curves (lower is a better fit).",
             "Test: per-curve R² / MAE on raw loss, mean over the six official test curves; cosine_72000 is the",
             "3x-longer cosine. Produced by `python benchmarks/mpl_split_study.py`.", "",
             "| size | parameters | L0 | A | alpha | B | C | beta | gamma | train objective | test R² | test MAE "
             "| cosine_72000 R² |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in args.sizes.split(","):
        data = split(size)
        design = law.prepare(data["train"])
        y = data["train"].column("loss")
        t0 = time.perf_counter()
        ours = fit("multipower", data["train"])
        fit_s = time.perf_counter() - t0
        rerun, stop = recipe(law, data["train"])
        no_decay, stop0 = recipe(law, data["train"], weight_decay=0.0)
        rows = [("published (official AdamW fit)", law.reference_theta(size)),
                (f"scalefit fit (optimum, {fit_s:.0f} s)", ours.theta),
                (f"official recipe re-run here (stopped at step {stop})", rerun),
                (f"official recipe without weight decay (step {stop0})", no_decay)]
        r2_bar, mae_bar = OFFICIAL_TEST[size]
        for label, theta in rows:
            objective = float(np.sum(huber(np.log(law.predict(theta[None], design)[0]) - np.log(y))))
            metrics = curve_metrics(law, theta, data["test"])
            r2 = np.mean([m["r2"] for m in metrics])
            mae = np.mean([m["mae"] for m in metrics])
            cos72 = next(m["r2"] for m in metrics if m["run"] == "cosine_72000")
            mark = " ✓" if round(r2, 4) >= r2_bar and round(mae, 5) <= mae_bar else ""  # the bar's precision
            values = " | ".join(f"{v:.4g}" for v in theta)
            lines.append(f"| {size} | {label} | {values} | {objective:.3e} | {r2:.5f}{mark} | {mae:.5f} | {cos72:.5f} |")
            print(lines[-1], flush=True)
    lines += ["", "✓: meets the issue's bar (at least the published test R² and at most its MAE, at their 4 and 5 decimals).",
              "The training curves end at 24k steps; only cosine_72000 and constant_72000 go further.", ""]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
