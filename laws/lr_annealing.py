"""Scaling law with LR annealing (Tissue, Wang, Wang 2024, "Scaling Law with Learning Rate Annealing",
NeurIPS 2024, arXiv:2408.11029).

The loss at step s of a run trained with the LR sequence eta_0, eta_1, ...:

    L(s)  = L0 + A * S1(s)^(-alpha) - C * S2(s)
    S1(s) = sum_{i=0..s} eta_i                          forward area (area under the LR curve)
    m_i   = lambda * m_{i-1} + (eta_{i-1} - eta_i),  m_0 = 0     annealing momentum
    S2(s) = sum_{i=1..s} m_i                            annealing area

L0 is the loss floor, A and alpha the power law in LR area (alpha the data-scaling exponent), C the
gain per unit of annealing area. lambda (option ``lam``, default 0.999 as in the authors' code) sets
how long the benefit of an LR drop takes to arrive: lambda = 0 gives S2(s) = eta_0 - eta_s (instant),
lambda = 1 gives S2(s) = sum_i (eta_0 - eta_i) (the area between the peak and the curve).

Raw LR values are used, as by the authors, so A and C absorb the LR scale: fitted parameters do not
transfer across peak LRs. Warm-up (option ``warmup``): by default S1 and S2 treat the warm-up steps as
if the LR were already at its peak, as the authors do (their Sec. 3.4: the warm-up mostly does not
move the loss along the LR-area axis); ``warmup="ramp"`` uses the true ramp.

Fitting recipe of the authors: summed Huber (delta = 1e-3) on log residuals, L-BFGS-B from a
54-point grid, one constant and one cosine curve.
"""

from __future__ import annotations

import math

import numpy as np

from scalefit.errors import DataError
from scalefit.law import CurveLaw, Param
from scalefit.lrpairs import run_rows


def decayed_cumsum(x: np.ndarray, lam: float) -> np.ndarray:
    """m_i = lam * m_{i-1} + x_i (m_{-1} = 0), vectorised in blocks: within a block starting at s,
    m_{s+k} = lam^k (lam m_{s-1} + sum_{j<=k} x_{s+j} lam^-j), the block short enough that lam^-j stays
    below e^600, and at most 65,536 steps so that its temporaries stay small. Written here rather than
    imported from scipy.signal, whose import (0.5 s) every law discovery and every worker process paid."""
    x = np.asarray(x, dtype=float)
    if lam == 1.0:
        return np.cumsum(x)
    if lam == 0.0:
        return x.copy()
    block = max(1, min(x.size, 1 << 16, int(600.0 / -math.log(lam))))
    grow = lam ** -np.arange(block, dtype=float)
    out = np.empty_like(x)
    carry = 0.0
    for s in range(0, x.size, block):
        n = min(block, x.size - s)
        out[s : s + n] = (lam * carry + np.cumsum(x[s : s + n] * grow[:n])) / grow[:n]
        carry = out[s + n - 1]
    return out


def annealing_areas(eta: np.ndarray, lam: float, warmup: str = "peak") -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 at every step of ``eta`` (O(T): a cumulative sum and a first-order recursive filter)."""
    eta = np.asarray(eta, dtype=float)
    if warmup == "peak":
        top = int(np.argmax(eta))
        eta = eta.copy()
        eta[:top] = eta[top]  # warm-up counted at peak LR
    S1 = np.cumsum(eta)
    drop = np.zeros_like(eta)
    drop[1:] = eta[:-1] - eta[1:]
    m = decayed_cumsum(drop, lam)  # m_i = lam m_{i-1} + drop_i
    return S1, np.cumsum(m)


class LRAnnealing(CurveLaw):
    name = "lr_annealing"
    formula = "L = L0 + A S1^-alpha - C S2,  S2 = sum_i m_i,  m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)"
    citation = "Tissue, Wang, Wang 2024, 'Scaling Law with Learning Rate Annealing', arXiv:2408.11029"
    params = {
        "L0": Param((0.0, 20.0), (0.1, 2.1), linear=True, doc="loss floor (LR area -> infinity)"),
        "A": Param((0.0, 1e3), (1.0, 11.5, 22.0), linear=True, doc="coefficient of the power law in LR area S1"),
        "alpha": Param((0.0, 3.0), (0.0, 0.4, 0.8), doc="exponent of the power law in LR area S1"),
        "C": Param((0.0, 1e5), (1.0, 11.5, 22.0), linear=True, doc="loss gain per unit of annealing area S2"),
    }
    # Fit of the authors' 40-point example (max LR 2e-4, cosine + constant, 20k steps): see the tests.
    reference = {"tissue2024_example": {"L0": 2.62780, "A": 0.42966, "alpha": 0.54985, "C": 0.41078}}
    reference_units = {"loss_unit": "nats", "lr_units": "raw LR, peak 2e-4", "lam": "0.999"}
    option_names = ("lam", "warmup")

    def __init__(self, lam: float = 0.999, warmup: str = "peak"):
        try:  # from the CLI (--law-opt lam=...) the value arrives as text
            value = float(lam)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0.0 <= value <= 1.0:  # also refuses nan
            raise DataError(f"lr_annealing option lam={lam}: the annealing momentum must be a number in [0, 1]")
        if warmup not in ("peak", "ramp"):
            raise DataError(f"lr_annealing option warmup='{warmup}': use 'peak' (authors) or 'ramp' (true LR)")
        self.lam = value
        self.warmup = warmup

    def example_inputs(self):
        from scalefit.curves import example_curves

        w = "peak=2e-4,steps=4000,warmup=100"
        return example_curves({"cosine": f"cosine:{w}", "constant": f"constant:{w}",
                               "wsd": f"wsd:{w},cooldown=0.2,shape=sqrt"}, every=100)

    # ------------------------------------------------------------------ design
    def design_from_lr(self, lrs: dict, runs: np.ndarray, steps: np.ndarray, source: str = "<schedule>") -> dict:
        S1 = np.empty(steps.size)
        S2 = np.empty(steps.size)
        for run, idx in run_rows(runs):
            s1, s2 = annealing_areas(lrs[run], self.lam, self.warmup)
            S1[idx], S2[idx] = s1[steps[idx]], s2[steps[idx]]
        if np.any(S1 <= 0):
            raise DataError(f"{source}: a loss point has no LR area yet (LR is 0 up to its step); drop those rows")
        return {"logS1": np.log(S1), "S2": S2}

    # ------------------------------------------------------------------ the law
    @staticmethod
    def _power(p, design):
        """S1^-alpha, (k, n), computed in place."""
        power = -p["alpha"] * design["logS1"]
        return np.exp(power, out=power)

    def predict(self, theta, design):
        p = self.unpack(theta)
        return p["L0"] + p["A"] * self._power(p, design) - p["C"] * design["S2"]

    @staticmethod
    def _jacobian(p, power, design):
        """The (k, n, 4) Jacobian written in place: one array and no stacked copies (a 1M-row table's
        Jacobian is 32 MB per parameter vector; np.stack of the columns needed three times that)."""
        jac = np.empty(power.shape + (4,))
        jac[..., 0] = 1.0
        jac[..., 1] = power
        column = jac[..., 2]
        np.multiply(power, -p["A"], out=column)
        column *= design["logS1"]
        jac[..., 3] = -design["S2"]
        return jac

    def jacobian(self, theta, design):
        p = self.unpack(np.atleast_2d(theta))
        return self._jacobian(p, self._power(p, design), design)

    def predict_and_jacobian(self, theta, design):
        """Both from one evaluation of S1^-alpha (the fitter's inner loop)."""
        p = self.unpack(np.atleast_2d(theta))
        power = self._power(p, design)
        return p["L0"] + p["A"] * power - p["C"] * design["S2"], self._jacobian(p, power, design)

    def start_points(self, design, y):
        """Variable projection: for fixed alpha the law is linear in (L0, A, C)."""
        y = np.asarray(y, dtype=float)
        out = []
        for a in np.linspace(0.05, 1.5, 30):
            X = np.column_stack([np.ones_like(y), np.exp(-a * design["logS1"]), -design["S2"]])
            coef, *_ = np.linalg.lstsq(X, y, rcond=None)
            pred = X @ coef
            if np.all(pred > 0) and coef[1] >= 0 and coef[2] >= 0:
                out.append((float(np.sum((np.log(pred) - np.log(y)) ** 2)), [coef[0], coef[1], a, coef[2]]))
        out.sort(key=lambda c: c[0])
        if not out:
            return None
        lo, hi = self.bounds_array()
        return np.clip(np.array([c[1] for c in out[:4]]), lo, hi)

    # ------------------------------------------------------------------ schedule interface
    def curve(self, theta, eta, steps) -> np.ndarray:
        """Predicted loss at ``steps`` of one LR sequence; theta (p,) or (k, p) -> (k, len(steps)). O(T)."""
        steps = np.asarray(steps, dtype=np.int64)
        S1, S2 = annealing_areas(eta, self.lam, self.warmup)
        with np.errstate(divide="ignore"):
            design = {"logS1": np.log(S1[steps]), "S2": S2[steps]}
        return self.predict(np.atleast_2d(theta), design)

    def final_loss_grad(self, theta, eta, warmup: int | None = None):
        """L(T) and dL(T)/d eta_j. S2(T) = sum_i drop_i w_i, w_i = sum_{j=i..T} lambda^(j-i)."""
        L0, A, alpha, C = np.asarray(theta, dtype=float).ravel()
        eta = np.asarray(eta, dtype=float)
        top = int(np.argmax(eta)) if self.warmup == "peak" else 0
        if warmup and self.warmup == "peak":
            top = warmup - 1
        e = eta.copy()
        e[:top] = e[top]
        T = e.size - 1
        i = np.arange(T + 1)
        w = (T - i + 1.0) if self.lam == 1.0 else (1.0 - self.lam ** (T - i + 1.0)) / (1.0 - self.lam)
        S1 = e.sum()
        drop = np.zeros_like(e)
        drop[1:] = e[:-1] - e[1:]
        loss = L0 + A * S1 ** (-alpha) - C * np.dot(drop, w)
        dS2 = np.zeros_like(e)  # d S2 / d eta_j = w_{j+1} - w_j  (w_0 unused: no drop at step 0)
        dS2[:-1] += w[1:]
        dS2[1:] -= w[1:]
        grad = -alpha * A * S1 ** (-alpha - 1.0) - C * dS2
        if self.warmup == "peak" and top > 0:  # the ramp is replaced by the peak: fold its gradient in
            grad[top] += grad[:top].sum()
            grad[:top] = 0.0
        return float(loss), grad


lr_annealing = LRAnnealing()
