"""Shared test data: a synthetic Chinchilla sweep, and hypothesis strategies for hostile run tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def chinchilla_frame(theta=EPOCH, sizes=5, budgets=5, noise=0.01, seed=0, n_max=2e9) -> pd.DataFrame:
    """A sweep of model sizes x token budgets (5-80 tokens/param) with log-normal noise."""
    rng = np.random.default_rng(seed)
    n, tpp = np.meshgrid(np.geomspace(1e8, n_max, sizes), np.geomspace(5, 80, budgets), indexing="ij")
    n, d = n.ravel(), (n * tpp).ravel()
    loss = theta["E"] + theta["A"] / n ** theta["alpha"] + theta["B"] / d ** theta["beta"]
    return pd.DataFrame({"params": n, "tokens": d, "loss": loss * np.exp(rng.normal(0, noise, n.size))})


def lmfit_chinchilla(res, data, vary_fixed: bool = False):
    """An independent lmfit model of a Chinchilla fit on ``data`` (log residuals written out by hand) and
    its Parameters started at ``res``'s estimates; fixed ones stay fixed unless ``vary_fixed``."""
    import lmfit

    N, D, y = data.column("params"), data.column("tokens"), data.column("loss")

    def resid(p):
        v = p.valuesdict()
        return np.log(v["E"] + v["A"] * N ** -v["alpha"] + v["B"] * D ** -v["beta"]) - np.log(y)

    params = lmfit.Parameters()
    for name, e in res.params.items():
        params.add(name, value=e.value, vary=vary_fixed or e.status == "free", min=0)
    return resid, params


# ---------------------------------------------------------------------- hostile tables
_weird_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e-320, 5e-324, 1e308, 1.7976931348623157e308, -0.0, 1e-300, 1e300]),
)
_cells = st.one_of(
    _weird_floats,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.sampled_from(["7B", "1.4T", "350M", "5.8e23", "1e9", "7 B", "7BB", "B7", "1,000", "1_000", "nan", "inf",
                     "-3", "", " ", "0x10", "1e999", "七", "NaN", "true", "7b", "12 params", "1.4 T", "∞"]),
    st.text(max_size=6),
)
_names = st.one_of(
    st.sampled_from(["params", "tokens", "loss", "run", "flops", "Model Size", "Training FLOP", "N", "D", "L",
                     "weight", "Loss", "PARAMS", "tokens ", "ΔN", "모델", "🦙", "", "params", "loss"]),
    st.text(min_size=0, max_size=8),
)


@st.composite
def run_tables(draw) -> pd.DataFrame:
    """Mostly-plausible tables spiced with wrong types, extreme values, duplicates and odd names."""
    n_rows = draw(st.integers(min_value=0, max_value=12))
    base = draw(st.booleans())
    columns: dict[str, list] = {}
    if base:  # start from a valid sweep, then damage it
        frame = chinchilla_frame(sizes=3, budgets=3, seed=draw(st.integers(0, 5)))
        columns = {c: list(frame[c]) for c in frame.columns}
        n_rows = len(frame)
    n_extra = draw(st.integers(min_value=0 if base else 1, max_value=4))
    for _ in range(n_extra):
        name = draw(_names)
        columns[name] = draw(st.lists(_cells, min_size=n_rows, max_size=n_rows))
    frame = pd.DataFrame(columns) if columns else pd.DataFrame()
    if len(frame) and draw(st.booleans()):  # duplicated rows / runs
        k = draw(st.integers(1, len(frame)))
        frame = pd.concat([frame, frame.iloc[:k]], ignore_index=True)
    if len(frame) and draw(st.integers(0, 3)) == 0:  # damage one cell
        col = draw(st.sampled_from(list(frame.columns)))
        row = draw(st.integers(0, len(frame) - 1))
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = draw(_cells)
    return frame


csv_delimiters = st.sampled_from([",", ";", "\t", "|", " ", ":"])
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])
