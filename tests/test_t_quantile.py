"""The Student-t quantile scalefit computes itself (scalefit.stats._t_quantile), against scipy and tables."""

import pytest

from scalefit.stats import _t_quantile, stretch_factor


@pytest.mark.parametrize("df, expected", [(1, 12.706204736), (2, 4.302652730), (3, 3.182446305),
                                          (10, 2.228138852), (30, 2.042272456), (120, 1.979930405)])
def test_published_97_5_percent_points(df, expected):
    assert _t_quantile(0.975, df) == pytest.approx(expected, abs=1e-8)


def test_matches_scipy_over_degrees_of_freedom_and_levels():
    special = pytest.importorskip("scipy.special")
    for df in list(range(1, 120)) + [235, 999, 1000, 1001, 5000, 10**6]:
        for p in (0.6, 0.8, 0.9, 0.95, 0.975, 0.995, 0.9995, 0.025):
            assert _t_quantile(p, df) == pytest.approx(float(special.stdtrit(df, p)), rel=1e-10)


def test_far_tail_of_few_degrees_of_freedom():
    special = pytest.importorskip("scipy.special")
    for df, p in ((3, 1 - 1e-10), (2, 1 - 1e-9), (5, 1 - 1e-9)):  # beyond the first bracket's end
        assert _t_quantile(p, df) == pytest.approx(float(special.stdtrit(df, p)), rel=1e-6)


def test_symmetric_and_rejects_nonsense():
    assert _t_quantile(0.1, 7) == -_t_quantile(0.9, 7)
    with pytest.raises(ValueError):
        _t_quantile(0.975, 0)
    with pytest.raises(ValueError):
        _t_quantile(1.0, 5)


def test_stretch_factor_is_t_over_z():
    assert stretch_factor(25, 5, 0.95) == pytest.approx(2.085963447 / 1.959963985, rel=1e-9)
    assert stretch_factor(10**7, 5, 0.95) == pytest.approx(1.0, abs=1e-6)
