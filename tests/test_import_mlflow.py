"""`scalefit import mlflow`: a real sqlite tracking store, created and filled by mlflow itself."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import warnings

import numpy as np
import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")

from cli_helpers import assert_clean_error, run  # noqa: E402
from test_import_helpers import fit_imported, synthetic_curves  # noqa: E402

from scalefit.errors import DataError  # noqa: E402
from scalefit.importers import import_runs  # noqa: E402


def _log(client, run_id, key, steps, values):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(v), now + i, int(s)) for i, (s, v) in enumerate(zip(steps, values))]
    for start in range(0, len(metrics), 1000):  # the store takes at most 1000 metrics a batch
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three runs in one experiment (params as a training script logs them), one of them restarted as a
    second MLflow run with the same name, plus a run in a second experiment."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with warnings.catch_warnings():  # SQLAlchemy's deprecation notes about MLflow's own code
        warnings.simplefilter("ignore", DeprecationWarning)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments()
    exp = client.create_experiment("scaling", artifact_location=str(folder / "artifacts"))
    curves = synthetic_curves(seed=2)
    for name, c in curves.items():
        params = {"n_params": "124M", "seq_len": "1024", "global_batch_size": "256"}
        parts = [(0, 600), (500, 1000)] if name == "cosine" else [(0, 1000)]
        for start, stop in parts:  # the cosine job died after step 600 and resumed from step 500
            r = client.create_run(exp, run_name=name)
            for key, value in params.items():
                client.log_param(r.info.run_id, key, value)
            steps = np.arange(start, stop)
            _log(client, r.info.run_id, "learning_rate", steps, c["lr"][start:stop])
            keep = (c["steps"] >= start) & (c["steps"] < stop)
            _log(client, r.info.run_id, "train_loss", c["steps"][keep], c["loss"][keep])
            _log(client, r.info.run_id, "grad_norm", steps[::50], np.ones(steps[::50].size))
            client.set_terminated(r.info.run_id)
            time.sleep(0.01)  # distinct start times: the restart sorts after the first part
    other = client.create_experiment("other", artifact_location=str(folder / "artifacts2"))
    r = client.create_run(other, run_name="side")
    _log(client, r.info.run_id, "loss", [1, 2, 3], [3.0, 2.9, 2.8])
    return folder / "mlflow.db", curves


def test_sqlite_store_imports_and_fits_multipower_end_to_end(store, tmp_path):
    db, curves = store
    out = tmp_path / "runs.parquet"
    res = run("import", "mlflow", f"sqlite:///{db}", "--experiment", "scaling", "--out", out)
    assert res.exit_code == 0, res.output
    assert "loss: 'train_loss'" in res.stderr and "lr: 'learning_rate'" in res.stderr
    assert "warning:" not in res.stderr and "INFO" not in res.stderr  # MLflow's own chatter kept out
    assert "run 'cosine': 2 logs share this name and were stitched" in res.stderr
    table = pd.read_parquet(out)
    assert sorted(table["run"].unique()) == sorted(curves)
    for name, c in curves.items():
        rows = table[table["run"] == name]
        np.testing.assert_allclose(rows["lr"], c["lr"], rtol=1e-12)  # MLflow stores float64
        logged = rows.dropna(subset=["loss"])
        np.testing.assert_array_equal(logged["step"], c["steps"])
        np.testing.assert_allclose(logged["loss"], c["loss"], rtol=1e-12)
    # N, sequence length and the batch in tokens from the run's params
    assert set(table["params"]) == {124e6} and set(table["seq_len"]) == {1024.0}
    assert set(table["batch_tokens"]) == {256.0 * 1024}
    fit_imported(run, out, tmp_path)


def test_runs_in_two_experiments_are_named_by_experiment(store):
    db, _ = store
    imported = import_runs("mlflow", [str(db)], runs="side|wsd", lr="none")
    assert sorted(imported.frame["run"].unique()) == ["other/side", "scaling/wsd"]


def test_a_database_that_is_not_an_mlflow_store_is_refused_and_left_alone(tmp_path):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE things (x)")
    before = db.read_bytes()
    out = tmp_path / "runs.parquet"
    assert_clean_error(run("import", "mlflow", db, "--out", out), "not an MLflow tracking store")
    assert db.read_bytes() == before  # MLflow never got to create its tables in it
    assert_clean_error(run("import", "mlflow", tmp_path / "nope.db", "--out", out), "no such MLflow database file")
    assert not (tmp_path / "nope.db").exists() and not out.exists()


def test_no_matching_run_or_experiment(store):
    db, _ = store
    with pytest.raises(DataError, match="no experiment 'missing'"):
        import_runs("mlflow", [str(db)], experiment="missing")
    with pytest.raises(DataError, match="no MLflow runs matching runs='\\^zzz'"):
        import_runs("mlflow", [str(db)], runs="^zzz")


def _tree(folder):
    """Every path under ``folder`` with the bytes and modification time of each file: any write shows."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


_WRITE_FOLDER_STORE = """
import json, sys, time, warnings
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
root, curves = sys.argv[1], json.load(open(sys.argv[2]))
warnings.simplefilter("ignore")
client = MlflowClient(tracking_uri=root)
exp = client.create_experiment("scaling")
for name, c in curves.items():
    r = client.create_run(exp, run_name=name)
    client.log_param(r.info.run_id, "n_params", "124M")
    now = int(time.time() * 1000)
    client.log_batch(r.info.run_id, metrics=[Metric("train_loss", v, now + i, s)
                                             for i, (s, v) in enumerate(zip(c["steps"], c["loss"]))])
    client.set_terminated(r.info.run_id)
"""


@pytest.fixture(scope="module")
def folder_store(tmp_path_factory):
    """An ``mlruns`` folder written by MLflow's own FileStore: two runs of different schedules. Written in
    another process, so that this one has not opened (and cached) the store before the import does."""
    import json
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("filestore")
    root = folder / "mlruns"
    curves = {k: v for k, v in synthetic_curves(seed=3).items() if k in ("cosine", "wsd")}
    (folder / "curves.json").write_text(json.dumps({k: {"steps": v["steps"].tolist(), "loss": v["loss"].tolist()}
                                                    for k, v in curves.items()}))
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 opens folder stores only when told to
    subprocess.run([sys.executable, "-c", _WRITE_FOLDER_STORE, root.as_uri(), str(folder / "curves.json")],
                   env=env, check=True, capture_output=True, timeout=300)
    return root, curves


@pytest.mark.parametrize("as_uri", [False, True])
def test_an_mlruns_folder_is_read_and_left_as_it_was(folder_store, as_uri, monkeypatch):
    root, curves = folder_store
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    before = _tree(root)
    imported = import_runs("mlflow", [root.as_uri() if as_uri else str(root)], lr="none")
    assert _tree(root) == before
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # set for the read only
    frame = imported.frame
    assert sorted(frame["run"].unique()) == ["cosine", "wsd"] and set(frame["params"]) == {124e6}
    for name in ("cosine", "wsd"):
        rows = frame[frame["run"] == name]
        np.testing.assert_array_equal(rows["step"], curves[name]["steps"])
        np.testing.assert_allclose(rows["loss"], curves[name]["loss"], rtol=1e-12)


def test_folders_that_are_not_mlflow_stores_are_refused_and_left_alone(tmp_path, monkeypatch, folder_store):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as a user of a folder store has it set
    missing = tmp_path / "missing"
    with pytest.raises(DataError, match="missing: no such MLflow store folder"):
        import_runs("mlflow", [missing.as_uri()])
    assert not missing.exists()  # MLflow would have created it, with mlruns/0/meta.yaml
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in (empty.as_uri(), str(empty)):
        with pytest.raises(DataError, match="not an MLflow store folder \\(no experiment folder holding a meta.yaml"):
            import_runs("mlflow", [source])
    assert list(empty.iterdir()) == []
    # a copied store whose empty .trash folder was lost on the way (git keeps no empty folder)
    copy = tmp_path / "copy"
    shutil.copytree(folder_store[0], copy, ignore=shutil.ignore_patterns(".trash"))
    before = _tree(copy)
    with pytest.raises(DataError, match="without its .trash folder, which MLflow creates"):
        import_runs("mlflow", [str(copy)])
    assert _tree(copy) == before


@pytest.mark.parametrize("uri", ["postgresql://user@localhost:5432/mlflow", "mysql+pymysql://u:p@db/mlflow",
                                 "mssql://db/mlflow", "sqlite://"])
def test_database_servers_and_memory_databases_are_refused_in_one_line(uri, tmp_path):
    out = tmp_path / "runs.parquet"
    res = run("import", "mlflow", uri, "--out", out)
    expected = "an in-memory sqlite database holds no runs" if uri == "sqlite://" else \
        "only local MLflow stores (sqlite:///mlflow.db, an mlruns folder) and tracking servers (http://host:5000) are read"
    assert_clean_error(res, expected)
    assert not out.exists()


def test_unrelated_runs_of_one_name_are_kept_apart_by_run_id(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = MlflowClient(tracking_uri=uri)
        exp = client.create_experiment("scaling", artifact_location=str(tmp_path / "artifacts"))
        ids = []
        for loss in (5.0, 4.0):  # the same name reused for a second experiment over the same steps
            r = client.create_run(exp, run_name="base")
            _log(client, r.info.run_id, "train_loss", range(0, 500, 10), [loss] * 50)
            ids.append(r.info.run_id)
            time.sleep(0.01)
    imported = import_runs("mlflow", [uri], lr="none")
    frame = imported.frame.set_index("run")
    assert sorted(frame.index.unique()) == sorted(f"base#{i}" for i in ids)
    assert set(frame.loc[f"base#{ids[0]}", "loss"]) == {5.0} and set(frame.loc[f"base#{ids[1]}", "loss"]) == {4.0}
    assert "2 runs share this name but are not one restarted run" in " ".join(imported.warnings)
    # one of them by its id
    only = import_runs("mlflow", [uri], lr="none", runs=ids[1])
    assert only.frame["run"].unique().tolist() == ["base"] and set(only.frame["loss"]) == {4.0}
