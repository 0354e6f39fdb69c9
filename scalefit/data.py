"""Reading run tables: formats, column roles, number strings, units metadata and validation.

A *role* is what a column means to a law (``params``, ``tokens``, ``flops``, ``loss``, ``run``,
``weight``, ``step``, ``lr``, or any name a law declares, e.g. ``params_avg``). Columns are matched to
roles by an explicit mapping (``--col params="Model Size"``), then by exact name, then by alias.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import stat
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ._io import check_input_file
from .errors import DataError, UnitsWarning
from .limits import LIMITS, LimitError, enforce, limit
from .units import parse_count

# Normalised alias -> role. Normalisation: lower case, spaces/dashes/underscores removed.
_ALIASES = {
    "params": ["params", "n", "nparams", "numparams", "parameters", "modelsize", "size", "numparameters"],
    "tokens": ["tokens", "d", "ntokens", "numtokens", "trainingtokens", "data", "tokensseen"],
    "flops": ["flops", "c", "compute", "trainingflop", "trainingflops", "flop"],
    "loss": ["loss", "l", "finalloss", "valloss", "evalloss", "validationloss"],
    # Not "model": tables such as Gadre's use it for a shape trained at several token budgets.
    "run": ["run", "runid", "runname", "modelname", "name"],
    "weight": ["weight", "weights", "w"],
    "step": ["step", "steps", "iteration", "iter", "globalstep"],
    "lr": ["lr", "learningrate"],
}
# Roles whose values must be strictly positive.
POSITIVE_ROLES = {"params", "tokens", "flops", "loss", "params_avg"}
LOSS_UNITS = ("nats", "bits")
PARAMS_CONVENTIONS = ("total", "non-embedding")
_READERS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}


def _show(text, width: int = 60) -> str:
    """A name or cell for a one-line message: quoted, or repr() when it hides whitespace or control chars;
    cut to ``width`` characters."""
    text = str(text)
    if len(text) > width:
        text = text[: width - 3] + "..."
    return f"'{text}'" if text and text.isprintable() and text == text.strip() else repr(text)


def _list(names) -> str:
    return ", ".join(_show(n) for n in names)


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def parse_column_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["params=Model Size", ...]`` -> ``{"params": "Model Size"}``."""
    mapping = {}
    for item in items or []:
        if "=" not in item:
            raise DataError(f"--col '{item}': expected ROLE=COLUMN, e.g. --col params=\"Model Size\"")
        role, column = item.split("=", 1)
        role, column = role.strip(), column.strip().strip('"').strip("'")
        if not role or not column:
            raise DataError(f"--col '{item}': expected ROLE=COLUMN, e.g. --col params=\"Model Size\"")
        mapping[role] = column
    return mapping


def read_table(path: str | Path, what: str = "table file") -> pd.DataFrame:
    """Read parquet, CSV/TSV, JSONL or a JSON list of records; DataError with the file name otherwise.

    The file must be a regular file within the input size limit, checked before it is opened (a FIFO or
    ``/dev/zero`` never hangs or floods memory). gzip data is recognised by its magic bytes whatever the
    file is called, and so is parquet; otherwise the suffix (the one before ``.gz``) names the format.
    Text must be UTF-8 (a byte-order mark, UTF-16 included, is honoured).
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise DataError(f"{path}: no such file")
    blob = _read_bytes(path, what)
    compressed = blob[:2] == _GZIP_MAGIC
    if compressed:
        blob = _gunzip(blob, path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    kind = _READERS.get(suffix)
    if blob[:4] == _PARQUET_MAGIC:
        kind = "parquet"
    else:
        for magic, name in _OTHER_MAGIC:
            if blob.startswith(magic) and (magic != b"BZh" or blob[4:10] == b"1AY&SY"):
                raise DataError(f"{path}: is {name}; unpack it first (scalefit reads parquet, CSV, TSV, JSONL "
                                f"and JSON, plain or gzip'd)")
        if kind is None and compressed:
            kind = _guess_text_kind(blob)
    if kind is None:
        hint = " (an Excel workbook: save it as CSV)" if suffix in (".xlsx", ".xls", ".ods") else ""
        raise DataError(f"{path}: unknown format {_show(suffix or path.name)}{hint}; use .parquet, .csv, .tsv, "
                        f".jsonl or .json, optionally gzip'd")
    if kind == "parquet":
        frame = _read_parquet(blob, path)
    else:
        label = {"jsonl": "JSONL", "json": "JSON"}.get(kind, kind.upper())
        text = _decode(blob, path, label)
        del blob
        if not text or text.isspace():
            raise DataError(f"{path}: the file is empty" + (" (no header, no rows)" if kind in ("csv", "tsv") else ""))
        if kind in ("csv", "tsv"):
            frame = _read_csv(text, path, "\t" if kind == "tsv" else None)
        elif kind == "jsonl":
            frame = _read_jsonl(text, path)
        else:
            frame = _read_json(text, path)
    if frame.shape[0] == 0:
        raise DataError(f"{path}: table has no rows" + (" (only a header)" if frame.shape[1] else ""))
    frame.columns = [str(c) for c in frame.columns]
    return frame


_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_OTHER_MAGIC = (
    (b"PK\x03\x04", "a zip archive (or an Excel workbook)"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"\x1f\x8b", "gzip-compressed twice"),
)
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _read_bytes(path: Path, what: str) -> bytes:
    """The whole file, once :func:`check_input_file` has passed it; never blocks, never reads past the limit."""
    check_input_file(path, what)
    cap = limit("input_bytes")
    try:
        # O_NONBLOCK: should the name be swapped for a FIFO after the check, open() still returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataError(f"{path}: is not a regular file; the {what} must be a regular file")
        try:
            blob = fh.read(cap + 1)
        except OSError as exc:
            raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    enforce("input_bytes", len(blob), str(path))  # the file grew after the check
    return blob


def _gunzip(blob: bytes, path: Path) -> bytes:
    """gzip data decompressed, refusing more than the input size limit (a small file can hold a huge table)."""
    cap = limit("input_bytes")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as fh:
            out = fh.read(cap + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: the gzip data is corrupt or cut short ({str(exc).strip() or type(exc).__name__})") from None
    if len(out) > cap:
        spec = LIMITS["input_bytes"]
        size = next((f"{cap / scale:.3g} {unit}" for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
                     if cap >= scale), f"{cap} bytes")
        raise LimitError(f"{path}: decompresses to more than {size}, over the limit on the {spec.what}; "
                         f"set {spec.env} to raise it")
    return out


def _guess_text_kind(blob: bytes) -> str:
    """Format of decompressed data whose name says nothing (``runs.gz``): JSON, JSONL or CSV."""
    head = blob[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    return "csv"


def _decode(blob: bytes, path: Path, label: str) -> str:
    """Text of a table file: UTF-8, or the encoding its byte-order mark names; binary data is refused."""
    encoding, body = "utf-8", blob
    for bom, name in _BOMS:
        if blob.startswith(bom):
            encoding, body = name, blob[len(bom):]
            break
    if encoding == "utf-8" and b"\x00" in body:
        raise DataError(f"{path}: holds NUL bytes: a binary file, not {label} text")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line_no = body[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise DataError(f"{path}: is not {encoding.upper()} text (byte 0x{body[exc.start]:02x} on line {line_no}); "
                        f"save the file as UTF-8") from None
    if "\x00" in text:
        raise DataError(f"{path}: holds NUL characters: a binary file, not {label} text")
    return text


def _first_record(text: str, dialect: dict) -> list[str]:
    """The header row as the CSV module splits it (pandas renames duplicated names, this does not)."""
    if dialect["sep"] == r"\s+":
        for row in text[:65536].splitlines():
            if row.strip():
                return row.split()
        return []
    reader = csv.reader(io.StringIO(text[: 1 << 20]), delimiter=dialect["sep"], quotechar=dialect["quotechar"],
                        skipinitialspace=dialect["skipinitialspace"])
    try:
        for row in reader:
            if row:
                return row
    except csv.Error:
        pass
    return []


def _sniff(text: str, sep: str | None) -> dict:
    """Delimiter and leading-space handling of a CSV text (the quote character is always ``"``).

    Only ``,`` ``;`` tab and ``|`` are candidates (an unrestricted sniffer splits a one-column file on
    a letter); a header with none of them is one column, or whitespace-separated when it has spaces.
    """
    dialect = {"sep": sep or ",", "quotechar": '"', "skipinitialspace": False}
    if sep is not None:
        return dialect
    lines = [row for row in text[:65536].splitlines() if row.strip()][:50]
    header = lines[0] if lines else ""
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
        # Its quote-character guess is not used: an apostrophe in a cell made it pick "'" and split rows.
        dialect.update(sep=found.delimiter, skipinitialspace=bool(found.skipinitialspace))
        return dialect
    except csv.Error:
        pass
    counts = {d: header.count(d) for d in ",;\t|"}
    best = max(counts, key=counts.get)
    if counts[best]:
        dialect["sep"] = best
    elif len(header.split()) > 1 and all(len(row.split()) == len(header.split()) for row in lines[1:5]):
        dialect["sep"] = r"\s+"
    return dialect


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def _read_csv(text: str, path: Path, sep: str | None) -> pd.DataFrame:
    dialect = _sniff(text, sep)
    label = "TSV" if sep == "\t" else "CSV"
    options = {"sep": dialect["sep"], "quotechar": dialect["quotechar"], "skipinitialspace": dialect["skipinitialspace"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' ParserWarning/DtypeWarning: the checks below say it once
            # From UTF-8 bytes: a StringIO would hold up to four bytes per character.
            frame = pd.read_csv(io.BytesIO(text.encode("utf-8")), encoding="utf-8", engine="c", low_memory=False,
                                **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, ValueError, csv.Error, OverflowError, MemoryError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        match, quote = _FIELDS.search(message), _QUOTE.search(message)
        if match:
            want, line_no, saw = match.groups()
            message = (f"line {line_no} has {saw} fields but the header has {want} (a stray or wrong "
                       f"delimiter, or an unquoted value holding one)")
        elif quote:
            message = f"the quote opened on line {int(quote.group(1)) + 1} is never closed"
        else:
            message = message.replace("Error tokenizing data. C error: ", "")
        raise DataError(f"{path}: cannot read as {label}: {message}") from None
    if not isinstance(frame.index, pd.RangeIndex):
        raise DataError(f"{path}: the first data row has {frame.shape[1] + frame.index.nlevels} fields but the header "
                        f"names {frame.shape[1]} columns; name every column (or check the delimiter)")
    header = _first_record(text, dialect)
    if len(header) == frame.shape[1] and len(set(header)) < len(header):
        seen: set[str] = set()
        duplicates = {}
        for name, column in zip(header, frame.columns):
            if name in seen:
                duplicates[str(column)] = name
            seen.add(name)
        frame.attrs["duplicate_columns"] = duplicates
    return frame


def _read_parquet(blob: bytes, path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(io.BytesIO(blob))
        meta = handle.metadata
        enforce("memory_bytes", sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
                f"{path}: the uncompressed parquet data")
        frame = handle.read().to_pandas()
    except LimitError:
        raise
    except Exception as exc:  # pyarrow's errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read as parquet: {first}") from None
    names = [str(c) for c in frame.columns]
    if len(set(names)) < len(names):  # parquet allows a name twice; give the copies names a --col can use
        seen: dict[str, int] = {}
        unique, duplicates = [], {}
        for name in names:
            if name in seen:
                seen[name] += 1
                new = f"{name}.{seen[name]}"
                while new in names or new in unique:
                    seen[name] += 1
                    new = f"{name}.{seen[name]}"
                duplicates[new] = name
                unique.append(new)
            else:
                seen[name] = 0
                unique.append(name)
        frame.columns = unique
        frame.attrs["duplicate_columns"] = duplicates
    return frame


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _read_jsonl(text: str, path: Path) -> pd.DataFrame:
    """One JSON object per line; every error names its line."""
    records = []
    for line_no, row in enumerate(text.split("\n"), 1):
        if not row.strip():
            continue
        try:
            record = json.loads(row, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {line_no}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        except _DuplicateKey as exc:
            raise DataError(f"{path}: line {line_no}: the key {_show(exc.args[0])} appears twice in one record; "
                            f"keep one") from None
        except RecursionError:
            raise DataError(f"{path}: line {line_no}: JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {line_no}: expected one JSON object per line, like "
                            f"{{\"params\": 7e9, \"loss\": 2.1}}, not {_json_type(record)}")
        records.append(record)
    return pd.DataFrame.from_records(records)


def _read_json(text: str, path: Path) -> pd.DataFrame:
    """A JSON list of records (one object per run)."""
    try:
        records = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except _DuplicateKey as exc:
        raise DataError(f"{path}: the key {_show(exc.args[0])} appears twice in one record; keep one") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: a .json table must be a list of records (one object per run), not "
                        f"{_json_type(records)}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {i + 1} is {_json_type(record)}; a .json table is a list of objects, "
                            f"one per run")
    return pd.DataFrame.from_records(records)


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _resolve_roles(frame: pd.DataFrame, mapping: Mapping[str, str], source: str,
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
                f"{source}: column {_show(column)} (for {role}) not found; columns are: {_list(frame.columns)}"
            )
        resolved[role] = column
    duplicates = frame.attrs.get("duplicate_columns", {})
    by_norm: dict[str, list[str]] = {}
    for column in frame.columns:
        by_norm.setdefault(_norm(duplicates.get(column, column)), []).append(column)
    taken = set(resolved.values())
    strict = set(strict)
    for role, aliases in _ALIASES.items():
        if role in resolved:
            continue
        candidates: list[str] = []
        for alias in dict.fromkeys(_norm(a) for a in [role, *aliases]):
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
            note = "".join(f" (the header names {_show(name)} more than once; pandas reads the copies as "
                           f"{_list(c for c, o in duplicates.items() if o == name)})" for name in repeated)
            raise DataError(
                f"{source}: {len(usable)} columns could be the {role}: {_list(usable)}{note}; choose one with "
                f"--col {role}=NAME, e.g. --col {role}={_cli_word(usable[-1])}"
            )
        column = usable[0] if usable else candidates[0]
        resolved[role] = column
        taken.add(column)
    return resolved


def _cli_word(name: str) -> str:
    """A column name as it would be typed after ``--col role=``."""
    return name if re.fullmatch(r"[\w./:-]+", name) else '"' + name.replace('"', '\\"') + '"'


def _holds_numbers(series: pd.Series) -> bool:
    """Whether a column could be a numeric role: some values, all of them numbers or number strings."""
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return bool(series.notna().any())
    try:
        values = _numeric(series, "", "")
    except DataError:
        return False
    return bool(np.isfinite(values).any())


def _numeric(series: pd.Series, role: str, source: str) -> np.ndarray:
    """A column as float64; number strings like '7B' are parsed; anything else is a DataError."""
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"{source}: column {_show(series.name)} ({role}) holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_complex_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    values = np.empty(len(series))
    for i, item in enumerate(series.tolist()):
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
            shown = _show(item) if isinstance(item, str) else _show(repr(item))
            raise DataError(
                f"{source}: column {_show(series.name)} ({role}) row {i + 1}: {shown} is not a number"
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
    "flops": (1e-12, 1e40),
    "loss": (0.0, 1e6),  # a per-token loss, or at most a perplexity
}
# Two neighbouring values this many orders of magnitude apart: no sweep has such a hole, a mix of units does.
UNIT_GAP_ORDERS = 3.5


def _fmt_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return _show(value)


def unit_gap(values: np.ndarray) -> tuple[float, float] | None:
    """``(below, above)``: the two neighbouring distinct values with the widest gap, when it is wider than
    :data:`UNIT_GAP_ORDERS` orders of magnitude (a column mixing units); else None."""
    values = np.unique(values[np.isfinite(values) & (values > 0)])
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
    warnings.warn(f"{source}: column {_show(column)} ({role}) jumps from {below:.4g} to {above:.4g}, "
                  f"{np.log10(above / below):.1f} orders of magnitude with no value between; {cause}",
                  UnitsWarning, stacklevel=3)


@dataclass
class Dataset:
    """A validated table: canonical role columns plus provenance and units.

    ``frame`` has one column per resolved role under the role's name (``params``, ``tokens``, ...),
    plus a ``run`` column (the row number as text when the table has none). Curve tables also carry
    ``lr``: run name -> LR at every step (index = step), filled by the curve loader.
    """

    frame: pd.DataFrame
    source: str = "<memory>"
    columns: dict[str, str] = field(default_factory=dict)  # role -> original column name
    units: dict[str, str | None] = field(default_factory=lambda: {"loss_unit": None, "params_convention": None})
    dropped: list[str] = field(default_factory=list)  # one line per dropped group of rows, for reports
    lr: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.frame)

    def has(self, role: str) -> bool:
        return role in self.frame.columns

    def column(self, role: str) -> np.ndarray:
        if role not in self.frame.columns:
            original = self.frame.attrs.get("original_columns", list(self.frame.columns))
            raise DataError(
                f"{self.source}: no column for '{role}'; columns are: {_list(original)} "
                f"(map one with --col {role}=NAME)"
            )
        return self.frame[role].to_numpy(dtype=float)

    @property
    def run_names(self) -> np.ndarray:
        return self.frame["run"].astype(str).to_numpy()

    @property
    def run_codes(self) -> np.ndarray:
        """Integer run id per row, 0..n_runs-1 in order of first appearance."""
        codes, _ = pd.factorize(self.frame["run"].astype(str))
        return codes.astype(np.int64)

    @property
    def n_runs(self) -> int:
        return int(self.frame["run"].nunique())

    def weights(self) -> np.ndarray | None:
        return self.column("weight") if self.has("weight") else None

    def subset(self, mask: np.ndarray) -> "Dataset":
        """Rows where ``mask`` is true (LR sequences of the kept runs come along)."""
        frame = self.frame.loc[np.asarray(mask, dtype=bool)].reset_index(drop=True)
        frame.attrs = dict(self.frame.attrs)
        lr = None
        if self.lr is not None:
            keep = set(frame["run"].astype(str))
            lr = {k: v for k, v in self.lr.items() if k in keep}
        return Dataset(frame, self.source, dict(self.columns), dict(self.units), list(self.dropped), lr)

    def content_hash(self) -> str:
        """sha256 over the canonical columns and the column mapping (recorded in fit.json)."""
        h = hashlib.sha256()
        h.update(json.dumps(self.columns, sort_keys=True).encode())
        for name in sorted(self.frame.columns):
            col = self.frame[name]
            h.update(name.encode())
            if pd.api.types.is_numeric_dtype(col):
                h.update(np.ascontiguousarray(col.to_numpy(dtype=float)).tobytes())
            else:
                h.update("\x1f".join(col.astype(str)).encode())
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


def from_frame(
    frame: pd.DataFrame,
    *,
    source: str = "<memory>",
    columns: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    loss_unit: str | None = None,
    params_convention: str | None = None,
    drop_invalid: bool = False,
    derive_compute: bool = True,
) -> Dataset:
    """Validate a DataFrame into a :class:`Dataset`.

    ``required`` lists the roles the caller needs (a law's inputs and target). Invalid values (NaN,
    inf, zero or negative where positive is required) are an error naming the column and rows, or,
    with ``drop_invalid``, dropped and reported in ``Dataset.dropped``.
    """
    if loss_unit is not None and loss_unit not in LOSS_UNITS:
        raise DataError(f"--loss-unit '{loss_unit}': use one of {', '.join(LOSS_UNITS)}")
    if params_convention is not None and params_convention not in PARAMS_CONVENTIONS:
        raise DataError(f"--params-convention '{params_convention}': use one of {', '.join(PARAMS_CONVENTIONS)}")
    if frame.shape[0] == 0:
        raise DataError(f"{source}: table has no rows")
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
        raise DataError(f"{source}: duplicated column names {_list(dupes)}; rename the copies or keep one")
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

    canon = pd.DataFrame(index=frame.index)
    for role, column in roles.items():
        if role == "run":
            canon["run"] = frame[column].astype(str)
        elif role == "schedule":
            canon["schedule"] = frame[column].astype(str)
        else:
            canon[role] = _numeric(frame[column], role, source)

    if derive_compute:
        with np.errstate(all="ignore"):  # overflow or 0 divisions become inf/NaN, named by the checks below
            if "tokens" not in canon and "flops" in canon and "params" in canon:
                canon["tokens"] = canon["flops"] / (6.0 * canon["params"])
                roles.setdefault("tokens", "flops / (6 * params)")
            if "flops" not in canon and "params" in canon and "tokens" in canon:
                canon["flops"] = 6.0 * canon["params"] * canon["tokens"]

    if "params_avg" in required and "params_avg" not in canon:
        _derive_params_avg(frame, canon, roles, dict(columns or {}), source)

    missing = [r for r in required if r not in canon.columns]
    if missing:
        hint = " ".join(f"--col {r}=NAME" for r in missing)
        if "params_avg" in missing:
            hint += ", or give params, final_sparsity, prune_start and prune_end columns"
        raise DataError(
            f"{source}: missing column for {', '.join(repr(m) for m in missing)}; "
            f"columns are: {_list(frame.columns)} (map with {hint})"
        )

    # Validate values of every role in use (required ones, and weight).
    dropped: list[str] = []
    bad_any = np.zeros(len(canon), dtype=bool)
    check = [r for r in canon.columns if r not in ("run", "schedule")]
    for role in check + (["run"] if "run" in canon.columns else []):
        reasons = []
        if role == "run":
            # A run without an id cannot be resampled as a unit (and pandas keeps NaN through astype(str)).
            ids = canon["run"]
            blank = (ids.isna() | (ids.fillna("").astype(str).str.strip() == "")).to_numpy()
            if blank.any():
                reasons.append((blank, "is empty"))
            values = np.ones(len(canon))
        else:
            values = canon[role].to_numpy(dtype=float)
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
                    first += f", run {_show(canon['run'].iloc[rows[0]])}"
                if role != "run":
                    first += f": {_fmt_value(values[rows[0]])}"
                advice = "fix the data"
                if why.startswith("is above") or why.startswith("is below"):
                    advice = "no real run is that " + ("large" if why.startswith("is above") else "small") + \
                        ": check the column's unit"
                raise DataError(
                    f"{source}: column {_show(column)} ({role}) {why} in {rows.size} row(s): {shown} "
                    f"({first}); {advice}, or pass --drop-invalid to drop them"
                )
            dropped.append(f"dropped {rows.size} row(s) where {_show(column)} {why}: rows {shown}")
            bad_any |= mask
    if bad_any.any():
        canon = canon.loc[~bad_any]
    if len(canon) == 0:
        raise DataError(f"{source}: no valid rows left after dropping invalid values")
    if "weight" in canon.columns and not (canon["weight"] > 0).any():
        raise DataError(f"{source}: column {_show(roles.get('weight', 'weight'))} (weight) is zero in every row; "
                        f"a weight is a relative importance: give some rows a positive weight")

    for role in ("params", "params_avg", "tokens", "flops"):
        if role in canon.columns and role in required and roles.get(role) in frame.columns:
            _warn_unit_gap(canon[role].to_numpy(dtype=float), role, roles[role], source)

    if "run" not in canon.columns:
        canon["run"] = [str(i + 1) for i in canon.index]
    canon = canon.reset_index(drop=True)
    canon.attrs["original_columns"] = list(frame.columns)
    units = {"loss_unit": loss_unit, "params_convention": params_convention}
    return Dataset(canon, source, {k: v for k, v in roles.items()}, units, dropped)


PRUNING_ROLES = ("final_sparsity", "prune_start", "prune_end")


def average_params(params, final_sparsity, prune_start, prune_end, params_unprunable=0.0):
    """Average parameter count over training under the cubic gradual-pruning schedule (Zhu & Gupta 2017).

    Sparsity of the prunable weights P = params - params_unprunable is
    s(u) = s_f (1 - (1 - (u - u_s)/(u_e - u_s))^3) for u in [u_s, u_e] (u = fraction of training),
    0 before and s_f after. The cubic averages to 3/4 over the window, so
    N_avg = params - P s_f [0.75 (u_e - u_s) + (1 - u_e)]  (Jin et al. 2025); s_f = 0 gives params exactly.
    """
    params = np.asarray(params, dtype=float)
    pruned = params - np.asarray(params_unprunable, dtype=float)
    u_s, u_e = np.asarray(prune_start, dtype=float), np.asarray(prune_end, dtype=float)
    mean_sparsity = np.asarray(final_sparsity, dtype=float) * (0.75 * (u_e - u_s) + (1.0 - u_e))
    return params - pruned * mean_sparsity


def _derive_params_avg(frame, canon, roles, mapping, source) -> None:
    """Fill the ``params_avg`` role from the columns that define a pruning run, when they are present."""
    found = {}
    for role in (*PRUNING_ROLES, "params_unprunable"):
        column = mapping.get(role, role)
        if column in frame.columns:
            found[role] = _numeric(frame[column], role, source)
            roles[role] = column
    if not found:
        return  # the generic "missing column" error below names params_avg
    absent = [r for r in ("params", *PRUNING_ROLES) if r not in found and (r != "params" or "params" not in canon)]
    if absent:
        raise DataError(
            f"{source}: no params_avg column, and the pruning columns are incomplete: missing "
            f"{', '.join(absent)} (give params_avg, or params, final_sparsity, prune_start, prune_end)"
        )
    params = canon["params"].to_numpy(dtype=float)
    unprunable = found.get("params_unprunable", np.zeros_like(params))
    checks = [
        ("final_sparsity", (found["final_sparsity"] >= 0) & (found["final_sparsity"] < 1), "must lie in [0, 1)"),
        ("prune_start", (found["prune_start"] >= 0) & (found["prune_start"] <= 1), "must be a fraction in [0, 1]"),
        ("prune_end", (found["prune_end"] >= found["prune_start"]) & (found["prune_end"] <= 1),
         "must be a fraction in [prune_start, 1]"),
        ("params_unprunable", (unprunable >= 0) & (unprunable <= params), "must lie in [0, params]"),
    ]
    for role, ok, why in checks:
        bad = np.flatnonzero(~ok)
        if bad.size:
            column = roles.get(role, role)
            raise DataError(
                f"{source}: column '{column}' ({role}) row {bad[0] + 1}: value "
                f"{(found.get(role, unprunable))[bad[0]]!r} {why}"
            )
    canon["params_avg"] = average_params(
        params, found["final_sparsity"], found["prune_start"], found["prune_end"], unprunable
    )
    roles["params_avg"] = "average_params(params, final_sparsity, prune_start, prune_end)"


def load_runs(path: str | Path, **kwargs) -> Dataset:
    """Read a table file and validate it: see :func:`from_frame` for the keyword arguments."""
    frame = read_table(path)
    return from_frame(frame, source=str(path), **kwargs)
