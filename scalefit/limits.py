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
import sys
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


# ------------------------------------------------------------------------------------ the C allocator
_MMAP_CEILING = 32 << 20  # glibc's own ceilings for its sliding thresholds on 64-bit systems: mmap,
_TRIM_CEILING = 64 << 20  # and trim (twice the mmap threshold)
_restored: bool | None = None  # None: not checked yet in this process


def restore_malloc_thresholds() -> bool:
    """Give glibc back its thresholds for large allocations where the environment froze them; True when
    this process runs with them restored.

    Setting ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_TOP_PAD_`` -- dask's nanny sets the first for every
    worker it starts, and a process started after a dask cluster inherits it -- stops glibc from sliding
    its mmap and trim thresholds up as a program's arrays grow, so every temporary array above 128 KiB is
    mapped afresh, or the heap is cut back after it, and faulted in again page by page. A bootstrap's
    batched arrays then made a fit 4x slower (Epoch, 4,000 draws: 1.2 s -> 4.9 s; with --jobs 2, 0.86 s
    -> 2.6 s). Setting both to the ceilings glibc itself slides them to restores the speed; a worker hands
    the memory back after each task instead (:func:`release_free_memory`). An explicit
    ``MALLOC_MMAP_THRESHOLD_`` is left alone. Checked once per process; Linux with glibc only."""
    global _restored
    if _restored is None:
        _restored = False
        frozen = any(os.environ.get(name) for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"))
        if frozen and not os.environ.get("MALLOC_MMAP_THRESHOLD_") and sys.platform.startswith("linux"):
            libc = _glibc()
            if libc is not None:  # -3: M_MMAP_THRESHOLD, -1: M_TRIM_THRESHOLD
                _restored = bool(libc.mallopt(-3, _MMAP_CEILING)) and bool(libc.mallopt(-1, _TRIM_CEILING))
    return _restored


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (what a frozen trim threshold was there for): after
    each task of a worker whose thresholds :func:`restore_malloc_thresholds` restored."""
    libc = _glibc() if _restored else None
    if libc is not None:
        libc.malloc_trim(0)


def _glibc():
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to restore
        return None
