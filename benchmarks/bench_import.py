"""Speed of `scalefit import tensorboard` on a folder of 10 runs x 20,000 steps (loss and LR at every step).

    python benchmarks/bench_import.py [--runs 10] [--steps 20000] [--repeat 1]

The event files are written first to a temporary folder, as PyTorch's SummaryWriter writes them (one
event per scalar, through TensorBoard's own EventFileWriter), one process per run; only the import is
timed. Prints a markdown table and writes it to benchmarks/results/import.md. Needs the extra
`pip install 'scalefit[tensorboard]'`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "import.md"


def write_run(folder: str, steps: int, seed: int) -> None:
    """One run's event file: train/loss and lr at every step, one event per scalar (as PyTorch logs)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    lr = 3e-4 * np.minimum(1.0, (t + 1) / 1000) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / steps)))
    loss = 2.5 + 4.0 / np.sqrt(1.0 + t / 50) + rng.normal(0, 0.01, steps)
    writer = EventFileWriter(folder)
    for step in range(steps):
        for tag, value in (("train/loss", loss[step]), ("lr", lr[step])):
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
            writer.add_event(Event(step=step, wall_time=time.time(), summary=summary))
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1)
    args, _ = parser.parse_known_args()
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        print("bench_import: skipped (pip install 'scalefit[tensorboard]')")
        return 0
    from joblib import Parallel, delayed

    from scalefit._io import atomic_write
    from scalefit.importers import import_runs, write_import

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tb"
        t0 = time.perf_counter()
        Parallel(n_jobs=-1)(delayed(write_run)(str(folder / f"run{i:02d}"), args.steps, i) for i in range(args.runs))
        written = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        results = {}
        for jobs in (1, -1):
            times, cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                imported = import_runs("tensorboard", [folder], jobs=jobs)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            results[jobs] = (statistics.median(times), statistics.median(cpu), imported.frame)
        t0 = time.perf_counter()
        write_import(imported, Path(tmp) / "runs.parquet")
        wrote = time.perf_counter() - t0
    scalars = 2 * args.runs * args.steps
    header = "| task | time | scalars/s | result |\n|---|---|---|---|\n"
    rows, whole = [], True
    for jobs, (elapsed, cpu_s, frame) in results.items():
        complete = len(frame) == args.runs * args.steps and int(frame["loss"].notna().sum()) == args.runs * args.steps
        whole &= complete
        workers = f"--jobs {jobs}" + (f" ({os.cpu_count()} CPUs)" if jobs == -1 else "")
        rows.append(f"| import tensorboard {workers}: {args.runs} runs x {args.steps:,} steps (loss + LR every step, "
                    f"{size / 2**20:.0f} MiB of event files) | {elapsed:.2f} s | {scalars / elapsed:,.0f} | "
                    f"{len(frame):,} rows, {'every step kept' if complete else 'ROWS MISSING'}"
                    f"{f'; {cpu_s:.1f} s of CPU' if jobs == 1 else ''} |")
    rows.append(f"| write the imported table as parquet | {wrote:.2f} s | – | {len(frame):,} rows |")
    body = header + "\n".join(rows) + "\n"
    text = (f"# scalefit import benchmark\n\nMedian of {args.repeat} run(s); {platform.machine()}, {os.cpu_count()} "
            f"cores, Python {platform.python_version()}. Writing the event files (not timed) took {written:.0f} s. "
            f"TensorBoard's record reader is pure Python (its CRC check included) unless TensorFlow is installed; "
            f"--jobs reads run folders in parallel processes.\n\n{body}")
    print(body)
    atomic_write(OUT, text, force=True)
    return 0 if whole else 1


if __name__ == "__main__":
    sys.exit(main())
