"""Benchmark the peer tool, PyPI `chinchilla`, on Epoch's 240 Chinchilla points; print one JSON object.

    python benchmarks/peer_chinchilla.py [--repeat K] [--grid default|small|paper]

The peer lives in a throw-away virtual environment (benchmarks/.venv-chinchilla, git-ignored; see
benchmarks/peers/_venv.py) so its pins (pandas, pydantic, seaborn, ...) never touch scalefit's
environment; it is created on first use and reused while it still imports the pinned version.
Install output goes to stderr.

What is timed: one call of the peer's `Chinchilla.fit()` (BFGS from every point of the starting
grid, log-Huber loss with delta = 1e-3), wall clock, excluding imports and data loading. The
objective is recomputed here as scalefit defines it, sum_i Huber_delta(log L_hat_i - log L_i)
(benchmarks/peers), because the peer minimises the *mean* of that and in np.longdouble.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from peers import DATA, DELTA, epoch_points, huber_log_objective, write_runs_csv
from peers._venv import PeerEnv, PeerUnavailable, run_json

PEER = "chinchilla"
PEER_VERSION = "0.2.0"  # newest on PyPI when written; the API below is read from this version's core.py
PEER_ENV = PeerEnv(PEER, PEER, PEER_VERSION, (f"{PEER}=={PEER_VERSION}",))

# Runs inside the peer's venv. Input: one JSON argument (the runs CSV has Epoch's 240 points, already
# filtered, as benchmarks/peers writes them); output: one JSON line on stdout.
INNER = r"""
import json, os, statistics, sys, tempfile, time
import numpy as np
import pandas as pd
from chinchilla import Chinchilla
from chinchilla._metrics import log_huber

cfg = json.loads(sys.argv[1])
delta = cfg["delta"]

df = pd.read_csv(cfg["runs"])
N = df["params"].to_numpy(float)
D = df["tokens"].to_numpy(float)
C = 6 * N * D
L = df["loss"].to_numpy(float)

# The peer has no built-in starting grid; `param_grid` is required. Key order matters: fit() unpacks
# x positionally as (E, A, B, alpha, beta). Lower-case e/a/b mean the grid is in log space.
lin = np.linspace
grids = {
    # README's "fitting the scaling law on existing dataset" example: 5^5 = 3,125 starts
    "default": dict(E=lin(1, 2, 5), a=lin(1, 10, 5), b=lin(1, 10, 5), alpha=lin(0.1, 0.7, 5), beta=lin(0.1, 0.7, 5)),
    # same ranges, 3 points per axis: 243 starts, for quick checks
    "small": dict(E=lin(1, 2, 3), a=lin(1, 10, 3), b=lin(1, 10, 3), alpha=lin(0.1, 0.7, 3), beta=lin(0.1, 0.7, 3)),
    # Hoffmann et al.'s grid, the one scalefit uses: 4,500 starts
    "paper": dict(e=np.arange(-1, 1.5, 0.5), a=np.arange(0, 30, 5.0), b=np.arange(0, 30, 5.0),
                  alpha=np.arange(0, 2.5, 0.5), beta=np.arange(0, 2.5, 0.5)),
}
grid = grids[cfg["grid"]]
n_starts = int(np.prod([len(v) for v in grid.values()]))

def loss_fn(y_true, y_pred):  # a named function, not a partial: the peer logs loss_fn.__name__
    return log_huber(y_true, y_pred, delta=delta)

with tempfile.TemporaryDirectory() as project:
    # The peer reads its runs from <project_dir>/df.csv (and writes plots there)
    pd.DataFrame({"C": C, "N": N, "D": D, "loss": L}).to_csv(os.path.join(project, "df.csv"), index=False,
                                                             float_format="%.17g")
    cc = Chinchilla(project, param_grid=grid, loss_fn=loss_fn, log_level=40)  # 40: no logs, no progress bar
    times = []
    for _ in range(cfg["repeat"]):
        t = time.perf_counter()
        cc.fit()  # default parallel=True: multiprocessing.Pool(os.cpu_count())
        times.append(time.perf_counter() - t)
    params = cc.get_params()

print(json.dumps({"seconds": statistics.median(times), "times": times, "params": params,
                  "n_starts": n_starts, "n_points": int(len(L)), "cpus": os.cpu_count()}))
"""


def fail(msg: str) -> None:
    print(f"peer_chinchilla: error: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="fits to time; the median is reported (default 1)")
    parser.add_argument("--grid", choices=["default", "small", "paper"], default="default",
                        help="starting grid: default = the peer README's 3,125 starts; small = 243 starts; "
                             "paper = Hoffmann et al.'s 4,500 starts (scalefit's)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not DATA.is_file():
        fail(f"data file not found: {DATA}")
    points = epoch_points()
    try:
        python = PEER_ENV.ensure()
        with tempfile.TemporaryDirectory() as tmp:
            runs = write_runs_csv(Path(tmp) / "epoch240.csv", *points)
            cfg = {"runs": str(runs), "grid": args.grid, "repeat": args.repeat, "delta": DELTA}
            # MPLBACKEND=Agg: fit() always draws and saves a plot; never try to open a window
            env = {**os.environ, "MPLBACKEND": "Agg"}
            res = run_json([str(python), "-c", INNER, json.dumps(cfg)], env=env).out
    except PeerUnavailable as exc:
        fail(f"peer fit failed: {exc}")

    grid_label = {"default": "peer README example grid", "small": "reduced 3^5 grid (NOT the default)",
                  "paper": "Hoffmann et al. grid (as scalefit)"}[args.grid]
    out = {
        "tool": PEER,
        "version": PEER_VERSION,
        "seconds": res["seconds"],
        "times": res["times"],
        "objective": huber_log_objective(res["params"], *points),
        "params": res["params"],
        "n_starts": res["n_starts"],
        "n_points": res["n_points"],
        "grid": args.grid,
        "notes": (f"{grid_label}; Chinchilla.fit(): scipy BFGS from every start, np.longdouble, "
                  f"multiprocessing.Pool({res['cpus']}); loss_fn=log_huber(delta={DELTA}), which the peer averages "
                  "(objective here is the sum, recomputed in float64); time includes pool start-up and the "
                  "plot fit() always saves; no intervals (the peer has none)."),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
