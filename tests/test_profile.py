"""Profile-likelihood intervals (issue 15): exact where they say they are, equal to lmfit's conf_interval on
the same objective, shown beside the bootstrap interval in the report, --json and fit.json."""

from __future__ import annotations

import pytest
from cli_helpers import ok_json, run
from strategies import lmfit_chinchilla

from scalefit.fit import fit
from scalefit.profile import profile_intervals
from scalefit.result import load_fit


@pytest.fixture(scope="module")
def huber_fit(epoch_data):
    return fit("chinchilla", epoch_data, profile=True)


def test_each_end_is_where_the_objective_rises_by_the_threshold(huber_fit, epoch_data):
    """Refit from scratch (the full multi-start) with alpha, then E, held at each end of its profile interval:
    the optimum rises by the threshold, to 0.1 %."""
    prof = huber_fit.diagnostics["profile"]
    assert prof["level"] == 0.95 and not prof["lower_objective"]
    for name in ("alpha", "E"):
        for end in ("low", "high"):
            held = fit("chinchilla", epoch_data, fixed={name: prof["params"][name][end]}, identify=False)
            rise = held.objective - huber_fit.objective
            assert rise == pytest.approx(prof["threshold"], rel=1e-3), (name, end)


def test_epoch_alpha_profile_beside_the_bootstrap(huber_fit, epoch_fit):
    """The numbers for the README: on Epoch's data the profile interval of alpha is [0.3232, 0.3687] and the
    bootstrap's (1,000 draws) [0.3169, 0.3708]; both hold the estimate, the profile is the narrower."""
    p = huber_fit.diagnostics["profile"]["params"]["alpha"]
    b = epoch_fit.params["alpha"]
    # Regression pins, not references: scalefit's own measurements, kept so the README's numbers stay true.
    # What makes them right is checked independently: each end raises the refitted objective by the
    # threshold (test above) and the least-squares profile equals lmfit's conf_interval (test below).
    assert (p["low"], p["high"]) == pytest.approx((0.3232, 0.3687), abs=2e-4)
    assert (b.low, b.high) == pytest.approx((0.3169, 0.3708), abs=2e-3)
    assert b.low < p["low"] < huber_fit.params["alpha"].value < p["high"] < b.high
    assert not p["low_open"] and not p["high_open"]


def test_least_squares_profile_equals_lmfit_conf_interval(epoch_data):
    lmfit = pytest.importorskip("lmfit")
    res = fit("chinchilla", epoch_data, loss="lsq", profile=True)
    resid, params = lmfit_chinchilla(res, epoch_data, vary_fixed=True)
    mini = lmfit.Minimizer(resid, params)
    best = mini.minimize(method="leastsq")
    ci = lmfit.conf_interval(mini, best, sigmas=[0.95])
    for name, p in res.diagnostics["profile"]["params"].items():
        assert p["low"] == pytest.approx(ci[name][0][1], rel=2e-5), name
        assert p["high"] == pytest.approx(ci[name][-1][1], rel=2e-5), name
    assert "as lmfit's conf_interval" in res.diagnostics["profile"]["rule"]


def test_ties_follow_their_source_fixed_get_none_and_bounds_leave_an_end_open(epoch_data):
    lmfit = pytest.importorskip("lmfit")
    p = lmfit.Parameters()
    p.add("E", value=1.8172, vary=False)
    p.add("alpha", value=0.35, max=0.3575)  # just above the tied optimum (0.3567): the profile hits the bound
    p.add("beta", expr="alpha")
    res = fit("chinchilla", epoch_data, params=p, profile=True)
    prof = res.diagnostics["profile"]["params"]
    assert "E" not in prof and prof["beta"] == prof["alpha"]
    assert prof["alpha"]["high_open"] and prof["alpha"]["high"] == pytest.approx(0.3575)
    assert not prof["alpha"]["low_open"] and prof["alpha"]["low"] < res.params["alpha"].value
    assert ">=0.3575" in res.report()


def test_profile_intervals_on_a_saved_fit(huber_fit, epoch_data, tmp_path):
    """The library call on a fit made without profile=True gives the same record, and fit.json keeps it."""
    plain = load_fit(fit("chinchilla", epoch_data).save(tmp_path / "fit.json"))
    assert "profile" not in plain.diagnostics
    record = profile_intervals(plain, epoch_data)
    for name, p in huber_fit.diagnostics["profile"]["params"].items():
        assert record["params"][name]["low"] == pytest.approx(p["low"], rel=1e-6)
        assert record["params"][name]["high"] == pytest.approx(p["high"], rel=1e-6)
    again = load_fit(plain.save(tmp_path / "with_profile.json"))
    assert again.diagnostics["profile"]["params"] == record["params"]  # JSON floats round-trip exactly
    assert "profile [" in again.report()


def test_cli_profile_in_table_and_json(epoch_frame, tmp_path):
    path = tmp_path / "epoch240.csv"
    epoch_frame.to_csv(path, index=False)
    cols = ("--col", "params=Model Size", "--col", "flops=Training FLOP")
    out = ok_json("fit", path, *cols, "--profile")
    alpha = out["diagnostics"]["profile"]["params"]["alpha"]
    assert (alpha["low"], alpha["high"]) == pytest.approx((0.3232, 0.3687), abs=2e-4)
    text = " ".join(run("fit", path, *cols, "--profile").stdout.split())  # rich wraps at the terminal width
    assert "95% profile" in text and "robust likelihood ratio" in text
    assert "profile" not in ok_json("fit", path, *cols)["diagnostics"]  # opt-in
