"""Calibrating the step-time model to one machine: a timings table in, a calibrated :class:`CostModel` out.

Measured step times (one row per configuration: d_model, layers, heads, d_ff, vocab, seq_len, batch,
step_time_s) are turned into the per-step features of :mod:`scalefit.cost.step` and fitted by
non-negative least squares on the same groups, rows weighted by 1/t (relative error: step times span
decades). Beside it a FLOP-only model is fitted to the same timings; both are scored in sample and by
k-fold cross-validation, so the report says how much the memory-traffic terms buy on this machine.
:func:`simulate_timings` draws synthetic timings from known coefficients, to test that they are recovered.

Left out: weights, gradients and optimizer state all scale with the parameter count, so one machine's
timings cannot tell their per-byte costs apart; they share one coefficient. Terms the timings cannot see
(the all-reduce in single-device timings) are not fitted and keep the uncalibrated roofline prior. No
uncertainty on the coefficients beyond the held-out error; timings are taken as steady-state steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import DataError, option_error
from .hardware import Hardware
from .step import GROUPS, CostModel, group_matrix, step_features

TIMING_COLUMNS = ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch")
_TIME_ALIASES = ("step_time_s", "step_time", "time_s", "seconds", "t_step")
_OPTIONAL_INT = ("gpus", "micro_batch")
_OPTIONAL_BOOL = ("gated_mlp", "tie_embeddings", "fused_attention", "recompute", "shard_optimizer")
_OPTIONAL_FLOAT = ("weight_bytes", "act_bytes", "grad_bytes", "optimizer_bytes")


def timings_features(frame, hardware: Hardware, source: str = "<timings>") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validate a timings table and return (features per row, measured step times).

    Required columns: d_model, layers, heads, d_ff, vocab, seq_len, batch (global sequences per step) and
    the measured step time in seconds (``step_time_s``). Optional: gpus, micro_batch, gated_mlp,
    tie_embeddings, fused_attention, recompute, shard_optimizer, weight_bytes, act_bytes, grad_bytes,
    optimizer_bytes (defaults as in :class:`Shape`).
    """
    import pandas as pd

    cols = {str(c).strip().lower(): c for c in frame.columns}
    time_col = next((cols[a] for a in _TIME_ALIASES if a in cols), None)
    missing = [c for c in TIMING_COLUMNS if c not in cols] + ([] if time_col else ["step_time_s"])
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; a timings table needs "
            f"{', '.join(TIMING_COLUMNS)}, step_time_s (columns are: {', '.join(map(str, frame.columns))})"
        )

    def numeric(name, col, integer=False, positive=True):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
        if integer:
            bad |= np.isfinite(values) & (values != np.round(values))
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(str(r + 2) for r in rows[:5])  # +2: header line, 1-based
            raise DataError(
                f"{source}: column '{col}' has {'non-integer, ' if integer else ''}missing or non-positive "
                f"values on line(s) {shown} (value {frame[col].iloc[rows[0]]!r}); fix or remove those rows"
            )
        return values

    def boolean(col):
        raw = frame[col].astype(str).str.strip().str.lower()
        mapping = {"true": True, "1": True, "yes": True, "1.0": True, "false": False, "0": False, "no": False,
                   "0.0": False}
        bad = ~raw.isin(list(mapping))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: column '{col}' line {row + 2}: '{frame[col].iloc[row]}' is not true/false")
        return raw.map(mapping).to_numpy(dtype=bool)

    kw: dict[str, Any] = {}
    base = {c: numeric(c, cols[c], integer=True) for c in TIMING_COLUMNS}
    for c in _OPTIONAL_INT:
        if c in cols:
            kw["gpus" if c == "gpus" else c] = numeric(c, cols[c], integer=True)
    for c in _OPTIONAL_BOOL:
        if c in cols:
            kw[c] = boolean(cols[c])
    for c in _OPTIONAL_FLOAT:
        if c in cols:
            kw[c] = numeric(c, cols[c], positive=c != "optimizer_bytes")
    bad_heads = np.flatnonzero(base["d_model"] % base["heads"] != 0)
    if bad_heads.size:
        r = int(bad_heads[0])
        raise DataError(f"{source}: line {r + 2}: d_model {int(base['d_model'][r])} is not divisible by heads "
                        f"{int(base['heads'][r])}; fix the row")
    gpus = kw.get("gpus", np.ones(len(frame)))
    low = np.flatnonzero(base["batch"] < gpus)
    if low.size:
        raise DataError(f"{source}: line {int(low[0]) + 2}: batch is smaller than gpus; batch is the global "
                        "number of sequences per step")
    times = numeric("step_time_s", time_col)
    feats = step_features(base["d_model"], base["layers"], base["heads"], base["d_ff"], base["vocab"],
                          base["seq_len"], base["batch"], hardware=hardware, **kw)
    return feats, times


def fit_step_time(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """min sum ((y - b0 - X beta) / y)^2 over b0, beta >= 0 (relative errors: step times span decades).

    ``X`` is (rows, terms), ``y`` the measured step times; returns (b0, beta)."""
    from scipy.optimize import nnls

    A = np.column_stack([np.ones(len(y)), X]) / y[:, None]
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    sol, _ = nnls(A / scale, np.ones(len(y)), maxiter=50 * A.shape[1])
    sol = sol / scale
    return float(sol[0]), sol[1:]


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    rel = (pred - y) / y
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "mape": float(np.mean(np.abs(rel))),
        "max_ape": float(np.max(np.abs(rel))),
        "rmse_s": float(np.sqrt(np.mean((y - pred) ** 2))),
    }


def held_out_predictions(X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's step time predicted by :func:`fit_step_time` fitted without its fold: the k-fold
    assignment :func:`calibrate` scores with (rows permuted by ``seed``, then dealt round-robin)."""
    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    held = np.empty_like(y, dtype=float)
    for k in range(folds):
        test = fold_of == k
        c0, cb = fit_step_time(X[~test], y[~test])
        held[test] = c0 + X[test] @ cb
    return held


def _fit_and_score(X, y, folds, seed):
    b0, beta = fit_step_time(X, y)
    return b0, beta, _metrics(y, b0 + X @ beta), _metrics(y, held_out_predictions(X, y, folds, seed))


def check_calibration_options(*, folds: int = 5, seed: int = 0) -> None:
    """``folds`` a whole number >= 2 (fewer rows than folds use one row per fold) and ``seed`` >= 0."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise option_error("folds", folds, "k-fold cross-validation needs a whole number of folds >= 2")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise option_error("seed", seed, "the seed must be a whole number >= 0")


def calibrate(frame, hardware: Hardware, *, source: str = "<timings>", folds: int = 5, seed: int = 0) -> CostModel:
    """Fit t_step = b0 + sum_g beta_g group_g by non-negative least squares to measured step times.

    Rows are weighted by 1/t (relative error). Groups that are zero in every row (the all-reduce in
    single-device timings) are left out of the fit, reported as not identified, and keep the
    uncalibrated roofline coefficient. Beside it a
    FLOP-only model t = b0 + beta_F FLOPs is fitted to the same timings; both are scored in sample and by
    k-fold cross-validation (held-out error), in ``diagnostics``.
    """
    check_calibration_options(folds=folds, seed=seed)
    feats, y = timings_features(frame, hardware, source)
    G = group_matrix(feats)
    names = list(GROUPS)
    used = [g for i, g in enumerate(names) if np.any(G[:, i] > 0)]
    X = G[:, [names.index(g) for g in used]]
    n, p = len(y), len(used) + 1
    need = p + 2
    if n < need:
        raise DataError(
            f"{source}: {n} timing row(s) but the memory-traffic model has {p} coefficients (intercept + "
            f"{', '.join(used)}); measure at least {need} configurations that differ in width, depth, batch "
            "and sequence length"
        )
    scaled = X / np.abs(X).max(axis=0)
    rank = np.linalg.matrix_rank(np.column_stack([np.ones(n), scaled]) / y[:, None], tol=1e-8)
    warnings_out = []
    if rank < p:
        warnings_out.append(
            f"{source}: the features {', '.join(used)} are linearly dependent across these rows, so some "
            "coefficients are not identified; vary width, depth, batch, sequence length and vocab independently"
        )
    folds = int(max(2, min(folds, n)))
    b0, beta, fit_in, fit_cv = _fit_and_score(X, y, folds, seed)
    f0, fbeta, flop_in, flop_cv = _fit_and_score(G[:, [names.index("flops")]], y, folds, seed)
    # Terms the timings cannot see (the all-reduce in single-device timings) keep the roofline prior, so a
    # model calibrated on one GPU still charges for communication when it is used for 256.
    prior = CostModel.roofline(hardware).coef
    coef = {g: float(prior[g]) for g in names}
    coef.update({g: float(v) for g, v in zip(used, beta)})
    diagnostics = {
        "source": source,
        "rows": n,
        "folds": folds,
        "identified": used,
        "not_identified": [g for g in names if g not in used],  # these keep the roofline prior
        "memory_model": {"in_sample": fit_in, "cross_validated": fit_cv},
        "flop_only_model": {"intercept_s": f0, "coef": {"flops": float(fbeta[0])}, "in_sample": flop_in,
                            "cross_validated": flop_cv},
        "effective": _effective(coef, hardware),
        "warnings": warnings_out,
    }
    label = (f"calibrated on {n} timings from {Path(source).name} ({hardware.name}); held-out error "
             f"{fit_cv['mape']:.1%} vs {flop_cv['mape']:.1%} FLOP-only")
    return CostModel(coef, b0, hardware, calibrated=True, label=label, diagnostics=diagnostics)


def _effective(coef: Mapping[str, float], hardware: Hardware) -> dict[str, float | None]:
    """Coefficients as readable rates: achieved TFLOP/s and GB/s, and their fraction of the table's peak."""
    def inv(x):
        return 1.0 / x if x > 0 else None

    tf = inv(coef.get("flops", 0.0))
    out = {"tflops": tf / 1e12 if tf else None,
           "compute_fraction_of_peak": tf / hardware.peak_flops if tf and hardware.peak_flops else None}
    for g in ("act_bytes", "param_bytes", "logit_bytes"):
        bw = inv(coef.get(g, 0.0))
        out[f"{g}_gbps"] = bw / 1e9 if bw else None
    return out


def simulate_timings(
    coef: Mapping[str, float],
    intercept: float,
    hardware: Hardware,
    *,
    n: int = 80,
    noise: float = 0.02,
    seed: int = 0,
    fused_attention: bool = True,
):
    """Synthetic step timings from known coefficients, with multiplicative log-normal noise ``noise``.

    Shapes are drawn across log-spaced widths 64-4096, depths 2-32, batches 1-64 sequences, sequence lengths
    128-4096 and three vocabularies, on one device: a design in which the groups vary independently
    enough to be recovered. Returns a DataFrame in the timings format.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    # Log-spaced widths, many of them narrow: activation traffic relative to FLOPs falls as 1/d_model,
    # so narrow and short-sequence rows are what identify its coefficient.
    d = rng.choice(np.array([64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096]), n)
    frame = pd.DataFrame({
        "d_model": d,
        "layers": rng.integers(2, 33, n),
        "heads": d // 64,
        "d_ff": 4 * d,
        "vocab": rng.choice([4096, 32_000, 128_000], n),
        "seq_len": rng.choice([128, 256, 512, 1024, 2048, 4096], n),
        "batch": rng.choice([1, 4, 16, 64], n),
        "fused_attention": fused_attention,
    })
    frame["micro_batch"] = frame["batch"]
    feats, _ = timings_features(frame.assign(step_time_s=1.0), hardware, "<simulated>")
    model = CostModel({g: float(coef.get(g, 0.0)) for g in GROUPS}, intercept, hardware)
    truth = model.step_time(feats)
    frame["step_time_s"] = truth * np.exp(noise * rng.standard_normal(n))
    return frame

