"""Naming the parameters that the data do not determine (scalefit.identify)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalefit.data import from_frame
from scalefit.identify import _identify, undetermined
from scalefit.law import Param, law
from scalefit.parameterization import Parameterization
from scalefit.registry import get_law
from scalefit.solver import Problem, RobustLoss, solve_batch


@law(inputs={"N": "params"},
     params={"E": Param((1e-3, 20.0), [1.0], log=True), "A": Param((1e-6, 1e6), [10.0], log=True),
             "B": Param((1e-6, 1e6), [10.0], log=True), "alpha": Param((0.0, 3.0), [0.3])})
def confounded(N, *, E, A, B, alpha):
    """L = E + A B / N^alpha: only the product A B is determined."""
    return E + A * B / N**alpha


@law(inputs={"N": "params"},
     params={"E": Param((1e-3, 20.0), [1.0], log=True), "A": Param((0.0, 1e3), [1.0]),
             "alpha": Param((0.0, 3.0), [0.3])})
def power(N, *, E, A, alpha):
    """L = E + A / N^alpha, A on a linear scale (bounded below by 0)."""
    return E + A / N**alpha


def _optimum(law_, frame, start, fixed=None, ties=None):
    """The problem at the optimum reached from ``start`` (natural units, every parameter), as fit builds it."""
    data = from_frame(frame, required=[*law_.inputs, "loss"])
    param = Parameterization(law_, fixed, ties)
    problem = Problem(law_, law_.prepare(data), data.column("loss"), data.weights(), param, RobustLoss("huber", 1e-3))
    u, _, _ = solve_batch(problem, param.to_u(np.asarray(start, dtype=float)), max_iter=400)
    return problem, u[0]


def _curve(law_, theta, n, noise, seed=0):
    N = np.geomspace(1e6, 1e10, n)
    y = law_.predict(np.asarray(theta, dtype=float)[None], {"N": N})[0]
    return pd.DataFrame({"params": N, "loss": y * np.exp(np.random.default_rng(seed).normal(0, noise, n))})


@pytest.mark.parametrize("noise", [0.003, 0.0], ids=["noisy", "noise-free"])
def test_an_exactly_confounded_pair_is_named_and_nothing_else(noise):
    """A and B enter only as A * B: both are named; E and alpha, well determined, are not."""
    frame = _curve(confounded, [1.5, 30.0, 20.0, 0.3], 30, noise)
    problem, u_hat = _optimum(confounded, frame, [[1.2, 10.0, 10.0, 0.25]])
    assert undetermined(problem, u_hat) == ["A", "B"]
    info = _identify(problem, u_hat)
    assert info.singular[-1] < 1e-10  # the exact confound is a null direction of the Jacobian
    assert info.quadratic["E"] > 30 * info.threshold and info.quadratic["alpha"] > 30 * info.threshold


def test_holding_one_of_the_pair_determines_the_other():
    """With B fixed (``fixed=``), A carries the product alone and is determined: nothing is named."""
    frame = _curve(confounded, [1.5, 30.0, 20.0, 0.3], 30, 0.003)
    problem, u_hat = _optimum(confounded, frame, [[1.2, 10.0, 20.0, 0.25]], fixed={"B": 20.0})
    assert undetermined(problem, u_hat) == []


def test_a_well_determined_chinchilla_fit_names_nothing():
    """Chinchilla's published law on the 8 x 8 example grid with 1 % noise: every parameter is determined."""
    chin = get_law("chinchilla")
    inputs = chin.example_inputs()
    theta = chin.reference_theta()
    y = chin.predict(theta[None], chin.prepare(inputs))[0] * np.exp(np.random.default_rng(0).normal(0, 0.01, 64))
    frame = pd.DataFrame({"params": inputs.column("params"), "tokens": inputs.column("tokens"), "loss": y})
    problem, u_hat = _optimum(chin, frame, theta[None])
    info = _identify(problem, u_hat)
    assert info.names == []
    assert all(min(p) > info.threshold for p in info.profile.values())


def test_chinchilla_with_two_model_sizes_names_the_model_size_terms():
    """Two model sizes give two numbers for E + A / N^alpha: E, A and alpha are confounded."""
    chin = get_law("chinchilla")
    N, D = np.meshgrid([4e8, 3e9], np.geomspace(5e9, 2e11, 6), indexing="ij")
    theta = chin.reference_theta()
    frame = pd.DataFrame({"params": N.ravel(), "tokens": D.ravel()})
    y = chin.predict(theta[None], chin.prepare(from_frame(frame, required=["params", "tokens"])))[0]
    frame["loss"] = y * np.exp(np.random.default_rng(1).normal(0, 0.003, N.size))
    problem, u_hat = _optimum(chin, frame, theta[None])
    assert undetermined(problem, u_hat) == ["E", "A", "alpha"]  # B, beta: the data term is well sampled


def test_a_parameter_at_a_bound_is_not_named_but_what_it_silences_is():
    """Flat data drive A to its bound 0: A is left to the fit's at-bound report; alpha, which then has no
    effect at all, is named."""
    N = np.geomspace(1e6, 1e10, 20)
    y = 2.0 * np.exp(np.random.default_rng(2).normal(0, 0.003, N.size))
    problem, u_hat = _optimum(power, pd.DataFrame({"params": N, "loss": y}), [[2.0, 0.0, 0.3]])
    info = _identify(problem, u_hat)
    assert info.at_bound == ["A"]
    assert info.names == ["alpha"]


def test_loss_curves_allow_for_correlated_neighbours():
    """Runs given: the lag-1 correlation of the residuals within runs inflates the threshold."""
    frame = _curve(confounded, [1.5, 30.0, 20.0, 0.3], 30, 0.0)
    frame["loss"] *= np.exp(0.003 * np.sin(np.linspace(0, 3, 30)))  # a smooth misfit, as curves have
    problem, u_hat = _optimum(confounded, frame, [[1.2, 10.0, 10.0, 0.25]])
    alone = _identify(problem, u_hat)
    curves = _identify(problem, u_hat, runs=np.zeros(30, dtype=int))
    assert alone.rho == 0.0 and curves.rho > 0.5
    assert curves.threshold > 3 * alone.threshold


def test_bad_options_are_refused():
    frame = _curve(confounded, [1.5, 30.0, 20.0, 0.3], 30, 0.003)
    problem, u_hat = _optimum(confounded, frame, [[1.2, 10.0, 10.0, 0.25]])
    with pytest.raises(ValueError, match="factor"):
        undetermined(problem, u_hat, factor=1.0)
    with pytest.raises(ValueError, match="level"):
        undetermined(problem, u_hat, level=1.0)
