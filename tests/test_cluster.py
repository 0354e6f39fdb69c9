"""Scale-out of whole fits: `compare` runs its backtests (law x holdout) as parallel tasks on loky, a dask
cluster or ray, with the rows of the serial run; the table reaches the workers once; the bootstrap's
coarse tasks are solved in memory-sized blocks and give the serial draws."""

from __future__ import annotations

import importlib
import json
import operator
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file
from typer.testing import CliRunner

from scalefit.backtest import compare
from scalefit.cli import app
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.registry import get_law

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: tests/ is not on sys.path
from strategies import chinchilla_frame

bootmod = importlib.import_module("scalefit.bootstrap")
runner = CliRunner()
LAWS = ("chinchilla", "kaplan")
SPLITS = ["largest", "largest:2"]  # hold out the 6.9B run, then the 1.4B runs (20 and 640 tokens/param) too


@pytest.fixture(scope="module")
def rpj_frame():
    """Gadre et al.'s 35 RedPajama runs (final C4 validation loss)."""
    frame = pd.read_csv(shared_file("gadre", "gadre2024_final_losses.csv"))
    return frame[frame["dataset"] == "rpj"].reset_index(drop=True)


@pytest.fixture(scope="module")
def rpj(rpj_frame):
    return from_frame(rpj_frame, columns={"run": "name", "loss": "loss_c4_val"}, required=["params", "tokens", "loss"])


@pytest.fixture(scope="module")
def serial_rows(rpj):
    return compare([get_law(n) for n in LAWS], rpj, SPLITS)


def _same_rows(rows, expected):
    """Everything a row says, its wall time aside, equal to the serial row in the same place."""
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        assert {k: v for k, v in got.items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}


def test_serial_sweep_is_split_by_split_with_real_errors(serial_rows):
    """One row per (split, law), split by split; numbers from the fits, not placeholders: Chinchilla
    forecasts the held-out 6.9B model within 3 % and better than Kaplan's form does."""
    assert [(r["held_out"][0], r["law"]) for r in serial_rows] == [
        ("params >= 6.89e+09", "chinchilla"), ("params >= 6.89e+09", "kaplan"),
        ("params >= 1.44e+09", "chinchilla"), ("params >= 1.44e+09", "kaplan")]
    assert [r["n_test"] for r in serial_rows] == [1, 1, 3, 3]  # 6.9B; then also the two 1.4B runs
    by = {(r["held_out"][0], r["law"]): r["holdout_are"] for r in serial_rows}
    assert by[("params >= 6.89e+09", "chinchilla")] < 0.03
    assert by[("params >= 6.89e+09", "chinchilla")] < by[("params >= 6.89e+09", "kaplan")]


def test_loky_processes_give_the_serial_rows(rpj, serial_rows):
    heard = []
    rows = compare([get_law(n) for n in LAWS], rpj, SPLITS, jobs=2, progress=heard.append)
    _same_rows(rows, serial_rows)
    assert heard == [law for _ in SPLITS for law in LAWS]  # each task's law once, in order, as in the serial run


@pytest.fixture(scope="module")
def dask_client():
    """A 2-process LocalCluster with dask's default worker-saturation (1.1), whatever the environment says."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.worker-saturation": 1.1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def test_dask_cluster_gives_the_serial_rows(rpj, serial_rows, dask_client):
    """A 2-process dask LocalCluster: the backtests run there (fitted in other processes) with the serial rows."""
    rows = compare([get_law(n) for n in LAWS], rpj, SPLITS, jobs=2, backend="dask")
    _same_rows(rows, serial_rows)


def test_ray_gives_the_serial_rows(rpj, serial_rows, ray_local):
    rows = compare([get_law(n) for n in LAWS], rpj, SPLITS, jobs=2, backend="ray")
    _same_rows(rows, serial_rows)


def test_a_mapping_of_tables_gives_each_tables_own_rows_in_one_stream(rpj_frame, rpj):
    """`compare` over several tables (Gadre's corpora): table by table, each row naming its table and equal
    to that table's own `compare`, serial and with loky; a bad split names the table it fails on."""
    frame = pd.read_csv(shared_file("gadre", "gadre2024_final_losses.csv"))
    c4 = from_frame(frame[frame["dataset"] == "c4_original"].reset_index(drop=True),
                    columns={"run": "name", "loss": "loss_c4_val"}, required=["params", "tokens", "loss"])
    tables = {"rpj": rpj, "c4_original": c4}
    laws = [get_law(n) for n in LAWS]
    want = [{"data": name, **row} for name, table in tables.items() for row in compare(laws, table, SPLITS)]
    _same_rows(compare(laws, tables, SPLITS), want)
    heard = []
    _same_rows(compare(laws, tables, SPLITS, jobs=2, progress=heard.append), want)
    assert heard == [law for _ in tables for _ in SPLITS for law in LAWS]
    with pytest.raises(DataError, match="table 'rpj': .*leaves no model size"):
        compare(laws, tables, "largest:99")
    with pytest.raises(DataError, match="^holdout="):  # no table to blame: the option fails as itself
        compare(laws, tables, "largest:x")
    with pytest.raises(DataError, match="at least one table"):
        compare(laws, {}, SPLITS)
    with pytest.raises(DataError, match="must be a Dataset, not DataFrame"):
        compare(laws, {"rpj": rpj_frame}, SPLITS)


class CountedTable(dict):
    """A table that counts how often it is serialised (in this process); it arrives as a plain dict."""

    pickled = 0

    def __reduce__(self):
        type(self).pickled += 1
        return dict, (dict(self),)


@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_the_table_reaches_the_workers_once(backend, request):
    """8 tasks read one table: dask scatters it (serialised at most once per worker), ray puts it once.
    (loky pickles it with every batch of tasks, memory-mapping its arrays over 1 MB instead.)"""
    request.getfixturevalue({"dask": "dask_client", "ray": "ray_local"}[backend])
    from scalefit.fit import connect_backend

    connect_backend(backend)
    table = CountedTable({f"k{i}": i * i for i in range(8)})
    CountedTable.pickled = 0
    got = list(bootmod.parallel_map(operator.getitem, table, [(f"k{i}",) for i in range(8)], 2, backend))
    assert got == [i * i for i in range(8)]
    assert 1 <= CountedTable.pickled <= 2


@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_task_errors_arrive_as_the_workers_own(backend, rpj, request):
    """A library error raised on a dask or ray worker reaches the caller as itself: its class, its options
    (for the CLI's flag names), its one-line message -- not the cluster's wrapper with a traceback."""
    request.getfixturevalue({"dask": "dask_client", "ray": "ray_local"}[backend])
    from scalefit.backtest import _backtest_in
    from scalefit.fit import connect_backend

    connect_backend(backend)
    task = ("rpj", get_law("chinchilla"), "largest:99", "params", None, None, {})
    with pytest.raises(DataError) as info:
        list(bootmod.parallel_map(_backtest_in, {"rpj": rpj}, [task, task], 2, backend))
    assert type(info.value) is DataError and info.value.options == ("holdout",)
    assert "leaves no model size" in str(info.value) and "Traceback" not in str(info.value)


def test_dask_hands_each_task_to_a_free_worker(dask_client):
    """A task goes to the cluster only when a worker is free: with one 1 s task and three short ones on 2
    workers, every short task runs beside the long one, none queued behind it. (joblib's dask backend
    sent 4 tasks at once and the scheduler placed 2 per worker, so a short task waited for the long one;
    a `compare` sweep ran 1.3x slower than loky.)"""
    import distributed

    from scalefit.fit import connect_backend

    connect_backend("dask")
    with distributed.get_task_stream(dask_client) as stream:
        got = list(bootmod.parallel_map(lambda offset, seconds: time.sleep(seconds) or offset + seconds, 1.0,
                                        [(1.0,), (0.05,), (0.05,), (0.05,)], 2, "dask"))
    assert got == [2.0, 1.05, 1.05, 1.05]  # in the items' order, each with the shared value
    ran = [(t["worker"], sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute"))
           for t in stream.data]
    assert len(ran) == 4
    long_worker = [w for w, seconds in ran if seconds > 0.5]
    assert len(long_worker) == 1
    assert all(w != long_worker[0] for w, seconds in ran if seconds < 0.5)


@pytest.fixture(scope="module")
def queuing_client():
    """A 2-process LocalCluster whose scheduler keeps its own queue (worker-saturation 1.0, as the README
    recommends for scalefit's sweeps); not the default Client, so the other tests keep theirs."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


def _spy_windows(monkeypatch) -> list:
    """The most tasks each parallel_map let out at once (the window it gave _in_order)."""
    windows: list = []
    real = bootmod._in_order
    monkeypatch.setattr(bootmod, "_in_order", lambda *args: windows.append(args[-1]) or real(*args))
    return windows


def _timed_sleeper():
    """A task that sleeps, made here so that it travels by value (a ray worker cannot import this module)."""
    def sleep(offset, seconds):
        t0 = time.time()
        time.sleep(seconds)
        return offset + seconds, t0, time.time()
    return sleep


def test_a_queuing_dask_scheduler_gets_a_list_of_tasks_at_once(rpj, queuing_client, dask_client, monkeypatch):
    """Where the scheduler keeps the queue (worker-saturation 1.0), a list of more tasks than twice the
    threads goes out at once as one graph and the scheduler hands each free worker the next (no trip
    through the client between tasks): the short tasks all run beside the long one, none placed behind it,
    and a `compare` of 6 backtests gives the serial rows. dask's default saturation (1.1), and lists too
    short for dask to queue, keep one task per free thread."""
    assert bootmod._scheduler_queues(queuing_client) and not bootmod._scheduler_queues(dask_client)
    laws = [get_law(n) for n in ("chinchilla", "kaplan", "kaplan_e")]
    serial = compare(laws, rpj, SPLITS)
    windows = _spy_windows(monkeypatch)
    items = [(1.0,)] + [(0.05,)] * 5
    with queuing_client.as_current():
        got = list(bootmod.parallel_map(_timed_sleeper(), 1.0, items, 2, "dask"))
        _same_rows(compare(laws, rpj, SPLITS, jobs=2, backend="dask"), serial)
        assert list(bootmod.parallel_map(operator.add, 1, [(i,) for i in range(4)], 2, "dask")) == [1, 2, 3, 4]
    assert [g[0] for g in got] == [2.0] + [1.05] * 5
    assert all(end < got[0][2] for _, _, end in got[1:])  # all five ran on the other worker meanwhile
    with dask_client.as_current():
        _same_rows(compare(laws, rpj, SPLITS, jobs=2, backend="dask"), serial)
    assert windows == [6, 6, 2, 2]


def test_ray_gets_a_list_of_tasks_at_once_and_hands_them_to_free_workers(ray_local, monkeypatch):
    """On a ray cluster no bigger than ``jobs`` a list goes out at once (ray's scheduler gives each worker
    its next task as it finishes one): the short tasks all run beside the long one, none behind it. A
    generator, or ``jobs`` below the cluster's CPUs, keeps one task per allowed worker."""
    from scalefit.fit import connect_backend

    connect_backend("ray")
    windows = _spy_windows(monkeypatch)
    items = [(1.0,)] + [(0.05,)] * 5
    got = list(bootmod.parallel_map(_timed_sleeper(), 1.0, items, 2, "ray"))
    assert [g[0] for g in got] == [2.0] + [1.05] * 5
    assert all(end < got[0][2] for _, _, end in got[1:])
    list(bootmod.parallel_map(_timed_sleeper(), 1.0, iter(items), 2, "ray"))
    list(bootmod.parallel_map(_timed_sleeper(), 1.0, items, 1, "ray"))
    assert windows == [6, 2, 1]


def test_dask_map_inside_a_dask_task_gives_up_its_thread(dask_client):
    """Called from a task (a user's ``client.map`` over tables), parallel_map leaves its worker thread
    while it waits: with both single-thread workers busy with such callers, their own tasks still run
    (without it the two callers wait for each other for ever)."""
    def caller(offset):
        return list(bootmod.parallel_map(operator.add, offset, [(1,), (2,)], 2, "dask"))

    futures = dask_client.map(caller, [10, 20])
    assert [f.result(timeout=60) for f in futures] == [[11, 12], [21, 22]]


def test_dask_compare_runs_every_fit_once_on_the_workers(rpj, serial_rows, dask_client):
    """Each backtest of a dask `compare` is one task on a worker process, the rows in the serial order."""
    import distributed

    with distributed.get_task_stream(dask_client) as stream:
        rows = compare([get_law(n) for n in LAWS], rpj, SPLITS, jobs=2, backend="dask")
    _same_rows(rows, serial_rows)
    keys = [t["key"] for t in stream.data]
    assert len(keys) == len(serial_rows) and all(k.startswith("_backtest_in-") for k in keys)


def test_bootstrap_tasks_are_coarse_and_solved_in_memory_blocks(monkeypatch):
    """With a memory block of 3 draws, 2 workers get at most 8 tasks (not one per block), each solving
    blocks of at most 3 draws; the draws equal the serial bootstrap's, which solves block by block."""
    data = from_frame(chinchilla_frame(seed=4), required=["params", "tokens", "loss"])
    monkeypatch.setattr(bootmod, "block_size", lambda n, q: 3)
    serial = fit("chinchilla", data, n_bootstrap=60, seed=5, bootstrap_method="runs")
    tasks, blocks = [], []
    real_task, real_chunk = bootmod._bootstrap_task, bootmod._bootstrap_chunk
    monkeypatch.setattr(bootmod, "_bootstrap_task", lambda shared, u, draw, block: tasks.append(len(draw))
                        or real_task(shared, u, draw, block))
    monkeypatch.setattr(bootmod, "_bootstrap_chunk", lambda *args: blocks.append(len(args[2])) or real_chunk(*args))
    threads = fit("chinchilla", data, n_bootstrap=60, seed=5, bootstrap_method="runs", jobs=2, backend="threading")
    np.testing.assert_array_equal(threads.draws, serial.draws)
    assert 1 < len(tasks) <= 8 and max(tasks) > 3
    assert max(blocks) == 3 and sum(blocks) == sum(tasks)


def test_a_bad_split_fails_before_any_fit(rpj):
    fits = []

    def counting_fit(law, train, **kw):
        fits.append(law.name)
        raise AssertionError("no fit should start")

    with pytest.raises(DataError, match="leaves no model size"):
        compare([get_law("chinchilla")], rpj, ["largest", "largest:99"], jobs=2, backend="threading",
                fit_fn=counting_fit)
    assert fits == []
    with pytest.raises(DataError, match="jobs=0"):
        compare([get_law("chinchilla")], rpj, "largest", jobs=0)


def test_cli_compare_jobs_and_backend_match_serial(rpj_frame, tmp_path, request):
    """`compare --jobs 2` (loky) and `--backend dask` (the running cluster) print the serial rows."""
    path = tmp_path / "rpj.csv"
    rpj_frame.to_csv(path, index=False)
    base = ["compare", str(path), "--laws", ",".join(LAWS), "--col", "run=name", "--col", "loss=loss_c4_val", "--json"]
    one = runner.invoke(app, base)
    assert one.exit_code == 0, one.output
    serial = json.loads(one.stdout)
    assert [r["law"] for r in serial] == list(LAWS) and serial[0]["n_test"] == 1
    two = runner.invoke(app, [*base, "--jobs", "2"])
    assert two.exit_code == 0, two.output
    _same_rows(json.loads(two.stdout), serial)
    request.getfixturevalue("dask_client")
    on_dask = runner.invoke(app, [*base, "--jobs", "2", "--backend", "dask"])
    assert on_dask.exit_code == 0, on_dask.output
    _same_rows(json.loads(on_dask.stdout), serial)


def test_cli_compare_per_column_gives_each_values_own_rows(tmp_path):
    """`compare --per dataset` on Gadre's table: for each corpus the rows `--where dataset=...` prints (one
    stream of fits with --jobs 2), named by their corpus; a missing column, curve laws, or a split one
    corpus cannot make fail with one line that names them."""
    path = shared_file("gadre", "gadre2024_final_losses.csv")
    base = ["compare", str(path), "--laws", ",".join(LAWS), "--col", "run=name", "--col", "loss=loss_c4_val", "--json"]
    res = runner.invoke(app, [*base, "--per", "dataset", "--jobs", "2"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    corpora = sorted(pd.read_csv(path)["dataset"].unique())
    assert [r["dataset"] for r in rows] == [c for c in corpora for _ in LAWS]
    for corpus in corpora:
        one = runner.invoke(app, [*base, "--where", f"dataset={corpus}"])
        assert one.exit_code == 0, one.output
        _same_rows([{k: v for k, v in r.items() if k != "dataset"} for r in rows if r["dataset"] == corpus],
                   json.loads(one.stdout))
    table = runner.invoke(app, [*base[:-1], "--per", "dataset"])
    assert table.exit_code == 0 and all(c in table.stdout for c in corpora)
    for extra, words in ((["--per", "corpus"], ["--per column 'corpus' not found"]),
                         (["--per", "law"], ["--per law", "rename the column"]),
                         (["--per", "dataset", "--holdout", "largest:99"], ["dataset=c4_original", "leaves no"]),
                         (["--per", "dataset", "--laws", "multipower"], ["--per works with point laws"])):
        bad = runner.invoke(app, [*base, *extra])
        assert bad.exit_code == 2, bad.output
        assert all(w in bad.stderr for w in words) and "Traceback" not in bad.output
        assert bad.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("flag,value", [("--jobs", "0"), ("--backend", "spark")])
def test_cli_compare_refuses_bad_parallel_options(flag, value, tmp_path):
    res = runner.invoke(app, ["compare", str(tmp_path / "absent.csv"), flag, value])
    assert res.exit_code == 2 and flag in res.stderr and "Traceback" not in res.output
