"""Where the optimum of one (params, tokens) cell lies, and how flat the loss is around it.

Two procedures:

* ``grid`` -- the authors' (Li et al. 2025): the (lr, batch) of the run with the lowest loss;
* ``smooth`` -- a robust quadratic in (log lr, log batch) fitted to the runs whose loss lies within
  ``window`` (relative, 0.5 % by default, at least 10 runs) of the cell's best, with Huber weights on the
  residuals; its vertex places the optimum between grid points. The band is kept narrow on purpose: loss
  rises much faster above the optimal LR (towards divergence) than below it, and a symmetric quadratic over
  a wide band is pulled towards the flat low-LR side (measured on the Step Law table: -0.05 in log LR at
  0.5 %, -0.5 at 3 %). A cell whose fit is not convex, has too few distinct values, or whose vertex falls
  outside the runs it was fitted to keeps its grid optimum, and says why.

Flatness: the runs within ``flat`` (0.5 %) of the best loss, with their LR and batch ranges -- what a user
can afford to miss the optimum by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPTIMA = ("grid", "smooth")
MIN_SMOOTH_POINTS = 10
_HUBER_K = 1.345
_IRLS_STEPS = 8


@dataclass
class CellOptimum:
    """The optimum of one cell: LR and batch (tokens), how it was found, and the flat region around it."""

    params: float
    tokens: float
    n_runs: int
    lr: float
    batch_tokens: float
    best_loss: float  # the lowest observed loss in the cell
    method: str  # "grid" or "smooth"
    note: str  # why a smooth fit fell back to the grid, or that the optimum sits at the edge of the sweep
    grid_lr: float
    grid_batch_tokens: float
    n_flat: int  # runs within ``flat`` of the best loss
    flat_lr: tuple[float, float]
    flat_batch_tokens: tuple[float, float]
    n_fit: int = 0  # runs in the smooth fit's band

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


_REASONS = {
    1: "smooth fit needs 3 learning rates and 3 batch sizes near the best run",
    2: "the local quadratic is not convex",
    3: "the local quadratic's minimum lies outside the runs it was fitted to",
    4: "the local quadratic is not determined by the runs near the best one",
}


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise median of ``values`` (k, n) counting each entry ``weights`` times (entries of weight 0 ignored)."""
    order = np.argsort(np.where(weights > 0, values, np.inf), axis=1)
    v = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    half = cum[:, -1:] / 2.0
    return np.take_along_axis(v, np.argmax(cum >= half, axis=1)[:, None], axis=1)[:, 0]


def smooth_vertices(x: np.ndarray, y: np.ndarray, z: np.ndarray, counts: np.ndarray, window: float):
    """The smooth optimum of one cell for many resamples at once.

    ``x, y, z``: log lr, log batch, log loss of the cell's runs (n,); ``counts`` (k, n): how often each run
    appears in each resample (a row of ones is the data as it is). Returns (log lr, log batch, runs in the
    band, reason) arrays of length k; reason 0 where the vertex is used, else a key of ``_REASONS``.
    """
    counts = np.asarray(counts, dtype=float)
    present = counts > 0
    zmin = np.min(np.where(present, z, np.inf), axis=1, keepdims=True)
    band = present & (z <= zmin + np.log1p(window))
    short = (counts * band).sum(axis=1) < MIN_SMOOTH_POINTS
    if np.any(short):  # too few runs in the band: the lowest MIN_SMOOTH_POINTS (with repeats) instead
        order = np.argsort(z, kind="stable")
        before = np.cumsum(counts[:, order], axis=1) - counts[:, order]
        lowest = np.zeros_like(band)
        lowest[:, order] = present[:, order] & (before < MIN_SMOOTH_POINTS)
        band = np.where(short[:, None], lowest, band)
    keep = np.any(band, axis=0)  # only runs inside some resample's band enter the fits
    x, y, z, band, w0 = x[keep], y[keep], z[keep], band[:, keep], (counts * band)[:, keep]
    n_band = w0.sum(axis=1)
    reason = np.zeros(len(counts), dtype=int)
    for values in (x, y):
        _, which = np.unique(values, return_inverse=True)
        onehot = np.eye(which.max() + 1)[which]
        reason[(band @ onehot > 0).sum(axis=1) < 3] = 1
    i0 = int(np.argmin(z))
    dx, dy = x - x[i0], y - y[i0]  # centred for conditioning (the quadratic basis is translation-invariant)
    design = np.column_stack([np.ones_like(dx), dx, dy, dx * dx, dx * dy, dy * dy])
    ridge = 1e-12 * np.eye(6)  # keeps a degenerate resample solvable; the rank check below refuses it
    w = w0.copy()
    for _ in range(_IRLS_STEPS):
        weighted = design.T[None, :, :] * w[:, None, :]
        gram = weighted @ design + ridge
        coef = np.linalg.solve(gram, (weighted @ z)[:, :, None])[:, :, 0]
        resid = np.abs(z[None, :] - coef @ design.T)
        scale = 1.4826 * _weighted_median(resid, w0)
        huber = np.minimum(1.0, _HUBER_K * scale[:, None] / np.maximum(resid, 1e-300))
        w = w0 * np.where(scale[:, None] > 1e-12, huber, 1.0)
    sv = np.linalg.svd(gram - ridge, compute_uv=False)
    reason[(reason == 0) & ~(sv[:, -1] > 1e-10 * sv[:, 0])] = 4
    h11, h12, h22 = 2 * coef[:, 3], coef[:, 4], 2 * coef[:, 5]
    det = h11 * h22 - h12 * h12
    convex = (h11 > 0) & (det > 0)
    reason[(reason == 0) & ~convex] = 2
    safe = np.where(convex, det, 1.0)
    vx = (-h22 * coef[:, 1] + h12 * coef[:, 2]) / safe + x[i0]
    vy = (h12 * coef[:, 1] - h11 * coef[:, 2]) / safe + y[i0]
    inf = np.inf
    inside = ((vx >= np.min(np.where(band, x, inf), axis=1)) & (vx <= np.max(np.where(band, x, -inf), axis=1))
              & (vy >= np.min(np.where(band, y, inf), axis=1)) & (vy <= np.max(np.where(band, y, -inf), axis=1)))
    reason[(reason == 0) & ~inside] = 3
    return vx, vy, n_band, reason


def smooth_vertex(x: np.ndarray, y: np.ndarray, z: np.ndarray, window: float):
    """(log lr, log batch, n points, "") of the local quadratic's minimum, or (None, None, n, reason)."""
    vx, vy, n, reason = smooth_vertices(x, y, z, np.ones((1, z.size)), window)
    if reason[0]:
        return None, None, int(n[0]), _REASONS[int(reason[0])]
    return float(vx[0]), float(vy[0]), int(n[0]), ""


def grid_best(z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Index of the lowest-loss run present in each resample (``counts`` (k, n))."""
    return np.argmin(np.where(counts > 0, z, np.inf), axis=1)


def cell_optimum(params: float, tokens: float, lr: np.ndarray, batch: np.ndarray, loss: np.ndarray, *,
                 optimum: str = "grid", window: float = 0.005, flat: float = 0.005) -> CellOptimum:
    """The optimum of one cell's runs (``lr``, ``batch`` in tokens, ``loss``) by ``optimum``."""
    x, y, z = np.log(lr), np.log(batch), np.log(loss)
    best = int(np.argmin(z))
    note = []
    if lr[best] in (lr.min(), lr.max()):
        note.append("best LR at the edge of the sweep")
    if batch[best] in (batch.min(), batch.max()):
        note.append("best batch at the edge of the sweep")
    opt_lr, opt_batch, method, n_fit = float(lr[best]), float(batch[best]), "grid", 0
    if optimum == "smooth":
        vx, vy, n_fit, why = smooth_vertex(x, y, z, window)
        if vx is None:
            note.append(f"grid optimum kept: {why}")
        else:
            opt_lr, opt_batch, method = float(np.exp(vx)), float(np.exp(vy)), "smooth"
    near = loss <= loss[best] * (1.0 + flat)
    return CellOptimum(
        params=float(params), tokens=float(tokens), n_runs=int(lr.size), lr=opt_lr, batch_tokens=opt_batch,
        best_loss=float(loss[best]), method=method, note="; ".join(note),
        grid_lr=float(lr[best]), grid_batch_tokens=float(batch[best]), n_flat=int(near.sum()),
        flat_lr=(float(lr[near].min()), float(lr[near].max())),
        flat_batch_tokens=(float(batch[near].min()), float(batch[near].max())), n_fit=n_fit)


def optimum_logs(lr: np.ndarray, batch: np.ndarray, loss: np.ndarray, counts: np.ndarray, optimum: str,
                 window: float) -> np.ndarray:
    """(k, 2) log lr and log batch of the optimum in each of k resamples of one cell: the bootstrap's core."""
    x, y, z = np.log(lr), np.log(batch), np.log(loss)
    best = grid_best(z, counts)
    out = np.column_stack([x[best], y[best]])
    if optimum == "smooth":
        vx, vy, _, reason = smooth_vertices(x, y, z, counts, window)
        use = reason == 0
        out[use] = np.column_stack([vx, vy])[use]
    return out
