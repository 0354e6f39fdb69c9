"""TensorBoard event files: one run per folder holding ``events.out.tfevents.*`` files.

Read with TensorBoard's own record reader (``pip install 'scalefit[tensorboard]'``), record by record:
every scalar is kept. (TensorBoard's ``EventAccumulator`` keeps a reservoir sample of 10,000 scalars per
tag unless told otherwise; that would thin a long curve without a word, so it is not used.) Both forms a
scalar is written in are read: ``simple_value`` (PyTorch, tensorboardX) and a scalar tensor (TF2,
``tensorboard.summary.Writer``). The files of a folder are read in the order they were written (their
names carry the start time): a restarted job appends a new file, and, as TensorBoard purges, what the
earlier files logged from the step it resumed at on is dropped. Each event file must be a regular file
within the input size limit (``SCALEFIT_MAX_INPUT_BYTES``).

A file that does not read to its end (a bad checksum, a cut-short record, not an event file) is an error
naming it: TensorBoard's reader stops quietly there, which would drop the rest of the curve.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .._io import check_input_file
from ..errors import DataError
from ..tables import show_name
from .series import RunLog, Series

EVENT_FILE = re.compile(r"(^|.*\.)tfevents\.")
_RECORD_OVERHEAD = 16  # TFRecord framing: 8-byte length, 4-byte length CRC, data, 4-byte data CRC


def _tensorboard():
    try:
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.compat.proto import event_pb2
        from tensorboard.util import tensor_util
    except ImportError:
        raise DataError("reading TensorBoard event files needs the optional extra: "
                        "pip install 'scalefit[tensorboard]'") from None
    return event_file_loader, event_pb2, tensor_util


def event_files(folder: Path) -> dict[Path, list[Path]]:
    """Event files under ``folder`` by the folder that holds them, each folder's in writing order."""
    found: dict[Path, list[Path]] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            if EVENT_FILE.match(name):
                found.setdefault(Path(root), []).append(Path(root) / name)
    return {d: sorted(fs, key=_written_order) for d, fs in sorted(found.items())}


def _written_order(path: Path):
    """``events.out.tfevents.<seconds>.<host>[.<pid>.<n>]``: by start time, then by name."""
    parts = path.name.split("tfevents.", 1)[-1].split(".")
    try:
        return (0, float(parts[0]), path.name)
    except ValueError:
        return (1, 0.0, path.name)


def _scalar(value, tensor_util) -> float | None:
    """The number in one summary value, or None when it is not a scalar (a histogram, an image, text)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        tensor = value.tensor
        if tensor.tensor_shape.dim or tensor.dtype in (0, 7):  # not a scalar, or an invalid or string tensor
            return None
        try:
            array = tensor_util.make_ndarray(tensor)
        except Exception:  # a dtype make_ndarray does not know: not a scalar we can use
            return None
        if array.shape != () or array.dtype.kind not in "fiub":
            return None
        return float(array)
    return None


def read_event_file(path: Path, steps: dict[str, list], values: dict[str, list]) -> int:
    """Append every scalar of one event file to ``steps``/``values`` by tag; returns the number of events."""
    event_file_loader, event_pb2, tensor_util = _tensorboard()
    check_input_file(path, "event file")  # a regular file within the size limit: a FIFO would hang the read
    try:
        size = path.stat().st_size
        loader = event_file_loader.RawEventFileLoader(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the event file ({exc})") from None
    consumed = events = 0
    try:
        for record in loader.Load():
            consumed += len(record) + _RECORD_OVERHEAD
            event = event_pb2.Event.FromString(record)
            events += 1
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                number = _scalar(value, tensor_util)
                if number is not None:
                    steps.setdefault(value.tag, []).append(event.step)
                    values.setdefault(value.tag, []).append(number)
    except DataError:
        raise
    except Exception as exc:  # protobuf's DecodeError and the reader's own errors come in several types
        raise DataError(f"{path}: corrupt event file: record {events + 1} does not parse "
                        f"({type(exc).__name__})") from None
    if consumed != size:
        raise DataError(f"{path}: corrupt or cut-short event file: only {consumed} of its {size} bytes read as "
                        f"{events} whole event record(s) (a bad checksum, a truncated record, or not an event file)")
    return events


def _read_run(paths: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar of one run's event files, by tag: ``(steps, values)`` in the order written."""
    steps: dict[str, list] = {}
    values: dict[str, list] = {}
    for path in paths:
        read_event_file(path, steps, values)
    return {tag: (np.asarray(steps[tag], dtype=float), np.asarray(values[tag], dtype=float)) for tag in steps}


def read_tensorboard(folder: str | Path, jobs: int = 1) -> tuple[list[RunLog], list[str]]:
    """One :class:`RunLog` per folder holding event files, named by its path below ``folder``; with ``jobs``
    other than 1, run folders are read in parallel processes (the record reader is pure Python)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: no such folder")
    if not folder.is_dir():
        if EVENT_FILE.match(folder.name):
            files = {folder.parent: [folder]}
        else:
            raise DataError(f"{folder}: not a folder of TensorBoard event files")
    else:
        files = event_files(folder)
    if not files:
        raise DataError(f"{folder}: no TensorBoard event files (events.out.tfevents.*) in this folder or below")
    if jobs != 1 and len(files) > 1:
        from joblib import Parallel, delayed

        workers = min(len(files), (os.cpu_count() or 1) if jobs == -1 else jobs)
        tables = Parallel(n_jobs=workers)(delayed(_read_run)(paths) for paths in files.values())
    else:
        tables = [_read_run(paths) for paths in files.values()]
    runs = []
    for (run_dir, paths), table in zip(files.items(), tables):
        relative = run_dir.relative_to(folder) if folder.is_dir() else Path(run_dir.name)
        name = str(relative) if str(relative) != "." else (folder.resolve().name if folder.is_dir() else run_dir.name)
        if not table:
            raise DataError(f"{run_dir}: the event file(s) hold no scalars (tags of other kinds only)")
        series = {tag: Series(steps, values) for tag, (steps, values) in table.items()}
        note = [f"{len(paths)} event files read in the order written"] if len(paths) > 1 else []
        runs.append(RunLog(name, str(run_dir), series, notes=note))
    return runs, [f"tensorboard: {len(runs)} run(s) under {show_name(str(folder))}"]
