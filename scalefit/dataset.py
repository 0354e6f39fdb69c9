"""The validated table a fit works on: canonical role columns as numpy arrays, pandas only when asked.

:func:`scalefit.data.from_frame` builds a :class:`Dataset` from arrays (float64 for the numeric roles, an
object array of ``str`` for ``run`` and ``schedule``), so a point fit read from a CSV file never imports
pandas. ``Dataset.frame`` builds the DataFrame the reports, curve tools and importers use on first access
and from then on *is* the table: code that assigns to ``data.frame["loss"]`` is read back by
:meth:`Dataset.column` as before. Curve tables (:func:`scalefit.curves.load_curves`) are built from a
DataFrame and keep it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

import numpy as np

from .errors import DataError
from .tables import show_names

_HASH_ROWS = 1 << 16  # rows of a text column joined at a time by Dataset.content_hash


def _read_only(values: np.ndarray) -> np.ndarray:
    """A view callers cannot write through (pandas' copy-on-write hands out the same)."""
    view = values.view()
    view.flags.writeable = False
    return view


class Dataset:
    """A validated table: canonical role columns plus provenance and units.

    ``frame`` has one column per resolved role under the role's name (``params``, ``tokens``, ...),
    plus a ``run`` column (the row number as text when the table has none). Curve tables also carry
    ``lr``: run name -> LR at every step (index = step), filled by the curve loader.

    Built either from a DataFrame (``Dataset(frame, source, ...)``) or from ``arrays={role: array}`` with
    ``attrs`` (what ``frame.attrs`` will hold); the arrays are not copied and must not be changed.
    """

    def __init__(self, frame=None, source: str = "<memory>", columns: dict[str, str] | None = None,
                 units: dict[str, str | None] | None = None, dropped: list[str] | None = None,
                 lr: dict[str, np.ndarray] | None = None, *, arrays: Mapping[str, np.ndarray] | None = None,
                 attrs: dict | None = None):
        if (frame is None) == (arrays is None):
            raise TypeError("Dataset takes a frame or arrays=, not both")
        self._frame = frame
        self._arrays = None if arrays is None else dict(arrays)
        self._attrs = dict(attrs or {})
        self._codes: np.ndarray | None = None  # run codes, cached while the arrays are the table
        self.source = source
        self.columns = dict(columns or {})  # role -> original column name
        self.units = dict(units) if units is not None else {"loss_unit": None, "params_convention": None}
        self.dropped = list(dropped or [])  # one line per dropped group of rows, for reports
        self.lr = lr

    def __repr__(self) -> str:
        names = list(self._arrays) if self._frame is None else list(self._frame.columns)
        return f"Dataset(source={self.source!r}, rows={len(self)}, columns={names})"

    @property
    def frame(self):
        """The table as a pandas DataFrame (built once, on first access; from then on the table itself)."""
        if self._frame is None:
            import pandas as pd

            frame = pd.DataFrame(self._arrays, copy=False)
            for name, values in self._arrays.items():
                if values.dtype == object:  # what astype(str) gives (pandas' string dtype where it has one)
                    frame[name] = frame[name].astype(str)
            frame.attrs = dict(self._attrs)
            self._frame, self._arrays, self._codes = frame, None, None
        return self._frame

    @frame.setter
    def frame(self, frame) -> None:
        self._frame, self._arrays, self._codes = frame, None, None

    def as_arrays(self) -> "Dataset":
        """The same table held as plain arrays (itself when it already is): what a worker process can read
        without importing pandas (0.4 s of a worker's start). Numeric columns as they are, others as text."""
        if self._frame is None:
            return self
        import pandas as pd

        arrays = {}
        for name in self._frame.columns:
            col = self._frame[name]
            numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
            arrays[name] = col.to_numpy() if numeric else col.astype(str).to_numpy(dtype=object)
        return Dataset(None, self.source, dict(self.columns), dict(self.units), list(self.dropped),
                       None if self.lr is None else dict(self.lr), arrays=arrays, attrs=dict(self._frame.attrs))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        if self._frame is not None:
            return len(self._frame)
        return len(next(iter(self._arrays.values())))

    def _names(self) -> list[str]:
        return list(self._arrays) if self._frame is None else list(self._frame.columns)

    def has(self, role: str) -> bool:
        return role in (self._arrays if self._frame is None else self._frame.columns)

    def column(self, role: str) -> np.ndarray:
        if not self.has(role):
            attrs = self._attrs if self._frame is None else self._frame.attrs
            original = attrs.get("original_columns", self._names())
            raise DataError(
                f"{self.source}: no column for '{role}'; columns are: {show_names(original)} "
                f"(map one with columns={{{role!r}: 'NAME'}})", options=("columns",)
            )
        if self._frame is not None:
            return self._frame[role].to_numpy(dtype=float)
        values = self._arrays[role]
        return _read_only(values) if values.dtype == np.float64 else values.astype(float)

    def _run_text(self) -> np.ndarray:
        if self._frame is not None:
            return self._frame["run"].astype(str).to_numpy()
        return self._arrays["run"]

    @property
    def run_names(self) -> np.ndarray:
        return self._run_text().copy() if self._frame is None else self._run_text()

    def run_name(self, row: int) -> str:
        """The run id of one row (``run_names`` makes a string per row: 60 MB at 1M rows)."""
        if self._frame is not None:
            return str(self._frame["run"].iloc[row])
        return str(self._arrays["run"][row])

    @property
    def run_codes(self) -> np.ndarray:
        """Integer run id per row, 0..n_runs-1 in order of first appearance."""
        if self._frame is not None:
            import pandas as pd

            codes, _ = pd.factorize(self._frame["run"].astype(str))
            return codes.astype(np.int64)
        if self._codes is None:
            first: dict[str, int] = {}
            runs = self._arrays["run"]
            self._codes = np.fromiter((first.setdefault(r, len(first)) for r in runs), dtype=np.int64,
                                      count=len(runs))
        return self._codes.copy()

    @property
    def n_runs(self) -> int:
        if self._frame is not None:
            return int(self._frame["run"].nunique())
        return len(set(self._arrays["run"].tolist()))

    def weights(self) -> np.ndarray | None:
        return self.column("weight") if self.has("weight") else None

    def subset(self, mask: np.ndarray) -> "Dataset":
        """Rows where ``mask`` is true (LR sequences of the kept runs come along)."""
        mask = np.asarray(mask, dtype=bool)
        if self._frame is None:
            arrays = {name: values[mask] for name, values in self._arrays.items()}
            keep = set(arrays["run"].tolist()) if self.lr is not None else set()
            return Dataset(None, self.source, dict(self.columns), dict(self.units), list(self.dropped),
                           self._kept_lr(keep), arrays=arrays, attrs=dict(self._attrs))
        frame = self._frame.loc[mask].reset_index(drop=True)
        frame.attrs = dict(self._frame.attrs)
        keep = set(frame["run"].astype(str)) if self.lr is not None else set()
        return Dataset(frame, self.source, dict(self.columns), dict(self.units), list(self.dropped),
                       self._kept_lr(keep))

    def _kept_lr(self, runs: set) -> dict[str, np.ndarray] | None:
        return None if self.lr is None else {k: v for k, v in self.lr.items() if k in runs}

    def content_hash(self) -> str:
        """sha256 over the canonical columns and the column mapping (recorded in fit.json)."""
        h = hashlib.sha256()
        h.update(json.dumps(self.columns, sort_keys=True).encode())
        for name in sorted(self._names()):
            h.update(name.encode())
            if self._frame is not None:
                col = self._frame[name]
                import pandas as pd

                if pd.api.types.is_numeric_dtype(col):
                    h.update(np.ascontiguousarray(col.to_numpy(dtype=float)).tobytes())
                else:  # joined and hashed 64k rows at a time: the same digest, without a string per row at once
                    text = col.astype(str)
                    for start in range(0, len(text), _HASH_ROWS):
                        _hash_chunk(h, text.iloc[start : start + _HASH_ROWS].tolist(), start)
                continue
            values = self._arrays[name]
            if values.dtype == object:
                for start in range(0, len(values), _HASH_ROWS):
                    _hash_chunk(h, values[start : start + _HASH_ROWS].tolist(), start)
            else:
                h.update(np.ascontiguousarray(values, dtype=float).tobytes())
        if self.lr:
            for run in sorted(self.lr):
                h.update(run.encode())
                h.update(np.ascontiguousarray(self.lr[run], dtype=float).tobytes())
        return h.hexdigest()[:16]

    def ranges(self) -> dict[str, list[float]]:
        """[min, max] of each numeric role column: forecasts warn when they leave these."""
        out = {}
        for role in ("params", "tokens", "flops", "params_avg", "step"):
            if self.has(role):
                values = self.column(role)
                out[role] = [float(np.nanmin(values)), float(np.nanmax(values))]
        return out


def _hash_chunk(h, cells: list[str], start: int) -> None:
    """Text cells joined by \\x1f (one more before every chunk but the first): the digest of the whole column
    joined at once, hashed 64k rows at a time."""
    h.update((("\x1f" if start else "") + "\x1f".join(cells)).encode())
