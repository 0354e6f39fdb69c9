"""The fitter against published numbers (Epoch's Chinchilla replication, Gadre et al.) and its invariants."""

import importlib

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

from scalefit.data import from_frame
from scalefit.errors import DataError, FitError
from scalefit.fit import fit
from scalefit.registry import get_law
from scalefit.solver import RobustLoss


def test_epoch_grid_fit_reproduces_published_optimum(epoch_fit):
    """Summed Huber (delta 1e-3) on Epoch's 240 points: objective <= 1.01828e-3, E/alpha/beta as Epoch."""
    p = epoch_fit.params
    assert epoch_fit.objective <= 1.01828e-3
    assert abs(p["E"].value - 1.8172) <= 0.002
    assert abs(p["alpha"].value - 0.3473) <= 0.002
    assert abs(p["beta"].value - 0.3672) <= 0.003
    # A and B lie on a flat ridge: compare loosely (Epoch: 477.8 and 2143).
    assert 400 < p["A"].value < 560 and 1500 < p["B"].value < 3000
    # Variable projection: the recipe's 25 exponent pairs, each with (E, A, B) solved exactly, stand for
    # its 4,500 starts (180 coefficient settings per pair).
    assert epoch_fit.diagnostics["n_starts"] == 25
    assert epoch_fit.diagnostics["projected"] == ["E", "A", "B"]
    assert epoch_fit.diagnostics["n_converged_best"] >= 10


def test_projected_search_matches_the_full_4500_start_grid(epoch_data):
    """The same law declared without linear parameters is searched the old way, over all 4,500 starts:
    both reach the same optimum (the projected one no worse) and the same estimates."""
    from scalefit.law import Param
    from scalefit.registry import get_law

    chin = get_law("chinchilla")
    plain_params = {name: Param(p.bounds, p.init, log=p.log, doc=p.doc) for name, p in chin.params.items()}
    plain = type("Plain", (type(chin),), {"name": "chinchilla_plain", "params": plain_params})()
    full = fit(plain, epoch_data, identify=False)
    projected = fit(chin, epoch_data, identify=False)
    assert full.diagnostics["n_starts"] == 4500 and full.diagnostics["projected"] == []
    assert projected.objective <= full.objective * (1 + 1e-12)
    for name in ("E", "alpha", "beta"):
        assert projected.params[name].value == pytest.approx(full.params[name].value, rel=1e-6)


def test_epoch_bootstrap_standard_errors(epoch_fit):
    """1,000 run resamples: SE of E, alpha, beta within 25 % of Epoch's (0.0257, 0.0154, 0.0206)."""
    for name, published in (("E", 0.0257), ("alpha", 0.0154), ("beta", 0.0206)):
        se = epoch_fit.params[name].stderr
        assert abs(se / published - 1) <= 0.25, (name, se)
    lo, hi = epoch_fit.params["E"].low, epoch_fit.params["E"].high
    assert abs(lo - 1.769) < 0.02 and abs(hi - 1.871) < 0.02  # Epoch's 95 % percentile interval


def test_same_seed_same_draws(epoch_data):
    """Same seed -> identical bootstrap; another seed -> different draws."""
    a = fit("chinchilla", epoch_data, n_bootstrap=20, seed=3)
    b = fit("chinchilla", epoch_data, n_bootstrap=20, seed=3)
    c = fit("chinchilla", epoch_data, n_bootstrap=20, seed=4)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, c.draws)


def test_parallel_bootstrap_equals_serial(epoch_data):
    """joblib workers change where draws run, not what they are."""
    a = fit("chinchilla", epoch_data, n_bootstrap=24, seed=5)
    b = fit("chinchilla", epoch_data, n_bootstrap=24, seed=5, jobs=2, backend="threading")
    np.testing.assert_allclose(a.draws, b.draws, rtol=1e-9)


def test_repeated_resamples_are_solved_once_with_identical_draws(monkeypatch):
    """4 runs give at most 35 distinct resamples: 300 draws solve only those, and the draws equal
    solving every resample on its own."""
    bootmod = importlib.import_module("scalefit.bootstrap")
    law = get_law("chinchilla")
    N, D = np.meshgrid([1e8, 3e8, 1e9, 3e9], [2e9, 6e9, 2e10])
    frame = pd.DataFrame({"params": N.ravel(), "tokens": D.ravel(), "run": np.tile(["a", "b", "c", "d"], 3)})
    y = law.predict(law.reference_theta()[None], law.prepare(from_frame(frame, required=["params", "tokens"])))[0]
    frame["loss"] = y * np.exp(np.random.default_rng(1).normal(0, 0.01, len(y)))
    calls = []
    real_chunk = bootmod._bootstrap_chunk
    monkeypatch.setattr(bootmod, "_bootstrap_chunk", lambda *args: calls.append(args) or real_chunk(*args))
    result = fit(law, from_frame(frame, required=["params", "tokens", "loss"]), n_bootstrap=300, seed=2,
                 bootstrap_method="runs")
    assert sum(len(c[2]) for c in calls) <= 35 and result.draws.shape == (300, 5)
    problem, u_hat, _, codes, _ = calls[0]
    every = real_chunk(problem, u_hat, bootmod.bootstrap_counts(4, 300, 2), codes)
    np.testing.assert_array_equal(result.draws, problem.param.to_theta(every))


def test_gadre_rpj_forecasts_within_one_percent():
    """Gadre et al.: fit 5 small RedPajama runs (alpha = beta tied), forecast the 1.4B M=640 and 6.9B M=20 runs."""
    df = pd.read_csv(shared_file("gadre", "gadre2024_final_losses.csv"))
    rpj = df[df["dataset"] == "rpj"]
    small = ["d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8"]
    train = rpj[(rpj["model"].isin(small) & (rpj["tok_mult"] == 20))
                | ((rpj["model"] == "d=96_l=8_h=4") & (rpj["tok_mult"] == 320))]
    assert len(train) == 5
    data = from_frame(train, columns={"params": "N", "tokens": "D", "loss": "loss_c4_val", "run": "name"},
                      required=["params", "tokens", "loss"])
    result = fit("chinchilla", data, ties={"beta": "alpha"})
    assert result.params["beta"].value == result.params["alpha"].value
    for model, mult in (("open_lm_1b", 640), ("open_lm_7b", 20)):
        row = rpj[(rpj["model"] == model) & (rpj["tok_mult"] == mult)].iloc[0]
        pred = result.predict(params=row["N"], tokens=row["D"]).value[0]
        assert abs(pred / row["loss_c4_val"] - 1) < 0.010, (model, mult, pred)


def test_kaplan_published_values():
    """Kaplan Table 2 constants: L(1e9, 1e10) = 2.41965 and L(1e8, 1e9) = 2.95673."""
    from scalefit.law import Columns

    law = get_law("kaplan")
    out = law.predict(law.reference_theta()[None], law.prepare(Columns(params=[1e9, 1e8], tokens=[1e10, 1e9])))[0]
    np.testing.assert_allclose(out, [2.41965, 2.95673], atol=1e-4)


def _synthetic(n_rep=1, noise=0.01, seed=0):
    law = get_law("chinchilla")
    inputs = law.example_inputs()
    y = law.predict(law.reference_theta()[None], law.prepare(inputs))[0]
    y = y * np.exp(np.random.default_rng(seed).normal(0, noise, y.size))
    frame = pd.DataFrame({"params": inputs.column("params"), "tokens": inputs.column("tokens"), "loss": y})
    return frame


def test_fixed_parameters_stay_fixed():
    """--set E=1.69 holds E exactly and reports it as fixed."""
    data = from_frame(_synthetic(), required=["params", "tokens", "loss"])
    result = fit("chinchilla", data, fixed={"E": 1.69}, n_bootstrap=10)
    assert result.params["E"].value == 1.69 and result.params["E"].status == "fixed"
    assert np.all(result.draws[:, 0] == 1.69)


def test_duplicated_rows_equal_weight_two():
    """A row given twice is the same as weight 2 on one copy (weights are relative: scaled to mean 1)."""
    frame = _synthetic()
    doubled = pd.concat([frame, frame.iloc[:5]], ignore_index=True)
    weighted = frame.assign(weight=[2.0] * 5 + [1.0] * (len(frame) - 5))
    a = fit("chinchilla", from_frame(doubled, required=["params", "tokens", "loss"]))
    b = fit("chinchilla", from_frame(weighted, required=["params", "tokens", "loss"]))
    w = weighted["weight"].to_numpy()
    assert a.objective == pytest.approx(b.objective * w.sum() / w.size, rel=1e-8)
    np.testing.assert_allclose(a.theta[[0, 3, 4]], b.theta[[0, 3, 4]], rtol=1e-5)


def test_huge_delta_is_least_squares():
    """Huber with a huge width is plain least squares."""
    data = from_frame(_synthetic(), required=["params", "tokens", "loss"])
    a = fit("chinchilla", data, delta=1e6)
    b = fit("chinchilla", data, loss="lsq")
    assert a.objective == pytest.approx(b.objective, rel=1e-8)


def test_robust_loss_is_huber():
    loss = RobustLoss("huber", 0.1)
    r = np.array([-1.0, -0.05, 0.0, 0.05, 1.0])
    np.testing.assert_allclose(loss.rho(r), [0.095, 0.00125, 0.0, 0.00125, 0.095])


def test_too_few_rows_and_unidentifiable_data_are_errors():
    frame = _synthetic().iloc[:4]
    with pytest.raises(FitError, match="need more rows than parameters"):
        fit("chinchilla", from_frame(frame, source="tiny.csv", required=["params", "tokens", "loss"]))
    one_size = _synthetic()
    one_size["params"] = 1e8
    with pytest.raises(DataError, match="cannot be identified"):
        fit("chinchilla", from_frame(one_size, source="one.csv", required=["params", "tokens", "loss"]))


def test_a_parameter_pushed_past_its_bound_is_held_and_the_others_take_their_newton_step():
    from scalefit.solver import hold_at_bounds

    H = np.array([[[4.0, 1.0], [1.0, 3.0]]] * 3)  # held: its row and column 0, its diagonal kept
    g = np.array([[2.0, 1.0], [-2.0, 1.0], [2.0, 1.0]])
    u = np.array([[0.0, 0.5], [0.0, 0.5], [0.3, 0.5]])  # rows 1-2 on the lower bound 0; row 2 pushed out
    g2, H2 = hold_at_bounds(u, g, H, np.zeros(2), np.ones(2))
    step = -np.linalg.solve(H2, g2[..., None])[..., 0]
    assert step[0, 0] == 0.0 and step[0, 1] == pytest.approx(-1.0 / 3.0)  # the reduced Newton step
    np.testing.assert_allclose(step[1:], -np.linalg.solve(H[1:], g[1:, :, None])[..., 0])  # pointing in / off it


@pytest.mark.parametrize("held", ["E", "alpha"])  # a linear coefficient; a parameter the projection steps
def test_a_fit_whose_optimum_lies_on_a_bound_converges_there(held):
    """The truth lies beyond a bound (E 1e-4 below E's 1e-3; alpha 0.34 above a bound narrowed to 0.3):
    both solvers end on the bound, converged, at scipy's bounded trust-region optimum or below; clipping
    the full step instead stopped the plain solver 14 % above it."""
    from scipy.optimize import least_squares

    from scalefit.lmfit_bridge import with_bounds
    from scalefit.parameterization import Parameterization
    from scalefit.solver import Problem, solve_batch
    from scalefit.varpro import solve

    law = get_law("chinchilla")
    inputs = law.example_inputs()
    truth = law.reference_theta().copy()
    if held == "E":
        truth[0] = 1e-4
    else:
        law = with_bounds(law, {"alpha": (0.01, 0.3)})
    y = law.predict(truth[None], law.prepare(inputs))[0] * np.exp(np.random.default_rng(1).normal(0, 0.003, len(inputs)))
    param = Parameterization(law)
    problem = Problem(law, law.prepare(inputs), y, None, param, RobustLoss("huber", 1e-3))
    start = param.clip(param.to_u(law.reference_theta()[None]))
    ref = least_squares(lambda x: problem.residuals(x[None])[0], start[0], bounds=(param.lo, param.hi), loss="huber",
                        f_scale=1e-3, method="trf", x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=5000)
    f_ref = problem.objective(ref.x[None])[0]
    j = law.param_names.index(held)
    bound = param.lo[j] if held == "E" else param.hi[j]
    for solver in (solve_batch, solve):
        u, f, converged = solver(problem, start, max_iter=200)
        assert converged[0] and u[0, j] == bound
        assert f[0] <= f_ref * (1 + 1e-9)
