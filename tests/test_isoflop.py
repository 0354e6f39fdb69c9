"""``scalefit isoflop`` (Chinchilla approach 2): exact answers on noise-free IsoFLOP sweeps, the biases
Open-Athena derived (asymmetric surfaces, off-centre grids), Epoch's digitised Chinchilla runs, bad input,
and the ``--holdout largest`` split on an IsoFLOP table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, ok_json, run
from conftest import shared_file

from scalefit.backtest import holdout_split
from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.isoflop import isoflop, parse_budgets

BUDGETS = np.geomspace(1e18, 1e21, 7)
CHINCHILLA_NINE = [6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21]


def _sweep(alpha=0.34, beta=0.34, half_width=0.5, shift=lambda c: 0.0, noise=0.0, seed=0, E=1.8, A=480.0, B=2000.0,
           budgets=BUDGETS):
    """9 sizes per budget, evenly spaced in log10 N over +-half_width decades around 10^shift(C) x N_opt(C)."""
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        n_opt = g * (c / 6) ** (beta / (alpha + beta))
        for w in np.linspace(-half_width, half_width, 9):
            n = n_opt * 10 ** (w + shift(c))
            d = c / (6 * n)
            loss = (E + A / n**alpha + B / d**beta) * math.exp(rng.normal(0, noise))
            rows.append({"params": n, "tokens": d, "flops": c, "loss": loss})
    return pd.DataFrame(rows), g, beta / (alpha + beta)


def _data(frame, **kw):
    return from_frame(frame, source="sweep", required=["params", "loss", "flops"], **kw)


def test_symmetric_surface_centred_grids_is_exact():
    frame, g, a_true = _sweep()
    res = isoflop(_data(frame), n_bootstrap=200, compute=5.76e23)
    assert res.grouping == "runs sharing a compute value" and len(res.budgets) == 7
    assert res.a["value"] == pytest.approx(0.5, abs=1e-9) and res.b["value"] == pytest.approx(0.5, abs=1e-9)
    for b in res.budgets:  # every vertex on the true minimum, in the centre of its grid
        assert b.n_opt == pytest.approx(g * (b.compute / 6) ** a_true, rel=1e-8) and abs(b.offset) < 1e-6
    assert res.forecast["n_opt"]["value"] == pytest.approx(g * (5.76e23 / 6) ** 0.5, rel=1e-6)
    assert res.warnings == []


def test_asymmetric_surface_biases_the_prefactor_not_the_exponent():
    """Open-Athena's derivation: alpha != beta shifts each vertex by the same factor at every budget."""
    frame, g, a_true = _sweep(alpha=0.34, beta=0.28)
    res = isoflop(_data(frame), n_bootstrap=200)
    assert res.a["value"] == pytest.approx(a_true, abs=1e-6)
    ratios = np.array([b.n_opt / (g * (b.compute / 6) ** a_true) for b in res.budgets])
    assert np.ptp(ratios) < 1e-6 and abs(ratios[0] - 1) > 1e-3
    assert any("alpha != beta" in w and "prefactor is biased" in w for w in res.warnings)
    # A wider grid misses by more.
    wide = isoflop(_data(_sweep(alpha=0.34, beta=0.28, half_width=1.0)[0]), n_bootstrap=0)
    assert abs(wide.budgets[0].n_opt / (g * (wide.budgets[0].compute / 6) ** a_true) - 1) > abs(ratios[0] - 1)


def test_off_centre_grids_that_drift_with_compute_bias_the_exponent():
    drift = lambda c: 0.35 * math.log10(c / BUDGETS[0]) / 3  # noqa: E731 - centre moves from 1x to 2.2x N_opt
    frame, _, a_true = _sweep(shift=drift)
    res = isoflop(_data(frame), n_bootstrap=200)
    assert abs(res.a["value"] - a_true) > 1e-3  # noise-free: 0.002 here, against 1e-9 when centred
    assert any("off-centre" in w and "changes with compute" in w and "biases the exponent" in w for w in res.warnings)
    constant = isoflop(_data(_sweep(shift=lambda c: 0.35)[0]), n_bootstrap=0)
    assert constant.a["value"] == pytest.approx(a_true, abs=1e-9)  # same offset everywhere: a survives
    assert any("about the same at every budget" in w for w in constant.warnings)


def test_intervals_cover_on_noisy_sweeps():
    covered = []
    for seed in range(20):
        res = isoflop(_data(_sweep(noise=0.003, seed=seed)[0]), n_bootstrap=300, seed=seed)
        covered.append(res.a["low"] <= 0.5 <= res.a["high"])
        assert res.a["low"] < res.a["value"] < res.a["high"]
        assert res.a["high"] - res.a["low"] < 0.1
    assert sum(covered) >= 16, covered  # measured: 19 of 20 (median width 0.035); 39 of 40 at 0.2 % noise


def test_epoch_chinchilla_points_by_the_papers_nine_budgets():
    path = shared_file("chinchilla", "svg_extracted_data.csv")
    out = ok_json("isoflop", path, "--budgets", ",".join(f"{c:g}" for c in CHINCHILLA_NINE), "--compute", "5.76e23")
    assert len(out["budgets"]) == 9 and sum(b["runs"] for b in out["budgets"]) == 121
    a = out["a"]
    # Hoffmann et al.'s approach 2 gave a = 0.49 (0.462, 0.534) on the original runs.
    assert 0.47 < a["value"] < 0.53 and a["low"] < 0.49 < a["high"] and a["high"] - a["low"] < 0.15
    assert out["b"]["value"] == pytest.approx(1 - a["value"])
    assert 3e10 < out["forecast"]["n_opt"]["value"] < 1e11
    # The 1e20 budget's sizes all lie above its vertex: said.
    assert any("outside the sizes trained" in w and "1e+20" in w for w in out["warnings"])


def test_budget_is_a_compute_alias_and_groups_exactly(tmp_path):
    frame, _, _ = _sweep()
    frame = frame.rename(columns={"flops": "budget"}).drop(columns="tokens")
    path = tmp_path / "sweep.csv"
    frame.to_csv(path, index=False)
    out = ok_json("isoflop", path, "--bootstrap", 50)
    assert out["a"]["value"] == pytest.approx(0.5, abs=1e-9) and len(out["budgets"]) == 7


def test_digitised_compute_is_grouped_into_windows():
    frame, _, _ = _sweep(noise=0.002)
    frame["flops"] *= np.random.default_rng(1).uniform(0.97, 1.03, len(frame))  # 6ND from rounded shapes
    res = isoflop(_data(frame), n_bootstrap=0)
    assert res.grouping.startswith("densest windows") and len(res.budgets) == 7
    assert res.a["value"] == pytest.approx(0.5, abs=0.02)


def test_bad_input_is_one_line_exit_2(tmp_path):
    frame, _, _ = _sweep()
    few = frame[~((frame["flops"] == BUDGETS[-1]) & (frame.index % 9 > 1))]  # the largest budget keeps 2 runs
    path = tmp_path / "few.csv"
    few.to_csv(path, index=False)
    assert_clean_error(run("isoflop", path), "budget 1e+21 FLOPs has 2 run(s); a parabola needs at least 3")
    with pytest.raises(DataError, match="has 2 run"):
        isoflop(_data(few))
    neg = frame.copy()
    neg.loc[3, "params"] = -1.0
    path = tmp_path / "neg.csv"
    neg.to_csv(path, index=False)
    assert_clean_error(run("isoflop", path), "zero or negative")
    good = tmp_path / "good.csv"
    frame.to_csv(good, index=False)
    assert_clean_error(run("isoflop", good, "--budgets", "1e19,abc"), "--budgets '1e19,abc'")
    assert_clean_error(run("isoflop", good, "--min-runs", 2), "--min-runs 2")
    assert_clean_error(run("isoflop", good, "--budgets", "1e15,1e16"), "has 0 run(s)")
    with pytest.raises(DataError, match="^tol=2"):
        isoflop(_data(frame), tol=2)
    assert parse_budgets("6e18, 1e19,3E19") == [6e18, 1e19, 3e19]


def test_holdout_largest_by_compute_holds_out_the_whole_largest_budget():
    frame, _, _ = _sweep()
    data = from_frame(frame, required=["params", "tokens", "loss"])
    split = holdout_split(data, "largest", "compute")
    flops = data.column("flops")
    assert split.test.sum() == 9 and set(flops[split.test]) == {BUDGETS[-1]}
    two = holdout_split(data, "largest:2", "compute")
    assert two.test.sum() == 18 and flops[two.train].max() == BUDGETS[-3]
    with pytest.raises(DataError, match="leaves no run to fit"):
        holdout_split(data, "largest:7", "compute")


def test_holdout_by_compute_uses_the_budgets_isoflop_finds():
    """Two budgets 25 % apart are two IsoFLOP profiles: holding out the largest holds out one of them (the
    greedy 25 % grouping the backtest used to have merged them), and on digitised compute the held-out runs
    are exactly the runs of isoflop's largest budget."""
    from scalefit.isoflop import budget_ranks, found_budgets

    frame, _, _ = _sweep(budgets=[1e19, 2e19, 4e19, 5e19])
    data = from_frame(frame, required=["params", "tokens", "loss"])
    split = holdout_split(data, "largest", "compute")
    assert split.test.sum() == 9 and set(data.column("flops")[split.test]) == {5e19}
    assert len(isoflop(_data(frame), n_bootstrap=0).budgets) == 4

    jittered, _, _ = _sweep(noise=0.002)
    jittered["flops"] *= np.random.default_rng(1).uniform(0.97, 1.03, len(jittered))
    data = from_frame(jittered, required=["params", "tokens", "loss"])
    flops = data.column("flops")
    group, values, how = found_budgets(flops)
    assert how.startswith("densest windows") and len(values) == 7 and (group >= 0).all()
    for k in (1, 3):
        split = holdout_split(data, f"largest:{k}", "compute")
        top = np.argsort(values)[-k:]
        np.testing.assert_array_equal(split.test, np.isin(group, top))
    # A run on no budget is a budget of its own, ranked by its compute.
    np.testing.assert_array_equal(budget_ranks(np.array([1e20, 1e19, 1.01e19, 0.99e19, 5e18])), [0, 1, 1, 1, 2])


def test_a_huge_n_bootstrap_is_refused_before_allocating(tmp_path, monkeypatch):
    """(1 + n_bootstrap) x runs weights used to be allocated whatever n_bootstrap was: a MemoryError."""
    from scalefit.limits import LimitError

    monkeypatch.delenv("SCALEFIT_MAX_MEMORY", raising=False)
    frame, _, _ = _sweep()
    data = _data(frame)
    with pytest.raises(LimitError, match=r"^n_bootstrap=10000000000000 resamples of up to 9 runs per budget: "
                                         r"needs .* over the limit of 4 GiB") as e:
        isoflop(data, n_bootstrap=10**13)
    assert e.value.options == ("n_bootstrap",)
    monkeypatch.setenv("SCALEFIT_MAX_MEMORY", str(2**20))
    with pytest.raises(LimitError, match="n_bootstrap=10000 .*SCALEFIT_MAX_MEMORY"):
        isoflop(data, n_bootstrap=10_000)
    assert isoflop(data, n_bootstrap=1_000).n_bootstrap == 1_000  # 0.5 MiB: within the same limit
    path = tmp_path / "sweep.csv"
    frame.to_csv(path, index=False)
    monkeypatch.delenv("SCALEFIT_MAX_MEMORY")
    assert_clean_error(run("isoflop", path, "--bootstrap", 10**13), "--bootstrap 10000000000000 resamples")


def test_budget_only_table_backtests_by_compute(tmp_path):
    """With only a budget column (no flops, no tokens) the budget is the compute: tokens come from it and
    --holdout-by compute holds out the largest budget's 9 runs."""
    frame, _, _ = _sweep()
    path = tmp_path / "sweep.csv"
    frame.rename(columns={"flops": "budget"}).drop(columns="tokens").to_csv(path, index=False)
    rows = ok_json("compare", path, "--laws", "chinchilla", "--holdout", "largest", "--holdout-by", "compute")
    assert rows[0]["n_test"] == 9 and rows[0]["n_train"] == 54 and rows[0]["holdout_are"] < 0.01
