"""What a cost question may accept: one range per input, checked before any arithmetic.

Every size, budget and hardware figure a cost function takes is checked here against a finite range, so
that every derived number (hours, FLOPs, dollars) stays finite and an absurd input is one error naming its
parameter (``tokens=1e+308``), never an overflow or a silently absurd answer. The lowest module of
:mod:`scalefit.cost`: the hardware, shape and budget modules all check their inputs with it.

Left out: the ranges are sanity bounds, not feasibility. A value inside them can still describe a run
that does not fit in memory or takes centuries; the estimate warns about those, it does not refuse them.
"""

from __future__ import annotations

import numpy as np

from ..errors import option_error
from ..units import check_in_range

# What a cost question may accept: far beyond today's largest runs, yet small enough that every derived
# number (hours, FLOPs, dollars) stays finite -- ``tokens=1e308`` overflowed 6ND, ``hours=1e-300`` and
# ``gpus=1e10`` gave absurd figures without a word. Budgets below one optimizer step are allowed (a
# warning says so); tokens and FLOPs have no lower bound but zero, as smaller budgets only mean partial steps.
RANGES: dict[str, tuple[float, float, str]] = {
    "params": (1.0, 1e16, "parameters"),
    "tokens": (0.0, 1e24, "tokens"),
    "flops": (0.0, 1e41, "FLOPs"),
    "hours": (1e-6, 1e10, "hours"),  # 3.6 ms to about a million years
    "gpu_hours": (1e-6, 1e16, "device-hours"),
    "dollars": (1e-6, 1e18, "dollars"),
    "gpus": (1, 10_000_000, "devices"),
    "price_per_gpu_hour": (1e-6, 1e6, "per device-hour"),
    "seq_len": (1, 100_000_000, "tokens"),
    "vocab": (1, 100_000_000, "tokens"),
    "batch": (1, 1e12, "sequences"),
    "d_model": (1, 10_000_000, ""),
    "layers": (1, 1_000_000, ""),
    "heads": (1, 10_000_000, ""),
    "d_ff": (1, 100_000_000, ""),
    "peak_tflops": (1e-6, 1e9, "TFLOP/s"),
    "hbm_gbps": (1e-6, 1e9, "GB/s"),
    "net_gbps": (1e-6, 1e9, "GB/s"),
    "hbm_gb": (1e-6, 1e9, "GB"),
}


def check_range(name: str, value, param: str | None = None) -> None:
    """One DataError naming the parameter ``param`` (default ``name``) when ``value`` is not a finite number
    inside ``RANGES[name]``."""
    lo, hi, unit = RANGES[name]
    check_in_range(value, param or name, lo, hi, unit)


def check_gpus(gpus) -> int:
    if isinstance(gpus, bool) or not isinstance(gpus, (int, np.integer)) or gpus < 1:
        raise option_error("gpus", gpus, "must be a positive whole number")
    check_range("gpus", gpus)
    return int(gpus)


def check_seq_len(seq_len) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise option_error("seq_len", seq_len, "must be a positive whole number of tokens")
    check_range("seq_len", seq_len)
    return int(seq_len)

