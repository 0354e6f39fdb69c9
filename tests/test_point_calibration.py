"""Calibrated prediction intervals for point laws: next-budget backtests on the fitted table (issue #12)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, ok_json, run

from scalefit.backtest import calibrate_points, next_budget_errors, run_budgets
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.forecast import forecast
from scalefit.registry import get_law
from scalefit.stats import model_error_halfwidth

BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20, 3e20]
LAW = get_law("chinchilla")


def _isoflop(budgets=BUDGETS, seed=0, noise=0.005) -> pd.DataFrame:
    """An IsoFLOP sweep from Epoch's Chinchilla values: 4 sizes per budget, 1 % jitter on the budget."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for f in (0.3, 0.7, 1.5, 3.5):
            n = f * 0.1 * math.sqrt(c / 6)
            rows.append({"params": n, "tokens": c * (1 + 0.01 * rng.uniform(-1, 1)) / (6 * n)})
    frame = pd.DataFrame(rows)
    design = LAW.prepare(from_frame(frame.assign(loss=1.0), required=["params", "tokens", "loss"]))
    frame["loss"] = LAW.predict(LAW.reference_theta("epoch")[None], design)[0] * np.exp(rng.normal(0, noise, len(frame)))
    return frame


def _data(frame):
    return from_frame(frame, source="isoflop.csv", required=["params", "tokens", "loss"])


@pytest.fixture(scope="module")
def calibrated():
    data = _data(_isoflop())
    return calibrate_points(fit(LAW, data, n_bootstrap=60, seed=0, identify=False), data), data


def test_budgets_group_jittered_runs_and_the_record_has_one_entry_per_fold(calibrated):
    res, data = calibrated
    value, group = run_budgets(data)
    assert group.max() + 1 == len(BUDGETS)  # 1 % jitter stays inside one budget
    assert list(np.bincount(group)) == [4] * len(BUDGETS)
    record = res.extrapolation_errors
    assert record["method"] == "next-budget" and "shape" not in record
    # 6 budgets, at least 3 left to fit: 3 folds, 4 runs each, one entry per fold
    assert record["folds"] == len(record["horizon"]) == 3 and record["runs"] == 12
    assert record["runs_per_fold"] == [4, 4, 4]
    for e, ratio in record["horizon"]:
        assert ratio == pytest.approx(10 / 3, rel=0.03) or ratio == pytest.approx(3.0, rel=0.03)
        assert abs(e) < 0.05
    assert not any("calibration" in w for w in res.diagnostics["warnings"])


def test_folds_option_and_errors():
    data = _data(_isoflop())
    record = next_budget_errors(LAW, data, folds=1)
    assert record["folds"] == 1 and record["runs"] == 4
    with pytest.raises(DataError, match="folds=0"):
        next_budget_errors(LAW, data, folds=0)
    with pytest.raises(DataError, match="folds=9"):
        next_budget_errors(LAW, data, folds=9)
    with pytest.raises(DataError, match="by='tokens'"):
        next_budget_errors(LAW, data, by="tokens")


def test_calibrated_interval_contains_the_prediction_interval_and_widens_beyond_the_data(calibrated):
    res, _ = calibrated
    top = res.data_info["ranges"]["flops"][1]
    n = 0.1 * math.sqrt(top / 6)
    ratios = np.array([0.5, 1.0, 2.0, 10.0, 100.0])
    d = ratios * top / (6 * n)
    plain = res.predict(params=n, tokens=d, interval="prediction")
    cal = res.predict(params=n, tokens=d, interval="calibrated")
    np.testing.assert_array_equal(cal.value, plain.value)
    assert np.all(cal.low <= plain.low + 1e-12) and np.all(cal.high >= plain.high - 1e-12)
    # inside the fitted compute nothing is added; beyond it the added error grows with the ratio
    np.testing.assert_allclose(cal.low[:2], plain.low[:2])
    np.testing.assert_allclose(cal.high[:2], plain.high[:2])
    extra = np.log(cal.high / cal.value) - np.log(plain.high / plain.value)
    assert np.all(np.diff(extra[1:]) > 0)
    h = res.calibration_halfwidth(from_frame(pd.DataFrame({"params": [n] * 2, "tokens": d[2:4], "loss": 1.0})))
    assert h[1] == pytest.approx(h[0] * math.log(10) / math.log(2))


def test_forecast_calibrates_the_loss_only_and_survives_fit_json(calibrated, tmp_path):
    from scalefit.result import load_fit

    res, _ = calibrated
    path = res.save(tmp_path / "fit.json")
    back = load_fit(path)
    assert back.extrapolation_errors == json.loads(json.dumps(res.extrapolation_errors))
    kw = dict(ci=back.ci, ranges=back.data_info["ranges"], residual_scale=back.diagnostics["residual_scale_log"],
              stretch=back.stretch)
    plain = forecast(back.law, back.theta, back.draws, compute=1e22, interval="prediction", **kw)
    cal = forecast(back.law, back.theta, back.draws, compute=1e22, interval="calibrated",
                   calibration=back.extrapolation_errors, **kw)
    assert cal.loss.low < plain.loss.low and cal.loss.high > plain.loss.high
    assert (cal.params.low, cal.params.high) == (plain.params.low, plain.params.high)  # parameter-only
    info = cal.to_dict()["calibration"]
    assert info["folds"] == 3 and info["ratio"] == pytest.approx(1e22 / kw["ranges"]["flops"][1])
    assert "parameter uncertainty only" in info["scope"]


def test_no_record_is_a_clear_error(calibrated):
    res, data = calibrated
    plain = fit(LAW, data, n_bootstrap=20, seed=0, identify=False)
    with pytest.raises(DataError, match="calibrate_points") as exc:
        plain.predict(params=1e9, tokens=2e10, interval="calibrated")
    assert "interval" in exc.value.options
    with pytest.raises(DataError, match="calibrate_points"):
        forecast(LAW, plain.theta, plain.draws, compute=1e22, interval="calibrated", ranges=plain.data_info["ranges"],
                 residual_scale=plain.diagnostics["residual_scale_log"])


def test_fewer_than_two_folds_is_unbounded_and_said():
    data = _data(_isoflop(BUDGETS[:4]))
    res = calibrate_points(fit(LAW, data, n_bootstrap=20, seed=0, identify=False), data)
    record = res.extrapolation_errors
    assert record["folds"] == 1 and any("unbounded" in n for n in record["notes"])
    assert any("only 1 budget fold" in w and "unbounded" in w for w in res.diagnostics["warnings"])
    assert math.isinf(model_error_halfwidth(record, 2.0, 0.95))
    assert model_error_halfwidth(record, 1.0, 0.95) == 0.0  # inside the fitted range: nothing to add
    beyond = res.predict(params=1e9, tokens=1e12, interval="calibrated")
    assert beyond.low[0] == 0.0 and math.isinf(beyond.high[0])
    fc = forecast(LAW, res.theta, res.draws, compute=1e22, interval="calibrated", calibration=record,
                  ranges=res.data_info["ranges"], residual_scale=res.diagnostics["residual_scale_log"])
    assert fc.loss.low is None and any("unbounded" in w for w in fc.warnings)


def test_curve_records_keep_their_shape_part():
    assert math.isinf(model_error_halfwidth({"shape": [], "horizon": [[0.01, 2.0], [0.02, 2.0]]}, 1.0, 0.95))
    point = {"horizon": [[0.01, 2.0], [-0.02, 2.0]]}
    assert model_error_halfwidth(point, 0.5, 0.95) == 0.0
    assert model_error_halfwidth(point, 4.0, 0.95) > 0


def test_cli_fit_calibrate_and_predict_calibrated(example_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = run("fit", example_csv, "--bootstrap", 40, "--calibrate", "--out", out)
    assert res.exit_code == 0, res.output
    assert "next-budget folds" in res.stdout
    record = json.loads(out.read_text())["diagnostics"]["extrapolation_errors"]
    assert record["method"] == "next-budget" and record["folds"] >= 2
    plain = ok_json("predict", "--fit", out, "--params", "7B", "--tokens", "1.4T", "--interval", "prediction")
    cal = ok_json("predict", "--fit", out, "--params", "7B", "--tokens", "1.4T", "--interval", "calibrated")
    assert cal["interval"] == "calibrated" and cal["calibration"]["folds"] == record["folds"]
    assert cal["loss"]["low"] < plain["loss"]["low"] and cal["loss"]["high"] > plain["loss"]["high"]
    # a fit made without --calibrate: a one-line error that says how to get one
    bare = tmp_path / "bare.json"
    assert run("fit", example_csv, "--bootstrap", 20, "--out", bare).exit_code == 0
    assert_clean_error(run("predict", "--fit", bare, "--params", "7B", "--tokens", "1.4T", "--interval", "calibrated"),
                       "--calibrate")
