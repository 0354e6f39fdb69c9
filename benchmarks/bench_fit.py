"""Core fitter speed on real data: Epoch's 240 Chinchilla points (../shared/data/chinchilla).

Measures, each as the median of several runs in one process: the fit (variable projection: the 25
exponent pairs of the Chinchilla grid, E, A and B solved at each) beside the same law declared without
linear parameters (the full 4,500-start grid, the fitter before projection); each + 1,000 bootstrap
draws; synthetic tables of 60 to 100,000 runs (time growth; peak memory of the largest, in a fresh
process). Start-up times are benchmarks/bench_startup.py's.
The peer is the PyPI package `chinchilla` (its log-Huber delta=1e-3 fit, default grid) in a throw-away
virtual environment (benchmarks/peer_chinchilla.py); skip it with --no-peer.
Writes benchmarks/results/fit.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "chinchilla" / "svg_extracted_data.csv"
RESULTS = ROOT / "benchmarks" / "results"


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-peer", action="store_true", help="skip the PyPI chinchilla peer (about 3 minutes)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=("epoch",), help="time one case and print it (no results file): "
                        "epoch = the Epoch fit and the fit with 1,000 draws")
    args, _ = parser.parse_known_args()
    if not DATA.exists():
        print(f"error: {DATA} not found (the shared data sets must sit beside the project)", file=sys.stderr)
        return 2
    from scalefit.data import from_frame
    from scalefit.fit import fit

    df = pd.read_csv(DATA)
    df = df[df["loss"] < sorted(df["loss"])[-5]]
    data = from_frame(df, source=str(DATA), columns={"params": "Model Size", "flops": "Training FLOP"},
                      required=["params", "tokens", "loss"])
    fit("chinchilla", data)  # warm-up: imports and first-call costs are not what we measure
    if args.only == "epoch":
        t_fit, fit_times, res = timed(lambda: fit("chinchilla", data), args.repeat)
        t_boot, boot_times, _ = timed(lambda: fit("chinchilla", data, n_bootstrap=1000, seed=0), args.repeat)
        print(f"Epoch fit: median {t_fit:.3f} s ({', '.join(f'{t:.3f}' for t in fit_times)}), objective "
              f"{res.objective:.7e}, {res.diagnostics['n_converged_best']}/{res.diagnostics['n_refined']} starts at "
              f"the best; + 1,000 draws: median {t_boot:.2f} s ({', '.join(f'{t:.2f}' for t in boot_times)})")
        return 0
    full_grid = _without_linear("chinchilla")
    t_fit, fit_times, res = timed(lambda: fit("chinchilla", data), args.repeat)
    t_grid, _, res_grid = timed(lambda: fit(full_grid, data), args.repeat)
    t_boot, boot_times, res_b = timed(lambda: fit("chinchilla", data, n_bootstrap=1000, seed=0), max(3, args.repeat // 2))
    t_boot_grid, _, _ = timed(lambda: fit(full_grid, data, n_bootstrap=1000, seed=0), max(3, args.repeat // 2))
    growth = [(n, timed(lambda n=n: fit("chinchilla", _synthetic(n), identify=False), 3 if n <= 10_000 else 1)[0])
              for n in (60, 250, 1000, 2000, 10_000, 100_000)]
    big = _peak_memory(100_000)
    small = [(n, t) for n, t in growth if n <= 10_000]
    exponent = float(np.polyfit(np.log([n for n, _ in small]), np.log([t for _, t in small]), 1)[0])
    rows = [
        (f"scalefit: fit ({res.diagnostics['n_starts']} exponent starts, E, A, B projected; "
         f"{res.diagnostics['n_converged_best']} reach the best)", f"{t_fit:.3f} s", f"{res.objective:.7e}",
         f"≥ 5x faster than the 4,500-start grid: {t_grid / t_fit:.1f}x"),
        (f"the 4,500-start grid (same law, no linear parameters declared; "
         f"{res_grid.diagnostics['n_converged_best']}/{res_grid.diagnostics['n_refined']} reach the best)",
         f"{t_grid:.3f} s", f"{res_grid.objective:.7e}", "—"),
        ("scalefit: fit + 1,000 bootstrap draws", f"{t_boot:.2f} s", f"{res_b.objective:.7e}", "< 5 s"),
        ("the 4,500-start grid + 1,000 draws (no projection)", f"{t_boot_grid:.2f} s", "", f"{t_boot_grid / t_boot:.1f}x slower"),
        *[(f"synthetic point table, {n:,} runs (fit, no draws)", f"{t:.3f} s", "", "< 60 s" if n == 100_000 else "")
          for n, t in growth],
        ("peak memory, 100,000-run fit (whole process)", f"{big:.0f} MB", "", "< 1 GB"),
        ("time growth, 60 → 10,000 runs", f"runs^{exponent:.2f}", "", "≤ 1.0"),
    ]
    peer = None
    if not args.no_peer:
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peer_chinchilla.py")],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            peer = json.loads(proc.stdout)
            rows.append((f"peer: chinchilla {peer.get('version', '')} fit (no intervals)", f"{peer['seconds']:.1f} s",
                         f"{peer['objective']:.7e}", "objective no better than scalefit's"))
        else:
            rows.append(("peer: chinchilla", "failed", proc.stderr.strip().splitlines()[-1:] or "", ""))
    lines = [
        "# Core fitter benchmark",
        "",
        f"Data: Epoch's 240 Chinchilla points. Machine: {_machine()}. Medians of {args.repeat} runs "
        f"(fit) / {max(3, args.repeat // 2)} runs (fit + draws), measured in one process.",
        "",
        "| what | time | summed Huber objective | target |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
    ]
    if peer:
        ratio = peer["seconds"] / t_boot
        lines.append(f"scalefit's fit with 1,000 bootstrap draws is {ratio:.0f}x faster than the peer's fit "
                     f"without intervals; objective difference (peer - scalefit) = {peer['objective'] - res.objective:.3e}.")
        lines.append("")
    lines.append(f"All fit times (s): {', '.join(f'{t:.2f}' for t in fit_times)}; with draws: "
                 f"{', '.join(f'{t:.2f}' for t in boot_times)}.")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fit.md").write_text(text)
    print(text)
    return 0


def _without_linear(name: str):
    """The law with no parameter declared linear: fitted the way scalefit did before variable projection
    (every start of the grid, coefficients included), for the side-by-side figure."""
    from scalefit.law import Param
    from scalefit.registry import get_law

    law = get_law(name)
    params = {n: Param(p.bounds, p.init, log=p.log, doc=p.doc, edges=p.edges) for n, p in law.params.items()}
    return type(f"{type(law).__name__}Grid", (type(law),), {"name": f"{name}_grid", "params": params})()


def _synthetic(n: int, seed: int = 0):
    """n runs from Epoch's Chinchilla parameters: N log-uniform in 1e7-1e10, 2-200 tokens per parameter,
    2 % log-normal noise."""
    from scalefit.data import from_frame
    from scalefit.registry import get_law

    law = get_law("chinchilla")
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = N * np.exp(rng.uniform(np.log(2), np.log(200), n))
    y = law.predict(law.reference_theta("epoch")[None], {"logN": np.log(N), "logD": np.log(D)})[0]
    frame = pd.DataFrame({"params": N, "tokens": D, "loss": y * np.exp(rng.normal(0, 0.02, n))})
    return from_frame(frame, source=f"<{n} synthetic runs>", required=["params", "tokens", "loss"])


def _peak_memory(n: int) -> float:
    """Peak resident memory (MB) of a fresh process that builds and fits an n-run synthetic table."""
    code = ("import resource, sys; sys.path.insert(0, sys.argv[1]); from bench_fit import _synthetic; "
            "from scalefit.fit import fit; fit('chinchilla', _synthetic(int(sys.argv[2])), identify=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(n)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _machine() -> str:
    import os
    import platform

    return f"{os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
