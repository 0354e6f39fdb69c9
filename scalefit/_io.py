"""The one place that touches files for scalefit: reading inputs safely, and writing every artefact.

Inputs must be regular files under a size limit (a FIFO or ``/dev/zero`` would hang or exhaust memory).
Every output -- fit.json, draws, tables, plots, schedules, cost models, JUnit reports, kept baselines --
goes through :func:`atomic_write`: a temp file in the same folder, renamed into place, so a reader never
sees half a file; an existing file (or a symlink planted at the name) is never replaced unless ``force``,
and without ``force`` the final link is made exclusively, so two writers cannot both "win". Writes never
follow a symlink: the link itself is replaced. All artefacts get the same mode (0666 less the umask).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DataError, option_error
from .limits import enforce

_WRITTEN: list[Path] = []  # paths written by this process, for an honest message on interrupt


def written() -> list[Path]:
    """Files this process has written so far (the CLI names them when interrupted)."""
    return list(_WRITTEN)


# ---------------------------------------------------------------------- JSON
def json_safe(value: Any) -> Any:
    """numpy and other values -> plain JSON types; NaN/inf -> null (strict JSON has neither).

    One conversion for fit.json, its checksum and every JSON output of the CLI.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if type(value).__module__ == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            return [json_safe(v) for v in value.tolist()]
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.floating):
            value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


# ---------------------------------------------------------------------- reading
def check_input_file(path: str | Path, what: str = "input file", limit: str = "input_bytes") -> Path:
    """``path`` as a Path once it is known to be a readable regular file within the size limit."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(
            st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
        raise DataError(f"{path}: is {kind}; the {what} must be a regular file")
    enforce(limit, st.st_size, f"{path}")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: permission denied reading the {what}")
    return path


def read_json(path: str | Path, what: str = "JSON file", limit: str = "fit_json_bytes") -> Any:
    """Parse a JSON file checked by :func:`check_input_file`; any parse failure is one DataError."""
    path = check_input_file(path, what, limit)
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a valid {what} (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not a valid {what} (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: not a valid {what} (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise DataError(f"{path}: not a valid {what} ({str(exc)[:80]})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------- writing
def refuse_overwrite(path: str | Path, force: bool, remedy: str | None = None) -> Path:
    """Check, before any work, that ``path`` can be written: not a folder, in a writable folder, and not
    an existing file (or link) unless ``force``. Returns the path. ``remedy``: what the refusal tells the
    caller to pass instead of ``force=True``."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; name a file to write")
    if os.path.lexists(path) and not force:
        raise DataError(f"{path}: already exists; pass {remedy or 'force=True'} to overwrite it",
                        options=() if remedy else ("force",))
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{path}: the folder {existing} is not writable")
    if existing == folder:  # access() says yes to root everywhere: create and remove a probe to be sure
        import tempfile  # here: only writing needs it (with random, 2-3 ms of every command's start-up)

        try:
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        except OSError as exc:
            raise DataError(f"{path}: cannot write in {folder} ({exc.strerror or exc})") from None
        os.close(fd)
        os.unlink(probe)
    return path


def check_outputs(outputs: dict[str, str | Path | None], inputs=(), *, force: bool = False) -> None:
    """Pre-flight for a command's output files (``{"out": path, "plot": path}``, keyed by the parameter that
    names each): each writable, no two the same file, and none of them one of the command's ``inputs`` (even
    with ``force``)."""
    seen: dict[Path, str] = {}
    sources = {Path(p).resolve(): p for p in inputs if p is not None and os.path.lexists(p)}
    for param, path in outputs.items():
        if path is None:
            continue
        refuse_overwrite(path, force)
        key = Path(path).resolve()
        if key in sources:
            raise option_error(param, Path(path), "that is an input of this command; name another file")
        if key in seen:
            raise option_error(param, Path(path), f"the same file as {seen[key]}; name another file",
                               options=(seen[key],))
        seen[key] = param


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, content: str | bytes | Callable[[Any], Any], *, force: bool = False,
                 binary: bool | None = None, remedy: str | None = None) -> Path:
    """Write ``content`` (text, bytes, or a function that writes to a file handle) to ``path`` atomically.

    Without ``force`` an existing name is refused, also when another process creates it meanwhile (the
    final step is an exclusive hard link). With ``force`` the rename replaces a file or a symlink itself,
    never what a link points at.
    """
    path = Path(path)
    refuse_overwrite(path, force, remedy)
    if binary is None:
        binary = isinstance(content, (bytes, bytearray))
    folder = path.parent if str(path.parent) else Path(".")
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an artefact is shared like any output file
        if force:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    except FileExistsError:
        raise DataError(f"{path}: already exists; pass {remedy or 'force=True'} to overwrite it",
                        options=() if remedy else ("force",)) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _WRITTEN.append(path)
    return path


def _link_exclusive(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there, atomically (hard link; rename where unsupported)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: the best remaining check
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse_cell(value: Any) -> Any:
    """Spreadsheet programs run a cell that starts with = + - @ as a formula: quote it as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
            return value  # a plain negative number stays a number
        except ValueError:
            return "'" + value
    return value


def write_table(frame, path: str | Path, *, force: bool = False) -> Path:
    """A pandas table as ``.csv`` (formula-looking text cells quoted) or ``.parquet``, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise DataError(f"{path}: use a .parquet or .csv file name")
    if suffix == ".csv":
        safe = frame.copy()
        from pandas.api.types import is_numeric_dtype

        for column in safe.columns:
            if not is_numeric_dtype(safe[column]):
                safe[column] = safe[column].astype(object).map(_defuse_cell)
        safe.columns = [_defuse_cell(str(c)) for c in safe.columns]
        return atomic_write(path, safe.to_csv(index=False), force=force)
    return atomic_write(path, lambda fh: frame.to_parquet(fh, index=False), force=force, binary=True)


def keep_copy(path: str | Path, tag: str) -> Path:
    """Copy ``path`` to a new, uniquely named ``<name>.<tag>[.N].prev`` beside it, created exclusively
    (never through a planted symlink, never over another copy). Returns the copy's path."""
    path = Path(path)
    data = check_input_file(path, "file to keep", "fit_json_bytes").read_bytes()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for n in range(1000):
        kept = path.with_name(f"{path.name}.{tag}{'' if n == 0 else f'.{n}'}.prev")
        try:
            fd = os.open(kept, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise DataError(f"{kept}: cannot keep a copy of {path} ({exc.strerror or exc})") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _WRITTEN.append(kept)
        return kept
    raise DataError(f"{path}: too many kept copies named {path.name}.{tag}.*.prev; remove old ones")


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for ``path`` (a ``.<name>.lock`` file beside it) for the block."""
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, exclusive creation still protects
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
