"""Sums over LR change points for curve laws (the multi-power law's loss drop, and any law of its kind).

A curve law whose loss at step t sums a term over every earlier step k where the LR changed needs, for
each logged point (run, t), the pairs (point, change step k) with log eta_k and log S_k(t) (the LR area
from k to t). This module builds them once per fit (``build_design``) and hands them to the law in
bounded chunks (``pair_chunks``): exactly (``exact_pairs``) or, above ``EXACT_PAIRS`` pairs, with far
change points merged into blocks of relative width ``resolution`` (``blocked_pairs``).

Accuracy: S_k(t) = S(t) - S(k-1) is a small difference of two large cumulative sums where the LR is
nearly 0, so every cumulative sum is kept as two terms (Knuth's TwoSum; see ``two_cumsum``).
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

EXACT_PAIRS = 200_000  # below this, blocked sums are not worth it
PAIR_BUDGET = 6_000_000  # pairs kept in memory by prepare(); larger designs are built chunk by chunk
_PAIR_BYTES = 128  # working memory per pair while a chunk is built (blocked_pairs: 111 measured)
_NEAR = 64  # change points this close before a point are always summed exactly
# Pairs per chunk kept in a design, whole points each (a point's sum then never depends on the cut): a
# law's temporaries over one chunk stay in cache (the multi-power Jacobian over 16k-pair chunks took half
# the time of the same over one 114k-pair chunk per run).
KEPT_CHUNK = 1 << 14


def _edges(t_max: int, eps: float, near: int = _NEAR) -> np.ndarray:
    """Block edges in distance-before-the-point: 0..near step 1, then widths eps * distance."""
    edges = [0]
    while edges[-1] <= t_max + 1:
        e = edges[-1]
        edges.append(e + (1 if e < near else max(1, int(eps * e))))
    return np.array(edges)


def _n_edges(t_max: int, eps: float) -> int:
    return len(_edges(t_max, eps))  # exp(700) is finite; G is 1 to machine precision long before


def two_cumsum(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.cumsum(v)`` and the running sum of its rounding errors: ``hi[i] + lo[i]`` is the prefix sum
    to about eps**2 of its size, so ``(hi[i] - hi[j]) + (lo[i] - lo[j])`` keeps the digits that
    ``hi[i] - hi[j]`` alone loses when the two are large and close (TwoSum on each step of the
    sequential cumulative sum recovers the error of that addition exactly)."""
    v = np.asarray(v, dtype=float)
    hi = np.cumsum(v)
    prev = np.concatenate([[0.0], hi[:-1]])
    back = hi - prev
    err = (prev - (hi - back)) + (v - back)
    return hi, np.cumsum(err)


def _prefix2(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-term prefix sums with a leading 0: sum(v[j:i]) = _diff2(c, i, j)."""
    hi, lo = two_cumsum(v)
    return np.concatenate([[0.0], hi]), np.concatenate([[0.0], lo])


def _diff2(c: tuple[np.ndarray, np.ndarray], i, j) -> np.ndarray:
    return (c[0][i] - c[0][j]) + (c[1][i] - c[1][j])


def run_rows(runs: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """(run, its row indices in ascending order) for each run, in order of first appearance. Comparing a
    1M-row name column with each of 50 names took 1.5 s; a table sorted by run (as loaded) is cut where
    the name changes instead, and any other order is hashed once (pandas.factorize: fast, 60 MB there)."""
    runs = np.asarray(runs)
    if runs.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate([[True], runs[1:] != runs[:-1]]))
    names = runs[starts]
    if len(set(names.tolist())) == names.size:  # each run's rows are contiguous
        ends = np.append(starts[1:], runs.size)
        return [(name, np.arange(a, b)) for name, a, b in zip(names, starts, ends)]
    import pandas as pd

    codes, names = pd.factorize(runs)
    counts = np.bincount(codes, minlength=len(names))
    order = np.argsort(codes, kind="stable")
    starts = np.cumsum(counts) - counts
    return [(name, order[a : a + c]) for name, a, c in zip(names, starts, counts)]


def change_points(eta: np.ndarray, convention: str) -> np.ndarray:
    """Steps k >= 1 whose LR differs from the previous step's (and, for the paper convention, k after
    the warm-up ramp: the ramp up to the first peak is not a loss 'drop')."""
    k = np.flatnonzero(np.diff(eta) != 0) + 1
    if convention == "paper":
        k = k[k > int(np.argmax(eta))]
    return k


def build_design(lrs: dict, runs: np.ndarray, steps: np.ndarray, convention: str, resolution: float | None,
                 source: str = "<schedule>", start: float | None = None, chunk_pairs: int | None = None) -> dict:
    """Design for points (runs[i], steps[i]) given dense LR arrays per run.

    ``resolution``: None sums every change point exactly; a number eps merges far-away change points
    into blocks of relative width eps (used above ``EXACT_PAIRS`` pairs; see :func:`blocked_pairs`, also
    for ``start``). ``chunk_pairs``: build pairs lazily, this many at a time, at every evaluation
    (a design used once); by default they are kept when they fit in PAIR_BUDGET (fits reuse them)."""
    n = steps.size
    logS = np.empty(n)
    per_run = {}
    for run, idx in run_rows(runs):
        eta = np.asarray(lrs[run], dtype=float)
        S, S_lo = two_cumsum(eta)  # S is np.cumsum(eta); S_lo its rounding error (see _diff2)
        t = steps[idx]
        if np.any(S[t] <= 0):
            bad = int(t[np.flatnonzero(S[t] <= 0)[0]])
            raise DataError(f"{source}: run '{run}' step {bad}: no LR area yet (the LR is 0 up to there); "
                            f"drop loss rows before the first nonzero LR")
        logS[idx] = np.log(S[t])
        k = change_points(eta, convention)
        counts = np.searchsorted(k, t, side="right")  # change points k <= t, per point
        per_run[run] = dict(idx=idx, t=t, S=S, S_lo=S_lo, k=k, counts=counts,
                            gap=eta[k] - eta[k - 1],
                            logeta=np.log(np.maximum(eta[k], 1e-300)))
    total = int(sum(int(v["counts"].sum()) for v in per_run.values()))
    design = {"logS": logS, "n": n, "runs": per_run, "n_pairs": total}
    if chunk_pairs:
        design["chunk_pairs"] = int(chunk_pairs)
    keep = not chunk_pairs
    if resolution and total > EXACT_PAIRS:
        design["resolution"], design["start"] = resolution, start
        # A few hundred blocks per point at most: keep them when they fit, else build them in chunks.
        bound = int(sum(v["counts"].size * n_cuts(int(v["t"].max()), resolution, start)
                        for v in per_run.values()))
        if keep and bound <= PAIR_BUDGET:
            design["chunks"] = [c for r in per_run for c in _kept_blocked(per_run[r], n, resolution, start)]
            design["n_pairs"] = int(sum(c["logR"].size for c in design["chunks"]))
    elif keep and total <= PAIR_BUDGET:
        design["chunks"] = [exact_pairs(rd, n, *pairs) for rd in per_run.values()
                            for pairs in _point_groups(np.cumsum(rd["counts"]), KEPT_CHUNK)]
    return design



def _point_groups(cum: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Consecutive ranges of whole points, as pair ranges [p0, p1), of about ``size`` pairs or one point
    each; ``cum``: the cumulative pair count per point."""
    out, p0 = [], 0
    while p0 < (cum[-1] if cum.size else 0):
        i = max(int(np.searchsorted(cum, p0 + size, side="right")), int(np.searchsorted(cum, p0, side="right")) + 1)
        p1 = int(cum[min(i, cum.size) - 1])
        out.append((p0, p1))
        p0 = p1
    return out


def _kept_blocked(rd: dict, n: int, eps: float, start: float | None) -> list[dict]:
    """A run's blocked pairs in chunks of whole points of about KEPT_CHUNK pairs (see there)."""
    whole = blocked_pairs(rd, n, eps, start=start)
    per_point = np.diff(whole["M"].indptr)[rd["idx"]]  # blocks of each point, in the run's order
    groups = _point_groups(np.cumsum(per_point), KEPT_CHUNK)
    if len(groups) <= 1:
        return [whole]
    first = np.concatenate([[0], np.cumsum(per_point)])
    points = [np.arange(np.searchsorted(first, a), np.searchsorted(first, b)) for a, b in groups]
    return [blocked_pairs(rd, n, eps, sel, start=start) for sel in points]


def n_cuts(t_max: int, eps: float, start: float | None) -> int:
    """Blocks per point at most (the size of one row of blocked_pairs' work arrays)."""
    return _n_edges(t_max, eps) + (len(_edges(t_max, start, 16)) if start else 0)

def _block_table(rd: dict) -> np.ndarray:
    """Per change-point index r = 0..K, one column (computed once per run, then reused): two-term
    prefix sums over change points j < r of |gap|, gap, |gap| log eta and |gap| S(k_j - 1) (rows
    0-7), S(k_{r-1} - 1) (8-9) and S(k_r - 1) (10-11) as two terms. A block [lo, hi) needs the
    columns hi and lo only: two gathers."""
    if "table" not in rd:
        k, gap, S, S_lo = rd["k"], rd["gap"], rd["S"], rd["S_lo"]
        a = np.abs(gap)
        K = k.size
        tab = np.zeros((12, K + 1))
        for row, v in enumerate((a, gap, a * rd["logeta"], a * S[k - 1])):
            tab[2 * row], tab[2 * row + 1] = _prefix2(v)
        tab[8, 1:], tab[9, 1:] = S[k - 1], S_lo[k - 1]
        tab[10, :-1], tab[11, :-1] = S[k - 1], S_lo[k - 1]
        rd["table"] = tab
    return rd["table"]

def _below(rd: dict) -> np.ndarray:
    """below[s + 1] = the number of change points k <= s, for s = -1 .. T-1 (a lookup instead of a
    binary search per block edge; computed once per run)."""
    if "below" not in rd:
        T = rd["S"].size
        mark = np.zeros(T + 1, dtype=np.int32 if T < 2**31 else np.int64)
        mark[rd["k"] + 1] = 1
        rd["below"] = np.cumsum(mark, dtype=mark.dtype)
    return rd["below"]

def _R(rd: dict, t: np.ndarray, kk: np.ndarray) -> np.ndarray:
    """S_k(t) = sum of eta over k..t, from the two-term cumulative sums (accurate where eta ~ 0)."""
    S, lo = rd["S"], rd["S_lo"]
    return (S[t] - S[kk - 1]) + (lo[t] - lo[kk - 1])

def _block_sum(tab: np.ndarray, top: np.ndarray, bottom: np.ndarray, row: int) -> np.ndarray:
    """A two-term prefix sum (table rows ``row`` and ``row + 1``) over each block [bottom, top)."""
    return (tab[row][top] - tab[row][bottom]) + (tab[row + 1][top] - tab[row + 1][bottom])

def blocked_pairs(rd: dict, n: int, eps: float, sel: np.ndarray | None = None, near: int = _NEAR,
                   start: float | None = None) -> dict:
    """Like :func:`exact_pairs`, but change points at distance d > ``near`` steps before a point are merged
    into blocks of about eps * d steps (|gap|-weighted log eta and S_k(t) as the block's values).
    G varies slowly far from t, so the error is O(eps^2) while the pairs per point drop from O(t)
    to O(near + log(t) / eps).

    G also varies through eta_k^-gamma: a warm-up ramp from 0 has eta_k ~ k, so one far block can
    span eta from 1e-7 to 3e-5 (the largest errors, 5e-6 on a 24k cosine and 3e-5 on a two-stage
    schedule with a 500-step warm-up). ``start`` (used for schedule curves) also ends blocks on a
    fixed grid in k, exact up to k = 16 and of relative width ``start`` beyond: the error drops to
    about 2e-7 for some 15 % more blocks. Fits keep ``start=None``: their blocks stay as they were.

    A block's S_k(t) is that of its last change point (exact, from two-term sums) plus the
    |gap|-weighted in-block offset, clipped to the block's own LR area: never below the exact value
    at the block's last change point, so never 0 or negative where the LR is nearly 0."""
    sel = np.arange(rd["t"].size) if sel is None else sel
    t = rd["t"][sel]
    E = _edges(int(t.max()), eps, near)
    tab = _block_table(rd)
    # Change-point index range of block b for point i: k in (t_i - E[b+1], t_i - E[b]]. Arrays are
    # (cut, point): neighbouring points have neighbouring cuts, so the gathers below run through
    # memory nearly in order (a long horizon's tables do not fit in any cache).
    cuts = t[None, :] - E[:, None]
    if start:  # also cut at k = 0..16, then at relative steps of ``start`` in k (descending like t - E)
        grid = _edges(int(t.max()), start, 16)
        cuts = np.concatenate([cuts, np.minimum(grid[:, None], t[None, :])], axis=0)
        cuts = -np.sort(-cuts, axis=0)
    np.maximum(cuts, -1, out=cuts)
    bounds = _below(rd)[cuts + 1]  # number of change points <= each cut: (n_cuts, n_i)
    del cuts
    hi, lo = bounds[:-1], bounds[1:]
    keep = hi > lo
    point = np.broadcast_to(np.arange(t.size)[None, :], hi.shape)[keep]  # index into sel
    top, bottom = hi[keep], lo[keep]  # each block's table columns; rows are gathered one at a time (all
    del bounds, keep, hi, lo          # 12 at once were 190 bytes a pair, the chunk's peak)
    w = _block_sum(tab, top, bottom, 0)  # > 0: every change point has a nonzero gap
    g = _block_sum(tab, top, bottom, 2)
    le = _block_sum(tab, top, bottom, 4) / w
    S_last = tab[8][top]  # S(k_last - 1), k_last the block's last change point
    offset = S_last - _block_sum(tab, top, bottom, 6) / w  # mean of S(k_last - 1) - S(k - 1)
    last_lo = tab[9][top]
    span = np.maximum((S_last - tab[10][bottom]) + (last_lo - tab[11][bottom]), 0.0)  # the block's LR area
    del top, bottom
    R = ((rd["S"][t][point] - S_last) + (rd["S_lo"][t][point] - last_lo)) + np.clip(offset, 0.0, span)
    del S_last, last_lo, offset, span
    with np.errstate(divide="ignore"):
        logR = np.log(R)
    return {"logR": logR, "logeta": le, "M": _gap_matrix(g, rd["idx"][sel][point], n)}

def exact_pairs(rd: dict, n: int, p0: int = 0, p1: int | None = None) -> dict:
    """The run's (point, change step) pairs p0..p1-1 (point-major order): logR = log S_k(t), and the
    sparse matrix M (n x pairs) holding the LR gaps that sums pair terms into points. A range may
    cover part of one point's pairs (M adds the parts up), so memory is bounded for any horizon."""
    counts = rd["counts"]
    cum = np.cumsum(counts)
    p1 = int(cum[-1]) if p1 is None else p1
    p = np.arange(p0, p1, dtype=np.int64)
    point = np.searchsorted(cum, p, side="right")  # index into the run's points
    j = p - (cum[point] - counts[point])  # index into the run's change points
    kk = rd["k"][j]
    R = _R(rd, rd["t"][point], kk)
    with np.errstate(divide="ignore"):
        logR = np.log(R)
    return {"logR": logR, "logeta": rd["logeta"][j], "M": _gap_matrix(rd["gap"][j], rd["idx"][point], n)}


def _gap_matrix(gaps: np.ndarray, rows: np.ndarray, n: int):
    """The n x pairs matrix that sums pair terms into their points, weighted by the LR gaps. scipy.sparse
    is imported here, not with the module: a schedule optimisation evaluates the law without pairs and
    would otherwise pay its ~0.2 s import."""
    from scipy import sparse

    return sparse.csr_matrix((gaps, (rows, np.arange(gaps.size))), shape=(n, gaps.size))

def chunk_size() -> int:
    """Pairs built at a time for a design too large to keep: as many as fit the block budget
    (``limits.limit("block_bytes")``, SCALEFIT_BLOCK_MEMORY)."""
    from .limits import limit

    return max(4096, limit("block_bytes") // _PAIR_BYTES)


def pair_chunks(design: dict, progress=None):
    """The design's pair chunks; ``progress(done, total)`` after each (in points, or pairs when exact)."""
    report = progress or (lambda done, total: None)
    if "chunks" in design:
        for i, ch in enumerate(design["chunks"]):
            yield ch
            report(i + 1, len(design["chunks"]))
        return
    n = design["n"]
    eps, start = design.get("resolution"), design.get("start")
    size = design.get("chunk_pairs") or chunk_size()
    runs = list(design["runs"].values())
    total = sum(int(rd["t"].size if eps else rd["counts"].sum()) for rd in runs)
    done = 0
    for rd in runs:
        if eps:  # blocked sums, built for groups of points
            step = max(1, size // n_cuts(int(rd["t"].max()), eps, start))
            for a in range(0, rd["t"].size, step):
                b = min(a + step, rd["t"].size)
                yield blocked_pairs(rd, n, eps, np.arange(a, b), start=start)
                done += b - a
                report(done, total)
            continue
        pairs = int(rd["counts"].sum())
        for a in range(0, pairs, size):  # pairs in groups of ``size``
            b = min(a + size, pairs)
            yield exact_pairs(rd, n, a, b)
            done += b - a
            report(done, total)
