"""`scalefit import wandb` from files in W&B's own layouts (no dependency): a chart's "Export CSV" (wide,
``<run> - <key>`` columns with ``__MIN``/``__MAX`` beside them) and history tables (``_step`` plus one
column per key, as ``scan_history`` rows and W&B's history parquet hold them). The API path needs the
network and a login: what it does with the rows is the history path tested here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, run
from test_import_helpers import STEPS, fit_imported, synthetic_curves

from scalefit.errors import DataError
from scalefit.importers import import_runs


def export_csv(path, curves, key, every=None, bucketed=False):
    """A chart export: ``Step`` then ``<run> - <key>`` with its ``__MIN``/``__MAX`` columns, one row per step
    any run logged (empty cells where a run did not)."""
    columns = {}
    for run_name, c in curves.items():
        if key == "lr":
            steps = np.arange(0, STEPS, every)
            values = c["lr"][steps]
        else:
            steps, values = c["steps"], c["loss"]
        s = pd.Series(values, index=steps)
        columns[f"{run_name} - {key}"] = s
        columns[f"{run_name} - {key}__MIN"] = s * (0.99 if bucketed else 1.0)
        columns[f"{run_name} - {key}__MAX"] = s * (1.01 if bucketed else 1.0)
    frame = pd.DataFrame(columns)
    frame.index.name = "Step"
    frame.reset_index().to_csv(path, index=False)
    return path


def test_export_csv_three_runs_import_and_fit_multipower(tmp_path):
    curves = synthetic_curves(seed=1)
    loss_csv = export_csv(tmp_path / "loss.csv", curves, "train/loss")
    lr_csv = export_csv(tmp_path / "lr.csv", curves, "lr", every=10)  # the LR chart, logged every 10 steps
    out = tmp_path / "runs.csv"
    res = run("import", "wandb", loss_csv, lr_csv, "--out", out)
    assert res.exit_code == 0, res.output
    assert "__MIN/__MAX columns equal their values and were dropped" in res.stderr
    assert "LR logged every ~10 steps: filled in by linear interpolation" in res.stderr
    table = pd.read_csv(out)
    for name, c in curves.items():
        rows = table[table["run"] == name]
        assert rows["step"].tolist() == list(range(STEPS - 9))  # to the last LR logged, step 990
        lr = rows["lr"].to_numpy()
        np.testing.assert_array_equal(lr[::10], c["lr"][: STEPS - 9 : 10])  # as logged
        # linear in between (a jump between flat stretches stays a jump): close everywhere
        assert np.mean(np.abs(lr - c["lr"][: STEPS - 9])) < 1e-3 * c["lr"].max()
        logged = rows.dropna(subset=["loss"])
        np.testing.assert_allclose(logged["loss"], c["loss"], rtol=1e-12)
    two_stage = table[table["run"] == "two-stage"].set_index("step")["lr"]
    assert two_stage[599] == 3e-4 and two_stage[600] == 6e-5  # the switch at 600, not a ramp from 590
    fit_imported(run, out, tmp_path)


def test_bucketed_export_is_refused_with_advice(tmp_path):
    curves = synthetic_curves()
    loss_csv = export_csv(tmp_path / "loss.csv", curves, "train/loss", bucketed=True)
    out = tmp_path / "runs.parquet"
    res = run("import", "wandb", loss_csv, "--out", out)
    assert_clean_error(res, "'cosine - train/loss__MIN' differs from its value column: the chart averaged")
    assert "export the full history instead" in res.stderr
    assert not out.exists()


def history(steps_logged, loss, lr, *, val_every=None):
    """Rows as ``scan_history`` yields them: one per log call; ``_step`` counts calls, ``iter`` is the
    training step; eval rows are separate calls that carry only ``val/loss`` and ``iter``."""
    rows = []
    for it, value, rate in zip(steps_logged, loss, lr):
        rows.append({"iter": it, "train/loss": value, "optim/lr": rate})
        if val_every and it % val_every == 0:
            rows.append({"iter": it, "val/loss": value + 0.1})
    frame = pd.DataFrame(rows)
    frame.insert(0, "_step", np.arange(len(frame)))
    frame["_runtime"] = np.arange(len(frame)) * 1.5
    return frame


def test_history_prefers_the_training_step_and_warns_when_step_keys_disagree(tmp_path):
    steps = np.arange(0, 1000, 10)
    frame = history(steps, 3.0 - steps / 1e4, np.full(steps.size, 1e-3), val_every=100)
    frame.to_parquet(tmp_path / "run-a.parquet")
    imported = import_runs("wandb", [tmp_path / "run-a.parquet"], min_step=1)
    assert any("'iter' taken as the training step; '_step' (W&B's count of log calls) differs" in w
               for w in imported.warnings)
    table = imported.frame
    assert table["run"].unique().tolist() == ["run-a"]
    logged = table.dropna(subset=["loss"])
    np.testing.assert_array_equal(logged["step"], steps[1:])  # training steps, not row numbers
    assert "loss: 'train/loss' (also logged: 'val/loss'" in " ".join(imported.notes)

    val = import_runs("wandb", [tmp_path / "run-a.parquet"], loss="val/loss", lr="none")
    assert val.frame["step"].tolist() == list(range(0, 1000, 100))
    np.testing.assert_allclose(val.frame["loss"], 3.1 - np.arange(0, 1000, 100) / 1e4)


@pytest.mark.parametrize("key", ["val/loss", "train/loss", "final-val/loss", "lm loss", "train/CE loss",
                                 "loss_metrics/global_avg_loss", "Metrics/loss", "train/CrossEntropyLoss"])
def test_loss_aliases_are_recognised(tmp_path, key):
    frame = pd.DataFrame({"_step": [0, 1, 2], "global_step": [100, 200, 300], key: [3.0, 2.9, 2.8]})
    frame.to_csv(tmp_path / "h.csv", index=False)
    imported = import_runs("wandb", [tmp_path / "h.csv"])
    assert imported.frame["loss"].tolist() == [3.0, 2.9, 2.8]
    assert imported.frame["step"].tolist() == [100, 200, 300]
    assert f"loss: '{key}'" in " ".join(imported.notes)


def test_restarted_runs_sharing_a_name_are_stitched_and_gaps_reported(tmp_path):
    first = pd.DataFrame({"run": "r", "_step": range(60), "trainer/global_step": range(0, 600, 10),
                          "train/loss": 5.0})
    # the job died at 590 and came back from the checkpoint at 500, then a hole from 900 to 2000
    later = np.r_[np.arange(500, 900, 10), np.arange(2000, 2100, 10)]
    second = pd.DataFrame({"run": "r", "_step": range(later.size), "trainer/global_step": later, "train/loss": 4.0})
    pd.concat([first, second]).to_csv(tmp_path / "h.csv", index=False)
    imported = import_runs("wandb", [tmp_path / "h.csv"], lr="none")
    table = imported.frame.set_index("step")
    assert table.loss[490] == 5.0 and table.loss[500] == 4.0 and table.loss[590] == 4.0
    assert table.index.is_monotonic_increasing and table.index.is_unique
    text = " ".join(imported.notes)
    assert "the step went back 1 time(s) (restarts); 10 value(s) purged" in text
    assert "gap: no loss logged between steps 890 and 2000" in text


def test_interleaved_steps_cannot_be_restarts(tmp_path):
    steps = np.ravel(np.column_stack([np.arange(0, 500, 10), np.arange(5, 505, 10) - 300]))
    frame = pd.DataFrame({"iter": np.abs(steps), "loss": 3.0})
    frame.to_csv(tmp_path / "two_runs_in_one.csv", index=False)
    out = tmp_path / "runs.parquet"
    res = run("import", "wandb", tmp_path / "two_runs_in_one.csv", "--out", out)
    assert_clean_error(res, "run 'two_runs_in_one', key 'loss': the step goes back 50 times in 100 values")
    assert "too often for restarts" in res.stderr and not out.exists()


def test_wsd_branch_is_stitched_onto_its_constant_run(tmp_path):
    const_steps = np.arange(0, 1000, 10)
    const = pd.DataFrame({"run": "const", "iter": const_steps, "train/loss": 3.0 - const_steps / 1e4,
                          "lr": 1e-3})
    cool_steps = np.arange(800, 1000, 10)  # resumed from const's checkpoint at 800, LR decayed to 0
    cool = pd.DataFrame({"run": "cool", "iter": cool_steps, "train/loss": 2.9 - cool_steps / 1e4,
                         "lr": 1e-3 * (1000 - cool_steps) / 200})
    pd.concat([const, cool]).to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(DataError, match="the LR is first logged at step 800.*branch_of=\\{'cool': 'PARENT'\\}"):
        import_runs("wandb", [tmp_path / "runs.csv"])
    imported = import_runs("wandb", [tmp_path / "runs.csv"], branch_of={"cool": "const"})
    cool_rows = imported.frame[imported.frame["run"] == "cool"].set_index("step")
    assert cool_rows.index[0] == 0 and cool_rows.index[-1] == 990
    assert cool_rows.loc[500, "loss"] == pytest.approx(3.0 - 0.05)  # from the constant run
    assert cool_rows.loc[900, "loss"] == pytest.approx(2.9 - 0.09)  # its own
    assert cool_rows.loc[790, "lr"] == 1e-3 and cool_rows.loc[900, "lr"] == pytest.approx(5e-4)
    assert "run 'cool': stitched onto run 'const' (steps 0..799 from 'const'" in " ".join(imported.notes)


def test_bad_options_are_named(tmp_path):
    frame = pd.DataFrame({"iter": [1, 2], "loss": [3.0, 2.9]})
    frame.to_csv(tmp_path / "h.csv", index=False)
    out = tmp_path / "o.parquet"
    assert_clean_error(run("import", "wandb", tmp_path / "h.csv", "--branch-of", "a=b", "--out", out),
                       "--branch-of a=b: no run 'a' was imported")
    assert_clean_error(run("import", "wandb", tmp_path / "h.csv", "--step", "trainer/step", "--out", out),
                       "no numeric column 'trainer/step'")
    assert_clean_error(run("import", "wandb", tmp_path / "h.csv", "--experiment", "x", "--out", out),
                       "--experiment 'x': applies to mlflow sources, not wandb")
    assert_clean_error(run("import", "wandb", "not/a/file.csv", "--out", out), "no such file")
    assert not out.exists()


class _ApiRun:
    """Stands in for the network only: a run with the attributes and the ``scan_history()`` of W&B's public
    API (``wandb.apis.public.Run``); the real path needs a login and was not exercised here."""

    def __init__(self, name, run_id, created_at, config, rows):
        self.name, self.id, self.created_at, self.config = name, run_id, created_at, config
        self.summary_metrics = {"train/loss": rows[-1]["train/loss"]}
        self._rows = rows

    def scan_history(self):
        return iter(self._rows)


class _Api:
    def __init__(self, listed):
        self.listed = listed

    def runs(self, path):
        assert path == "lab/scaling"
        return list(self.listed)


def test_api_rows_restarts_config_and_run_filter():
    from scalefit.importers.assemble import assemble
    from scalefit.importers.wandb import read_api

    def rows(steps, loss):
        return [{"_step": i, "trainer/global_step": s, "train/loss": loss, "lr": 1e-3, "_runtime": 1.0}
                for i, s in enumerate(steps)]

    config = {"model": {"n_params": {"value": 7.0e9}}, "seq_len": 2048, "global_batch_size": 1024}
    listed = [  # listed newest first, as the API does; the restart of 'big' was created later
        _ApiRun("big", "b2", "2024-05-02T00:00:00", config, rows(range(400, 800, 10), 4.0)),
        _ApiRun("small", "s1", "2024-05-01T12:00:00", {}, rows(range(0, 300, 10), 3.0)),
        _ApiRun("big", "b1", "2024-05-01T00:00:00", config, rows(range(0, 500, 10), 5.0)),
    ]
    found = read_api("lab/scaling", runs="^big$", api=_Api(listed))
    assert [r.origin for r in found] == ["lab/scaling/b1", "lab/scaling/b2"]  # oldest first
    imported = assemble(found, kind="wandb")
    frame = imported.frame.dropna(subset=["loss"]).set_index("step")
    assert frame.loss[390] == 5.0 and frame.loss[400] == 4.0 and frame.index[-1] == 790
    assert set(frame["params"]) == {7e9} and set(frame["batch_tokens"]) == {1024 * 2048}
    assert any("'_step' (W&B's count of log calls) differs" in w for w in imported.warnings)
    with pytest.raises(DataError, match="no run matches runs='none'"):
        read_api("lab/scaling", runs="none", api=_Api(listed))


def test_unrelated_runs_sharing_a_name_are_kept_apart_by_id():
    from scalefit.importers.assemble import assemble
    from scalefit.importers.wandb import read_api

    def rows(steps, loss):
        return [{"trainer/global_step": s, "train/loss": loss, "lr": 1e-3} for s in steps]

    listed = [  # two experiments both named 'base' over the same steps, and a third over most of them
        _ApiRun("base", "x2", "2024-05-02T00:00:00", {}, rows(range(0, 500, 10), 4.0)),
        _ApiRun("base", "x1", "2024-05-01T00:00:00", {}, rows(range(0, 500, 10), 5.0)),
    ]
    imported = assemble(read_api("lab/scaling", api=_Api(listed)), kind="wandb")
    frame = imported.frame
    assert sorted(frame["run"].unique()) == ["base#x1", "base#x2"]  # not the second silently replacing the first
    assert set(frame.loc[frame["run"] == "base#x1", "loss"].dropna()) == {5.0}
    assert set(frame.loc[frame["run"] == "base#x2", "loss"].dropna()) == {4.0}
    warning = " ".join(imported.warnings)
    assert "run 'base': 2 runs share this name but are not one restarted run ('train/loss': one logs steps 0..490, " \
           "starting at or before the first step of the other (0..490)): kept apart as 'base#x1', 'base#x2'" in warning
    assert "branch_of={'base#x2': 'base#x1'}" in warning
    # either one by its id
    only = read_api("lab/scaling", runs="#x2$", api=_Api(listed))
    assert [r.run_id for r in only] == ["x2"]

    # a later run starting inside the first but repeating more than half of it is not its restart either
    listed = [_ApiRun("base", "y1", "2024-05-01T00:00:00", {}, rows(range(0, 1000, 10), 5.0)),
              _ApiRun("base", "y2", "2024-05-02T00:00:00", {}, rows(range(200, 1500, 10), 4.0))]
    imported = assemble(read_api("lab/scaling", api=_Api(listed)), kind="wandb", lr="none")
    assert sorted(imported.frame["run"].unique()) == ["base#y1", "base#y2"]
    assert "over more than half of the other (0..990)" in " ".join(imported.warnings)


def test_tables_of_one_name_that_cannot_be_restarts_are_refused(tmp_path):
    for folder, loss in (("a", 5.0), ("b", 4.0)):  # two history tables both named h.csv, no run id
        (tmp_path / folder).mkdir()
        pd.DataFrame({"iter": range(0, 500, 10), "train/loss": loss}).to_csv(tmp_path / folder / "h.csv", index=False)
    out = tmp_path / "runs.parquet"
    res = run("import", "wandb", tmp_path / "a" / "h.csv", tmp_path / "b" / "h.csv", "--out", out)
    assert_clean_error(res, "2 logs of run 'h' are not one restarted run")
    assert "no run id tells them apart" in res.stderr and not out.exists()
