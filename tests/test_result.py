"""fit.json: bit-identical round trip, atomic writes, no silent overwrite, tamper detection."""

import json

import numpy as np
import pytest

from scalefit.data import load_runs
from scalefit.errors import DataError, ScalefitError
from scalefit.fit import fit
from scalefit.result import load_fit


@pytest.fixture(scope="module")
def example_fit():
    from conftest import ROOT

    data = load_runs(ROOT / "data" / "example_runs.csv", required=["params", "tokens", "loss"], loss_unit="nats")
    return fit("chinchilla", data, n_bootstrap=50, seed=1)


def test_round_trip_predicts_bit_identically(example_fit, tmp_path):
    path = example_fit.save(tmp_path / "fit.json")
    loaded = load_fit(path)
    np.testing.assert_array_equal(loaded.theta, example_fit.theta)
    np.testing.assert_array_equal(loaded.draws, example_fit.draws)
    a = example_fit.predict(params=[7e9, 1e8], tokens=[1.4e12, 2e9])
    b = loaded.predict(params=[7e9, 1e8], tokens=[1.4e12, 2e9])
    np.testing.assert_array_equal(a.value, b.value)
    np.testing.assert_array_equal(a.low, b.low)
    assert loaded.units["loss_unit"] == "nats"
    assert loaded.data_info["hash"] == example_fit.data_info["hash"]


def test_never_overwrites_without_force(example_fit, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text("precious")
    with pytest.raises(ScalefitError, match="already exists; pass force=True"):
        example_fit.save(path)
    assert path.read_text() == "precious"
    example_fit.save(path, force=True)
    assert load_fit(path).law.name == "chinchilla"
    assert not list(tmp_path.glob(".fit.json.*"))  # no temp files left behind


def test_hand_edits_and_bad_files_are_detected(example_fit, tmp_path):
    path = example_fit.save(tmp_path / "fit.json")
    payload = json.loads(path.read_text())
    payload["theta"][0] += 0.1
    path.write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        load_fit(path)
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/9"}))
    with pytest.raises(DataError, match="not a scalefit fit file"):
        load_fit(tmp_path / "other.json")
    (tmp_path / "garbage.json").write_text("{nope")
    with pytest.raises(DataError, match="not a valid fit.json"):
        load_fit(tmp_path / "garbage.json")


def test_non_finite_values_are_written_as_null(example_fit, tmp_path):
    """A NaN diagnostic (e.g. R² of a constant loss) is written as null, not a crash, and still round-trips."""
    import copy

    result = copy.copy(example_fit)
    result.diagnostics = {**example_fit.diagnostics, "r2_log": float("nan")}
    path = result.save(tmp_path / "fit.json")
    assert json.loads(path.read_text())["diagnostics"]["r2_log"] is None
    np.testing.assert_array_equal(load_fit(path).theta, example_fit.theta)


def test_report_and_notebook_view(example_fit):
    """report() has lmfit's sections with every parameter and its interval; the HTML view escapes names."""
    text = example_fit.report()
    for section in ("[[Model]]", "[[Fit Statistics]]", "[[Variables]]"):
        assert section in text
    for name, e in example_fit.params.items():
        assert f"{name}" in text and f"{e.value:.6g}" in text
    html = example_fit._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "95% interval" in html
    import copy

    failed = copy.copy(example_fit)
    failed.diagnostics = {**example_fit.diagnostics, "success": False, "message": "<script>x</script>",
                          "warnings": ["<b>w</b>"]}
    assert "FIT FAILED" in failed.report() and "<script>" not in failed._repr_html_()
    assert "[" not in failed.report().split("[[Variables]]")[1].split("\n")[1]  # no interval on a failed fit
