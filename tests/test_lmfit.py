"""lmfit interoperability (issue 15): Parameters in and out, the lmfit-style report, correlations and ridges,
allocation exponents, and lmfit imported only when it is used."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import assert_clean_error, ok_json, run

from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.result import load_fit

lmfit = pytest.importorskip("lmfit")

EPOCH_COLS = ("--col", "params=Model Size", "--col", "flops=Training FLOP")
E_HELD = 1.8172  # Epoch's published E (Besiroglu et al. 2024)


@pytest.fixture(scope="module")
def epoch_csv(epoch_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("epoch") / "epoch240.csv"
    epoch_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tied_params():
    p = lmfit.Parameters()
    p.add("E", value=E_HELD, vary=False)
    p.add("A", value=400.0)
    p.add("B", value=400.0)
    p.add("alpha", value=0.3)
    p.add("beta", expr="alpha")
    return p


@pytest.fixture(scope="module")
def tied_fit(epoch_data, tied_params):
    return fit("chinchilla", epoch_data, params=tied_params, n_bootstrap=100, seed=0)


# ---------------------------------------------------------------------- lmfit only when used
def test_help_predict_and_a_plain_fit_do_not_import_lmfit(tmp_path):
    """`scalefit --help`, `predict` and a fit without params= never import lmfit (checked in a fresh interpreter)."""
    from conftest import ROOT

    script = f"""
import sys
from typer.testing import CliRunner
from scalefit.cli import app
runner = CliRunner()
assert runner.invoke(app, ["--help"]).exit_code == 0
res = runner.invoke(app, ["fit", {str(ROOT / "data" / "example_runs.csv")!r}, "--out", {str(tmp_path / "f.json")!r}])
assert res.exit_code == 0, res.output
res = runner.invoke(app, ["predict", "--fit", {str(tmp_path / "f.json")!r}, "--compute", "1e22", "--json"])
assert res.exit_code == 0, res.output
import scalefit
scalefit.fit("chinchilla", {str(ROOT / "data" / "example_runs.csv")!r})
print(sorted(m for m in sys.modules if m == "lmfit" or m.startswith("lmfit.") or m == "scalefit.lmfit_bridge"))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- Parameters in
def test_epoch_with_beta_tied_and_e_fixed_matches_the_cli(tied_fit, epoch_csv):
    """The acceptance check: Parameters(beta expr='alpha', E vary=False) gives the CLI's --tie/--set estimates."""
    cli = ok_json("fit", epoch_csv, *EPOCH_COLS, "--tie", "beta=alpha", "--set", f"E={E_HELD}")
    for name, e in tied_fit.params.items():
        assert e.value == pytest.approx(cli["params"][name]["value"], rel=1e-7), name
        assert e.status == cli["params"][name]["status"]
    assert tied_fit.params["beta"].status == "tied:alpha" and tied_fit.params["E"].status == "fixed"
    assert tied_fit.params["E"].value == E_HELD
    assert tied_fit.objective == pytest.approx(cli["objective"], rel=1e-9)
    # Measured: alpha = beta = 0.3567 with E held at Epoch's 1.8172 (0.3473 and 0.3672 when both are free).
    assert tied_fit.params["alpha"].value == pytest.approx(0.3567, abs=5e-4)


def test_to_lmfit_round_trips(tied_fit, epoch_data):
    out = tied_fit.to_lmfit()
    assert isinstance(out, lmfit.Parameters) and list(out) == tied_fit.law.param_names
    for name, e in tied_fit.params.items():
        p = out[name]
        assert p.value == pytest.approx(e.value, rel=1e-12)
        assert (p.stderr is None) == (e.stderr is None) and (p.stderr is None or p.stderr == pytest.approx(e.stderr))
        lo, hi = tied_fit.law.params[name].bounds
        assert (p.min, p.max) == (lo, hi)
    assert out["E"].vary is False and out["beta"].expr == "alpha" and out["alpha"].vary is True
    assert out["A"].correl["alpha"] == pytest.approx(
        tied_fit.diagnostics["correlations"]["jacobian"][0][2])  # free order: A, B, alpha; lmfit reads the covariance at the optimum
    again = fit("chinchilla", epoch_data, params=out)
    np.testing.assert_allclose(again.theta, tied_fit.theta, rtol=1e-6)
    assert [e.status for e in again.params.values()] == [e.status for e in tied_fit.params.values()]


def test_min_max_narrow_the_law_bounds_and_are_recorded(epoch_data, tmp_path):
    p = lmfit.Parameters()
    p.add("alpha", value=0.3, min=0.1, max=0.33)  # the free optimum is 0.347: the fit must stop at 0.33
    res = fit("chinchilla", epoch_data, params=p)
    assert res.params["alpha"].value == pytest.approx(0.33, abs=1e-9) and res.params["alpha"].at_bound
    assert res.settings["bounds"] == {"alpha": [0.1, 0.33]}
    assert any("sits at a bound of [0.1, 0.33]" in w for w in res.diagnostics["warnings"])
    loaded = load_fit(res.save(tmp_path / "fit.json"))
    assert loaded.settings["bounds"] == {"alpha": [0.1, 0.33]}
    assert (loaded.to_lmfit()["alpha"].min, loaded.to_lmfit()["alpha"].max) == (0.1, 0.33)
    from scalefit.registry import get_law

    assert get_law("chinchilla").params["alpha"].bounds == (0.0, 3.0)  # the registry's law is untouched


@pytest.mark.parametrize("setup,needle", [
    (lambda p: p.add("beta", expr="alpha**2"), "expr = 'alpha**2'"),
    (lambda p: p.add("beta", expr="-2*alpha"), "expr = '-2*alpha'"),
    (lambda p: (p.add("gamma", value=1.0), p.add("beta", expr="gamma")), "has no parameter 'gamma'"),
    (lambda p: p.add("alpha", value=0.3, min=-1.0), "params['alpha'].min = -1 lies outside"),  # replaces alpha
    (lambda p: p.add("rho", value=1.0), "has no parameter 'rho'"),
    (lambda p: (p.add("alpha", value=0.3, vary=False), p.add("beta", expr="alpha")), "must itself vary"),
])
def test_unsupported_parameters_are_one_clear_error(epoch_data, setup, needle):
    p = lmfit.Parameters()
    p.add("A", value=400.0)
    p.add("alpha", value=0.3)  # lmfit evaluates an expression when it is added: its names must exist
    setup(p)
    with pytest.raises(DataError) as err:
        fit("chinchilla", epoch_data, params=p)
    assert needle in str(err.value)


def test_expr_one_times_name_and_a_number_are_understood(epoch_data):
    p = lmfit.Parameters()
    p.add("alpha", value=0.3)
    p.add("beta", expr="1.0 * alpha")
    p.add("E", expr="1.8172")
    res = fit("chinchilla", epoch_data, params=p)
    assert res.params["beta"].status == "tied:alpha" and res.params["E"].status == "fixed"
    assert res.params["E"].value == E_HELD


def test_params_conflicting_with_fixed_is_refused(epoch_data, tied_params):
    with pytest.raises(DataError, match="constrained both in params and in fixed"):
        fit("chinchilla", epoch_data, params=tied_params, fixed={"E": 1.7})


# ---------------------------------------------------------------------- correlations and the report
def test_epoch_correlations_flag_both_ridges(epoch_fit):
    corr = epoch_fit.diagnostics["correlations"]
    assert corr["names"] == ["E", "A", "B", "alpha", "beta"]
    pairs = {tuple(p["params"]): p for p in corr["pairs"]}
    for pair in (("A", "alpha"), ("B", "beta")):
        assert pairs[pair]["ridge"] and pairs[pair]["jacobian"] > 0.99 and pairs[pair]["bootstrap"] > 0.99
    assert [tuple(p["params"]) for p in corr["pairs"] if p["ridge"]] in ([("B", "beta"), ("A", "alpha")],
                                                                        [("A", "alpha"), ("B", "beta")])
    assert all(0.5 < abs(p["jacobian"]) < 0.9 for p in corr["pairs"] if not p["ridge"])  # E with the rest
    assert any(n.startswith("A and alpha trade off") and "judge the fit by the exponents and forecasts" in n
               for n in corr["ridges"])
    # The bootstrap correlation is the draws' own (log A against alpha, as the optimiser sees them).
    i, j = corr["names"].index("A"), corr["names"].index("alpha")
    logged = np.column_stack([np.log(epoch_fit.draws[:, 1]), epoch_fit.draws[:, 3]])
    assert corr["bootstrap"][i][j] == pytest.approx(np.corrcoef(logged, rowvar=False)[0, 1], rel=1e-9)


def test_jacobian_correlation_matches_lmfit_on_least_squares(epoch_data):
    """Same objective (least squares on log loss), same optimum: lmfit's correl equals scalefit's."""
    res = fit("chinchilla", epoch_data, loss="lsq")
    N, D, y = epoch_data.column("params"), epoch_data.column("tokens"), epoch_data.column("loss")
    p = lmfit.Parameters()
    for name, e in res.params.items():  # log-scale parameters as lmfit sees them: fit log A, log B, log E
        p.add(name, value=np.log(e.value) if name in "EAB" else e.value)

    def resid(q):
        v = q.valuesdict()
        return np.log(np.exp(v["E"]) + np.exp(v["A"]) * N ** -v["alpha"] + np.exp(v["B"]) * D ** -v["beta"]) - np.log(y)

    out = lmfit.minimize(resid, p, method="leastsq")
    corr = res.diagnostics["correlations"]
    for i, a in enumerate(corr["names"]):
        for j, b in enumerate(corr["names"]):
            if i != j:
                assert corr["jacobian"][i][j] == pytest.approx(out.params[a].correl[b], abs=2e-4), (a, b)


def test_fit_report_has_lmfits_sections(epoch_fit):
    text = epoch_fit.fit_report()
    for section in ("[[Model]]", "[[Fit Statistics]]", "[[Variables]]", "[[Correlations]]"):
        assert section in text
    assert "C(A, alpha) = +0.99" in text and "C(B, beta) = +0.99" in text and "ridge" in text
    assert "# variables       = 5" in text and "AIC / BIC" in text
    assert "C(E, A)" not in epoch_fit.fit_report(min_correl=0.95)


def test_correlations_reach_json_and_fit_json(epoch_fit, tmp_path, epoch_csv):
    loaded = load_fit(epoch_fit.save(tmp_path / "fit.json"))
    assert loaded.diagnostics["correlations"] == json.loads(json.dumps(epoch_fit.diagnostics["correlations"]))
    assert loaded.fit_report() == epoch_fit.fit_report()
    out = ok_json("fit", epoch_csv, *EPOCH_COLS)
    assert {tuple(p["params"]) for p in out["diagnostics"]["correlations"]["pairs"] if p["ridge"]} == {
        ("A", "alpha"), ("B", "beta")}
    assert out["diagnostics"]["correlations"]["bootstrap"] is None  # no draws, Jacobian only


def test_old_fit_json_without_the_new_fields_loads(epoch_fit, tmp_path):
    from scalefit import fitfile

    payload = copy.deepcopy(epoch_fit.to_dict())  # to_dict shares the fit's diagnostics: leave them alone
    for key in ("correlations", "allocation"):
        payload["diagnostics"].pop(key)
    path = fitfile.write(tmp_path / "old.json", payload, epoch_fit.draws, epoch_fit.param_names, force=False)
    old = load_fit(path)
    assert "[[Correlations]]" not in old.report() and old.to_lmfit()["alpha"].value == epoch_fit.theta[3]


@pytest.mark.parametrize("edit,field", [
    (lambda d: d["correlations"].update(jacobian=[[2.0]]), "diagnostics.correlations.jacobian"),
    (lambda d: d["correlations"].update(names=["E", "rho"]), "diagnostics.correlations.names"),
    (lambda d: d["allocation"]["a"].update(value="x"), "diagnostics.allocation.a.value"),
])
def test_malformed_new_fields_name_the_field(epoch_fit, tmp_path, edit, field):
    from scalefit import fitfile

    payload = copy.deepcopy(epoch_fit.to_dict())
    edit(payload["diagnostics"])
    path = fitfile.write(tmp_path / "bad.json", payload, None, epoch_fit.param_names, force=False)
    with pytest.raises(DataError, match=field.replace(".", r"\.").replace("[", r"\[")):
        load_fit(path)


# ---------------------------------------------------------------------- allocation exponents
def test_allocation_exponents_with_intervals_from_the_draws(epoch_fit, tmp_path):
    from scalefit.stats import percentile_interval

    alloc = epoch_fit.diagnostics["allocation"]
    E, A, B, alpha, beta = epoch_fit.theta
    assert alloc["exponents"] == ["alpha", "beta"]
    assert alloc["a"]["value"] == pytest.approx(beta / (alpha + beta)) and alloc["b"]["value"] == pytest.approx(
        alpha / (alpha + beta))
    draws_a = epoch_fit.draws[:, 4] / (epoch_fit.draws[:, 3] + epoch_fit.draws[:, 4])
    lo, hi = percentile_interval(draws_a, epoch_fit.ci, beta / (alpha + beta), epoch_fit.stretch)
    assert (alloc["a"]["low"], alloc["a"]["high"]) == pytest.approx((lo, hi))
    # Measured on Epoch's data: a = 0.514 [0.481, 0.557]; Hoffmann et al.'s approach 3 quotes a = 0.46.
    assert alloc["a"]["value"] == pytest.approx(0.5139, abs=1e-3) and alloc["a"]["low"] < 0.5 < alloc["a"]["high"]
    # predict from the saved fit reports the same numbers (same draws, level and stretch).
    path = epoch_fit.save(tmp_path / "fit.json")
    out = ok_json("predict", "--fit", path, "--compute", "5.76e23")
    assert out["allocation"]["a"] == pytest.approx(alloc["a"]) and out["allocation"]["b"] == pytest.approx(alloc["b"])
    text = run("predict", "--fit", path, "--compute", "5.76e23").stdout
    assert "N_opt ∝ C^a" in text and "0.5139" in text


def test_laws_without_the_exponent_pair_report_none():
    from scalefit.allocation import allocation_exponents
    from scalefit.registry import get_law

    for name in ("kaplan", "farseer", "loss_to_loss", "multipower"):
        law = get_law(name)
        assert allocation_exponents(law, law.reference_theta()) is None, name
    hoffmann = allocation_exponents(get_law("chinchilla"), get_law("chinchilla").reference_theta("hoffmann"))
    assert hoffmann["a"]["value"] == pytest.approx(0.28 / 0.62) and hoffmann["a"]["low"] is None
    # Parameter names alone do not make the closed form: an undeclared law of another shape has none.
    from scalefit.law import Law, Param

    class Lookalike(Law):
        name, inputs = "lookalike", ("params", "tokens")
        params = {k: Param((0.01, 10.0), (1.0,)) for k in ("E", "A", "B", "alpha", "beta")}

    assert allocation_exponents(Lookalike(), np.ones(5)) is None


def test_exponents_are_not_printed_beside_a_data_limited_allocation():
    """data_constrained's a = beta/(alpha+beta) is the unlimited-data answer: shown for a plain forecast,
    left out when --unique-tokens limits the data."""
    plain = ok_json("predict", "--law", "data_constrained", "--reference", "--compute", "5.76e23",
                    "--unique-tokens", "1e15")
    limited = ok_json("predict", "--law", "data_constrained", "--reference", "--compute", "5.76e23",
                      "--unique-tokens", "25B")
    assert "allocation" not in limited
    assert "allocation" not in plain  # any unique-data limit: the exponents are not its answer


def test_bad_params_object_is_a_clean_cli_free_error(epoch_data):
    with pytest.raises(DataError, match="params must be an lmfit Parameters"):
        fit("chinchilla", epoch_data, params=[("alpha", 0.3)])
    assert_clean_error(run("fit", "missing.csv", "--profile"), "missing.csv")


def test_a_tie_scaled_by_a_constant_is_the_same_fit_from_lmfit_the_cli_and_python(epoch_data, epoch_csv, tmp_path):
    """``expr="1.1*alpha"`` (lmfit), ``--tie beta=1.1*alpha`` (CLI) and ``ties={"beta": "1.1*alpha"}`` give one
    fit, with beta exactly 1.1 alpha, and it survives fit.json and to_lmfit()."""
    p = lmfit.Parameters()
    p.add("alpha", value=0.3)
    p.add("beta", expr="1.1*alpha")
    from_lmfit = fit("chinchilla", epoch_data, params=p)
    from_python = fit("chinchilla", epoch_data, ties={"beta": "1.1*alpha"})
    a, b = from_lmfit.params["alpha"].value, from_lmfit.params["beta"].value
    assert b == pytest.approx(1.1 * a, rel=1e-12) and from_lmfit.params["beta"].status.startswith("tied:")
    assert from_python.params["alpha"].value == pytest.approx(a, rel=1e-9)
    assert from_lmfit.params["beta"].stderr == pytest.approx(1.1 * from_lmfit.params["alpha"].stderr, rel=1e-9)
    out = tmp_path / "fit.json"
    res = run("fit", epoch_csv, *EPOCH_COLS, "--tie", "beta=1.1*alpha", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    loaded = load_fit(out)
    assert loaded.params["alpha"].value == pytest.approx(a, rel=1e-6)
    back = loaded.to_lmfit()
    assert back["beta"].value == pytest.approx(1.1 * back["alpha"].value, rel=1e-9)
    again = fit("chinchilla", epoch_data, params=back)
    assert again.params["beta"].value == pytest.approx(b, rel=1e-6)
