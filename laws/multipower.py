"""Multi-Power Law (Luo, Wen, Hu, Sun, Liu, Sun, Lyu, Chen, ICLR 2025, arXiv:2503.12811).

The loss at step t of a run trained with the LR sequence eta_0, eta_1, ... (warm-up included):

    L(t)   = L0 + A * (S1(t) + S_W)^(-alpha) - LD(t)
    LD(t)  = B * sum_{k=1..t} (eta_{k-1} - eta_k) * G(eta_k^(-gamma) * S_k(t))
    G(x)   = 1 - (C x + 1)^(-beta),       S_k(t) = sum_{tau=k..t} eta_tau

S1 + S_W is the area under the whole LR curve up to t (S(t) = cumsum(eta)[t], S_W its warm-up part).
The first two terms are the constant-LR power law in LR area; LD(t) is the loss drop bought by every
LR decrease so far, each saturating as LR area accumulates after it.

Parameters: L0 the loss floor, A and alpha the power law in LR area, B the loss drop per unit LR drop,
C and beta the shape of the saturating drop G, gamma how the drop's time scale depends on the new LR.

Convention (``convention="code"``, the default): the official code sums LD over *every* step,
warm-up ramp included (there eta_{k-1} - eta_k < 0, a negative "drop" that adds about B * eta_max).
The published parameters (``reference`` sets 25M, 100M, 400M) are in this convention and reproduce
the official predictions to 1e-6. ``convention="paper"`` starts the sum after the warm-up (eta_0 =
eta_max), as written in the paper; with the published parameters it predicts lower losses by about
B * eta_max * G (0.11, 0.13, 0.16 for 25M, 100M, 400M). Fitted parameters are only valid in the
convention they were fitted in.

Cost: only steps where the LR changes contribute to LD, so ``prepare`` keeps, for every logged point,
the pairs (point, change step k) with log eta_k and log S_k(t) precomputed; ``predict`` and the
analytic ``jacobian`` are then a few vectorised transcendental functions per pair and a sparse sum.
A cosine logged every 128 steps still gives O(T^2 / 256) pairs (25 M for the official 400M curves),
so for fitting, change points more than 64 steps before a point are merged into blocks of relative
width ``resolution`` (default 0.01: 45x fewer pairs, max error 1e-5 in loss on the official curves,
100x below the Huber width). ``resolution=None`` (``with_options(resolution="exact")``) sums exactly;
``curve`` (schedule prediction) is exact up to a pair budget or for a few points, blocked beyond.

Accuracy: S_k(t) = S(t) - S(k-1) is a small difference of two large cumulative sums where the LR is
nearly 0 (the end of a cosine to 0: S ~ 3.6, S_k(t) ~ 1e-11), and a block's weighted means are ratios
of differences of cumulative sums over all change points. Plain cumulative sums lose every digit
there (a negative S_k(t): NaN). Every cumulative sum is therefore kept as two terms, the float sum and
its exact running rounding error (Knuth's TwoSum), so a difference of two of them is accurate to the
last bits of the difference itself; a block's S_k(t) is written as that of its last change point plus
a non-negative in-block offset. Memory stays bounded: pairs are built in chunks (``_PAIR_BUDGET / 4``
for fits, ``_CURVE_CHUNK`` for ``curve``), also when one point alone has more.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from scalefit.errors import DataError
from scalefit.law import CurveLaw, Param

_EXACT_PAIRS = 200_000  # below this, blocked sums are not worth it
_PAIR_BUDGET = 6_000_000  # pairs kept in memory by prepare(); larger designs are built chunk by chunk
_BLOCK_ELEMS = 4_000_000  # k * pairs evaluated at once (bounds the temporaries of a batch)
_CURVE_CHUNK = 1 << 18  # pairs built at a time by curve() (small temporaries are reused, large ones are not)
_FEW_POINTS = 8  # curve() sums exactly for this many points of one parameter vector at any horizon
_EXACT_WORK = _PAIR_BUDGET  # curve() sums exactly while pairs x parameter vectors stay below this
_Z_MAX = 700.0
_START = 0.1  # schedule curves: blocks also end on a grid of relative width 0.1 in k (see _blocked_pairs)
_NEAR = 64  # change points this close before a point are always summed exactly


def _edges(t_max: int, eps: float, near: int = _NEAR) -> np.ndarray:
    """Block edges in distance-before-the-point: 0..near step 1, then widths eps * distance."""
    edges = [0]
    while edges[-1] <= t_max + 1:
        e = edges[-1]
        edges.append(e + (1 if e < near else max(1, int(eps * e))))
    return np.array(edges)


def _n_edges(t_max: int, eps: float) -> int:
    return len(_edges(t_max, eps))  # exp(700) is finite; G is 1 to machine precision long before


def _two_cumsum(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    hi, lo = _two_cumsum(v)
    return np.concatenate([[0.0], hi]), np.concatenate([[0.0], lo])


def _diff2(c: tuple[np.ndarray, np.ndarray], i, j) -> np.ndarray:
    return (c[0][i] - c[0][j]) + (c[1][i] - c[1][j])


def change_points(eta: np.ndarray, convention: str) -> np.ndarray:
    """Steps k >= 1 whose LR differs from the previous step's (and, for the paper convention, k after
    the warm-up ramp: the ramp up to the first peak is not a loss 'drop')."""
    k = np.flatnonzero(np.diff(eta) != 0) + 1
    if convention == "paper":
        k = k[k > int(np.argmax(eta))]
    return k


class MultiPower(CurveLaw):
    name = "multipower"
    formula = "L = L0 + A (S1+S_W)^-alpha - B sum_k (eta_{k-1}-eta_k) [1 - (C eta_k^-gamma S_k(t) + 1)^-beta]"
    citation = "Luo et al. 2025, 'A Multi-Power Law for Loss Curve Prediction Across LR Schedules', ICLR, arXiv:2503.12811"
    params = {
        "L0": Param((0.0, 20.0), (2.0, 3.0), doc="loss floor (LR area -> infinity)"),
        "A": Param((1e-4, 1e3), (0.6,), log=True, doc="coefficient of the power law in LR area"),
        "alpha": Param((0.01, 3.0), (0.45,), doc="exponent of the power law in LR area"),
        "B": Param((1e-3, 1e6), (450.0,), log=True, doc="loss drop per unit LR decrease"),
        "C": Param((1e-4, 1e4), (2.0,), log=True, doc="time scale of the saturating drop G"),
        "beta": Param((0.01, 10.0), (0.6,), doc="power of the saturating drop G"),
        "gamma": Param((0.0, 3.0), (0.6,), doc="how the drop's time scale scales with the new LR"),
    }
    reference = {
        "25M": {"L0": 3.04045406, "A": 0.52468604, "alpha": 0.50786857, "B": 363.78751622,
                "C": 2.06560812, "beta": 0.58279013, "gamma": 0.64142257},
        "100M": {"L0": 2.6514477, "A": 0.60115152, "alpha": 0.45295811, "B": 437.9464276,
                 "C": 2.13245612, "beta": 0.59785199, "gamma": 0.65523644},
        "400M": {"L0": 2.37474466, "A": 0.65421216, "alpha": 0.42878731, "B": 523.42464371,
                 "C": 2.02462735, "beta": 0.59350493, "gamma": 0.63472457},
    }
    reference_units = {"loss_unit": "nats", "lr_units": "raw LR, peak 3e-4, warm-up 2160 steps from 0",
                       "convention": "code"}
    option_names = ("convention", "resolution")

    def __init__(self, convention: str = "code", resolution: float | None = 0.01):
        if convention not in ("code", "paper"):
            raise DataError(f"multipower convention '{convention}': use 'code' (official code) or 'paper'")
        self.convention = convention
        # "exact" (or 0 / None) sums the loss drop exactly; from the CLI the value arrives as text.
        if resolution in (None, 0, "0", "exact"):
            self.resolution = None
        else:
            try:
                value = float(resolution)
            except (TypeError, ValueError):
                value = float("nan")
            if not 1e-4 <= value <= 0.5:  # also refuses nan and inf
                raise DataError(f"multipower option resolution={resolution}: use a relative block width in "
                                f"[1e-4, 0.5] (default 0.01), or 'exact'")
            self.resolution = value

    def example_inputs(self):
        from scalefit.curves import example_curves

        w = "peak=3e-4,steps=3000,warmup=200"
        return example_curves({"cosine": f"cosine:{w},floor=3e-5", "constant": f"constant:{w}",
                               "wsd": f"wsd:{w},cooldown=0.2,shape=sqrt,floor=0"}, every=50)

    # ------------------------------------------------------------------ design
    def design_from_lr(self, lrs: dict, runs: np.ndarray, steps: np.ndarray, source: str = "<schedule>",
                       resolution="default", start: float | None = None, chunk_pairs: int | None = None) -> dict:
        """Design for points (runs[i], steps[i]) given dense LR arrays per run.

        ``resolution``: None sums every change point exactly; a number eps merges far-away change points
        into blocks of relative width eps (used above ``_EXACT_PAIRS`` pairs; see ``_blocked_pairs``, also
        for ``start``). ``chunk_pairs``: build pairs lazily, this many at a time, at every evaluation
        (a design used once); by default they are kept when they fit in _PAIR_BUDGET (fits reuse them)."""
        n = steps.size
        logS = np.empty(n)
        per_run = {}
        for run in dict.fromkeys(runs):
            idx = np.flatnonzero(runs == run)
            eta = np.asarray(lrs[run], dtype=float)
            S, S_lo = _two_cumsum(eta)  # S is np.cumsum(eta); S_lo its rounding error (see _diff2)
            t = steps[idx]
            if np.any(S[t] <= 0):
                bad = int(t[np.flatnonzero(S[t] <= 0)[0]])
                raise DataError(f"{source}: run '{run}' step {bad}: no LR area yet (the LR is 0 up to there); "
                                f"drop loss rows before the first nonzero LR")
            logS[idx] = np.log(S[t])
            k = change_points(eta, self.convention)
            counts = np.searchsorted(k, t, side="right")  # change points k <= t, per point
            per_run[run] = dict(idx=idx, t=t, S=S, S_lo=S_lo, k=k, counts=counts,
                                gap=eta[k] - eta[k - 1],
                                logeta=np.log(np.maximum(eta[k], 1e-300)))
        total = int(sum(int(v["counts"].sum()) for v in per_run.values()))
        design = {"logS": logS, "n": n, "runs": per_run, "n_pairs": total}
        if chunk_pairs:
            design["chunk_pairs"] = int(chunk_pairs)
        keep = not chunk_pairs
        resolution = self.resolution if resolution == "default" else resolution
        if resolution and total > _EXACT_PAIRS:
            design["resolution"], design["start"] = resolution, start
            # A few hundred blocks per point at most: keep them when they fit, else build them in chunks.
            bound = int(sum(v["counts"].size * self._n_cuts(int(v["t"].max()), resolution, start)
                            for v in per_run.values()))
            if keep and bound <= _PAIR_BUDGET:
                design["chunks"] = [self._blocked_pairs(per_run[r], n, resolution, start=start) for r in per_run]
                design["n_pairs"] = int(sum(c["logR"].size for c in design["chunks"]))
        elif keep and total <= _PAIR_BUDGET:
            design["chunks"] = [self._pairs(per_run[r], n) for r in per_run]
        return design

    @staticmethod
    def _n_cuts(t_max: int, eps: float, start: float | None) -> int:
        """Blocks per point at most (the size of one row of _blocked_pairs' work arrays)."""
        return _n_edges(t_max, eps) + (len(_edges(t_max, start, 16)) if start else 0)

    @staticmethod
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

    @staticmethod
    def _below(rd: dict) -> np.ndarray:
        """below[s + 1] = the number of change points k <= s, for s = -1 .. T-1 (a lookup instead of a
        binary search per block edge; computed once per run)."""
        if "below" not in rd:
            T = rd["S"].size
            mark = np.zeros(T + 1, dtype=np.int32 if T < 2**31 else np.int64)
            mark[rd["k"] + 1] = 1
            rd["below"] = np.cumsum(mark, dtype=mark.dtype)
        return rd["below"]

    @staticmethod
    def _R(rd: dict, t: np.ndarray, kk: np.ndarray) -> np.ndarray:
        """S_k(t) = sum of eta over k..t, from the two-term cumulative sums (accurate where eta ~ 0)."""
        S, lo = rd["S"], rd["S_lo"]
        return (S[t] - S[kk - 1]) + (lo[t] - lo[kk - 1])

    @classmethod
    def _blocked_pairs(cls, rd: dict, n: int, eps: float, sel: np.ndarray | None = None, near: int = _NEAR,
                       start: float | None = None) -> dict:
        """Like :meth:`_pairs`, but change points at distance d > ``near`` steps before a point are merged
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
        tab = cls._block_table(rd)
        # Change-point index range of block b for point i: k in (t_i - E[b+1], t_i - E[b]]. Arrays are
        # (cut, point): neighbouring points have neighbouring cuts, so the gathers below run through
        # memory nearly in order (a long horizon's tables do not fit in any cache).
        cuts = t[None, :] - E[:, None]
        if start:  # also cut at k = 0..16, then at relative steps of ``start`` in k (descending like t - E)
            grid = _edges(int(t.max()), start, 16)
            cuts = np.concatenate([cuts, np.minimum(grid[:, None], t[None, :])], axis=0)
            cuts = -np.sort(-cuts, axis=0)
        np.maximum(cuts, -1, out=cuts)
        bounds = cls._below(rd)[cuts + 1]  # number of change points <= each cut: (n_cuts, n_i)
        del cuts
        hi, lo = bounds[:-1], bounds[1:]
        keep = hi > lo
        point = np.broadcast_to(np.arange(t.size)[None, :], hi.shape)[keep]  # index into sel
        top, bottom = np.take(tab, hi[keep], axis=1), np.take(tab, lo[keep], axis=1)  # (12, pairs) each
        del bounds, keep, hi, lo
        w = (top[0] - bottom[0]) + (top[1] - bottom[1])  # > 0: every change point has a nonzero gap
        g = (top[2] - bottom[2]) + (top[3] - bottom[3])
        le = ((top[4] - bottom[4]) + (top[5] - bottom[5])) / w
        S_last = top[8]  # S(k_last - 1), k_last the block's last change point
        offset = S_last - ((top[6] - bottom[6]) + (top[7] - bottom[7])) / w  # mean of S(k_last - 1) - S(k - 1)
        span = np.maximum((S_last - bottom[10]) + (top[9] - bottom[11]), 0.0)  # the block's LR area
        R = ((rd["S"][t][point] - S_last) + (rd["S_lo"][t][point] - top[9])) + np.clip(offset, 0.0, span)
        del top, bottom, offset, span
        with np.errstate(divide="ignore"):
            logR = np.log(R)
        M = sparse.csr_matrix((g, (rd["idx"][sel][point], np.arange(g.size))), shape=(n, g.size))
        return {"logR": logR, "logeta": le, "M": M}

    @classmethod
    def _pairs(cls, rd: dict, n: int, p0: int = 0, p1: int | None = None) -> dict:
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
        R = cls._R(rd, rd["t"][point], kk)
        with np.errstate(divide="ignore"):
            logR = np.log(R)
        M = sparse.csr_matrix((rd["gap"][j], (rd["idx"][point], np.arange(p.size))), shape=(n, p.size))
        return {"logR": logR, "logeta": rd["logeta"][j], "M": M}

    def _chunks(self, design, progress=None):
        """The design's pair chunks; ``progress(done, total)`` after each (in points, or pairs when exact)."""
        report = progress or (lambda done, total: None)
        if "chunks" in design:
            for i, ch in enumerate(design["chunks"]):
                yield ch
                report(i + 1, len(design["chunks"]))
            return
        n = design["n"]
        eps, start = design.get("resolution"), design.get("start")
        size = design.get("chunk_pairs", _PAIR_BUDGET // 4)
        runs = list(design["runs"].values())
        total = sum(int(rd["t"].size if eps else rd["counts"].sum()) for rd in runs)
        done = 0
        for rd in runs:
            if eps:  # blocked sums, built for groups of points
                step = max(1, size // self._n_cuts(int(rd["t"].max()), eps, start))
                for a in range(0, rd["t"].size, step):
                    b = min(a + step, rd["t"].size)
                    yield self._blocked_pairs(rd, n, eps, np.arange(a, b), start=start)
                    done += b - a
                    report(done, total)
                continue
            pairs = int(rd["counts"].sum())
            for a in range(0, pairs, size):  # pairs in groups of ``size``
                b = min(a + size, pairs)
                yield self._pairs(rd, n, a, b)
                done += b - a
                report(done, total)

    # ------------------------------------------------------------------ the law
    def _loss_drop(self, theta, design, with_jac: bool, progress=None):
        """B-free sums over pairs: D = sum gap*G, and (if asked) d/dC, d/dbeta, d/dgamma of it."""
        p = self.unpack(theta)
        k = theta.shape[0]
        n = design["n"]
        D = np.zeros((k, n))
        dC = np.zeros((k, n)) if with_jac else None
        dbeta = np.zeros((k, n)) if with_jac else None
        dgamma = np.zeros((k, n)) if with_jac else None
        logC, beta, gamma = np.log(p["C"]), p["beta"], p["gamma"]
        for ch in self._chunks(design, progress):
            P = ch["logR"].size
            if P == 0:
                continue
            step = max(1, _BLOCK_ELEMS // P)
            for a in range(0, k, step):
                b = min(k, a + step)
                z = logC[a:b] - gamma[a:b] * ch["logeta"] + ch["logR"]  # log of C eta^-gamma S_k(t)
                np.clip(z, -745.0, _Z_MAX, out=z)
                x = np.exp(z)
                lx = np.log1p(x)  # log(1 + x)
                pw = np.exp(-beta[a:b] * lx)  # (1 + x)^-beta
                D[a:b] += (ch["M"] @ (1.0 - pw).T).T
                if with_jac:
                    gz = beta[a:b] * pw * (x / (1.0 + x))  # dG/dz, z = log x
                    dC[a:b] += (ch["M"] @ gz.T).T
                    dgamma[a:b] -= (ch["M"] @ (gz * ch["logeta"]).T).T
                    dbeta[a:b] += (ch["M"] @ (lx * pw).T).T
        if with_jac:
            dC /= p["C"]
        return D, dC, dbeta, dgamma

    def predict(self, theta, design, progress=None):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        p = self.unpack(theta)
        D, *_ = self._loss_drop(theta, design, False, progress)
        # sum_k gap_k G = -LD / B (gaps are eta_k - eta_{k-1})
        return p["L0"] + p["A"] * np.exp(-p["alpha"] * design["logS"]) + p["B"] * D

    def jacobian(self, theta, design):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        p = self.unpack(theta)
        D, dC, dbeta, dgamma = self._loss_drop(theta, design, True)
        power = np.exp(-p["alpha"] * design["logS"])
        B = p["B"]
        return np.stack([np.ones_like(D), power, -p["A"] * power * design["logS"], D,
                         B * dC, B * dbeta, B * dgamma], axis=-1)

    # ------------------------------------------------------------------ starts (reference Sec. 2.5, improved)
    def start_points(self, design, y):
        """Data-driven starts by variable projection: given (alpha, C, beta, gamma) the law is linear in
        (L0, A, B), so a small grid of the four nonlinear parameters with (L0, A, B) from linear least
        squares gives starts close to the optimum (the official code fits a reduced model instead)."""
        y = np.asarray(y, dtype=float)
        nonlin = np.array([(c, b, g) for c in (0.5, 2.0, 8.0) for b in (0.4, 0.6, 1.0) for g in (0.4, 0.65)])
        probe = np.zeros((nonlin.shape[0], self.n_params))
        probe[:, 4:] = nonlin
        D, *_ = self._loss_drop(probe, design, False)
        alphas = np.linspace(0.1, 1.0, 19)
        cands = []
        ly = np.log(y)
        for i, (c, b, g) in enumerate(nonlin):
            for a in alphas:
                X = np.column_stack([np.ones_like(y), np.exp(-a * design["logS"]), D[i]])
                coef, *_ = np.linalg.lstsq(X, y, rcond=None)
                L0, A, B = coef
                if not (A > 1e-4 and B > 1e-3 and 0 < L0 < 20):
                    continue
                pred = X @ coef
                if np.any(pred <= 0):
                    continue
                cands.append((float(np.sum((np.log(pred) - ly) ** 2)), [L0, A, a, B, c, b, g]))
        cands.sort(key=lambda c: c[0])
        lo, hi = self.bounds_array()
        starts = np.array([c[1] for c in cands[:6]]) if cands else None
        return None if starts is None else np.clip(starts, lo, hi)

    # ------------------------------------------------------------------ schedule interface
    def curve(self, theta, eta, steps, progress=None) -> np.ndarray:
        """Predicted loss at ``steps`` of one LR sequence ``eta``; theta (p,) or (k, p) -> (k, len(steps)).

        Exact (every change point summed, in chunks of bounded memory) for one parameter vector at up to
        _FEW_POINTS points at any horizon, and whenever pairs x vectors <= _EXACT_WORK; beyond (a dense
        curve, bootstrap draws over a long horizon), blocked sums that also cut on a grid in k
        (``start``): within about 2e-7 of the exact loss. Memory: see :meth:`curve_bytes`.
        ``progress(done, total)`` is called as the sums proceed."""
        steps = np.asarray(steps, dtype=np.int64)
        eta = np.asarray(eta, float)
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        k = change_points(eta, self.convention)
        exact_pairs = int(np.searchsorted(k, steps, side="right").sum())
        exact = exact_pairs * theta.shape[0] <= _EXACT_WORK or (theta.shape[0] == 1 and steps.size <= _FEW_POINTS)
        design = self.design_from_lr({"s": eta}, np.array(["s"] * steps.size), steps,
                                     resolution=None if exact else (self.resolution or 0.01), start=_START,
                                     chunk_pairs=_CURVE_CHUNK)
        return self.predict(theta, design, progress)

    def curve_bytes(self, n_steps: int, n_points: int, n_theta: int = 1) -> int:
        """Working memory of :meth:`curve` for an ``n_steps`` schedule reported at ``n_points`` steps
        with ``n_theta`` parameter vectors: about 20 float64 arrays over the steps (cumulative sums,
        change points, two-term block sums and their temporaries), the per-point results, and one chunk
        of pairs (_CURVE_CHUNK pairs, and _BLOCK_ELEMS pair terms at a time)."""
        return int(160 * n_steps + 8 * n_points * (6 + 4 * n_theta) + 400 * _CURVE_CHUNK + 48 * _BLOCK_ELEMS)

    def _final_terms(self, theta, eta, warmup):
        """The pieces of L(T) shared by :meth:`final_loss` and :meth:`final_loss_grad` (one code path, so
        the two give the same loss to the bit)."""
        th = np.asarray(theta, dtype=float).ravel()
        L0, A, alpha, B, C, beta, gamma = th
        eta = np.asarray(eta, dtype=float)
        T = eta.size
        S = eta.sum()
        R = np.cumsum(eta[::-1])[::-1]  # R_k = sum_{tau >= k} eta_tau
        gap = np.zeros(T)
        gap[1:] = np.diff(eta)
        top = (warmup - 1 if warmup else int(np.argmax(eta))) if self.convention == "paper" else -1
        gap[: top + 1] = 0.0
        safe = np.maximum(eta, 1e-300)
        inv = np.exp(-gamma * np.log(safe))  # eta^-gamma (exp/log: much faster than a float power)
        x = C * inv * R
        pw = np.exp(-beta * np.log1p(x))  # (1 + x)^-beta
        G = 1.0 - pw
        loss = L0 + A * S ** (-alpha) + B * float((gap * G).sum())  # no BLAS: threads cost more than they save here
        return float(loss), dict(th=th, S=S, gap=gap, top=top, safe=safe, inv=inv, x=x, pw=pw, G=G)

    def final_loss(self, theta, eta, warmup: int | None = None) -> float:
        """Predicted loss at the last step of ``eta`` (as :meth:`final_loss_grad`, without the gradient)."""
        return self._final_terms(theta, eta, warmup)[0]

    def final_loss_grad(self, theta, eta, warmup: int | None = None):
        """Predicted loss at the last step T of ``eta`` and its gradient d L(T) / d eta_j (all j), O(T).

        With x_k = C eta_k^-gamma R_k, R_k = sum_{tau=k..T} eta_tau, gap_k = eta_k - eta_{k-1}:
        dL/deta_j = -alpha A S^(-alpha-1) + B [G(x_j) - G(x_{j+1})]
                    + B sum_{k<=j} gap_k G'(x_k) C eta_k^-gamma - B gamma gap_j G'(x_j) x_j / eta_j.
        ``warmup`` (paper convention): the ramp's length, so that the excluded gaps do not move with eta.
        """
        loss, v = self._final_terms(theta, eta, warmup)
        L0, A, alpha, B, C, beta, gamma = v["th"]
        S, gap, top, safe, inv, x, pw, G = (v[key] for key in ("S", "gap", "top", "safe", "inv", "x", "pw", "G"))
        T = gap.size
        Gp = beta * pw / (1.0 + x)  # dG/dx
        grad = np.full(T, -alpha * A * S ** (-alpha - 1.0))
        # gap_j = eta_j - eta_{j-1} and gap_{j+1} = eta_{j+1} - eta_j
        mask = np.ones(T)
        mask[: top + 1] = 0.0
        BG = B * G * mask
        grad += BG
        grad[:-1] -= BG[1:]
        w = gap * Gp
        grad += (B * C) * np.cumsum(w * inv)  # through R_k, k <= j
        grad -= (B * gamma) * w * x / safe  # through eta_k^-gamma at k = j
        return loss, grad


multipower = MultiPower()
