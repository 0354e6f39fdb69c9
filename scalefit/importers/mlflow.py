"""MLflow tracking stores: every run's metric history (``pip install 'scalefit[mlflow]'``: mlflow-skinny and
the SQL libraries its ``sqlite:///`` store needs).

The source is a tracking URI (``sqlite:///mlflow.db``, ``file:///path/mlruns``, ``http://host:5000``) or
the path of a local store: an sqlite file or an ``mlruns/`` folder. A local store is checked to be an
MLflow store before MLflow opens it: MLflow would otherwise create its tables in any database, and its
folder layout (``mlruns/0/meta.yaml``, ``.trash``) in any folder, it is pointed at, and the import must write
nothing. Database servers (``postgresql://``, ``mysql://``, ...) are refused for the same reason: they
cannot be checked without a driver, so read them through their tracking server. MLflow 3 opens a folder
store only with ``MLFLOW_ALLOW_FILE_STORE=true``; for a checked folder the import sets it while it reads
(unless it is set already).
Metric histories come from ``MlflowClient.get_metric_history`` (every logged value, in time order, so a
restarted run that logs a step again is resolved by the later value); only keys that could be a loss,
LR, tokens or FLOPs, or that were asked for, are fetched. N and the batch size come from the run's
params. Runs that share a name within an experiment (a restart started as a new run) are stitched in
the order they started, unless they overlap more than a restart would: then they are kept apart as
``NAME#RUN_ID`` (``runs`` may name either); with runs in more than one experiment, a run is named
``EXPERIMENT/RUN``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import warnings
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import numpy as np

from ..errors import DataError
from ..tables import show_name
from . import keys as K
from .series import RunLog, Series, matches

_SQLITE_MAGIC = b"SQLite format 3\x00"
_NEEDED_TABLES = {"experiments", "runs", "metrics", "params"}
_SERVER_SCHEMES = ("http", "https", "databricks")  # the server owns its store: reading writes nothing here
_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def _mlflow():
    try:
        import mlflow  # noqa: F401
        from mlflow.entities import ViewType
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise DataError("reading an MLflow tracking store needs the optional extra: "
                        "pip install 'scalefit[mlflow]'") from None
    return MlflowClient, ViewType


def tracking_uri(source: str) -> str:
    """A tracking URI for ``source``; a local store (sqlite file or ``mlruns/`` folder) must exist and be an
    MLflow store, and only the kinds of store that can be read without writing are taken."""
    if source.lower().startswith("file:"):
        parts = urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise DataError(f"{source}: a file: URI on host {parts.netloc!r}; give file:///ABSOLUTE/PATH or the "
                            f"mlruns folder's path")
        return _folder_store(Path(url2pathname(unquote(parts.path))))
    scheme = source.partition("://")[0].lower() if "://" in source else ""
    if scheme.split("+")[0] == "sqlite":
        rest = source.partition("://")[2]
        if not rest.startswith("/") or rest == "/":
            raise DataError(f"{source}: an in-memory sqlite database holds no runs; give sqlite:///PATH/mlflow.db")
        return _sqlite_store(Path(rest[1:]))  # sqlite:////abs/path is absolute, sqlite:///rel.db relative
    if scheme in _SERVER_SCHEMES:
        return source
    if scheme:
        raise DataError(f"{source}: only local MLflow stores (sqlite:///mlflow.db, an mlruns folder) and tracking "
                        f"servers (http://host:5000) are read; MLflow would create its tables in a {scheme} "
                        f"database that has none, so read this one through the tracking server in front of it")
    path = Path(source)
    return _folder_store(path) if path.is_dir() else _sqlite_store(path)


def _folder_store(path: Path) -> str:
    """``file://`` URI of an existing MLflow folder store: experiment folders holding ``meta.yaml`` and the
    ``.trash`` folder (MLflow's FileStore creates whichever of the root, ``0/meta.yaml`` and ``.trash`` is
    missing when it opens a folder)."""
    if not path.exists():
        raise DataError(f"{path}: no such MLflow store folder")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; a file: URI names an MLflow store folder (mlruns), for an sqlite "
                        f"file give sqlite:///{path}")
    try:
        experiments = [d for d in path.iterdir() if d.name != ".trash" and (d / "meta.yaml").is_file()]
        has_trash = (path / ".trash").is_dir()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the MLflow store folder ({exc.strerror or exc})") from None
    if not experiments:
        raise DataError(f"{path}: not an MLflow store folder (no experiment folder holding a meta.yaml, as "
                        f"mlruns/0/meta.yaml); give the mlruns folder itself, or the store's sqlite file")
    if not has_trash:
        raise DataError(f"{path}: an MLflow store folder without its .trash folder, which MLflow creates when it "
                        f"opens the store, and the import writes nothing; create it (mkdir {path / '.trash'}) "
                        f"and import again")
    return path.resolve().as_uri()


def _sqlite_store(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such MLflow database file")
    with open(path, "rb") as fh:
        if fh.read(16) != _SQLITE_MAGIC:
            raise DataError(f"{path}: not an sqlite database, so not an MLflow tracking store")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot read the sqlite database ({exc})") from None
    if not _NEEDED_TABLES <= tables:
        raise DataError(f"{path}: an sqlite database without MLflow's tables "
                        f"({', '.join(sorted(_NEEDED_TABLES - tables))} missing): not an MLflow tracking store")
    return f"sqlite:///{path.resolve()}"


@contextlib.contextmanager
def _file_store_allowed(uri: str):
    """MLflow 3 opens a folder store only with MLFLOW_ALLOW_FILE_STORE set (it wants new data in a
    database); reading a checked folder is what the user asked for, so allow it for the read."""
    if not uri.startswith("file:") or _ALLOW_FILE_STORE in os.environ:
        yield
        return
    os.environ[_ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        os.environ.pop(_ALLOW_FILE_STORE, None)


@contextlib.contextmanager
def _quiet():
    """MLflow and alembic log INFO lines on every open, and SQLAlchemy warns about MLflow's own code; the
    importer reports what matters itself."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _pages(call: Callable, **kwargs) -> list:
    out, token = [], None
    while True:
        page = call(page_token=token, **kwargs)
        out += list(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def read_mlflow(source: str, *, wanted: Callable[[str], bool], runs: str | None = None,
                experiment: str | None = None) -> tuple[list[RunLog], list[str]]:
    """Runs of the tracking store at ``source`` whose name matches ``runs`` (see the module docstring)."""
    uri = tracking_uri(source)
    MlflowClient, ViewType = _mlflow()
    pattern = re.compile(runs) if runs else None
    try:
        with _quiet(), _file_store_allowed(uri):
            client = MlflowClient(tracking_uri=uri)
            experiments = _pages(client.search_experiments, view_type=ViewType.ACTIVE_ONLY, max_results=1000)
            if experiment is not None:
                experiments = [e for e in experiments if e.name == experiment or e.experiment_id == experiment]
                if not experiments:
                    raise DataError(f"{source}: no experiment {show_name(experiment)}", options=("experiment",))
            found = []
            for exp in experiments:
                listed = _pages(client.search_runs, experiment_ids=[exp.experiment_id],
                                run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
                for run in sorted(listed, key=lambda r: (r.info.start_time or 0)):
                    name = run.info.run_name or run.info.run_id
                    if pattern is not None and not matches(pattern, name, run.info.run_id):
                        continue
                    found.append((exp, run, name))
            with_runs = {exp.experiment_id for exp, _, _ in found}
            out = []
            for exp, run, name in found:
                series = {}
                for key in run.data.metrics:
                    if not wanted(key):
                        series[key] = Series(np.empty(0), np.empty(0))  # named in messages, never fetched
                        continue
                    history = client.get_metric_history(run.info.run_id, key)
                    history = sorted(history, key=lambda m: m.timestamp)  # stable: a restart's values come later
                    series[key] = Series([m.step for m in history], [m.value for m in history])
                label = f"{exp.name}/{name}" if len(with_runs) > 1 else name
                meta = K.run_metadata(dict(run.data.params))
                out.append(RunLog(label, f"{source} run {run.info.run_id}", series, meta, run_id=run.info.run_id))
    except DataError:
        raise
    except Exception as exc:  # MlflowException and the store's errors: one line, MLflow's first sentence
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{source}: MLflow could not read the store: {first[:200]}") from None
    if not out:
        what = f" matching runs={runs!r}" if runs else ""
        raise DataError(f"{source}: no MLflow runs{what}", options=("runs",) if runs else ())
    return out, [f"mlflow: {len(out)} run(s) in {len(with_runs)} experiment(s) of {show_name(source)}"]
