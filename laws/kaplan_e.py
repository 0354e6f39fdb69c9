"""Kaplan form with an irreducible term, as fitted by Brandfonbrener et al. 2024 ("Loss-to-Loss
Prediction: Scaling Laws for All Datasets") to get the entropies E used by loss-to-loss laws.

    L(N, D) = E + [ (A / N)^(alpha / beta) + B / D ]^beta

N: parameters; D: training tokens; L: nats/token on the evaluated distribution.
E:     irreducible loss (the "entropy" of the evaluated distribution for this training set).
A:     model-size scale (plays the role of Kaplan's N_c).
B:     data scale (Kaplan's D_c).
alpha: model-size exponent (L - E ~ (A/N)^alpha when data is unlimited).
beta:  data exponent (L - E ~ (B/D)^beta when the model is unlimited).

Paper recipe (utils_scaling.fit in KempnerInstitute/loss-to-loss-notebooks): Huber (delta 1e-3) of
log residuals, starts log A, log B in {5, 10, 15, 20}, log E = 0.5, alpha = beta = 0.4. The grid below
contains those 16 starts plus a few E values, since E is what the loss-to-loss fits consume.

Under a loss-to-loss relation L_y = K (L_x - E_x)^kappa + E_y this form maps onto itself (see
``scalefit.l2l.translate``), which is why the paper used it instead of the Chinchilla form.
"""

import numpy as np

from scalefit.law import Law, Param


class KaplanE(Law):
    name = "kaplan_e"
    formula = "L = E + [(A/N)^(alpha/beta) + B/D]^beta"
    citation = "Brandfonbrener et al. 2024, arXiv:2411.12925 (Kaplan form with entropy term); Kaplan et al. 2020"
    inputs = ("params", "tokens")
    params = {
        "E": Param((1e-3, 20.0), [float(np.exp(0.0)), float(np.exp(0.5)), float(np.exp(1.0))], log=True, linear=True,
                   doc="irreducible loss"),
        "A": Param((1.0, 1e15), np.exp([5.0, 10.0, 15.0, 20.0]), log=True, doc="model-size scale"),
        "B": Param((1.0, 1e15), np.exp([5.0, 10.0, 15.0, 20.0]), log=True, doc="data scale"),
        "alpha": Param((1e-3, 3.0), [0.4], doc="model-size exponent"),
        "beta": Param((1e-3, 3.0), [0.4], doc="data exponent"),
    }
    # opt_params_data.csv, kaplan=True, val_loss rows of the released notebooks.
    reference = {
        "fineweb_edu": {"E": 1.966905, "A": 6.679888e7, "B": 8.899557e8, "alpha": 0.412898, "beta": 0.455581},
        "proof_pile_2": {"E": 1.319106, "A": 2.139983e7, "B": 3.290141e8, "alpha": 0.452684, "beta": 0.455226},
    }
    reference_units = {"loss_unit": "nats", "params_convention": "total"}
    allocation_exponents = ("alpha", "beta")  # N_opt ∝ C^(beta/(alpha+beta)) (scalefit.allocation)

    def prepare(self, data):
        return {"logN": np.log(data.column("params")), "logD": np.log(data.column("tokens"))}

    def _parts(self, theta, design):
        p = self.unpack(theta)
        ratio = p["alpha"] / p["beta"]
        n_log = np.log(p["A"]) - design["logN"]  # log(A/N)
        t_n = np.exp(ratio * n_log)
        t_d = p["B"] * np.exp(-design["logD"])
        inner = t_n + t_d
        return p, ratio, n_log, t_n, t_d, inner

    def predict(self, theta, design):
        p, _, _, _, _, inner = self._parts(theta, design)
        return p["E"] + inner ** p["beta"]

    def jacobian(self, theta, design):
        p, ratio, n_log, t_n, t_d, inner = self._parts(theta, design)
        beta = p["beta"]
        powered = inner**beta
        slope = powered / inner  # inner^(beta-1)
        return np.stack(
            [
                np.ones_like(inner),
                slope * beta * t_n * ratio / p["A"],
                slope * beta * t_d / p["B"],
                slope * t_n * n_log,
                powered * np.log(inner) - slope * t_n * n_log * p["alpha"] / beta,
            ],
            axis=-1,
        )


kaplan_e = KaplanE()
