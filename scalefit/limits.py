"""Resource limits: every bound scalefit puts on input size, memory and parallelism, in one table.

Each limit has a default that fits an ordinary workstation and an environment variable that raises it.
Hitting one is an input error (exit 2) whose message names the limit, the value that hit it and how to
raise it -- never a hang, never an out-of-memory kill.

``block_bytes`` is a budget rather than a ceiling: batched work (the solver's Jacobians over a block of
parameter vectors, a curve law's pair sums) is cut into blocks that fit it, so a fit's peak memory is its
data plus about this much; raising it buys larger blocks, which are rarely faster.
"""

from __future__ import annotations

import functools
import os
import threading
from contextlib import contextmanager
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
# glibc slides its mmap threshold up to this as a program frees large blocks (and its trim threshold to
# twice it); 128 KiB is where both start. Setting any of these by environment stops the sliding.
_MMAP_CEILING, _TRIM_CEILING, _GLIBC_START = 32 << 20, 64 << 20, 128 << 10
_FREEZERS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_TUNABLES = ("glibc.malloc.trim_threshold", "glibc.malloc.top_pad", "glibc.malloc.mmap_max")
_allocator_lock = threading.Lock()
_allocator_users = 0
_frozen_state: tuple | None | bool = False  # False: not read yet; None: nothing to do in this process


def _c_number(text: str) -> int:
    """A size as glibc reads it from the environment (strtoul with base 0: 0x hex, a leading 0 octal)."""
    text = text.strip()
    if text.lower().startswith("0x"):
        return int(text, 16)
    return int(text, 8) if len(text) > 1 and text.startswith("0") else int(text)


def _frozen() -> tuple | None:
    """(libc, the trim threshold to put back) when glibc started this process with its thresholds frozen
    and no mmap threshold of the user's, else None. Read once from the environment the process started
    with (/proc/self/environ): a dask client's own process has the workers' variables in os.environ but
    was not started with them."""
    global _frozen_state
    if _frozen_state is False:
        _frozen_state = _read_frozen()  # one assignment: a thread arriving meanwhile reads it again
    return _frozen_state


def _read_frozen() -> tuple | None:
    try:
        with open("/proc/self/environ", "rb") as fh:
            raw = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    except OSError:  # not Linux
        return None
    env = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
    tunables = dict(t.split("=", 1) for t in env.get("GLIBC_TUNABLES", "").split(":") if "=" in t)
    if env.get("MALLOC_MMAP_THRESHOLD_") or "glibc.malloc.mmap_threshold" in tunables:
        return None  # the user's own choice
    if not (any(env.get(name) for name in _FREEZERS) or any(t in tunables for t in _TUNABLES)):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc itself, not musl or a shim that ignores mallopt
        return None
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    try:  # the tunable, where both are given, as glibc reads it last
        trim = _c_number(tunables.get("glibc.malloc.trim_threshold") or env.get("MALLOC_TRIM_THRESHOLD_")
                         or str(_GLIBC_START))
    except ValueError:
        trim = _GLIBC_START
    return libc, trim


def _put_back(libc, trim: int) -> None:
    """The frozen thresholds again, and the heap's free top handed back now (a free() past the trim
    threshold cuts it, far cheaper than malloc_trim's walk over every arena)."""
    libc.mallopt(-3, _GLIBC_START)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, trim)  # M_TRIM_THRESHOLD
    libc.free(libc.malloc(100_000))


@contextmanager
def sliding_malloc_thresholds():
    """Within: glibc's thresholds for large allocations at the ceilings it slides them to itself, where the
    environment froze them; on leaving, as they were (when no other thread is still within).

    Setting ``MALLOC_TRIM_THRESHOLD_`` (dask's nanny does, for every worker it starts; processes started
    after a dask cluster, loky's workers among them, inherit it), ``MALLOC_TOP_PAD_`` or
    ``MALLOC_MMAP_MAX_`` stops glibc from raising its mmap and trim thresholds, so every temporary array
    over 128 KiB was mapped afresh or the heap cut back after it, and faulted in again page by page: Epoch's
    fit with 4,000 bootstrap draws took 4.9 s instead of 1.2 s, and 2.6 s instead of 0.86 s with --jobs 2.
    Inside a fit the thresholds slide as glibc's defaults would; on leaving, the process gets the settings
    it was given back and the heap's free top is handed back (as a dask worker's nanny asked). Numbers
    never change."""
    global _allocator_users
    state = _frozen()
    if state is None:
        yield
        return
    with _allocator_lock:
        if _allocator_users == 0:
            state[0].mallopt(-3, _MMAP_CEILING)  # M_MMAP_THRESHOLD
            state[0].mallopt(-1, _TRIM_CEILING)  # M_TRIM_THRESHOLD
        _allocator_users += 1
    try:
        yield
    finally:
        with _allocator_lock:
            _allocator_users -= 1
            if _allocator_users == 0:
                _put_back(*state)


def _after_fork_in_child() -> None:
    """A child forked while a thread of its parent was within the context: no thread of its own is."""
    global _allocator_users
    if _allocator_users and isinstance(_frozen_state, tuple):
        _allocator_users = 0
        _put_back(*_frozen_state)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def with_sliding_malloc(fn):
    """``fn`` run inside :func:`sliding_malloc_thresholds` (the entry points that do array work)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with sliding_malloc_thresholds():
            return fn(*args, **kwargs)

    return run
