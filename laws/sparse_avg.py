"""Average-parameter law for sparse and dense pre-training (Jin et al. 2025, "The Journey Matters:
Average Parameter Count over Pre-training Unifies Sparse and Dense Scaling Laws", ICLR 2025).

    L(N_avg, D) = E + A / N_avg^alpha + B / D^beta,    N_avg = (1/D) * integral_0^D N_active(t) dt

Chinchilla's law with the parameter count averaged over training in place of N.
N_avg: average non-zero parameter count over training (role ``params_avg``);
D:     training tokens; E, A, B, alpha, beta: as in Chinchilla (irreducible loss, model-size coefficient,
       data coefficient, model-size exponent, data exponent).

N_avg comes from a ``params_avg`` column, or is computed when loading from the columns that define a
gradual-magnitude-pruning run: ``params`` (dense count), ``final_sparsity`` s_f, ``prune_start`` u_s and
``prune_end`` u_e (fractions of training) and optional ``params_unprunable`` Q. Under the cubic schedule
(Zhu & Gupta 2017), N_avg = Q + P (1 - s_f [0.75 (u_e - u_s) + (1 - u_e)]) with P = params - Q; for
pruning from 25 % to 75 % of training, N_avg = Q + P (1 - 0.625 s_f) (``scalefit.pruning.average_params``).
A dense run (s_f = 0) has N_avg = params exactly, and the law is then Chinchilla to the last bit.

The paper's fitted coefficients were not available to us; the reference set is Hoffmann's Chinchilla
fit, which is what the law must reduce to on dense runs.
"""

import numpy as np

from scalefit.law import Columns
from scalefit.registry import get_law

# The same law as Chinchilla with N_avg in place of N: inherit its parameters, terms and Jacobian, so a
# dense table gives the identical fit by construction.
_Chinchilla = type(get_law("chinchilla"))


class SparseAvg(_Chinchilla):
    name = "sparse_avg"
    formula = "L = E + A / N_avg^alpha + B / D^beta"
    citation = "Jin et al. 2025, arXiv:2501.12486 (ICLR 2025)"
    inputs = ("params_avg", "tokens")
    reference = {"hoffmann_dense": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}
    reference_units = {"loss_unit": "nats", "params_convention": "total"}

    def example_inputs(self):
        n, ratio = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(2, 200, 8), indexing="ij")
        sparsity = np.resize([0.0, 0.5, 0.8], n.size)  # dense and pruned runs, 25-75 % window
        return Columns(source="<sparse_avg example>", params_avg=n.ravel() * (1 - 0.625 * sparsity),
                       tokens=(n * ratio).ravel())

    def prepare(self, data):
        return {"logN": np.log(data.column("params_avg")), "logD": np.log(data.column("tokens"))}

    # Compute-optimal allocation is defined for the dense count N, not N_avg: no closed form here.
    optimal_params = None


sparse_avg = SparseAvg()
