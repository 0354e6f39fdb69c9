"""Memory: peak resident memory of a 1M-row curve fit, per curve law, against the size of the data.

A seeded synthetic table (``bench_scale.generate``: cosine, WSD and constant schedules in turn, the LR at
every step, 0.5 % log-noise on the law's own reference losses) is written to a temporary directory for
each law; loading and fitting then run in a fresh process per law, which reports its peak resident
memory (``ru_maxrss``) after the imports, after loading and overall, with wall times. The block budget in
force (``SCALEFIT_BLOCK_MEMORY``, default 48 MiB) is recorded beside the numbers. Writes
benchmarks/results/memory.md.

Options: --laws LAW:RUNSxSTEPS,... (default lr_annealing:50x20000,multipower:20x5000: 1M rows for
lr_annealing; multipower's fit costs far more per row (every logged point sums over the LR changes before
it), so its table is smaller), --out (default benchmarks/results/memory.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import generate  # noqa: E402  (one generator for both large-table benchmarks)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_MB = 400  # issue 13: a 1M-row curve fit peaks at or below this


def _peak() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(path: str, law: str) -> dict:
    """In a fresh process: import, load, fit; the peak resident memory after each."""
    t = time.perf_counter()
    import numpy  # noqa: F401  (the floor every fit pays, counted apart)
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.optimize  # noqa: F401

    from scalefit.curves import load_curves
    from scalefit.fit import fit
    from scalefit.limits import limit

    t_import, rss_import = time.perf_counter() - t, _peak()
    t = time.perf_counter()
    data = load_curves(path)
    t_load, rss_load = time.perf_counter() - t, _peak()
    t = time.perf_counter()
    result = fit(law, data, seed=0)
    t_fit = time.perf_counter() - t
    return {
        "law": law, "rows": len(data), "runs": data.n_runs, "import_s": t_import, "load_s": t_load, "fit_s": t_fit,
        "peak_after_import": rss_import, "peak_after_load": rss_load, "peak": _peak(),
        "block_bytes": limit("block_bytes"), "objective": result.objective,
        "params": {k: e.value for k, e in result.params.items()},
    }


def _child(*args: str) -> str:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: the child process failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def run_one(law: str, runs: int, steps: int, tmp: Path) -> dict:
    """Generate, then measure, each in its own process. This one stays small (no numpy): Linux keeps a
    process's peak RSS across exec, so a child started from a large parent would report the parent's."""
    path = tmp / f"{law}.parquet"
    t = time.perf_counter()
    _child("--generate", str(path), "--law", law, "--runs", str(runs), "--steps", str(steps))
    t_gen = time.perf_counter() - t
    m = json.loads(_child("--measure", str(path), "--law", law))
    m.update(gen_s=t_gen, file_bytes=path.stat().st_size, steps=steps)
    return m


def report(results: list[dict]) -> str:
    mb = 1e6
    lines = [
        "# Memory benchmark: a 1M-row curve fit",
        "",
        "Synthetic curve tables (`bench_scale.generate`: cosine, WSD and constant schedules in turn, the LR at "
        "every step, losses from step 1 with 0.5 % log-noise), one per law, each loaded and fitted (no bootstrap) "
        "in a fresh process. Peak = `ru_maxrss` of that process. Data = one float64 copy of step, lr and loss "
        f"(24 bytes a row). Target (issue 13): a 1M-row curve fit peaks at or below {TARGET_MB} MB.",
        "",
        "| law | runs x steps | rows | data | peak after imports | peak after load | peak overall | "
        "overall - imports | load | fit | block budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in results:
        data = 24 * m["rows"]
        lines.append(
            f"| {m['law']} | {m['runs']} x {m['steps']:,} | {m['rows']:,} | {data / mb:.0f} MB | "
            f"{m['peak_after_import'] / mb:.0f} MB | "
            f"{m['peak_after_load'] / mb:.0f} MB | **{m['peak'] / mb:.0f} MB** | "
            f"{(m['peak'] - m['peak_after_import']) / mb:.0f} MB ({(m['peak'] - m['peak_after_import']) / data:.1f}x data) | "
            f"{m['load_s']:.1f} s | {m['fit_s']:.1f} s | {m['block_bytes'] / 2**20:.0f} MiB |")
    lines += ["", "Fitted parameters and objective:", ""]
    for m in results:
        lines.append(f"- {m['law']}: " + ", ".join(f"{k} {v:.6g}" for k, v in m["params"].items())
                     + f"; objective {m['objective']:.10g}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--laws", default="lr_annealing:50x20000,multipower:20x5000")
    parser.add_argument("--runs", type=int, help=argparse.SUPPRESS)  # for the children
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "memory.md"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--law", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:  # multipower needs some LR area: losses from step 1 (for both laws, one table shape)
        generate(Path(args.generate), args.runs, args.steps, args.law, first_step=1)
        print("ok")
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, args.law)))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.laws.split(","):
            law, _, size = item.strip().partition(":")
            runs, _, steps = (size or "50x20000").partition("x")
            results.append(run_one(law, int(runs), int(steps), Path(tmp)))
            print(json.dumps(results[-1]), file=sys.stderr)
    text = report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
