"""Loss-to-loss law (Brandfonbrener et al. 2024, "Loss-to-Loss Prediction: Scaling Laws for All
Datasets"): a shifted power law between two losses of models of the same size and data budget.

    L_y = K * (L_x - E_x)^kappa + E_y

L_x:   the source loss (column role ``loss_x``): e.g. the validation loss on training set 0.
L_y:   the target loss (column role ``loss_y``), predicted.
kappa: exponent of the relation (about 1 between similar web corpora).
K:     scale of the relation.
E_x:   irreducible loss of the source (entropy term of a single-dataset fit of L_x).
E_y:   irreducible loss of the target.

Three pairings share the form (see ``scalefit.l2l.pair``):
* train-to-train: two models with identical (N, D) trained on different sets, each on its own val set;
* train-to-test:  one model, two loss columns (its own val loss and a test loss);
* test-to-test:   two models with identical (N, D), different training sets, the same test set.

The paper fixes E_x and E_y from single-dataset fits of the ``kaplan_e`` form, after which kappa and K
are an ordinary least-squares fit of log(L_y - E_y) on log(L_x - E_x) (``scalefit.l2l.fit_l2l``, which
also refuses points with L_x <= E_x). With the generic fitter, fix them with ``--set E_x=... --set E_y=...``.
Inside ``predict`` the base L_x - E_x is floored at 1e-12 so the objective stays finite while E_x moves.
"""

import numpy as np

from scalefit.errors import DataError
from scalefit.law import Law, Param

_FLOOR = 1e-12


class LossToLoss(Law):
    name = "loss_to_loss"
    formula = "L_y = K (L_x - E_x)^kappa + E_y"
    citation = "Brandfonbrener, Anand, Vyas, Malach, Kakade 2024, arXiv:2411.12925"
    inputs = ("loss_x",)
    target = "loss_y"
    params = {
        "kappa": Param((1e-3, 10.0), [0.5, 1.0, 1.5], doc="exponent of the loss-to-loss relation"),
        "K": Param((1e-6, 1e6), [0.5, 1.0, 2.0], log=True, linear=True, doc="scale of the relation"),
        "E_x": Param((0.0, 50.0), [0.0, 1.0], doc="irreducible loss of the source loss L_x"),
        "E_y": Param((0.0, 50.0), [0.0, 1.0], linear=True, doc="irreducible loss of the target loss L_y"),
    }
    # FineWeb-Edu -> ProofPile-2 train-to-train, E's fixed from the kaplan_e fits (reference §1.4).
    reference = {"fineweb_edu_to_proof_pile_2": {"kappa": 1.0663, "K": 0.6049, "E_x": 1.9669, "E_y": 1.3191}}
    reference_units = {"loss_unit": "nats"}

    def example_inputs(self):
        from scalefit.law import Columns

        # Source losses of a sweep on FineWeb-Edu (E_x ~ 1.97) from ~10M-parameter models to ~3B: 2.0 to 4.5 nats.
        return Columns(source="<loss_to_loss example>", loss_x=np.linspace(2.0, 4.5, 60))

    def prepare(self, data):
        return {"x": data.column("loss_x")}

    def _base(self, theta, design):
        p = self.unpack(theta)
        gap = design["x"] - p["E_x"]
        base = np.maximum(gap, _FLOOR)
        return p, gap > _FLOOR, base, base ** p["kappa"]

    def predict(self, theta, design):
        p, _, _, powered = self._base(theta, design)
        return p["K"] * powered + p["E_y"]

    def jacobian(self, theta, design):
        p, inside, base, powered = self._base(theta, design)
        d_ex = np.where(inside, -p["K"] * p["kappa"] * powered / base, 0.0)
        return np.stack(
            [p["K"] * powered * np.log(base), powered, d_ex, np.ones_like(powered)],
            axis=-1,
        )

    def check_fixed(self, data, fixed):
        # A point at or below a given entropy has no place on the curve: an error, not a NaN.
        for name, role in (("E_x", "loss_x"), ("E_y", "loss_y")):
            if name not in fixed:
                continue
            values = data.column(role)
            bad = np.flatnonzero(~(values > fixed[name]))
            if bad.size:
                column = data.columns.get(role, role)
                raise DataError(
                    f"{data.source}: column '{column}' ({role}) row {bad[0] + 1} = {values[bad[0]]:.6g} is not above "
                    f"{name} = {fixed[name]:.6g} ({bad.size} such row(s)); lower {name} or drop those rows"
                )

    def start_points(self, design, y):
        # The entropies must sit below every loss; log-space OLS for kappa, K at a few such pairs.
        x = design["x"]
        starts = []
        for fx in (0.0, 0.5, 0.8, 0.95):
            for fy in (0.0, 0.5, 0.8, 0.95):
                ex, ey = fx * x.min(), fy * y.min()
                lx, ly = np.log(x - ex), np.log(y - ey)
                if np.ptp(lx) <= 0:
                    continue
                kappa, logk = np.polyfit(lx, ly, 1)
                starts.append([np.clip(kappa, 1e-3, 10.0), np.clip(np.exp(logk), 1e-6, 1e6), ex, ey])
        return np.array(starts) if starts else None


loss_to_loss = LossToLoss()
