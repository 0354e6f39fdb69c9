"""Cluster: a `compare` sweep (point laws x holdouts x real data sets) serial, with --jobs 2 (loky), on two
local dask clusters (2 worker processes x 1 thread each: one set up as the README recommends -- scheduler
worker-saturation 1.0, workers' profiler off -- and one with dask's defaults) and on a local ray instance
(2 CPUs, if ray is installed); then coarse tasks, one fit's bootstrap draws (--draws, on the first table:
Epoch's), the same five ways.

Each data set is one `scalefit.backtest.compare` call whose tasks are whole backtests (law x holdout); the
table goes to the workers once per call. Every path must return the serial rows (wall times aside). Paths
are timed in alternation, after a warm-up sweep that starts their workers (its time is reported as the cold
start; the clusters' own start-up is reported beside it): medians of --repeats (default 3).

A second table measures the shipping itself: 8 tasks that each read a 1M-row Chinchilla problem (30 MiB),
the problem passed as a plain argument of every task vs sent once (:func:`scalefit.bootstrap.parallel_map`).

Writes benchmarks/results/cluster.md. Options: --repeats N, --laws a,b, --holdouts largest,largest:2,
--draws N (0: no bootstrap table), --no-shipping.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
# The README's settings for a dask cluster that runs scalefit's sweeps: the scheduler keeps tasks beyond one
# per thread in its own queue (scalefit then sends a whole sweep at once), and the workers do not sample
# their own stacks every 10 ms (a few per cent of a CPU-bound fit's time).
RECOMMENDED_DASK = {"distributed.scheduler.worker-saturation": 1.0, "distributed.worker.profile.enabled": False}


def datasets() -> list:
    """Epoch's 240 Chinchilla runs (the 5 highest losses dropped, as Epoch does) and Gadre et al.'s three
    corpora (final C4 validation loss), as the tests load them; absent files are skipped."""
    import pandas as pd

    from scalefit.data import from_frame
    from scalefit.rowsets import group_rows

    out = []
    epoch = SHARED / "chinchilla" / "svg_extracted_data.csv"
    if epoch.exists():
        df = pd.read_csv(epoch)
        df = df[df["loss"] < sorted(df["loss"])[-5]].reset_index(drop=True)
        out.append(from_frame(df, source="epoch240", columns={"params": "Model Size", "flops": "Training FLOP"},
                              required=["params", "tokens", "loss"]))
    gadre = SHARED / "gadre" / "gadre2024_final_losses.csv"
    if gadre.exists():
        corpora, _ = group_rows(pd.read_csv(gadre), "dataset", str(gadre))
        out += [from_frame(rows, source=f"gadre:{corpus}", columns={"run": "name", "loss": "loss_c4_val"},
                           required=["params", "tokens", "loss"]) for corpus, rows in corpora.items()]
    return out


def sweep(laws, sets, holdouts, jobs: int, backend: str) -> tuple[float, list]:
    from scalefit.backtest import compare

    t0 = time.perf_counter()
    rows = [row for data in sets for row in compare(laws, data, holdouts, jobs=jobs, backend=backend)]
    return time.perf_counter() - t0, rows


def on(client):
    """Make ``client`` (a path's dask Client) the current one while a path runs; nothing for the others."""
    return client.as_current() if client is not None else contextlib.nullcontext()


def draws(data, n_draws: int, jobs: int, backend: str, seed: int) -> tuple[float, object]:
    """One Chinchilla fit of ``data`` with ``n_draws`` bootstrap draws: (seconds, the draws)."""
    from scalefit.fit import fit

    t0 = time.perf_counter()
    res = fit("chinchilla", data, n_bootstrap=n_draws, seed=seed, jobs=jobs, backend=backend)
    return time.perf_counter() - t0, res.draws


def same(rows, expected) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    return len(rows) == len(expected) and all(strip(a) == strip(b) for a, b in zip(rows, expected))


def _touch(problem, i: int) -> float:
    return float(problem.logy[i])


def shipping(backends: list[str], clients: dict, repeats: int) -> list[tuple[str, float, float]]:
    """(backend, median s for 8 tasks with the problem in every task, median s with it sent once), on
    ``backends`` (loky, dask -- the Client in ``clients`` -- and ray)."""
    import numpy as np
    import pandas as pd
    from joblib import Parallel, delayed, parallel_config

    from scalefit.bootstrap import _exit_with_parent, parallel_map
    from scalefit.data import from_frame
    from scalefit.parameterization import Parameterization
    from scalefit.registry import get_law
    from scalefit.solver import Problem, RobustLoss

    n = 1_000_000
    rng = np.random.default_rng(0)
    law = get_law("chinchilla")
    frame = pd.DataFrame({"params": 10 ** rng.uniform(7, 10, n), "tokens": 10 ** rng.uniform(9, 12, n),
                          "loss": 3 + rng.random(n)})
    data = from_frame(frame, required=["params", "tokens", "loss"])
    problem = Problem(law, law.prepare(data), data.column("loss"), None, Parameterization(law), RobustLoss("huber", 1e-3))
    want = [float(problem.logy[i]) for i in range(8)]
    out = []
    if "ray" in backends:  # joblib's ray backend, for the problem-in-every-task column (scalefit runs ray's own tasks)
        from ray.util.joblib import register_ray

        register_ray()
    for backend in backends:
        with on(clients.get(backend)):
            per_task, once = [], []
            list(parallel_map(_touch, problem, [(0,), (1,)], 2, backend))  # workers up
            # loky: the initializer parallel_map gives its workers, so that both calls share one pool of workers
            own = {"initializer": _exit_with_parent, "initargs": (os.getpid(),)} if backend == "loky" else {}
            for _ in range(repeats):
                t0 = time.perf_counter()
                with parallel_config(backend=backend, n_jobs=2, **own), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # dask warns of the large object in every task: that is the point
                    got = Parallel()(delayed(_touch)(problem, i) for i in range(8))
                per_task.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                got2 = list(parallel_map(_touch, problem, [(i,) for i in range(8)], 2, backend))
                once.append(time.perf_counter() - t0)
                assert got == want and got2 == want
        out.append((backend, statistics.median(per_task), statistics.median(once)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--laws", default="chinchilla,kaplan,kaplan_e")
    ap.add_argument("--holdouts", default="largest,largest:2")
    ap.add_argument("--no-shipping", action="store_true")
    ap.add_argument("--draws", type=int, default=4000, help="bootstrap draws of the second table (0: skip it)")
    args, _ = ap.parse_known_args(argv)  # `make bench` passes its own arguments to every script

    import joblib
    import numpy as np

    from scalefit.fit import connect_backend
    from scalefit.registry import get_law

    began = time.perf_counter()
    laws = [get_law(n) for n in args.laws.split(",")]
    holdouts = args.holdouts.split(",")
    sets = datasets()
    if not sets:
        print("bench_cluster: no shared data under ../shared/data; nothing measured", file=sys.stderr)
        return 0
    load0 = os.getloadavg()[0]
    paths = {"serial": (1, "loky"), "loky": (2, "loky")}
    clients: dict = {}  # path -> its dask Client, made current while that path runs
    startup, versions = {}, {"joblib": joblib.__version__}
    cleanup = []
    try:  # all that starts here is closed in the finally below
        try:
            import dask
            import distributed

            for name, settings in (("dask", RECOMMENDED_DASK), ("dask-defaults", {})):
                t0 = time.perf_counter()
                with dask.config.set(settings):  # read by the scheduler and the workers as they start
                    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0", silence_logs=logging.ERROR)
                clients[name] = distributed.Client(cluster, set_as_default=False)
                startup[name] = time.perf_counter() - t0
                cleanup += [clients[name].close, cluster.close]
                with clients[name].as_current():
                    connect_backend("dask")
                paths[name] = (2, "dask")
            versions["dask"] = distributed.__version__
        except ImportError:
            print("bench_cluster: dask[distributed] not installed; dask not measured", file=sys.stderr)
        try:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
            startup["ray"] = time.perf_counter() - t0
            cleanup.append(ray.shutdown)
            connect_backend("ray")
            paths["ray"] = (2, "ray")
            versions["ray"] = ray.__version__
        except ImportError:
            print("bench_cluster: ray not installed; ray not measured", file=sys.stderr)

        times: dict[str, list[float]] = {p: [] for p in paths}
        cold, identical = {}, {}
        reference = None
        for name, (jobs, backend) in paths.items():  # warm-up: starts each path's workers, checks its rows
            with on(clients.get(name)):
                seconds, rows = sweep(laws, sets, holdouts, jobs, backend)
            cold[name] = seconds
            reference = rows if reference is None else reference
            identical[name] = same(rows, reference)
            print(f"{name}: cold sweep {seconds:.2f} s, rows identical to serial: {identical[name]}", flush=True)
        for r in range(args.repeats):  # alternated, so that the machine's load falls on every path alike
            for name, (jobs, backend) in (list(paths.items()) if r % 2 == 0 else list(paths.items())[::-1]):
                with on(clients.get(name)):
                    seconds, _ = sweep(laws, sets, holdouts, jobs, backend)
                times[name].append(seconds)
                print(f"{name}: repeat {r + 1}: {seconds:.2f} s", flush=True)
        # Coarse tasks: one fit's bootstrap draws, in chunks (a few per worker), on Epoch's table.
        boot: dict[str, list[float]] = {p: [] for p in paths}
        boot_same = {}
        if args.draws:
            want = None
            for name, (jobs, backend) in paths.items():  # warm-up, and the draws must equal the serial ones
                with on(clients.get(name)):
                    _, got = draws(sets[0], args.draws, jobs, backend, seed=0)
                want = got if want is None else want
                boot_same[name] = bool(np.array_equal(got, want, equal_nan=True))
            for r in range(args.repeats):
                for name, (jobs, backend) in (list(paths.items()) if r % 2 == 0 else list(paths.items())[::-1]):
                    with on(clients.get(name)):
                        boot[name].append(draws(sets[0], args.draws, jobs, backend, seed=r + 1)[0])
                    print(f"{name}: draws {r + 1}: {boot[name][-1]:.2f} s", flush=True)
        ship = [] if args.no_shipping else shipping([b for b in ("loky", "dask", "ray") if b in paths], clients,
                                                    args.repeats)
    finally:
        for close in cleanup:
            close()
    load1 = os.getloadavg()[0]

    med = {p: statistics.median(t) for p, t in times.items()}
    # Each round times every path back to back: the ratio within a round cancels most of the drift in load.
    paired = {p: statistics.median(a / b for a, b in zip(times[p], times["loky"])) for p in paths}
    n_tasks = len(laws) * len(holdouts)
    lines = [
        "# Cluster: a `compare` sweep serial, `--jobs 2` (loky), dask and ray",
        "",
        f"Sweep: laws {', '.join(law.name for law in laws)} x holdouts {', '.join(holdouts)} on "
        f"{', '.join(f'{d.source} ({len(d)} rows)' for d in sets)}: {len(sets)} `compare` calls of {n_tasks} "
        f"backtests each ({len(sets) * n_tasks} fits). Every path returned the serial rows (wall times aside): "
        f"{', '.join(p + (' yes' if ok else ' NO') for p, ok in identical.items())}.",
        "",
        f"Medians of {args.repeats} sweeps, paths alternated (each round in the other order), after a warm-up sweep per path (its time: *cold*, "
        f"which includes starting loky's workers). dask: `LocalCluster(n_workers=2, threads_per_worker=1)` "
        f"(processes), set up as the README recommends (scheduler worker-saturation 1.0, the workers' profiler "
        f"off: the 6 backtests of a call go out at once, as one graph, and the scheduler hands them out), and "
        f"*dask-defaults*, "
        f"a second such cluster with dask's defaults (saturation 1.1 and the profiler on; scalefit then sends "
        f"one task per free worker); ray: "
        f"`ray.init(num_cpus=2)`, all 6 at once (ray's scheduler hands them out). All run scalefit's own tasks "
        f"(`parallel_map`); the clusters' own start-up is listed apart. Both dask clusters and ray stay up "
        f"throughout, so every path shares the machine with their idle processes. *Same round vs loky*: "
        f"the median over rounds of each round's time over loky's in that round.",
        "",
        "| path | median s | sweeps (s) | vs serial | vs loky --jobs 2 | same round vs loky | cold sweep s | "
        "cluster start s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for p in paths:
        start = f"{startup[p]:.1f}" if p in startup else "–"
        lines.append(f"| {p} | {med[p]:.2f} | {', '.join(f'{t:.2f}' for t in times[p])} | "
                     f"{med[p] / med['serial']:.2f}x | {med[p] / med['loky']:.2f}x | {paired[p]:.2f}x | "
                     f"{cold[p]:.2f} | {start} |")
    if args.draws:
        b_med = {p: statistics.median(t) for p, t in boot.items()}
        b_pair = {p: statistics.median(a / b for a, b in zip(boot[p], boot["loky"])) for p in paths}
        lines += [
            "",
            f"## Coarse tasks: {args.draws:,} bootstrap draws",
            "",
            f"One Chinchilla fit of {sets[0].source} with {args.draws:,} bootstrap draws, sent as a few chunks of "
            f"draws per worker; medians of {args.repeats}, paths alternated (each round in the other order), after "
            f"a warm-up fit per path whose draws equal the serial ones: "
            f"{', '.join(p + (' yes' if ok else ' NO') for p, ok in boot_same.items())}.",
            "",
            "| path | median s | fits (s) | vs serial | same round vs loky |",
            "|---|---:|---|---:|---:|",
        ]
        lines += [f"| {p} | {b_med[p]:.2f} | {', '.join(f'{t:.2f}' for t in boot[p])} | "
                  f"{b_med[p] / b_med['serial']:.2f}x | {b_pair[p]:.2f}x |" for p in paths]
    if ship:
        lines += [
            "",
            "## Shipping the table once",
            "",
            "8 tasks on 2 workers, each reading a 1M-row Chinchilla problem (30 MiB pickled): the problem as a "
            f"plain argument of every task (joblib's `{'`, `'.join(b for b, _, _ in ship)}` backends) vs sent once by "
            "`parallel_map` (dask: scattered to every worker; ray: `ray.put` once, and ray's own tasks instead of "
            "joblib's ray backend, which starts a fresh actor pool on every call; loky: the same call both ways -- "
            "joblib memory-maps the arrays over 1 MB, written once per call and re-hashed for every batch). "
            f"Medians of {args.repeats}, workers already up.",
            "",
            "| backend | problem in every task (s) | sent once (s) |",
            "|---|---:|---:|",
        ]
        lines += [f"| {b} | {a:.3f} | {o:.3f} |" for b, a, o in ship]
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, {', '.join(f'{k} {v}' for k, v in versions.items())}; load average "
        f"{load0:.1f} before, {load1:.1f} after (its own workers included). Whole benchmark "
        f"{time.perf_counter() - began:.0f} s.",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(identical.values()) and all(boot_same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
