"""The commands around an imported table: `import --json`, `data check` on a curve table (with
`--schedule`/`--lr-table` and without `--law`), and `fit --where` on a table of several experiments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from cli_helpers import assert_clean_error, ok_json, run

from scalefit.schedule import parse_schedule

COS = "cosine:peak=1e-3,steps=400,warmup=40,floor=1e-4"


def history_csv(path, *, with_lr=True):
    steps = np.arange(0, 400)
    frame = pd.DataFrame({"_step": steps, "trainer/global_step": steps, "train/loss": 4.0 - steps / 1000})
    if with_lr:
        frame["lr"] = parse_schedule(COS).lr()
    frame = frame[(frame["trainer/global_step"] % 10 == 0) | with_lr]
    frame.to_csv(path, index=False)
    return path


def test_import_json_and_data_check_reads_the_table_as_curves(tmp_path):
    out = tmp_path / "runs.parquet"
    summary = ok_json("import", "wandb", history_csv(tmp_path / "a.csv"), "--min-step", "1", "--out", out)
    assert summary["out"] == str(out) and summary["rows"] == 400 and summary["loss_unit"] == "nats"
    assert summary["runs"][0]["keys"] == {"loss": "train/loss", "lr": "lr"}
    assert summary["runs"][0]["first_step"] == 1
    assert any("loss unit: nats assumed" in n for n in summary["notes"])
    check = ok_json("data", "check", out)  # no --law: a table with step and lr columns is a curve table
    assert check["curves"] is True and check["runs"] == 1 and check["lr_source"] == {"a": "the lr column"}
    # an existing output is refused before any work, and --force replaces it
    assert_clean_error(run("import", "wandb", tmp_path / "a.csv", "--out", out), "already exists")
    assert run("import", "wandb", tmp_path / "a.csv", "--out", out, "--force").exit_code == 0
    assert_clean_error(run("import", "wandb", tmp_path / "a.csv", "--out", tmp_path / "runs.txt"),
                       "name a .parquet or .csv file")
    assert_clean_error(run("import", "comet", tmp_path / "a.csv", "--out", tmp_path / "r.csv"),
                       "use one of tensorboard, wandb, mlflow, log")


def test_data_check_accepts_schedule_and_lr_table_on_a_curve_table(tmp_path):
    out = tmp_path / "runs.csv"
    res = run("import", "wandb", history_csv(tmp_path / "b.csv", with_lr=False), "--lr", "none", "--out", out)
    assert res.exit_code == 0, res.output
    assert "lr" not in pd.read_csv(out).columns
    check = ok_json("data", "check", out, "--schedule", COS)
    assert check["curves"] is True and check["lr_source"] == {"b": f"schedule '{COS}'"}
    lr_table = tmp_path / "lr.csv"
    pd.DataFrame({"run": "b", "step": np.arange(400), "lr": parse_schedule(COS).lr()}).to_csv(lr_table, index=False)
    check = ok_json("data", "check", out, "--lr-table", lr_table)
    assert check["lr_source"] == {"b": "lr_table run 'b'"}
    # without an LR source the curve table is refused with the way out
    assert_clean_error(run("data", "check", out, "--law", "multipower"), "has no LR sequence")


def test_fit_where_keeps_one_experiment(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for dataset, e in (("web", 1.8), ("code", 1.2)):
        for n in (1e8, 2e8, 4e8, 8e8):
            for d in (2e9, 8e9, 3.2e10):
                loss = e + 400 / n**0.34 + 410 / d**0.28
                rows.append({"dataset": dataset, "params": n, "tokens": d, "loss": loss * np.exp(rng.normal(0, 1e-3)),
                             "loss_unit": "nats" if dataset == "web" else "bits"})
    table = tmp_path / "sweep.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    res = run("fit", table, "--where", "dataset=code", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_runs"] == 12
    assert abs(summary["params"]["E"]["value"] - 1.2) < 0.1
    assert summary["units"]["loss_unit"] == "bits"  # from the table's loss_unit column
    assert_clean_error(run("fit", table), "column 'loss_unit' mixes 'bits', 'nats'")
    assert_clean_error(run("fit", table, "--where", "dataset=books"), "--where dataset=books matches no row")
    assert_clean_error(run("fit", table, "--where", "corpus=code"), "--where column 'corpus' not found")
