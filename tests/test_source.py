"""scalefit.source.resolve: parameters from a fit.json, or from a law's published or given values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from scalefit.errors import DataError
from scalefit.registry import get_law
from scalefit.source import ParamSource, resolve


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory):
    from scalefit.data import from_frame
    from scalefit.fit import fit
    from scalefit.law import Columns

    law = get_law("chinchilla")
    theta = law.reference_theta()
    n = np.repeat(np.geomspace(5e7, 5e9, 6), 4)
    d = np.tile(np.geomspace(1e9, 2e11, 4), 6)
    y = law.predict(theta[None], law.prepare(Columns(params=n, tokens=d)))[0]
    y = y * np.exp(0.005 * np.random.default_rng(0).standard_normal(n.size))
    ds = from_frame(pd.DataFrame({"params": n, "tokens": d, "loss": y}), required=["params", "tokens", "loss"])
    path = tmp_path_factory.mktemp("source") / "fit.json"
    fit("chinchilla", ds, n_bootstrap=10, seed=0).save(path)
    return path


def test_a_fit_gives_its_values_draws_and_provenance(fit_json):
    from scalefit.result import load_fit

    fit = load_fit(fit_json)
    src = resolve(str(fit_json))
    assert isinstance(src, ParamSource) and src.fit is not None
    assert src.law.name == "chinchilla" and src.source == str(fit_json)
    np.testing.assert_array_equal(src.theta, fit.theta)
    np.testing.assert_array_equal(src.draws, fit.draws)
    assert src.ci == fit.ci and src.stretch == fit.stretch
    assert src.residual_scale == fit.diagnostics.get("residual_scale_log")
    assert dict(src.units) == fit.units and "params" in src.ranges
    assert resolve(str(fit_json), ci=0.8).ci == 0.8
    with pytest.raises(dataclasses.FrozenInstanceError):
        src.ci = 0.5  # type: ignore[misc]


def test_law_with_reference_gives_the_published_values():
    law = get_law("chinchilla")
    first = next(iter(law.reference))
    src = resolve(law="chinchilla", reference="default")
    np.testing.assert_array_equal(src.theta, law.reference_theta())
    assert src.draws is None and src.fit is None and src.ci == 0.95 and src.stretch == 1.0
    assert src.residual_scale is None and dict(src.units) == {} and dict(src.ranges) == {}
    assert src.source == f"chinchilla published values ({first})"
    # --law alone: an error unless the command takes the first set by default.
    with pytest.raises(DataError, match="give fit_path=fit.json, or law=NAME with reference"):
        resolve(law="chinchilla")
    assert resolve(law="chinchilla", default_reference=True).source == src.source


def test_set_values_replace_or_give_every_parameter(fit_json):
    law = get_law("chinchilla")
    every = dict(zip(law.param_names, law.reference_theta() * 1.01))
    src = resolve(law="chinchilla", set_values=every)
    np.testing.assert_allclose(src.theta, law.reference_theta() * 1.01)
    assert src.source == "--set values" and src.draws is None
    with pytest.raises(DataError, match="no value for"):
        resolve(law="chinchilla", set_values={"E": 1.7})
    with pytest.raises(DataError, match="no such parameter"):
        resolve(law="chinchilla", reference="default", set_values={"Q": 1.0})
    one = resolve(law="chinchilla", reference="default", set_values={"E": 1.5})
    assert one.theta[law.param_names.index("E")] == 1.5
    # Over a fit, --set drops the draws (they no longer describe the values) and says so; the fit is untouched.
    fitted = resolve(str(fit_json), set_values={"E": 1.5})
    assert fitted.draws is None and fitted.notes and fitted.fit.draws is not None
    assert fitted.fit.theta[law.param_names.index("E")] != 1.5


@pytest.mark.parametrize("set_values, default_reference, message", [
    (None, False, "give either fit_path or law with reference, not both"),
    (None, True, r"give either fit_path or law \(with reference\), not both"),
    ({}, False, r"give either fit_path or law \(with reference or set_values\), not both"),
])
def test_fit_and_law_together_is_refused(fit_json, set_values, default_reference, message):
    with pytest.raises(DataError, match=message):
        resolve(str(fit_json), law="chinchilla", reference="default", set_values=set_values,
                default_reference=default_reference)
    with pytest.raises(DataError, match=message):  # --reference alone beside --fit is refused too
        resolve(str(fit_json), reference="default", set_values=set_values, default_reference=default_reference)


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"give fit_path=fit.json, or law=NAME with reference to use published values"),
    ({"reference": "default"}, r"give fit_path=fit.json, or law=NAME with reference"),
    ({"default_reference": True}, r"give fit_path=fit.json, or law=NAME \(with reference=SET\)"),
    ({"set_values": {}}, r"give fit_path=fit.json, or law=NAME with reference=SET or set_values=\{'NAME': VALUE\}"),
])
def test_neither_fit_nor_law_is_refused(kwargs, message):
    with pytest.raises(DataError, match=message):
        resolve(**kwargs)

