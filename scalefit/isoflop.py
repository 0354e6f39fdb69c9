"""Chinchilla approach 2: IsoFLOP profiles (Hoffmann et al. 2022, section 3.2).

For each compute budget, fit a parabola to loss against log N over the runs trained at that budget; its
vertex is that budget's loss-optimal size N_opt(C), and D_opt(C) = C / (6 N_opt(C)). Least squares of
log N_opt on log C then gives N_opt ∝ C^a (and D_opt ∝ C^b, b = 1 - a). Intervals come from resampling
runs *within* each budget (a budget keeps its size) and redoing every step, so they carry the scatter of
each parabola's vertex through to a.

Budgets: ``budgets=[6e18, 1e19, ...]`` assigns each run to the nearest listed budget within a factor
``1 + tol`` (runs near none are left out, and said so). Without it, a table whose runs mostly share their
compute value exactly (an IsoFLOP sweep's ``budget`` column) is grouped by value; any other table (compute
from 6ND, digitised figures) by the densest windows of width ``1 + tol`` holding at least ``min_runs``
runs, from the densest down, and runs in no such window are left out.

Known biases (Open-Athena, "Problems with Chinchilla Approach 2", arXiv:2603.22339; checked against
their derivation): the IsoFLOP loss E + A N^-alpha + B (6N/C)^beta is not a parabola in log N unless
alpha = beta. With alpha != beta (a != 0.5) the vertex of a parabola fitted over a grid centred on the
true minimum misses it by a factor that depends on the grid's width but not on C: N_opt's prefactor is
biased, a is not. A grid off-centre by the same factor at every budget also biases the prefactor only;
an offset that changes with compute biases a too. :func:`isoflop` reports each budget's vertex position
in its grid and warns when these conditions hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .data import Dataset
from .errors import DataError, option_error
from .limits import LimitError, enforce
from .stats import percentile_interval

BUDGET_TOL = 0.1  # a run belongs to a budget within this relative distance of its compute
MIN_RUNS = 3  # a parabola has three coefficients
OFF_CENTRE = 0.5  # a vertex past the middle half of its budget's log-N range is "off-centre"


@dataclass
class Budget:
    """One IsoFLOP profile: its compute, runs, the sizes trained and the parabola's vertex."""

    compute: float
    runs: int
    params_min: float
    params_max: float
    n_opt: float  # NaN when the parabola opens downwards (no minimum)
    n_opt_low: float | None = None
    n_opt_high: float | None = None
    loss_min: float = math.nan
    offset: float = math.nan  # vertex in the log-N range: -1 smallest size, 0 centre, +1 largest

    @property
    def d_opt(self) -> float:
        return self.compute / (6.0 * self.n_opt)

    def to_dict(self) -> dict:
        return {"compute": self.compute, "runs": self.runs, "params_range": [self.params_min, self.params_max],
                "n_opt": {"value": self.n_opt, "low": self.n_opt_low, "high": self.n_opt_high},
                "d_opt": self.d_opt, "loss_min": self.loss_min, "offset": self.offset}


@dataclass
class IsoflopResult:
    """Approach 2's exponents with intervals, the per-budget profiles, and what may bias them."""

    a: dict  # {"value", "low", "high"}: N_opt ∝ C^a
    b: dict  # D_opt ∝ C^b (b = 1 - a, as D_opt = C / 6 N_opt)
    n_coef: float  # N_opt = n_coef * C^a
    budgets: list[Budget]
    ci: float
    n_bootstrap: int
    grouping: str
    forecast: dict | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def n_opt(self, compute) -> np.ndarray:
        return self.n_coef * np.asarray(compute, dtype=float) ** self.a["value"]

    def to_dict(self) -> dict:
        return {"method": "isoflop (Chinchilla approach 2)", "a": dict(self.a), "b": dict(self.b),
                "n_coef": self.n_coef, "ci": self.ci, "n_bootstrap": self.n_bootstrap, "grouping": self.grouping,
                "budgets": [b.to_dict() for b in self.budgets], "forecast": self.forecast,
                "notes": list(self.notes), "warnings": list(self.warnings)}


# ---------------------------------------------------------------------------- budgets
def parse_budgets(text: str) -> list[float]:
    """``"6e18,1e19,3e19"`` -> [6e18, 1e19, 3e19] (``budgets`` as the CLI takes it)."""
    from .units import parse_count

    out = []
    for item in str(text).split(","):
        if not item.strip():
            continue
        try:
            value = parse_count(item.strip(), what="budgets")
        except DataError:
            raise option_error("budgets", text, "expected FLOP values separated by commas, e.g. 6e18,1e19,3e19") \
                from None
        if value <= 0:
            raise option_error("budgets", text, "every budget must be a positive number of FLOPs")
        out.append(value)
    if not out:
        raise option_error("budgets", text, "give at least one FLOP value, e.g. 6e18,1e19,3e19")
    return out


def _densest_windows(log_c: np.ndarray, width: float, min_runs: int) -> np.ndarray:
    """Greedy: the window [x, x + width] holding most runs becomes a budget, until none holds min_runs."""
    group = np.full(log_c.size, -1)
    g = 0
    while True:
        free = np.flatnonzero(group < 0)
        x = np.sort(log_c[free])
        if x.size < min_runs:
            break
        counts = np.searchsorted(x, x + width, side="right") - np.arange(x.size)
        i = int(np.argmax(counts))
        if counts[i] < min_runs:
            break
        group[(group < 0) & (log_c >= x[i]) & (log_c <= x[i] + width)] = g
        g += 1
    return group


SHARED = "runs sharing a compute value"


def found_budgets(compute: np.ndarray, *, tol: float = BUDGET_TOL,
                  min_runs: int = MIN_RUNS) -> tuple[np.ndarray, np.ndarray, str]:
    """The compute budgets of a table with none listed: (budget index per run, -1 for none; each budget's
    compute; how they were found). Runs that mostly share their compute value exactly (an IsoFLOP sweep's
    budget column) are grouped by value, every run included; otherwise the densest windows of a factor
    ``1 + tol`` holding at least ``min_runs`` runs are the budgets, and runs in none get -1. The one
    definition of a compute budget: :func:`group_budgets` and ``backtest.holdout_split(by="compute")``."""
    log_c = np.log(np.asarray(compute, dtype=float))
    rounded = np.round(log_c, 9)  # the same budget written twice may differ in the last digit
    values, inverse, counts = np.unique(rounded, return_inverse=True, return_counts=True)
    if np.count_nonzero(counts[inverse] >= 2) >= 0.5 * log_c.size:  # mostly shared values: a budget column
        return inverse.astype(int), np.exp(values), SHARED
    group = _densest_windows(log_c, math.log1p(tol), min_runs)
    values = np.array([float(np.exp(log_c[group == g].mean())) for g in range(int(group.max()) + 1)])
    return group, values, f"densest windows of a factor {1 + tol:g} with at least {min_runs} runs"


def budget_ranks(compute: np.ndarray, *, tol: float = BUDGET_TOL, min_runs: int = MIN_RUNS) -> np.ndarray:
    """Each run's compute budget as a rank, 0 for the largest (:func:`found_budgets`); a run on no budget is
    a budget of its own. Holding out the K largest budgets of an IsoFLOP sweep holds out whole profiles."""
    compute = np.asarray(compute, dtype=float)
    group, values, _ = found_budgets(compute, tol=tol, min_runs=min_runs)
    alone = np.flatnonzero(group < 0)
    group = group.copy()
    group[alone] = len(values) + np.arange(alone.size)
    values = np.concatenate([values, compute[alone]])
    order = np.argsort(-values, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[group]


def group_budgets(compute: np.ndarray, *, budgets=None, tol: float = BUDGET_TOL, min_runs: int = MIN_RUNS,
                  source: str = "<runs>") -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(budget index per run, -1 for none; each budget's compute; how they were found; notes)."""
    log_c = np.log(compute)
    width = math.log1p(tol)
    notes: list[str] = []
    if budgets is not None:
        listed = np.sort(np.asarray(budgets, dtype=float))
        dist = np.abs(log_c[:, None] - np.log(listed)[None])
        group = np.where(dist.min(axis=1) <= width, dist.argmin(axis=1), -1)
        values, how = listed, f"listed budgets, runs within a factor {1 + tol:g}"
        for j, c in enumerate(values):
            if np.count_nonzero(group == j) < min_runs:
                raise DataError(f"{source}: budget {c:.3g} FLOPs has {np.count_nonzero(group == j)} run(s) within a "
                                f"factor {1 + tol:g}; a parabola needs at least {min_runs}: add runs, widen tol or "
                                f"leave that budget out of budgets", options=("budgets", "tol"))
    else:
        group, values, how = found_budgets(compute, tol=tol, min_runs=min_runs)
        counts = np.bincount(group[group >= 0], minlength=len(values))
        few = np.flatnonzero(counts < min_runs)
        if how == SHARED and few.size:
            raise DataError(f"{source}: budget {values[few[0]]:.3g} FLOPs has {int(counts[few[0]])} run(s); a "
                            f"parabola needs at least {min_runs}: add runs at that budget or drop its rows")
    left = int(np.count_nonzero(group < 0))
    if left:
        notes.append(f"{left} run(s) lie on no budget ({how}) and were left out")
    if np.count_nonzero(np.bincount(group[group >= 0], minlength=len(values)) >= min_runs) < 2:
        raise DataError(f"{source}: fewer than 2 compute budgets with at least {min_runs} runs each ({how}); "
                        f"approach 2 fits a power law across them")
    return group, np.asarray(values, dtype=float), how, notes


# ---------------------------------------------------------------------------- the fits
def _vertices(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares parabola y ~ x for each weight row (k, m): (vertex x, minimum y), NaN where
    fewer than 3 distinct x carry weight or the parabola opens downwards."""
    centre, scale = x.mean(), max(x.std(), 1e-12)
    u = (x - centre) / scale
    design = np.stack([np.ones_like(u), u, u * u], axis=1)  # (m, 3)
    xtwx = np.einsum("ki,ij,il->kjl", weights, design, design)
    xtwy = np.einsum("ki,ij,i->kj", weights, design, y)
    values, inverse = np.unique(u, return_inverse=True)
    onehot = np.zeros((u.size, values.size))
    onehot[np.arange(u.size), inverse] = 1.0
    ok = np.count_nonzero(weights @ onehot, axis=1) >= 3  # distinct sizes drawn
    coef = np.full((weights.shape[0], 3), np.nan)
    if ok.any():
        coef[ok] = np.linalg.solve(xtwx[ok], xtwy[ok][..., None])[..., 0]
    c0, c1, c2 = coef.T
    with np.errstate(all="ignore"):
        good = ok & (c2 > 0)
        vertex = np.where(good, centre + scale * (-c1 / (2 * c2)), np.nan)
        low = np.where(good, c0 - c1 * c1 / (4 * c2), np.nan)
    return vertex, low


def _slopes(log_c: np.ndarray, log_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of log N_opt on log C for each row of log_n (k, budgets), over its finite entries:
    (slope, intercept), NaN where fewer than 2 budgets are finite."""
    mask = np.isfinite(log_n)
    w = mask.astype(float)
    count = w.sum(axis=1)
    with np.errstate(all="ignore"):
        cx = (w * log_c).sum(axis=1) / count
        cy = np.where(mask, log_n, 0.0).sum(axis=1) / count
        dx = np.where(mask, log_c[None] - cx[:, None], 0.0)
        dy = np.where(mask, log_n - cy[:, None], 0.0)
        slope = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
    slope = np.where(count >= 2, slope, np.nan)
    return slope, cy - slope * cx


def _interval(samples: np.ndarray, center: float, ci: float) -> tuple[float | None, float | None]:
    """Percentile interval of the finite draws; none when more draws failed than an interval may lose at
    one end (a 3-run budget's resamples mostly repeat a size and have no parabola)."""
    good = samples[np.isfinite(samples)]
    if good.size < 2 or not np.isfinite(center) or samples.size - good.size > (1 - ci) / 2 * samples.size:
        return None, None
    lo, hi = percentile_interval(good, ci)
    return float(min(lo, center)), float(max(hi, center))


def _check_memory(n_bootstrap: int, largest: int, n_budgets: int) -> None:
    """Refuse, before allocating, resamples whose arrays would not fit the memory limit: per draw, a budget's
    weights, counts drawn and sizes drawn (3 x its runs), its normal equations (~24) and every vertex (2 x
    budgets), in float64."""
    need = 8 * (1 + n_bootstrap) * (3 * largest + 24 + 2 * n_budgets)
    try:
        enforce("memory_bytes", need, f"n_bootstrap={n_bootstrap} resamples of up to {largest} runs per budget")
    except LimitError as exc:
        raise LimitError(str(exc), options=("n_bootstrap",)) from None


def isoflop(data: Dataset, *, budgets=None, tol: float = BUDGET_TOL, min_runs: int = MIN_RUNS,
            n_bootstrap: int = 1000, ci: float = 0.95, seed: int | None = 0,
            compute: float | None = None) -> IsoflopResult:
    """Approach 2 on a table of runs (roles ``params``, ``loss``, and ``flops`` or ``tokens``).

    ``budgets``: nominal compute budgets to assign runs to (else found from the table, see the module
    docstring); ``tol``: how far (relative) a run's compute may lie from its budget; ``min_runs``: runs a
    budget needs (at least 3). ``n_bootstrap`` resamples of runs within budgets give percentile intervals
    at level ``ci``; ``compute``: also forecast N_opt and D_opt there. A run with several rows (checkpoints)
    counts with its last one.
    """
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and 0 < tol < 1):
        raise option_error("tol", tol, "must be a relative distance between 0 and 1, e.g. 0.1")
    if isinstance(min_runs, bool) or not isinstance(min_runs, (int, np.integer)) or min_runs < MIN_RUNS:
        raise option_error("min_runs", min_runs, f"a parabola needs at least {MIN_RUNS} runs per budget")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise option_error("n_bootstrap", n_bootstrap, "the number of resamples must be a whole number >= 0")
    if not (isinstance(ci, (int, float)) and 0 < ci < 1):
        raise option_error("ci", ci, "the interval level must lie strictly between 0 and 1, e.g. 0.95")
    if compute is not None and not (isinstance(compute, (int, float)) and math.isfinite(compute) and compute > 0):
        raise option_error("compute", compute, "must be a positive number of FLOPs")
    for role in ("params", "loss", "flops"):
        data.column(role)  # a missing column is named here, with the columns there are
    codes = data.run_codes
    order = np.lexsort((data.column("flops"), codes))
    last = order[np.r_[codes[order][1:] != codes[order][:-1], True]]  # each run's largest-compute row
    notes = [] if last.size == len(data) else [f"{len(data) - last.size} earlier checkpoint row(s) ignored: "
                                                f"a run counts with its last row"]
    n, y, c = (data.column(role)[last] for role in ("params", "loss", "flops"))
    group, values, how, more = group_budgets(c, budgets=budgets, tol=tol, min_runs=min_runs, source=data.source)
    notes += more
    k = 1 + n_bootstrap
    _check_memory(n_bootstrap, int(np.bincount(group[group >= 0]).max()), len(values))
    rng = np.random.default_rng(seed)
    vertex = np.full((k, len(values)), np.nan)
    minimum = np.full((k, len(values)), np.nan)
    for j in range(len(values)):
        idx = np.flatnonzero(group == j)
        if idx.size < min_runs:
            continue
        weights = np.ones((k, idx.size))
        if n_bootstrap:
            weights[1:] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=n_bootstrap)
        vertex[:, j], minimum[:, j] = _vertices(np.log(n[idx]), y[idx], weights)
    log_c = np.log(values)
    slope, intercept = _slopes(log_c, vertex)
    if not np.isfinite(slope[0]):
        raise DataError(f"{data.source}: fewer than 2 budgets have a loss minimum (a parabola opening upwards); "
                        f"approach 2 needs at least 2")
    a_lo, a_hi = _interval(slope[1:], slope[0], ci)
    result = IsoflopResult(
        a={"value": float(slope[0]), "low": a_lo, "high": a_hi},
        b={"value": float(1 - slope[0]), "low": None if a_hi is None else 1 - a_hi,
           "high": None if a_lo is None else 1 - a_lo},
        n_coef=float(np.exp(intercept[0])), budgets=[], ci=ci, n_bootstrap=n_bootstrap, grouping=how, notes=notes)
    failed = int(np.count_nonzero(~np.isfinite(slope[1:])))
    if failed:
        result.notes.append(f"{failed} of {n_bootstrap} resamples left fewer than 2 budgets with a minimum and "
                            f"were left out of the intervals")
    for j, cj in enumerate(values):
        idx = np.flatnonzero(group == j)
        x = np.log(n[idx])
        with np.errstate(over="ignore"):  # a resample's vertex far outside the sizes: an infinite N_opt
            lo, hi = _interval(np.exp(vertex[1:, j]), float(np.exp(vertex[0, j])), ci)
        half = (x.max() - x.min()) / 2
        result.budgets.append(Budget(float(cj), int(idx.size), float(n[idx].min()), float(n[idx].max()),
                                     float(np.exp(vertex[0, j])), lo, hi, float(minimum[0, j]),
                                     float((vertex[0, j] - (x.max() + x.min()) / 2) / half) if half > 0 else math.nan))
    if compute is not None:
        draws = np.exp(intercept + slope * math.log(compute))
        lo, hi = _interval(draws[1:], float(draws[0]), ci)
        result.forecast = {"compute": compute, "n_opt": {"value": float(draws[0]), "low": lo, "high": hi},
                           "d_opt": {"value": compute / (6 * float(draws[0])),
                                     "low": None if hi is None else compute / (6 * hi),
                                     "high": None if lo is None else compute / (6 * lo)}}
    result.warnings = bias_warnings(result)
    return result


def bias_warnings(result: IsoflopResult) -> list[str]:
    """What may bias approach 2 here (module docstring): no minimum, a vertex outside or off the centre of
    its grid (and whether that offset drifts with compute), and an asymmetric loss surface (a != 0.5)."""
    out = []
    flat = [b for b in result.budgets if not np.isfinite(b.n_opt)]
    if flat:
        out.append(f"{len(flat)} budget(s) have no loss minimum (the parabola opens downwards: "
                   f"{', '.join(f'{b.compute:.3g}' for b in flat)} FLOPs) and were left out of the power law")
    fitted = [b for b in result.budgets if np.isfinite(b.n_opt) and np.isfinite(b.offset)]
    outside = [b for b in fitted if abs(b.offset) > 1]
    if outside:
        out.append(f"{len(outside)} budget(s) have their minimum outside the sizes trained "
                   f"({', '.join(f'{b.compute:.3g}' for b in outside)} FLOPs): that vertex is an extrapolation of "
                   f"the parabola; train sizes on both sides of it")
    off = [b for b in fitted if OFF_CENTRE < abs(b.offset) <= 1]
    if outside or off:
        # The offset in log N of each vertex from its grid's centre; a trend with log C corrupts a.
        shift = np.array([b.offset * math.log(b.params_max / b.params_min) / 2 for b in fitted])
        log_c = np.log([b.compute for b in fitted])
        drift = float(np.polyfit(log_c, shift, 1)[0]) if len(fitted) >= 2 and np.ptp(log_c) > 0 else 0.0
        kind = (f"the offset changes with compute ({drift:+.2f} in log N per log C), which biases the exponent a "
                f"as well as N_opt's prefactor" if abs(drift) > 0.05 else
                "the offset is about the same at every budget, which biases N_opt's prefactor but not a")
        out.append(f"{len(outside) + len(off)} of {len(fitted)} budget(s) sampled sizes off-centre around their "
                   f"minimum (vertex past the middle half of the log-N range); {kind} (Open-Athena, arXiv:2603.22339): "
                   f"centre each budget's sizes on its minimum, or fit a loss surface (law chinchilla) to the same runs")
    a = result.a
    if a["low"] is not None and not a["low"] <= 0.5 <= a["high"]:
        widest = max(b.params_max / b.params_min for b in fitted) ** 0.5
        out.append(f"a = {a['value']:.3f} (interval excludes 0.5) means alpha != beta: the IsoFLOP curves are "
                   f"not parabolas in log N, so each vertex misses its minimum by a factor that grows with the "
                   f"grid's width (here up to ±{widest:.3g}x) -- N_opt's prefactor is biased, a itself is not "
                   f"while the grids are centred (Open-Athena, arXiv:2603.22339)")
    return out
