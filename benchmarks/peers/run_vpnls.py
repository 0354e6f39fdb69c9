"""Runs inside benchmarks/.venv-vpnls: one vpnls fit of L = E + A/N^alpha + B/D^beta; prints one JSON line.

    python run_vpnls.py RUNS.csv grid|scipy [--resolution 0.01] [--delta 1e-3]

`grid` is vpnls's Cython search over (alpha, beta) with (E, A, B) solved at every grid point;
`scipy` is that grid followed by L-BFGS-B over (alpha, beta). Huber loss with the given delta, as its
README fits real data: N in millions and D in billions. The parameters are converted back to raw
units (A * 1e6^alpha, B * 1e9^beta) so the harness can score them. Only numpy and vpnls are
imported here: this file runs in the peer's environment, not scalefit's.
"""

import argparse
import json

import numpy as np
from vpnls.api import fit_vpnls, huber

N_UNIT, D_UNIT = 1e6, 1e9

parser = argparse.ArgumentParser()
parser.add_argument("runs")
parser.add_argument("method", choices=["grid", "scipy"])
parser.add_argument("--resolution", type=float, default=0.01)
parser.add_argument("--delta", type=float, default=1e-3)
args = parser.parse_args()

table = np.loadtxt(args.runs, delimiter=",", skiprows=1, usecols=(1, 2, 3), ndmin=2)
n, d, loss = table[:, 0], table[:, 1], table[:, 2]
res = fit_vpnls(n / N_UNIT, d / D_UNIT, loss, method=args.method, resolution=args.resolution,
                loss=huber(args.delta))
params = {"E": res.E, "A": res.A * N_UNIT**res.alpha, "B": res.B * D_UNIT**res.beta,
          "alpha": res.alpha, "beta": res.beta}
print(json.dumps({"params": {k: float(v) for k, v in params.items()}, "status": res.status.value,
                  "status_message": res.status_message, "own_objective": float(res.loss_value)}))
