"""Optimal learning rate and batch size: the Step Law (Li et al. 2025, arXiv:2503.04715).

From a sweep of runs that vary the peak LR and the batch size inside (params, tokens) cells, place each
cell's optimum (``grid``: the best run, as the authors do; ``smooth``: a robust local quadratic in
(log lr, log batch) that places it between grid points), fit

    eta_opt(N, D) = a N^alpha D^beta        B_opt(D) = c D^gamma  (tokens)

with seeded bootstrap intervals, and forecast both at a new (N, D)::

    fit = fit_hparams("sweep.csv", optimum="smooth")
    save_hparams(fit, "hp.json")
    load_hparams("hp.json").predict(7e9, 1.4e12, seq_len=2048)

Modules: :mod:`.table` (reading and validating the sweep), :mod:`.optimum` (one cell's optimum and flat
region), :mod:`.model` (the law, bootstrap, leave-one-cell-out), :mod:`.store` (hp.json, the authors'
bootstrap table, published values).
"""

from .model import NAMES, RESAMPLES, HparamsFit, HparamsForecast, check_options, fit_hparams, leave_one_cell_out
from .optimum import OPTIMA, CellOptimum
from .store import (
    KIND,
    PUBLISHED,
    SCHEMA,
    import_draws,
    is_hparams_file,
    load_hparams,
    published,
    save_hparams,
    to_payload,
)
from .table import BATCH_UNITS, ROLES

__all__ = [
    "BATCH_UNITS", "KIND", "NAMES", "OPTIMA", "PUBLISHED", "RESAMPLES", "ROLES", "SCHEMA", "CellOptimum",
    "HparamsFit", "HparamsForecast", "check_options", "fit_hparams", "import_draws", "is_hparams_file",
    "leave_one_cell_out", "load_hparams", "published", "save_hparams", "to_payload",
]
