"""`scalefit check`: the regression gate on fitted coefficients, and the reference fits it guards."""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scalefit.check import compare, parse_point, parse_tolerances
from scalefit.cli import app
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.result import load_fit
from scalefit.stats import stretch_factor

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: tests/ is not on sys.path
from strategies import EPOCH, ROOT, SHARED, chinchilla_frame

ROLES = ["params", "tokens", "loss"]
runner = CliRunner()


def _data(**kw):
    return from_frame(chinchilla_frame(**kw), source="synthetic", required=ROLES)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A baseline with intervals, a refit of the same law on fresh noise, a shifted law, one without draws."""
    d = tmp_path_factory.mktemp("fits")
    shifted = dict(EPOCH, E=EPOCH["E"] + 0.15)
    out = {
        "base": fit("chinchilla", _data(seed=0), n_bootstrap=200, seed=0).save(d / "base.json"),
        "same": fit("chinchilla", _data(seed=0), n_bootstrap=200, seed=1).save(d / "same.json"),
        "moved": fit("chinchilla", _data(theta=shifted, seed=0), n_bootstrap=200).save(d / "moved.json"),
        "bare": fit("chinchilla", _data(seed=0)).save(d / "bare.json"),
        "delta": fit("chinchilla", _data(seed=0), delta=1e-2, n_bootstrap=50).save(d / "delta.json"),
    }
    return out


def _check(*args):
    return runner.invoke(app, ["check", *map(str, args)])


def test_identical_data_passes_every_quantity(files):
    """Refitting the same data (another bootstrap seed) stays inside every baseline interval: exit 0."""
    res = _check(files["same"], "--baseline", files["base"], "--at", "params=7B,tokens=1.4T", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["quantities"]
    assert [r["name"] for r in rows] == [*EPOCH, "loss@params=7B,tokens=1.4T"]
    assert all(r["verdict"] == "ok" for r in rows)
    assert "ok" in _check(files["same"], "--baseline", files["base"]).stdout  # the table form


def test_moved_law_drifts_with_exit_1(files):
    """A law whose irreducible loss moved by 0.15 nats fails the check, naming E."""
    res = _check(files["moved"], "--baseline", files["base"])
    assert res.exit_code == 1
    assert "drifted" in res.stderr and "E" in res.stderr.split("drifted")[1]
    assert "Traceback" not in res.output


def test_explicit_tolerance_overrides_the_interval_rule(files):
    """--tol/--rtol replace the interval rule for their quantity only (numpy.isclose form)."""
    report = compare(load_fit(files["moved"]), load_fit(files["base"]), rtol={"E": 0.5})
    e = next(r for r in report.rows if r.name == "E")
    assert e.ok and "rtol" in e.allowed
    assert any(not r.ok for r in report.rows if r.name != "E") or report.passed


def test_tolerance_parsing():
    """Percent is relative only; names and numbers are validated with one-line messages."""
    assert parse_tolerances(["E=0.5%"], "rtol") == {"E": pytest.approx(0.005)}
    assert parse_tolerances(["alpha=0.01"], "tol") == {"alpha": 0.01}
    with pytest.raises(DataError, match=r"^tol='E=1%': a percentage is a relative tolerance; use rtol='E=1%'"):
        parse_tolerances(["E=1%"], "tol")
    with pytest.raises(DataError, match="not a number"):
        parse_tolerances(["E=abc"], "tol")
    with pytest.raises(DataError, match="NAME=VALUE"):
        parse_tolerances(["E"], "tol")
    assert parse_point("params=7B, tokens=1.4T") == {"params": 7e9, "tokens": 1.4e12}
    with pytest.raises(DataError, match=r"^at='size=7B': expected ROLE=SIZE") as info:
        parse_point("size=7B")
    assert info.value.options == ("at",)


def test_unknown_tolerance_name_is_usage_error(files):
    """A tolerance for a quantity that does not exist is exit 2 and lists the real ones."""
    res = _check(files["same"], "--baseline", files["base"], "--tol", "gamma=1")
    assert res.exit_code == 2 and "alpha" in res.stderr


def test_baseline_without_intervals_says_how_to_fix(files):
    """No bootstrap in the baseline and no --tol: exit 2, telling the user to refit with --bootstrap or pass --tol."""
    res = _check(files["same"], "--baseline", files["bare"])
    assert res.exit_code == 2
    assert "--bootstrap" in res.stderr and "--tol" in res.stderr
    ok = _check(files["same"], "--baseline", files["bare"], *sum((["--rtol", f"{p}=200%"] for p in EPOCH), []))
    assert ok.exit_code == 0, ok.output


def test_conventions_must_match(files):
    """Different Huber delta (or law, units, fixed params): not comparable, exit 2, not drift."""
    res = _check(files["delta"], "--baseline", files["base"])
    assert res.exit_code == 2 and "Huber delta" in res.stderr


def test_overlap_rule_needs_new_intervals(files):
    """--rule overlap compares intervals; without new draws it says so (exit 2)."""
    assert _check(files["same"], "--baseline", files["base"], "--rule", "overlap").exit_code == 0
    res = _check(files["bare"], "--baseline", files["base"], "--rule", "overlap")
    assert res.exit_code == 2 and "--bootstrap" in res.stderr


def test_json_and_junit_reports(files, tmp_path):
    """--json is one object; --junit has one test case per quantity and a failure for each drift."""
    xml_path = tmp_path / "report.xml"
    res = _check(files["moved"], "--baseline", files["base"], "--json", "--junit", xml_path, "--at", "compute=1e23")
    assert res.exit_code == 1
    payload = json.loads(res.stdout)
    assert payload["passed"] is False and len(payload["quantities"]) == 6
    suite = ET.parse(xml_path).getroot()
    cases = suite.findall("testcase")
    assert len(cases) == 6 and int(suite.get("failures")) == sum(q["verdict"] == "drift" for q in payload["quantities"])
    assert {c.get("name") for c in cases} >= {"E", "loss@compute=1e23"}


def test_update_baseline_keeps_the_old_one(files, tmp_path):
    """--update-baseline installs the new fit atomically and keeps the previous baseline beside it."""
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(Path(files["base"]).read_bytes())
    res = _check(files["moved"], "--baseline", baseline, "--update-baseline")
    assert res.exit_code == 0, res.output
    kept = list(tmp_path.glob("baseline.json.*.prev"))
    assert len(kept) == 1 and kept[0].read_bytes() == Path(files["base"]).read_bytes()
    assert load_fit(baseline).params["E"].value == load_fit(files["moved"]).params["E"].value
    assert _check(files["moved"], "--baseline", baseline).exit_code == 0


def test_kept_baseline_keeps_its_own_large_draws(files, tmp_path, monkeypatch):
    """Draws too large to inline live in a parquet file: updating the baseline must not replace the file
    the kept .prev copy reads, and a forced rewrite never deletes a draws file (a backup may need it)."""
    import scalefit.fitfile

    monkeypatch.setattr(scalefit.fitfile, "INLINE_DRAWS", 0)  # every draw set goes to parquet
    base, moved = load_fit(files["base"]), load_fit(files["moved"])
    baseline = base.save(tmp_path / "baseline.json")
    res = _check(moved.save(tmp_path / "moved.json"), "--baseline", baseline, "--update-baseline")
    assert res.exit_code == 0, res.output
    (kept,) = tmp_path.glob("baseline.json.*.prev")
    np.testing.assert_array_equal(load_fit(kept).draws, base.draws)
    np.testing.assert_array_equal(load_fit(baseline).draws, moved.draws)
    # Forced rewrites of moved.json: its old draws file stays (a copy made with cp may still read it).
    before = set(tmp_path.glob("moved.*.draws.parquet"))
    base.save(tmp_path / "moved.json", force=True)
    after = set(tmp_path.glob("moved.*.draws.parquet"))
    assert len(before) == 1 and len(after) == 2 and before < after
    np.testing.assert_array_equal(load_fit(tmp_path / "moved.json").draws, base.draws)
    copy = tmp_path / "copy.json"
    copy.write_bytes((tmp_path / "moved.json").read_bytes())
    moved.save(tmp_path / "moved.json", force=True)
    np.testing.assert_array_equal(load_fit(copy).draws, base.draws)
    np.testing.assert_array_equal(load_fit(tmp_path / "moved.json").draws, moved.draws)


def test_a_changed_law_version_is_noted(files, tmp_path):
    """A baseline fitted with another version of the law file: the report says drift may come from the law."""
    payload = json.loads(Path(files["base"]).read_text())
    payload["law"]["source_hash"] = "0" * 16
    old = tmp_path / "old_law.json"
    old.write_text(json.dumps(payload))
    with pytest.warns(UserWarning):
        baseline = load_fit(old)
    report = compare(load_fit(files["same"]), baseline)
    assert any("changed between the fits" in n for n in report.notes)


def test_failed_new_fit_fails_the_check(files, tmp_path):
    """A refit on pure noise is a failed check (exit 1), never a comparison of meaningless numbers."""
    rng = np.random.default_rng(3)
    frame = chinchilla_frame()
    frame["loss"] = rng.uniform(2, 4, len(frame))
    noise = fit("chinchilla", from_frame(frame, required=ROLES), n_bootstrap=20)
    assert not noise.success
    noise.save(tmp_path / "noise.json")
    res = _check(tmp_path / "noise.json", "--baseline", files["base"])
    assert res.exit_code == 1 and "failed" in res.stderr


# ---------------------------------------------------------------------- intervals
def test_stretch_factor_matches_its_formula():
    """t_{n-q}/z: 1.064 for 25 runs and 5 parameters, 1.137 for 15, -> 1 for many runs."""
    assert stretch_factor(25, 5, 0.95) == pytest.approx(2.0860 / 1.9600, rel=1e-3)
    assert stretch_factor(15, 5, 0.95) == pytest.approx(2.2281 / 1.9600, rel=1e-3)
    assert stretch_factor(100_000, 5, 0.95) == pytest.approx(1.0, abs=1e-3)


def test_reported_interval_is_the_stretched_percentile_interval():
    """Same draws: the default interval contains the plain percentile one, each end stretched in log space."""
    data = _data(seed=0)
    wide = fit("chinchilla", data, n_bootstrap=200, seed=0)
    raw = fit("chinchilla", data, n_bootstrap=200, seed=0, interval="percentile")
    factor = stretch_factor(25, 5, 0.95)
    assert wide.stretch == pytest.approx(factor) and raw.stretch == 1.0
    np.testing.assert_array_equal(wide.draws, raw.draws)
    for name in EPOCH:
        w, r = wide.params[name], raw.params[name]
        assert w.low < r.low < w.value < r.high < w.high
        assert math.log(w.high / w.value) == pytest.approx(factor * math.log(r.high / r.value), rel=1e-9)
    assert "stretched" in wide.diagnostics["interval"]
    f_wide, f_raw = wide.predict(params=2e10, tokens=4e11), raw.predict(params=2e10, tokens=4e11)
    assert f_wide.low[0] < f_raw.low[0] and f_wide.high[0] > f_raw.high[0]


def test_prediction_interval_contains_confidence_interval(files):
    """A new run's observed loss scatters around the law's mean: its interval is wider, same centre."""
    result = load_fit(files["base"])
    conf = result.predict(params=1e10, tokens=2e11)
    pred = result.predict(params=1e10, tokens=2e11, interval="prediction")
    assert pred.low[0] < conf.low[0] < conf.value[0] < conf.high[0] < pred.high[0]
    sigma = result.diagnostics["residual_scale_log"]
    assert 0.005 < sigma < 0.02  # the sweep was drawn with 1 % log-noise
    res = runner.invoke(app, ["predict", "--fit", str(files["base"]), "--params", "10B", "--tokens", "200B",
                              "--interval", "prediction", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["interval"] == "prediction" and out["loss"]["low"] == pytest.approx(pred.low[0], rel=1e-6)


# ---------------------------------------------------------------------- the project's reference fits
EPOCH_CSV = SHARED / "data" / "chinchilla" / "svg_extracted_data.csv"
BASELINES = ROOT / "tests" / "baselines"


@pytest.mark.skipif(not EPOCH_CSV.exists(), reason="shared Chinchilla data not present")
def test_epoch_chinchilla_fit_has_not_moved(tmp_path):
    """CI gate on our own fitter: refit Epoch's 240 points and `scalefit check` against the committed baseline."""
    import pandas as pd

    frame = pd.read_csv(EPOCH_CSV).sort_values("loss", kind="stable").iloc[:-5]
    frame.to_csv(tmp_path / "epoch240.csv", index=False)
    res = runner.invoke(app, ["fit", str(tmp_path / "epoch240.csv"), "--col", "params=Model Size",
                              "--col", "flops=Training FLOP", "--out", str(tmp_path / "fit.json"), "--json"])
    assert res.exit_code == 0, res.output
    res = _check(tmp_path / "fit.json", "--baseline", BASELINES / "chinchilla_epoch.json",
                 "--at", "params=70B,tokens=1.4T", "--at", "compute=5.76e23",
                 "--rtol", "E=0.5%", "--tol", "alpha=0.005", "--tol", "beta=0.005")
    assert res.exit_code == 0, res.output
    # Epoch's published estimates (Besiroglu et al. 2024, Table 1) lie in the baseline's intervals.
    baseline = load_fit(BASELINES / "chinchilla_epoch.json")
    for name in ("E", "alpha", "beta"):
        e = baseline.params[name]
        assert e.low <= {"E": 1.8172, "alpha": 0.3478, "beta": 0.3658}[name] <= e.high


MPL_TIDY = SHARED / "data" / "loss_curves" / "mpl_official" / "mpl_curves_tidy.csv"


@pytest.mark.skipif(not MPL_TIDY.exists(), reason="shared multi-power data not present")
def test_multipower_400m_fit_has_not_moved(tmp_path):
    """CI gate on the curve-law path: refit the official 400M training curves and check against the
    committed baseline (no draws from three curves, so explicit tolerances: 0.2 % on L0, 2 % elsewhere),
    plus the predicted final loss of the 24k cosine run through `check`'s parameter comparison."""
    sys.path.insert(0, str(BASELINES))
    from make_baselines import mpl_train_400m

    fit("multipower", mpl_train_400m()).save(tmp_path / "fit.json")
    baseline = load_fit(BASELINES / "multipower_400m.json")
    tolerances = ["--rtol", "L0=0.2%"] + sum((["--rtol", f"{p}=2%"] for p in baseline.param_names if p != "L0"), [])
    res = _check(tmp_path / "fit.json", "--baseline", BASELINES / "multipower_400m.json", *tolerances)
    assert res.exit_code == 0, res.output
