"""From what the readers found to one curve table: ``run, step, loss`` (+ ``lr``, ``tokens``, ``flops``) and
per-run metadata, in the layout :func:`scalefit.curves.load_curves` reads.

Per run: the loss, LR, tokens and FLOPs keys are chosen (given, or by alias), each series is cleaned
(a restart purges what was logged before it from its step on; of a repeated step the later value wins), losses before ``min_step`` are dropped, a branch is
stitched onto the run it branched from, and the LR is made dense. When the LR is known, the table holds
one row per step 0..T with the LR (loss empty where none was logged: curve laws need the LR at every step);
otherwise one row per logged loss, and ``fit`` takes the schedule from ``schedules``/``lr_table``.

An LR logged sparsely (every 50 steps) is filled in by linear interpolation between the logged values,
extended linearly back to step 0 from the first two (clipped at 0: a linear warm-up from 0 comes back
exactly), and held after the last; a jump between two flat stretches (step decay, a two-stage schedule)
stays a jump, placed at the first step logged with the new value. An LR whose first value comes long after step 0 is refused: what came
before is unknown (a branch: name the run it branched from).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd

from ..data import LOSS_UNITS, PARAMS_CONVENTIONS
from ..errors import DataError, option_error
from ..tables import show_name, show_names
from . import keys as K
from .series import Clean, RunLog, clean, gaps, merge_same_name

META_COLUMNS = ("params", "batch_tokens", "seq_len")
NO_LR = "none"


@dataclass
class Imported:
    """The table, what was done to build it (``notes``, one line each), and one summary per run."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the user should look at (disagreeing step keys)
    runs: list[dict] = field(default_factory=list)
    loss_unit: str = "nats"

    def summary(self) -> dict:
        return {"rows": int(len(self.frame)), "runs": self.runs, "loss_unit": self.loss_unit,
                "columns": [str(c) for c in self.frame.columns], "notes": list(self.notes),
                "warnings": list(self.warnings)}


WARNING = "warning: "


class _Notes:
    """Notes grouped by message, so ten runs interpolated alike give one line naming the ten runs; a message
    starting with ``warning: `` is a warning."""

    def __init__(self):
        self.lines: dict[str, list[str]] = {}

    def add(self, message: str, run: str | None = None) -> None:
        self.lines.setdefault(message, [])
        if run is not None:
            self.lines[message].append(run)

    def render(self) -> tuple[list[str], list[str]]:
        """(notes, warnings)."""
        notes, warnings = [], []
        for message, runs in self.lines.items():
            text = message
            if runs:
                shown = show_names(runs[:8]) + (f" and {len(runs) - 8} more" if len(runs) > 8 else "")
                text = f"{message} (run{'s' if len(runs) > 1 else ''} {shown})"
            if text.startswith(WARNING):
                warnings.append(text[len(WARNING):])
            else:
                notes.append(text)
        return notes, warnings


def _choose(run: RunLog, role: str, given: str | None, notes: _Notes) -> str | None:
    """The key of ``role`` in ``run``: the one given (it must exist), else the first alias the run logs."""
    if given is not None:
        if given in run.series:
            return given
        by_norm = {K.normalise(k): k for k in run.series}
        if K.normalise(given) in by_norm:
            return by_norm[K.normalise(given)]
        raise DataError(f"{run.origin}: run {show_name(run.name)} has no key {show_name(given)} ({role}={given!r}); "
                        f"its keys are: {show_names(sorted(run.series)[:30])}", options=(role,))
    key, others = K.find_key(role, run.series)
    if key is None:
        return None
    also = f" (also logged: {show_names(others)}; choose with {role}='KEY')" if others else ""
    notes.add(f"{role}: {show_name(key)}{also}", run.name)
    return key


def _check_names(runs: list[RunLog], branch_of: Mapping[str, str]) -> list[str]:
    """Branches in an order where each parent is complete before its children are stitched."""
    names = {r.name for r in runs}
    for child, parent in branch_of.items():
        for name in (child, parent):
            if name not in names:
                raise option_error("branch_of", {child: parent}, f"no run {show_name(name)} was imported; runs "
                                   f"are: {show_names(sorted(names)[:20])}")
        if child == parent:
            raise option_error("branch_of", {child: parent}, "a run cannot branch off itself")
    order, seen = [], set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise option_error("branch_of", dict(branch_of), f"the branches form a loop: {' -> '.join(path + (name,))}")
        if name in seen:
            return
        if name in branch_of:
            visit(branch_of[name], path + (name,))
        seen.add(name)
        order.append(name)

    for child in branch_of:
        visit(child, ())
    return [n for n in order if n in branch_of]


def dense_lr(lr: Clean, last_step: int, run: str, origin: str, notes: _Notes) -> np.ndarray:
    """The LR at every step 0..``last_step`` from the logged values (see the module docstring)."""
    steps, values = lr.steps, lr.values
    if steps.size == 0:
        raise DataError(f"{origin}: run {show_name(run)}: the LR key holds no finite value")
    n = max(int(last_step), int(steps[-1])) + 1
    if steps.size == n and steps[0] == 0:
        return values.copy()
    if steps.size == 1:
        notes.add("LR logged once: taken as constant", run)
        return np.full(n, values[0])
    usual = float(np.median(np.diff(steps)))
    if steps[0] > 2 * usual + 1:
        raise DataError(f"{origin}: run {show_name(run)}: the LR is first logged at step {int(steps[0])}, long after "
                        f"step 0 (it is logged every ~{usual:.0f} steps), so the LR before is unknown; if this run "
                        f"branched off another, name it with branch_of={{{run!r}: 'PARENT'}}, or leave the LR out "
                        f"with lr='none' and give the schedule when fitting", options=("branch_of", "lr"))
    if steps[0] > 0:
        slope = (values[1] - values[0]) / (steps[1] - steps[0])
        start = float(np.clip(values[0] - slope * steps[0], 0.0, max(values[0], values[1])))
        steps, values = np.r_[0, steps], np.r_[start, values]
        notes.add("LR extended back to step 0 along its first two logged values", run)
    if steps.size < n:
        every = f"every ~{usual:.0f} steps" if usual > 1 else "with gaps"
        notes.add(f"LR logged {every}: filled in by linear interpolation between logged values", run)
    if steps[-1] < n - 1:
        notes.add("LR held at its last logged value after its last logged step", run)
    eta = np.interp(np.arange(n, dtype=float), steps.astype(float), values)
    # A jump between two flat stretches is a step schedule (step decay, two-stage): keep it a step, at the
    # first step logged with the new value, rather than a ramp over the logging interval.
    v = values
    jumps = [i for i in range(1, v.size - 2) if v[i] != v[i + 1] and v[i - 1] == v[i] and v[i + 1] == v[i + 2]
             and steps[i + 1] - steps[i] > 1]
    for i in jumps:
        eta[steps[i]:steps[i + 1]] = v[i]
    if jumps:
        notes.add(f"LR steps between flat stretches kept as steps (at the first step logged with the new value, "
                  f"up to {int(usual)} step(s) late)", run)
    return eta


def _loss_unit(chosen: dict[str, str], runs: dict[str, RunLog], loss_unit: str | None, notes: _Notes) -> str:
    said = {name: K.loss_unit_of(key) for name, key in chosen.items()}
    bits = [n for n, u in said.items() if u == "bits"]
    other = [n for n, u in said.items() if u != "bits"]
    if bits and other:
        a, b = bits[0], other[0]
        raise DataError(f"{runs[a].origin}: mixed loss units: run {show_name(a)} logs {show_name(chosen[a])} "
                        f"(bits) but run {show_name(b)} logs {show_name(chosen[b])} (nats); import them separately, "
                        f"or choose one key with loss='KEY'", options=("loss",))
    if loss_unit is not None:
        if loss_unit not in LOSS_UNITS:
            raise option_error("loss_unit", loss_unit, f"use one of {', '.join(LOSS_UNITS)}")
        if bits and loss_unit != "bits":
            raise option_error("loss_unit", loss_unit, f"run {show_name(bits[0])} logs {show_name(chosen[bits[0]])}, "
                               f"a loss in bits")
        return loss_unit
    if bits:
        notes.add("loss unit: bits (the loss key says so)")
        return "bits"
    notes.add("loss unit: nats assumed (cross-entropy in natural log, as PyTorch and JAX compute it); "
              "pass loss_unit='bits' if the logs are in bits")
    return "nats"


def assemble(runs: list[RunLog], *, kind: str, loss: str | None = None, lr: str | None = None,
             tokens: str | None = None, flops: str | None = None, min_step: int | None = None,
             branch_of: Mapping[str, str] | None = None, loss_unit: str | None = None,
             params_convention: str | None = None, reader_notes: list[str] | None = None) -> Imported:
    """One curve table from the runs a reader found (see the module docstring)."""
    if not runs:
        raise DataError(f"{kind}: no runs found")
    if params_convention is not None and params_convention not in PARAMS_CONVENTIONS:
        raise option_error("params_convention", params_convention, f"use one of {', '.join(PARAMS_CONVENTIONS)}")
    if min_step is not None and (min_step < 0 or min_step != int(min_step)):
        raise option_error("min_step", min_step, "use a whole number of steps, 0 or more")
    notes = _Notes()
    for line in reader_notes or []:
        notes.add(line)
    runs, stitched = merge_same_name(runs)
    for line in stitched:
        notes.add(line)
    by_name = {r.name: r for r in runs}
    branch_of = dict(branch_of or {})
    order = _check_names(runs, branch_of)

    roles = {"loss": loss, "lr": None if lr == NO_LR else lr, "tokens": tokens, "flops": flops}
    chosen: dict[str, dict[str, str]] = {}
    cleaned: dict[str, dict[str, Clean]] = {}
    for run in runs:
        for line in run.notes:
            notes.add(line, run.name)
        picked = {}
        for role, given in roles.items():
            if role == "lr" and lr == NO_LR:
                continue
            key = _choose(run, role, given, notes)
            if key is not None:
                picked[role] = key
        if "loss" not in picked:
            raise DataError(f"{run.origin}: run {show_name(run.name)} logs no loss under a known name; its keys are: "
                            f"{show_names(sorted(run.series)[:30])}; name it with loss='KEY'", options=("loss",))
        chosen[run.name] = picked
        cleaned[run.name] = {role: clean(run.series[key], run, key) for role, key in picked.items()}

    with_lr = [n for n in chosen if "lr" in chosen[n]]
    if with_lr and len(with_lr) < len(chosen):
        missing = next(n for n in chosen if "lr" not in chosen[n])
        raise DataError(f"{by_name[missing].origin}: run {show_name(missing)} logs no LR under a known name while "
                        f"run {show_name(with_lr[0])} logs {show_name(chosen[with_lr[0]]['lr'])}; name the LR key "
                        f"with lr='KEY', or leave the LR out with lr='none' and give schedules when fitting",
                        options=("lr",))
    unit = _loss_unit({n: c["loss"] for n, c in chosen.items()}, by_name, loss_unit, notes)

    # A branch gets its parent's values before its own first step (the parent is stitched first if it is
    # itself a branch).
    for child in order:
        parent = branch_of[child]
        own = cleaned[child]
        start = min((int(c.steps[0]) for c in own.values() if c.steps.size), default=0)
        for role, series in list(own.items()):
            if role not in cleaned[parent]:
                continue
            head = cleaned[parent][role].before(start)
            own[role] = replace(series, steps=np.r_[head.steps, series.steps],
                                values=np.r_[head.values, series.values])
        notes.add(f"run {show_name(child)}: stitched onto run {show_name(parent)} (steps 0..{start - 1} from "
                  f"{show_name(parent)}, {start} on from {show_name(child)})")

    frames, summaries = [], []
    float32 = []
    for run in runs:
        name, parts = run.name, cleaned[run.name]
        loss_series = parts["loss"]
        if min_step is not None:
            loss_series = loss_series.at_least(int(min_step))
        if loss_series.steps.size == 0:
            after = f" at or after step {min_step}" if min_step is not None else ""
            raise DataError(f"{run.origin}: run {show_name(name)}: no finite loss under "
                            f"{show_name(chosen[name]['loss'])}{after}", options=("min_step",) if after else ())
        if min_step is None and loss_series.steps[0] == 0:
            notes.add("a loss is logged at step 0, before any update (an initial eval?): kept; "
                      "pass min_step=1 to drop it", name)
        for role, series in parts.items():
            if series.restarts:
                unlogged = (f"; {series.orphaned} of them at steps not logged again: a tail the resumed run did "
                            f"not reach, or another logging interval") if series.orphaned else ""
                notes.add(f"{role}: the step went back {series.restarts} time(s) (restarts); {series.purged} value(s) "
                          f"purged (logged before a restart, at or after the step it resumed from{unlogged})", name)
            if series.repeated:
                notes.add(f"{role}: {series.repeated} repeated step(s) resolved, the later value kept", name)
            if series.dropped_nan:
                notes.add(f"{role}: {series.dropped_nan} NaN or infinite value(s) dropped", name)
            if series.no_step:
                notes.add(f"{role}: {series.no_step} value(s) logged without a step dropped", name)
        for lo, hi in gaps(loss_series.steps):
            notes.add(f"gap: no loss logged between steps {lo} and {hi}", name)
        float32.append(bool(np.all(loss_series.values == loss_series.values.astype(np.float32))))

        last = int(loss_series.steps[-1])
        if "lr" in parts:
            eta = dense_lr(parts["lr"], last, name, run.origin, notes)
            steps = np.arange(eta.size, dtype=np.int64)
            frame = pd.DataFrame({"run": name, "step": steps, "loss": np.nan, "lr": eta})
            frame.loc[loss_series.steps, "loss"] = loss_series.values
        else:
            steps = loss_series.steps
            frame = pd.DataFrame({"run": name, "step": steps, "loss": loss_series.values})
        for role in ("tokens", "flops"):
            if role in parts:
                s = parts[role]
                frame[role] = pd.Series(s.values, index=s.steps).reindex(steps).to_numpy()
        for key in META_COLUMNS:
            frame[key] = float(run.meta[key]) if key in run.meta else np.nan
        frame["source"] = f"{kind}:{run.origin}"
        frames.append(frame)
        summaries.append({"run": name, "origin": run.origin, "points": int(loss_series.steps.size),
                          "first_step": int(loss_series.steps[0]), "last_step": last,
                          "keys": dict(chosen[name]), "branch_of": branch_of.get(name),
                          "restarts": int(parts["loss"].restarts), "purged": int(parts["loss"].purged),
                          "meta": dict(run.meta)})
    if all(float32):
        notes.add("the losses are float32 values (about 7 significant digits), as the source stores them")
    table = pd.concat(frames, ignore_index=True)
    for key in META_COLUMNS:
        if table[key].isna().all():
            table = table.drop(columns=key)
    table["loss_unit"] = unit
    if params_convention is not None:
        table["params_convention"] = params_convention
    rendered, warned = notes.render()
    return Imported(table, rendered, warned, summaries, unit)
