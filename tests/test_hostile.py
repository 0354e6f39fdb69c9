"""Hostile inputs and faults: every bad table ends in a result or a one-line error with exit 2, never a
traceback; interrupted fits write nothing; tampered or stale fit files are detected.

Generated-case counts are printed by ``pytest -s tests/test_hostile.py`` (``HYPOTHESIS_PROFILE=ci`` runs more).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalefit.cli import app
from scalefit.data import from_frame, load_runs
from scalefit.errors import DataError, FitError, ScalefitError
from scalefit.fit import fit
from scalefit.result import load_fit

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: tests/ is not on sys.path
from strategies import chinchilla_frame, csv_delimiters, encodings, run_tables

runner = CliRunner()
ROLES = ["params", "tokens", "loss"]
# Small by default (the unit suite stays under two minutes on 2 cores); HYPOTHESIS_PROFILE=ci for more.
settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=600, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
SLOW_EXAMPLES = max(20, settings.default.max_examples // 6)  # for properties that fit or run the CLI
CASES: dict[str, int] = {}


def _count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    print("\nhypothesis cases generated:", dict(CASES), "total", sum(CASES.values()))


def _assert_clean(res) -> None:
    """Exit 0 with a result, or exit 2 with exactly one 'error:' line; no traceback either way."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert res.exit_code in (0, 2), (res.exit_code, res.output)
    if res.exit_code == 2:
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, res.stderr


# ---------------------------------------------------------------------- loaders, in memory
@given(frame=run_tables())
def test_from_frame_returns_dataset_or_data_error(frame):
    """Any table: a validated Dataset, or DataError -- no TypeError/KeyError/OverflowError from inside."""
    _count("from_frame")
    try:
        data = from_frame(frame, required=ROLES)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    for role in ROLES:
        values = data.column(role)
        assert np.all(np.isfinite(values)) and np.all(values > 0)


@given(frame=run_tables(), sep=csv_delimiters, encoding=encodings, bom=st.booleans())
def test_csv_files_load_or_fail_cleanly(tmp_path_factory, frame, sep, encoding, bom):
    """CSV with odd delimiters, encodings and byte-order marks: Dataset or DataError."""
    _count("csv")
    path = tmp_path_factory.mktemp("csv") / "runs.csv"
    text = frame.to_csv(sep=sep, index=False)
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)
    try:
        load_runs(path, required=ROLES)
    except DataError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


@given(frame=run_tables(), fmt=st.sampled_from(["parquet", "jsonl", "json", "tsv"]))
def test_other_formats_load_or_fail_cleanly(tmp_path_factory, frame, fmt):
    """The same tables through parquet, JSONL, JSON records and TSV."""
    _count(fmt)
    path = tmp_path_factory.mktemp(fmt) / f"runs.{fmt}"
    try:
        if fmt == "parquet":
            frame.to_parquet(path)
        elif fmt == "jsonl":
            frame.to_json(path, orient="records", lines=True)
        elif fmt == "json":
            frame.to_json(path, orient="records")
        else:
            frame.to_csv(path, sep="\t", index=False)
    except Exception:  # pandas/pyarrow cannot even write some mixed-type tables: nothing to load
        return
    try:
        load_runs(path, required=ROLES)
    except DataError as exc:
        assert "\n" not in str(exc)


@given(cut=st.floats(0.0, 0.999))
def test_truncated_parquet_is_a_data_error(tmp_path_factory, cut):
    """A parquet file cut short anywhere (an interrupted copy) is a DataError naming the file."""
    _count("truncated parquet")
    path = tmp_path_factory.mktemp("pq") / "runs.parquet"
    chinchilla_frame().to_parquet(path)
    blob = path.read_bytes()
    path.write_bytes(blob[: int(cut * len(blob))])
    with pytest.raises(DataError, match="runs.parquet"):
        load_runs(path, required=ROLES)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl", ".json", ".txt"])
@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n", b"params,tokens,loss\n", b"\x00\x01\x02garbage"])
def test_empty_and_garbage_files(tmp_path, suffix, content):
    """Empty, header-only, BOM-only and binary-garbage files are one-line DataErrors."""
    path = tmp_path / f"runs{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_runs(path, required=ROLES)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_mixed_unit_strings_parse_and_bad_ones_name_the_cell():
    """'7B', '350M', 7e9 and '1.4T' mix in one column; '7X' names column and row."""
    frame = pd.DataFrame({"params": ["70M", "160M", 4.1e8, "1B", "2.8B", "6.9B"],
                          "tokens": ["1.4T", "300B", 3e11, "300B", "0.3T", 3e11],
                          "loss": [3.6, 3.3, 3.0, 2.8, 2.6, 2.5]})
    data = from_frame(frame, required=ROLES)
    assert data.column("params")[0] == 7e7 and data.column("tokens")[0] == 1.4e12
    frame.loc[3, "params"] = "7X"
    with pytest.raises(DataError, match=r"column 'params' \(params\) row 4: '7X' is not a number"):
        from_frame(frame, required=ROLES)


@pytest.mark.parametrize("name", ["\n", "a\tb", " loss", "", "\x00"])
def test_column_names_with_control_characters_stay_on_one_line(name):
    """Regression (hypothesis, 600-example profile): a column named '\n' split the error message in two."""
    frame = pd.DataFrame({"params": [1e9, 2e9], name: ["7X", "1"]})
    with pytest.raises(DataError) as info:
        from_frame(frame, required=ROLES, columns={"tokens": name} if name else None)
    assert "\n" not in str(info.value)
    assert repr(name) in str(info.value) or not name


def test_missing_run_ids_are_named_not_a_crash():
    """Regression (CLI sweep): a run column with NaN crashed hashing the data (pandas 3 keeps NaN in str)."""
    frame = chinchilla_frame(sizes=3, budgets=3).assign(run=[0.0, 0.0, 0.0, 1.0, None, None, 2.0, 2.0, 2.0])
    with pytest.raises(DataError, match=r"column 'run' \(run\) is empty in 2 row\(s\): 5, 6"):
        from_frame(frame, required=ROLES)
    data = from_frame(frame, required=ROLES, drop_invalid=True)
    assert len(data) == 7 and data.n_runs == 3 and data.content_hash()


def test_duplicated_runs_fit_like_weights():
    """Every row duplicated: same estimate as the original table (duplicates are just weight 2)."""
    frame = chinchilla_frame(seed=2)
    once = fit("chinchilla", from_frame(frame, required=ROLES))
    twice = fit("chinchilla", from_frame(pd.concat([frame, frame], ignore_index=True), required=ROLES))
    np.testing.assert_allclose(twice.theta, once.theta, rtol=1e-4)


@pytest.mark.parametrize("weights, error", [
    ([0.0] * 9, "zero in every row"),
    ([0.0] * 8 + [1.0], "non-zero weight"),
])
def test_degenerate_weights_are_clean_errors(weights, error):
    """Regression (found by the hostile sweep): all-zero weights crashed in R² with ZeroDivisionError."""
    frame = chinchilla_frame(sizes=3, budgets=3).assign(weight=weights)
    with pytest.raises(ScalefitError, match=error):
        fit("chinchilla", from_frame(frame, required=ROLES))


def test_extreme_weights_are_relative():
    """Regression: weights of 1e300 overflowed the normal equations; scaling all weights changes nothing."""
    frame = chinchilla_frame(sizes=3, budgets=3).assign(weight=[1.0, 2.0, 3.0] * 3)
    small = fit("chinchilla", from_frame(frame, required=ROLES))
    huge = fit("chinchilla", from_frame(frame.assign(weight=frame["weight"] * 1e300), required=ROLES))
    np.testing.assert_allclose(huge.theta, small.theta, rtol=1e-6)


def test_constant_loss_is_a_failed_fit_with_a_reason():
    """Regression: a constant loss column reported 'explains nan% of the variance'."""
    frame = chinchilla_frame(sizes=3, budgets=3).assign(loss=2.0)
    result = fit("chinchilla", from_frame(frame, required=ROLES))
    assert not result.success and "does not vary" in result.diagnostics["message"]


@settings(max_examples=SLOW_EXAMPLES)
@given(scale=st.sampled_from([1e-300, 1e-30, 1.0, 1e30, 1e290]), column=st.sampled_from(["params", "tokens", "loss"]),
       weights=st.one_of(st.none(), st.lists(st.sampled_from([0.0, 1e-300, 0.5, 1.0, 1e300]), min_size=9, max_size=9)),
       b=st.sampled_from([0, 8]))
def test_fit_on_extreme_values_returns_a_result_or_error(scale, column, weights, b):
    """Valid-but-extreme tables reach the fitter: a FitResult (maybe flagged failed) or a ScalefitError."""
    _count("fit extremes")
    frame = chinchilla_frame(sizes=3, budgets=3)
    frame[column] = frame[column] * scale
    if weights is not None:
        frame["weight"] = weights
    try:
        result = fit("chinchilla", from_frame(frame, required=ROLES), n_bootstrap=b)
    except ScalefitError as exc:
        assert "\n" not in str(exc)
        return
    assert np.all(np.isfinite(result.theta))
    json.dumps(result.summary(), allow_nan=True)


# ---------------------------------------------------------------------- the CLI end to end
@settings(max_examples=SLOW_EXAMPLES)
@given(frame=run_tables(), sep=csv_delimiters)
def test_cli_never_shows_a_traceback(tmp_path_factory, frame, sep):
    """`scalefit data check` and `scalefit fit` on hostile CSVs: a result, or one error line and exit 2."""
    _count("cli")
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    path.write_text(frame.to_csv(sep=sep, index=False), encoding="utf-8")
    _assert_clean(runner.invoke(app, ["data", "check", str(path), "--law", "chinchilla"]))
    res = runner.invoke(app, ["fit", str(path), "--json"])
    assert "Traceback" not in res.output
    assert res.exit_code in (0, 2), (res.exit_code, res.output, repr(res.exception))


@pytest.mark.parametrize("args", [
    ["fit", "{f}", "--bootstrap", "-3"], ["fit", "{f}", "--delta", "0"], ["fit", "{f}", "--ci", "1.5"],
    ["fit", "{f}", "--loss", "l7"], ["fit", "{f}", "--col", "params"], ["fit", "{f}", "--set", "E=abc"],
    ["fit", "{f}", "--set", "Z=1"], ["fit", "{f}", "--tie", "beta=gamma"], ["fit", "{f}", "--law", "nope"],
    ["fit", "{f}", "--backend", "mpi"], ["fit", "{f}", "--loss-unit", "furlongs"], ["fit", "/nonexistent.csv"],
    ["predict", "--fit", "{f}", "--params", "7B"], ["predict", "--law", "chinchilla", "--reference", "--params", "-7B"],
    ["predict", "--law", "chinchilla", "--reference", "--params", "7Q"], ["check", "{f}", "--baseline", "{f}"],
])
def test_bad_options_are_one_line_errors(tmp_path, args):
    """Bad option values and non-fit files given as fits: exit 2, one line, no traceback."""
    path = tmp_path / "runs.csv"
    chinchilla_frame(sizes=3, budgets=3).to_csv(path, index=False)
    res = runner.invoke(app, [a.format(f=path) for a in args])
    _assert_clean(res)
    assert res.exit_code == 2


# ---------------------------------------------------------------------- faults
def test_pure_noise_fails_and_strict_exits_1(tmp_path):
    """A fit to noise says FIT FAILED (no intervals shown); --strict exits 1."""
    rng = np.random.default_rng(0)
    frame = chinchilla_frame()
    frame["loss"] = rng.uniform(2.0, 4.0, len(frame))
    path = tmp_path / "noise.csv"
    frame.to_csv(path, index=False)
    res = runner.invoke(app, ["fit", str(path), "--bootstrap", "20", "--strict"])
    assert res.exit_code == 1 and "FIT FAILED" in res.stdout and "fit failed" in res.stderr
    res = runner.invoke(app, ["fit", str(path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["diagnostics"]["success"] is False


def test_too_few_rows_is_a_clean_error():
    """Fewer rows than parameters: FitError (exit 2) that says what to do."""
    frame = chinchilla_frame(sizes=2, budgets=2)
    with pytest.raises(FitError, match=r"fixed=\{.NAME.: VALUE\}"):
        fit("chinchilla", from_frame(frame, required=ROLES))


def test_ctrl_c_during_bootstrap_writes_nothing_and_keeps_old_output(tmp_path, monkeypatch):
    """KeyboardInterrupt from the progress callback: exit 130, no fit.json, an existing one untouched."""
    import scalefit.cli.fit as cli_fit

    path = tmp_path / "runs.csv"
    chinchilla_frame().to_csv(path, index=False)

    def interrupting_progress(total):
        import contextlib

        def update(done, _total):
            raise KeyboardInterrupt

        return update, contextlib.nullcontext()

    monkeypatch.setattr(cli_fit, "_progress", interrupting_progress)
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", str(path), "-b", "600", "--out", str(out)])
    assert res.exit_code == 130 and "interrupted" in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".fit.json*"))
    out.write_text("precious")
    res = runner.invoke(app, ["fit", str(path), "-b", "600", "--out", str(out), "--force"])
    assert res.exit_code == 130 and out.read_text() == "precious"


def test_existing_output_needs_force(tmp_path):
    """An existing fit.json is never overwritten without --force."""
    path = tmp_path / "runs.csv"
    chinchilla_frame(sizes=3, budgets=3).to_csv(path, index=False)
    out = tmp_path / "fit.json"
    out.write_text("precious")
    res = runner.invoke(app, ["fit", str(path), "--out", str(out)])
    assert res.exit_code == 2 and "--force" in res.stderr and out.read_text() == "precious"


@pytest.fixture
def saved_fit(tmp_path):
    path = tmp_path / "fit.json"
    fit("chinchilla", from_frame(chinchilla_frame(sizes=3, budgets=3), required=ROLES), n_bootstrap=10).save(path)
    return path


def test_hand_edited_fit_is_detected(saved_fit):
    """Changing a number by hand breaks the checksum: loading warns that it was edited."""
    payload = json.loads(saved_fit.read_text())
    payload["params"]["E"]["value"] = 1.0
    saved_fit.write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match="edited by hand"):
        load_fit(saved_fit)
    res = runner.invoke(app, ["predict", "--fit", str(saved_fit), "--params", "1B", "--tokens", "20B"])
    assert res.exit_code == 0 and "edited by hand" in res.stderr


@pytest.mark.filterwarnings("ignore:.*checksum mismatch")
def test_fit_from_another_law_version_is_detected(saved_fit):
    """A different law source hash (the law file changed since the fit) warns to refit."""
    payload = json.loads(saved_fit.read_text())
    payload["law"]["source_hash"] = "0" * 16
    saved_fit.write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match="has changed since this fit was made"):
        load_fit(saved_fit)


@pytest.mark.parametrize("edit, match", [
    (lambda p: p.update(schema="scalefit.fit/0"), "schema"),
    (lambda p: p.update(param_names=["E", "A"]), "do not match law"),
    (lambda p: p.pop("theta"), "malformed"),
    (lambda p: p["law"].update(name="no-such-law"), "no-such-law"),
    (lambda p: p.update(draws={"file": "missing.parquet", "shape": [10, 5]}), "draws file"),
])
def test_broken_fit_files_are_data_errors(saved_fit, edit, match):
    """Old schema, changed parameter list, missing fields, unknown law, lost draws file: one-line errors."""
    payload = json.loads(saved_fit.read_text())
    edit(payload)
    saved_fit.write_text(json.dumps(payload))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ScalefitError, match=match):
            load_fit(saved_fit)


@pytest.mark.parametrize("content", ["", "{", "[]", "null", '{"schema": 3}', "\ufeff{}"])
def test_not_a_fit_file(tmp_path, content):
    """Empty, truncated or foreign JSON given as a fit: DataError."""
    path = tmp_path / "fit.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError):
        load_fit(path)
