"""Loss-curve tables: one row per (run, step), plus each run's LR at *every* step.

Curve laws (LR-annealing, multi-power) read the whole LR sequence of a run, warm-up included, while
losses may be logged sparsely and unevenly. The LR sequence of a run comes from, in this order:

1. ``schedules={run: spec}`` (the run ``*`` applies to every run);
2. ``lr_table``: a dense table (path or DataFrame) with ``run, step, lr``;
3. an ``lr`` column in the curve table itself, when every step 0..max is present (rows whose loss is
   empty are taken as LR-only rows);
4. a ``schedule`` column holding a spec string (constant within a run).

When two sources are given, they must agree (relative 1e-6) wherever both have a value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from .data import PLAUSIBLE, Dataset, format_value, from_frame, load_runs
from .errors import DataError, option_error
from .law import CurveLaw, check_points  # noqa: F401  (check_points: re-exported, the law's check)
from .limits import enforce
from .tables import read_table, release_arrow_memory, show_name

_AGREE_RTOL = 1e-6
# No optimizer trains at a learning rate this high (LARS at huge batch peaks near 30); above it a value is a
# unit or column mistake, and the LR sums of the curve laws would overflow long before 1e308.
MAX_LR = 1e3
# Steps are whole numbers held exactly in float64 (and in int64 without wrapping) below 2**53.
MAX_STEP = 2**53


def named_spec(item) -> tuple[str | None, str]:
    """``"NAME=SPEC"`` -> (NAME, SPEC); a bare spec (``"cosine:peak=3e-4,..."``: its first ``=`` is inside
    the spec) -> (None, the spec). Names and specs come back as written (not stripped)."""
    name, sep, spec = str(item).partition("=")
    return (None, str(item)) if not sep or ":" in name else (name, spec)


def parse_schedule_options(items) -> dict[str, str]:
    """``["runA=cosine:peak=...", ...]`` (as the CLI takes them) -> ``{run: spec}``, for ``schedules``."""
    out: dict[str, str] = {}
    for item in items or []:
        run, spec = named_spec(item)
        run = "*" if run is None else run  # a bare spec (no RUN=) applies to every run
        run, spec = run.strip(), spec.strip()
        if not run or not spec:
            raise option_error("schedules", str(item), "expected RUN=SPEC, e.g. "
                                                       "schedules={'run1': 'cosine:peak=3e-4,steps=24000'}")
        from .schedule import parse_schedule  # here: a point fit never needs the schedule package (11 ms)

        parse_schedule(spec)  # fail early with the spec's own message
        out[run] = spec
    return out


def _dense_from_rows(steps: np.ndarray, lr: np.ndarray, where: str) -> np.ndarray:
    """LR values at steps -> dense array indexed by step; every step 0..max must be present."""
    order = np.argsort(steps, kind="stable")
    steps, lr = steps[order], lr[order]
    if steps.size and (steps[0] != 0 or np.any(np.diff(steps) != 1)):
        have = np.unique(steps).size
        raise DataError(
            f"{where}: the LR is known at {have} of the {int(steps.max()) + 1} steps 0..{int(steps.max())}; "
            f"curve laws need the LR at every step (give lr_table=FILE with run,step,lr or "
            f"schedules={{'RUN': SPEC}})", options=("lr_table", "schedules")
        )
    return lr.astype(float)


def _check_lr(eta: np.ndarray, where: str) -> None:
    bad = np.flatnonzero(~np.isfinite(eta))
    if bad.size:
        raise DataError(f"{where}: LR is NaN or infinite at step {int(bad[0])} ({bad.size} step(s)); fix the LR source",
                        options=_named(where))
    neg = np.flatnonzero(eta < 0)
    if neg.size:
        raise DataError(f"{where}: LR is negative ({eta[neg[0]]:.3g}) at step {int(neg[0])}; LRs must be >= 0",
                        options=_named(where))
    big = np.flatnonzero(eta > MAX_LR)
    if big.size:
        raise DataError(f"{where}: LR is {eta[big[0]]:.6g} at step {int(big[0])} ({big.size} step(s)), above "
                        f"{MAX_LR:g}, which no optimizer trains at; check the LR column or spec", options=_named(where))


def _named(*labels: str) -> tuple[str, ...]:
    """``("lr_table",)`` when a label of an LR source names the LR table parameter (``lr_table run 'a'``)."""
    return ("lr_table",) if any("lr_table" in label for label in labels) else ()


def _whole_steps(steps: np.ndarray, where: str, column: str, runs=None) -> np.ndarray:
    """Step values as int64, once each is a whole number in [0, 2**53) (larger ones wrap in int64).
    ``runs`` (an array, or a Series read by position) names the run of a bad row; only that one row is read."""
    bad = ~np.isfinite(steps) | (steps < 0) | (steps != np.round(steps)) | (steps >= MAX_STEP)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = None if runs is None else (runs.iloc[i] if hasattr(runs, "iloc") else runs[i])
        run = f", run {show_name(name)}" if runs is not None else ""
        why = "is too large for a step count" if np.isfinite(steps[i]) and steps[i] >= MAX_STEP else \
            "is not a whole non-negative number"
        raise DataError(f"{where}: column {show_name(column)} row {i + 1}{run}: step {format_value(steps[i])} {why}")
    return steps.astype(np.int64)


def _agree(a: np.ndarray, b: np.ndarray, steps: np.ndarray, what_a: str, what_b: str, run: str) -> None:
    n = min(a.size, b.size)
    steps = steps[steps < n]
    x, y = a[steps], b[steps]
    bad = np.flatnonzero(np.abs(x - y) > _AGREE_RTOL * np.maximum(np.abs(x), np.abs(y)) + 1e-300)
    if bad.size:
        s = int(steps[bad[0]])
        raise DataError(
            f"run '{run}': {what_a} disagrees with {what_b} at step {s} ({x[bad[0]]:.6g} vs {y[bad[0]]:.6g}, "
            f"{bad.size} step(s)); fix the spec or drop one LR source", options=_named(what_a, what_b)
        )


def read_lr_table(lr_table, runs: list[str]) -> dict[str, np.ndarray]:
    import pandas as pd

    source = str(lr_table) if not isinstance(lr_table, pd.DataFrame) else "<lr table>"
    frame = lr_table if isinstance(lr_table, pd.DataFrame) else read_table(lr_table, what="LR table")
    ds = from_frame(frame, source=source, required=["step"])  # lr values are checked below, by step
    if "lr" not in ds.frame.columns:
        raise DataError(f"{source}: no lr column; an LR table needs run, step and lr columns")
    if "run" not in ds.columns:
        if len(runs) != 1:
            raise DataError(f"{source}: has no run column but the curve table has {len(runs)} runs; add a run column")
        ds.frame["run"] = runs[0]
    out = {}
    _whole_steps(ds.frame["step"].to_numpy(float), source, ds.columns.get("step", "step"), ds.frame["run"].to_numpy())
    for run, grp in ds.frame.groupby("run", sort=False):
        steps = grp["step"].to_numpy()
        if np.unique(steps).size != steps.size:
            raise DataError(f"{source}: run {show_name(run)} lists a step twice")
        eta = _dense_from_rows(steps.astype(np.int64), grp["lr"].to_numpy(float), f"{source}: run {show_name(run)}")
        _check_lr(eta, f"{source}: run {show_name(run)}")
        out[str(run)] = eta
    return out


def load_curves(
    path_or_frame,
    *,
    columns: Mapping[str, str] | None = None,
    lr_table=None,
    schedules: Mapping[str, str] | None = None,
    source: str | None = None,
    drop_invalid: bool = False,
    loss_unit: str | None = None,
) -> Dataset:
    """Read and validate a curve table; returns a Dataset sorted by (run, step) with ``.lr`` filled.

    ``columns`` maps roles to column names (``{"loss": "val/loss"}``), ``schedules`` maps run names
    (or ``"*"``) to schedule specs. Errors are one-line DataErrors naming the file, run and step.
    """
    import pandas as pd

    if isinstance(path_or_frame, pd.DataFrame):
        frame = path_or_frame
        source = source or "<frame>"
    else:
        frame = read_table(path_or_frame, what="curve table")
        source = source or str(path_or_frame)
    columns = dict(columns or {})
    if "schedule" not in columns and "schedule" in frame.columns and columns.get("run") != "schedule":
        columns["schedule"] = "schedule"
    # Validate step (and lr) up front; losses are checked here because rows without a loss may carry
    # only an LR (dense LR, sparse loss in one table).
    base = from_frame(frame, source=source, columns=columns, required=["step"], loss_unit=loss_unit,
                      derive_compute=False)
    f = base.frame
    if "loss" not in f.columns:
        raise DataError(f"{source}: missing column for 'loss'; columns are: {', '.join(map(str, frame.columns))} "
                        f"(map with columns={{'loss': 'NAME'}})", options=("columns",))
    del frame  # the table as read: base.frame is the copy that goes on (one copy fewer at the peak)
    # Only f holds the table from here, so that dropping the LR-only rows below frees the unfiltered copy.
    roles, units, attrs, dropped = dict(base.columns), dict(base.units), dict(f.attrs), list(base.dropped)
    del base
    if "run" not in roles:  # one curve without a run column: name it after the file
        f["run"] = Path(source).stem if not source.startswith("<") else "curve"
    # The run column goes in as it is: one Python string per row (1M rows: 60 MB) only to name a bad row
    # would be the load's peak.
    run_text = f["run"].astype(str)
    f["step"] = _whole_steps(f["step"].to_numpy(float), source, roles["step"], run_text)
    runs = [str(r) for r in pd.unique(run_text)]  # in order of first appearance
    has_lr_col = "lr" in f.columns

    # Losses: NaN rows are LR-only when an lr column exists; non-positive losses are errors.
    loss = f["loss"].to_numpy(float)
    too_big = np.isfinite(loss) & (loss > PLAUSIBLE["loss"][1])
    bad_loss = np.isfinite(loss) & (loss <= 0) | np.isinf(loss) | (np.isnan(loss) & (not has_lr_col)) | too_big
    if bad_loss.any():
        rows = np.flatnonzero(bad_loss)
        shown = ", ".join(str(r + 1) for r in rows[:5]) + (" ..." if rows.size > 5 else "")
        col = roles.get("loss", "loss")
        r = rows[0]
        if not drop_invalid:
            raise DataError(f"{source}: column {show_name(col)} (loss) is NaN, infinite, zero, negative or above "
                            f"{PLAUSIBLE['loss'][1]:g} in {rows.size} row(s): {shown} (row {r + 1}, run "
                            f"{show_name(f['run'].iloc[r])}, step {int(f['step'].iloc[r])}: {format_value(loss[r])}); "
                            f"fix the data, or pass drop_invalid=True to drop them", options=("drop_invalid",))
        dropped.append(f"dropped {rows.size} row(s) where {show_name(col)} is invalid: rows {shown}")
        loss = np.where(too_big, np.nan, loss)
    if has_lr_col:
        lr_col = f["lr"].to_numpy(float)
        lr_bad = ~np.isfinite(lr_col) | (lr_col < 0) | (lr_col > MAX_LR)
        if lr_bad.any():
            r = int(np.flatnonzero(lr_bad)[0])
            why = "is NaN or infinite" if not np.isfinite(lr_col[r]) else "is negative" if lr_col[r] < 0 else \
                f"is above {MAX_LR:g}, which no optimizer trains at"
            raise DataError(f"{source}: column {show_name(roles['lr'])} (lr) {why} in row {r + 1} (run "
                            f"{show_name(f['run'].iloc[r])}, step {int(f['step'].iloc[r])}: {format_value(lr_col[r])}); "
                            f"LRs must be >= 0 and at most {MAX_LR:g}")

    # Steps strictly increasing within each run, in file order.
    for run, grp in f.groupby("run", sort=False):
        d = np.diff(grp["step"].to_numpy())
        if np.any(d <= 0):
            i = int(np.flatnonzero(d <= 0)[0])
            s0, s1 = grp["step"].iloc[i], grp["step"].iloc[i + 1]
            raise DataError(f"{source}: run '{run}': steps are not increasing ({s0} then {s1} at row "
                            f"{grp.index[i + 1] + 1}); sort the table by run and step and remove duplicates")

    # ---- the LR sequences
    specs: dict[str, str] = {}
    for key in schedules or {}:
        if key != "*" and key not in runs:
            raise DataError(f"schedules={{{key!r}: ...}}: no run '{key}' in {source}; runs are: {', '.join(runs[:10])}",
                            options=("schedules",))
    if "schedule" in f.columns:
        for run, grp in f.groupby("run", sort=False):
            values = grp["schedule"].dropna().astype(str).unique()
            if len(values) > 1:
                raise DataError(f"{source}: run '{run}' has {len(values)} different schedule strings; use one per run")
            # Values such as 'cosine_24000' are labels, not specs: use them only if they parse.
            if len(values) == 1 and ":" in values[0]:
                specs[str(run)] = values[0]
    for run in runs:
        if run in (schedules or {}):
            specs[run] = schedules[run]
        elif "*" in (schedules or {}):
            specs[run] = schedules["*"]
    table = read_lr_table(lr_table, runs) if lr_table is not None else {}
    missing_in_table = [r for r in runs if lr_table is not None and r not in table and r not in specs]
    if missing_in_table:
        raise DataError(f"{lr_table}: no LR rows for run(s) {', '.join(missing_in_table[:5])}")

    from .schedule import parse_schedule

    lrs: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    # Grouped once (a per-run mask is O(rows) each); each run's rows are taken when its turn comes (all the
    # groups at once were a second copy of the table).
    grouped = f.groupby("run", sort=False)
    keys = {str(k): k for k in grouped.groups}
    for run in runs:
        grp = grouped.get_group(keys[run])
        rsteps = grp["step"].to_numpy()
        candidates: list[tuple[str, np.ndarray]] = []
        if run in specs:
            candidates.append((f"schedule '{specs[run]}'", parse_schedule(specs[run]).lr()))
        if run in table:
            candidates.append((f"lr_table run '{run}'", table[run]))
        if has_lr_col:
            col = grp["lr"].to_numpy(float)
            if rsteps[0] == 0 and np.all(np.diff(rsteps) == 1):
                candidates.append(("the lr column", col))
            elif not candidates:
                _dense_from_rows(rsteps, col, f"{source}: run '{run}'")  # raises with the how-to-fix
            else:  # sparse lr column: still check it against the dense source
                dense = candidates[0][1]
                enforce("memory_bytes", 8 * (int(rsteps.max()) + 1), f"{source}: run {show_name(run)} (steps up to "
                        f"{int(rsteps.max())})")
                probe = np.full(max(int(rsteps.max()) + 1, dense.size), np.nan)
                probe[rsteps] = col
                ok = rsteps[rsteps < dense.size]
                _agree(dense, probe, ok, candidates[0][0], "the lr column", run)
        if not candidates:
            label = grp["schedule"].iloc[0] if "schedule" in grp.columns else None
            hint = f" (its schedule column says '{label}', which is a label, not a spec)" if label else ""
            raise DataError(f"{source}: run '{run}' has no LR sequence{hint}; give an lr column with every step, "
                            f"lr_table=FILE, or schedules={{{run!r}: SPEC}}", options=("lr_table", "schedules"))
        name, eta = candidates[0]
        for other, eta2 in candidates[1:]:
            _agree(eta, eta2, np.arange(min(eta.size, eta2.size)), name, other, run)
        _check_lr(eta, f"{source}: run '{run}' ({name})")
        if eta.size <= rsteps.max():
            raise DataError(f"{source}: run '{run}': losses go to step {int(rsteps.max())} but {name} covers only "
                            f"steps 0..{eta.size - 1}; give a schedule with steps >= {int(rsteps.max()) + 1}",
                            options=_named(name))
        lrs[run] = np.ascontiguousarray(eta, dtype=float)
        origin[run] = name

    # Keep only rows with a loss (LR-only rows have done their job), sorted by run then step.
    keep = np.isfinite(loss) & (loss > 0)
    # The groups' row indices, the names as text and views of the unfiltered columns: not needed past here.
    del grouped, run_text, loss
    if has_lr_col:
        del lr_col
    if not keep.all():
        f = f.loc[keep]
    if len(f) == 0:
        raise DataError(f"{source}: no rows with a valid loss")
    present = set(f["run"].unique())
    lost = [r for r in runs if r not in present]
    lrs = {r: v for r, v in lrs.items() if r not in lost}
    # A table already in (run, step) order skips the sort's copy: each run's rows together, runs in sorted
    # order, steps rising within each run (checked above). Judged on run codes, not one string per row.
    codes, names = pd.factorize(f["run"])
    try:
        ordered = bool(np.all(np.diff(codes) >= 0)) and list(names) == sorted(names)
    except TypeError:  # run ids of mixed types: let the sort decide
        ordered = False
    f = (f if ordered else f.sort_values(["run", "step"], kind="stable")).reset_index(drop=True)
    f.attrs = attrs
    f.attrs["lr_source"] = {r: origin[r] for r in lrs}
    release_arrow_memory()  # the run column's sorting and checks above allocated in Arrow's pool
    return Dataset(f, source, roles, units, dropped, lrs)


def example_curves(specs: Mapping[str, str], every: int = 50, start: int | None = None, source: str = "<example>") -> Dataset:
    """A small curve Dataset (loss = 1 placeholders) logged every ``every`` steps of each named schedule:
    typical inputs for the law conformance suite and docs."""
    import pandas as pd

    from .schedule import parse_schedule

    rows = []
    for run, spec in specs.items():
        s = parse_schedule(spec)
        first = start if start is not None else max(s.warmup, every)
        steps = np.unique(np.r_[np.arange(first, s.steps, every), s.steps - 1])
        rows.append(pd.DataFrame({"run": run, "step": steps, "loss": 1.0}))
    return load_curves(pd.concat(rows, ignore_index=True), schedules=dict(specs), source=source)


def load_for(law, path_or_frame, *, columns: Mapping[str, str] | None = None, lr_table=None, schedules=None,
             drop_invalid: bool = False, loss_unit: str | None = None, params_convention: str | None = None,
             source: str | None = None) -> Dataset:
    """The table ``law`` needs from a file or DataFrame: curves (run, step, loss + LR) for a curve law, one
    row per run with the law's input roles for a point law. The one place that makes this choice."""
    if isinstance(law, CurveLaw):
        return load_curves(path_or_frame, columns=columns, lr_table=lr_table, schedules=schedules,
                           drop_invalid=drop_invalid, loss_unit=loss_unit, source=source)
    if lr_table is not None or schedules:
        raise DataError("lr_table and schedules describe LR sequences: use them with a curve law "
                        "(e.g. multipower)", options=("lr_table", "schedules"))
    options = dict(columns=columns, required=[*law.inputs, law.target], loss_unit=loss_unit,
                   params_convention=params_convention, drop_invalid=drop_invalid)
    pd = sys.modules.get("pandas")  # not imported: not a DataFrame (a point fit of a CSV file never imports it)
    if pd is not None and isinstance(path_or_frame, pd.DataFrame):
        return from_frame(path_or_frame, source=source or "<memory>", **options)
    return load_runs(path_or_frame, **options)
