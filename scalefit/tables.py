"""Reading table files: parquet, CSV/TSV, JSONL and JSON, plain or gzip'd, as untrusted input.

The file must be a regular file within the input size limit (checked before it is opened); formats are
recognised by their first bytes where they have magic numbers, else by suffix; text must be UTF-8 (a
byte-order mark is honoured). Every failure is one DataError naming the file and, where it can, the line.
pandas is imported only by the readers that use it: ``read_table(path, light=True)`` reads a small CSV/TSV
file with the stdlib csv module instead (:mod:`scalefit.csvtable`), the path a point fit takes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import stat
import sys
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import check_input_file
from .errors import DataError
from .limits import LIMITS, LimitError, enforce, limit

if TYPE_CHECKING:
    import pandas as pd

    from .csvtable import TextTable

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


def show_name(text, width: int = 60) -> str:
    """A name or cell for a one-line message: quoted, or repr() when it hides whitespace or control chars;
    cut to ``width`` characters."""
    text = str(text)
    if len(text) > width:
        text = text[: width - 3] + "..."
    return f"'{text}'" if text and text.isprintable() and text == text.strip() else repr(text)


def show_names(names) -> str:
    return ", ".join(show_name(n) for n in names)


def normalise_name(name) -> str:
    """A column name or logged key as compared against aliases: lower case, spaces, ``_`` and ``-`` removed
    (``Model Size`` -> ``modelsize``, ``train/CE loss`` -> ``train/celoss``). The one rule for tables, sweeps
    and imported logs, so an alias written for one matches in the others."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def read_table(path: str | Path, what: str = "table file", *, light: bool = False) -> "pd.DataFrame | TextTable":
    """Read parquet, CSV/TSV, JSONL or a JSON list of records; DataError with the file name otherwise.

    The file must be a regular file within the input size limit, checked before it is opened (a FIFO or
    ``/dev/zero`` never hangs or floods memory). gzip data is recognised by its magic bytes whatever the
    file is called, and so is parquet; otherwise the suffix (the one before ``.gz``) names the format.
    Text must be UTF-8 (a byte-order mark, UTF-16 included, is honoured).

    ``light=True``: a small CSV/TSV file comes back as a :class:`scalefit.csvtable.TextTable` read without
    pandas (``scalefit.data.load_runs`` takes it; a table it cannot promise to read as pandas does comes
    back as a DataFrame, as does every other format).
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
        raise DataError(f"{path}: unknown format {show_name(suffix or path.name)}{hint}; use .parquet, .csv, .tsv, "
                        f".jsonl or .json, optionally gzip'd")
    if kind == "parquet":
        frame = _read_parquet(blob, path)
    else:
        label = {"jsonl": "JSONL", "json": "JSON"}.get(kind, kind.upper())
        text = _decode(blob, path, label)
        del blob
        if not text or text.isspace():
            raise DataError(f"{path}: the file is empty" + (" (no header, no rows)" if kind in ("csv", "tsv") else ""))
        if kind in ("csv", "tsv") and light:
            table = _read_csv_light(text, "\t" if kind == "tsv" else None)
            if table is not None:
                return table
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
    used = [d for d in ",;\t|" if d in header]
    if len(used) == 1 and '"' not in text[:65536] and all(row.count(used[0]) == header.count(used[0]) for row in lines):
        # The common plain table: one candidate, the same count on every line, no quotes. The sniffer
        # would pick it too; its regular expressions cost ~5 ms of a small fit's start-up.
        d = used[0]
        return dict(dialect, sep=d, skipinitialspace=header.count(d) == header.count(d + " "))
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


def _read_csv_light(text: str, sep: str | None) -> "TextTable | None":
    """The table read by the stdlib csv module, or None where pandas must read it (csvtable.NeedPandas)."""
    from .csvtable import NeedPandas, parse_text

    try:
        return parse_text(text, _sniff(text, sep))
    except NeedPandas:
        return None


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def _read_csv(text: str, path: Path, sep: str | None) -> "pd.DataFrame":
    import pandas as pd

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


def release_arrow_memory() -> None:
    """Hand the operating system the pages Arrow's allocator keeps after freeing them. Reading parquet
    allocates there, and so does pandas on a string column (an Arrow array since pandas 3): a 1M-row
    curve table's load kept 36 MB after the read and 48 MB more after its validation, which a fit's peak
    then stood on. Nothing to do where pyarrow was never imported."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()


def _read_parquet(blob: bytes, path: Path) -> "pd.DataFrame":
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
    finally:
        release_arrow_memory()
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


def _read_jsonl(text: str, path: Path) -> "pd.DataFrame":
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
            raise DataError(f"{path}: line {line_no}: the key {show_name(exc.args[0])} appears twice in one record; "
                            f"keep one") from None
        except RecursionError:
            raise DataError(f"{path}: line {line_no}: JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {line_no}: expected one JSON object per line, like "
                            f"{{\"params\": 7e9, \"loss\": 2.1}}, not {_json_type(record)}")
        records.append(record)
    import pandas as pd

    return pd.DataFrame.from_records(records)


def _read_json(text: str, path: Path) -> "pd.DataFrame":
    """A JSON list of records (one object per run)."""
    try:
        records = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except _DuplicateKey as exc:
        raise DataError(f"{path}: the key {show_name(exc.args[0])} appears twice in one record; keep one") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: a .json table must be a list of records (one object per run), not "
                        f"{_json_type(records)}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {i + 1} is {_json_type(record)}; a .json table is a list of objects, "
                            f"one per run")
    import pandas as pd

    return pd.DataFrame.from_records(records)


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")
