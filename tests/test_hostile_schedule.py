"""Hostile uses of ``scalefit schedule predict|compare|optimize`` (issue #10, items 10, 12, 13, 15, 16):
silent wrong answers, unbounded memory and time, and option values that used to end in a traceback.

Every bad input ends with exit 2 and exactly one ``error:`` line naming the option (or spec key) and its
value, before any work and without writing a file. Kept fast: no timed assertions (speed belongs in
``benchmarks/``), horizons long enough to exercise the code paths and no longer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalefit.cli import app
from scalefit.errors import DataError
from scalefit.limits import LimitError
from scalefit.registry import get_law
from scalefit.schedule import compare_schedules, optimize_schedule, parse_schedule, predict_schedule

runner = CliRunner()
REF400 = ["--law", "multipower", "--reference", "400M"]
README = "cosine:peak=3e-4,steps=24000,warmup=2160"  # the README's own case (floor 0)


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _ok_json(*args):
    res = _run(*args, "--json")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return json.loads(res.stdout)


def _assert_one_error(res, *needles: str) -> str:
    """Exit 2, no traceback, exactly one 'error:' line on stderr, holding every needle."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def mpl():
    return get_law("multipower")


# ---------------------------------------------------------------------- 13: the dense curve is exact enough
def test_readme_curve_is_finite_and_exact_at_every_step(mpl):
    """The README case: every one of the 23,999 reported losses is a number (19 were null: log of a
    negative blocked sum near the end), and each agrees with an independent exact evaluation (the loss
    at t is the final loss of the schedule cut at t) -- all of the last 200 steps, every 197th before."""
    out = _ok_json("schedule", "predict", *REF400, "-s", README)
    steps, loss = np.array(out["steps"]), out["loss"]
    assert steps.tolist() == list(range(1, 24000)) and out["every"] == 1
    assert all(v is not None for v in loss)
    loss = np.array(loss)
    assert np.all(np.isfinite(loss))
    eta = parse_schedule(README).lr()
    theta = mpl.reference_theta("400M")
    check = np.unique(np.r_[np.arange(1, 24000, 197), np.arange(23800, 24000)])
    exact = np.array([mpl.final_loss(theta, eta[: t + 1]) for t in check])
    np.testing.assert_allclose(loss[check - 1], exact, rtol=0, atol=1e-6)
    assert out["final_loss"] == pytest.approx(exact[-1], abs=1e-12)  # quoted on its own: exact


def test_blocked_sums_stay_positive_where_the_lr_is_nearly_zero(mpl):
    """Blocked sums at the very end of a cosine to 0 (LR ~1e-12 per step, LR area ~3.6): finite, and
    within 1e-6 of the exact sums, for three parameter sets and both conventions."""
    eta = parse_schedule(README).lr()
    steps = np.arange(23950, 24000)
    runs = np.array(["a"] * steps.size)
    theta = np.vstack([mpl.reference_theta(s) for s in mpl.reference])
    for law in (mpl, mpl.with_options(convention="paper")):
        exact = law.predict(theta, law.design_from_lr({"a": eta}, runs, steps, resolution=None))
        for start in (None, 0.1):  # fitting (None) and schedule curves (0.1)
            blocked = law.predict(theta, law.design_from_lr({"a": eta}, runs, steps, resolution=0.01, start=start))
            assert np.all(np.isfinite(blocked))
            np.testing.assert_allclose(blocked, exact, rtol=0, atol=1e-5 if start is None else 1e-6)


def test_long_horizon_final_loss_is_finite_and_agrees_with_compare(mpl):
    """4M steps: the final loss was NaN (the budget switch to blocked sums); now predict, compare and
    the law's exact O(T) evaluation agree, and a blocked curve near the end is finite and within 1e-6."""
    spec = "cosine:peak=3e-4,steps=4000000,warmup=2160"
    out = _ok_json("schedule", "predict", *REF400, "-s", spec, "--every", "4M", "--at", 5000)
    eta, theta = parse_schedule(spec).lr(), mpl.reference_theta("400M")
    (cmp,) = compare_schedules(mpl, theta, {spec: eta})  # what `schedule compare` prints
    assert np.isfinite(out["final_loss"]) and out["final_step"] == 3_999_999 and out["loss"][-1] == out["final_loss"]
    assert out["final_loss"] == pytest.approx(cmp["final_loss"], abs=1e-12)
    assert round(cmp["final_loss"], 5) == 2.41713  # the value `schedule compare` gave in the issue
    assert out["final_loss"] == pytest.approx(mpl.final_loss(theta, eta), abs=1e-10)  # O(T) exact, another path
    near_end = np.arange(3_999_999 - 15, 4_000_000)  # 16 points: the blocked path
    curve = mpl.curve(theta, eta, near_end)[0]
    assert np.all(np.isfinite(curve)) and abs(curve[-1] - cmp["final_loss"]) < 1e-6


# ---------------------------------------------------------------------- 15: each number beside its own interval
@pytest.fixture(scope="module")
def fit_with_draws(tmp_path_factory):
    """A small lr_annealing fit with bootstrap draws (synthetic curves from the reference parameters)."""
    from scalefit.curves import load_curves
    from scalefit.fit import fit

    law = get_law("lr_annealing")
    specs = {"cos": "cosine:peak=2e-4,steps=3000,warmup=100", "const": "constant:peak=2e-4,steps=3000,warmup=100"}
    rng = np.random.default_rng(0)
    rows = []
    for run, spec in specs.items():
        steps = np.arange(200, 3000, 200)
        y = law.curve(law.reference_theta(), parse_schedule(spec).lr(), steps)[0] * np.exp(rng.normal(0, 2e-3, steps.size))
        rows.append(pd.DataFrame({"run": run, "step": steps, "loss": y}))
    result = fit("lr_annealing", load_curves(pd.concat(rows), schedules=specs), n_bootstrap=10, seed=0)
    return result.save(tmp_path_factory.mktemp("fit") / "fit.json")


def test_predict_at_puts_each_interval_beside_its_own_number(fit_with_draws):
    """--at 500 with draws: the final loss has the final step's interval and the loss at 500 its own;
    the JSON keys say which step each is for (`low`/`high` used to be --at's, printed beside the final)."""
    args = ["schedule", "predict", "--fit", fit_with_draws, "-s", "cosine:peak=2e-4,steps=3000,warmup=100",
            "--at", 500, "--every", 500]
    out = _ok_json(*args)
    assert "low" not in out and "high" not in out
    assert out["final_step"] == 2999 and out["at_step"] == 500
    assert out["final_loss_low"] <= out["final_loss"] <= out["final_loss_high"]
    assert out["loss_at_step_low"] <= out["loss_at_step"] <= out["loss_at_step_high"]
    assert out["final_loss_high"] < out["loss_at_step_low"]  # far apart: the loss falls a lot after step 500
    text = _run(*args).stdout
    final = next(line for line in text.splitlines() if line.startswith("final loss at step 2999:"))
    at = next(line for line in text.splitlines() if line.startswith("loss at step 500:"))
    assert f"{out['final_loss']:.6f}" in final and f"{out['final_loss_low']:.6g}" in final
    assert f"{out['loss_at_step']:.6f}" in at and f"{out['loss_at_step_low']:.6g}" in at
    assert f"{out['loss_at_step_low']:.6g}" not in final


def test_library_predict_keys_name_their_step(mpl):
    theta = mpl.reference_theta("400M")
    draws = theta * (1 + 1e-3 * np.random.default_rng(1).standard_normal((12, theta.size)))
    out = predict_schedule(mpl, theta, "cosine:peak=3e-4,steps=3000,warmup=200", every=1000, draws=draws, at=1500)
    assert {"final_loss_low", "final_loss_high", "loss_at_step_low", "loss_at_step_high"} <= set(out)
    assert out["samples"].shape == out["samples_at_step"].shape == (12,)


# ---------------------------------------------------------------------- 10: memory is bounded up front
@pytest.mark.parametrize("args", [
    ["schedule", "predict", *REF400, "-s", "cosine:peak=3e-4,steps=2e8,warmup=2160"],
    ["schedule", "compare", *REF400, "-s", "cosine:peak=3e-4,steps=2e8,warmup=2160"],
    ["schedule", "optimize", *REF400, "--peak", 3e-4, "--steps", "2e8"],
    ["schedule", "predict", *REF400, "-s", "cosine:peak=3e-4,steps=3e7", "--every", 1],
])
def test_huge_horizons_hit_the_memory_limit_before_allocating(args):
    """19.9 GB at steps=2e8 before; now one line naming the limit and how to raise it."""
    _assert_one_error(_run(*args), "over the limit", "working memory", "SCALEFIT_MAX_MEMORY")


def test_memory_limit_is_the_environment_variable(monkeypatch, tmp_path):
    """The same check with a small limit on a modest horizon: the estimate comes before the work."""
    monkeypatch.setenv("SCALEFIT_MAX_MEMORY", str(20 * 2**20))
    out = tmp_path / "s.csv"
    _assert_one_error(_run("schedule", "optimize", *REF400, "--peak", 3e-4, "--steps", "200k", "--out", out),
                      "--steps 200k", "SCALEFIT_MAX_MEMORY")
    assert not out.exists()
    _assert_one_error(_run("schedule", "compare", *REF400, "-s", "constant:peak=3e-4,steps=1M"), "SCALEFIT_MAX_MEMORY")
    with pytest.raises(LimitError, match="SCALEFIT_MAX_MEMORY"):
        parse_schedule("cosine:peak=3e-4,steps=1e6").lr()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_two_hundred_million_steps_under_an_address_space_limit():
    """Under a 3 GiB address-space limit the 2e8-step compare ends with the limit message, exit 2 (it
    used to be killed, or to raise MemoryError from numpy)."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30)); "
            "from scalefit.cli import main; sys.argv = ['scalefit'] + sys.argv[1:]; main()")
    proc = subprocess.run([sys.executable, "-c", code, "schedule", "compare", *REF400, "-s",
                           "cosine:peak=3e-4,steps=2e8,warmup=2160"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SCALEFIT_MAX_MEMORY": ""})
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "SCALEFIT_MAX_MEMORY" in errors[0] and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------- 12: one time limit for the whole search
def test_optimize_time_limit_covers_the_wsd_search():
    """A limit shorter than one evaluation: the WSD grid (not only L-BFGS-B) stops, keeps its best
    candidate and says so; the result is a valid monotone schedule, flagged unsuccessful."""
    res = _run("schedule", "optimize", *REF400, "--peak", 3e-4, "--warmup", 200, "--steps", "20k",
               "--time-limit", 1e-6, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["success"] is False and "time limit" in out["message"] and "WSD search" in out["message"]
    assert out["monotone"] and out["starts_at_peak"] and np.isfinite(out["final_loss"])
    assert "time limit" in res.stderr  # also said on stderr
    wsd = _run("schedule", "optimize", *REF400, "--peak", 3e-4, "--steps", "20k", "--family", "wsd",
               "--time-limit", 1e-6, "--json")
    assert wsd.exit_code == 0 and json.loads(wsd.stdout)["success"] is False


def test_optimizer_reports_progress_for_every_phase(mpl):
    seen = {}
    res = optimize_schedule(mpl, mpl.reference_theta("100M"), peak=3e-4, steps=2000, warmup=100, max_iter=5,
                            progress=lambda phase, done, total: seen.__setitem__(phase, (done, total)))
    assert set(seen) == {"WSD search", "cosine search", "free-form optimiser"}
    assert seen["WSD search"][0] == seen["WSD search"][1] == 280 and res.success


def test_progress_bar_appears_only_after_a_delay():
    from scalefit.cli.schedule import _Progress

    with _Progress(delay=3600) as bar:
        bar.update("work", 1, 2)
        assert bar.bar is None
    with _Progress(delay=0) as bar:
        bar.update("work", 1, 2)
        bar.update("more", 2, 2)
        assert bar.bar is not None and set(bar.tasks) == {"work", "more"}


# ---------------------------------------------------------------------- 16: option values, checked first
OPT = ["schedule", "optimize", *REF400]


@pytest.mark.parametrize("args, needles", [
    (OPT + ["--peak", "inf", "--steps", 1000], ["--peak inf"]),
    (OPT + ["--peak", "nan", "--steps", 1000], ["--peak nan"]),
    (OPT + ["--peak", "-1", "--steps", 1000], ["--peak -1"]),
    (OPT + ["--peak", "0", "--steps", 1000], ["--peak 0"]),
    (OPT + ["--peak", "1e300", "--steps", 1000], ["--peak 1e+300"]),
    (OPT + ["--peak", 3e-4, "--steps", 0], ["--steps 0"]),
    (OPT + ["--peak", 3e-4, "--steps", "-5"], ["--steps -5"]),
    (OPT + ["--peak", 3e-4, "--steps", "1.5k7"], ["--steps", "1.5k7"]),
    (OPT + ["--peak", 3e-4, "--steps", "100.5"], ["--steps 100.5"]),
    (OPT + ["--peak", 3e-4, "--steps", "9.3e18"], ["--steps 9.3e18"]),
    (OPT + ["--peak", 3e-4, "--steps", "inf"], ["--steps", "inf"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--warmup", 5000], ["--warmup 5000"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--warmup", 999], ["--warmup 999"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--warmup", "9.3e18"], ["--warmup 9.3e18"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--warmup", "-1"], ["--warmup -1"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--warmup-start", 2], ["--warmup-start 2"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--warmup-start", "nan"], ["--warmup-start nan"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--floor", "nan"], ["--floor nan"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--floor", "-1e-5"], ["--floor -1e-05"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--floor", 3e-4], ["--floor 0.0003"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--time-limit", 0], ["--time-limit 0"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--time-limit", "inf"], ["--time-limit inf"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--ci", "nan"], ["--ci nan"]),
    (OPT + ["--peak", 3e-4, "--steps", 1000, "--family", "zigzag"], ["--family 'zigzag'"]),
    (["schedule", "predict", *REF400, "-s", README, "--every", 0], ["--every 0"]),
    (["schedule", "predict", *REF400, "-s", README, "--every", "-3"], ["--every -3"]),
    (["schedule", "predict", *REF400, "-s", README, "--every", "2.5"], ["--every 2.5"]),
    (["schedule", "predict", *REF400, "-s", README, "--every", "lots"], ["--every", "lots"]),
    (["schedule", "predict", *REF400, "-s", README, "--at", "-1"], ["--at -1"]),
    (["schedule", "predict", *REF400, "-s", README, "--at", 24000], ["--at 24000", "0..23999"]),
    (["schedule", "predict", *REF400, "-s", README, "--at", "9.3e18"], ["--at 9300000000000000000"]),
    (["schedule", "predict", *REF400, "-s", README, "--ci", 1], ["--ci 1"]),
    (["schedule", "compare", *REF400, "-s", README, "-s", "constant:peak=3e-4,steps=100", "--at", 500],
     ["--at", "500", "constant"]),
    (["schedule", "compare", *REF400, "-s", README, "--at", "-2"], ["--at -2"]),
    (["schedule", "predict", *REF400, "-s", README, "--set", "B=nan"], ["--set B", "nan"]),
    (["schedule", "predict", *REF400, "-s", README, "--law-opt", "resolution=nan"], ["resolution=nan"]),
    (["schedule", "predict", *REF400, "-s", README, "--law-opt", "resolution=-1"], ["resolution=-1"]),
    (["schedule", "predict", *REF400, "-s", README, "--law-opt", "resolution=1e-12"], ["resolution=1e-12"]),
    (["schedule", "predict", "--law", "lr_annealing", "--reference", "default", "-s", README, "--law-opt", "lam=abc"],
     ["lam=abc"]),
])
def test_bad_option_values_are_one_line(args, needles):
    _assert_one_error(_run(*args), *needles)


@pytest.mark.parametrize("spec, needle", [
    ("cosine:peak=3e-4,steps=1e19", "steps=1e+19"),
    ("cosine:peak=3e-4,steps=9.3e18", "steps=9.3e+18"),
    ("cosine:peak=nan,steps=100", "peak='nan'"),
    ("cosine:peak=1e308,steps=100", "peak must be"),
    ("cosine:peak=3e-4,steps=100,warmup=100", "warmup (100)"),
    ("cosine:peak=3e-4,steps=100,warmup=-1", "warmup"),
    ("cosine:peak=3e-4,steps=2.5", "steps"),
    ("cosine:peak=3e-4,steps=1", "steps"),
    ("cosine:peak=3e-4,steps=100,floor=200%", "floor"),
    ("cosine:peak=3e-4,steps=100,warmup_start=2", "warmup_start"),
    ("wsd:peak=3e-4,steps=100,cooldown=1e300", "cooldown"),
    ("wsd:peak=3e-4,steps=100,shape=exp", "shape=exp"),
    ("wsd:peak=3e-4,steps=100,shape=zigzag", "shape 'zigzag'"),
    ("two_stage:peak=3e-4,steps=100,switch=9.3e18,low=1e-5", "switch"),
    ("multistep:peak=3e-4,steps=100,milestones=0.9/0.5", "milestones"),
    ("multistep:peak=3e-4,steps=100,factor=inf", "factor='inf'"),
    ("cosine:peak=3e-4,steps=100,steps=200", "twice"),
    ("cosine:peak", "'peak' is not key=value"),
    ("zigzag:peak=3e-4,steps=100", "unknown schedule 'zigzag'"),
    (":::", "unknown schedule"),
    ("cosine:=3", "unknown key ''"),
])
def test_nonsense_specs_are_one_line(spec, needle):
    for command in ("predict", "compare"):
        _assert_one_error(_run("schedule", command, *REF400, "-s", spec), spec, needle)


def test_options_are_checked_before_the_parameters_are_loaded(tmp_path):
    """A bad option is reported even when --fit names a file that does not exist: no work came first."""
    missing = tmp_path / "absent.json"
    _assert_one_error(_run("schedule", "predict", "--fit", missing, "-s", README, "--every", 0), "--every 0")
    _assert_one_error(_run("schedule", "predict", "--fit", missing, "-s", "cosine:peak=-1,steps=9"), "peak")
    _assert_one_error(_run("schedule", "optimize", "--fit", missing, "--peak", "nan", "--steps", 100), "--peak nan")


def test_user_files_must_be_regular_files(tmp_path):
    """--lr-table and --data through check_input_file: a folder, a FIFO and a missing file, one line each."""
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    _assert_one_error(_run("schedule", "predict", *REF400, "--lr-table", folder), "is a folder", "--lr-table")
    _assert_one_error(_run("schedule", "compare", *REF400, "--lr-table", tmp_path / "no.csv"), "no such file")
    _assert_one_error(_run("schedule", "predict", *REF400, "--data", tmp_path / "no.csv"), "no such file", "--data")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "lr.fifo"
        os.mkfifo(fifo)
        _assert_one_error(_run("schedule", "predict", *REF400, "--lr-table", fifo), "FIFO")
        _assert_one_error(_run("schedule", "predict", *REF400, "--data", fifo, "--data-schedule", "a=" + README), "FIFO")


def test_outputs_are_refused_before_the_work_and_never_half_written(tmp_path):
    """--out and --plot: an existing file (or a link planted there) is refused up front without --force
    and left untouched; a folder is refused even with --force; --out writes through the atomic writer."""
    base = [*OPT, "--peak", 3e-4, "--steps", 2000, "--warmup", 100, "--time-limit", 1e-6]  # the search is not the point
    existing = tmp_path / "s.csv"
    existing.write_text("keep me\n")
    _assert_one_error(_run(*base, "--out", existing), str(existing), "--force")
    assert existing.read_text() == "keep me\n"
    target = tmp_path / "target.csv"
    target.write_text("precious\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    _assert_one_error(_run(*base, "--out", link), "--force")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    _assert_one_error(_run(*base, "--out", folder, "--force"), "is a folder")
    _assert_one_error(_run(*base, "--out", tmp_path / "s.json"), "--out")
    png = tmp_path / "p.png"
    png.write_bytes(b"old")
    _assert_one_error(_run("schedule", "predict", *REF400, "-s", README, "--plot", png), "--force")
    _assert_one_error(_run("schedule", "compare", *REF400, "-s", README, "--plot", png), "--force")
    assert png.read_bytes() == b"old"
    res = _run(*base, "--out", link, "--force", "--json")  # --force replaces the link itself, not its target
    assert res.exit_code == 0, res.output
    assert target.read_text() == "precious\n" and not link.is_symlink()
    table = pd.read_csv(link)
    assert list(table.columns) == ["step", "lr"] and len(table) == 2000
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------- spec strings, generated
_KEYS = ["peak", "steps", "warmup", "warmup_start", "floor", "cooldown", "shape", "switch", "low", "milestones",
         "factor", "hold", "bogus", ""]
_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "3e-4", "1e-300", "1e300", "nan", "inf", "-inf", "9.3e18", "1e19", "24k",
                     "0.5", "1.5", "10%", "200%", "%", "0.8/0.9", "0.9/0.8", "/", "sqrt", "exp", "", "=", " "]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.text(max_size=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["cosine", "linear", "wsd", "two_stage", "multistep", "cos_inf", "constant", "x", ""]),
       items=st.lists(st.tuples(st.sampled_from(_KEYS), _VALUES), max_size=6), sep=st.sampled_from([",", ";", ",,"]))
def test_generated_specs_parse_or_fail_in_one_line(kind, items, sep):
    """Any spec string: a Schedule whose LR array is finite, non-negative and of its length, or one
    DataError line (never ValueError, OverflowError or a wrapped int64)."""
    spec = f"{kind}:" + sep.join(f"{k}={v}" for k, v in items)
    try:
        sched = parse_schedule(spec)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    if sched.steps > 200_000:
        return
    eta = sched.lr()
    assert eta.shape == (sched.steps,) and np.all(np.isfinite(eta)) and np.all(eta >= 0)


def test_every_larger_than_the_horizon_reports_first_and_last(mpl):
    out = _ok_json("schedule", "predict", *REF400, "-s", README, "--every", "9.3e18")
    assert out["steps"] == [1, 23999]  # step 0 has no LR area yet (warm-up from 0)
    assert all(np.isfinite(out["loss"]))


def test_library_rejects_bad_steps_without_traceback(mpl):
    theta = mpl.reference_theta("400M")
    for bad in (-1, 3000, 2**63 + 5, float("nan")):
        with pytest.raises(DataError):
            predict_schedule(mpl, theta, "cosine:peak=3e-4,steps=3000", every=500, at=bad)
    with pytest.raises(DataError, match="every=0"):
        predict_schedule(mpl, theta, "cosine:peak=3e-4,steps=3000", every=0)
