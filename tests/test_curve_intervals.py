"""Curve-law intervals: wild cluster bootstrap, prediction and calibrated intervals, curve backtests."""

import json
import math

import numpy as np
import pytest

from scalefit.bootstrap import _WEBB, bootstrap_method_for, distinct_resamples
from scalefit.curve_backtest import calibrate, curve_backtest, curve_folds, extrapolation_errors, parse_curve_holdout
from scalefit.curves import load_curves
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.registry import get_law
from scalefit.result import load_fit
from scalefit.schedule import curve_params
from scalefit.schedule.evaluate import compare_for, predict_for
from scalefit.stats import _t_prediction, _t_zero_mean, model_error_halfwidth, run_scatter_halfwidth, widen

W = "peak=2e-4,warmup=100"
SPECS = {"cos": f"cosine:{W},steps=3000,floor=2e-5", "const": f"constant:{W},steps=3000",
         "wsd": f"wsd:{W},steps=3000,cooldown=600,floor=2e-5"}
TRUE = np.array([2.6278, 0.42966, 0.54985, 0.41078])  # lr_annealing, Tissue et al.'s example fit


def synthetic(offsets=(0.004, -0.003, 0.001), noise=0.002, seed=0, specs=SPECS):
    """Curves from the law itself, each run shifted by its own offset, with white noise in log loss."""
    import pandas as pd

    law = get_law("lr_annealing")
    rng = np.random.default_rng(seed)
    rows = []
    for (run, spec), off in zip(specs.items(), offsets):
        from scalefit.schedule import parse_schedule

        eta = parse_schedule(spec).lr()
        steps = np.arange(150, eta.size, 40)
        loss = law.curve(TRUE[None], eta, steps)[0] * np.exp(off + noise * rng.standard_normal(steps.size))
        rows += [{"run": run, "step": int(s), "loss": float(v)} for s, v in zip(steps, loss)]
    return load_curves(pd.DataFrame(rows), schedules=specs)


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def law():
    return get_law("lr_annealing")


# ------------------------------------------------------------------------------------------------ wild bootstrap
def test_auto_picks_wild_below_ten_runs_and_counts_distinct_draws():
    assert bootstrap_method_for("auto", 3) == "wild" and bootstrap_method_for("auto", 10) == "runs"
    assert distinct_resamples("wild", 3) == 216 and distinct_resamples("runs", 3) == 10
    assert np.isclose(np.mean(_WEBB), 0) and np.isclose(np.mean(_WEBB**2), 1)


def test_wild_bootstrap_has_many_distinct_draws_is_seeded_and_reported(law, data):
    a = fit(law, data, n_bootstrap=120, seed=3)
    b = fit(law, data, n_bootstrap=120, seed=3, jobs=2, backend="threading")
    runs = fit(law, data, n_bootstrap=120, seed=3, bootstrap_method="runs")
    assert a.settings["bootstrap_method"] == "wild" and runs.settings["bootstrap_method"] == "runs"
    assert a.settings["distinct_resamples"] > 60 and runs.settings["distinct_resamples"] <= 10
    assert np.array_equal(a.draws, b.draws)  # bit-identical across backends
    assert "wild cluster bootstrap" in a.diagnostics["interval"] and "distinct" in a.diagnostics["interval"]
    assert any("rest on 3 run(s)" in w for w in a.diagnostics["warnings"])
    for e in a.params.values():  # every parameter interval holds its estimate
        assert e.low <= e.value <= e.high


def test_bootstrap_method_is_checked_first(law, data):
    with pytest.raises(DataError, match="bootstrap_method='jackknife'"):
        fit(law, data, n_bootstrap=10, bootstrap_method="jackknife")


def test_batched_per_row_targets_equal_separate_solves(law, data):
    """Problem.with_targets solves k pseudo-data sets in one batch, as k separate problems would."""
    from scalefit.parameterization import Parameterization
    from scalefit.solver import Problem, RobustLoss, solve_batch

    param = Parameterization(law, None, None)
    problem = Problem(law, law.prepare(data), data.column("loss"), None, param, RobustLoss("huber", 1e-3))
    u0 = param.start_grid(None)[:1]
    shifts = np.array([0.0, 0.01, -0.02])[:, None]
    batch, _, _ = solve_batch(problem.with_targets(problem.logy + shifts), np.repeat(u0, 3, 0), max_iter=100)
    for i, s in enumerate(shifts[:, 0]):
        one, _, _ = solve_batch(problem.with_targets(problem.logy[None] + s), u0, max_iter=100)
        assert np.allclose(batch[i], one[0], rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------------------------ interval maths
def test_t_prediction_factor_and_scatter():
    assert math.isinf(_t_prediction(1, 0.95))
    assert _t_prediction(3, 0.95) == pytest.approx(4.303 * math.sqrt(4 / 3), rel=1e-3)
    assert math.isnan(run_scatter_halfwidth([0.01], 0.95))
    assert run_scatter_halfwidth([0.01, -0.01, 0.0], 0.95) == pytest.approx(_t_prediction(3, 0.95) * 0.01)


def test_model_error_grows_with_log_horizon_and_is_unbounded_without_folds():
    record = {"shape": [[0.002, 1.0], [-0.003, 1.0], [0.001, 1.0]], "horizon": [[0.004, 2.0], [-0.002, 2.0]]}
    same = model_error_halfwidth(record, 1.0, 0.95)
    assert same == pytest.approx(_t_zero_mean(3, 0.95) * math.sqrt((4 + 9 + 1) / 3 * 1e-6))
    assert _t_zero_mean(3, 0.95) == pytest.approx(3.182, rel=1e-3)
    assert model_error_halfwidth(record, 2.0, 0.95) > same
    assert model_error_halfwidth(record, 4.0, 0.95) > model_error_halfwidth(record, 2.0, 0.95)
    assert math.isinf(model_error_halfwidth({"shape": [[0.002, 1.0]], "horizon": []}, 1.0, 0.95))
    assert math.isinf(model_error_halfwidth({"shape": record["shape"], "horizon": []}, 3.0, 0.95))


def test_widen_adds_in_quadrature_on_each_side():
    lo, hi = widen(2.0, 1.9, 2.2, 0.0)
    assert (lo, hi) == pytest.approx((1.9, 2.2))
    lo, hi = widen(2.0, 2.0, 2.0, 0.01)
    assert lo == pytest.approx(2.0 * math.exp(-0.01)) and hi == pytest.approx(2.0 * math.exp(0.01))
    assert widen(2.0, 1.9, 2.1, math.inf) == (0.0, math.inf)


# ------------------------------------------------------------------------------------------------ backtests
@pytest.mark.parametrize("spec, message", [
    ("largest", "curve tables take 'loco'"), ("horizon:1.5", "must lie in (0, 1)"), ("run:", "curve tables take"),
    ("horizon:x", "curve tables take")])
def test_bad_holdout_specs(spec, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_curve_holdout(spec)


def test_folds(data):
    assert [f.name for f in curve_folds(data, "loco")] == ["loco:const", "loco:cos", "loco:wsd"]
    (h,) = curve_folds(data, "horizon:0.5")
    steps = data.column("step")
    assert h.kind == "horizon" and steps[h.train].max() <= 1500 and h.runs == ["const", "cos", "wsd"]
    (r,) = curve_folds(data, "run:cos,wsd")
    assert set(data.run_names[~r.train]) == {"cos", "wsd"}
    with pytest.raises(DataError, match="holdout run 'nope' not found"):
        curve_folds(data, "run:nope")
    with pytest.raises(DataError, match="holds out every curve"):
        curve_folds(data, "run:cos,wsd,const")


def test_loco_backtest_scores_each_curve_with_coverage(law, data):
    bt = curve_backtest(law, data, "loco", n_bootstrap=40)
    assert [c.run for c in bt.curves] == ["const", "cos", "wsd"] and bt.folds == 3
    for c in bt.curves:
        assert abs(c.rel_error) < 0.02 and c.r2 > 0.9 and c.n_points > 10
        assert c.low <= c.predicted_final <= c.high and c.covered is not None
    d = bt.to_dict()
    assert d["coverage"]["of"] == 3 and json.dumps(d)


def test_horizon_backtest_forecasts_the_second_half(law, data):
    bt = curve_backtest(law, data, "horizon:0.5")
    assert len(bt.curves) == 3
    assert all(c.n_points > 20 and c.ratio > 1.8 and c.covered is None for c in bt.curves)


def test_extrapolation_errors_record(law, data):
    rec = extrapolation_errors(law, data)
    assert len(rec["shape"]) == 3 and len(rec["horizon"]) == 3
    assert all(abs(e) < 0.02 for e, _ in rec["shape"] + rec["horizon"])
    assert all(r == pytest.approx(2.0, rel=0.05) for _, r in rec["horizon"])


# ------------------------------------------------------------------------------------------------ schedule intervals
@pytest.fixture(scope="module")
def calibrated(law, data, tmp_path_factory):
    res = calibrate(fit(law, data, n_bootstrap=60), data)
    path = tmp_path_factory.mktemp("cal") / "fit.json"
    res.save(path)
    return res, path


def test_interval_kinds_nest_and_survive_fit_json(calibrated):
    res, path = calibrated
    loaded = load_fit(path)
    assert loaded.diagnostics["extrapolation_errors"] == json.loads(json.dumps(res.diagnostics["extrapolation_errors"]))
    assert len(loaded.diagnostics["run_offsets_log"]) == 3
    params = curve_params(fit=loaded)
    spec = f"cosine:{W},steps=6000,floor=2e-5"
    widths = {}
    for kind in ("confidence", "prediction", "calibrated"):
        p = predict_for(params, "long", spec, interval=kind)
        lo, hi = p.final_loss_interval
        assert lo <= p.final_loss <= hi and p.to_dict()["interval"] == kind
        widths[kind] = hi - lo
    assert widths["confidence"] < widths["prediction"] < widths["calibrated"]
    assert any("includes the extrapolation error" in w for w in p.warnings)
    cmp = compare_for(params, {"a": spec, "b": SPECS["cos"]}, interval="calibrated")
    assert cmp.to_dict()["interval"] == "calibrated" and all(r.interval[0] < r.final_loss < r.interval[1]
                                                             for r in cmp.rows)


def test_calibrated_interval_needs_a_calibrated_fit(law, data):
    params = curve_params(fit=fit(law, data, n_bootstrap=20))
    with pytest.raises(DataError, match="calibrate=True"):
        predict_for(params, "x", SPECS["cos"], interval="calibrated")
    with pytest.raises(DataError, match="interval='band'"):
        predict_for(params, "x", SPECS["cos"], interval="band")
    published = curve_params(law=law, reference="default")
    with pytest.raises(DataError, match="at least 2 fitted curves"):
        predict_for(published, "x", SPECS["cos"], interval="prediction")


def test_crafted_calibration_in_fit_json_is_refused(calibrated, tmp_path):
    from scalefit import fitfile

    _, path = calibrated
    payload = json.loads(path.read_text())
    payload["diagnostics"]["extrapolation_errors"]["shape"] = [[1e300, 1.0]]
    payload.pop("checksum", None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=r"extrapolation_errors.shape\[0\]\[0\]"):
        with pytest.warns(UserWarning):
            load_fit(bad)
    assert fitfile  # the module that validates it


def test_known_bias_of_a_law_is_said_for_that_schedule_kind(law):
    from scalefit.schedule.evaluate import bias_warnings

    biased = type(law)()
    biased.known_bias = {"wsd": "forecasts run 1 % low (measured)"}
    (msg,) = bias_warnings(biased, {"a": SPECS["wsd"], "b": SPECS["cos"]})
    assert msg.startswith("a: law 'lr_annealing' on wsd schedules: forecasts run 1 % low")
    assert bias_warnings(biased, {"dense": np.full(100, 1e-4)}) == []


# ------------------------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def curves_csv(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("curves") / "curves.csv"
    data.frame[["run", "step", "loss"]].to_csv(path, index=False)
    return path


def _schedules():
    return [x for run, spec in SPECS.items() for x in ("--schedule", f"{run}={spec}")]


def test_cli_fit_calibrates_curve_laws_by_default_and_schedule_predict_uses_it(curves_csv, tmp_path):
    from cli_helpers import ok_json, run

    out = tmp_path / "fit.json"
    res = run("fit", curves_csv, "--law", "lr_annealing", *_schedules(), "-b", 40, "--out", out)
    assert res.exit_code == 0, res.output
    assert "calibration: 3 leave-one-curve-out and 3 half-horizon forecasts" in res.stdout
    pred = ok_json("schedule", "predict", "--fit", out, "-s", f"cosine:{W},steps=6000,floor=2e-5", "--every", 3000)
    assert pred["interval"] == "calibrated" and pred["final_loss_low"] < pred["final_loss"] < pred["final_loss_high"]
    conf = ok_json("schedule", "predict", "--fit", out, "-s", f"cosine:{W},steps=6000,floor=2e-5", "--every", 3000,
                   "--interval", "confidence")
    assert conf["final_loss_high"] - conf["final_loss_low"] < pred["final_loss_high"] - pred["final_loss_low"]
    cmp = ok_json("schedule", "compare", "--fit", out, "-s", SPECS["cos"], "-s", SPECS["wsd"])
    assert cmp["interval"] == "calibrated"
    plain = tmp_path / "plain.json"
    assert run("fit", curves_csv, "--law", "lr_annealing", *_schedules(), "-b", 20, "--no-calibrate",
               "--out", plain).exit_code == 0
    assert ok_json("schedule", "compare", "--fit", plain, "-s", SPECS["cos"])["interval"] == "prediction"


def test_cli_curve_backtests_and_their_errors(curves_csv):
    from cli_helpers import assert_clean_error, ok_json, run

    out = ok_json("fit", curves_csv, "--law", "lr_annealing", *_schedules(), "--holdout", "horizon:0.5")
    assert out["backtest"]["holdout"] == "horizon:0.5" and len(out["backtest"]["curves"]) == 3
    rows = ok_json("compare", curves_csv, "--laws", "lr_annealing", *_schedules(), "--holdout", "run:wsd")
    assert rows[0]["law"] == "lr_annealing" and rows[0]["curves"][0]["run"] == "wsd"
    assert_clean_error(run("fit", curves_csv, "--law", "lr_annealing", *_schedules(), "--holdout", "horizon:2"),
                       "--holdout 'horizon:2'")
    assert_clean_error(run("compare", curves_csv, "--laws", "lr_annealing,chinchilla", *_schedules()),
                       "mixes curve laws with point laws")
    assert_clean_error(run("fit", curves_csv, "--law", "lr_annealing", *_schedules(), "--bootstrap-method", "x"),
                       "--bootstrap-method 'x'")


def test_one_curve_gives_an_unbounded_calibrated_interval_not_an_error(law, data):
    one = data.subset(data.run_names == "cos")
    res = calibrate(fit(law, one, n_bootstrap=20), one)
    assert res.diagnostics["extrapolation_errors"]["shape"] == []
    assert any("cannot be measured" in w for w in res.diagnostics["warnings"])
    params = curve_params(fit=res)
    p = predict_for(params, "long", f"cosine:{W},steps=6000,floor=2e-5")  # auto: calibrated
    assert p.interval == "calibrated" and p.final_loss_interval[1] == math.inf
    with pytest.raises(DataError, match="at least 2 fitted curves"):
        predict_for(params, "long", SPECS["cos"], interval="prediction")


def test_calibration_of_many_curves_leaves_out_at_most_ten(law, monkeypatch):
    import scalefit.curve_backtest as cb

    monkeypatch.setattr(cb, "CALIBRATION_CURVES", 2)
    data = synthetic()
    rec = extrapolation_errors(law, data)
    assert len(rec["shape"]) == 2 and len(rec["horizon"]) == 3


def test_a_backtest_fold_gets_the_interval_schedule_predict_would_print(law, data):
    """calibrated=True: each fold's interval is its own fit, calibrated, through CurveParams.halfwidth."""
    bt = curve_backtest(law, data, "run:wsd", n_bootstrap=30, calibrated=True)
    (c,) = bt.curves
    train = data.subset(data.run_names != "wsd")
    params = curve_params(fit=calibrate(fit(law, train, n_bootstrap=30, identify=False), train))
    last = int(data.column("step")[data.run_names == "wsd"].max())
    p = predict_for(params, "wsd", SPECS["wsd"], interval="calibrated", at=last, every=10**9)
    h = params.halfwidth("calibrated", last)
    assert c.covered is not None and h > 0
    assert math.log(c.high / c.predicted_final) >= h - 1e-12 and p.loss_at_step_interval[1] > p.loss_at_step
