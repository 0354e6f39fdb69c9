"""Reading run tables: formats, column roles, number strings, units metadata and validation.

A *role* is what a column means to a law (``params``, ``tokens``, ``flops``, ``loss``, ``run``,
``weight``, ``step``, ``lr``, or any name a law declares, e.g. ``params_avg``). Columns are matched to
roles by an explicit mapping (``columns={"params": "Model Size"}``), then by exact name, then by alias;
an IsoFLOP ``budget`` column is the compute only when no other column names it.

A table comes in as a pandas DataFrame or, from :func:`load_runs` on a small CSV/TSV file, as a
:class:`~scalefit.csvtable.TextTable` read without pandas; both are validated by the same code into a
:class:`~scalefit.dataset.Dataset`, with the same values, messages and content hash.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from .csvtable import NeedPandas, TextColumn, TextTable
from .dataset import Dataset
from .errors import DataError, UnitsWarning, option_error
from .pruning import PRUNING_INPUTS, params_avg_of_pruned_runs
from .tables import normalise_name, read_table, show_name, show_names
from .units import parse_count

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Dataset", "from_frame", "load_runs", "numeric_column", "parse_column_mapping", "read_table"]

# Normalised alias -> role (see tables.normalise_name: lower case, spaces/dashes/underscores removed).
_ALIASES = {
    "params": ["params", "n", "nparams", "numparams", "parameters", "modelsize", "size", "numparameters"],
    "tokens": ["tokens", "d", "ntokens", "numtokens", "trainingtokens", "data", "tokensseen", "tokennum"],
    "flops": ["flops", "c", "compute", "trainingflop", "trainingflops", "flop"],
    "loss": ["loss", "l", "finalloss", "valloss", "evalloss", "validationloss"],
    # Not "model": tables such as Gadre's use it for a shape trained at several token budgets.
    "run": ["run", "runid", "runname", "modelname", "name"],
    "weight": ["weight", "weights", "w"],
    "step": ["step", "steps", "iteration", "iter", "globalstep"],
    "lr": ["lr", "learningrate"],
    # Distinct tokens available (repeated-data laws); the rest of ``tokens`` are repeats.
    "unique_tokens": ["uniquetokens", "u", "tokensperepoch", "uniquedata", "nuniquetokens", "numuniquetokens"],
}
# Names a role falls back to only when no column above matches: an IsoFLOP table's nominal ``budget`` is
# its compute, but beside a ``flops`` column (the runs' actual compute) it is not a second candidate.
_FALLBACK_ALIASES = {"flops": ["budget", "computebudget", "flopbudget"]}
# Roles whose values must be strictly positive.
POSITIVE_ROLES = {"params", "tokens", "flops", "loss", "params_avg", "unique_tokens"}
LOSS_UNITS = ("nats", "bits")
PARAMS_CONVENTIONS = ("total", "non-embedding")
_COLUMNS_EXAMPLE = "expected ROLE=COLUMN, e.g. columns={'params': 'Model Size'}"


def parse_column_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["params=Model Size", ...]`` (as the CLI takes them) -> ``{"params": "Model Size"}``, for ``columns``."""
    mapping = {}
    for item in items or []:
        if "=" not in item:
            raise option_error("columns", item, _COLUMNS_EXAMPLE)
        role, column = item.split("=", 1)
        role, column = role.strip(), column.strip().strip('"').strip("'")
        if not role or not column:
            raise option_error("columns", item, _COLUMNS_EXAMPLE)
        mapping[role] = column
    return mapping


def _resolve_roles(frame: "pd.DataFrame | TextTable", mapping: Mapping[str, str], source: str,
                   strict: Iterable[str] = ()) -> dict[str, str]:
    """role -> column name actually present in ``frame``.

    When two columns could fill one role (``loss`` and ``val_loss``, or a name the header repeats), a
    role in ``strict`` is an error that says how to choose; any other such role stays unmapped rather
    than guessed. A candidate holding no numbers (``data`` = corpus names) does not compete.
    """
    resolved: dict[str, str] = {}
    for role, column in mapping.items():
        if column not in frame.columns:
            raise DataError(
                f"{source}: column {show_name(column)} (for {role}) not found; columns are: {show_names(frame.columns)}"
            )
        resolved[role] = column
    duplicates = frame.attrs.get("duplicate_columns", {})
    by_norm: dict[str, list[str]] = {}
    for column in frame.columns:
        by_norm.setdefault(normalise_name(duplicates.get(column, column)), []).append(column)
    taken = set(resolved.values())
    strict = set(strict)
    for role, aliases in _ALIASES.items():
        if role in resolved:
            continue
        candidates: list[str] = []
        for alias in dict.fromkeys(normalise_name(a) for a in [role, *aliases]):
            candidates += [c for c in by_norm.get(alias, []) if c not in taken and c not in candidates]
        if role in _FALLBACK_ALIASES and not any(_holds_numbers(frame[c]) for c in candidates):
            for alias in dict.fromkeys(normalise_name(a) for a in _FALLBACK_ALIASES[role]):
                candidates += [c for c in by_norm.get(alias, []) if c not in taken and c not in candidates]
        if not candidates:
            continue
        usable = candidates
        if (len(candidates) > 1 or role not in strict) and role != "run":
            usable = [c for c in candidates if _holds_numbers(frame[c])]
        if not usable and role not in strict and role != "run":
            continue  # e.g. a 'data' column of corpus names in a table whose tokens nobody asked for
        if len(usable) > 1:
            if role not in strict:
                continue
            repeated = sorted({duplicates[c] for c in usable if c in duplicates})
            note = "".join(f" (the header names {show_name(name)} more than once; pandas reads the copies as "
                           f"{show_names(c for c, o in duplicates.items() if o == name)})" for name in repeated)
            raise DataError(
                f"{source}: {len(usable)} columns could be the {role}: {show_names(usable)}{note}; choose one with "
                f"columns={{{role!r}: 'NAME'}}, e.g. columns={{{role!r}: {str(usable[-1])!r}}}", options=("columns",)
            )
        column = usable[0] if usable else candidates[0]
        resolved[role] = column
        taken.add(column)
    return resolved


def _holds_numbers(series: "pd.Series | TextColumn") -> bool:
    """Whether a column could be a numeric role: some values, all of them numbers or number strings."""
    if isinstance(series, TextColumn):
        if series.numeric:  # as pandas' numeric dtype: any value present
            return any(c is not None for c in series.cells)
        try:
            values = numeric_column(series, "", "")
        except DataError:
            return False
        return bool(np.isfinite(values).any())
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return bool(series.notna().any())
    try:
        values = numeric_column(series, "", "")
    except DataError:
        return False
    return bool(np.isfinite(values).any())


def numeric_column(series: "pd.Series | TextColumn", role: str, source: str) -> np.ndarray:
    """A column as float64; number strings like '7B' are parsed; anything else is a DataError."""
    if isinstance(series, TextColumn):
        if series.floats is not None:
            return series.floats
        return _parse_cells(series.cells, series.name, role, source)
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"{source}: column {show_name(series.name)} ({role}) holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_complex_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return _parse_cells(series.tolist(), series.name, role, source)


def _parse_cells(cells: list, name, role: str, source: str) -> np.ndarray:
    """Cells of a text column as float64 (NaN where missing): '7B', '1_000', 'inf' ... or a DataError naming the row."""
    values = np.empty(len(cells))
    for i, item in enumerate(cells):
        if item is None or (isinstance(item, float) and np.isnan(item)) or (isinstance(item, str) and not item.strip()):
            values[i] = np.nan
            continue
        try:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (str, int, float, np.number)):
                raise DataError("not a number")
            values[i] = parse_count(item, what="")
            continue
        except (DataError, OverflowError, TypeError, ValueError):
            pass
        try:  # 'inf', 'nan', 1e999, 400 digits: a number after all, refused with its row by the value checks
            if isinstance(item, (bool, np.bool_)):
                raise TypeError("true/false is not a number")
            if isinstance(item, (int, np.integer)):
                values[i] = np.inf if item > 0 else -np.inf  # only an int too large for a float gets here
            else:
                values[i] = float(item.replace("_", "") if isinstance(item, str) else item)
        except (OverflowError, TypeError, ValueError):
            shown = show_name(item) if isinstance(item, str) else show_name(repr(item))
            raise DataError(
                f"{source}: column {show_name(name)} ({role}) row {i + 1}: {shown} is not a number"
            ) from None
    return values


# The range any real training run falls in, whatever unit a table uses (raw counts, millions, billions,
# PF-days): a value outside is a unit or typing mistake, and past the top the arithmetic on it (6·N·D,
# powers in the laws) overflows. 1e-12 is a thousand parameters counted in petas; 1e17 parameters,
# 1e20 tokens and 1e40 FLOP are orders of magnitude past the largest runs to date.
PLAUSIBLE = {
    "params": (1e-12, 1e17),
    "params_avg": (1e-12, 1e17),
    "tokens": (1e-12, 1e20),
    "unique_tokens": (1e-12, 1e20),
    "flops": (1e-12, 1e40),
    "loss": (0.0, 1e6),  # a per-token loss, or at most a perplexity
}
# Two neighbouring values this many orders of magnitude apart: no sweep has such a hole, a mix of units does.
UNIT_GAP_ORDERS = 3.5


def format_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return show_name(value)


def unit_gap(values: np.ndarray) -> tuple[float, float] | None:
    """``(below, above)``: the two neighbouring distinct values with the widest gap, when it is wider than
    :data:`UNIT_GAP_ORDERS` orders of magnitude (a column mixing units); else None."""
    # Sorted with repeats (np.unique would import numpy.ma, 25 ms of a whole-process fit): a repeat adds a
    # zero step, so the widest step and its two ends are those between distinct neighbours.
    values = np.sort(values[np.isfinite(values) & (values > 0)])
    if values.size < 2:
        return None
    steps = np.diff(np.log10(values))
    i = int(np.argmax(steps))
    if steps[i] < UNIT_GAP_ORDERS:
        return None
    return float(values[i]), float(values[i + 1])


def _warn_unit_gap(values: np.ndarray, role: str, column: str, source: str) -> None:
    gap = unit_gap(values)
    if gap is None:
        return
    below, above = gap
    finite = values[np.isfinite(values) & (values > 0)]
    n_low, n_high = int((finite <= below).sum()), int((finite >= above).sum())
    if below < 1e5 <= above:
        cause = (f"{n_low} row(s) look like counts in thousands, millions or billions and {n_high} like raw "
                 f"counts: use one unit (7B or 7e9) throughout")
    else:
        cause = "mixed units or a typo in a few rows?"
    warnings.warn(f"{source}: column {show_name(column)} ({role}) jumps from {below:.4g} to {above:.4g}, "
                  f"{np.log10(above / below):.1f} orders of magnitude with no value between; {cause}",
                  UnitsWarning, stacklevel=3)


def _unit_value(value, allowed: tuple) -> str | None:
    """``value`` as the one of ``allowed`` it spells (case and surrounding spaces ignored), else None."""
    return text if (text := str(value).strip().lower()) in allowed else None


def _unit_column(frame: "pd.DataFrame | TextTable", name: str, given: str | None, allowed: tuple,
                 source: str) -> str | None:
    """``given`` (already checked), else the one value of a ``loss_unit``/``params_convention`` column
    (``scalefit import`` writes them), so the units travel with the table into fit.json. A column mixing
    units, holding a unit scalefit does not know or contradicting ``given`` is refused: bits read as nats
    would be fitted and compared as if they were nats."""
    values = sorted({_unit_value(v, allowed) or str(v) for v in _present(frame[name])}) if name in frame else []
    if len(values) > 1:
        raise DataError(f"{source}: column {show_name(name)} mixes {show_names(values)}; keep rows of one unit "
                        f"(or convert them) before fitting")
    unit = _unit_value(values[0], allowed) if values else given
    if values and unit is None:
        hint = " (a loss in bits per byte or per character is 'bits')" if name == "loss_unit" else ""
        raise DataError(f"{source}: column {show_name(name)} holds {show_name(values[0])}, not one of "
                        f"{', '.join(allowed)}{hint}; write one of those (any case) or drop the column")
    if given is not None and given != unit:
        raise DataError(f"{source}: {name}={given!r} contradicts the table's column {show_name(name)} ({unit!r}); "
                        f"drop the option or fix the column", options=(name,))
    return unit


def _present(column: "pd.Series | TextColumn") -> list:
    """The values of a column that are there (as ``Series.dropna``); a light column's only when text."""
    if isinstance(column, TextColumn):
        if column.floats is not None:
            raise NeedPandas(f"column {column.name!r} holds numbers")  # pandas would write them its own way
        return column.present()
    return column.dropna().tolist()


def _text(column: "pd.Series | TextColumn"):
    """Run ids or schedule specs as text: an object array of str from a light column, else pandas' own
    string array (astype(str); NaN stays NaN there, named by the checks; no Python string per row)."""
    if isinstance(column, TextColumn):
        return np.array(column.text(), dtype=object)
    return column.astype(str).array


def _blank(ids) -> np.ndarray:
    """Where a run id is missing or blank."""
    if isinstance(ids, np.ndarray):  # a light column: str cells only
        return np.fromiter((not x.strip() for x in ids.tolist()), dtype=bool, count=len(ids))
    import pandas as pd

    ids = pd.Series(ids)
    return (ids.isna() | (ids.fillna("").astype(str).str.strip() == "")).to_numpy()


def from_frame(
    frame: "pd.DataFrame | TextTable",
    *,
    source: str = "<memory>",
    columns: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    loss_unit: str | None = None,
    params_convention: str | None = None,
    drop_invalid: bool = False,
    derive_compute: bool = True,
) -> Dataset:
    """Validate a DataFrame into a :class:`Dataset` (or a ``TextTable`` from ``read_table(path, light=True)``:
    where only pandas can say how it reads a cell, that raises ``csvtable.NeedPandas`` and :func:`load_runs`
    reads the file again with pandas).

    ``required`` lists the roles the caller needs (a law's inputs and target). Invalid values (NaN,
    inf, zero or negative where positive is required) are an error naming the column and rows, or,
    with ``drop_invalid``, dropped and reported in ``Dataset.dropped``.
    """
    for name, value, allowed in (("loss_unit", loss_unit, LOSS_UNITS),
                                 ("params_convention", params_convention, PARAMS_CONVENTIONS)):
        if value is not None and _unit_value(value, allowed) is None:
            raise option_error(name, value, f"use one of {', '.join(allowed)}")
    loss_unit = None if loss_unit is None else _unit_value(loss_unit, LOSS_UNITS)
    params_convention = None if params_convention is None else _unit_value(params_convention, PARAMS_CONVENTIONS)
    if frame.shape[0] == 0:
        raise DataError(f"{source}: table has no rows")
    if isinstance(frame, TextTable):  # read by csvtable: str names, rows numbered from 0
        labels = np.arange(frame.shape[0])
    else:
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        labels = frame.index  # a table filtered by the caller keeps its row labels: default run ids come from them
    loss_unit = _unit_column(frame, "loss_unit", loss_unit, LOSS_UNITS, source)
    params_convention = _unit_column(frame, "params_convention", params_convention, PARAMS_CONVENTIONS, source)
    if len(set(frame.columns)) != len(frame.columns):
        dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
        raise DataError(f"{source}: duplicated column names {show_names(dupes)}; rename the copies or keep one")
    required = list(dict.fromkeys(required))
    # Roles whose column must be unambiguous: what the caller needs, what every table uses, and what a
    # missing tokens column is derived from.
    strict = set(required) | {"run", "weight", "loss"}
    if "step" in strict:
        strict.add("lr")
    if strict & {"params", "tokens", "flops"}:
        strict |= {"params", "tokens", "flops"}
    roles = _resolve_roles(frame, dict(columns or {}), source, strict)
    # Extra roles a law declares (params_avg, loss_x, ...) match a column of exactly that name.
    for role in required:
        if role not in roles and role in frame.columns:
            roles[role] = role

    canon: dict[str, np.ndarray] = {}  # role -> float64 values, or text for run and schedule
    for role, column in roles.items():
        if role in ("run", "schedule"):
            canon[role] = _text(frame[column])
        else:
            canon[role] = numeric_column(frame[column], role, source)

    if derive_compute:
        with np.errstate(all="ignore"):  # overflow or 0 divisions become inf/NaN, named by the checks below
            if "tokens" not in canon and "flops" in canon and "params" in canon:
                canon["tokens"] = canon["flops"] / (6.0 * canon["params"])
                roles.setdefault("tokens", "flops / (6 * params)")
            if "flops" not in canon and "params" in canon and "tokens" in canon:
                canon["flops"] = 6.0 * canon["params"] * canon["tokens"]

    if "params_avg" in required and "params_avg" not in canon:
        mapping = dict(columns or {})
        found = {}
        for role in PRUNING_INPUTS:
            column = mapping.get(role, role)
            if column in frame.columns:
                found[role] = numeric_column(frame[column], role, source)
                roles[role] = column
        if found:  # else the generic "missing column" error below names params_avg
            params = canon.get("params")
            canon["params_avg"] = params_avg_of_pruned_runs(params, found, roles, source)
            roles["params_avg"] = "average_params(params, final_sparsity, prune_start, prune_end)"

    missing = [r for r in required if r not in canon]
    if missing:
        hint = "columns={" + ", ".join(f"{r!r}: 'NAME'" for r in missing) + "}"
        if "params_avg" in missing:
            hint += ", or give params, final_sparsity, prune_start and prune_end columns"
        raise DataError(
            f"{source}: missing column for {', '.join(repr(m) for m in missing)}; "
            f"columns are: {show_names(frame.columns)} (map with {hint})", options=("columns",)
        )

    # Validate values of every role in use (required ones, and weight).
    dropped: list[str] = []
    n_rows = frame.shape[0]
    bad_any = np.zeros(n_rows, dtype=bool)
    check = [r for r in canon if r not in ("run", "schedule")]
    for role in check + (["run"] if "run" in canon else []):
        reasons = []
        if role == "run":
            # A run without an id cannot be resampled as a unit (and pandas keeps NaN through astype(str)).
            blank = _blank(canon["run"])
            if blank.any():
                reasons.append((blank, "is empty"))
            values = np.ones(n_rows)
        else:
            values = np.asarray(canon[role], dtype=float)
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            reasons.append((nonfinite, "is NaN or infinite"))
        if role in POSITIVE_ROLES or role.startswith("loss"):
            nonpos = np.isfinite(values) & (values <= 0)
            if nonpos.any():
                reasons.append((nonpos, "is zero or negative"))
        elif role == "weight":
            neg = np.isfinite(values) & (values < 0)
            if neg.any():
                reasons.append((neg, "is negative"))
        low, high = PLAUSIBLE.get("loss" if role.startswith("loss") else role, (0.0, np.inf))
        above = np.isfinite(values) & (values > high)
        if above.any():
            reasons.append((above, f"is above {high:g}"))
        below = np.isfinite(values) & (values > 0) & (values < low)
        if below.any():
            reasons.append((below, f"is below {low:g}"))
        for mask, why in reasons:
            if role not in required and role not in ("weight", "run"):
                # A column the law does not use never causes an error or a drop.
                continue
            rows = np.flatnonzero(mask)
            shown = ", ".join(str(r + 1) for r in rows[:5]) + (" ..." if rows.size > 5 else "")
            column = roles.get(role, role)
            if not drop_invalid:
                first = f"row {rows[0] + 1}"
                if "run" in roles and role != "run":
                    first += f", run {show_name(canon['run'][rows[0]])}"
                if role != "run":
                    first += f": {format_value(values[rows[0]])}"
                advice = "fix the data"
                if why.startswith("is above") or why.startswith("is below"):
                    advice = "no real run is that " + ("large" if why.startswith("is above") else "small") + \
                        ": check the column's unit"
                raise DataError(
                    f"{source}: column {show_name(column)} ({role}) {why} in {rows.size} row(s): {shown} "
                    f"({first}); {advice}, or pass drop_invalid=True to drop them", options=("drop_invalid",)
                )
            dropped.append(f"dropped {rows.size} row(s) where {show_name(column)} {why}: rows {shown}")
            bad_any |= mask
    if bad_any.any():
        canon = {role: values[~bad_any] for role, values in canon.items()}
        labels = labels[~bad_any]
    if not len(labels):
        raise DataError(f"{source}: no valid rows left after dropping invalid values")
    if "weight" in canon and not (canon["weight"] > 0).any():
        raise DataError(f"{source}: column {show_name(roles.get('weight', 'weight'))} (weight) is zero in every row; "
                        f"a weight is a relative importance: give some rows a positive weight")

    for role in ("params", "params_avg", "tokens", "flops"):
        if role in canon and role in required and roles.get(role) in frame.columns:
            _warn_unit_gap(np.asarray(canon[role], dtype=float), role, roles[role], source)

    if "run" not in canon:
        canon["run"] = np.array([str(i + 1) for i in labels], dtype=object)
    units = {"loss_unit": loss_unit, "params_convention": params_convention}
    attrs = {"original_columns": list(frame.columns)}
    if isinstance(frame, TextTable):
        return Dataset(None, source, dict(roles), units, dropped, arrays=canon, attrs=attrs)
    # A DataFrame came in, so pandas is loaded: the Dataset keeps a frame, built a column at a time as before
    # (the text columns stay pandas' string arrays: at 1M rows, 60 MB less than a Python string per row).
    import pandas as pd

    table = pd.DataFrame(index=pd.RangeIndex(len(labels)))
    for role, values in canon.items():
        table[role] = values
    table["run"] = table["run"].astype(str)
    table.attrs = attrs
    return Dataset(table, source, dict(roles), units, dropped)


def load_runs(path: str | Path, **kwargs) -> Dataset:
    """Read a table file and validate it: see :func:`from_frame` for the keyword arguments.

    A small CSV/TSV file is read without pandas (:mod:`scalefit.csvtable`); one that reader cannot promise
    to read as pandas does is read again with pandas, so values and messages are those of one reader."""
    table = read_table(path, light=True)
    if isinstance(table, TextTable):
        try:
            return from_frame(table, source=str(path), **kwargs)
        except NeedPandas:
            pass
        table = read_table(path)
    return from_frame(table, source=str(path), **kwargs)
