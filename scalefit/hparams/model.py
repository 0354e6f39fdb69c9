"""The Step Law of optimal hyperparameters (Li et al. 2025, arXiv:2503.04715) fitted to cell optima:

    log eta_opt = lr_intercept + lr_coefN log N + lr_coefD log D      (eta_opt = a N^alpha D^beta)
    log B_opt   = bs_intercept + bs_coefD log D                       (B_opt = c D^gamma, in tokens)

by least squares on each (params, tokens) cell's optimum (:mod:`.optimum`). Intervals come from a seeded
bootstrap: ``resample="runs"`` redraws the runs inside every cell and places each optimum again (the
noise of locating an optimum); ``"cells"`` redraws whole cells (the law's misfit between cells, as the
authors' bootstrap of rows does); ``"both"`` (the default) does both. Measured on the Step Law table by
leaving each cell out: the 95 % interval of the optimal LR covered the held-out cell's optimum for 8 of 17
cells with ``runs`` alone and 14 of 17 with ``both`` (grid optima; smooth: 11 and 15), so ``runs`` alone
understates the uncertainty of a forecast. Leave-one-cell-out errors of the predicted optimal LR are
computed for both procedures (grid and smooth), so a fit shows whether the procedure changes the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, option_error
from ..stats import percentile_interval, stretch_factor
from .optimum import OPTIMA, CellOptimum, cell_optimum, optimum_logs
from .table import Sweep, check_seq_len, read_sweep

NAMES = ("lr_intercept", "lr_coefN", "lr_coefD", "bs_intercept", "bs_coefD")
RESAMPLES = ("runs", "cells", "both")
MIN_CELLS = 4  # three LR-law coefficients and one cell to spare
MIN_SPAN = 1.5  # the smallest range of N (and of D) across cells that an exponent can be read from
MAX_BOOTSTRAP = 100_000


def law_logs(theta: np.ndarray, params, tokens) -> tuple[np.ndarray, np.ndarray]:
    """(log eta_opt, log B_opt) at (params, tokens) for parameter rows ``theta`` (..., 5)."""
    theta = np.asarray(theta, dtype=float)
    ln, ld = np.log(params), np.log(tokens)
    return (theta[..., 0] + theta[..., 1] * ln + theta[..., 2] * ld, theta[..., 3] + theta[..., 4] * ld)


def _designs(params: np.ndarray, tokens: np.ndarray):
    ln, ld = np.log(params), np.log(tokens)
    return np.column_stack([np.ones_like(ln), ln, ld]), np.column_stack([np.ones_like(ld), ld])


def ols(params, tokens, log_lr, log_batch) -> np.ndarray:
    """The five coefficients by ordinary least squares; NaN where a design is rank-deficient."""
    a_lr, a_bs = _designs(np.asarray(params, float), np.asarray(tokens, float))
    out = np.full(5, np.nan)
    if np.linalg.matrix_rank(a_lr) == 3:
        out[:3] = np.linalg.lstsq(a_lr, log_lr, rcond=None)[0]
    if np.linalg.matrix_rank(a_bs) == 2:
        out[3:] = np.linalg.lstsq(a_bs, log_batch, rcond=None)[0]
    return out


def _check_cells(sweep: Sweep) -> None:
    """The cells must determine the law: 4 or more, N and D each varying, and not varying together."""
    p, t, src = sweep.cell_params, sweep.cell_tokens, sweep.source
    cols = sweep.columns
    for values, role, which in ((p, "params", "the LR law's exponent in N"), (t, "tokens", "the laws' exponents in D")):
        span = values.max() / values.min()
        if span < MIN_SPAN:
            what = (f"every cell has the same {cols[role]} ({values.min():.4g})" if span == 1 else
                    f"the cells' {cols[role]} span only a factor {span:.3g} ({values.min():.4g} to {values.max():.4g})")
            hint = (" (for a mixture-of-experts table, map params to the active parameters: columns={'params': "
                    "'NAME'})") if role == "params" else ""
            raise DataError(f"{src}: {what}: {which} cannot be fitted{hint}", options=("columns",) if hint else ())
    if sweep.n_cells < MIN_CELLS:
        raise DataError(f"{src}: {sweep.n_cells} (params, tokens) cell(s); the LR law has 3 coefficients and needs "
                        f"at least {MIN_CELLS} cells")
    if np.linalg.matrix_rank(_designs(p, t)[0]) < 3:
        raise DataError(f"{src}: log {cols['params']} and log {cols['tokens']} move in lockstep across the cells; the "
                        f"LR law cannot tell their exponents apart (add cells off that line)")


def _check_ci(ci) -> None:
    if ci is not None and not (isinstance(ci, (int, float)) and not isinstance(ci, bool) and 0 < ci < 1):
        raise option_error("ci", ci, "the interval level must lie strictly between 0 and 1, e.g. 0.95")


def check_options(*, optimum="grid", n_bootstrap=1000, resample="both", seed=0, ci=0.95, window=0.005,
                  flat=0.005, batch_unit="auto") -> None:
    """One DataError naming the first bad option, before any work."""
    from .table import BATCH_UNITS

    def number(v):
        return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)

    if optimum not in OPTIMA:
        raise option_error("optimum", optimum, f"use one of {', '.join(OPTIMA)}")
    if resample not in RESAMPLES:
        raise option_error("resample", resample, f"use one of {', '.join(RESAMPLES)}")
    if batch_unit not in BATCH_UNITS:
        raise option_error("batch_unit", batch_unit, f"use one of {', '.join(BATCH_UNITS)}")
    if not (isinstance(n_bootstrap, (int, np.integer)) and not isinstance(n_bootstrap, bool)
            and 0 <= n_bootstrap <= MAX_BOOTSTRAP):
        raise option_error("n_bootstrap", n_bootstrap, f"the number of bootstrap draws must be a whole number "
                                                       f"from 0 to {MAX_BOOTSTRAP}")
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise option_error("seed", seed, "the seed must be a whole number >= 0")
    if not (number(ci) and 0 < ci < 1):
        raise option_error("ci", ci, "the interval level must lie strictly between 0 and 1, e.g. 0.95")
    for name, value in (("window", window), ("flat", flat)):
        if not (number(value) and 0 < value <= 0.5):
            raise option_error(name, value, "a relative loss band must lie in (0, 0.5], e.g. 0.005 for 0.5 %")


@dataclass
class HparamsForecast:
    """Optimal peak LR and batch at one (params, tokens), with intervals (None without bootstrap draws)."""

    params: float
    tokens: float
    lr: float
    lr_interval: tuple[float, float] | None
    batch_tokens: float
    batch_tokens_interval: tuple[float, float] | None
    seq_len: float | None
    ci: float
    source: str
    flat_lr: tuple[float, float] | None = None  # LRs the fitted cells reached within ``flat`` of their best
    flat: float = 0.005
    warnings: list[str] = field(default_factory=list)

    @property
    def batch_sequences(self) -> float | None:
        return self.batch_tokens / self.seq_len if self.seq_len else None

    @property
    def batch_sequences_interval(self) -> tuple[float, float] | None:
        if not self.seq_len or self.batch_tokens_interval is None:
            return None
        return (self.batch_tokens_interval[0] / self.seq_len, self.batch_tokens_interval[1] / self.seq_len)

    def to_dict(self) -> dict:
        def iv(x):
            return list(x) if x is not None else None

        return {"kind": "hparams", "source": self.source, "params": self.params, "tokens": self.tokens,
                "ci": self.ci, "lr": {"value": self.lr, "interval": iv(self.lr_interval)},
                "batch_tokens": {"value": self.batch_tokens, "interval": iv(self.batch_tokens_interval)},
                "batch_sequences": {"value": self.batch_sequences, "interval": iv(self.batch_sequences_interval)},
                "seq_len": self.seq_len, "flat_lr": iv(self.flat_lr), "flat": self.flat, "warnings": self.warnings}


@dataclass
class HparamsFit:
    """A fitted (or published) Step Law: coefficients in the authors' log form, bootstrap draws, the cells."""

    theta: np.ndarray  # (5,) in NAMES order
    draws: np.ndarray | None  # (k, 5)
    ci: float
    estimate: str  # "full-data fit" or "mean of bootstrap draws"
    source: str
    seq_len: float | None = None
    settings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    cells: list[CellOptimum] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    comparison: dict = field(default_factory=dict)  # the other procedure's coefficients and LOCO errors

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(NAMES, (float(v) for v in self.theta)))

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def stretches(self, ci: float | None = None) -> np.ndarray:
        """t_{cells - q}/z at level ``ci`` (default: the fit's) per coefficient (q = 3 for the LR law, 2 for
        the batch law); 1 without cells."""
        n, level = self.n_cells, ci or self.ci
        if n == 0:
            return np.ones(5)
        s_lr, s_bs = stretch_factor(n, 3, level), stretch_factor(n, 2, level)
        return np.array([s_lr] * 3 + [s_bs] * 2)

    def intervals(self, ci: float | None = None) -> dict[str, tuple[float, float]] | None:
        _check_ci(ci)
        if self.draws is None or len(self.draws) == 0:
            return None
        level = ci or self.ci
        s = self.stretches(level)
        lo_lr, hi_lr = percentile_interval(self.draws[:, :3], level, self.theta[:3], s[0])
        lo_bs, hi_bs = percentile_interval(self.draws[:, 3:], level, self.theta[3:], s[3])
        lo, hi = np.concatenate([lo_lr, lo_bs]), np.concatenate([hi_lr, hi_bs])
        return {n: (float(a), float(b)) for n, a, b in zip(NAMES, lo, hi)}

    def flat_lr_factors(self) -> tuple[float, float] | None:
        """Median over cells of (lowest, highest) LR within the flat band, divided by the cell's optimum."""
        if not self.cells:
            return None
        lo = np.median([c.flat_lr[0] / c.lr for c in self.cells])
        hi = np.median([c.flat_lr[1] / c.lr for c in self.cells])
        return float(lo), float(hi)

    def predict(self, params: float, tokens: float, *, ci: float | None = None,
                seq_len: float | None = None) -> HparamsForecast:
        """Optimal peak LR and batch (tokens; sequences when a sequence length is known) at (params, tokens)."""
        for name, value in (("params", params), ("tokens", tokens)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not (math.isfinite(value) and value > 0):
                raise option_error(name, value, "must be a positive number")
        _check_ci(ci)
        seq_len = check_seq_len(seq_len)
        level = ci or self.ci
        log_lr, log_bs = law_logs(self.theta, params, tokens)
        lr_iv = bs_iv = None
        if self.draws is not None and len(self.draws):
            d_lr, d_bs = law_logs(self.draws, params, tokens)
            s = self.stretches(level)
            lr_iv = tuple(float(v) for v in percentile_interval(np.exp(d_lr), level, np.exp(log_lr), s[0]))
            bs_iv = tuple(float(v) for v in percentile_interval(np.exp(d_bs), level, np.exp(log_bs), s[3]))
        lr = float(np.exp(log_lr))
        factors = self.flat_lr_factors()
        return HparamsForecast(float(params), float(tokens), lr, lr_iv, float(np.exp(log_bs)), bs_iv,
                               float(seq_len) if seq_len else self.seq_len, level, self.source,
                               (lr * factors[0], lr * factors[1]) if factors else None,
                               float(self.settings.get("flat", 0.005)), self._range_warnings(params, tokens))

    def _range_warnings(self, params: float, tokens: float) -> list[str]:
        out = []
        for name, value in (("params", params), ("tokens", tokens)):
            lo, hi = (self.data.get("ranges") or {}).get(name, (None, None))
            if lo and hi and not lo / 1.5 <= value <= hi * 1.5:
                side = f"{value / hi:.3g}x the largest" if value > hi else f"1/{lo / value:.3g} of the smallest"
                out.append(f"{name}={value:.3g} is {side} fitted cell ({lo:.3g} to {hi:.3g}): an extrapolation; "
                           f"the interval covers the coefficients' uncertainty, not a change of law")
        return out


def _bootstrap(sweep: Sweep, optimum: str, window: float, n: int, resample: str, seed: int) -> tuple[np.ndarray, int]:
    """(draws (k, 5), how many draws were dropped as degenerate)."""
    rng = np.random.default_rng(seed)
    rows = sweep.cell_rows()
    picks = (rng.integers(0, sweep.n_cells, size=(n, sweep.n_cells)) if resample in ("cells", "both")
             else np.broadcast_to(np.arange(sweep.n_cells), (n, sweep.n_cells)))
    logs = np.empty((sweep.n_cells, n, 2))  # each cell's optimum in each draw
    for c, r in enumerate(rows):
        lr, bs, loss = sweep.lr[r], sweep.batch_tokens[r], sweep.loss[r]
        if resample == "cells":  # runs as they are: one optimum per cell, repeated
            logs[c] = optimum_logs(lr, bs, loss, np.ones((1, r.size)), optimum, window)
            continue
        idx = rng.integers(0, r.size, size=(n, r.size))
        counts = np.bincount((idx + r.size * np.arange(n)[:, None]).ravel(), minlength=n * r.size)
        logs[c] = optimum_logs(lr, bs, loss, counts.reshape(n, r.size), optimum, window)
    draws = np.empty((n, 5))
    for b in range(n):
        cells = picks[b]
        draws[b] = ols(sweep.cell_params[cells], sweep.cell_tokens[cells], logs[cells, b, 0], logs[cells, b, 1])
    ok = np.all(np.isfinite(draws), axis=1)
    return draws[ok], int((~ok).sum())


def leave_one_cell_out(params, tokens, log_lr, log_batch, targets=None) -> dict:
    """Refit without each cell in turn and predict its optimum: errors (log) of the optimal LR and batch.

    ``targets``: other (log lr, log batch) per cell to score the same predictions against (another
    procedure's optima). Returns rms and per-cell errors."""
    params, tokens = np.asarray(params, float), np.asarray(tokens, float)
    n = params.size
    pred = np.full((n, 2), np.nan)
    for k in range(n):
        keep = np.arange(n) != k
        theta = ols(params[keep], tokens[keep], log_lr[keep], log_batch[keep])
        pred[k] = law_logs(theta, params[k], tokens[k])
    own = pred - np.column_stack([log_lr, log_batch])

    def rms(e):
        e = e[np.isfinite(e)]
        return float(np.sqrt(np.mean(e ** 2))) if e.size else float("nan")

    out = {"lr_rms_log": rms(own[:, 0]), "batch_rms_log": rms(own[:, 1]),
           "lr_errors_log": own[:, 0].tolist(), "batch_errors_log": own[:, 1].tolist()}
    if targets is not None:
        other = pred - np.asarray(targets, float)
        out.update({"lr_rms_log_vs_grid": rms(other[:, 0]), "batch_rms_log_vs_grid": rms(other[:, 1])})
    return out


def _cells(sweep: Sweep, optimum: str, window: float, flat: float) -> list[CellOptimum]:
    return [cell_optimum(sweep.cell_params[c], sweep.cell_tokens[c], sweep.lr[r], sweep.batch_tokens[r],
                         sweep.loss[r], optimum=optimum, window=window, flat=flat)
            for c, r in enumerate(sweep.cell_rows())]


def _summary(cells: list[CellOptimum], grid_targets: np.ndarray) -> tuple[np.ndarray, dict]:
    p = np.array([c.params for c in cells])
    t = np.array([c.tokens for c in cells])
    y_lr, y_bs = np.log([c.lr for c in cells]), np.log([c.batch_tokens for c in cells])
    theta = ols(p, t, y_lr, y_bs)
    fit_lr, fit_bs = law_logs(theta, p, t)
    diag = {"lr_rms_log": float(np.sqrt(np.mean((y_lr - fit_lr) ** 2))),
            "batch_rms_log": float(np.sqrt(np.mean((y_bs - fit_bs) ** 2))),
            "loco": leave_one_cell_out(p, t, y_lr, y_bs, grid_targets)}
    return theta, diag


def fit_hparams(runs, *, optimum: str = "grid", columns: dict[str, str] | None = None, seq_len: float | None = None,
                batch_unit: str = "auto", n_bootstrap: int = 1000, resample: str = "both", seed: int = 0,
                ci: float = 0.95, window: float = 0.005, flat: float = 0.005, source: str | None = None) -> HparamsFit:
    """Fit eta_opt(N, D) = a N^alpha D^beta and B_opt(D) = c D^gamma to a sweep (a path or a DataFrame).

    ``optimum``: how each cell's optimum is placed (``grid`` or ``smooth``, see :mod:`.optimum`);
    ``window``: the smooth fit's loss band; ``flat``: the band reported as each cell's flat region;
    ``resample``: what the bootstrap redraws (``runs`` within cells, ``cells``, or ``both``).
    """
    check_options(optimum=optimum, n_bootstrap=n_bootstrap, resample=resample, seed=seed, ci=ci, window=window,
                  flat=flat, batch_unit=batch_unit)
    sweep = read_sweep(runs, columns=columns, seq_len=seq_len, batch_unit=batch_unit, source=source)
    _check_cells(sweep)
    procedures = {name: _cells(sweep, name, window, flat) for name in OPTIMA}
    grid_logs = np.log([[c.lr, c.batch_tokens] for c in procedures["grid"]])
    summaries = {name: _summary(cells, grid_logs) for name, cells in procedures.items()}
    theta, diagnostics = summaries[optimum]
    draws, dropped = (None, 0)
    if n_bootstrap:
        draws, dropped = _bootstrap(sweep, optimum, window, n_bootstrap, resample, seed)
    if dropped:
        diagnostics["dropped_draws"] = dropped
    comparison = {name: {"params": dict(zip(NAMES, th.tolist())), **{k: d[k] for k in ("lr_rms_log", "batch_rms_log")},
                         "loco": {k: v for k, v in d["loco"].items() if not k.endswith("errors_log")}}
                  for name, (th, d) in summaries.items()}
    data = {"source": sweep.source, "columns": sweep.columns, "batch_unit": sweep.batch_unit,
            "seq_len_from": sweep.seq_len_from, "n_runs": sweep.n_runs, "n_cells": sweep.n_cells,
            "ranges": {"params": [float(sweep.cell_params.min()), float(sweep.cell_params.max())],
                       "tokens": [float(sweep.cell_tokens.min()), float(sweep.cell_tokens.max())]}}
    settings = {"optimum": optimum, "resample": resample, "n_bootstrap": n_bootstrap, "seed": seed,
                "window": window, "flat": flat}
    return HparamsFit(theta, draws, ci, "full-data fit", sweep.source, sweep.seq_len, settings, data,
                      procedures[optimum], diagnostics, comparison)
