"""What the peer benchmarks share: the data they fit, the objective they are scored on, and the table format.

Every tool reads the same CSV (columns run, params, tokens, loss; floats written with 17 digits) and hands
back (E, A, B, alpha, beta) of L = E + A / N^alpha + B / D^beta in raw units; `huber_log_objective`
then scores all of them on scalefit's objective, so a tool that minimises something else (a mean, least
squares, Huber on raw losses) is compared on the same footing. The throw-away virtual environments the
peers live in are in `_venv.py`; the scripts that run inside them are `run_*.py` beside this file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "chinchilla" / "svg_extracted_data.csv"
DELTA = 1e-3
PARAM_NAMES = ("E", "A", "B", "alpha", "beta")

# Besiroglu et al. 2024 (arXiv:2404.10102), the refit of Chinchilla on these 240 points; scalefit's
# `chinchilla` law carries the same numbers as its "epoch" reference.
EPOCH_PARAMS = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def epoch_points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, D, L of Epoch's 240 points: their filter drops the 5 highest losses; D = C / (6 N)."""
    with open(DATA, newline="") as fh:
        rows = [(float(r["Model Size"]), float(r["Training FLOP"]), float(r["loss"])) for r in csv.DictReader(fh)]
    n, c, loss = np.array(rows).T
    keep = loss < np.sort(loss)[-5]
    return n[keep], c[keep] / (6 * n[keep]), loss[keep]


def synthetic_points(n_runs: int, seed: int = 0, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n_runs points drawn from Epoch's fitted law with log-normal noise (sd `noise` in log loss).

    N and D are log-uniform over the ranges Epoch's 240 points span, so tables of every size cover the
    same region and only the number of runs changes.
    """
    n, d, _ = epoch_points()
    rng = np.random.default_rng(seed)
    log_n = rng.uniform(np.log(n.min()), np.log(n.max()), n_runs)
    log_d = rng.uniform(np.log(d.min()), np.log(d.max()), n_runs)
    clean = predict(EPOCH_PARAMS, np.exp(log_n), np.exp(log_d))
    return np.exp(log_n), np.exp(log_d), clean * np.exp(rng.normal(0.0, noise, n_runs))


def write_runs_csv(path: Path, n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> Path:
    """One row per run; the `run` column is there for tools that need a run id (SSL)."""
    with open(path, "w") as fh:
        fh.write("run,params,tokens,loss\n")
        fh.writelines(f"run{i:06d},{a:.17g},{b:.17g},{c:.17g}\n" for i, (a, b, c) in enumerate(zip(n, d, loss)))
    return path


def read_runs_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3), ndmin=2)
    return table[:, 0], table[:, 1], table[:, 2]


def predict(params: dict, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return params["E"] + params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"]


def huber_log_objective(params: dict, n: np.ndarray, d: np.ndarray, loss: np.ndarray, delta: float = DELTA) -> float:
    """scalefit's objective: sum_i Huber_delta(log L_hat_i - log L_i), in float64 (NaN if a prediction is <= 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(predict(params, n, d)) - np.log(loss)
    a = np.abs(r)
    return float(np.sum(np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))))
