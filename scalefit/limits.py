"""Resource limits: every bound scalefit puts on input size, memory and parallelism, in one table.

Each limit has a default that fits an ordinary workstation and an environment variable that raises it.
Hitting one is an input error (exit 2) whose message names the limit, the value that hit it and how to
raise it -- never a hang, never an out-of-memory kill.

``block_bytes`` is a budget rather than a ceiling: batched work (the solver's Jacobians over a block of
parameter vectors, a curve law's pair sums) is cut into blocks that fit it, so a fit's peak memory is its
data plus about this much; raising it buys larger blocks, which are rarely faster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import DataError


class LimitError(DataError):
    """A request is larger than a resource limit allows; the message says how to raise the limit."""


@dataclass(frozen=True)
class Limit:
    env: str
    default: int
    what: str  # the quantity, in words
    unit: str = ""


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


LIMITS: dict[str, Limit] = {
    "input_bytes": Limit("SCALEFIT_MAX_INPUT_BYTES", 8 * 2**30, "size of an input table", "bytes"),
    "fit_json_bytes": Limit("SCALEFIT_MAX_FIT_BYTES", 256 * 2**20, "size of a fit.json file", "bytes"),
    "memory_bytes": Limit("SCALEFIT_MAX_MEMORY", 4 * 2**30, "working memory for one array computation", "bytes"),
    "block_bytes": Limit("SCALEFIT_BLOCK_MEMORY", 48 * 2**20, "working memory of one block of batched work", "bytes"),
    "jobs": Limit("SCALEFIT_MAX_JOBS", 0, "parallel worker processes"),  # 0: 4 per CPU, computed at use
}


def limit(name: str) -> int:
    """The limit in force: the environment variable when set to a positive integer, else the default."""
    spec = LIMITS[name]
    raw = os.environ.get(spec.env, "").strip()
    if raw:
        try:
            value = int(float(raw))
        except (ValueError, OverflowError):  # "abc", or "1e400" / "inf"
            raise DataError(f"{spec.env}={raw!r}: expected a positive number") from None
        if value <= 0:
            raise DataError(f"{spec.env}={raw!r}: expected a positive number")
        return value
    if name == "jobs":
        return 4 * _cpus()
    return spec.default


def _show(value: float, unit: str) -> str:
    if unit == "bytes":
        for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value:.0f} bytes"
    return f"{value:,.0f}"


def enforce(name: str, value: float, context: str) -> None:
    """Raise LimitError when ``value`` exceeds the limit ``name``; ``context`` says what asked for it."""
    cap = limit(name)
    if value > cap:
        spec = LIMITS[name]
        raise LimitError(f"{context}: needs {_show(value, spec.unit)}, over the limit of {_show(cap, spec.unit)} "
                         f"on the {spec.what}; set {spec.env} to raise it")
