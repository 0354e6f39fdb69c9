"""One logged scalar of one run, as the readers hand it over, and how it is cleaned.

Readers keep values in the order they were logged. Cleaning then resolves what real logs hold: a restart
(the step goes back to ``s``: as TensorBoard purges, every value logged before it at a step ``>= s`` is
dropped, so the aborted attempt leaves nothing behind, not even at steps the resumed run logs at another
interval or never reaches), a repeated step (the later value wins), a NaN logged after a divergence; and
it refuses what cannot be resolved: steps that are not whole numbers, or steps that go back so often that
they cannot be restarts (two runs written into one file, or a column that is not the training step).

Runs that share a name are stitched as one restarted run only when they look like one: a later part must
start after the earlier part's first step and overlap at most half of it. Otherwise (W&B and MLflow names
are not unique) they are kept apart under ``NAME#RUN_ID``, or refused when no run id tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import DataError
from ..tables import show_name, show_names

# More backward jumps than this fraction of the logged values (and more than a few) are not restarts.
MAX_RESTART_FRACTION = 0.1
MIN_SUSPICIOUS_JUMPS = 5
# A spacing this many times the usual one between two logged losses is reported as a gap.
GAP_FACTOR = 10
# A later log of the same name that overlaps more than this fraction of the earlier one is not its restart.
MAX_RESTART_OVERLAP = 0.5


@dataclass
class Series:
    """Steps and values of one key, in logging order (steps as logged: float64, checked when cleaned)."""

    steps: np.ndarray
    values: np.ndarray

    def __post_init__(self):
        self.steps = np.asarray(self.steps, dtype=float)
        self.values = np.asarray(self.values, dtype=float)

    def __len__(self) -> int:
        return int(self.steps.size)

    @staticmethod
    def concat(parts: list["Series"]) -> "Series":
        return Series(np.concatenate([p.steps for p in parts]), np.concatenate([p.values for p in parts]))


@dataclass
class RunLog:
    """What a reader found for one run: its scalars by key, and what its config says (``params``, ...)."""

    name: str
    origin: str  # the file, folder or URI, for messages
    series: dict[str, Series]
    meta: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None  # the store's id (W&B, MLflow), which tells apart runs of one name


def label(name: str, run_id: str | None) -> str:
    """A run's name with its id, as runs of one name that are not one run are kept apart."""
    return f"{name}#{run_id}" if run_id else name


def matches(pattern, name: str, run_id: str | None = None) -> bool:
    """Whether a ``runs`` pattern selects a run: by its name, or by ``NAME#RUN_ID``."""
    return bool(pattern.search(name) or (run_id and pattern.search(label(name, run_id))))


@dataclass
class Clean:
    """A cleaned series: strictly increasing whole steps, finite values, and what cleaning did."""

    steps: np.ndarray  # int64
    values: np.ndarray
    restarts: int = 0  # times the step went back
    repeated: int = 0  # values replaced by a later one at the same step (no restart between them)
    dropped_nan: int = 0
    no_step: int = 0  # values logged without a step (not placed)
    purged: int = 0  # values logged before a restart at or after the step it went back to
    orphaned: int = 0  # of those, values at steps that were not logged again

    def before(self, step: int) -> "Clean":
        keep = self.steps < step
        return Clean(self.steps[keep], self.values[keep])

    def at_least(self, step: int) -> "Clean":
        keep = self.steps >= step
        return replace(self, steps=self.steps[keep], values=self.values[keep])


def where(run: RunLog, key: str) -> str:
    return f"{run.origin}: run {show_name(run.name)}, key {show_name(key)}"


def clean(series: Series, run: RunLog, key: str) -> Clean:
    """Resolve restarts (purge what the aborted attempt logged from the resumed step on) and repeats (the
    later value wins), drop NaN values; refuse unusable steps."""
    steps, values = series.steps, series.values
    has_step = np.isfinite(steps)
    if not has_step.all():
        # A row with a value but no step cannot be placed (W&B rows logged without the step key).
        steps, values = steps[has_step], values[has_step]
    bad = (steps < 0) | (steps != np.round(steps)) | (steps >= 2.0**53)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(run, key)}: step {steps[i]:.6g} (value {i + 1}) is not a whole non-negative "
                        f"number; is the step taken from the right key?")
    steps = steps.astype(np.int64)
    resumes = np.flatnonzero(np.diff(steps) < 0) + 1  # where the step went back
    back = int(resumes.size)
    if back > MIN_SUSPICIOUS_JUMPS and back > MAX_RESTART_FRACTION * steps.size:
        i = int(resumes[0]) - 1
        raise DataError(f"{where(run, key)}: the step goes back {back} times in {steps.size} values (first "
                        f"{steps[i]} then {steps[i + 1]}): too often for restarts; are two runs written to one "
                        f"log, or is the step taken from a key that is not the training step?")
    purged = orphaned = 0
    if back:
        # TensorBoard's purge: a value survives only if its step is below every step a later restart
        # resumed from (the lowest such step, for each value, is a reverse running minimum).
        resumed_from = np.full(steps.size, np.iinfo(np.int64).max)
        resumed_from[resumes] = steps[resumes]
        lowest_later = np.r_[np.minimum.accumulate(resumed_from[::-1])[::-1][1:], np.iinfo(np.int64).max]
        survives = steps < lowest_later
        gone = steps[~survives]
        steps, values = steps[survives], values[survives]
        purged = int(gone.size)
        orphaned = int(np.count_nonzero(~np.isin(gone, steps)))
    # Survivors are in step order; of a step logged twice in a row the later value wins: reverse, take the
    # first of each, and put back in step order.
    rev = steps[::-1]
    uniq, first = np.unique(rev, return_index=True)
    keep = steps.size - 1 - first
    out_values = values[keep]
    repeated = int(steps.size - uniq.size)
    finite = np.isfinite(out_values)
    return Clean(uniq[finite], out_values[finite], back, repeated, int(np.count_nonzero(~finite)),
                 int(np.count_nonzero(~has_step)), purged, orphaned)


def gaps(steps: np.ndarray, limit: int = 3) -> list[tuple[int, int]]:
    """Spacings of logged steps far wider than the usual one: ``(from, to)`` for the first ``limit``."""
    if steps.size < 3:
        return []
    spacing = np.diff(steps)
    usual = max(float(np.median(spacing)), 1.0)
    wide = np.flatnonzero(spacing > GAP_FACTOR * usual)
    return [(int(steps[i]), int(steps[i + 1])) for i in wide[:limit]]


def _spans(run: RunLog) -> dict[str, tuple[int, int]]:
    """First and last step of each key logged at two steps or more (a key logged once, such as a config value
    at step 0, says nothing about where a log starts)."""
    out = {}
    for key, series in run.series.items():
        steps = series.steps[np.isfinite(series.steps)]
        if np.unique(steps).size >= 2:
            out[key] = (int(steps.min()), int(steps.max()))
    return out


def _not_a_restart(earlier: tuple[int, int], later: tuple[int, int]) -> str | None:
    """Why a later log of a key cannot be a restart of the earlier one (None: it can). A job resumes from a
    checkpoint after its first step and repeats only the stretch since that checkpoint."""
    (a0, a1), (b0, b1) = earlier, later
    if b0 <= a0:
        return f"one logs steps {b0}..{b1}, starting at or before the first step of the other ({a0}..{a1})"
    if a1 - b0 > MAX_RESTART_OVERLAP * (a1 - a0):
        return (f"one logs steps {b0}..{b1}, over more than half of the other ({a0}..{a1}), far more than a "
                f"restart repeats")
    return None


def _conflict(parts: list[RunLog]) -> str | None:
    """Why ``parts`` (in logging order) are not one restarted run, or None. Only keys logged by both sides
    are compared: a log of other keys (the LR chart's export beside the loss chart's) is the same run's."""
    spans = _spans(parts[0])
    for part in parts[1:]:
        later = _spans(part)
        for key in [k for k in later if k in spans]:  # in logging order, so the message is reproducible
            reason = _not_a_restart(spans[key], later[key])
            if reason:
                return f"{show_name(key)}: {reason}"
        for key, (b0, b1) in later.items():  # the restart purges the earlier values from its first step on
            spans[key] = (spans[key][0], b1) if key in spans else (b0, b1)
    return None


def _stitch(name: str, parts: list[RunLog]) -> RunLog:
    keys = list(dict.fromkeys(k for p in parts for k in p.series))
    series = {k: Series.concat([p.series[k] for p in parts if k in p.series]) for k in keys}
    meta: dict[str, float] = {}
    for part in parts:
        for k, v in part.meta.items():
            meta.setdefault(k, v)
    origins = list(dict.fromkeys(p.origin for p in parts))
    origin = origins[0] if len(origins) == 1 else " + ".join(origins)
    return RunLog(name, origin, series, meta, [n for p in parts for n in p.notes])


def merge_same_name(runs: list[RunLog]) -> tuple[list[RunLog], list[str]]:
    """Runs that share a name (a restarted job logged as a new run, or a log in several files) as one run:
    their values concatenated in the order given, so that a restart purges what it logs again. Logs of one
    name that overlap far more than a restart would are kept apart as ``NAME#RUN_ID`` (a warning), or
    refused when they have no run id."""
    groups: dict[str, list[RunLog]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    merged, notes = [], []
    for name, parts in groups.items():
        if len(parts) == 1:
            merged.append(parts[0])
            continue
        reason = _conflict(parts)
        if reason is None:
            merged.append(_stitch(name, parts))
            notes.append(f"run {show_name(name)}: {len(parts)} logs share this name and were stitched in order "
                         f"(each restart replaces what the earlier log holds from its first step on)")
            continue
        ids = [p.run_id for p in parts]
        if None in ids or len(set(ids)) < len(ids):
            origins = show_names(list(dict.fromkeys(p.origin for p in parts))[:4])
            raise DataError(f"{origins}: {len(parts)} logs of run {show_name(name)} are not one restarted run "
                            f"({reason}), and no run id tells them apart; import them separately or give each its "
                            f"own name (TensorBoard: give the folder above both, so each is named by its path)")
        apart = [label(name, run_id) for run_id in ids]
        merged += [replace(part, name=new_name) for part, new_name in zip(parts, apart)]
        notes.append(f"warning: run {show_name(name)}: {len(parts)} runs share this name but are not one restarted "
                     f"run ({reason}): kept apart as {show_names(apart)}; if one resumed another, stitch it with "
                     f"branch_of={{{apart[-1]!r}: {apart[0]!r}}}")
    return merged, notes
