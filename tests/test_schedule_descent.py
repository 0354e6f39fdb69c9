"""The schedule searches' own minimisers (scalefit.schedule.descent) against known answers and scipy."""

import subprocess
import sys

import numpy as np
import pytest

from scalefit.schedule.descent import minimize_box, minimize_interval


def _quadratic(n, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    h = m @ m.T / n + np.diag(np.geomspace(1e-2, 1e2, n))  # condition number ~1e4
    b = rng.normal(size=n) * 10
    return h, b, lambda x: (0.5 * x @ h @ x - b @ x, h @ x - b)


def test_box_quadratic_matches_scipy_bounded_solution():
    scipy_opt = pytest.importorskip("scipy.optimize")
    h, b, fg = _quadratic(40)
    lo, hi = -1.0, 0.0  # several bounds active at the solution
    res = minimize_box(fg, np.full(40, -0.5), lo, hi, max_iter=500)
    ref = scipy_opt.minimize(fg, np.full(40, -0.5), jac=True, method="L-BFGS-B", bounds=[(lo, hi)] * 40,
                             options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12})
    assert res.f <= ref.fun + 1e-9 * abs(ref.fun)
    np.testing.assert_allclose(res.x, ref.x, atol=1e-5)
    assert np.all((res.x >= lo) & (res.x <= hi))
    assert 0 < np.sum(res.x == hi) < 40  # the test exercises the active set


def test_box_unconstrained_reaches_the_solution_of_the_linear_system():
    h, b, fg = _quadratic(20, seed=1)
    res = minimize_box(fg, np.zeros(20), -1e9, 1e9, max_iter=500)
    np.testing.assert_allclose(res.x, np.linalg.solve(h, b), rtol=1e-6, atol=1e-6)


def test_box_concave_direction_grows_the_step_to_the_bound():
    # f = -sum(x^2) on [-1, 0.5]^3 from 0.1: concave, so the minimum is at the far corner
    fg = lambda x: (-float(x @ x), -2 * x)  # noqa: E731
    res = minimize_box(fg, np.full(3, 0.1), -1.0, 0.5)
    np.testing.assert_allclose(res.x, [0.5, 0.5, 0.5])


def test_interval_finds_the_minimum_of_a_parabola():
    x, fx = minimize_interval(lambda x: (x - 3.7) ** 2 + 1.0, 0.0, 10.0, xtol=1e-4)
    assert abs(x - 3.7) < 1e-4 and abs(fx - 1.0) < 1e-8


def test_schedule_optimize_imports_no_scipy():
    code = ("import sys; from scalefit.registry import get_law; from scalefit.schedule import curve_params, "
            "optimize_for; p = curve_params(law=get_law('multipower'), reference='400M'); "
            "r = optimize_for(p, peak=3e-4, steps=3000, warmup=300, max_iter=5); "
            "print(any(m.startswith('scipy') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
