"""Holdout splits, the ARE metric, law comparison, and their CLI (fit --holdout, compare)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalefit.backtest import are, backtest, compare, holdout_split, parse_holdout
from scalefit.cli import app
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.registry import get_law

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GADRE = SHARED / "data" / "gadre" / "gadre2024_final_losses.csv"
runner = CliRunner()


def _final_runs(seed=0):
    rng = np.random.default_rng(seed)
    chin = get_law("chinchilla")
    n = np.repeat([1e7, 3e7, 1e8, 3e8, 1e9], 4)
    d = n * np.tile([5.0, 10.0, 20.0, 40.0], 5)
    frame = pd.DataFrame({"params": n, "tokens": d})
    data = from_frame(frame.assign(loss=1.0), required=["params", "tokens", "loss"])
    frame["loss"] = chin.predict(chin.reference_theta("epoch")[None], chin.prepare(data))[0] * np.exp(
        rng.normal(0, 0.003, len(frame)))
    return frame


def _checkpoint_runs():
    rows = []
    for run, n in (("s", 1e8), ("m", 3e8), ("l", 1e9)):
        for frac in np.linspace(0.1, 1.0, 10):
            rows.append({"run": run, "params": n, "tokens": frac * 20 * n, "loss": 3.0 - 0.1 * frac})
    return pd.DataFrame(rows)


def test_are_is_mean_absolute_relative_error():
    assert are([2.0, 4.0], [2.2, 3.0]) == pytest.approx((0.1 + 0.25) / 2)
    assert are([1.0], [1.0]) == 0.0
    with pytest.raises(ValueError):
        are([1.0, 2.0], [1.0])


@pytest.mark.parametrize("spec,k", [("largest", 1), ("largest:3", 3), (" largest : 2 ", 2)])
def test_parse_holdout(spec, k):
    assert parse_holdout(spec) == k


@pytest.mark.parametrize("spec", ["smallest", "largest:0", "largest:x", "1"])
def test_bad_holdout_is_a_data_error(spec):
    with pytest.raises(DataError, match="largest:K"):
        parse_holdout(spec)


def test_split_by_params_holds_out_every_run_of_the_largest_sizes():
    data = from_frame(_final_runs(), required=["params", "tokens", "loss"])
    split = holdout_split(data, "largest:2", "params")
    assert split.test.sum() == 8 and set(data.column("params")[split.test]) == {3e8, 1e9}
    assert not (split.train & split.test).any() and (split.train | split.test).all()
    with pytest.raises(DataError, match="leaves no model size"):
        holdout_split(data, "largest:5")


def test_split_by_compute_holds_out_the_biggest_runs():
    data = from_frame(_final_runs(), required=["params", "tokens", "loss"])
    split = holdout_split(data, "largest:3", "compute")
    flops = data.column("flops")
    assert split.test.sum() == 3 and flops[split.test].min() > flops[split.train].max()


def test_checkpoint_tables_score_only_the_last_30_percent():
    data = from_frame(_checkpoint_runs(), required=["params", "tokens", "loss"])
    split = holdout_split(data, "largest", "params", min_tokens=2.5e9)
    assert split.checkpoints
    tokens = data.column("tokens")
    held = data.column("params") == 1e9
    assert split.test.sum() == 4  # 0.7, 0.8, 0.9, 1.0 of training
    assert np.all(tokens[split.test] >= 0.7 * tokens[held].max() - 1e-6)
    assert not split.train[held].any() and tokens[split.train].min() >= 2.5e9


def test_backtest_and_compare_rank_the_true_law_first():
    data = from_frame(_final_runs(), required=["params", "tokens", "loss"])
    rows = compare([get_law("chinchilla"), get_law("kaplan")], data, "largest")
    assert [r["law"] for r in rows] == ["chinchilla", "kaplan"]
    chin, kap = rows
    assert chin["holdout_are"] < 0.01 and chin["holdout_are"] < kap["holdout_are"]
    assert chin["in_range_are"] < 0.005 and chin["n_test"] == 4 and chin["n_train"] == 16
    assert set(chin["params"]) == {"E", "A", "B", "alpha", "beta"} and chin["seconds"] > 0
    again = backtest(get_law("chinchilla"), data, "largest")
    assert again["holdout_are"] == pytest.approx(chin["holdout_are"], rel=1e-9)


def test_cli_compare_json_and_table(tmp_path):
    runs = tmp_path / "runs.csv"
    _final_runs().to_csv(runs, index=False)
    r = runner.invoke(app, ["compare", str(runs), "--laws", "chinchilla,kaplan", "--holdout", "largest", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["law"] for row in rows] == ["chinchilla", "kaplan"]
    assert set(rows[0]) >= {"law", "in_range_are", "holdout_are", "params", "seconds"}
    r = runner.invoke(app, ["compare", str(runs), "--laws", "chinchilla", "--holdout", "largest:2", "--holdout-by", "compute"])
    assert r.exit_code == 0 and "held-out ARE" in r.stdout


@pytest.mark.parametrize("args,needle", [(["--holdout", "biggest"], "largest:K"), (["--laws", "nope"], "unknown law"),
                                         (["--holdout-by", "tokens"], "params' or 'compute"),
                                         (["--where", "x=1"], "column 'x' not found")])
def test_cli_compare_errors_are_one_line(tmp_path, args, needle):
    runs = tmp_path / "runs.csv"
    _final_runs().to_csv(runs, index=False)
    r = runner.invoke(app, ["compare", str(runs), *args])
    assert r.exit_code == 2 and needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.output


def test_cli_fit_holdout_reports_are(tmp_path):
    runs = tmp_path / "runs.csv"
    _final_runs().to_csv(runs, index=False)
    r = runner.invoke(app, ["fit", str(runs), "--holdout", "largest", "--json"])
    assert r.exit_code == 0, r.output
    bt = json.loads(r.stdout)["backtest"]
    assert bt["n_test"] == 4 and bt["holdout_are"] < 0.01
    r = runner.invoke(app, ["fit", str(runs), "--holdout", "largest:9"])
    assert r.exit_code == 2 and "leaves no model size" in r.stderr


@pytest.mark.skipif(not GADRE.exists(), reason="shared Gadre data not present")
def test_gadre_compare_runs_every_law_per_corpus():
    frame = pd.read_csv(GADRE)
    laws = [get_law(n) for n in ("chinchilla", "kaplan", "farseer")]
    data = from_frame(frame[frame.dataset == "rpj"], columns={"run": "name", "loss": "loss_c4_val"},
                      required=["params", "tokens", "loss"])
    rows = compare(laws, data, "largest")
    assert [r["n_test"] for r in rows] == [1, 1, 1]  # the 6.9B model
    for r in rows:
        assert np.isfinite(r["holdout_are"]) and r["in_range_are"] < 0.03


def test_backtest_information_criteria_are_the_training_fits_own(monkeypatch):
    """AIC, BIC and k come from one place, fitreport.fit_statistics on the fit of the training rows (the fit
    report's numbers), not from residuals recomputed in the backtest; checked against lmfit's formula on a
    weighted table."""
    import math

    import scalefit.fitreport as fitreport

    frame = _final_runs().assign(weight=np.tile([1.0, 2.0, 0.5, 1.0], 5))
    data = from_frame(frame, required=["params", "tokens", "loss"])
    seen = []
    real = fitreport.fit_statistics
    monkeypatch.setattr(fitreport, "fit_statistics", lambda res: seen.append(res) or real(res))
    row = backtest(get_law("chinchilla"), data, "largest", fixed={"E": 1.69})
    assert len(seen) == 1 and seen[0].n_points == row["n_train"] == 16
    assert {k: row[k] for k in ("n_free", "aic", "bic")} == real(seen[0])
    train = data.subset(holdout_split(data, "largest").train)
    law = get_law("chinchilla")
    theta = np.array([row["params"][p] for p in law.param_names])
    r = np.log(law.predict(theta[None], law.prepare(train))[0]) - np.log(train.column("loss"))
    w = train.column("weight") / train.column("weight").mean()
    n, k = r.size, 4  # E fixed
    assert row["n_free"] == k
    assert row["aic"] == pytest.approx(n * math.log(np.sum(w * r**2) / n) + 2 * k, rel=1e-9)
    assert row["bic"] == pytest.approx(n * math.log(np.sum(w * r**2) / n) + k * math.log(n), rel=1e-9)
