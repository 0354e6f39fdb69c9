"""Weights & Biases: a run's full history through the public API, a history table, or the UI's "Export CSV".

* ``ENTITY/PROJECT`` (needs ``pip install 'scalefit[wandb]'`` and network access): every run whose name
  matches ``runs`` (a regular expression), each read whole with ``Run.scan_history()`` (``Run.history()``
  returns a sample of 500 rows, so it is never used), with N and the batch size from its config/summary.
* a history table (parquet, CSV or JSONL with ``_step`` and one column per key, as ``scan_history`` rows
  or W&B's history parquet files hold them): one run, named after the file (or ``run``), or one per value
  of a ``run``/``name`` column.
* a chart's "Export CSV" (wide: a step column, then ``<run> - <key>`` columns, with ``__MIN``/``__MAX``
  columns beside them): one run per name. Where ``__MIN``/``__MAX`` differ from the value, the chart had
  averaged several logged points into one, and the file is refused with advice; where they equal it they
  are dropped.

The step: a training-step key (``trainer/global_step``, ``global_step``, ``iter``, ...) is preferred to
W&B's ``_step``, which counts log calls, not optimiser steps; when two step keys disagree the importer
warns and says which it took. Runs that share a name (a restarted job started as a new run) are stitched
in the order they were created, each restart replacing what the earlier run logged from its first step on;
runs of one name that overlap more than a restart would are kept apart as ``NAME#RUN_ID`` (``runs`` may
name either).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..tables import read_table, show_name, show_names
from . import keys as K
from .series import RunLog, Series, matches

EXPORT_SEPARATOR = " - "
_BUCKET = ("__MIN", "__MAX")
_RUN_COLUMNS = ("run", "name", "run_name", "display_name")
API_PATH = re.compile(r"^[\w.\-]+/[\w.\-]+$")


def _numeric(values) -> np.ndarray | None:
    series = pd.to_numeric(pd.Series(values), errors="coerce")
    if pd.api.types.is_bool_dtype(pd.Series(values)) or not series.notna().any():
        return None
    return series.to_numpy(dtype=float)


def table_run(name: str, origin: str, columns: dict[str, np.ndarray], step: str | None,
              meta: dict | None = None) -> RunLog:
    """A run from aligned columns (one row per log call): the step column chosen, every numeric key a series."""
    numeric = {k: v for k, v in ((k, _numeric(v)) for k, v in columns.items()) if v is not None}
    if step is not None:
        if step not in numeric:
            raise DataError(f"{origin}: run {show_name(name)} has no numeric column {show_name(step)} (for the step); "
                            f"columns are: {show_names(list(columns)[:30])}", options=("step",))
        candidates = [step]
    else:
        candidates = K.step_keys(numeric)
    if not candidates:
        raise DataError(f"{origin}: run {show_name(name)}: no step column (such as {show_names(K.STEP_ALIASES[:6])}); "
                        f"columns are: {show_names(list(columns)[:30])}; name it with step='KEY'", options=("step",))
    chosen = candidates[0]
    notes = []
    for other in [c for c in K.step_keys(numeric) if c != chosen]:
        a, b = numeric[chosen], numeric[other]
        both = np.isfinite(a) & np.isfinite(b)
        differ = both & (a != b)
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            what = " (W&B's count of log calls)" if other == K.ROW_COUNTER else ""
            notes.append(f"warning: step: {show_name(chosen)} taken as the training step; {show_name(other)}{what} "
                         f"differs from it in {int(differ.sum())} of {int(both.sum())} rows (e.g. {a[i]:g} vs "
                         f"{b[i]:g}); pass step={other!r} to use it instead")
    steps = numeric[chosen]
    series = {}
    for key, values in numeric.items():
        if key in candidates or key in K.STEP_ALIASES or key.startswith("_"):
            continue  # step counters and W&B's own _runtime/_timestamp are not metrics
        logged = np.isfinite(values)
        if logged.any():
            series[key] = Series(steps[logged], values[logged])
    return RunLog(name, origin, series, dict(meta or {}), notes)


def _run_column(frame: pd.DataFrame) -> str | None:
    return next((c for c in frame.columns if str(c).lower() in _RUN_COLUMNS), None)


def from_history(frame: pd.DataFrame, origin: str, step: str | None, run: str | None) -> list[RunLog]:
    """Runs from a history table: one per value of its run column, else one named ``run`` or after the file."""
    by = _run_column(frame) if run is None else None
    if by is None:
        name = run or Path(origin).stem
        return [table_run(name, origin, {c: frame[c].to_numpy() for c in frame.columns}, step)]
    return [table_run(str(name), origin, {c: g[c].to_numpy() for c in g.columns if c != by}, step)
            for name, g in frame.groupby(by, sort=False)]


def from_export(frame: pd.DataFrame, origin: str, step: str | None) -> tuple[list[RunLog], list[str]]:
    """Runs from a chart's "Export CSV" (see the module docstring)."""
    metric = {c: c.rpartition(EXPORT_SEPARATOR) for c in frame.columns if EXPORT_SEPARATOR in c}
    shared = [c for c in frame.columns if c not in metric]
    axis = step if step in shared else (K.step_keys(shared) or [None])[0]
    if axis is None:
        raise DataError(f"{origin}: no step column beside the '<run> - <key>' columns; columns are: "
                        f"{show_names(list(frame.columns)[:20])}", options=("step",))
    notes = []
    per_run: dict[str, dict[str, np.ndarray]] = {}
    bucketed = []
    for column, (run, _, key) in metric.items():
        base = next((key[: -len(b)] for b in _BUCKET if key.endswith(b)), None)
        if base is not None:
            value_col = f"{run}{EXPORT_SEPARATOR}{base}"
            if value_col in frame.columns:
                v, m = _numeric(frame[value_col]), _numeric(frame[column])
                if v is not None and m is not None:
                    both = np.isfinite(v) & np.isfinite(m)
                    if np.any(np.abs(v[both] - m[both]) > 1e-9 * np.abs(v[both])):
                        bucketed.append(column)
            continue
        per_run.setdefault(run, {})[key] = frame[column].to_numpy()
    if bucketed:
        raise DataError(f"{origin}: {show_name(bucketed[0])} differs from its value column: the chart averaged "
                        f"several logged points into each exported point ({len(bucketed)} such column(s)); export "
                        f"the full history instead (the run's history parquet, or ENTITY/PROJECT through the API), "
                        f"or raise the chart's point count so every step is shown")
    if any(c.endswith(_BUCKET) for c in frame.columns):
        notes.append(f"{origin}: the __MIN/__MAX columns equal their values and were dropped")
    if axis == K.ROW_COUNTER or axis == "Step":
        notes.append(f"{origin}: the chart's x-axis {show_name(axis)} is W&B's count of log calls unless the chart "
                     f"was set to another axis; a '<run> - iter' or '<run> - trainer/global_step' column is used "
                     f"instead where present")
    runs = []
    for run, keys in per_run.items():
        columns = {axis: frame[axis].to_numpy(), **keys}
        runs.append(table_run(run, origin, columns, step))
    return runs, notes


def read_wandb(sources: list[str], *, step: str | None = None, runs: str | None = None,
               run: str | None = None) -> tuple[list[RunLog], list[str]]:
    """Runs from W&B files or ``ENTITY/PROJECT`` paths (see the module docstring)."""
    found: list[RunLog] = []
    notes: list[str] = []
    for source in sources:
        path = Path(source)
        if path.exists():
            frame = read_table(path, what="W&B export")
            if any(EXPORT_SEPARATOR in str(c) for c in frame.columns):
                more, extra = from_export(frame, str(path), step)
                notes += extra
            else:
                more = from_history(frame, str(path), step, run)
            if run is not None:
                for r in more:
                    r.name = run
            found += more
        elif API_PATH.match(source):
            found += read_api(source, step=step, runs=runs)
        else:
            raise DataError(f"{source}: no such file; for the W&B API give ENTITY/PROJECT")
    notes.append(f"wandb: {len(found)} run log(s) from {len(sources)} source(s)")
    return found, notes


def _as_dict(value) -> dict:
    """A run's config or summary as a plain dict (the API's summary is a dict-like object of its own)."""
    try:
        return dict(value or {})
    except (TypeError, ValueError):
        return {}


def read_api(path: str, *, step: str | None = None, runs: str | None = None, api=None) -> list[RunLog]:
    """Every matching run of ``ENTITY/PROJECT`` through W&B's public API (``wandb.Api()``, or ``api``: an
    object with the same ``runs(path)``), each history read whole."""
    if api is None:
        try:
            import wandb
        except ImportError:
            raise DataError(f"{path}: reading runs from the W&B API needs the optional extra: "
                            f"pip install 'scalefit[wandb]' (and a W&B login)") from None
        api = wandb.Api()
    pattern = re.compile(runs) if runs else None
    try:
        listed = list(api.runs(path))
    except Exception as exc:  # the API's errors (network, auth, unknown project) come in many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: the W&B API refused the request: {first[:200]}") from None
    listed.sort(key=lambda r: str(getattr(r, "created_at", "")))  # restarts stitched oldest first
    out = []
    for api_run in listed:
        if pattern is not None and not matches(pattern, str(api_run.name), str(api_run.id)):
            continue
        rows = list(api_run.scan_history())  # every row; history() would return a sample
        frame = pd.DataFrame.from_records(rows)
        meta = K.run_metadata(_as_dict(getattr(api_run, "config", None)),
                              _as_dict(getattr(api_run, "summary_metrics", None) or getattr(api_run, "summary", None)))
        origin = f"{path}/{api_run.id}"
        if frame.empty:
            raise DataError(f"{origin}: run {show_name(api_run.name)} has no history rows")
        run_log = table_run(str(api_run.name), origin, {c: frame[c].to_numpy() for c in frame.columns}, step, meta)
        run_log.run_id = str(api_run.id)
        out.append(run_log)
    if not out:
        raise DataError(f"{path}: no run matches runs={runs!r}" if runs else f"{path}: the project has no runs",
                        options=("runs",) if runs else ())
    return out
