"""Multi-Power Law (Luo, Wen, Hu, Sun, Liu, Sun, Lyu, Chen, ICLR 2025, arXiv:2503.12811).

The loss at step t of a run trained with the LR sequence eta_0, eta_1, ... (warm-up included):

    L(t)   = L0 + A * (S1(t) + S_W)^(-alpha) - LD(t)
    LD(t)  = B * sum_{k=1..t} (eta_{k-1} - eta_k) * G(eta_k^(-gamma) * S_k(t))
    G(x)   = 1 - (C x + 1)^(-beta),       S_k(t) = sum_{tau=k..t} eta_tau

S1 + S_W is the area under the whole LR curve up to t (S(t) = cumsum(eta)[t], S_W its warm-up part).
The first two terms are the constant-LR power law in LR area; LD(t) is the loss drop bought by every
LR decrease so far, each saturating as LR area accumulates after it.

Parameters: L0 the loss floor, A and alpha the power law in LR area, C and beta the shape of the
saturating drop G, gamma how the drop's time scale depends on the new LR. The paper's B (the drop per
unit LR decrease once saturated) is fitted as **Bslope = B C beta**, the drop's initial rate
(``B G(x) = Bslope H(x)``, H(x) = G(x) / (C beta) = x for small x), because real curves often do not
show the saturation: fitted as (B, C, beta), short or single-schedule curves drove beta and C to their
lower bounds with B running off to 1e4-1e5 (22 of 22 public sweep fits), a limit the paper's form cannot
reach. In the Bslope form the limits are ordinary points: beta = 0 is a logarithmic drop
(H = log(1 + C x) / C) and C -> 0 a drop that grows linearly in LR area (H = x), so a bound hit means
"these curves show no saturation" and the undetermined parameters are named instead of B exploding.
The published sets below are the paper's, converted exactly (``paper_B`` converts back).

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

The pairs, their blocking and their accuracy (two-term cumulative sums where the LR is nearly 0) live
in :mod:`scalefit.lrpairs`; memory stays bounded: pairs are built in chunks (the block budget's worth,
``lrpairs.chunk_size()``, for fits; ``_CURVE_CHUNK`` for ``curve``), also when one point alone has more.
"""

from __future__ import annotations

import numpy as np

from scalefit.errors import DataError
from scalefit.law import CurveLaw, Param
from scalefit.lrpairs import PAIR_BUDGET, build_design, change_points, pair_chunks

_BLOCK_ELEMS = 1 << 18  # k * pairs evaluated at once: temporaries of 2 MB stay in cache (4M: 1.6x slower)
_CURVE_CHUNK = 1 << 18  # pairs built at a time by curve() (small temporaries are reused, large ones are not)
_FEW_POINTS = 8  # curve() sums exactly for this many points of one parameter vector at any horizon
_EXACT_WORK = PAIR_BUDGET  # curve() sums exactly while pairs x parameter vectors stay below this
_Z_MAX = 700.0
_BIG = float(np.exp(_Z_MAX))
_N_STARTS = 12  # data-driven starts: settings of (C, beta, gamma), each with its best alpha
_START = 0.1  # schedule curves: blocks also end on a grid of relative width 0.1 in k (see blocked_pairs)


def _ratio(w: np.ndarray) -> np.ndarray:
    """r(w) = (1 - e^-w) / w for w >= 0, with r(0) = 1 (beta l -> 0: the logarithmic drop)."""
    if w.size and w.min() >= 1e-6:  # the common case, in place: three passes over the block
        r = np.negative(w)
        np.expm1(r, out=r)
        np.negative(r, out=r)
        r /= w
        return r
    small = w < 1e-6
    safe = np.where(small, 1.0, w)
    return np.where(small, 1.0 - 0.5 * w, -np.expm1(-safe) / safe)


def _saturation(lg: np.ndarray, beta: float, C: float) -> tuple[np.ndarray, np.ndarray]:
    """H = (1 - e^(-beta lg)) / (C beta) and e^(-beta lg) from lg = log(1 + C x), with one expm1 pass
    (schedule optimisation; beta lg -> 0 gives the logarithmic drop H = lg / C)."""
    w = beta * lg
    if w.size and w.min() >= 1e-6:  # the common case, in place
        decay = np.negative(w)
        np.expm1(decay, out=decay)  # e^-w - 1
        H = decay / w
        np.negative(H, out=H)  # (1 - e^-w) / w
        H *= lg
        H /= C
        decay += 1.0
        return H, decay
    return lg * _ratio(w) / C, np.exp(-w)


def _vectors_needing(ch: dict, need: np.ndarray) -> np.ndarray:
    """Indices of the vectors whose ``need`` (k, n) includes a row that the chunk's pairs sum into."""
    if "rows" not in ch:  # computed once per chunk kept in the design
        ch["rows"] = np.flatnonzero(np.diff(ch["M"].indptr))
    return np.flatnonzero(need[:, ch["rows"]].any(axis=1))


def _phi_series(w: np.ndarray) -> np.ndarray:
    """phi(w) = (w e^-w + e^-w - 1) / w^2 for small w, where the direct form cancels."""
    return -0.5 + w / 3.0 - w * w / 8.0


def _patch(values: np.ndarray, w: np.ndarray, below: float, series) -> None:
    """values[w < below] = series(w there), in place (contiguous arrays; the entries are few)."""
    flat, wf = values.reshape(-1), w.reshape(-1)
    at = np.flatnonzero(wf < below)
    if at.size:
        flat[at] = series(wf[at])

def _pair_sums(ch: dict, logC, beta, gamma, with_jac: bool) -> list:
    """The chunk's sums over pairs for a block of vectors (parameters as (1, b) rows), each (b, n): the
    numerators of D C and, with the Jacobian, of the derivatives' (see :meth:`MultiPower._loss_drop`).

    Three transcendental passes serve them all: u = exp(log(C x0)), l = log1p(u), e = expm1(-beta l);
    then (1+u)^-beta = 1 + e, x0 (1+u)^-beta / (1+u) = u (1 + e) / ((1 + u) C), r = -e / w and
    l^2 phi = (w (1 + e) + e) / beta^2 (series where w is small: the direct forms cancel there). Each
    numpy pass over the pairs costs about as much as a transcendental one, so the signs and the 1 / beta^2
    are applied to the sums, not to the terms."""
    M, logeta = ch["M"], ch["logeta"][:, None]
    u = np.multiply(logeta, -gamma)
    u += ch["logR"][:, None]  # log x0 (-inf where the LR area is 0)
    u += logC  # log u
    np.clip(u, -745.0, _Z_MAX, out=u)
    np.exp(u, out=u)
    lg = np.log1p(u, out=None if with_jac else u)  # u is needed again for the Jacobian only
    w = lg * beta
    e = np.negative(w)
    np.expm1(e, out=e)  # (1 + u)^-beta - 1
    w_min = w.min()
    with np.errstate(divide="ignore", invalid="ignore"):
        F = np.divide(e, w)  # -r(w); its series where w is tiny (few entries: patched, not np.where)
        if w_min < 1e-6:
            _patch(F, w, 1e-6, lambda v: 0.5 * v - 1.0)
        F *= lg  # -(1 - (1+u)^-beta) / beta
        sums = [-(M @ F).T]
        if not with_jac:
            return sums
        del F
        E = e + 1.0  # (1 + u)^-beta
        if beta.min() > 1e-100:  # l^2 phi = (w E + e) / beta^2: the numerator here, the division after
            tiny = np.flatnonzero(w.reshape(-1) < 1e-3) if w_min < 1e-3 else np.zeros(0, dtype=np.intp)
            w_tiny = w.reshape(-1)[tiny]
            num = w
            num *= E
            num += e  # w e^-w + e^-w - 1
            num.reshape(-1)[tiny] = w_tiny * w_tiny * _phi_series(w_tiny)
            scale = 1.0 / (beta.T * beta.T)
        else:  # beta = 0 somewhere (a logarithmic drop): l^2 phi term by term
            num = np.multiply(w, E)
            num += e
            num /= np.square(w)
            _patch(num, w, 1e-3, _phi_series)
            num *= lg
            num *= lg
            scale = 1.0
        del e, w
    q = u + 1.0
    np.divide(u, q, out=q)
    q *= E  # C x0 (1+u)^-beta / (1+u)
    sums.append((M @ q).T)
    q *= logeta
    sums.append((M @ q).T)
    sums.append((M @ num).T * scale)
    return sums


class MultiPower(CurveLaw):
    name = "multipower"
    formula = ("L = L0 + A (S1+S_W)^-alpha - Bslope sum_k (eta_{k-1}-eta_k) [1 - (C eta_k^-gamma S_k(t) + 1)^-beta]"
               " / (C beta)")
    citation = "Luo et al. 2025, 'A Multi-Power Law for Loss Curve Prediction Across LR Schedules', ICLR, arXiv:2503.12811"
    params = {
        "L0": Param((0.0, 20.0), (2.0, 3.0), linear=True, doc="loss floor (LR area -> infinity)"),
        "A": Param((1e-4, 1e3), (0.6,), log=True, linear=True, doc="coefficient of the power law in LR area"),
        "alpha": Param((0.01, 3.0), (0.45,), doc="exponent of the power law in LR area"),
        "Bslope": Param((1e-12, 1e9), (550.0,), log=True, linear=True,
                        doc="initial rate of the loss drop per unit LR decrease per unit LR area (the paper's B C beta)"),
        "C": Param((1e-8, 1e4), (2.0,), log=True, doc="how fast the drop saturates (C -> 0: it never does)",
                   edges=(("low", "these curves show no saturation of the loss drop after an LR decrease (it "
                                  "grows linearly in LR area; beta then has no effect): forecasts of longer "
                                  "anneals than the data's rest on that"),)),
        "beta": Param((0.0, 10.0), (0.6,), doc="power of the saturation (0: a logarithmic drop)",
                      edges=(("low", "the loss drop after an LR decrease grows logarithmically in LR area "
                                     "without saturating (the paper's B is infinite)"),)),
        "gamma": Param((0.0, 3.0), (0.6,), doc="how the drop's time scale scales with the new LR"),
    }
    reference = {
        "25M": {"L0": 3.04045406, "A": 0.52468604, "alpha": 0.50786857, "Bslope": 437.93324164195275,
                "C": 2.06560812, "beta": 0.58279013, "gamma": 0.64142257},
        "100M": {"L0": 2.6514477, "A": 0.60115152, "alpha": 0.45295811, "Bslope": 558.3348940142176,
                 "C": 2.13245612, "beta": 0.59785199, "gamma": 0.65523644},
        "400M": {"L0": 2.37474466, "A": 0.65421216, "alpha": 0.42878731, "Bslope": 628.9608250884448,
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
        """Design for points (runs[i], steps[i]) given dense LR arrays per run (see
        :func:`scalefit.lrpairs.build_design`; ``resolution="default"`` is this law's own)."""
        resolution = self.resolution if resolution == "default" else resolution
        return build_design(lrs, runs, steps, self.convention, resolution, source=source, start=start,
                            chunk_pairs=chunk_pairs)

    # ------------------------------------------------------------------ the law
    def _loss_drop(self, theta, design, with_jac: bool, progress=None, need=None):
        """Bslope-free sums over pairs: D = sum gap*H, and (if asked) d/dC, d/dbeta, d/dgamma of it.

        With x0 = eta_k^-gamma S_k(t), u = C x0, l = log(1 + u): H = (1 - (1 + u)^-beta) / (beta C)
        = l r(beta l) / C, r(w) = (1 - e^-w) / w, so beta = 0 is the logarithm l / C and C -> 0 the line x0.
        dH/dlogC = x0 (1+u)^-beta / (1+u) - H,  dH/dbeta = l^2 phi(beta l) / C,
        phi(w) = (w e^-w + e^-w - 1) / w^2,  dH/dgamma = -log eta_k x0 (1+u)^-beta / (1+u).

        ``need`` (k, n) booleans, optional: the rows each vector needs; a chunk of pairs is summed only for
        the vectors that need one of its rows (a run left out of a bootstrap draw costs nothing there;
        the sums of rows not needed are then incomplete)."""
        p = self.unpack(theta)
        k = theta.shape[0]
        n = design["n"]
        D = np.zeros((k, n))
        dC = np.zeros((k, n)) if with_jac else None
        dbeta = np.zeros((k, n)) if with_jac else None
        dgamma = np.zeros((k, n)) if with_jac else None
        # Blocks are (pairs, vectors): the sparse sum over pairs then reads them in memory order.
        logC, beta, gamma, invC = (np.log(p["C"]).T, p["beta"].T, p["gamma"].T, 1.0 / p["C"])
        for ch in pair_chunks(design, progress):
            P = ch["logR"].size
            if P == 0:
                continue
            vecs = np.arange(k) if need is None else _vectors_needing(ch, need)
            step = max(1, _BLOCK_ELEMS // P)
            for a in range(0, vecs.size, step):
                sel = slice(a, a + step) if need is None else vecs[a : a + step]
                sums = _pair_sums(ch, logC[:, sel], beta[:, sel], gamma[:, sel], with_jac)
                D[sel] += sums[0] * invC[sel]
                if with_jac:
                    dC[sel] += (sums[1] - sums[0]) * invC[sel]
                    dgamma[sel] -= sums[2] * invC[sel]
                    dbeta[sel] += sums[3] * invC[sel]
        if with_jac:
            dC /= p["C"]
        return D, dC, dbeta, dgamma

    def predict(self, theta, design, progress=None):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        p = self.unpack(theta)
        D, *_ = self._loss_drop(theta, design, False, progress)
        # sum_k gap_k H = -LD / Bslope (gaps are eta_k - eta_{k-1})
        return p["L0"] + p["A"] * np.exp(-p["alpha"] * design["logS"]) + p["Bslope"] * D

    def jacobian(self, theta, design):
        return self.predict_and_jacobian(theta, design)[1]

    def predict_and_jacobian(self, theta, design):
        """Both from one pass over the pairs (the sums for the prediction come with the derivatives')."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        yhat, _, _, jacobian, _ = self._with_jacobian(theta, design)
        return yhat, jacobian(theta)

    def linear_basis(self, theta, design):
        """L0, A and Bslope multiply 1, the power law and the loss-drop sum: a prediction's cost, where
        the Jacobian's derivative sums cost twice that."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        p = self.unpack(theta)
        D, *_ = self._loss_drop(theta, design, False)
        power = np.exp(-p["alpha"] * design["logS"])
        return p["L0"] + p["A"] * power + p["Bslope"] * D, np.stack([np.ones_like(D), power, D], axis=-1)

    def linear_parts(self, theta, design, need=None):
        """yhat, the basis of L0, A and Bslope (as :meth:`linear_basis`), and ``jacobian(theta2)`` and
        ``predict(theta2)`` at any ``theta2`` that differs from ``theta`` in L0, A and Bslope only (or, for
        one row of theta, at every row of theta2) -- all from one pass over the pairs, so that the projected
        solver, having re-solved the coefficients, gets its next Jacobian free. ``need``: as in
        :meth:`_loss_drop` (rows not needed come out incomplete)."""
        yhat, power, D, jacobian, predict = self._with_jacobian(np.atleast_2d(np.asarray(theta, dtype=float)),
                                                                design, need)
        return yhat, np.stack([np.ones_like(D), power, D], axis=-1), jacobian, predict

    def _with_jacobian(self, theta, design, need=None):
        """yhat, the power law, D and the ``jacobian`` and ``predict`` functions of :meth:`linear_parts`."""
        p = self.unpack(theta)
        D, dC, dbeta, dgamma = self._loss_drop(theta, design, True, need=need)
        logS = design["logS"]
        power = np.exp(-p["alpha"] * logS)

        def predict(theta2):  # the formula of predict(), so that it gives the same numbers
            return theta2[:, 0:1] + theta2[:, 1:2] * power + theta2[:, 3:4] * D

        def jacobian(theta2):
            A, Bs = theta2[:, 1:2], theta2[:, 3:4]
            # Written column by column into one array (np.stack of seven temporaries doubled the peak).
            jac = np.empty((len(theta2), D.shape[1], 7))  # D may be one row for all of theta2
            jac[..., 0] = 1.0
            jac[..., 1] = power
            np.multiply(power, -A, out=jac[..., 2])
            jac[..., 2] *= logS
            jac[..., 3] = D
            for col, part in ((4, dC), (5, dbeta), (6, dgamma)):
                np.multiply(part, Bs, out=jac[..., col])
            return jac

        return predict(theta), power, D, jacobian, predict

    @staticmethod
    def paper_B(theta) -> np.ndarray:
        """The paper's B (loss drop per unit LR decrease once saturated) = Bslope / (C beta); infinite at
        beta = 0, where the drop never saturates."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        with np.errstate(divide="ignore"):
            return theta[:, 3] / (theta[:, 4] * theta[:, 5])

    # ------------------------------------------------------------------ starts (reference Sec. 2.5, improved)
    def start_points(self, design, y):
        """Data-driven starts by variable projection: given (alpha, C, beta, gamma) the law is linear in
        (L0, A, Bslope), so a small grid of the four nonlinear parameters with (L0, A, Bslope) from linear
        least squares gives starts close to the optimum (the official code fits a reduced model instead).
        The grid reaches the limits real curves often prefer (C near 0: no saturation; beta = 0: a
        logarithmic drop). The starts are the best alpha of each of the 12 best settings of the other
        three, not the 8 best candidates overall: those crowded into one basin, and on the course data's
        cosine curve alone every start ended at 2.0536e-3 while the optimum, 2.0483e-3 (found by 400
        random starts), lies in another; now 5 of 13 starts reach it, at the same optima as before on
        every official split."""
        y = np.asarray(y, dtype=float)
        nonlin = np.array([(c, b, g) for c in (0.01, 0.5, 2.0, 8.0) for b in (0.0, 0.5, 1.0) for g in (0.4, 0.65, 1.0)])
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
                cands.append((float(np.sum((np.log(pred) - ly) ** 2)), i, [L0, A, a, B, c, b, g]))
        cands.sort(key=lambda c: c[0])
        best = {}
        for _, i, start in cands:  # best first: the first seen of each setting is its best alpha
            best.setdefault(i, start)
        lo, hi = self.bounds_array()
        starts = np.array(list(best.values())[:_N_STARTS]) if best else None
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

    def _final_terms(self, theta, eta, warmup, grad: bool = True):
        """L(T) and the per-step pieces its gradient reuses (one code path for :meth:`final_loss` and
        :meth:`final_loss_grad`, so the two give the same loss to the bit). Only steps where the LR changes
        (gap != 0) add to the loss, so without ``grad`` the transcendental work is done there alone: a WSD
        schedule's stable phase is skipped, which makes a WSD grid search several times cheaper.

        Four transcendental passes (log eta, eta^-gamma, log(1 + C x), and expm1 for H, whose e^(-beta lg)
        is also H'(x) (1 + C x)), computed in place, and eta^-gamma only where the LR changes (a stable
        phase repeats it): the optimiser calls this a few hundred times on arrays of every step, where
        each extra pass or temporary array costs as much as the arithmetic."""
        th = np.asarray(theta, dtype=float).ravel()
        L0, A, alpha, Bs, C, beta, gamma = th
        eta = np.asarray(eta, dtype=float)
        T = eta.size
        S = eta.sum()
        R = np.empty(T)
        np.cumsum(eta[::-1], out=R[::-1])  # R_k = sum_{tau >= k} eta_tau
        gap = np.empty(T)
        gap[:1] = 0.0  # (an empty schedule has no step 0)
        np.subtract(eta[1:], eta[:-1], out=gap[1:])
        if grad:  # the steps whose LR differs from the step before's (before the paper's warm-up is cut)
            fresh = gap != 0.0
            fresh[:1] = True
            fresh = np.flatnonzero(fresh)
        top = (warmup - 1 if warmup else int(np.argmax(eta))) if self.convention == "paper" else -1
        gap[: top + 1] = 0.0
        at = None if grad else np.flatnonzero(gap != 0.0)
        inv = np.maximum(eta[fresh] if grad else eta[at], 1e-300)
        np.log(inv, out=inv)
        inv *= -gamma
        np.minimum(inv, _Z_MAX, out=inv)
        np.exp(inv, out=inv)  # eta^-gamma
        if grad:  # carried over the steps that repeat the LR before them
            carry = np.zeros(T, dtype=np.intp)
            carry[fresh] = np.arange(fresh.size)
            np.maximum.accumulate(carry, out=carry)
            inv = inv[carry]
        r = R if grad else R[at]
        with np.errstate(over="ignore"):
            u = inv * r  # x = eta^-gamma R
            u *= C
        np.clip(u, 0.0, _BIG, out=u)  # C x, as far as exp(_Z_MAX)
        lg = np.log1p(u)  # log(1 + C x)
        H, decay = _saturation(lg, beta, C)
        if grad:
            nz = np.flatnonzero(gap != 0.0)
            g, h = gap[nz], H[nz]
        else:
            g, h = gap[at], H
        # summed over the change points alone in both paths, so that the two agree to the bit
        loss = L0 + A * S ** (-alpha) + Bs * float((g * h).sum())  # no BLAS: threads cost more here
        return float(loss), dict(th=th, S=S, R=R, gap=gap, top=top, inv=inv, u=u, H=H, decay=decay)

    def final_loss(self, theta, eta, warmup: int | None = None) -> float:
        """Predicted loss at the last step of ``eta`` (as :meth:`final_loss_grad`, without the gradient)."""
        return self._final_terms(theta, eta, warmup, grad=False)[0]

    def final_loss_grad(self, theta, eta, warmup: int | None = None):
        """Predicted loss at the last step T of ``eta`` and its gradient d L(T) / d eta_j (all j), O(T).

        With x_k = eta_k^-gamma R_k, R_k = sum_{tau=k..T} eta_tau, gap_k = eta_k - eta_{k-1} and
        H'(x) = (1 + C x)^(-beta-1):
        dL/deta_j = -alpha A S^(-alpha-1) + Bslope [H(x_j) - H(x_{j+1})]
                    + Bslope sum_{k<=j} gap_k H'(x_k) eta_k^-gamma - Bslope gamma gap_j H'(x_j) x_j / eta_j.
        ``warmup`` (paper convention): the ramp's length, so that the excluded gaps do not move with eta.
        """
        loss, v = self._final_terms(theta, eta, warmup)
        L0, A, alpha, Bs, C, beta, gamma = v["th"]
        S, R, gap, top, inv, u, H, w = (v[key] for key in ("S", "R", "gap", "top", "inv", "u", "H", "decay"))
        T = gap.size
        grad = np.full(T, -alpha * A * S ** (-alpha - 1.0))
        # gap_j = eta_j - eta_{j-1} and gap_{j+1} = eta_{j+1} - eta_j; gap_0 does not exist (no eta_-1),
        # nor do the excluded warm-up gaps
        H *= Bs
        H[: max(top, 0) + 1] = 0.0
        grad += H
        grad[:-1] -= H[1:]
        u += 1.0
        w /= u  # H'(x) = e^(-beta lg) / (1 + C x)
        w *= gap  # gap_k H'(x_k)
        w *= inv
        np.cumsum(w, out=u)
        u *= Bs
        grad += u  # through R_k, k <= j
        w *= R  # gap_j H'(x_j) x_j
        w *= Bs * gamma
        w /= np.maximum(np.asarray(eta, dtype=float), 1e-300)
        grad -= w  # through eta_k^-gamma at k = j
        return loss, grad


multipower = MultiPower()
