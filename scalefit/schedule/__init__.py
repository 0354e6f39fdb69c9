"""Learning-rate schedules for curve laws: the spec language, evaluation, and the schedule optimiser.

* :mod:`~scalefit.schedule.spec`: :class:`Schedule`, :func:`parse_schedule`, the schedule kinds and their
  help text (``cosine:peak=3e-4,steps=24000,warmup=2160`` -> a dense LR array);
* :mod:`~scalefit.schedule.evaluate`: a law's predicted loss under schedules (:func:`predict_schedule`,
  :func:`compare_schedules`; results are dataclasses), horizon warnings, fit scores, the schedule CSV;
* :mod:`~scalefit.schedule.optimize`: :func:`optimize_schedule` (free-form or ``family="wsd"``) and the
  WSD and cosine searches, with one time :class:`Budget` for all of it;
* :mod:`~scalefit.schedule.params`: :func:`curve_params`, a curve law's parameters from a fit, a paper or
  given values, for :func:`predict_for`, :func:`compare_for` and :func:`optimize_for` (the calls of
  ``scalefit schedule predict|compare|optimize``).

Every public name is re-exported here (``from scalefit.schedule import parse_schedule``). The package
imports only errors, limits, units and ``_io`` (numpy at import time, never scipy):
``scalefit.curves`` reads schedule specs through it, and the fit, the registry and the result all reach
curves, so the caller loads fits and laws and hands them to :func:`curve_params`.
"""

from __future__ import annotations

from .evaluate import (
    DEFAULT_POINTS,
    ComparedSchedule,
    CurveScores,
    ScheduleComparison,
    SchedulePrediction,
    check_prediction,
    check_step,
    compare_for,
    compare_schedules,
    curve_bytes,
    curve_metrics,
    default_every,
    final_loss,
    horizon_warnings,
    predict_for,
    predict_schedule,
    prediction_steps,
    schedule_steps,
    score_curves,
    write_schedule_csv,
)
from .optimize import (
    FAMILIES,
    Budget,
    OptimizedSchedule,
    optimize_bytes,
    optimize_for,
    optimize_schedule,
    search_cosine,
    search_wsd,
)
from .params import CurveParams, curve_params
from .spec import (
    COOLDOWN_SHAPES,
    MAX_PEAK,
    MAX_STEPS,
    Schedule,
    as_lr,
    check_memory,
    cooldown_shape,
    lr_bytes,
    parse_schedule,
    schedule_help,
)

__all__ = [
    "COOLDOWN_SHAPES", "DEFAULT_POINTS", "FAMILIES", "MAX_PEAK", "MAX_STEPS",
    "Budget", "ComparedSchedule", "CurveParams", "CurveScores", "OptimizedSchedule", "Schedule",
    "ScheduleComparison", "SchedulePrediction",
    "as_lr", "check_memory", "check_prediction", "check_step", "compare_for", "compare_schedules",
    "cooldown_shape", "curve_bytes", "curve_metrics", "curve_params", "default_every", "final_loss",
    "horizon_warnings", "lr_bytes", "optimize_bytes", "optimize_for", "optimize_schedule", "parse_schedule",
    "predict_for", "predict_schedule", "prediction_steps", "schedule_help", "schedule_steps", "score_curves",
    "search_cosine", "search_wsd", "write_schedule_csv",
]
