"""The schedule optimiser's speed-critical parts: multipower's fused final-loss gradient against a plain
transcription of the law, the 400M optimum, and what one optimisation costs the process (fresh memory
pages, numpy.ma)."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from scalefit.registry import get_law
from scalefit.schedule import optimize_schedule, parse_schedule


@pytest.fixture(scope="module")
def mpl():
    return get_law("multipower")


def _plain_final_loss(theta, eta, convention="code", warmup=0):
    """L(T) of the Multi-Power Law written out term by term (laws/multipower.py's docstring)."""
    L0, A, alpha, Bs, C, beta, gamma = theta
    R = np.cumsum(eta[::-1])[::-1]
    gap = np.diff(eta, prepend=eta[0])
    if convention == "paper":
        gap[:warmup] = 0.0
    x = eta ** (-gamma) * R
    lg = np.log1p(C * x)  # H = (1 - (1 + C x)^-beta) / (C beta), without its cancellation at small C x
    H = lg / C if beta == 0 else -np.expm1(-beta * lg) / (C * beta)
    return L0 + A * eta.sum() ** (-alpha) + Bs * np.sum(gap * H)


@pytest.mark.parametrize("convention", ["code", "paper"])
@pytest.mark.parametrize("shape", [(0.6, 2.0), (0.0, 2.0), (0.6, 1e-6), (8.0, 5e3)])  # (beta, C)
def test_fused_gradient_matches_the_plain_law_and_central_differences(convention, shape):
    law = get_law("multipower").with_options(convention=convention)
    theta = law.reference_theta("100M").copy()
    theta[5], theta[4] = shape
    eta = parse_schedule("wsd:peak=3e-4,steps=80,warmup=10,warmup_start=0.1,cooldown=0.4,shape=sqrt,floor=2e-6").lr()
    loss, grad = law.final_loss_grad(theta, eta, 10)
    plain = _plain_final_loss(theta, eta, convention, 10)
    assert loss == pytest.approx(plain, rel=1e-13, abs=1e-13)
    assert law.final_loss(theta, eta, 10) == loss  # one code path: the same number to the bit
    h = 1e-10
    for j in range(eta.size):
        up, down = eta.copy(), eta.copy()
        up[j] += h
        down[j] -= h
        fd = (_plain_final_loss(theta, up, convention, 10) - _plain_final_loss(theta, down, convention, 10)) / (2 * h)
        assert grad[j] == pytest.approx(fd, rel=2e-5, abs=2e-6), j


def test_zero_learning_rates_give_finite_loss_and_gradient(mpl):
    # warm-up from exactly 0 and the last steps at exactly 0: eta^-gamma is clipped, never inf * 0
    eta = parse_schedule("cosine:peak=3e-4,steps=3000,warmup=200,floor=0").lr()
    eta[-5:] = 0.0
    assert eta[0] == 0
    loss, grad = mpl.final_loss_grad(mpl.reference_theta("400M"), eta, 200)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(mpl.curve(mpl.reference_theta("400M"), eta, [eta.size - 1])[0, 0], abs=1e-9)


def test_400m_optimum_and_the_searches_behind_it(mpl):
    res = optimize_schedule(mpl, mpl.reference_theta("400M"), peak=3e-4, steps=24000, warmup=2160, floor=0.0)
    assert res.final_loss <= 2.688985  # the official optimiser's schedule: 2.689053
    assert res.iterations == 150 and len(res.trace) < 260
    assert mpl.curve(mpl.reference_theta("400M"), res.lr, [23999])[0, 0] == pytest.approx(res.final_loss, abs=1e-9)
    # the WSD grid and its refinement are unchanged: the same winner, the same number
    assert res.best_wsd[0].options == {"cooldown": 3468, "shape": "cosine", "floor": pytest.approx(3e-6)}
    assert res.best_wsd[1] == pytest.approx(2.689289537377, abs=1e-11)
    assert res.best_cosine[1] == pytest.approx(2.756774860145, abs=1e-11)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the page reuse concerns glibc's malloc")
def test_an_optimisation_reuses_memory_pages_and_skips_numpy_ma():
    # A fresh process, as the command runs: before the first optimisation returned them to the system,
    # every law evaluation faulted its arrays' pages in again (about 240 minor faults per evaluation).
    code = ("import resource, sys; from scalefit.registry import get_law; "
            "from scalefit.schedule import optimize_schedule; law = get_law('multipower'); "
            "th = law.reference_theta('400M'); "
            "run = lambda: optimize_schedule(law, th, peak=3e-4, steps=24000, warmup=2160, max_iter=20); run(); "
            "a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; r = run(); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a, len(r.trace), 'numpy.ma' in sys.modules)")
    # glibc keeps its thresholds fixed when MALLOC_* tunables are set (dask's cluster sets
    # MALLOC_TRIM_THRESHOLD_ in os.environ for its workers): measure the allocator's defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    faults, evaluations, numpy_ma = int(out[0]), int(out[1]), out[2]
    assert evaluations > 20
    assert faults < 2000  # ~300 law evaluations (WSD grid, cosine, optimiser); 77,000 faults without reuse
    assert numpy_ma == "False"  # np.unique would import it (20 ms of the command)
