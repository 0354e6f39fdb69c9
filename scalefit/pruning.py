"""The average parameter count of a gradually pruned run (Jin et al. 2025), a role derived from columns.

A table for the ``sparse_avg`` law may give ``params_avg`` directly, or the columns that define a
gradual-magnitude-pruning run (``params``, ``final_sparsity``, ``prune_start``, ``prune_end`` and optional
``params_unprunable``). Deriving it is table arithmetic, not fitting: it happens when the table is read,
before any law is loaded, so it lives beside the table code rather than in the law file.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

PRUNING_ROLES = ("final_sparsity", "prune_start", "prune_end")
PRUNING_INPUTS = (*PRUNING_ROLES, "params_unprunable")


def average_params(params, final_sparsity, prune_start, prune_end, params_unprunable=0.0):
    """Average parameter count over training under the cubic gradual-pruning schedule (Zhu & Gupta 2017).

    Sparsity of the prunable weights P = params - params_unprunable is
    s(u) = s_f (1 - (1 - (u - u_s)/(u_e - u_s))^3) for u in [u_s, u_e] (u = fraction of training),
    0 before and s_f after. The cubic averages to 3/4 over the window, so
    N_avg = params - P s_f [0.75 (u_e - u_s) + (1 - u_e)]  (Jin et al. 2025); s_f = 0 gives params exactly.
    """
    params = np.asarray(params, dtype=float)
    pruned = params - np.asarray(params_unprunable, dtype=float)
    u_s, u_e = np.asarray(prune_start, dtype=float), np.asarray(prune_end, dtype=float)
    mean_sparsity = np.asarray(final_sparsity, dtype=float) * (0.75 * (u_e - u_s) + (1.0 - u_e))
    return params - pruned * mean_sparsity


def params_avg_of_pruned_runs(params, found: dict, roles: dict, source: str) -> np.ndarray:
    """``params_avg`` from the dense counts ``params`` and the pruning columns ``found`` (role -> values),
    each checked; ``roles`` maps a role to its column name for the messages."""
    absent = [r for r in ("params", *PRUNING_ROLES) if r not in found and (r != "params" or params is None)]
    if absent:
        raise DataError(
            f"{source}: no params_avg column, and the pruning columns are incomplete: missing "
            f"{', '.join(absent)} (give params_avg, or params, final_sparsity, prune_start, prune_end)"
        )
    unprunable = found.get("params_unprunable", np.zeros_like(params))
    checks = [
        ("final_sparsity", (found["final_sparsity"] >= 0) & (found["final_sparsity"] < 1), "must lie in [0, 1)"),
        ("prune_start", (found["prune_start"] >= 0) & (found["prune_start"] <= 1), "must be a fraction in [0, 1]"),
        ("prune_end", (found["prune_end"] >= found["prune_start"]) & (found["prune_end"] <= 1),
         "must be a fraction in [prune_start, 1]"),
        ("params_unprunable", (unprunable >= 0) & (unprunable <= params), "must lie in [0, params]"),
    ]
    for role, ok, why in checks:
        bad = np.flatnonzero(~ok)
        if bad.size:
            column = roles.get(role, role)
            raise DataError(
                f"{source}: column '{column}' ({role}) row {bad[0] + 1}: value "
                f"{(found.get(role, unprunable))[bad[0]]!r} {why}"
            )
    return average_params(params, found["final_sparsity"], found["prune_start"], found["prune_end"], unprunable)
