"""Loss-to-loss prediction (Brandfonbrener et al. 2024): pairing runs, fitting the shifted power law
with the entropies taken from single-dataset fits, bootstrapping over models, and translating a whole
scaling law from one training distribution to another.

    L_y = K (L_x - E_x)^kappa + E_y

Pairings (``pair``): train-to-train (two training sets, runs matched by identical params and tokens),
train-to-test (the same runs, two loss columns) and test-to-test (two training sets, the same test
column). E_x and E_y come from ``kaplan_e`` fits of each loss over its own runs (what the paper used;
``chinchilla`` also works) or are given. With both fixed, kappa and K are the ordinary least squares
fit of log(L_y - E_y) on log(L_x - E_x), exactly as in the released notebooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import DataError, option_error

DEFAULT_KEYS = ("params", "tokens")


# ---------------------------------------------------------------------------- pairing
def _slug(text: str) -> str:
    last = str(text).rstrip("/").split("/")[-1]
    return re.sub(r"[^0-9a-zA-Z]+", "_", last).strip("_").lower() or "loss"


def _need(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise DataError(f"{source}: column '{col}' not found; columns are: {', '.join(map(str, frame.columns))}")


def pair(
    frame: pd.DataFrame,
    *,
    x_loss: str,
    y_loss: str | None = None,
    x_data: str | None = None,
    y_data: str | None = None,
    data_col: str = "data",
    keys: Sequence[str] = DEFAULT_KEYS,
    x_name: str | None = None,
    y_name: str | None = None,
    source: str = "<runs>",
) -> pd.DataFrame:
    """Build a table with one row per model pair and the two losses side by side.

    * ``x_data == y_data`` (or both None): train-to-test, same run, columns ``x_loss`` and ``y_loss``.
    * ``x_data != y_data``: runs of the two training sets joined on ``keys`` (params and tokens);
      ``y_loss`` defaults to ``x_loss`` (train-to-train on ``val_loss``; test-to-test on a test column).
    Output columns: the keys, then the two losses named ``x_name``/``y_name`` (default ``loss_<set>`` or
    ``loss_<column>``, whichever tells them apart).
    """
    y_loss = y_loss or x_loss
    y_data = x_data if y_data is None else y_data
    missing_keys = [k for k in keys if k not in frame.columns]
    if missing_keys:
        raise DataError(f"{source}: column '{missing_keys[0]}' (a model key) not found; columns are: "
                        f"{', '.join(map(str, frame.columns))} (name the key columns with keys=['N', 'D'])",
                        options=("keys",))
    _need(frame, [x_loss, y_loss], source)
    same_run = x_data == y_data
    if same_run and x_loss == y_loss:
        raise DataError(f"{source}: x and y are the same column '{x_loss}' of the same runs; pick two losses or two training sets")

    def rows_of(name):
        if name is None:
            return frame
        _need(frame, [data_col], source)
        sub = frame[frame[data_col].astype(str) == str(name)]
        if sub.empty:
            known = ", ".join(sorted(frame[data_col].astype(str).unique()))
            raise DataError(f"{source}: no runs with {data_col} = '{name}'; known values: {known}")
        return sub

    if x_name is None or y_name is None:
        if same_run:
            parts = (_slug(x_loss), _slug(y_loss))
        elif x_loss == y_loss:
            parts = (_slug(x_data), _slug(y_data))
        else:
            parts = (f"{_slug(x_data)}_{_slug(x_loss)}", f"{_slug(y_data)}_{_slug(y_loss)}")
        if parts[0] == parts[1]:
            parts = (parts[0] + "_x", parts[1] + "_y")
        x_name = x_name or f"loss_{parts[0]}"
        y_name = y_name or f"loss_{parts[1]}"
    if x_name == y_name:
        raise DataError(f"x_name and y_name are both '{x_name}'; give the two loss columns different names",
                        options=("x_name", "y_name"))

    left = rows_of(x_data)
    if same_run:
        out = left[list(keys) + [x_loss, y_loss]].rename(columns={x_loss: x_name, y_loss: y_name})
    else:
        right = rows_of(y_data)
        for side, name in ((left, x_data), (right, y_data)):
            dup = side.duplicated(list(keys))
            if dup.any():
                row = side[dup].iloc[0]
                raise DataError(
                    f"{source}: {data_col} = '{name}' has two runs with the same "
                    f"{', '.join(f'{k}={row[k]}' for k in keys)}; pairing needs one run per ({', '.join(keys)})"
                )
        out = left[list(keys) + [x_loss]].rename(columns={x_loss: x_name}).merge(
            right[list(keys) + [y_loss]].rename(columns={y_loss: y_name}), on=list(keys), how="inner"
        )
    out = out.dropna(subset=[x_name, y_name]).reset_index(drop=True)
    if out.empty:
        raise DataError(f"{source}: no pairs: no run of '{x_data}' matches a run of '{y_data}' on {', '.join(keys)}")
    return out


# ---------------------------------------------------------------------------- the shifted power law
def _check_above(values: np.ndarray, floor: float, what: str, entropy: str, source: str) -> None:
    bad = np.flatnonzero(~(values > floor))
    if bad.size:
        raise DataError(
            f"{source}: {what} row {bad[0] + 1} = {values[bad[0]]:.6g} is not above {entropy} = {floor:.6g} "
            f"({bad.size} such row(s)); the law needs every loss above its irreducible term: lower {entropy} "
            f"or drop those rows"
        )


def _ols(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
    """OLS of ly = kappa lx + log K; returns (kappa, K)."""
    design = np.column_stack([lx, np.ones_like(lx)])
    (kappa, log_k), *_ = np.linalg.lstsq(design, ly, rcond=None)
    return float(kappa), float(np.exp(log_k))


def fit_l2l(x, y, E_x: float, E_y: float | None = None, *, source: str = "pairs") -> dict:
    """kappa and K (and E_y when it is None) of L_y = K (L_x - E_x)^kappa + E_y.

    Both E fixed: OLS in log space (the paper's recipe). Free E_y: profiled on [0, min y) -- for each
    E_y the log-space OLS gives kappa, K; E_y minimises the squared error of y in linear space, as the
    paper's curve_fit does.
    """
    from scipy.optimize import minimize_scalar

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise DataError(f"{source}: loss_x and loss_y must be two columns of equal length")
    if x.size < 3:
        raise DataError(f"{source}: {x.size} pairs; a loss-to-loss fit needs at least 3")
    _check_above(x, E_x, "loss_x", "E_x", source)
    lx = np.log(x - E_x)
    if np.ptp(lx) == 0:
        raise DataError(f"{source}: every loss_x is {x[0]:.6g}; the relation cannot be identified")
    if E_y is not None:
        _check_above(y, E_y, "loss_y", "E_y", source)
        kappa, K = _ols(lx, np.log(y - E_y))
        return {"kappa": kappa, "K": K, "E_x": float(E_x), "E_y": float(E_y)}

    def sse(ey):
        kappa, K = _ols(lx, np.log(y - ey))
        return float(np.sum((K * (x - E_x) ** kappa + ey - y) ** 2))

    top = float(y.min()) * (1.0 - 1e-9)
    grid = np.linspace(0.0, top, 101)[:-1]
    values = np.array([sse(g) for g in grid])
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], (grid[i + 1] if i + 1 < grid.size else top)
    ey = float(minimize_scalar(sse, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}).x)
    ey = ey if sse(ey) <= values[i] else float(grid[i])
    kappa, K = _ols(lx, np.log(y - ey))
    return {"kappa": kappa, "K": K, "E_x": float(E_x), "E_y": ey}


def predict_l2l(fit: Mapping[str, float], x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    _check_above(np.atleast_1d(x), fit["E_x"], "loss_x", "E_x", "predict")
    return fit["K"] * (x - fit["E_x"]) ** fit["kappa"] + fit["E_y"]


# ---------------------------------------------------------------------------- with fitted entropies
def _dataset(frame: pd.DataFrame, loss_col: str, source: str):
    from .data import from_frame

    return from_frame(
        frame[["params", "tokens", loss_col]].rename(columns={loss_col: "loss_value"}),
        source=source, columns={"loss": "loss_value"}, required=["params", "tokens", "loss"],
    )


def fit_entropy(frame: pd.DataFrame, loss_col: str, law: str = "kaplan_e", *, source: str = "<runs>", start=None,
                param: str = "law"):
    """Single-dataset fit of ``loss_col`` against (params, tokens); returns the fit (``.params['E']``).
    ``param``: the caller's name for ``law`` in errors (``fit_pairing`` passes ``e_law``)."""
    from .backtest import fit_law, polish
    from .registry import get_law

    model = get_law(law)
    if "E" not in model.params:
        raise option_error(param, law, "the law has no irreducible term E; use kaplan_e or chinchilla")
    data = _dataset(frame, loss_col, source)
    if start is not None:  # bootstrap replicate: one warm-started polish is enough
        theta = polish(model, data, start)
        return SimpleNamespace(theta=theta, params=dict(zip(model.param_names, map(float, theta))))
    return fit_law(model, data)


def _param(res, name: str) -> float:
    value = res.params[name]
    return float(getattr(value, "value", value))


@dataclass
class L2LFit:
    """A loss-to-loss fit with its entropies; ``draws`` (B, 4) are bootstrap replicates of
    (kappa, K, E_x, E_y), each with the E's refitted on the resampled models."""

    kappa: float
    K: float
    E_x: float
    E_y: float
    n_pairs: int
    x_column: str
    y_column: str
    e_law: str | None = None
    draws: np.ndarray | None = None
    settings: dict = field(default_factory=dict)
    x: np.ndarray | None = field(default=None, repr=False)  # the paired losses
    y: np.ndarray | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, float]:
        return {"kappa": self.kappa, "K": self.K, "E_x": self.E_x, "E_y": self.E_y}

    def predict(self, x) -> np.ndarray:
        return predict_l2l(self.params, x)

    def intervals(self, ci: float = 0.95) -> dict[str, tuple[float, float]] | None:
        if self.draws is None:
            return None
        from .stats import percentile_interval

        lo, hi = percentile_interval(self.draws, ci)
        return {n: (float(lo[i]), float(hi[i])) for i, n in enumerate(("kappa", "K", "E_x", "E_y"))}

    def to_fit_result(self, source: str = "<runs>", ci: float = 0.95):
        """As a core FitResult (law ``loss_to_loss``), so ``fit.json``, ``translate`` and ``predict`` take it."""
        from .registry import get_law
        from .result import Estimate, FitResult
        from .stats import percentile_interval

        law = get_law("loss_to_loss")
        theta = np.array([self.params[n] for n in law.param_names])
        given = self.settings.get("given", ())
        est = {}
        for i, name in enumerate(law.param_names):
            low = high = None
            if self.draws is not None and len(self.draws) > 1 and name not in given:
                lo, hi = percentile_interval(self.draws[:, i], ci)
                low, high = float(lo), float(hi)
            est[name] = Estimate(float(theta[i]), None, low, high, False, "fixed" if name in given else "free")
        lx = np.log(self.x - self.E_x)
        resid = np.log(self.K) + self.kappa * lx - np.log(self.y - self.E_y)
        n_draws = 0 if self.draws is None else len(self.draws)
        return FitResult(
            law, theta, est, objective=float(0.5 * np.sum(resid**2)), n_runs=self.n_pairs, n_points=self.n_pairs,
            diagnostics={"n_points": self.n_pairs, "rmse_log_shifted": float(np.sqrt(np.mean(resid**2))),
                         "e_law": self.e_law, "warnings": [],
                         "interval": f"{n_draws} model-resampled draws, entropies refitted" if n_draws else "none"},
            settings={**self.settings, "loss": "ols of log(L_y - E_y) on log(L_x - E_x)", "ci": ci,
                      "n_bootstrap": n_draws},
            data_info={"source": source, "x": self.x_column, "y": self.y_column},
            units={}, draws=self.draws,
        )

    def to_dict(self) -> dict:
        out = {
            "law": "loss_to_loss",
            "params": self.params,
            "n_pairs": self.n_pairs,
            "x": self.x_column,
            "y": self.y_column,
            "e_law": self.e_law,
            "settings": self.settings,
        }
        iv = self.intervals()
        if iv is not None:
            out["intervals"] = {k: list(v) for k, v in iv.items()}
        return out


def fit_pairing(
    frame: pd.DataFrame,
    *,
    x_loss: str,
    y_loss: str | None = None,
    x_data: str | None = None,
    y_data: str | None = None,
    data_col: str = "data",
    keys: Sequence[str] = DEFAULT_KEYS,
    E_x: float | None = None,
    E_y: float | None = None,
    e_law: str = "kaplan_e",
    fit_ey: bool = False,
    n_bootstrap: int = 0,
    seed: int = 0,
    source: str = "<runs>",
) -> L2LFit:
    """The paper's full procedure on a runs table: E's from single-dataset fits (unless given), pairs,
    OLS for kappa and K; the bootstrap resamples *models* (keys) and refits the E's in every replicate."""
    y_loss = y_loss or x_loss
    y_data = x_data if y_data is None else y_data
    pairs = pair(frame, x_loss=x_loss, y_loss=y_loss, x_data=x_data, y_data=y_data, data_col=data_col,
                 keys=keys, x_name="_x", y_name="_y", source=source)
    runs_x = frame if x_data is None else frame[frame[data_col].astype(str) == str(x_data)]
    runs_y = frame if y_data is None else frame[frame[data_col].astype(str) == str(y_data)]
    runs_x = runs_x.dropna(subset=[x_loss])
    runs_y = runs_y.dropna(subset=[y_loss])
    fx = fy = None
    ex = E_x
    if ex is None:
        fx = fit_entropy(runs_x, x_loss, e_law, source=f"{source} [{x_data or ''}:{x_loss}]",
                         param="e_law")
        ex = _param(fx, "E")
    ey = E_y
    if ey is None and not fit_ey:
        fy = fit_entropy(runs_y, y_loss, e_law, source=f"{source} [{y_data or ''}:{y_loss}]",
                         param="e_law")
        ey = _param(fy, "E")
    best = fit_l2l(pairs["_x"], pairs["_y"], ex, None if fit_ey else ey, source=source)

    draws = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        key_x = pd.MultiIndex.from_frame(runs_x[list(keys)])
        key_y = pd.MultiIndex.from_frame(runs_y[list(keys)])
        key_p = pd.MultiIndex.from_frame(pairs[list(keys)])
        models = key_x.union(key_y).unique()
        out = []
        for _ in range(n_bootstrap):
            pick = models[rng.integers(0, len(models), len(models))]
            counts = pd.Series(1, index=pick).groupby(level=list(range(len(keys)))).sum()
            try:
                e_x, e_y = ex, ey
                if fx is not None:
                    e_x = _param(fit_entropy(_resample(runs_x, key_x, counts), x_loss, e_law, start=fx.theta), "E")
                if fy is not None:
                    e_y = _param(fit_entropy(_resample(runs_y, key_y, counts), y_loss, e_law, start=fy.theta), "E")
                bp = _resample(pairs, key_p, counts)
                r = fit_l2l(bp["_x"], bp["_y"], e_x, None if fit_ey else e_y, source=source)
            except DataError:
                continue  # a replicate whose refitted E lies above a resampled loss: skip it
            out.append([r["kappa"], r["K"], r["E_x"], r["E_y"]])
        draws = np.array(out) if out else None
    return L2LFit(
        best["kappa"], best["K"], best["E_x"], best["E_y"], len(pairs), x_loss, y_loss,
        e_law if (fx is not None or fy is not None) else None, draws,
        {"x_data": x_data, "y_data": y_data, "fit_ey": fit_ey, "n_bootstrap": n_bootstrap, "seed": seed,
         "given": [n for n, v in (("E_x", E_x), ("E_y", E_y)) if v is not None]},
        pairs["_x"].to_numpy(dtype=float), pairs["_y"].to_numpy(dtype=float),
    )


def _resample(df: pd.DataFrame, keys: pd.MultiIndex, counts: pd.Series) -> pd.DataFrame:
    """Rows of ``df`` repeated as often as their model was drawn (``counts`` by model key)."""
    reps = counts.reindex(keys).fillna(0).to_numpy(dtype=int)
    return df.iloc[np.repeat(np.arange(len(df)), reps)]


# ---------------------------------------------------------------------------- translation
SOURCE_LAW = "kaplan_e"


def translate(source: Mapping[str, float], via: Mapping[str, float], *, check_e: bool = True) -> dict[str, float]:
    """Turn a kaplan_e law of L_0 and a train-to-train fit L_1 = K (L_0 - E_0)^kappa + E_1 into the
    kaplan_e law of L_1:  alpha' = kappa alpha, beta' = kappa beta, A' = A K^(1/(kappa alpha)),
    B' = B K^(1/(kappa beta)), E' = E_1.  Works elementwise on arrays (bootstrap draws)."""
    for name in ("A", "B", "alpha", "beta"):
        if name not in source:
            raise DataError(f"source: parameter '{name}' missing; translate needs a {SOURCE_LAW} fit (A, B, E, alpha, beta)",
                            options=("source",))
    for name in ("kappa", "K", "E_y"):
        if name not in via:
            raise DataError(f"via: parameter '{name}' missing; translate needs a loss_to_loss fit (kappa, K, E_x, E_y)",
                            options=("via",))
    kappa, K = np.asarray(via["kappa"], dtype=float), np.asarray(via["K"], dtype=float)
    alpha, beta = np.asarray(source["alpha"], dtype=float), np.asarray(source["beta"], dtype=float)
    if check_e and "E" in source and "E_x" in via and not np.allclose(source["E"], via["E_x"], rtol=1e-3, atol=1e-3):
        import warnings

        warnings.warn(
            f"translate: the source law's E = {float(np.mean(source['E'])):.4g} differs from the loss-to-loss "
            f"fit's E_x = {float(np.mean(via['E_x'])):.4g}; the translated law assumes they are the same",
            stacklevel=2,
        )
    out = {
        "A": np.asarray(source["A"], dtype=float) * K ** (1.0 / (kappa * alpha)),
        "B": np.asarray(source["B"], dtype=float) * K ** (1.0 / (kappa * beta)),
        "E": np.asarray(via["E_y"], dtype=float) + 0.0,
        "alpha": kappa * alpha,
        "beta": kappa * beta,
    }
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def translate_fit(source_fit, via_fit, *, ci: float | None = None, seed: int = 0):
    """A FitResult of the translated ``kaplan_e`` law, so ``scalefit predict`` can use it.

    Bootstrap draws carry over: when both fits have draws they are paired at random (the two
    bootstraps are independent); when one has draws, the other enters at its point estimate.
    """
    from .registry import get_law
    from .result import Estimate, FitResult
    from .stats import percentile_interval

    if source_fit.law.name != SOURCE_LAW:
        raise DataError(f"source_fit: law '{source_fit.law.name}' cannot be translated exactly; fit the source with "
                        f"the {SOURCE_LAW} law", options=("source_fit",))
    if via_fit.law.name != "loss_to_loss":
        raise DataError(f"via_fit: law '{via_fit.law.name}' is not a loss_to_loss fit", options=("via_fit",))
    law = get_law(SOURCE_LAW)
    point = lambda f: {n: float(f.params[n].value) for n in f.law.param_names}  # noqa: E731
    values = translate(point(source_fit), point(via_fit))
    theta = np.array([values[n] for n in law.param_names])
    ci = ci or source_fit.settings.get("ci", 0.95)
    draws = None
    ds, dv = source_fit.draws, via_fit.draws
    if ds is not None or dv is not None:
        rng = np.random.default_rng(seed)
        n = min(len(d) for d in (ds, dv) if d is not None)
        cols_s = {k: (ds[rng.permutation(len(ds))[:n], i] if ds is not None else np.full(n, v))
                  for i, (k, v) in enumerate(point(source_fit).items())}
        cols_v = {k: (dv[rng.permutation(len(dv))[:n], i] if dv is not None else np.full(n, v))
                  for i, (k, v) in enumerate(point(via_fit).items())}
        t = translate(cols_s, cols_v, check_e=False)
        draws = np.column_stack([t[k] for k in law.param_names])
    params = {}
    for i, name in enumerate(law.param_names):
        low = high = None
        if draws is not None and len(draws) > 1:
            lo, hi = percentile_interval(draws[:, i], ci)
            low, high = float(lo), float(hi)
        params[name] = Estimate(float(theta[i]), None, low, high, False, "translated")
    origin = {"from": source_fit.meta.get("path"), "via": via_fit.meta.get("path"),
              "kappa": point(via_fit)["kappa"], "K": point(via_fit)["K"]}
    return FitResult(
        law, theta, params, objective=0.0, n_runs=source_fit.n_runs, n_points=source_fit.n_points,
        diagnostics={"translated": origin, "warnings": [], "interval": "translated bootstrap draws" if draws is not None else "none"},
        settings={"ci": ci, "translated": origin}, data_info=dict(source_fit.data_info),
        units=dict(source_fit.units), draws=draws,
    )
