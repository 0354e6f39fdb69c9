"""Data-constrained scaling (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models").

    L(N, D, U) = E + A / N'^alpha + B / D'^beta
    D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D)),   U_D = min(U, D),  R_D = D / U_D - 1
    N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N)),   U_N = min(N, N_opt(U_D)),  R_N = N / U_N - 1
    N_opt(D) = G (D G)^(beta/alpha),  G = (alpha A / (beta B))^(1/(alpha+beta))

N: parameters; D: training tokens seen; U: unique tokens available (role ``unique_tokens``; a column
``unique_tokens``, ``tokens_per_epoch`` or ``U``); L: nats/token.
Repeated data is worth less than new data: the R_D = D/U_D - 1 repetitions add U_D R*_D (1 - e^(-R_D/R*_D))
effective tokens, so their value decays with a half-life of R*_D ln 2 epochs and D' never exceeds
U_D (1 + R*_D). Parameters beyond the compute-optimal size for the unique data, N_opt(U_D), decay the
same way with R*_N. U above D (a run that has not finished its first epoch, or a pool larger than the
budget) means no repetition: U_D = D.

With U >= D and N <= N_opt(D) the law *is* Chinchilla's, parameter for parameter (R_D = R_N = 0).

Published C4 fit (the authors' README and IBM/ColPret, a = log A, b = log B, e = log E):
(a, b, e, alpha, beta) = (6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596), i.e. E = 1.869,
A = 520.8, B = 1487.7, alpha = beta tied; R*_N = 5.309743, R*_D = 15.387756, fitted with summed Huber
(delta = 1e-3), L-BFGS and the Chinchilla grid. ``scalefit fit --tie beta=alpha`` mirrors the tie, and
``--set`` holds parameters fixed (say, the five Chinchilla ones from single-epoch runs while R*_D and
R*_N are fitted on repeated ones).

Compute-optimal allocation under a unique-data limit ("how many epochs are worth it") has no closed form:
``scalefit predict --compute C --unique-tokens U`` searches N along C = 6 N D with U held.
"""

import numpy as np

from scalefit.law import Columns, Law, Param

_LOG_GRID = np.exp(np.arange(0.0, 25.0, 5.0))  # log A, log B in {0, 5, ..., 20}

_A, _B, _E, _EXP = np.exp(6.255414), np.exp(7.3049974), np.exp(0.6254804), 0.3526596


class DataConstrained(Law):
    name = "data_constrained"
    formula = "L = E + A / N'^alpha + B / D'^beta  (D', N': repeated tokens and excess parameters decayed)"
    citation = "Muennighoff et al. 2023, arXiv:2305.16264 (NeurIPS 2023); constants: huggingface/datablations"
    inputs = ("params", "tokens", "unique_tokens")
    # Only E is linear: A and B also set N_opt(U_D), which caps the useful parameters.
    params = {
        "E": Param((1e-3, 20.0), [0.5, 1.0, 2.0], log=True, linear=True, doc="irreducible loss"),
        "A": Param((1e-6, 1e15), _LOG_GRID, log=True, doc="model-size coefficient"),
        "B": Param((1e-6, 1e15), _LOG_GRID, log=True, doc="data coefficient"),
        # Not 0: N_opt(U) divides by alpha.
        "alpha": Param((0.01, 3.0), [0.2, 0.5, 1.0], doc="model-size exponent"),
        "beta": Param((0.01, 3.0), [0.2, 0.5, 1.0], doc="data exponent"),
        "rd_star": Param((1e-2, 1e4), [5.0, 50.0], log=True,
                         doc="R*_D: epochs over which repeated data loses its value (1/e of it per R*_D repeats)"),
        "rn_star": Param((1e-2, 1e4), [2.0, 20.0], log=True,
                         doc="R*_N: the same decay for parameters beyond the compute-optimal size for the unique data"),
    }
    reference = {
        "muennighoff_c4": {"E": float(_E), "A": float(_A), "B": float(_B), "alpha": _EXP, "beta": _EXP,
                           "rd_star": 15.387756, "rn_star": 5.309743},
    }
    reference_units = {"loss_unit": "nats"}
    allocation_exponents = ("alpha", "beta")  # N_opt ∝ C^(beta/(alpha+beta)) (scalefit.allocation)

    def example_inputs(self):
        # Sizes x tokens per parameter x epochs: 1 epoch (Chinchilla's regime) up to 40 repeats, so that
        # both decays are seen (N_opt(U) falls below N once U is small).
        n, ratio, epochs = np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(2, 200, 5), [1.0, 3.0, 10.0, 40.0],
                                       indexing="ij")
        d = n * ratio
        return Columns(source="<data_constrained example>", params=n.ravel(), tokens=d.ravel(),
                       unique_tokens=(d / epochs).ravel())

    def prepare(self, data):
        n, d, u = data.column("params"), data.column("tokens"), data.column("unique_tokens")
        u_d = np.minimum(u, d)
        return {"logN": np.log(n), "logU": np.log(u_d), "RD": d / u_d - 1.0}

    # ------------------------------------------------------------------ the formula
    def _terms(self, theta, design):
        p = self.unpack(theta)
        alpha, beta, rd, rn = p["alpha"], p["beta"], p["rd_star"], p["rn_star"]
        log_n, log_u, r_d = design["logN"], design["logU"], design["RD"]
        with np.errstate(all="ignore"):
            e_d = np.exp(-r_d / rd)
            f_d = 1.0 + rd * (1.0 - e_d)  # D' / U_D
            # log N_opt(U_D) = [log(alpha A / (beta B)) + beta log U_D] / alpha
            cap = (np.log(alpha * p["A"] / (beta * p["B"])) + beta * log_u) / alpha
            log_un = np.minimum(cap, log_n)
            r_n = np.expm1(log_n - log_un)
            e_n = np.exp(-r_n / rn)
            f_n = 1.0 + rn * (1.0 - e_n)  # N' / U_N
            log_np = log_un + np.log(f_n)
            log_dp = log_u + np.log(f_d)
            n_term = p["A"] * np.exp(-alpha * log_np)
            d_term = p["B"] * np.exp(-beta * log_dp)
        return dict(p=p, cap=cap, excess=log_n > cap, r_d=r_d, e_d=e_d, f_d=f_d, r_n=r_n, e_n=e_n, f_n=f_n,
                    log_np=log_np, log_dp=log_dp, n_term=n_term, d_term=d_term)

    def predict(self, theta, design):
        t = self._terms(theta, design)
        return t["p"]["E"] + t["n_term"] + t["d_term"]

    def jacobian(self, theta, design):
        return self.predict_and_jacobian(theta, design)[1]

    def predict_and_jacobian(self, theta, design):
        t = self._terms(theta, design)
        p = t["p"]
        alpha, beta, rd, rn = p["alpha"], p["beta"], p["rd_star"], p["rn_star"]
        n_term, d_term = t["n_term"], t["d_term"]
        with np.errstate(all="ignore"):
            # dL/dlogN' and dlogN'/dcap: the cap moves N' only for excess rows, and smoothly (0 at R_N = 0).
            dl_dlognp = -alpha * n_term
            dlognp_dcap = np.where(t["excess"], 1.0 - t["e_n"] * (t["r_n"] + 1.0) / t["f_n"], 0.0)
            through_cap = dl_dlognp * dlognp_dcap
            jac = np.empty(n_term.shape + (7,))
            jac[..., 0] = 1.0
            jac[..., 1] = n_term / p["A"] + through_cap / (alpha * p["A"])
            jac[..., 2] = d_term / p["B"] - through_cap / (alpha * p["B"])
            jac[..., 3] = -n_term * t["log_np"] + through_cap * (1.0 / alpha - t["cap"]) / alpha
            jac[..., 4] = -d_term * t["log_dp"] + through_cap * (design["logU"] - 1.0 / beta) / alpha
            jac[..., 5] = -beta * d_term * ((1.0 - t["e_d"]) - t["e_d"] * t["r_d"] / rd) / t["f_d"]
            jac[..., 6] = dl_dlognp * ((1.0 - t["e_n"]) - t["e_n"] * t["r_n"] / rn) / t["f_n"]
        return p["E"] + n_term + d_term, jac

    # ------------------------------------------------------------------ what forecasts report
    def effective(self, theta, params, tokens, unique_tokens) -> dict:
        """N' and D' (what the repeated data and the excess parameters are worth) for each theta row:
        theta (k, p), inputs broadcast to (n,) -> {"params": (k, n), "tokens": (k, n)}."""
        design = self.prepare(Columns(params=params, tokens=tokens, unique_tokens=unique_tokens))
        t = self._terms(theta, design)
        return {"params": np.exp(t["log_np"]), "tokens": np.exp(t["log_dp"])}


data_constrained = DataConstrained()
