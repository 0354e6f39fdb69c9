"""The schedule spec language: :class:`Schedule`, :func:`parse_schedule`, the schedule kinds.

A schedule is written as ``NAME:key=value,key=value``, for example::

    cosine:peak=3e-4,steps=24000,warmup=2160,floor=3e-5
    wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=0.2,shape=sqrt,floor=0
    two_stage:peak=3e-4,steps=16000,warmup=2160,switch=8000,low=9e-5

and turned into a dense float64 array with one LR per optimiser step ``t = 0 .. steps-1`` (what every
curve law consumes). Conventions, chosen to match the official Multi-Power-Law code (Luo et al. 2025),
so that published parameters and schedules line up step for step:

* warm-up: ``W`` steps, linear ``linspace(warmup_start * peak, peak, W)`` (``eta_{W-1} = peak``);
* cosine / linear decay run over the post-warm-up steps, ``u = (t - W) / (T - W)``;
* WSD holds the peak until ``D = T - floor(f T)`` (``cooldown=f`` as a fraction, or a step count when
  ``>= 1``), then cools down with ``u = (t - D) / (T - D)`` (Hägele et al. 2024 shapes);
* ``floor`` is an absolute LR, or a percentage of the peak when written ``10%``.

Parsing is a small hand-written tokenizer (never ``eval``); unknown names, keys or values raise a
one-line :class:`~scalefit.errors.DataError` that lists the valid ones. :func:`schedule_help` lists
every kind and its keys (``scalefit schedule kinds``).

Resources: a dense LR array is O(steps). Before one is allocated, its size is estimated and held against
the ``memory_bytes`` limit (:func:`check_memory`; ``SCALEFIT_MAX_MEMORY`` raises it), so an absurd
horizon is a one-line error instead of an out-of-memory kill.

This module imports nothing from scalefit but errors, limits and units: the data layer
(``scalefit.curves``) reads schedule specs through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import DataError
from ..limits import enforce

MAX_PEAK = 1e3  # no optimiser trains at a larger LR (as scalefit.curves.MAX_LR for LR tables)
MAX_STEPS = 2**53  # step counts beyond this are not exact in float64 and wrap around in int64
_LR_BYTES = 48  # bytes per step to generate one LR array (the array and its temporaries)

# ------------------------------------------------------------------------------------------------ shapes
COOLDOWN_SHAPES = ("linear", "sqrt", "cosine", "square", "mirror_cosine", "exp")


def cooldown_shape(u: np.ndarray, shape: str, high: float, low: float) -> np.ndarray:
    """phi(u) for u in [0, 1]: the WSD cooldown from ``high`` to ``low`` (Hägele et al. 2024, Sec. 3).

    linear: low + (high-low)(1-u);  sqrt: low + (high-low)(1-sqrt u);  cosine: low + (high-low)(1+cos pi u)/2;
    square: low + (high-low)(1-u^2);  mirror_cosine: 2 linear - cosine;  exp: high^(1-u) low^u (geometric).
    """
    span = high - low
    if shape == "linear":
        return low + span * (1.0 - u)
    if shape == "sqrt":
        return low + span * (1.0 - np.sqrt(u))
    if shape == "cosine":
        return low + 0.5 * span * (1.0 + np.cos(np.pi * u))
    if shape == "square":
        return low + span * (1.0 - u * u)
    if shape == "mirror_cosine":
        return 2.0 * (low + span * (1.0 - u)) - (low + 0.5 * span * (1.0 + np.cos(np.pi * u)))
    if shape == "exp":
        return high ** (1.0 - u) * low**u
    raise DataError(f"cooldown shape '{shape}' is unknown; valid shapes: {', '.join(COOLDOWN_SHAPES)}")


# ------------------------------------------------------------------------------------------------ spec
_COMMON = {
    "peak": "peak LR (required)",
    "steps": "total optimiser steps T, warm-up included (required)",
    "warmup": "linear warm-up steps W (default 0)",
    "warmup_start": "warm-up starts at this fraction of the peak (default 0)",
}
_KINDS: dict[str, dict[str, str]] = {
    "constant": {},
    "cosine": {"floor": "final LR (default 0; '10%' = fraction of peak)"},
    "linear": {"floor": "final LR (default 0)"},
    "wsd": {
        "cooldown": "cooldown length: fraction of T if < 1, else steps (default 0.2)",
        "shape": f"cooldown shape: {'|'.join(COOLDOWN_SHAPES)} (default linear)",
        "floor": "LR at the end of the cooldown (default 0)",
    },
    "two_stage": {"switch": "step where the LR drops (required)", "low": "LR after the switch (required)"},
    "multistep": {
        "milestones": "fractions of T where the LR drops, '/'-separated (default 0.8/0.9)",
        "factor": "multiplier at each milestone (default 1/sqrt(10): the 8-1-1 schedule)",
    },
    "cos_inf": {
        "hold": "final constant phase: fraction of T if < 1, else steps (default 0.2)",
        "floor": "LR of the constant phase (default 10%)",
    },
}
_ALIASES = {"const": "constant", "cos": "cosine", "twostage": "two_stage", "two-stage": "two_stage",
            "811": "multistep", "8-1-1": "multistep", "step": "multistep", "cosine_constant": "cos_inf",
            "cos-inf": "cos_inf"}
_SHAPE_ALIASES = {"1-sqrt": "sqrt", "one_minus_sqrt": "sqrt", "cos": "cosine", "geometric": "exp",
                  "exponential": "exp", "mirror-cosine": "mirror_cosine", "quadratic": "square"}


def _printable(text: str) -> str:
    """User text for a one-line message: control characters (a newline in a spec) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _spec_error(spec: str, why: str) -> DataError:
    return DataError(_printable(f"schedule '{spec}': {why}"))


def _number(spec: str, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        from ..units import parse_count

        try:
            value = parse_count(text, what=key)
        except DataError:
            raise _spec_error(spec, f"{key}='{text}' is not a number") from None
    if not math.isfinite(value):
        raise _spec_error(spec, f"{key}='{text}' is not finite")
    return value


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule spec. ``lr()`` gives the dense LR array, ``str()`` the canonical spec."""

    kind: str
    peak: float
    steps: int
    warmup: int = 0
    warmup_start: float = 0.0
    options: Mapping[str, object] = field(default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def parse(cls, spec: str) -> "Schedule":
        return parse_schedule(spec)

    def __str__(self) -> str:
        parts = [f"peak={self.peak:g}", f"steps={self.steps}"]
        if self.warmup:
            parts.append(f"warmup={self.warmup}")
        if self.warmup_start:
            parts.append(f"warmup_start={self.warmup_start:g}")
        for key, value in self.options.items():
            if isinstance(value, tuple):
                value = "/".join(f"{v:g}" for v in value)
            elif isinstance(value, float):
                value = f"{value:g}"
            parts.append(f"{key}={value}")
        return f"{self.kind}:" + ",".join(parts)

    @property
    def spec(self) -> str:
        return str(self)

    # ---------------------------------------------------------------- generation
    def _floor(self, default: float = 0.0) -> float:
        return float(self.options.get("floor", default))

    def _steps_of(self, value: float) -> int:
        """A length given as a fraction of T (< 1) or as a step count."""
        return int(math.floor(value * self.steps)) if value < 1 else int(value)

    def lr(self) -> np.ndarray:
        """The LR at every step t = 0 .. steps-1 (float64), warm-up included.

        Raises :class:`~scalefit.limits.LimitError` before allocating when the array and its temporaries
        would exceed the ``memory_bytes`` limit."""
        check_memory(lr_bytes(self.steps), f"schedule '{self}'")
        T, W, peak = self.steps, self.warmup, self.peak
        t = np.arange(T, dtype=float)
        k = self.kind
        if k == "constant":
            eta = np.full(T, peak)
        elif k in ("cosine", "linear"):
            low = self._floor()
            u = np.clip((t - W) / max(T - W, 1), 0.0, 1.0)
            eta = low + (peak - low) * (0.5 * (1.0 + np.cos(np.pi * u)) if k == "cosine" else 1.0 - u)
        elif k == "wsd":
            low = self._floor()
            D = T - self._steps_of(float(self.options.get("cooldown", 0.2)))
            start = min(max(D, 0), T)  # the cool-down alone is computed: a WSD grid search builds hundreds
            u = np.clip((t[start:] - D) / max(T - D, 1), 0.0, 1.0)
            eta = np.full(T, peak)
            eta[start:] = cooldown_shape(u, str(self.options.get("shape", "linear")), peak, low)
        elif k == "two_stage":
            eta = np.where(t < float(self.options["switch"]), peak, float(self.options["low"]))
        elif k == "multistep":
            miles = self.options.get("milestones", (0.8, 0.9))
            factor = float(self.options.get("factor", 10 ** -0.5))
            drops = sum((t >= round(m * T)).astype(float) for m in miles)
            eta = peak * factor**drops
        elif k == "cos_inf":
            low = self._floor(0.1 * peak)
            end = T - self._steps_of(float(self.options.get("hold", 0.2)))
            u = np.clip((t - W) / max(end - W, 1), 0.0, 1.0)
            eta = low + 0.5 * (peak - low) * (1.0 + np.cos(np.pi * u))
        else:  # pragma: no cover - parse() rejects unknown kinds
            raise DataError(f"schedule kind '{k}' is unknown")
        if W:
            eta[:W] = np.linspace(self.warmup_start * peak, peak, W)
        return eta


def parse_schedule(spec: str) -> Schedule:
    """``'wsd:peak=3e-4,steps=24000,...'`` -> :class:`Schedule`; DataError naming what is wrong."""
    if isinstance(spec, Schedule):
        return spec
    text = str(spec).strip()
    if ":" in text:
        name, body = text.split(":", 1)
    else:
        name, body = text, ""
    name = name.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in _KINDS:
        raise _spec_error(text, f"unknown schedule '{name}'; valid: {', '.join(_KINDS)} "
                                f"(write NAME:peak=3e-4,steps=24000,...)")
    valid = {**_COMMON, **_KINDS[name]}
    raw: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in body.split(","))):
        if "=" not in item:
            raise _spec_error(text, f"'{item}' is not key=value; keys for {name}: {', '.join(valid)}")
        key, value = (s.strip() for s in item.split("=", 1))
        key = key.lower().replace("-", "_")
        if key not in valid:
            raise _spec_error(text, f"unknown key '{key}' for {name}; valid keys: {', '.join(valid)}")
        if key in raw:
            raise _spec_error(text, f"key '{key}' is given twice")
        raw[key] = value
    for key in ("peak", "steps") + (("switch", "low") if name == "two_stage" else ()):
        if key not in raw:
            raise _spec_error(text, f"missing required key '{key}' ({valid[key]})")

    peak = _number(text, "peak", raw.pop("peak"))
    if not 0 < peak <= MAX_PEAK:
        raise _spec_error(text, f"peak must be positive and at most {MAX_PEAK:g}, got {peak:g}")
    steps_f = _number(text, "steps", raw.pop("steps"))
    warm_f = _number(text, "warmup", raw.pop("warmup", "0"))
    for key, v in (("steps", steps_f), ("warmup", warm_f)):
        if v != int(v) or v < 0:
            raise _spec_error(text, f"{key} must be a non-negative whole number of steps, got {v:g}")
    steps, warmup = int(steps_f), int(warm_f)
    if steps < 2:
        raise _spec_error(text, "steps must be at least 2")
    if steps > MAX_STEPS:
        raise _spec_error(text, f"steps={steps_f:g} is too large for a step count (at most 2**53)")
    if warmup >= steps:
        raise _spec_error(text, f"warmup ({warmup}) must be shorter than steps ({steps})")
    warmup_start = _number(text, "warmup_start", raw.pop("warmup_start", "0"))
    if not 0 <= warmup_start <= 1:
        raise _spec_error(text, "warmup_start is a fraction of the peak in [0, 1]")

    opts: dict[str, object] = {}
    for key, value in raw.items():
        if key == "shape":
            shape = _SHAPE_ALIASES.get(value.lower(), value.lower())
            if shape not in COOLDOWN_SHAPES:
                raise _spec_error(text, f"shape '{value}' is unknown; valid shapes: {', '.join(COOLDOWN_SHAPES)}")
            opts[key] = shape
        elif key == "milestones":
            miles = tuple(_number(text, key, v) for v in value.split("/") if v.strip())
            if not miles or any(not 0 < m < 1 for m in miles) or list(miles) != sorted(miles):
                raise _spec_error(text, "milestones are increasing fractions of steps in (0, 1), e.g. 0.8/0.9")
            opts[key] = miles
        elif key == "floor" and value.endswith("%"):
            opts[key] = _number(text, key, value[:-1]) / 100.0 * peak
        else:
            opts[key] = _number(text, key, value)
    if "floor" in opts and not 0 <= opts["floor"] <= peak:
        raise _spec_error(text, f"floor must lie in [0, peak={peak:g}], got {opts['floor']:g}")
    for key in ("cooldown", "hold"):
        if key in opts:
            v = opts[key]
            if not (0 < v < 1 or (v >= 1 and v == int(v) and v <= steps - warmup)):
                raise _spec_error(text, f"{key} is a fraction in (0, 1) or a whole number of steps <= {steps - warmup}")
    if name == "wsd" and opts.get("shape") == "exp" and opts.get("floor", 0.0) <= 0:
        raise _spec_error(text, "shape=exp (geometric) needs floor > 0, e.g. floor=3e-5")
    if name == "two_stage":
        if not 0 < opts["switch"] < steps or opts["switch"] != int(opts["switch"]):
            raise _spec_error(text, f"switch must be a step in (0, {steps})")
        opts["switch"] = int(opts["switch"])
        if not 0 <= opts["low"] <= peak:
            raise _spec_error(text, f"low must lie in [0, peak={peak:g}]")
    if name == "multistep" and "factor" in opts and not 0 < opts["factor"] <= 1:
        raise _spec_error(text, "factor must lie in (0, 1]")
    return Schedule(name, peak, steps, warmup, warmup_start, opts)


def schedule_help() -> str:
    """Every schedule kind and its keys, for --help texts and error messages."""
    lines = ["common keys: " + ", ".join(f"{k} ({v})" for k, v in _COMMON.items())]
    for kind, keys in _KINDS.items():
        lines.append(f"{kind}: " + (", ".join(f"{k} ({v})" for k, v in keys.items()) or "no extra keys"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ resources
def check_memory(nbytes: float, context: str) -> None:
    """Hold an estimate of working memory against the ``memory_bytes`` limit (LimitError naming it)."""
    enforce("memory_bytes", nbytes, context)


def lr_bytes(steps: int) -> int:
    """Bytes to generate one dense LR array of ``steps`` steps."""
    return _LR_BYTES * int(steps)


def as_lr(schedule: "str | Schedule | np.ndarray") -> np.ndarray:
    """A spec string, a Schedule or an array -> validated dense float64 LR array."""
    if isinstance(schedule, (str, Schedule)):
        return parse_schedule(schedule).lr()
    eta = np.asarray(schedule, dtype=float)
    if eta.ndim != 1 or eta.size < 2:
        raise DataError("an LR sequence must be a 1-d array with at least 2 steps")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise DataError("an LR sequence must be finite and non-negative")
    return eta

