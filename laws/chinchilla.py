"""Chinchilla, approach 3 (Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models").

    L(N, D) = E + A / N^alpha + B / D^beta

N: total parameters (embeddings included); D: training tokens (one epoch); L: nats/token.
E is the irreducible loss; A/N^alpha the finite-model term; B/D^beta the finite-data term.

Fitting recipe (paper, and Besiroglu et al. 2024's replication): summed Huber (delta = 1e-3) on
log residuals, starting grid alpha, beta in {0, 0.5, ..., 2}, log E in {-1, -0.5, ..., 1},
log A, log B in {0, 5, ..., 25}: 4,500 starts. (A, alpha) and (B, beta) trade off along a flat
ridge, so compare fits on E, the exponents and predictions, and on A and B only loosely.

Compute-optimal allocation under C = 6ND has a closed form:
    G = (alpha A / (beta B))^(1/(alpha+beta)),  N_opt = G (C/6)^(beta/(alpha+beta)),  D_opt = C / (6 N_opt)
"""

import numpy as np

from scalefit.law import Law, Param

_LOG_GRID = np.exp(np.arange(0.0, 30.0, 5.0))  # log A, log B in {0, 5, ..., 25}


class Chinchilla(Law):
    name = "chinchilla"
    formula = "L = E + A / N^alpha + B / D^beta"
    citation = "Hoffmann et al. 2022, arXiv:2203.15556 (Eq. 10); Besiroglu et al. 2024, arXiv:2404.10102"
    inputs = ("params", "tokens")
    params = {
        "E": Param((1e-3, 20.0), np.exp(np.arange(-1.0, 1.5, 0.5)), log=True, linear=True, doc="irreducible loss"),
        "A": Param((1e-6, 1e15), _LOG_GRID, log=True, linear=True, doc="model-size coefficient"),
        "B": Param((1e-6, 1e15), _LOG_GRID, log=True, linear=True, doc="data coefficient"),
        "alpha": Param((0.0, 3.0), np.arange(0.0, 2.5, 0.5), doc="model-size exponent"),
        "beta": Param((0.0, 3.0), np.arange(0.0, 2.5, 0.5), doc="data exponent"),
    }
    reference = {
        "hoffmann": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
        "hoffmann_tex": {
            "E": float(np.exp(0.5267228)), "A": float(np.exp(6.0073404)), "B": float(np.exp(6.0179186)),
            "alpha": 0.33917084, "beta": 0.2849083,
        },
        "epoch": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
    }
    reference_units = {"loss_unit": "nats", "params_convention": "total"}
    allocation_exponents = ("alpha", "beta")  # N_opt ∝ C^(beta/(alpha+beta)) (scalefit.allocation)

    def prepare(self, data):
        return {"logN": np.log(data.column("params")), "logD": np.log(data.column("tokens"))}

    def _terms(self, theta, design):
        p = self.unpack(theta)
        n_term = p["A"] * np.exp(-p["alpha"] * design["logN"])
        d_term = p["B"] * np.exp(-p["beta"] * design["logD"])
        return p, n_term, d_term

    def predict(self, theta, design):
        p, n_term, d_term = self._terms(theta, design)
        return p["E"] + n_term + d_term

    def jacobian(self, theta, design):
        return self.predict_and_jacobian(theta, design)[1]

    def predict_and_jacobian(self, theta, design):
        p, n_term, d_term = self._terms(theta, design)
        jac = np.empty(n_term.shape + (5,))
        jac[..., 0] = 1.0
        jac[..., 1] = n_term / p["A"]
        jac[..., 2] = d_term / p["B"]
        jac[..., 3] = -n_term * design["logN"]
        jac[..., 4] = -d_term * design["logD"]
        return p["E"] + n_term + d_term, jac

    def optimal_params(self, theta, compute):
        """Closed-form N_opt(C) for each parameter row: theta (k, p), compute (m,) -> (k, m)."""
        p = self.unpack(theta)
        a, b = p["alpha"], p["beta"]
        g = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
        return g * (np.asarray(compute, dtype=float) / 6.0) ** (b / (a + b))


chinchilla = Chinchilla()
