"""Crafted fit.json files, planted links and racing writers (issue #10, items 1-8, 14, 16, 17).

Each test asserts the exact outcome: exit code, one ``error:`` line naming the field or file, and that no
user file was touched. A property test mutates a real fit.json at random and checks that loading and
forecasting never end in a traceback, never print a non-finite estimate, and never open a file outside
the fit's folder.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_clean_error, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalefit.data import from_frame
from scalefit.errors import DataError, LawNotFoundError, ScalefitError
from scalefit.fit import fit
from scalefit.result import load_fit

sys.path.insert(0, str(Path(__file__).parent))
from strategies import chinchilla_frame  # noqa: E402

ROLES = ["params", "tokens", "loss"]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def small_fit():
    return fit("chinchilla", from_frame(chinchilla_frame(sizes=3, budgets=3), required=ROLES), n_bootstrap=20, seed=1)


@pytest.fixture
def saved(small_fit, tmp_path):
    return small_fit.save(tmp_path / "fit.json")


@pytest.fixture
def big_saved(small_fit, tmp_path, monkeypatch):
    """The same fit with its draws in a parquet file beside it."""
    import scalefit.fitfile

    monkeypatch.setattr(scalefit.fitfile, "INLINE_DRAWS", 0)
    return small_fit.save(tmp_path / "big.json")


def _edit(path: Path, change) -> Path:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}


# ---------------------------------------------------------------------- 1. code execution
LOADERS = [
    lambda f: ["predict", "--fit", f, "--params", "1B", "--tokens", "20B"],
    lambda f: ["check", f, "--baseline", f],
    lambda f: ["translate", "--from", f, "--via", f],
    lambda f: ["schedule", "predict", "--fit", f, "-s", "cosine:peak=3e-4,steps=1000,warmup=100"],
    lambda f: ["cost", "estimate", "--params", "1B", "--tokens", "20B", "--hardware", "H100", "--fit", f],
]


@pytest.mark.parametrize("name", ["/proc/self/cwd/helper", "../helper", "helper/../helper", "helper.py", ""])
@pytest.mark.parametrize("command", LOADERS)
def test_a_law_name_never_imports_a_file(saved, tmp_path, monkeypatch, name, command):
    marker = tmp_path / "ran"
    (tmp_path / "helper.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    monkeypatch.chdir(tmp_path)
    _edit(saved, lambda p: p["law"].update(name=name))
    assert_clean_error(run(*command(str(saved))), "law.name")
    assert not marker.exists()


def test_the_registry_refuses_a_path_as_a_name(tmp_path):
    from scalefit.registry import get_law

    (tmp_path / "x.py").write_text("raise SystemExit('imported')\n")
    for name in (str(tmp_path / "x"), "../x", "x.y"):
        with pytest.raises(LawNotFoundError, match="letters, digits"):
            get_law(name)


# ---------------------------------------------------------------------- 2. draws outside the folder
@pytest.mark.parametrize("file", ["..", "../big.a1b2c3d4e5f6.draws.parquet", "/etc/passwd", "sub/x.a1b2c3d4e5f6.draws.parquet",
                                  "big.draws.parquet", ".a1b2c3d4e5f6.draws.parquet", 3, None])
def test_a_draws_reference_is_a_plain_name_in_the_folder(big_saved, file):
    _edit(big_saved, lambda p: p["draws"].update(file=file))
    assert_clean_error(run("predict", "--fit", big_saved, "--params", "1B", "--tokens", "20B"), "draws")


def test_draws_through_a_symlink_are_refused(big_saved, tmp_path):
    name = json.loads(big_saved.read_text())["draws"]["file"]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / name).rename(outside / name)
    (tmp_path / name).symlink_to(outside / name)
    assert_clean_error(run("predict", "--fit", big_saved, "--params", "1B", "--tokens", "20B"), "not a regular file")


def test_draws_of_another_fit_are_refused(big_saved, small_fit, tmp_path, monkeypatch):
    """Same name pattern, other contents (another seed): the recorded hash no longer matches."""
    import pandas as pd

    name = json.loads(big_saved.read_text())["draws"]["file"]
    other = small_fit.draws[::-1] * 1.5
    pd.DataFrame(other, columns=small_fit.param_names).to_parquet(tmp_path / name)
    assert_clean_error(run("predict", "--fit", big_saved, "--params", "1B", "--tokens", "20B"), "recorded hash")


@pytest.mark.parametrize("change, match", [
    (lambda p: p["draws"].update(shape=[3, 5]), "holds"),
    (lambda p: p["draws"].update(shape=[20, 2]), "draws.shape"),
    (lambda p: p["draws"].update(sha256="0" * 12), "does not match the draws file name"),
])
def test_draws_records_must_match_the_file(big_saved, change, match):
    _edit(big_saved, change)
    with pytest.raises(DataError, match=match):
        load_fit(big_saved)


def _shift_e(saved, factor=1.0, add=0.0):
    def shift(p):
        p["draws"] = [[v * factor + add if i == 0 else v for i, v in enumerate(row)] for row in p["draws"]]
    _edit(saved, shift)


def test_an_interval_far_from_its_estimate_is_an_error(saved):
    """Draws that are not this fit's (E moved up by 2 nats) give an interval far from the estimate: no output."""
    _shift_e(saved, add=2.0)
    assert_clean_error(run("predict", "--fit", saved, "--params", "1B", "--tokens", "20B"), "does not contain its estimate")


def test_an_interval_just_beside_its_estimate_is_said(saved):
    """A percentile interval can miss the estimate legitimately (a parameter at a bound): output, with a warning."""
    _shift_e(saved, 1.02)
    res = run("predict", "--fit", saved, "--params", "1B", "--tokens", "20B")
    assert res.exit_code == 0, res.output
    assert "lies outside its own" in res.stderr


# ---------------------------------------------------------------------- 3, 6. --force and draws files
def test_force_never_deletes_draws_a_backup_needs(big_saved, tmp_path, monkeypatch):
    backup = tmp_path / "big.json.bak"
    backup.write_bytes(big_saved.read_bytes())
    runs = tmp_path / "runs.csv"
    chinchilla_frame(sizes=3, budgets=3, seed=5).to_csv(runs, index=False)
    res = run("fit", runs, "--bootstrap", "20", "--seed", "7", "--out", big_saved, "--force")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(load_fit(backup).draws, load_fit(tmp_path / "big.json.bak").draws)
    assert load_fit(backup).draws is not None


def test_an_output_named_like_a_draws_file_is_refused(big_saved, tmp_path):
    name = json.loads(big_saved.read_text())["draws"]["file"]
    before = _snapshot(tmp_path)
    runs = tmp_path / "runs.csv"
    chinchilla_frame(sizes=3, budgets=3).to_csv(runs, index=False)
    res = run("fit", runs, "--bootstrap", "5", "--out", tmp_path / name, "--force")
    assert_clean_error(res, "reserved for bootstrap draws")
    assert {k: v for k, v in _snapshot(tmp_path).items() if k != "runs.csv"} == before


# ---------------------------------------------------------------------- 4. baselines
def _two_fits(small_fit, tmp_path):
    """Two fits that differ from small_fit and from each other."""
    return tuple(fit("chinchilla", from_frame(chinchilla_frame(sizes=3, budgets=3, seed=seed), required=ROLES),
                     n_bootstrap=20, seed=seed).save(tmp_path / f"new{i}.json") for i, seed in ((1, 9), (2, 4)))


def test_concurrent_baseline_updates_keep_every_version(small_fit, tmp_path):
    base = small_fit.save(tmp_path / "base.json")
    original = base.read_bytes()
    new1, new2 = _two_fits(small_fit, tmp_path)
    cmd = [sys.executable, "-m", "scalefit", "check"]
    procs = [subprocess.Popen([*cmd, str(new), "--baseline", str(base), "--update-baseline"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for new in (new1, new2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    kept = sorted(tmp_path.glob("base.json.*.prev"))
    assert len(kept) == 2
    versions = {k.read_bytes() for k in kept} | {base.read_bytes()}
    assert original in versions and len(versions) == 3
    for k in kept:
        load_fit(k)


def test_a_planted_symlink_at_the_prev_name_is_not_written_through(small_fit, tmp_path):
    import datetime as dt

    base = small_fit.save(tmp_path / "base.json")
    new1, _ = _two_fits(small_fit, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    now = dt.datetime.now(dt.timezone.utc)
    for s in range(0, 30):  # every name the next half minute could produce
        stamp = (now + dt.timedelta(seconds=s)).strftime("%Y%m%dT%H%M%SZ")
        (tmp_path / f"base.json.{stamp}.prev").symlink_to(victim)
    res = run("check", new1, "--baseline", base, "--update-baseline")
    assert res.exit_code == 0, res.output
    assert victim.read_text() == "precious"
    kept = [p for p in tmp_path.glob("base.json.*.prev") if not p.is_symlink()]
    assert len(kept) == 1 and load_fit(kept[0]).theta.tolist() == small_fit.theta.tolist()


def test_an_edited_fit_is_never_made_the_baseline(small_fit, tmp_path):
    base = small_fit.save(tmp_path / "base.json")
    new1, _ = _two_fits(small_fit, tmp_path)
    _edit(new1, lambda p: p["params"]["E"].update(value=p["params"]["E"]["value"] * 1.01))
    before = base.read_bytes()
    assert_clean_error(run("check", new1, "--baseline", base, "--update-baseline"), "checksum is mismatch")
    _edit(new1, lambda p: p.pop("checksum"))
    assert_clean_error(run("check", new1, "--baseline", base, "--update-baseline"), "checksum is missing")
    assert base.read_bytes() == before and not list(tmp_path.glob("*.prev"))


def test_junit_never_replaces_an_input_or_a_foreign_file(saved, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert_clean_error(run("check", saved, "--baseline", saved, "--junit", notes), "not a JUnit report")
    assert_clean_error(run("check", saved, "--baseline", saved, "--junit", saved), "one of the fits")
    assert notes.read_text() == "mine"


# ---------------------------------------------------------------------- 5. plots
def test_plot_refuses_to_overwrite_and_never_writes_through_a_link(tmp_path):
    runs = tmp_path / "runs.csv"
    chinchilla_frame(sizes=3, budgets=3).to_csv(runs, index=False)
    existing = tmp_path / "fig.png"
    existing.write_bytes(b"my figure")
    assert_clean_error(run("fit", runs, "--plot", existing), "already exists")
    assert existing.read_bytes() == b"my figure"
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"victim")
    link = tmp_path / "link.png"
    link.symlink_to(victim)
    res = run("fit", runs, "--plot", link, "--force")
    assert res.exit_code == 0, res.output
    assert victim.read_bytes() == b"victim"
    assert not link.is_symlink() and link.read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------------- 7. checksum
def test_a_deleted_checksum_still_warns(saved):
    _edit(saved, lambda p: p.pop("checksum"))
    with pytest.warns(UserWarning, match="has no checksum"):
        load_fit(saved)


def test_parallelism_does_not_change_the_checksum(tmp_path):
    data = from_frame(chinchilla_frame(sizes=3, budgets=3), required=ROLES)
    a = fit("chinchilla", data, n_bootstrap=8, seed=3, jobs=1).save(tmp_path / "a.json")
    b = fit("chinchilla", data, n_bootstrap=8, seed=3, jobs=2).save(tmp_path / "b.json")
    assert json.loads(a.read_text())["checksum"] == json.loads(b.read_text())["checksum"]


# ---------------------------------------------------------------------- 8. terminal and spreadsheet injection
def test_run_names_reach_the_terminal_as_text(tmp_path):
    frame = chinchilla_frame(sizes=3, budgets=3)
    frame["run"] = [f"\x1b]0;owned\x07\x1b[2J[/]run{i}[bold]" for i in range(len(frame))]
    frame.loc[0, "loss"] *= 1.5  # the largest residual: its run name is printed
    runs = tmp_path / "runs.csv"
    frame.to_csv(runs, index=False)
    res = run("fit", runs, "--out", tmp_path / "fit.json")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "[/]run" in res.stdout


def test_pair_csv_cells_cannot_run_as_formulas(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"run": ["=HYPERLINK(\"http://x\")", "+1+cmd", "@SUM(A1)", "-2", "plain"],
                          "params": [1e8, 2e8, 4e8, 8e8, 1.6e9], "tokens": [2e9, 4e9, 8e9, 1.6e10, 3.2e10],
                          "val_loss": [3.5, 3.3, 3.1, 2.9, 2.8], "test_loss": [3.6, 3.4, 3.2, 3.0, 2.9],
                          "data": ["a"] * 5})
    runs = tmp_path / "runs.csv"
    frame.to_csv(runs, index=False)
    out = tmp_path / "pairs.csv"
    res = run("pair", runs, "--x-loss", "val_loss", "--y-loss", "test_loss", "--by", "run", "--out", out)
    assert res.exit_code == 0, res.output
    cells = pd.read_csv(out, dtype=str)["run"].tolist()
    assert all(not c.startswith(("=", "+", "@")) for c in cells), cells
    assert "-2" in cells  # numbers stay numbers
    assert_clean_error(run("pair", runs, "--x-loss", "val_loss", "--out", runs, "--force"), "input of this command")


# ---------------------------------------------------------------------- 14, 16. fields, types, shapes
BAD_FIELDS = [
    (lambda p: p["theta"].__setitem__(0, float("nan")), "theta[0]"),
    (lambda p: p["theta"].__setitem__(0, float("inf")), "theta[0]"),
    (lambda p: p["theta"].__setitem__(1, 1e300), "outside the law's bounds"),
    (lambda p: p["theta"].__setitem__(0, "1.7"), "theta[0]"),
    (lambda p: p["theta"].__setitem__(0, True), "theta[0]"),
    (lambda p: p.update(theta=[1.0]), "theta"),
    (lambda p: p.update(theta={"E": 1}), "theta"),
    (lambda p: p.update(param_names="E"), "param_names"),
    (lambda p: p["params"].pop("E"), "params.E"),
    (lambda p: p["params"]["E"].update(low=9.0, high=1.0), "low > high"),
    (lambda p: p["params"]["E"].update(high="x"), "params.E.high"),
    (lambda p: p["params"]["E"].update(status="tied:../../x"), "params.E.status"),
    (lambda p: p["params"]["E"].update(evil=1), "params.E"),
    (lambda p: p.update(params=[]), "params"),
    (lambda p: p.update(settings={"ci": 1.5}), "settings.ci"),
    (lambda p: p.update(settings={"ci": float("nan")}), "settings.ci"),
    (lambda p: p.update(settings={"stretch": -1}), "settings.stretch"),
    (lambda p: p.update(settings=[1]), "settings"),
    (lambda p: p.update(diagnostics={"residual_scale_log": 1e308}), "residual_scale_log"),
    (lambda p: p.update(diagnostics={"warnings": "x"}), "diagnostics.warnings"),
    (lambda p: p.update(n_runs=-3), "n_runs"),
    (lambda p: p.update(n_runs=1e300), "n_runs"),
    (lambda p: p.update(objective=float("inf")), "objective"),
    (lambda p: p.update(units={"loss": 3}), "units"),
    (lambda p: p.update(law="chinchilla"), "law.name"),
    (lambda p: p["law"].update(options=[1]), "law.options"),
    (lambda p: p.update(draws=[[1.0, 2.0]]), "draws"),
    (lambda p: p.update(draws=[[float("nan")] * 5] * 3), "non-finite"),
    (lambda p: p.update(draws=[[1e300] * 5] * 3), "bounds"),
    (lambda p: p.update(draws="x"), "draws"),
    (lambda p: p["theta"].__setitem__(0, int("9" * 400)), "theta[0]"),  # valid JSON, no float
    (lambda p: p["data"].update(ranges={"params": 5}), "data.ranges.params"),
    (lambda p: p["data"].update(columns=[1]), "data.columns"),
    (lambda p: p["settings"].update(fixed=[1]), "settings.fixed"),
    (lambda p: p["settings"].update(ties={"beta": 3}), "settings.ties.beta"),
    (lambda p: p["settings"].update(delta="x"), "settings.delta"),
]


@pytest.mark.parametrize("change, match", BAD_FIELDS)
def test_every_bad_field_is_one_line_naming_it(saved, change, match):
    before = None
    _edit(saved, change)
    before = saved.read_bytes()
    assert_clean_error(run("predict", "--fit", saved, "--params", "1B", "--tokens", "20B"), match)
    assert saved.read_bytes() == before


def test_deeply_nested_json_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert_clean_error(run("predict", "--fit", path, "--params", "1B", "--tokens", "20B"), "deep.json")


def test_special_files_as_fit_json_do_not_hang(tmp_path):
    import signal

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    signal.alarm(20)  # a regression fails instead of hanging the suite
    try:
        assert_clean_error(run("predict", "--fit", fifo, "--params", "1B", "--tokens", "20B"), "FIFO")
        assert_clean_error(run("predict", "--fit", "/dev/zero", "--params", "1B", "--tokens", "20B"), "a device")
        assert_clean_error(run("predict", "--fit", tmp_path, "--params", "1B", "--tokens", "20B"), "folder")
    finally:
        signal.alarm(0)


def test_a_number_too_long_to_convert_is_one_line(tmp_path):
    path = tmp_path / "long.json"
    path.write_text('{"schema": "scalefit.fit/1", "theta": [' + "9" * 5000 + "]}")
    assert_clean_error(run("predict", "--fit", path, "--params", "1B"), "not a valid fit.json")


@pytest.mark.parametrize("value", ["1e400", "inf", "abc", "-5"])
def test_a_bad_limit_variable_is_one_line(saved, monkeypatch, value):
    monkeypatch.setenv("SCALEFIT_MAX_FIT_BYTES", value)
    assert_clean_error(run("predict", "--fit", saved, "--params", "1B"), "SCALEFIT_MAX_FIT_BYTES")


def test_re_saving_a_loaded_fit_keeps_its_law_record(saved, tmp_path):
    """A baseline update re-saves the loaded fit: it must still say which law version made it."""
    _edit(saved, lambda p: p["law"].update(source_hash="0" * 16))
    again = load_fit(saved).save(tmp_path / "again.json")
    assert json.loads(again.read_text())["law"]["source_hash"] == "0" * 16


def test_a_huge_fit_file_is_refused_by_size(saved, monkeypatch):
    monkeypatch.setenv("SCALEFIT_MAX_FIT_BYTES", "1000")
    assert_clean_error(run("predict", "--fit", saved, "--params", "1B", "--tokens", "20B"), "SCALEFIT_MAX_FIT_BYTES")


# ---------------------------------------------------------------------- 17. plugins
def test_a_broken_plugin_is_named_and_skipped(monkeypatch):
    from importlib import metadata

    import scalefit.registry as registry

    class Broken:
        name, group, value, dist = "broken", registry.ENTRY_POINT_GROUP, "nowhere:x", None

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setenv("SCALEFIT_DISABLE_PLUGINS", "0")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [Broken()])
    monkeypatch.setattr(registry, "_cache", None)
    with pytest.warns(UserWarning, match="broken.*SCALEFIT_DISABLE_PLUGINS=1"):
        laws = registry.all_laws()
    assert "chinchilla" in laws and "multipower" in laws


# ---------------------------------------------------------------------- property: random mutations
_OPENED: list[str] = []
_WATCH: dict[str, Path | None] = {"folder": None}


def _audit(event, args):
    if event == "open" and _WATCH["folder"] is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)

_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                  st.sampled_from(["..", "/etc/passwd", "../x.a1b2c3d4e5f6.draws.parquet", "/proc/self/cwd/x"]))
_JSON = st.recursive(_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield from _paths(v, (*prefix, i))


@settings(max_examples=max(40, settings.default.max_examples), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_fit_files_never_crash_or_escape(small_fit, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("mut")
    path = small_fit.save(folder / "fit.json")
    payload = json.loads(path.read_text())
    mutated = copy.deepcopy(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(list(_paths(mutated))[1:]))
        parent = mutated
        for key in where[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(where[-1], None)
        else:
            parent[where[-1]] = data.draw(_JSON)
    path.write_text(json.dumps(mutated, allow_nan=True))
    _OPENED.clear()
    _WATCH["folder"] = folder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = load_fit(path)
                pred = result.predict(params=1e9, tokens=2e10)
            except ScalefitError:
                result = None
    finally:
        _WATCH["folder"] = None
    outside = [p for p in _OPENED if Path(p).is_absolute() and folder not in Path(p).resolve().parents
               and not p.startswith(sys.prefix) and "site-packages" not in p and "/laws/" not in p]
    assert not [p for p in outside if "passwd" in p or p.endswith(".parquet") or p.endswith(".json")], outside
    if result is not None:
        assert np.all(np.isfinite(result.theta))
        v = float(pred.value[0])
        if pred.low is not None and math.isfinite(v):
            assert pred.low[0] <= v * (1 + 1e-9) and v <= pred.high[0] * (1 + 1e-9)
