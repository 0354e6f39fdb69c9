"""Scale: a 10-million-row curve table (500 runs x 20,000 steps) loads and fits in bounded memory.

Synthetic losses from the LR-annealing law (the authors' example parameters, 0.5 % log-noise) under
cosine, WSD and constant schedules, logged at every step with an `lr` column. The table is generated in
one process; loading and fitting run in a fresh one, which reports wall time and peak resident memory
(ru_maxrss) against the size of the raw numeric columns. Writes benchmarks/results/scale.md.
Options: --runs, --steps (defaults 500 and 20000), --bootstrap (default 0), --out (default that file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def generate(path: Path, runs: int, steps: int, law_name: str = "lr_annealing", reference: str | None = None,
             every: int = 1, first_step: int = 0, seed: int = 0, noise: float = 0.005) -> None:
    """A synthetic curve table at ``path`` (parquet): ``runs`` runs of ``steps`` steps under cosine, WSD and
    constant schedules in turn (peak LR 2e-4, 2.5 % warm-up), the LR at every step and the loss of
    ``law_name`` at its ``reference`` parameters (its first set by default) every ``every`` steps from
    ``first_step`` on (other rows carry the LR only; multipower needs first_step=1, where the warm-up has
    some LR area), times log-normal noise of ``noise`` (seeded)."""
    import numpy as np
    import pandas as pd

    from scalefit.curves import load_curves
    from scalefit.registry import get_law
    from scalefit.schedule import parse_schedule

    law = get_law(law_name)
    lrs = {}
    for kind, extra in (("cosine", ""), ("wsd", ",cooldown=0.2"), ("constant", "")):
        lrs[kind] = parse_schedule(f"{kind}:peak=2e-4,steps={steps},warmup={steps // 40}{extra}").lr()[:steps]
    kinds = [("cosine", "wsd", "constant")[r % 3] for r in range(runs)]
    step = np.tile(np.arange(steps), runs)
    logged = ((step % every == 0) | (step == steps - 1)) & (step >= first_step)
    frame = pd.DataFrame({
        "run": np.repeat([f"run{r:04d}" for r in range(runs)], steps),
        "step": step,
        "lr": np.concatenate([lrs[k] for k in kinds]),
        "loss": np.where(logged, 1.0, np.nan),
    })
    data = load_curves(frame)
    clean = law.predict(law.reference_theta(reference)[None], law.prepare(data))[0]
    noisy = clean * np.exp(np.random.default_rng(seed).normal(0, noise, clean.size))
    # Rows with a loss (sorted by run and step, as load_curves returns them) get it; the rest keep the LR only.
    frame.loc[logged, "loss"] = noisy
    frame.to_parquet(path)


def measure(path: str, n_bootstrap: int) -> dict:
    import resource

    t = time.perf_counter()
    from scalefit.curves import load_curves
    from scalefit.fit import fit

    data = load_curves(path)
    t_load = time.perf_counter() - t
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    result = fit("lr_annealing", data, n_bootstrap=n_bootstrap, seed=0)
    t_fit = time.perf_counter() - t
    return {
        "rows": len(data), "runs": data.n_runs, "load_s": t_load, "fit_s": t_fit,
        "peak_rss_after_load": rss_load, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "params": {k: e.value for k, e in result.params.items()}, "objective": result.objective,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "scale.md"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.bootstrap)))
        return 0
    if args.generate:
        generate(Path(args.generate), args.runs, args.steps)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "curves.parquet"
        t = time.perf_counter()
        # In a child too: Linux carries a process's peak RSS across exec, so a measuring child started from
        # a parent that had generated the table in itself reported the parent's peak as its own.
        gen = subprocess.run([sys.executable, __file__, "--generate", str(path), "--runs", str(args.runs),
                              "--steps", str(args.steps)], capture_output=True, text=True)
        if gen.returncode != 0:
            print(gen.stderr, file=sys.stderr)
            return 1
        t_gen = time.perf_counter() - t
        proc = subprocess.run([sys.executable, __file__, "--measure", str(path), "--bootstrap", str(args.bootstrap)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        file_mb = path.stat().st_size / 1e6
    raw = m["rows"] * 3 * 8  # step, lr, loss as float64: one copy of the numbers
    truth = {"L0": 2.62780, "A": 0.42966, "alpha": 0.54985, "C": 0.41078}
    lines = [
        "# Scale benchmark: a large curve table",
        "",
        f"{m['rows']:,} rows ({m['runs']} runs x {args.steps:,} steps, LR logged at every step), law `lr_annealing`, "
        f"{args.bootstrap} bootstrap draws. Parquet file {file_mb:.0f} MB; generated in {t_gen:.0f} s (not timed below).",
        "",
        "| what | value |",
        "|---|---|",
        f"| load + validate (`load_curves`) | {m['load_s']:.1f} s |",
        f"| fit (multi-start on an evenly thinned copy, refined on all rows) | {m['fit_s']:.1f} s |",
        f"| peak memory after loading | {m['peak_rss_after_load'] / 1e9:.2f} GB |",
        f"| peak memory overall | {m['peak_rss'] / 1e9:.2f} GB ({m['peak_rss'] / raw:.1f}x one float64 copy of step, lr, loss) |",
        "",
        "Recovered vs true parameters: "
        + ", ".join(f"{k} {m['params'][k]:.5f} ({truth[k]})" for k in truth) + f"; objective {m['objective']:.6g}.",
        "",
    ]
    text = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
