"""One suite run over every registered law (scikit-learn's common-checks idea), through the public
``scalefit.testing`` functions a plugin author runs on their own law."""

import pytest

from scalefit.law import Law, Param
from scalefit.registry import all_laws
from scalefit.testing import (
    check_curve,
    check_declaration,
    check_documented,
    check_jacobian,
    check_law,
    check_linear,
    check_predict,
    check_recovery,
)

LAWS = sorted(all_laws().values(), key=lambda law: law.name)
IDS = [law.name for law in LAWS]


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_declaration_is_valid(law):
    """Bounds are ordered, the starting grid and every reference set lie inside them."""
    check_declaration(law)


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_documented(law):
    """Every law carries its formula, citation and a meaning for each parameter."""
    check_documented(law)


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_predict_broadcasts_and_is_finite(law):
    """predict((k, p)) -> (k, n), finite and positive at the reference values; rows are independent."""
    check_predict(law)


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_jacobian_matches_finite_differences(law):
    """Analytic Jacobians agree with central differences (relative 1e-5)."""
    if not check_jacobian(law):
        pytest.skip(f"{law.name} has no analytic Jacobian (the fitter uses finite differences)")


LINEAR_LAWS = [law for law in LAWS if law.linear_params]


def test_the_laws_that_are_linear_in_some_parameters_say_so():
    """Variable projection is only as fast as the declarations: every built-in law of that form declares."""
    assert {law.name: law.linear_params for law in LINEAR_LAWS} == {
        "chinchilla": ["E", "A", "B"], "data_constrained": ["E"], "kaplan_e": ["E"],
        "loss_to_loss": ["K", "E_y"], "lr_annealing": ["L0", "A", "C"], "multipower": ["L0", "A", "Bslope"],
        "sparse_avg": ["E", "A", "B"]}


@pytest.mark.parametrize("law", LINEAR_LAWS, ids=[law.name for law in LINEAR_LAWS])
def test_declared_linear_parameters_are(law):
    """Moving the parameters declared linear changes the prediction by exactly basis x move."""
    assert check_linear(law)


def test_a_false_linear_declaration_is_caught():
    """Declaring an exponent linear is a false claim the check names."""
    from scalefit.registry import get_law

    chin = get_law("chinchilla")
    wrong = type("Wrong", (type(chin),), {"name": "wrong", "params": {
        **chin.params, "alpha": Param((0.0, 3.0), [0.5], linear=True, doc="model-size exponent")}})()
    with pytest.raises(AssertionError, match="law 'wrong': linear: .*alpha"):
        check_linear(wrong)


CURVE_LAWS = [law for law in LAWS if law.kind == "curve"]


@pytest.mark.parametrize("law", CURVE_LAWS, ids=[law.name for law in CURVE_LAWS])
def test_curve_law_final_loss_and_gradient(law):
    """final_loss_grad equals the curve's last point and agrees with finite differences in the LR."""
    assert check_curve(law)


POINT_LAWS = [law for law in LAWS if law.kind == "point"]


@pytest.mark.parametrize("law", POINT_LAWS, ids=[law.name for law in POINT_LAWS])
def test_synthetic_recovery(law):
    """Data drawn from the reference values with 1 % log-noise: the 95 % intervals cover the truth."""
    assert check_recovery(law)


def test_check_law_names_the_law_and_the_failed_check():
    """A plugin author's broken law: the message says which law and which check."""
    import numpy as np

    class Broken(Law):
        name = "broken_plugin"
        formula = "L = E + A / N^alpha"
        citation = "nobody"
        description = "a law whose Jacobian is wrong"
        inputs = ("params",)
        params = {"E": Param((0.1, 5), [1.5], doc="floor"), "A": Param((1, 1e4), [100], log=True, doc="scale"),
                  "alpha": Param((0.01, 1), [0.3], doc="exponent")}
        reference = {"made_up": {"E": 1.7, "A": 400.0, "alpha": 0.34}}

        def predict(self, theta, design):
            t = self.unpack(theta)
            return t["E"] + t["A"] / design["N"][None] ** t["alpha"]

        def jacobian(self, theta, design):
            return np.ones(self.predict(theta, design).shape + (3,))

        def prepare(self, data):
            return {"N": data.column("params")}

        def example_inputs(self):
            from scalefit.law import Columns

            return Columns(params=np.geomspace(1e7, 1e10, 8))

    with pytest.raises(AssertionError, match="law 'broken_plugin': jacobian: d/dA"):
        check_law(Broken(), skip=("recovery",))
    assert check_law("chinchilla", skip=("recovery",)) == ["declaration", "documented", "predict", "jacobian", "linear"]


def test_a_law_reaches_worker_processes_with_its_options():
    """Parallel bootstrap pickles the law: the worker's copy must be the same variant, not the default."""
    import pickle

    from scalefit.registry import get_law

    law = get_law("multipower").with_options(convention="paper")
    back = pickle.loads(pickle.dumps(law))
    assert back.options == law.options and back.options["convention"] == "paper"
    assert pickle.loads(pickle.dumps(get_law("chinchilla"))) is get_law("chinchilla")
