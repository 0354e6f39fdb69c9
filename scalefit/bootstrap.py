"""The bootstrap: refit the law on resampled data, warm-started at the full-data optimum.

Two resamplings (``method``): "runs" draws runs with replacement (a curve is one run) and weights each
row by its run's count; "wild" keeps every run and multiplies each run's block of residuals at the
optimum by one random weight (the wild cluster bootstrap: Webb's six points below ``WILD_BELOW`` runs,
Rademacher above), which gives 216 distinct draws from 3 curves where run resampling gives 10. Draws
are seeded and identical across backends (``loky``, ``threading``, ``dask``, ``ray``); repeated
resamples are solved once; huge ones are streamed chunk by chunk so memory stays bounded.

Parallel work goes through :func:`parallel_map` (the bootstrap here, whole backtests in
:func:`scalefit.backtest.compare`): a few coarse tasks, and the table they all read sent to the workers
once -- scattered to every dask worker, put once into ray's object store, memory-mapped by loky -- rather
than pickled into every task.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
import warnings
from typing import Callable, Iterable, Iterator

import numpy as np

from .limits import _cpus, enforce, sliding_malloc_thresholds
from .solver import Problem, block_size
from .varpro import solve

_BOOT_ITER = 300  # solver iterations per bootstrap refit (see _bootstrap_chunk)
# Rows from which draws are refitted with the linear coefficients projected out. Draws start at the
# optimum, where a plain step is cheap: measured on Chinchilla tables, 200 draws took 0.17 s plain and
# 0.9 s projected at 25 rows, 0.65 s and 1.1 s at 120, but 0.98 s and 0.67 s at 240 (and 166 against 15
# iterations on Epoch's 240 points). The projected solver also finds lower optima on ridge-bound draws.
PROJECT_DRAWS_FROM = 200
# A draw is done once a step gains less than this fraction of its noise level
# (:func:`scalefit.stats.noise_level`: the objective change of a one-standard-error move), or the relative
# tolerance below: a draw left that close to its optimum is off by at most a few hundredths of the spread
# the percentiles are read from, and Levenberg-Marquardt's last steps, 1e-7 to 1e-10 of the objective,
# were a third of the work.
STOP_FRACTION = 1e-3
_DEDUP_ELEMENTS = 2**22  # draws x runs up to which all resamples are drawn at once (32 MiB of counts)
# Parallel bootstrap tasks per worker: enough to even out uneven draws, few enough that each task's round
# trip (a dask or ray scheduler hop; loky re-hashing the memory-mapped table) is small beside its work.
_TASKS_PER_WORKER = {"loky": 4, "threading": 4, "dask": 2, "ray": 2}
_MIN_TASK_DRAWS = 10


def _draw_counts(rng: np.random.Generator, n_runs: int, n_draws: int) -> np.ndarray:
    """(n_draws, n_runs) counts of each run in ``n_draws`` resamples with replacement, from ``rng``."""
    picks = rng.integers(0, n_runs, size=(n_draws, n_runs))
    flat = (np.arange(n_draws)[:, None] * n_runs + picks).ravel()
    return np.bincount(flat, minlength=n_draws * n_runs).reshape(n_draws, n_runs).astype(float)


def bootstrap_counts(n_runs: int, n_draws: int, seed: int | None) -> np.ndarray:
    """How often each run is drawn in each resample (runs resampled with replacement; a curve is one run).

    (n_draws, n_runs): small even for huge curve tables; rows get their run's count per chunk. Drawing
    the same resamples in consecutive slices of draws gives the same counts (the bootstrap streams them).
    """
    return _draw_counts(np.random.default_rng(seed), n_runs, n_draws)


# Webb's six-point distribution (mean 0, variance 1): with G runs it gives 6^G distinct wild draws where
# Rademacher's two points give 2^G, which matters below ~10 runs (Webb 2023, "Reworking wild bootstrap-
# based inference for clustered errors").
_WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])
WILD_BELOW = 10  # runs: below this, "auto" bootstraps with wild cluster weights
BOOTSTRAPS = ("auto", "runs", "wild")


def _draw_wild(rng: np.random.Generator, n_runs: int, n_draws: int) -> np.ndarray:
    """(n_draws, n_runs) wild-bootstrap weights, one per run: Webb's six points below WILD_BELOW runs,
    Rademacher (+-1) from there on."""
    if n_runs < WILD_BELOW:
        return _WEBB[rng.integers(0, 6, size=(n_draws, n_runs))]
    return rng.integers(0, 2, size=(n_draws, n_runs)) * 2.0 - 1.0


def bootstrap_method_for(method: str, n_runs: int) -> str:
    """The resampling that ``method`` means for a table of ``n_runs`` runs: "auto" is "wild" below
    WILD_BELOW runs (3 curves have 10 distinct run resamples, and 216 wild ones) and "runs" from there on."""
    if method == "auto":
        return "wild" if n_runs < WILD_BELOW else "runs"
    return method


def distinct_resamples(method: str, n_runs: int) -> float:
    """How many different resamples ``method`` can draw from ``n_runs`` runs (may be astronomically large)."""
    if method == "runs":
        return float(math.comb(2 * n_runs - 1, n_runs))
    return 6.0**n_runs if n_runs < WILD_BELOW else 2.0**n_runs


def bootstrap_bytes(n_draws: int, n_runs: int, n_params: int) -> int:
    """Working memory the bootstrap holds at once: the draws (in solver and natural units, with copies),
    plus all run counts when resamples are drawn at once to solve repeated ones only once."""
    need = 4 * 8 * n_draws * max(n_params, 1)
    if n_draws * n_runs <= _DEDUP_ELEMENTS:
        need += 3 * 8 * n_draws * n_runs  # counts, picks and np.unique's sorted copy
    return int(need)


def _bootstrap_chunk(problem: Problem, u_hat: np.ndarray, draw: np.ndarray, run_codes: np.ndarray,
                     wild_residuals: np.ndarray | None = None) -> np.ndarray:
    """Refit one chunk of resamples. Run resampling: ``draw`` holds each run's count, which weights its
    rows. Wild: ``draw`` holds each run's weight v, and the pseudo-data are the fitted values plus v times
    the run's residuals (log yhat - v r, as r = log yhat - log y), the whole block of a run scaled alike.
    A draw stops at the tolerance ``problem.stop_gain`` (set by :func:`run_bootstrap`; 0 when absent)."""
    expanded = draw[:, run_codes]  # expanded per chunk: never (n_draws, n_rows) at once
    u0 = np.repeat(u_hat[None], len(draw), axis=0)
    if wild_residuals is None:
        sub, weights = problem, expanded * problem.w
    else:
        sub, weights = problem.with_targets(problem.logy + (1.0 - expanded) * wild_residuals), None
    # ftol 1e-10: bootstrap spreads agree with 1e-12 to four digits at a third less work. A cap of 60
    # iterations was tried (multipower crawls along a flat valley, and its forecast quantiles barely moved)
    # and rejected: it cut the coverage of Chinchilla intervals at 2 % noise from 96.5-98 % to 88 % in
    # make calibration, the draws far from the optimum being the ones stopped early.
    u, f, _ = solve(sub, u0, weights, max_iter=_BOOT_ITER, ftol=1e-10, atol=getattr(problem, "stop_gain", 0.0),
                    projected=sub.n >= PROJECT_DRAWS_FROM, exact_objective=False)  # f: only whether finite
    u[~np.isfinite(f)] = np.nan
    return u


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker process as soon as the process that started it is gone.

    loky keeps idle workers for minutes, and a parent killed with SIGKILL cannot tell them to stop; a
    worker whose parent has died is re-parented, so watching ``os.getppid()`` is enough (POSIX and Windows).
    loky starts its workers from the process that makes the executor, so a different parent pid here
    means that process died while this worker was starting.
    """
    if os.getppid() != parent:
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="scalefit-exit-with-parent", daemon=True).start()


def _effective_jobs(jobs: int) -> int:
    return _cpus() if jobs == -1 else int(jobs)


def cluster_workers(backend: str, jobs: int) -> int:
    """How many workers will take tasks: ``jobs`` for loky, threading and ray (at most that many ray tasks
    run at once on a cluster of fixed size, :func:`_ray_map`; -1: the ray cluster's CPUs once connected,
    else this machine's); every worker thread of the dask cluster, whatever ``jobs`` says (the cluster's
    size is the user's choice). Call after :func:`scalefit.fit.connect_backend`."""
    if backend == "dask":
        from distributed import get_client

        return max(1, sum(get_client().ncores().values()))
    if backend == "ray" and jobs == -1:
        import ray

        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, _effective_jobs(jobs))


def _with_shared(fn: Callable, shared, *args):
    """On a worker: ``fn(table, *args)`` (module level, so that every backend can send it), the C
    allocator's thresholds sliding where the worker's environment froze them (a dask worker's:
    :func:`scalefit.limits.sliding_malloc_thresholds`)."""
    with sliding_malloc_thresholds():
        return fn(shared, *args)


def _in_order(submit: Callable, first_done: Callable, result: Callable, cancel: Callable,
              items: Iterable[tuple], workers: int) -> Iterator:
    """Run ``submit(item)`` for every item with at most ``workers`` tasks submitted at once, yielding
    ``result(task)`` in the items' order as results arrive (``first_done(tasks)``: the finished ones, after
    waiting for at least one). With ``workers`` the cluster's threads, a task is submitted only when a
    worker is free, so the cluster hands it to that worker; closing the generator (an interrupt, an error)
    cancels the tasks still out."""
    todo = iter(items)
    running: dict = {}  # task handle -> position
    arrived: dict = {}
    submitted = given = 0

    def refill():
        nonlocal submitted
        while len(running) < workers:
            item = next(todo, None)
            if item is None:
                return
            running[submit(item)] = submitted
            submitted += 1

    try:
        while True:
            refill()
            if not running:
                return
            done = [(running.pop(task), task) for task in first_done(list(running))]
            refill()  # the freed workers get their next task before the results travel back
            for position, task in done:
                arrived[position] = result(task)
            while given in arrived:
                yield arrived.pop(given)
                given += 1
    finally:
        if running:
            try:  # best effort: a lost client or a shut-down ray must not hide the error that got us here
                cancel(list(running))
            except Exception:
                pass


def _ray_map(fn: Callable, shared, items: Iterable[tuple], workers: int) -> Iterator:
    """:func:`parallel_map` on ray, with ray's own tasks: the table put once into the object store (each
    task gets it back zero-copy from the node's shared memory). joblib's ray backend was measured and not
    used: it starts a fresh pool of actors on every call (6-10 s for 8 tiny tasks on a local 2-CPU
    instance, where these tasks take 0.1 s: benchmarks/results/cluster.md) and cannot stream results.

    A list of items goes out at once where ``workers`` covers the cluster's CPUs: ray's own scheduler then
    hands each worker its next task as it finishes one, without a trip through this process (a `compare`
    sweep ran 1.05x loky's time one task per free worker, 1.01x at once); otherwise at most ``workers``
    tasks are out, which is what makes ``jobs`` a limit on a bigger cluster. (The CPUs are counted at the
    call: an autoscaling cluster that grows during it may then run more than ``jobs`` tasks at once.)
    """
    import ray

    if not ray.is_initialized():
        ray.init()  # joins the cluster at RAY_ADDRESS, else starts a local one (as joblib's backend would)
    if isinstance(items, list) and workers >= ray.cluster_resources().get("CPU", 1):
        workers = max(workers, len(items))
    task = ray.remote(num_cpus=1)(_with_shared)
    table = ray.put(shared)

    def result(ref):
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the worker's own error, not ray's wrapper and traceback
            raise (exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc) from None

    yield from _in_order(lambda item: task.remote(fn, table, *item),  # a top-level ref arrives as the object
                         lambda refs: ray.wait(refs, num_returns=1)[0], result,
                         lambda refs: [ray.cancel(ref) for ref in refs], items, workers)


def _scheduler_queues(client) -> bool:
    """Whether ``client``'s scheduler gives every worker thread one task and keeps the rest of a big enough
    group in its own queue, handing out the next as a thread frees: ``worker-saturation`` with
    ceil(saturation x threads) = threads on every worker (1.0 does). dask's default, 1.1, places a second
    task on every single-thread worker at once, where it may wait behind a long fit while another worker
    idles; below 1 on a many-thread worker, some threads would get no task. Asked on every call (workers
    come and go); False where the scheduler cannot be asked."""
    try:  # a lambda travels by value: the scheduler's machine need not have scalefit
        saturation, threads = client.run_on_scheduler(lambda dask_scheduler: (
            float(getattr(dask_scheduler, "WORKER_SATURATION", math.inf)),
            [ws.nthreads for ws in dask_scheduler.workers.values()]))
    except Exception:
        return False
    return math.isfinite(saturation) and bool(threads) and all(
        math.ceil(saturation * n) == n for n in threads)


def _dask_map(fn: Callable, shared, items: Iterable[tuple], workers: int) -> Iterator:
    """:func:`parallel_map` on the dask cluster of the current Client, with dask's own tasks: the table
    scattered once to every worker, and no task placed behind another on a worker.

    Not joblib's dask backend: it submits twice as many tasks as threads up front, and the scheduler
    places each at once (up to 2 per single-thread worker), so a task waits behind a long fit on a busy
    worker while another worker idles -- a `compare` sweep ran 1.3x slower than loky, whose workers take
    the next task when free (benchmarks/results/cluster.md). So by default a task is submitted only when a
    worker thread is free, at the cost of a round trip through this process between two tasks (5-8 ms on
    a local cluster). Where the scheduler keeps its own queue (:func:`_scheduler_queues`) and the items
    are a list of more than twice its threads, they go out at once as one graph, so that the scheduler
    sees the whole group and queues it ("root-ish" tasks: submitted one by one, the first two per thread
    would be placed at once), and it hands each free thread the next. (It stops queuing when five or
    more of these tables are held at once, by nested callers: then the tasks are placed at once.)
    """
    from uuid import uuid4

    from distributed import as_completed, get_client, get_worker, rejoin, secede, wait

    client = get_client()
    at_once = (isinstance(items, list) and len(items) > 2 * workers and len({len(item) for item in items}) == 1
               and _scheduler_queues(client))
    table = client.scatter([shared], broadcast=True, hash=False)[0]  # in a list: a tuple or dict stays whole
    name = getattr(fn, "__name__", "task")
    try:
        get_worker()
        nested = True  # called from a task: leave this worker's thread to the tasks it waits for
    except ValueError:
        nested = False
    if nested:
        try:
            secede()
        except Exception:  # not a worker's task thread after all: nothing to hand back
            nested = False
    if at_once:
        futures = client.map(_with_shared, [fn] * len(items), [table] * len(items), *zip(*items), pure=False,
                             key=[f"{name}-{uuid4().hex}" for _ in items])
        sent, finished = iter(futures), as_completed(futures)
        submit, first_done, workers = (lambda item: next(sent)), (lambda running: [next(finished)]), len(items)
    else:
        def submit(item):
            return client.submit(_with_shared, fn, table, *item, pure=False, key=f"{name}-{uuid4().hex}")

        def first_done(running):
            return wait(running, return_when="FIRST_COMPLETED").done
    try:
        yield from _in_order(submit, first_done, lambda future: future.result(), client.cancel, items, workers)
    finally:
        if nested:
            rejoin()


def parallel_map(fn: Callable, shared, items: Iterable[tuple], jobs: int, backend: str) -> Iterator:
    """``fn(shared, *item)`` for every item on ``jobs`` workers of ``backend``, yielded in order.

    ``shared`` -- the table every task reads -- reaches the workers once, not inside every task: dask
    scatters it to every worker (``broadcast``), ray puts it once into its object store, threads share it,
    and loky memory-maps its arrays over 1 MB (written once per call; the small rest is pickled with each
    task). loky and threading go through joblib; dask and ray through their own tasks, so that no task
    waits behind a long one while a worker idles (:func:`_dask_map`, :func:`_ray_map`): each submitted
    when a worker is free, or, for a list of items, all at once where the cluster's scheduler itself hands
    each free worker the next. An iterator is always drawn one item per free worker, so lazily made items
    (chunks of resampled counts) stay bounded in memory. loky's workers end with the process that started
    them; closing the generator (an interrupt) cancels the queued tasks at once. The caller makes the
    backend usable first (:func:`scalefit.fit.connect_backend`).
    """
    if backend in ("dask", "ray"):
        run = _dask_map if backend == "dask" else _ray_map
        yield from run(fn, shared, items, cluster_workers(backend, jobs))
        return
    from joblib import Parallel, delayed, parallel_config

    config: dict = {}
    if backend == "loky":
        # loky's workers outlive an interrupted or killed parent unless told: each watches its parent.
        config = {"initializer": _exit_with_parent, "initargs": (os.getpid(),)}
    with parallel_config(backend=backend, n_jobs=jobs, **config):
        results = Parallel(return_as="generator")(delayed(_with_shared)(fn, shared, *item) for item in items)
        try:
            yield from results
        finally:  # on an interrupt: cancel queued tasks and stop the workers now, not at garbage collection
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results.close()


def _bootstrap_task(shared: tuple, u_hat: np.ndarray, draw: np.ndarray, block: int) -> np.ndarray:
    """One coarse task: refit the resamples ``draw`` in blocks of ``block`` (each block's per-row weights,
    block x rows, must fit in memory). ``shared`` is (problem, run codes, wild residuals or None)."""
    problem, run_codes, wild = shared
    return np.vstack([_bootstrap_chunk(problem, u_hat, draw[i : i + block], run_codes, wild)
                      for i in range(0, len(draw), block)])


def run_bootstrap(problem: Problem, u_hat: np.ndarray, run_codes: np.ndarray, n_draws: int, seed: int | None,
                  jobs: int = 1, backend: str = "loky",
                  progress: Callable[[int, int], None] | None = None, method: str = "runs") -> np.ndarray:
    """Refit on ``n_draws`` resamples, warm-started at the full-data optimum; (n_draws, q) in u.

    ``method`` "runs" resamples runs with replacement; "wild" keeps every run and multiplies each run's
    block of residuals at the optimum by one random weight (:func:`_draw_wild`), the wild cluster
    bootstrap, which has many more distinct draws when runs are few.

    With few runs most resamples repeat (3 curves give only 10 distinct ones, 5 give 126), and a refit
    is a deterministic function of the run counts, so each distinct resample is solved once and the
    result repeated: the draws are identical to solving them all, at a fraction of the cost. With many
    runs and draws, resamples are drawn chunk by chunk as the solver needs them, so memory stays bounded
    (the counts of all draws at once would be draws x runs).
    """
    n_runs = int(run_codes.max()) + 1
    draw_fn = _draw_wild if method == "wild" else _draw_counts
    problem = copy.copy(problem)  # the draws' stopping tolerance travels with the problem to every worker
    r_hat = problem.residuals(u_hat[None])[0]
    problem.stop_gain = STOP_FRACTION * problem.noise_level(u_hat, r_hat)
    wild = None
    if method == "wild":
        wild = np.nan_to_num(r_hat)
    workers = _effective_jobs(jobs)
    enforce("jobs", workers, f"jobs={jobs}")
    enforce("memory_bytes", bootstrap_bytes(n_draws, n_runs, len(u_hat)),
            f"a bootstrap of {n_draws:,} draws over {n_runs:,} runs")
    cap = block_size(problem.n, len(u_hat))
    which = None
    if n_draws * n_runs <= _DEDUP_ELEMENTS:
        counts = draw_fn(np.random.default_rng(seed), n_runs, n_draws)
        distinct, which = np.unique(counts, axis=0, return_inverse=True)
        which = which.reshape(-1)
        n_solve = len(distinct)
    else:
        n_solve = n_draws
        cap = max(1, min(cap, _DEDUP_ELEMENTS // n_runs))
    serial = workers == 1 and backend == "loky"
    if serial:
        chunk = min(250, cap)
    else:
        # Coarse tasks, each solved in memory-sized blocks on its worker: on a 10M-row table a block is one
        # draw, and one task per draw would mean a thousand round trips.
        chunk = max(_MIN_TASK_DRAWS, math.ceil(n_solve / (_TASKS_PER_WORKER[backend] * cluster_workers(backend, jobs))))
        if which is None:  # streamed resamples: each task's counts (task x runs) stay as small as drawing at once
            chunk = max(1, min(chunk, _DEDUP_ELEMENTS // n_runs))
    if which is not None:
        chunks: Iterator[np.ndarray] = (distinct[i : i + chunk] for i in range(0, n_solve, chunk))
    else:
        rng = np.random.default_rng(seed)
        chunks = (draw_fn(rng, n_runs, min(chunk, n_draws - i)) for i in range(0, n_draws, chunk))
    out = []
    solved = 0

    def report(res):
        nonlocal solved
        out.append(res)
        solved += len(res)
        if progress:
            progress(round(n_draws * solved / n_solve), n_draws)

    if serial:
        for c in chunks:
            report(_bootstrap_chunk(problem, u_hat, c, run_codes, wild))
    else:
        for res in parallel_map(_bootstrap_task, (problem, run_codes, wild), ((u_hat, c, cap) for c in chunks),
                                jobs, backend):
            report(res)
    draws = np.vstack(out)
    return draws if which is None else draws[which]
