"""Laws of issue 3: farseer, sparse_avg, loss_to_loss, kaplan_e (shapes, Jacobians, recovery)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalefit.data import from_frame
from scalefit.errors import DataError
from scalefit.fit import fit
from scalefit.pruning import average_params
from scalefit.registry import get_law

MY_LAWS = ("farseer", "sparse_avg", "loss_to_loss", "kaplan_e")


def _design_data(name, n=12, seed=0):
    rng = np.random.default_rng(seed)
    law = get_law(name)
    if name == "loss_to_loss":
        frame = pd.DataFrame({"loss_x": rng.uniform(2.1, 3.5, n), "loss_y": 1.0})
    else:
        col = "params_avg" if name == "sparse_avg" else "params"
        frame = pd.DataFrame({col: 10 ** rng.uniform(7, 10, n), "tokens": 10 ** rng.uniform(9, 12, n), "loss": 1.0})
    return law, from_frame(frame, required=[*law.inputs, law.target])


@pytest.mark.parametrize("name", MY_LAWS)
def test_predict_broadcasts_and_jacobian_matches_finite_differences(name):
    law, data = _design_data(name)
    design = law.prepare(data)
    ref = law.reference_theta()
    rng = np.random.default_rng(1)
    theta = ref[None] * (1 + 0.05 * rng.standard_normal((3, ref.size)))
    lo, hi = law.bounds_array()
    theta = np.clip(theta, lo, hi)
    out = law.predict(theta, design)
    assert out.shape == (3, len(data)) and np.all(np.isfinite(out))
    assert np.allclose(law.predict(theta[1], design)[0], out[1])
    jac = law.jacobian(theta, design)
    assert jac.shape == (3, len(data), ref.size)
    for j in range(ref.size):
        h = 1e-6 * max(1.0, abs(theta[0, j]))
        up, dn = theta[:1].copy(), theta[:1].copy()
        up[0, j] += h
        dn[0, j] -= h
        fd = (law.predict(up, design) - law.predict(dn, design))[0] / (2 * h)
        np.testing.assert_allclose(jac[0, :, j], fd, rtol=1e-4, atol=1e-7 * np.abs(out[0]).max(),
                                   err_msg=f"{name}: d/d{law.param_names[j]}")


# ------------------------------------------------------------------------------------ sparse_avg
def _discrete_average(params, s_f, u_s, u_e, q, steps=100_000):
    t = (np.arange(steps) + 0.5) / steps  # midpoint of each training step
    v = np.clip((t - u_s) / (u_e - u_s), 0.0, 1.0)
    sparsity = s_f * (1 - (1 - v) ** 3)
    return np.mean(q + (params - q) * (1 - sparsity))


@pytest.mark.parametrize("s_f,u_s,u_e,q", [(0.8, 0.25, 0.75, 0.0), (0.5, 0.1, 0.9, 2e7), (0.9, 0.0, 1.0, 1e8),
                                           (0.6, 0.3, 0.3 + 1e-9, 0.0)])
def test_closed_form_matches_discrete_schedule(s_f, u_s, u_e, q):
    params = 1.4e8
    closed = average_params(params, s_f, u_s, u_e, q)
    assert closed == pytest.approx(_discrete_average(params, s_f, u_s, u_e, q), rel=1e-3)


def test_closed_form_25_75_window():
    # Jin et al.'s recommended window: N_avg = Q + P (1 - 0.625 s_f).
    assert average_params(1e9, 0.8, 0.25, 0.75, 1e8) == pytest.approx(1e8 + 9e8 * (1 - 0.625 * 0.8))


def _pruning_frame(rng, n_sizes=6, dense_only=False):
    rows = []
    for n in np.geomspace(3e7, 3e9, n_sizes):
        for d in np.geomspace(2e9, 2e11, 4):
            for s in ([0.0] if dense_only else [0.0, 0.5, 0.8]):
                rows.append({"params": n, "tokens": d, "final_sparsity": s, "prune_start": 0.25, "prune_end": 0.75,
                             "params_unprunable": 0.1 * n})
    return pd.DataFrame(rows)


def test_pruning_columns_load_as_params_avg():
    frame = _pruning_frame(np.random.default_rng(0))
    frame["loss"] = 3.0
    data = from_frame(frame, required=["params_avg", "tokens", "loss"])
    expected = frame.params * 0.1 + frame.params * 0.9 * (1 - 0.625 * frame.final_sparsity)
    np.testing.assert_allclose(data.column("params_avg"), expected, rtol=1e-12)
    dense = frame.final_sparsity == 0
    assert np.array_equal(data.column("params_avg")[dense], frame.params[dense].to_numpy())  # exact


@pytest.mark.parametrize("column,value,needle", [("final_sparsity", 1.2, "final_sparsity"),
                                                 ("prune_end", 0.1, "prune_end"),
                                                 ("params_unprunable", 1e12, "params_unprunable")])
def test_bad_pruning_values_are_one_line_data_errors(column, value, needle):
    frame = _pruning_frame(np.random.default_rng(0)).head(3).copy()
    frame["loss"] = 3.0
    frame.loc[1, column] = value
    with pytest.raises(DataError, match=needle) as exc:
        from_frame(frame, source="runs.csv", required=["params_avg", "tokens", "loss"])
    assert "\n" not in str(exc.value) and "row 2" in str(exc.value)


def test_incomplete_pruning_columns_name_what_is_missing():
    frame = pd.DataFrame({"params": [1e8, 2e8, 4e8], "tokens": [1e9, 2e9, 4e9], "loss": 3.0, "final_sparsity": 0.5})
    with pytest.raises(DataError, match="prune_start, prune_end"):
        from_frame(frame, source="runs.csv", required=["params_avg", "tokens", "loss"])


def test_dense_rows_fit_identically_to_chinchilla():
    rng = np.random.default_rng(3)
    frame = _pruning_frame(rng, dense_only=True)
    chin = get_law("chinchilla")
    base = from_frame(frame.assign(loss=1.0), required=["params", "tokens", "loss"])
    y = chin.predict(chin.reference_theta()[None], chin.prepare(base))[0] * np.exp(rng.normal(0, 0.005, len(frame)))
    frame["loss"] = y
    dense_fit = fit("chinchilla", from_frame(frame, required=["params", "tokens", "loss"]))
    avg_fit = fit("sparse_avg", from_frame(frame, required=["params_avg", "tokens", "loss"]))
    assert np.array_equal(dense_fit.theta, avg_fit.theta)
    assert dense_fit.objective == avg_fit.objective


def test_sparse_avg_synthetic_recovery():
    rng = np.random.default_rng(4)
    frame = _pruning_frame(rng)
    law = get_law("sparse_avg")
    data = from_frame(frame.assign(loss=1.0), required=["params_avg", "tokens", "loss"])
    truth = np.array([1.8, 480.0, 2000.0, 0.35, 0.37])
    frame["loss"] = law.predict(truth[None], law.prepare(data))[0] * np.exp(rng.normal(0, 0.002, len(frame)))
    res = fit(law, from_frame(frame, required=["params_avg", "tokens", "loss"]))
    est = dict(zip(law.param_names, res.theta))
    assert est["E"] == pytest.approx(1.8, abs=0.03)
    assert est["alpha"] == pytest.approx(0.35, abs=0.02)
    assert est["beta"] == pytest.approx(0.37, abs=0.02)
    # Sparse runs are what make N_avg matter: a 70B model pruned to 80 % from 25-75 %.
    probe = from_frame(pd.DataFrame({"params_avg": [average_params(7e10, 0.8, 0.25, 0.75)], "tokens": [1.4e12],
                                     "loss": 1.0}), required=["params_avg", "tokens", "loss"])
    want = law.predict(truth[None], law.prepare(probe))[0, 0]
    got = law.predict(res.theta[None], law.prepare(probe))[0, 0]
    assert got == pytest.approx(want, rel=0.01)


# ------------------------------------------------------------------------------------ farseer
def _farseer_grid(noise, seed=0):
    law = get_law("farseer")
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(5e7, 5e9, 7), 6)
    d = np.tile(np.geomspace(1e9, 2e11, 6), 7)
    data = from_frame(pd.DataFrame({"params": n, "tokens": d, "loss": 1.0}), required=["params", "tokens", "loss"])
    truth = law.reference_theta("illustrative")
    clean = law.predict(truth[None], law.prepare(data))[0]
    data.frame["loss"] = clean * np.exp(rng.normal(0, noise, clean.size))
    return law, data, truth


def test_farseer_reference_gives_plausible_losses():
    law, data, _ = _farseer_grid(0.0)
    y = data.column("loss")
    assert 1.9 < y.min() and y.max() < 4.0
    assert np.all(np.diff(y.reshape(7, 6), axis=1) < 0)  # more data helps
    assert np.all(np.diff(y.reshape(7, 6), axis=0) < 0)  # bigger models help


def test_farseer_differential_starts_land_near_the_truth():
    law, data, truth = _farseer_grid(0.0)
    design = law.prepare(data)
    starts = law.start_points(design, data.column("loss"))
    assert starts is not None and starts.shape[1] == 9
    best = np.abs(law.predict(starts, design) / data.column("loss") - 1).max(axis=1).min()
    assert best < 0.02  # within 2 % everywhere before any joint optimisation


def test_farseer_synthetic_recovery():
    law, data, truth = _farseer_grid(0.002, seed=1)
    res = fit(law, data)
    # Parameters trade off along ridges (a n^e with e -> 0); compare the surface, in and out of range.
    probe = from_frame(pd.DataFrame({"params": [5e7, 1e9, 5e9, 2e10, 2e10], "tokens": [1e9, 2e10, 2e11, 4e11, 1e12],
                                     "loss": 1.0}), required=["params", "tokens", "loss"])
    want = law.predict(truth[None], law.prepare(probe))[0]
    got = law.predict(res.theta[None], law.prepare(probe))[0]
    np.testing.assert_allclose(got[:3], want[:3], rtol=3e-3)
    np.testing.assert_allclose(got[3:], want[3:], rtol=2e-2)
    assert res.objective <= 1.2 * fit(law, data, start=truth).objective


def test_farseer_warns_when_sizes_cannot_identify_it():
    law = get_law("farseer")
    frame = pd.DataFrame({"params": [1e8] * 4 + [1e9] * 4, "tokens": [1e9, 3e9, 1e10, 3e10] * 2, "loss": 3.0})
    data = from_frame(frame, required=["params", "tokens", "loss"])
    with pytest.warns(UserWarning, match="2 model sizes"):
        law.check_identifiable(data)


# ------------------------------------------------------------------------------------ kaplan_e, loss_to_loss
def test_kaplan_e_recovers_reference_surface():
    law = get_law("kaplan_e")
    rng = np.random.default_rng(5)
    n = 10 ** rng.uniform(7.3, 9.3, 80)
    d = 10 ** rng.uniform(9.0, 11.0, 80)
    data = from_frame(pd.DataFrame({"params": n, "tokens": d, "loss": 1.0}), required=["params", "tokens", "loss"])
    truth = law.reference_theta("fineweb_edu")
    data.frame["loss"] = law.predict(truth[None], law.prepare(data))[0] * np.exp(rng.normal(0, 0.003, 80))
    res = fit(law, data)
    est = dict(zip(law.param_names, res.theta))
    assert est["E"] == pytest.approx(truth[0], abs=0.05)
    assert est["beta"] == pytest.approx(truth[4], abs=0.05)


def test_loss_to_loss_generic_fit_with_fixed_entropies():
    law = get_law("loss_to_loss")
    rng = np.random.default_rng(6)
    x = rng.uniform(2.1, 3.6, 60)
    y = 0.6 * (x - 1.97) ** 1.07 + 1.32
    frame = pd.DataFrame({"loss_x": x, "loss_y": y * np.exp(rng.normal(0, 1e-3, 60))})
    data = from_frame(frame, required=["loss_x", "loss_y"])
    res = fit(law, data, fixed={"E_x": 1.97, "E_y": 1.32})
    est = dict(zip(law.param_names, res.theta))
    assert est["kappa"] == pytest.approx(1.07, abs=0.01)
    assert est["K"] == pytest.approx(0.6, rel=0.01)
    assert est["E_x"] == 1.97 and est["E_y"] == 1.32
