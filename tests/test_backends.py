"""Scale-out: the bootstrap through joblib (loky), dask and ray gives the serial answer, bit for bit."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scalefit.cli import app
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.registry import register_file

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: tests/ is not on sys.path
from strategies import chinchilla_frame

ROLES = ["params", "tokens", "loss"]
N_DRAWS = 80


@pytest.fixture(scope="module")
def data():
    return from_frame(chinchilla_frame(seed=4), required=ROLES)


@pytest.fixture(scope="module")
def serial(data):
    return fit("chinchilla", data, n_bootstrap=N_DRAWS, seed=11)


def test_loky_processes_match_serial(data, serial):
    """--jobs 2 (fresh loky processes): identical draws. Regression: laws loaded from files did not unpickle."""
    par = fit("chinchilla", data, n_bootstrap=N_DRAWS, seed=11, jobs=2)
    np.testing.assert_array_equal(par.draws, serial.draws)


def _bounds_seen(law, name: str) -> list[float]:
    """On a worker: the bounds of ``name`` in the law as the worker restored it."""
    return list(law.params[name].bounds)


def test_narrowed_bounds_reach_worker_processes(data):
    """Bounds narrowed by the caller (lmfit-style params) hold in the workers too: the law a worker restores
    by name carries them. Regression: the worker's law had the file's bounds, so its variable projection
    held a linear coefficient within the wide ones. Here the final clip to the narrowed bounds happened to
    hide it in the draws, so the worker's law is also asked directly."""
    from types import SimpleNamespace

    from scalefit.bootstrap import parallel_map
    from scalefit.lmfit_bridge import with_bounds
    from scalefit.registry import get_law

    narrowed = {"E": SimpleNamespace(value=1.5, vary=True, min=1.0, max=1.5, expr=None)}
    one = fit("chinchilla", data, params=narrowed, n_bootstrap=30, seed=5)
    two = fit("chinchilla", data, params=narrowed, n_bootstrap=30, seed=5, jobs=2)
    assert one.params["E"].value == pytest.approx(1.5)  # the narrowed bound binds
    np.testing.assert_array_equal(two.draws, one.draws)
    law = with_bounds(get_law("chinchilla"), {"E": (1.0, 1.5)})
    assert list(parallel_map(_bounds_seen, law, [("E",)], 2, "loky")) == [[1.0, 1.5]]


def test_law_file_laws_reach_worker_processes(data, tmp_path):
    """A --law-file law is sent to workers by (name, file) and found again there."""
    path = tmp_path / "my_law.py"
    path.write_text(textwrap.dedent('''
        """A user law: Chinchilla with beta tied to alpha."""
        from scalefit.law import law, Param
        import numpy as np

        @law(inputs={"N": "params", "D": "tokens"},
             params={"E": Param((1e-3, 20.0), [1.0, 2.0], log=True), "A": Param((1e-6, 1e15), [1e2, 1e4], log=True),
                     "B": Param((1e-6, 1e15), [1e2, 1e4], log=True), "a": Param((0.0, 3.0), [0.3, 0.6])})
        def my_law(N, D, *, E, A, B, a):
            return E + A / N**a + B / D**a
    '''))
    (my_law,) = register_file(path)
    one = fit(my_law, data, n_bootstrap=30, seed=2)
    two = fit(my_law, data, n_bootstrap=30, seed=2, jobs=2)
    np.testing.assert_array_equal(two.draws, one.draws)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_dask_local_cluster_matches_serial(data, serial, processes):
    """A 2-worker dask LocalCluster (threads, then processes) gives the serial draws for the same seed."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        par = fit("chinchilla", data, n_bootstrap=N_DRAWS, seed=11, jobs=2, backend="dask")
    np.testing.assert_array_equal(par.draws, serial.draws)


def test_cli_dask_backend_uses_the_configured_scheduler(data, serial, tmp_path):
    """`fit --backend dask` connects to the scheduler address (DASK_SCHEDULER_ADDRESS) and matches serial."""
    distributed = pytest.importorskip("distributed")
    import dask

    path = tmp_path / "runs.csv"
    chinchilla_frame(seed=4).to_csv(path, index=False)
    runner = CliRunner()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        # dask reads DASK_SCHEDULER_ADDRESS into this config key when it is imported.
        with dask.config.set({"scheduler-address": cluster.scheduler_address}):
            res = runner.invoke(app, ["fit", str(path), "-b", str(N_DRAWS), "--seed", "11", "--jobs", "2",
                                      "--backend", "dask", "--json"])
        _close_default_client(distributed)
    assert res.exit_code == 0, res.output
    params = json.loads(res.stdout)["params"]
    for name, est in serial.params.items():
        assert params[name]["low"] == est.low and params[name]["high"] == est.high


def _close_default_client(distributed) -> None:
    """The CLI's connection becomes the process-wide default client; tests must not leak it."""
    try:
        distributed.default_client().close()
    except ValueError:
        pass


def test_dask_without_a_cluster_says_how_to_get_one(data):
    """No Client and no scheduler address: a DataError naming DASK_SCHEDULER_ADDRESS, before any work."""
    distributed = pytest.importorskip("distributed")
    _close_default_client(distributed)
    with pytest.raises(DataError, match="DASK_SCHEDULER_ADDRESS"):
        fit("chinchilla", data, n_bootstrap=5, backend="dask")


def test_ray_matches_serial(data, serial):
    """Ray's joblib backend on a local 2-CPU instance (only where ray is installed)."""
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    register_ray()
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        par = fit("chinchilla", data, n_bootstrap=N_DRAWS, seed=11, jobs=2, backend="ray")
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(par.draws, serial.draws)
