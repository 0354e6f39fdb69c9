"""The data-constrained law (Muennighoff et al. 2023): published numbers, its reduction to Chinchilla, the
unique-tokens role, forecasts under a unique-data limit, and fits on the datablations runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, ok_json, run
from conftest import shared_file

from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.forecast import forecast
from scalefit.law import Columns
from scalefit.registry import get_law

LAW = get_law("data_constrained")
C4 = LAW.reference_theta("muennighoff_c4")
ROLES = ["params", "tokens", "unique_tokens", "loss"]


def _loss(theta, n, d, u):
    return LAW.predict(np.atleast_2d(theta), LAW.prepare(Columns(params=n, tokens=d, unique_tokens=u)))


def test_published_c4_constants_give_the_published_losses():
    # The authors' README (huggingface/datablations, "Parametric Fit"): the two models of their Figure 1.
    assert _loss(C4, [6.34e9, 8.67e9], [242e9, 178e9], [25e9, 25e9])[0] == pytest.approx(
        [2.2256440889984477, 2.2269634075087867], rel=1e-12)
    # Reference §0 (laws_nd.md): unique data and N at most compute-optimal is Chinchilla, L(70B, 1.4T) = 2.0246.
    assert _loss(C4, 70e9, 1.4e12, 1.4e12)[0, 0] == pytest.approx(2.0246, abs=5e-5)
    assert dict(zip(LAW.param_names, C4))["E"] == pytest.approx(1.8691, abs=1e-4)


def test_compute_optimal_allocation_matches_the_reference_and_the_authors():
    # Unlimited unique data: §0's C = 5.76e23 row (N_opt 6.996e10, D_opt 1.372e12, L 2.0252).
    fc = forecast(LAW, C4, compute=5.76e23, unique_tokens=1e15)
    assert fc.params.value == pytest.approx(6.996e10, rel=1e-3)
    assert fc.tokens.value == pytest.approx(1.372e12, rel=1e-3)
    assert fc.loss.value == pytest.approx(2.0252, abs=5e-5)
    # 25B unique tokens at the compute of 8.67B params x 178B tokens: the authors' README finds
    # "227B tokens, 9.1 epochs, 6.8B parameters" by grid search.
    fc = forecast(LAW, C4, compute=6 * 8.67e9 * 178e9, unique_tokens=25e9)
    assert fc.params.value == pytest.approx(6.8e9, rel=0.01)
    assert fc.tokens.value == pytest.approx(227e9, rel=0.01)
    assert fc.repetition["epochs"]["value"] == pytest.approx(9.1, abs=0.05)
    # ... and that allocation beats the one the authors trained (their Figure 1).
    assert fc.loss.value < _loss(C4, 8.67e9, 178e9, 25e9)[0, 0]
    # Nine epochs are worth less than nine times the data: D' < D, and N' < N past N_opt(U).
    assert fc.repetition["effective_tokens"]["value"] < fc.tokens.value
    assert fc.repetition["effective_params"]["value"] < fc.params.value


def test_single_epoch_runs_reduce_to_chinchilla_exactly():
    chin = get_law("chinchilla")
    epoch = dict(zip(chin.param_names, chin.reference_theta("epoch")))
    n = np.repeat([1e8, 3e8, 1e9, 3e9], 3)
    d = n * np.tile([50.0, 100.0, 400.0], 4)  # at or past compute-optimal data: N <= N_opt(D)
    chin_pred = chin.predict(chin.reference_theta("epoch")[None], chin.prepare(Columns(params=n, tokens=d)))
    for rd, rn in ((15.4, 5.3), (0.5, 0.1), (300.0, 1e3)):
        theta = np.array([[*epoch.values(), rd, rn]])
        for u in (d, 10 * d):  # exactly one epoch, or a pool larger than the run
            design = LAW.prepare(Columns(params=n, tokens=d, unique_tokens=u))
            np.testing.assert_array_equal(LAW.predict(theta, design), chin_pred)
            jac = LAW.jacobian(theta, design)
            assert not jac[..., 5:].any()  # R*_D and R*_N have no say without repeats or excess parameters

    # Fitted on such a table, it finds Chinchilla's optimum: same objective, same predictions.
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"params": n, "tokens": d, "unique_tokens": d,
                          "loss": chin_pred[0] * np.exp(rng.normal(0, 0.003, n.size))})
    data = from_frame(frame, required=ROLES)
    dc = fit(LAW, data, identify=False)
    ch = fit(chin, data, identify=False)
    assert dc.objective == pytest.approx(ch.objective, rel=1e-4)
    np.testing.assert_allclose(dc.predict(data).value, ch.predict(data).value, rtol=2e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jacobian_matches_finite_differences_off_the_reference(seed):
    """alpha != beta, both decays active: the cap N_opt(U) moves with A, B, alpha and beta."""
    rng = np.random.default_rng(seed)
    theta = np.array([[rng.uniform(1.5, 2.5), np.exp(rng.uniform(4, 8)), np.exp(rng.uniform(4, 8)),
                       rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5), rng.uniform(2, 30), rng.uniform(1, 10)]])
    design = LAW.prepare(LAW.example_inputs())
    jac = LAW.jacobian(theta, design)
    for j in range(LAW.n_params):
        h = 1e-6 * theta[0, j]
        up, down = theta.copy(), theta.copy()
        up[0, j] += h
        down[0, j] -= h
        fd = (LAW.predict(up, design) - LAW.predict(down, design)) / (2 * h)
        np.testing.assert_allclose(jac[..., j], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_unique_tokens_role_and_its_aliases():
    base = {"params": [1e8, 2e8, 4e8], "tokens": [2e9, 4e9, 8e9], "loss": [3.0, 2.9, 2.8]}
    for name in ("unique_tokens", "tokens_per_epoch", "U", "Unique Tokens"):
        data = from_frame(pd.DataFrame({**base, name: [1e9, 1e9, 1e9]}), required=ROLES)
        assert data.columns["unique_tokens"] == name and data.column("unique_tokens")[0] == 1e9
    with pytest.raises(DataError, match="missing column for 'unique_tokens'"):
        from_frame(pd.DataFrame(base), required=ROLES)
    with pytest.raises(DataError, match="zero or negative"):
        from_frame(pd.DataFrame({**base, "unique_tokens": [1e9, 0.0, 1e9]}), required=ROLES)


def test_forecast_needs_unique_tokens_and_only_this_law_takes_them():
    with pytest.raises(DataError, match="^law 'data_constrained' models repeated data: give unique_tokens") as info:
        forecast(LAW, C4, compute=1e21)
    assert info.value.options == ("unique_tokens",)
    chin = get_law("chinchilla")
    with pytest.raises(DataError, match="assumes every training token is new"):
        forecast(chin, chin.reference_theta(), compute=1e21, unique_tokens=1e10)
    with pytest.raises(DataError, match="^unique_tokens=-1"):
        forecast(LAW, C4, compute=1e21, unique_tokens=-1)


def test_cli_predict_unique_tokens(tmp_path):
    out = ok_json("predict", "--law", "data_constrained", "--reference", "--compute", 6 * 8.67e9 * 178e9,
                  "--unique-tokens", "25B")
    assert out["mode"] == "compute-optimal" and out["repetition"]["unique_tokens"] == 25e9
    assert out["repetition"]["epochs"]["value"] == pytest.approx(9.1, abs=0.05)
    res = run("predict", "--law", "data_constrained", "--reference", "--params", "7B", "--tokens", "1.4T", "-U", "100B")
    assert res.exit_code == 0 and "epochs over the unique tokens" in res.stdout and "14" in res.stdout
    assert_clean_error(run("predict", "--law", "data_constrained", "--reference", "--compute", "1e21"),
                       "give --unique-tokens")
    assert_clean_error(run("predict", "--law", "chinchilla", "--reference", "--compute", "1e21", "-U", "10B"),
                       "--unique-tokens needs a law of repeated data")
    assert_clean_error(run("predict", "--law", "data_constrained", "--reference", "--compute", "1e21", "-U", "0"),
                       "must be positive")
    runs = tmp_path / "runs.csv"
    pd.DataFrame({"params": [1e8, 2e8, 4e8, 8e8], "tokens": [2e9, 4e9, 8e9, 2e10],
                  "loss": [3.0, 2.9, 2.8, 2.7]}).to_csv(runs, index=False)
    assert_clean_error(run("fit", runs, "--law", "data_constrained"), "missing column for 'unique_tokens'")


def _datablations_final():
    """The C4 repetition runs of Muennighoff et al. (3 sizes x 8 epoch counts), each at its last checkpoint."""
    df = pd.read_csv(shared_file("hitchhiker", "datablations_losses.csv"))
    df = df[df["data"] == "c4"].sort_values("token_num").groupby("model_args").tail(1)
    return from_frame(df, source="datablations c4", columns={"run": "model_args"}, required=ROLES)


def test_fit_on_the_datablations_runs_credits_repeats_and_beats_chinchilla():
    data = _datablations_final()
    assert data.n_runs == 24 and np.ptp(data.column("tokens") / data.column("unique_tokens")) > 40
    dc = fit(LAW, data, identify=False)
    ch = fit(get_law("chinchilla"), data, identify=False)
    # Chinchilla cannot see that 44 epochs of 1.25B tokens are worth less than 55B new ones.
    assert dc.diagnostics["rmse_log"] < 0.5 * ch.diagnostics["rmse_log"]
    p = {k: v.value for k, v in dc.params.items()}
    # Repeats keep some value (R*_D well above 0) but far less than new data (an epoch-44 run's effective
    # data is a fraction of its tokens).
    assert 0.5 < p["rd_star"] < 50
    eff = LAW.effective(dc.theta[None], 2.8e9, 55e9, 1.25e9)["tokens"][0, 0]
    assert 1.25e9 < eff < 0.5 * 55e9
