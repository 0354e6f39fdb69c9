"""Wall-clock cost of training a transformer: per-step FLOPs and memory traffic, step time, budgets.

The idea (Inbar & Sernau 2024, "Time Matters: Scaling Laws for Any Budget", arXiv:2406.18922): FLOP
counts alone predict training time poorly; the bytes a step moves through memory, counted from the
transformer's hyperparameters, predict it better. A linear regression on measured step times calibrates
the model to one machine, and a scaling law rewritten with ``tokens = time x throughput`` gives the loss
reachable in a wall-clock budget -- which favours wider, shallower models than FLOP reasoning does.

The package, one job per module, each importing only the ones above it:

    ranges.py       what a cost question may accept (``RANGES``, ``check_range``, ``check_gpus``, ...)
    hardware.py     the hardware table and :class:`Hardware`
    shape.py        :class:`Shape`, parameter counts, a size such as 7B expanded to a conventional shape
    step.py         per-step FLOPs and memory traffic, :class:`CostModel` (roofline prior), :class:`MfuModel`
    calibration.py  :func:`calibrate`: the step-time model fitted to measured step times
    budget.py       budgets <-> wall clock (:func:`estimate`), :func:`predict_loss`, :func:`time_budget_search`

Every public name is re-exported here, so ``from scalefit import cost; cost.estimate(...)`` and
``from scalefit.cost import Shape`` work as they always have. Each module's docstring states its part
of the model and what it leaves out; across the package:

Left out (first order only): tensor/pipeline parallelism and their bubbles, overlap of the all-reduce with
the backward pass (the calibrated beta_net absorbs it), hierarchical all-reduce, tile/wave quantisation
of small matmuls, data loading, evaluation, checkpointing and restarts (goodput).
"""

from __future__ import annotations

from .budget import (
    ASPECT_RANGE,
    BUDGET_KINDS,
    LONG_HOURS,
    Estimate,
    SearchResult,
    estimate,
    law_params,
    params_convention,
    predict_loss,
    time_budget_search,
)
from .calibration import TIMING_COLUMNS, calibrate, check_calibration_options, simulate_timings, timings_features
from .hardware import Hardware, get_hardware, hardware_table, hardware_table_path
from .ranges import RANGES, check_gpus, check_range, check_seq_len
from .shape import (
    CONVENTIONAL_ASPECT,
    DEFAULT_BATCH_TOKENS,
    DEFAULT_SEQ_LEN,
    DEFAULT_VOCAB,
    HEAD_DIM,
    Shape,
    chinchilla_flops,
    chinchilla_params,
    conventional_shape,
    default_batch,
    param_counts,
)
from .step import (
    DEFAULT_MICRO_TOKENS,
    ETA_COMPUTE,
    ETA_MEMORY,
    ETA_NETWORK,
    FEATURES,
    FLOP_ONLY_GROUPS,
    GROUPS,
    STEP_OVERHEAD_S,
    CostModel,
    MfuModel,
    group_matrix,
    model_step_time,
    shape_features,
    step_features,
)

__all__ = [
    "RANGES",
    "check_gpus",
    "check_range",
    "check_seq_len",
    "Hardware",
    "get_hardware",
    "hardware_table",
    "hardware_table_path",
    "CONVENTIONAL_ASPECT",
    "DEFAULT_BATCH_TOKENS",
    "DEFAULT_SEQ_LEN",
    "DEFAULT_VOCAB",
    "HEAD_DIM",
    "Shape",
    "chinchilla_flops",
    "chinchilla_params",
    "conventional_shape",
    "default_batch",
    "param_counts",
    "DEFAULT_MICRO_TOKENS",
    "ETA_COMPUTE",
    "ETA_MEMORY",
    "ETA_NETWORK",
    "FEATURES",
    "FLOP_ONLY_GROUPS",
    "GROUPS",
    "STEP_OVERHEAD_S",
    "CostModel",
    "MfuModel",
    "group_matrix",
    "model_step_time",
    "shape_features",
    "step_features",
    "TIMING_COLUMNS",
    "calibrate",
    "check_calibration_options",
    "simulate_timings",
    "timings_features",
    "ASPECT_RANGE",
    "BUDGET_KINDS",
    "LONG_HOURS",
    "Estimate",
    "SearchResult",
    "estimate",
    "law_params",
    "params_convention",
    "predict_loss",
    "time_budget_search",
]
