"""Hostile runs (issue #10, items 10-12 and 14-16): absurd option values, outputs that cannot be written,
resource limits, progress, forecasts without an answer, and kills of a parallel bootstrap.

Every refusal is exactly one ``error:`` line naming the option and the value, exit 2, no traceback,
decided before the table is read or a fit started (the work is replaced by a function that fails the
test if it is reached), and files already there are untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scalefit.cli import app
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import check_options, fit
from scalefit.limits import LimitError

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: tests/ is not on sys.path
from strategies import chinchilla_frame

runner = CliRunner()
ROLES = ["params", "tokens", "loss"]
PRECIOUS = "precious, must survive"


def _one_error(res, *fragments, code=2) -> str:
    """Exit ``code`` with exactly one 'error:' line on stderr that contains every fragment; no traceback."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert res.exit_code == code, (res.exit_code, res.output)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def runs(tmp_path):
    path = tmp_path / "runs.csv"
    chinchilla_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Reading the table or fitting fails the test: whatever is refused must be refused before either."""
    import importlib

    modules = {name: importlib.import_module(f"scalefit.{name}")
               for name in ("cost.budget", "cost.calibration", "data", "fit")}

    def boom(*args, **kwargs):
        raise AssertionError("the work started before the options were checked")

    for module, name in (("fit", "multistart"), ("fit", "run_bootstrap"), ("data", "load_runs"),
                         ("data", "read_table"), ("cost.budget", "shape_features"),
                         ("cost.calibration", "timings_features")):
        monkeypatch.setattr(modules[module], name, boom)


# ---------------------------------------------------------------------- 16: option values, checked first
@pytest.mark.parametrize("args, fragments", [
    (["--jobs", "0"], ["--jobs 0"]),
    (["--jobs", "-3"], ["--jobs -3"]),
    (["--seed", "-1"], ["--seed -1"]),
    (["--delta", "1e308"], ["--delta 1e+308"]),
    (["--delta", "0"], ["--delta 0"]),
    (["--backend", "multiprocessing"], ["--backend 'multiprocessing'"]),
    (["--ci", "1.5"], ["--ci 1.5"]),
    (["--bootstrap", "-1"], ["--bootstrap -1"]),
    (["--interval", "wide"], ["--interval 'wide'"]),
    (["--plot", "fit.gif"], ["--plot fit.gif"]),
])
def test_fit_option_values_are_refused_before_the_work(runs, no_work, args, fragments):
    out = runs.parent / "fit.json"
    out.write_text(PRECIOUS)
    _one_error(runner.invoke(app, ["fit", str(runs), "--out", str(out), "--force", *args]), *fragments)
    assert out.read_text() == PRECIOUS


def test_jobs_over_the_limit_names_the_limit_and_how_to_raise_it(runs, no_work, monkeypatch):
    monkeypatch.setenv("SCALEFIT_MAX_JOBS", "4")
    _one_error(runner.invoke(app, ["fit", str(runs), "-b", "10", "--jobs", "5"]), "--jobs 5", "SCALEFIT_MAX_JOBS")
    monkeypatch.delenv("SCALEFIT_MAX_JOBS")
    _one_error(runner.invoke(app, ["fit", str(runs), "-b", "10", "--jobs", "100000"]), "--jobs 100000",
               "SCALEFIT_MAX_JOBS")


def test_library_checks_options_first_and_names_the_parameter():
    """fit() refuses a bad option before it looks at the data (here a path that does not exist)."""
    with pytest.raises(DataError, match=r"^jobs=0: "):
        fit("chinchilla", "no/such/table.csv", jobs=0)
    with pytest.raises(DataError, match=r"^seed=-1: "):
        fit("chinchilla", "no/such/table.csv", seed=-1)
    with pytest.raises(DataError, match=r"^n_bootstrap=2\.5: "):
        fit("chinchilla", "no/such/table.csv", n_bootstrap=2.5)
    with pytest.raises(DataError, match=r"^backend='multiprocessing': "):
        fit("chinchilla", "no/such/table.csv", backend="multiprocessing")
    with pytest.raises(DataError, match=r"^--seed -1: "):
        check_options(seed=-1, names={"seed": "--seed"})


# ---------------------------------------------------------------------- 16: outputs, checked first
def test_out_that_is_a_folder_is_refused_even_with_force(runs, no_work):
    folder = runs.parent / "a_folder"
    folder.mkdir()
    _one_error(runner.invoke(app, ["fit", str(runs), "--out", str(folder), "--force"]), "a_folder", "folder")
    assert folder.is_dir() and not any(folder.iterdir())


def test_out_under_a_file_is_refused(runs, no_work):
    _one_error(runner.invoke(app, ["fit", str(runs), "--out", str(runs / "fit.json")]), "not a folder")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write a read-only folder")
@pytest.mark.parametrize("flag, name", [("--out", "fit.json"), ("--plot", "fit.png")])
def test_output_in_a_read_only_folder_is_refused_before_the_fit(runs, no_work, flag, name):
    folder = runs.parent / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        _one_error(runner.invoke(app, ["fit", str(runs), flag, str(folder / name)]), "not writable")
    finally:
        folder.chmod(0o755)


def test_out_equal_to_plot_or_to_the_input_is_refused(runs, no_work):
    same = runs.parent / "fit.png"
    _one_error(runner.invoke(app, ["fit", str(runs), "--out", str(same), "--plot", str(same)]), "fit.png")
    before = runs.read_bytes()
    _one_error(runner.invoke(app, ["fit", str(runs), "--out", str(runs), "--force"]), "--out", "input")
    _one_error(runner.invoke(app, ["fit", str(runs), "--plot", str(runs), "--force"]), "--plot", "input")
    assert runs.read_bytes() == before


def test_existing_plot_needs_force_before_the_fit(runs, no_work):
    plot = runs.parent / "fit.png"
    plot.write_text(PRECIOUS)
    _one_error(runner.invoke(app, ["fit", str(runs), "--plot", str(plot)]), "fit.png", "--force")
    assert plot.read_text() == PRECIOUS


# ---------------------------------------------------------------------- 14 + 16: cost and predict inputs
@pytest.mark.parametrize("args, fragments", [
    (["cost", "estimate", "--params", "7B", "--tokens", "1e308", "-H", "H100"], ["--tokens 1e+308"]),
    (["cost", "estimate", "--params", "7B", "--tokens", "1T", "-H", "H100", "--gpus", "10000000000"], ["--gpus"]),
    (["cost", "estimate", "--params", "7B", "--hours", "1e-300", "-H", "H100"], ["--hours 1e-300"]),
    (["cost", "estimate", "--params", "7B", "--tokens", "1T", "-H", "H100", "--seq-len", "0"], ["--seq-len 0"]),
    (["cost", "estimate", "--params", "1e30", "--tokens", "1T", "-H", "H100"], ["--params 1e+30"]),
    (["cost", "estimate", "--params", "7B", "--tokens", "1T", "--peak-tflops", "1e308", "--hbm-gbps", "100"],
     ["--peak-tflops 1e+308"]),
    (["cost", "search", "--law", "chinchilla", "--hours", "1e-300", "-H", "H100"], ["--hours 1e-300"]),
    (["cost", "search", "--law", "chinchilla", "--hours", "72", "-H", "H100", "--seq-len", "0"], ["--seq-len 0"]),
    (["predict", "--law", "chinchilla", "--reference", "--params", "7B", "--tokens", "1e308"], ["--tokens 1e+308"]),
    (["predict", "--law", "chinchilla", "--reference", "--hours", "1e-300", "-H", "H100"], ["--hours 1e-300"]),
    (["predict", "--law", "chinchilla", "--reference", "--hours", "72", "-H", "H100", "--gpus", "10000000000"],
     ["--gpus"]),
    (["predict", "--law", "chinchilla", "--reference", "--params", "1B", "--compute", "1e40"],
     ["--compute 1e+40", "tokens"]),
    (["predict", "--law", "chinchilla", "--reference", "--params", "7B", "--ci", "1.5"], ["--ci 1.5"]),
])
def test_absurd_cost_and_forecast_inputs_are_refused(no_work, args, fragments):
    _one_error(runner.invoke(app, args), *fragments)


def test_budget_under_one_step_says_so():
    res = runner.invoke(app, ["cost", "estimate", "--params", "7B", "--flops", "1e12", "-H", "H100", "--json"])
    assert res.exit_code == 0, res.output
    assert "of one optimizer step" in res.stderr


def test_calibrate_refuses_outputs_and_options_before_reading(tmp_path, no_work):
    timings = tmp_path / "timings.csv"
    timings.write_text("not read")
    folder = tmp_path / "cost_dir"
    folder.mkdir()
    _one_error(runner.invoke(app, ["cost", "calibrate", str(timings), "-H", "H100", "--out", str(folder), "--force"]),
               "folder")
    _one_error(runner.invoke(app, ["cost", "calibrate", str(timings), "-H", "H100", "--out", str(timings),
                                   "--force"]), "input")
    _one_error(runner.invoke(app, ["cost", "calibrate", str(timings), "-H", "H100", "--folds", "1"]), "--folds 1")
    _one_error(runner.invoke(app, ["cost", "calibrate", str(timings), "-H", "H100", "--seed", "-1"]), "--seed -1")
    assert timings.read_text() == "not read"


def test_cost_json_is_written_like_every_artefact(tmp_path):
    """cost.json goes through the one atomic writer: the same mode as fit.json (0666 less the umask)."""
    from scalefit import cost

    model = cost.CostModel.roofline(cost.get_hardware("H100"))
    path = model.save(tmp_path / "cost.json")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
    with pytest.raises(DataError, match="already exists"):
        model.save(path)
    assert cost.CostModel.load(path).coef == model.coef
    assert not hasattr(cost, "write_json_atomic")


def test_compare_checks_delta_first(runs, no_work):
    _one_error(runner.invoke(app, ["compare", str(runs), "--delta", "1e308"]), "--delta 1e+308")


# ---------------------------------------------------------------------- 15: no answer is said, not printed
def _farseer(a1: float) -> np.ndarray:
    from scalefit.registry import get_law

    law = get_law("farseer")
    theta = law.reference_theta(None).copy()
    theta[law.param_names.index("a1")] = a1  # a1 = 0: a constant D-exponent, so an interior optimum exists
    return theta


def test_farseer_without_a_compute_optimum_is_one_clear_error():
    res = runner.invoke(app, ["predict", "--law", "farseer", "--reference", "--compute", "1e23"])
    _one_error(res, "farseer", "no compute-optimal allocation", "--params or --tokens")
    assert "nan" not in res.stdout


def test_draws_without_an_optimum_never_leave_a_nan_beside_an_interval():
    from scalefit.forecast import forecast
    from scalefit.registry import get_law

    law = get_law("farseer")
    good, bad = _farseer(0.0), _farseer(0.03)
    rng = np.random.default_rng(0)
    jitter = lambda k: good * (1 + 0.002 * rng.standard_normal((k, good.size)))  # noqa: E731
    few_bad = np.vstack([jitter(99), bad[None]])
    fc = forecast(law, good, few_bad, compute=1e22, ci=0.9)
    assert np.isfinite(fc.params.value) and fc.params.low < fc.params.value < fc.params.high
    assert any("1 of 100 bootstrap draws" in w and "left out" in w for w in fc.warnings)
    many_bad = np.vstack([jitter(80), np.repeat(bad[None], 20, axis=0)])
    fc = forecast(law, good, many_bad, compute=1e22, ci=0.9)
    assert fc.params.low is None and fc.loss.low is None
    assert any("20 of 100" in w and "none is given" in w for w in fc.warnings)
    with pytest.raises(DataError, match="no compute-optimal allocation"):
        forecast(law, bad, few_bad, compute=1e22)


# ---------------------------------------------------------------------- 10: memory
def test_bootstrap_memory_is_checked_before_the_fit(runs, monkeypatch):
    """The draws x runs estimate needs the table (its runs), so it comes after reading, before fitting."""
    import importlib

    fitmod = importlib.import_module("scalefit.fit")
    monkeypatch.setattr(fitmod, "multistart", lambda *a, **k: pytest.fail("the fit started"))
    monkeypatch.setenv("SCALEFIT_MAX_MEMORY", str(2**20))
    _one_error(runner.invoke(app, ["fit", str(runs), "-b", "100000"]), "100,000 draws", "SCALEFIT_MAX_MEMORY")


def test_bootstrap_memory_limit_in_the_library(monkeypatch):
    data = from_frame(chinchilla_frame(), required=ROLES)
    monkeypatch.setenv("SCALEFIT_MAX_MEMORY", str(2**20))
    with pytest.raises(LimitError, match="100,000 draws.*SCALEFIT_MAX_MEMORY"):
        fit("chinchilla", data, n_bootstrap=100_000)


def test_streamed_resamples_equal_resamples_drawn_at_once(monkeypatch):
    """Past a size the bootstrap draws resamples chunk by chunk (bounded memory): the same draws."""
    import importlib

    bootmod = importlib.import_module("scalefit.bootstrap")
    calls = []
    real_chunk = bootmod._bootstrap_chunk
    monkeypatch.setattr(bootmod, "_bootstrap_chunk", lambda *args: calls.append(args) or real_chunk(*args))
    for method in ("runs", "wild"):
        calls.clear()
        at_once = fit("chinchilla", from_frame(chinchilla_frame(), required=ROLES), n_bootstrap=40, seed=3,
                      bootstrap_method=method)
        problem, u_hat, _, codes, wild = calls[0]
        monkeypatch.setattr(bootmod, "_DEDUP_ELEMENTS", 0)
        streamed = bootmod.run_bootstrap(problem, u_hat, codes, 40, 3, method=method)
        monkeypatch.setattr(bootmod, "_DEDUP_ELEMENTS", 2**22)
        np.testing.assert_array_equal(problem.param.to_theta(streamed), at_once.draws)


# ---------------------------------------------------------------------- 12: progress of the multi-start
def test_progress_hears_every_stage_and_old_callbacks_only_the_bootstrap():
    data = from_frame(chinchilla_frame(), required=ROLES)
    staged: dict[str, list[tuple[int, int]]] = {}
    fit("chinchilla", data, n_bootstrap=20, progress=lambda d, t, stage: staged.setdefault(stage, []).append((d, t)))
    # ("polish" is heard only when scipy polishes: a projected fit's interior optimum needs none)
    assert {"starts", "refine", "bootstrap"} <= set(staged)
    for stage, calls in staged.items():
        assert all(0 <= d <= t for d, t in calls), stage
        assert calls[-1][0] == calls[-1][1], stage  # every stage ends complete
    plain: list[tuple[int, int]] = []
    fit("chinchilla", data, n_bootstrap=20, progress=lambda d, t: plain.append((d, t)))
    assert plain and plain[-1] == (20, 20)


# ---------------------------------------------------------------------- 11: interrupts and kills
def test_interrupt_after_fit_json_says_what_was_written(runs, monkeypatch):
    """Ctrl-C while the plot is drawn: fit.json is complete and the message says so (not 'nothing')."""
    import scalefit.cli.fit as cli_fit

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_fit, "_plot", interrupted)
    out = runs.parent / "fit.json"
    res = runner.invoke(app, ["fit", str(runs), "--out", str(out), "--plot", str(runs.parent / "fit.png")])
    line = _one_error(res, "interrupted", "fit.json", code=130)
    assert "nothing was written" not in line and out.exists()
    assert not (runs.parent / "fit.png").exists()


def _marked(marker: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``marker``: the CLI and everything it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _workers(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status and b"loky" in cmd and b"resource_tracker" not in cmd:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_parallel_bootstrap_leaves_no_worker(runs, sig):
    """A `fit --jobs 2` busy in its bootstrap, killed: no worker survives 10 s later. SIGTERM also stops
    cleanly: exit 143, one line saying nothing was written, no output or temp file left."""
    marker = f"SCALEFIT_TEST_RUN={uuid.uuid4().hex}"
    name, value = marker.split("=")
    out = runs.parent / "fit.json"
    proc = subprocess.Popen([sys.executable, "-m", "scalefit", "fit", str(runs), "--bootstrap", "1000000",
                             "--jobs", "2", "--out", str(out)], env={**os.environ, name: value},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_workers(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and len(_workers(proc.pid)) >= 2, "the bootstrap never started its workers"
        time.sleep(0.5)  # workers busy with chunks
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked(marker) == [], "worker processes survived their parent"
    finally:
        for pid in _marked(marker):  # only processes this test started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, stderr
        assert "Traceback" not in stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert errors == ["error: terminated by SIGTERM; nothing was written"], stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and not list(runs.parent.glob(".fit.json*"))
