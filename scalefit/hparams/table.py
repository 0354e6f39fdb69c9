"""Reading a learning-rate / batch-size sweep: one row per training run, grouped into (params, tokens) cells.

Roles and the column names recognised for them (case, spaces, dashes and underscores ignored; any role can
be named with ``columns={"params": "Na"}``):

* ``params`` (N) and ``tokens`` (D): the cell a run belongs to;
* ``lr``: peak learning rate; ``batch``: batch size, in sequences or tokens (``batch_unit``);
* ``loss``: the final loss to minimise -- a smoothed final loss (``smooth loss``) is preferred when the table
  has one, as in the Step Law tables, because a single last-step loss is noisier;
* ``seq_len`` (optional): tokens per sequence; ``steps`` (optional): training steps, used only to infer the
  sequence length from tokens = steps x batch x seq_len when nothing else gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, option_error, shown

if TYPE_CHECKING:
    import pandas as pd

ROLES = ("params", "tokens", "lr", "batch", "loss", "seq_len", "steps")
REQUIRED = ("params", "tokens", "lr", "batch", "loss")
_ALIASES = {
    "params": ("params", "n", "nparams", "numparams", "parameters", "modelsize", "size"),
    "tokens": ("tokens", "d", "ntokens", "numtokens", "trainingtokens", "tokensseen"),
    "lr": ("lr", "learningrate", "peaklr", "maxlr"),
    "batch": ("batch", "bs", "batchsize", "globalbatchsize"),
    "loss": ("smoothloss", "smoothedloss", "loss", "finalloss", "valloss", "evalloss", "validationloss"),
    "seq_len": ("seqlen", "sequencelength", "contextlength", "seqlength"),
    "steps": ("steps", "ti", "iterations", "iters", "trainsteps", "trainiters"),
}
BATCH_UNITS = ("auto", "sequences", "tokens")
MIN_RUNS_PER_CELL = 3
# seq_len inferred from tokens / (steps x batch) must agree across runs to this relative tolerance
_INFER_TOL = 0.01
_COLUMNS_HINT = "name it with columns={'ROLE': 'COLUMN'}"


@dataclass
class Sweep:
    """A validated sweep: arrays over runs, the cell of each run, and where every number came from."""

    params: np.ndarray
    tokens: np.ndarray
    lr: np.ndarray
    batch_tokens: np.ndarray  # batch size in tokens (sequences x seq_len when the table counts sequences)
    loss: np.ndarray
    cell: np.ndarray  # index into cell_params / cell_tokens for every run
    cell_params: np.ndarray
    cell_tokens: np.ndarray
    source: str
    columns: dict[str, str]
    batch_unit: str  # what the table's batch column counts: "sequences" or "tokens"
    seq_len: float | None  # one sequence length for the whole table, when there is one
    seq_len_from: str  # "option", "column", "inferred from ..." or "unknown"
    notes: list[str] = field(default_factory=list)

    @property
    def n_runs(self) -> int:
        return int(self.lr.size)

    @property
    def n_cells(self) -> int:
        return int(self.cell_params.size)

    def cell_rows(self) -> list[np.ndarray]:
        """Row indices of each cell, in cell order."""
        order = np.argsort(self.cell, kind="stable")
        bounds = np.searchsorted(self.cell[order], np.arange(self.n_cells + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(self.n_cells)]


def resolve_columns(frame: pd.DataFrame, columns: dict[str, str] | None, source: str) -> dict[str, str]:
    """role -> column present in ``frame``: given names first, then the aliases above (first alias wins)."""
    from ..tables import normalise_name, show_name, show_names

    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise option_error("columns", {unknown[0]: columns[unknown[0]]},
                           f"unknown role {unknown[0]!r}; roles are: {', '.join(ROLES)}")
    resolved: dict[str, str] = {}
    for role, name in columns.items():
        if name not in frame.columns:
            raise DataError(f"{source}: column {show_name(name)} (for {role}) not found; columns are: "
                            f"{show_names(frame.columns)}", options=("columns",))
        resolved[role] = name
    by_norm: dict[str, str] = {}
    for name in frame.columns:
        by_norm.setdefault(normalise_name(name), name)
    taken = set(resolved.values())
    for role in ROLES:
        if role in resolved:
            continue
        for alias in _ALIASES[role]:
            name = by_norm.get(alias)
            if name is not None and name not in taken:
                resolved[role] = name
                taken.add(name)
                break
    missing = [r for r in REQUIRED if r not in resolved]
    if missing:
        role = missing[0]
        raise DataError(f"{source}: no column for {role} (looked for {', '.join(_ALIASES[role][:4])}); columns are: "
                        f"{show_names(frame.columns)}; {_COLUMNS_HINT}", options=("columns",))
    return resolved


def _numbers(frame: pd.DataFrame, column: str, role: str, source: str, positive: bool = True) -> np.ndarray:
    """A column as floats: number strings such as '7B' are parsed; the first bad value is one DataError."""
    import pandas as pd

    from ..data import numeric_column
    from ..tables import show_name

    series = frame[column]
    values = numeric_column(series, role, source)  # number strings such as '7B' parsed, as every table's are
    bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
    if np.any(bad):
        i = int(np.argmax(bad))
        if pd.isna(series.iloc[i]):
            raise DataError(f"{source}: column {show_name(column)} ({role}) row {i + 1} is missing")
        raise DataError(f"{source}: column {show_name(column)} ({role}) row {i + 1} = {shown(values[i])}: "
                        f"must be a positive finite number")
    return values


def check_seq_len(seq_len) -> float | None:
    """``seq_len`` as a float (None stays None); anything but a finite number >= 1 is an option error (fit,
    import, published values and forecasts all check it here)."""
    if seq_len is None:
        return None
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, float, np.number)) \
            or not (math.isfinite(seq_len) and seq_len >= 1):
        raise option_error("seq_len", seq_len, "the sequence length must be a positive number of tokens")
    return float(seq_len)


def _sequence_length(frame, cols, tokens, batch, seq_len, batch_unit, source):
    """(batch in tokens, batch_unit, one seq_len or None, where it came from)."""
    from ..tables import show_name

    seq_len = check_seq_len(seq_len)
    if seq_len is not None:
        if "seq_len" in cols:
            raise option_error("seq_len", seq_len, f"the table has a sequence-length column "
                                                   f"{show_name(cols['seq_len'])}; give one or the other")
    if batch_unit == "tokens":
        return batch, "tokens", (float(seq_len) if seq_len is not None else None), "option" if seq_len else "unknown"
    if seq_len is not None:
        return batch * seq_len, "sequences", float(seq_len), "option"
    if "seq_len" in cols:
        per_row = _numbers(frame, cols["seq_len"], "seq_len", source)
        one = float(per_row[0]) if np.all(per_row == per_row[0]) else None
        return batch * per_row, "sequences", one, f"column {show_name(cols['seq_len'])}"
    if "steps" in cols:
        steps = _numbers(frame, cols["steps"], "steps", source)
        ratio = tokens / (steps * batch)
        mid = float(np.median(ratio))
        consistent = float(np.max(np.abs(ratio / mid - 1))) < _INFER_TOL
        if consistent and mid >= 1.5:
            inferred = float(round(mid))
            return batch * inferred, "sequences", inferred, (f"inferred: tokens = {show_name(cols['steps'])} x "
                                                              f"{show_name(cols['batch'])} x {inferred:g}")
        if consistent and abs(mid - 1) < _INFER_TOL and batch_unit == "auto":
            return batch, "tokens", None, "unknown"
    what = ("the batch column counts sequences" if batch_unit == "sequences" else
            "cannot tell whether the batch column counts sequences or tokens")
    other = "" if batch_unit == "sequences" else ", or batch_unit='tokens'"
    raise DataError(f"{source}: {what}: give seq_len=2048 (tokens per sequence; or add a seq_len column){other}",
                    options=("seq_len", "batch_unit"))


def read_sweep(runs, *, columns: dict[str, str] | None = None, seq_len: float | None = None,
               batch_unit: str = "auto", source: str | None = None) -> Sweep:
    """Read and validate a sweep from a path or a DataFrame; every problem is one DataError naming the file,
    column, row and value. Each (params, tokens) cell needs at least 3 runs with 2 learning rates."""
    import pandas as pd  # here, not at the top: `scalefit predict` reads hp.json without pandas

    from ..tables import read_table

    if batch_unit not in BATCH_UNITS:
        raise option_error("batch_unit", batch_unit, f"use one of {', '.join(BATCH_UNITS)}")
    if isinstance(runs, pd.DataFrame):
        frame, source = runs, source or "table"
    else:
        frame, source = read_table(runs), source or str(Path(runs))
    if len(frame) == 0:
        raise DataError(f"{source}: table has no rows")
    cols = resolve_columns(frame, columns, source)
    values = {role: _numbers(frame, cols[role], role, source) for role in REQUIRED}
    batch_tokens, unit, one_len, len_from = _sequence_length(frame, cols, values["tokens"], values["batch"], seq_len,
                                                            batch_unit, source)
    keys = pd.MultiIndex.from_arrays([values["params"], values["tokens"]])
    cell, uniques = pd.factorize(keys, sort=True)
    cell_params = np.array([u[0] for u in uniques], dtype=float)
    cell_tokens = np.array([u[1] for u in uniques], dtype=float)
    sweep = Sweep(values["params"], values["tokens"], values["lr"], batch_tokens, values["loss"], cell.astype(int),
                  cell_params, cell_tokens, source, cols, unit, one_len, len_from)
    for i, rows in enumerate(sweep.cell_rows()):
        n_lr = np.unique(sweep.lr[rows]).size
        if rows.size < MIN_RUNS_PER_CELL or n_lr < 2:
            what = f"{rows.size} run" + ("s" if rows.size != 1 else "") + (
                f" at {n_lr} learning rate" if rows.size >= MIN_RUNS_PER_CELL else "")
            raise DataError(f"{source}: the cell {cols['params']}={cell_params[i]:.6g}, {cols['tokens']}="
                            f"{cell_tokens[i]:.6g} has {what}; each (params, tokens) cell needs at least "
                            f"{MIN_RUNS_PER_CELL} runs at 2 or more learning rates to place an optimum "
                            f"(drop the cell or add runs)")
    return sweep
