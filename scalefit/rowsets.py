"""Rows of a runs table taken apart: the rows where conditions hold (:func:`filter_rows`, the CLI's
``--where``) and the table split by the values of one column (:func:`group_rows`, ``--per``). A cell
matches a value the same way in both: as its text (spaces stripped), or, in a numeric column, as the
number (``epochs=1`` matches 1.0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from .errors import DataError, option_error
from .tables import show_name, show_names

if TYPE_CHECKING:
    import pandas as pd

_WHERE_EXAMPLE = "expected COLUMN=VALUE, e.g. dataset=rpj"


def _as_text(cells: "pd.Series") -> "pd.Series":
    """Each cell as the value it matches: its text, spaces stripped."""
    return cells.astype(str).str.strip()


def _numeric(cells: "pd.Series") -> bool:
    """Whether the column's cells also match as numbers (booleans do not)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells)


def filter_rows(frame: "pd.DataFrame", where, source: str = "<memory>") -> "pd.DataFrame":
    """The rows of ``frame`` where every condition holds: a table of several experiments narrowed to one.

    ``where``: ``"COLUMN=VALUE"`` strings (a list, or one string) or a mapping ``{"dataset": "rpj"}``; None
    or empty keeps every row. A cell matches when it reads as the value (``rpj``), or, in a numeric column,
    equals it as a number (``epochs=1`` matches 1.0). A condition that names no column or matches no row
    is a DataError naming ``source`` and the condition. The CLI's ``--where`` is this; from Python::

        frame = filter_rows(read_table("runs.csv"), {"dataset": "rpj"}, source="runs.csv")
        scalefit.fit("chinchilla", frame)

    It works on a DataFrame: a fit given ``where`` reads its table with pandas (``read_table``'s default),
    the one path where a point fit from a CSV file imports it.
    """
    import pandas as pd

    if isinstance(where, str):
        where = [where]
    conditions = []
    for item in (where.items() if isinstance(where, Mapping) else where or []):
        if isinstance(item, tuple):  # a mapping's (column, value)
            column, value = str(item[0]), str(item[1]).strip()
            text = f"{column}={value}"
        else:
            text = str(item)
            column, sep, value = (part.strip() for part in text.partition("="))
            if not sep or not column:
                raise option_error("where", text, _WHERE_EXAMPLE)
        conditions.append((text, column, value))
    for text, column, value in conditions:
        if column not in frame.columns:
            raise DataError(f"{source}: where column {show_name(column)} not found; columns are: "
                            f"{show_names(frame.columns)}", options=("where",))
        cells = frame[column]
        keep = _as_text(cells) == value
        if _numeric(cells):
            number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
            if pd.notna(number):
                keep |= cells == number
        if not keep.any():
            held = list(dict.fromkeys(cells.dropna().astype(str)))
            shown_held = show_names(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise DataError(f"{source}: where={text} matches no row (column {show_name(column)} holds "
                            f"{shown_held or 'no values'} in the rows left)", options=("where",))
        frame = frame[keep]
    return frame


def group_rows(frame: "pd.DataFrame", column: str, source: str = "<memory>") -> tuple[dict, int]:
    """``frame`` split by the values of ``column``: ({value as text: its rows}, rows with no value, which
    are left out). Values are named as ``filter_rows`` reads them (text, spaces stripped), so
    ``where={column: name}`` selects the same rows; in order of value (numerically in a numeric column).
    From Python, the tables for :func:`scalefit.backtest.compare`::

        groups, _ = group_rows(read_table("runs.csv"), "dataset", "runs.csv")
        tables = {name: from_frame(rows, source=name) for name, rows in groups.items()}
    """
    if column not in frame.columns:
        raise DataError(f"{source}: per column {show_name(column)} not found; columns are: "
                        f"{show_names(frame.columns)}", options=("per",))
    cells = frame[column]
    present = cells.notna()
    if not present.any():
        raise DataError(f"{source}: per column {show_name(column)} holds no values", options=("per",))
    names = _as_text(cells[present])
    first = cells[present].groupby(names, sort=False).first()  # one value per name, to order numerically
    order = sorted(first.index, key=(lambda n: (float(first[n]), n)) if _numeric(cells) else str)
    kept = frame[present]
    return {name: kept[names == name].reset_index(drop=True) for name in order}, int((~present).sum())
