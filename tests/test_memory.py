"""Memory: the block budget (SCALEFIT_BLOCK_MEMORY) sizes the solver's blocks and the curve laws' pair
chunks, and none of the memory savings changes a number.

Memory is measured with tracemalloc (numpy reports its buffers to it), never with timings.
"""

import json
import os
import platform
import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from scalefit import lrpairs
from scalefit.curves import load_curves
from scalefit.errors import DataError
from scalefit.limits import limit
from scalefit.parameterization import Parameterization
from scalefit.registry import get_law
from scalefit.schedule import parse_schedule
from scalefit.solver import _BLOCK, _COPIES, Problem, RobustLoss, block_size, solve_batch

MIB = 2**20


# ----------------------------------------------------------------------------- the budget
@pytest.mark.parametrize("n, q", [(1, 1), (240, 5), (2_000, 5), (50_000, 4), (1_000_000, 4), (10_000_000, 7)])
@pytest.mark.parametrize("budget", [1 * MIB, 48 * MIB, 256 * MIB, 4096 * MIB])
def test_block_size_respects_the_budget_it_is_given(n, q, budget):
    k = block_size(n, q, budget)
    per_vector = _COPIES * 8 * n * (q + 1)
    assert 1 <= k <= _BLOCK
    if k > 1:  # a single vector is always allowed, even over the budget
        assert k * per_vector <= budget
    if k < _BLOCK:  # and the block is as large as the budget allows
        assert (k + 1) * per_vector > budget


def test_block_size_follows_the_environment(monkeypatch):
    monkeypatch.delenv("SCALEFIT_BLOCK_MEMORY", raising=False)
    assert limit("block_bytes") == 48 * MIB
    assert block_size(50_000, 4) == 2  # 10 arrays of 50,000 x 5 float64 are 20 MB a vector
    monkeypatch.setenv("SCALEFIT_BLOCK_MEMORY", str(256 * MIB))
    assert block_size(50_000, 4) == 13
    monkeypatch.setenv("SCALEFIT_BLOCK_MEMORY", "lots")
    with pytest.raises(DataError, match="SCALEFIT_BLOCK_MEMORY"):
        block_size(50_000, 4)


def test_pair_chunks_follow_the_budget(monkeypatch):
    monkeypatch.setenv("SCALEFIT_BLOCK_MEMORY", str(16 * MIB))
    assert lrpairs.chunk_size() == 16 * MIB // lrpairs._PAIR_BYTES
    monkeypatch.setenv("SCALEFIT_BLOCK_MEMORY", "1")
    assert lrpairs.chunk_size() == 4096  # a floor: chunks of a few pairs would cost more in calls than they save


# ----------------------------------------------------------------------------- a solver block stays in budget
def _curve_problem(n_steps=20_000):
    law = get_law("lr_annealing")
    specs = {"cos": f"cosine:peak=2e-4,steps={n_steps},warmup=500", "const": f"constant:peak=2e-4,steps={n_steps},warmup=500"}
    frame = pd.concat([pd.DataFrame({"run": r, "step": np.arange(1, n_steps, 2), "loss": 1.0}) for r in specs])
    data = load_curves(frame, schedules=specs)
    y = law.predict(law.reference_theta()[None], law.prepare(data))[0]
    y = y * np.exp(np.random.default_rng(0).normal(0, 0.005, y.size))
    param = Parameterization(law)
    return Problem(law, law.prepare(data), y, None, param, RobustLoss()), param.start_grid()


def _traced_peak(call):
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        out = call()
        return out, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_a_solver_block_stays_within_the_budget_and_the_answer_does_not_move(monkeypatch):
    problem, starts = _curve_problem()  # 20,000 rows, 4 free parameters, 54 starts
    assert problem.n == 20_000 and len(starts) == 54
    monkeypatch.setenv("SCALEFIT_BLOCK_MEMORY", str(32 * MIB))
    assert block_size(problem.n, 4) == 4
    small, small_peak = _traced_peak(lambda: solve_batch(problem, starts, max_iter=2))
    monkeypatch.setenv("SCALEFIT_BLOCK_MEMORY", str(4096 * MIB))
    assert block_size(problem.n, 4) == _BLOCK
    large, large_peak = _traced_peak(lambda: solve_batch(problem, starts, max_iter=2))
    assert small_peak <= 32 * MIB, small_peak / MIB
    assert large_peak > 5 * small_peak  # all 54 starts at once: the budget is what kept the first small
    for a, b in zip(small, large):  # starts are independent: how they are blocked changes no bit
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- the laws: leaner, same numbers
def test_lr_annealing_jacobian_is_one_fresh_array_equal_to_its_columns():
    law = get_law("lr_annealing")
    design = law.prepare(law.example_inputs())
    lo, hi = law.bounds_array()
    theta = np.vstack([law.reference_theta(), np.random.default_rng(1).uniform(lo, np.minimum(hi, 5.0), (6, 4))])
    yhat, jac = law.predict_and_jacobian(theta, design)
    assert jac.flags.owndata and jac.flags.writeable and jac.shape == yhat.shape + (4,)
    np.testing.assert_array_equal(yhat, law.predict(theta, design))
    np.testing.assert_array_equal(jac, law.jacobian(theta, design))
    p = law.unpack(theta)
    power = np.exp(-p["alpha"] * design["logS1"])
    columns = np.stack([np.ones_like(power), power, -p["A"] * power * design["logS1"],
                        -design["S2"] * np.ones_like(power)], axis=-1)  # the formula, column by column
    np.testing.assert_array_equal(jac, columns)
    np.testing.assert_array_equal(yhat, p["L0"] + p["A"] * power - p["C"] * design["S2"])


def test_multipower_jacobian_written_in_place_equals_its_columns():
    law = get_law("multipower")
    design = law.prepare(law.example_inputs())
    theta = np.vstack([law.reference_theta(name) for name in law.reference])
    yhat, jac = law.predict_and_jacobian(theta, design)
    p = law.unpack(theta)
    D, dC, dbeta, dgamma = law._loss_drop(theta, design, True)
    power = np.exp(-p["alpha"] * design["logS"])
    Bs = p["Bslope"]
    columns = np.stack([np.ones_like(D), power, -p["A"] * power * design["logS"], D, Bs * dC, Bs * dbeta,
                        Bs * dgamma], axis=-1)
    np.testing.assert_array_equal(jac, columns)
    np.testing.assert_array_equal(yhat, law.predict(theta, design))


def test_multipower_chunked_pairs_give_the_kept_design_to_the_bit():
    law = get_law("multipower")
    eta = parse_schedule("cosine:peak=3e-4,steps=6000,warmup=300,floor=3e-5").lr()
    steps = np.arange(1, 6000, 7)
    runs = np.array(["a"] * steps.size)
    kept = law.design_from_lr({"a": eta}, runs, steps)  # blocked (resolution 0.01), kept in memory
    assert "chunks" in kept
    chunked = law.design_from_lr({"a": eta}, runs, steps, chunk_pairs=5_000)  # rebuilt 5,000 pairs at a time
    assert "chunks" not in chunked and sum(1 for _ in lrpairs.pair_chunks(chunked)) > 10
    theta = np.vstack([law.reference_theta(name) for name in law.reference])
    for a, b in zip(law.predict_and_jacobian(theta, kept), law.predict_and_jacobian(theta, chunked)):
        np.testing.assert_array_equal(a, b)


def test_blocked_pairs_working_memory_per_pair():
    """Gathering the twelve prefix-sum rows one at a time: about 110 bytes a pair (all at once was 285)."""
    eta = parse_schedule("cosine:peak=2e-4,steps=20000,warmup=500").lr()
    steps = np.arange(1, 20000, 3)
    design = lrpairs.build_design({"a": eta}, np.array(["a"] * steps.size), steps, "code", 0.01,
                                  chunk_pairs=400_000)
    rd = design["runs"]["a"]
    lrpairs._block_table(rd), lrpairs._below(rd)  # per-run tables, built once per fit: not per chunk
    sel = np.arange(600)
    chunk, peak = _traced_peak(lambda: lrpairs.blocked_pairs(rd, design["n"], 0.01, sel))
    pairs = chunk["logR"].size
    assert pairs > 100_000
    assert peak / pairs < 160, peak / pairs


# ----------------------------------------------------------------------------- grouping and loading
@pytest.mark.parametrize("runs", [
    np.array(["b", "b", "a", "a", "a", "c"], dtype=object),  # contiguous, as loaded
    np.array(["b", "a", "b", "c", "a"], dtype=object),  # interleaved
    np.array(["s"] * 4),  # a numpy string array, as curve() passes
])
def test_run_rows_equals_one_mask_per_run(runs):
    expected = [(r, np.flatnonzero(runs == r)) for r in dict.fromkeys(runs)]
    got = lrpairs.run_rows(runs)
    assert [r for r, _ in got] == [r for r, _ in expected]
    for (_, a), (_, b) in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_a_table_in_run_step_order_loads_as_its_shuffled_copy():
    rng = np.random.default_rng(2)
    frame = pd.concat([pd.DataFrame({"run": r, "step": np.arange(300), "lr": 1e-3,
                                     "loss": np.where(np.arange(300) % 5 == 0, np.nan, 3 + rng.random(300))})
                       for r in ("a", "b", "c")], ignore_index=True)
    in_order = load_curves(frame)
    blocks = [frame[frame["run"] == r] for r in ("c", "a", "b")]  # runs out of order, steps in order
    shuffled = load_curves(pd.concat(blocks, ignore_index=True))
    pd.testing.assert_frame_equal(in_order.frame, shuffled.frame, check_exact=True)
    assert list(in_order.frame["run"].unique()) == ["a", "b", "c"] and len(in_order) == 3 * 240
    assert in_order.lr.keys() == shuffled.lr.keys()


# ----------------------------------------------------------------------------- the C allocator
_FAULTS = """
import ctypes, json, resource
import numpy as np
from scalefit.bootstrap import _with_shared
from scalefit.limits import sliding_malloc_thresholds

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def faults(_table=None):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        a = np.ones(1 << 17)  # 1 MiB, allocated, touched and freed
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def mapped():  # bytes glibc maps apart from its heap for a 16 MiB array (0: the heap serves it)
    before = libc.mallinfo2().hblkhd
    a = np.ones(1 << 21)
    grew = libc.mallinfo2().hblkhd - before
    del a
    return grew

frozen, frozen_map = faults(), mapped()
with sliding_malloc_thresholds():
    inside, inside_map = faults(), mapped()
after, after_map = faults(), mapped()
task = _with_shared(faults, None)  # what every worker task runs through
print(json.dumps([frozen, inside, after, task, frozen_map, inside_map, after_map]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator settings")
def test_thresholds_frozen_by_the_environment_slide_within_a_fit_and_are_put_back_after():
    """A dask worker runs with MALLOC_TRIM_THRESHOLD_ set, which stops glibc from raising its mmap threshold:
    every array over 128 KiB is mapped and faulted in afresh (a bootstrap ran 4x slower). Within a fit or a
    worker task the thresholds slide again; after it, the process has the settings it was given (both: the
    trim threshold shows in the faults, the mmap threshold in what glibc maps for a 16 MiB array). Counted
    in page faults and mapped bytes, not time; a process started without the variable is left alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    run = lambda extra: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, "-c", _FAULTS], env={**env, **extra}, capture_output=True, text=True, check=True).stdout)
    frozen, inside, after, task, frozen_map, inside_map, after_map = run({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert frozen >= 200 and inside < frozen / 20 and task < frozen / 20  # a fault per page frozen; ~1 per array
    assert after > frozen / 2  # the trim threshold put back
    assert frozen_map >= 16 << 20 and inside_map == 0 and after_map >= 16 << 20  # the mmap threshold put back
    free, inside_free = run({})[:2]
    assert free < frozen / 20 and inside_free < frozen / 20
