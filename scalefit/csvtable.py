"""A light CSV/TSV reader for the small tables people fit interactively: the stdlib ``csv`` module, no pandas.

Importing pandas costs about half a second, more than a point fit of a few hundred runs. This reader
gives :func:`scalefit.data.from_frame` columns of cells that read the way pandas' ``read_csv`` reads
them: the same missing-value spellings, the same column types (a column is numeric when every present
cell is a number), the same numbers. Whatever it cannot promise to read exactly as pandas does (a
repeated or empty header name, a row longer than the header, run ids pandas would read as decimals,
true/false cells, ...) raises :class:`NeedPandas`, and the caller reads the file with pandas as before:
values, messages and ``Dataset.content_hash`` are those of one reader either way.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np

# pandas' default missing-value spellings (pandas._libs.parsers.STR_NA_VALUES; a test checks the copy).
NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
# Above this many characters pandas' C parser is faster than csv + float() even after its import.
LIGHT_MAX_CHARS = 4 << 20
_INT = re.compile(r"\s*[+-]?[0-9]+\s*")
_INT64_MAX = 2**63 - 1


class NeedPandas(Exception):
    """This table needs pandas' reader to be read exactly as before (see the module docstring)."""


class TextColumn:
    """One column's cells as text (``None`` where pandas reads a missing value)."""

    __slots__ = ("name", "cells", "_floats", "_numeric", "_scanned")

    def __init__(self, name: str, cells: list):
        self.name = name
        self.cells = cells
        self._scanned = False

    def __len__(self) -> int:
        return len(self.cells)

    def _scan(self) -> None:
        """``_floats``: every present cell through float() (NaN where missing), or None when one is not a
        number to Python; ``_numeric``: whether pandas would give the column a numeric dtype."""
        if self._scanned:
            return
        self._scanned = True
        self._floats, self._numeric = None, False
        try:  # numpy calls float() on each str (correctly rounded, as pandas' parser); None -> NaN
            values = np.array(self.cells, dtype=float)
        except (ValueError, TypeError, OverflowError):
            if any(c is not None and c.strip().lower() in ("true", "false") for c in self.cells):
                raise NeedPandas(f"column {self.name!r} holds true/false cells") from None
            return
        present = [c for c in self.cells if c is not None]
        self._floats = values
        # float() takes '1_000', non-ASCII digits and 'NAN' spellings; pandas' parser leaves those as text.
        joined = "".join(present)
        missing = len(self.cells) - len(present)
        self._numeric = joined.isascii() and "_" not in joined and int(np.isnan(values).sum()) == missing

    @property
    def floats(self) -> np.ndarray | None:
        self._scan()
        return self._floats

    @property
    def numeric(self) -> bool:
        """Whether pandas' read_csv would read this column as numbers (an all-missing column included)."""
        self._scan()
        return self._numeric

    def present(self) -> list[str]:
        return [c for c in self.cells if c is not None]

    def text(self) -> list[str]:
        """Each cell as pandas' ``astype(str)`` writes what read_csv made of it: the cell itself in a text
        column, ``str(int)`` in an integer column; NeedPandas where that cannot be promised (missing cells,
        decimals, true/false, integers past int64)."""
        if any(c is None for c in self.cells):
            raise NeedPandas(f"column {self.name!r} has missing cells")
        if self.floats is None:
            return list(self.cells)  # no cell is a number: pandas keeps the text as it is
        if self.numeric and all(_INT.fullmatch(c) for c in self.cells):
            ints = [int(c) for c in self.cells]
            if all(-_INT64_MAX - 1 <= i <= _INT64_MAX for i in ints):
                return [str(i) for i in ints]
        raise NeedPandas(f"column {self.name!r} holds numbers pandas would write its own way")


class TextTable:
    """The columns of a CSV/TSV file, in header order; ``attrs`` as a DataFrame's (for ``from_frame``)."""

    def __init__(self, columns: dict[str, TextColumn], n_rows: int):
        self._columns = columns
        self.columns = list(columns)
        self.attrs: dict = {}
        self.shape = (n_rows, len(columns))

    def __getitem__(self, name: str) -> TextColumn:
        return self._columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    def __len__(self) -> int:
        return self.shape[0]


def parse_text(text: str, dialect: dict) -> TextTable:
    """The cells of CSV/TSV ``text`` split as pandas' C parser splits them (``dialect`` from tables._sniff);
    NeedPandas for every shape of file whose reading or message pandas decides."""
    if dialect["sep"] == r"\s+" or len(text) > LIGHT_MAX_CHARS:
        raise NeedPandas("whitespace-separated or large file")
    if text.count("\r") != text.count("\r\n"):  # pandas shifts a row's cells after a blank line ended by a bare CR
        raise NeedPandas("lines ended by a bare carriage return")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect["sep"], quotechar=dialect["quotechar"],
                        skipinitialspace=dialect["skipinitialspace"], doublequote=True, strict=True)
    try:
        rows = [row for row in reader if row]  # pandas skips empty lines too
    except csv.Error as exc:  # a quote never closed or closed mid-cell, a huge field: pandas decides
        raise NeedPandas(str(exc)) from None
    if any(len(row) == 1 and not row[0].strip() for row in rows):
        # A line of spaces pandas skips, a quoted empty cell ('""') it reads: csv returns both as one blank cell.
        raise NeedPandas("a line holding one blank cell")
    if len(rows) < 2:
        raise NeedPandas("no data rows")
    header, body = rows[0], rows[1:]
    width = len(header)
    if len(set(header)) < width or any(not name.strip() for name in header):
        raise NeedPandas("repeated or empty header names")  # pandas renames them ('x.1', 'Unnamed: 2')
    na = NA_STRINGS
    cells = []
    for row in body:
        if len(row) > width:  # an index column, or pandas' "Expected N fields in line L" error
            raise NeedPandas("a row longer than the header")
        if len(row) < width:
            row = row + [""] * (width - len(row))  # pandas pads short rows with missing values
        cells.append([None if c in na else c for c in row])
    columns = {name: TextColumn(name, list(column)) for name, column in zip(header, zip(*cells))}
    return TextTable(columns, len(body))
