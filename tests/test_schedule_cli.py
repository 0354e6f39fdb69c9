"""`scalefit schedule ...` through typer's CliRunner: exit codes, --json, files, one-line errors."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, ok_json, run

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TISSUE = SHARED / "data" / "loss_curves" / "tissue2024_fit_example" / "fit_example_losses.csv"
COS400 = "cosine:peak=3e-4,steps=24000,warmup=2160,floor=3e-5"
REF400 = ["--law", "multipower", "--reference", "400M"]




def test_schedule_is_registered():
    res = run("schedule", "--help")
    assert res.exit_code == 0
    for command in ("predict", "compare", "optimize", "kinds"):
        assert command in res.stdout
    assert "wsd" in run("schedule", "kinds").stdout


def test_predict_json_matches_official_prediction():
    out = ok_json("schedule", "predict", *REF400, "--schedule", COS400, "--every", 1000)
    assert out["final_loss"] == pytest.approx(2.757069, abs=1e-6)  # mpl_reference_predictions.csv
    assert out["steps"][-1] == 23999 and len(out["steps"]) == len(out["loss"])
    assert all(b - a == 1000 for a, b in zip(out["steps"][:-2], out["steps"][1:-1]))
    assert out["law"] == "multipower" and out["params"]["Bslope"] == pytest.approx(628.9608250884448)
    # Every step (the default): the dense curve uses blocked sums, the quoted final loss stays exact.
    assert ok_json("schedule", "predict", *REF400, "--schedule", COS400)["final_loss"] == pytest.approx(2.757069, abs=1e-6)


def test_reference_default_means_the_first_set():
    out = ok_json("schedule", "predict", "-s", COS400, "--every", 5000, "--law", "multipower", "--reference", "default")
    assert "25M" in out["source"] and out["final_loss"] == pytest.approx(3.315187, abs=1e-6)


def test_predict_every_step_by_default():
    out = ok_json("schedule", "predict", "--law", "lr_annealing", "--reference", "default",
                  "--schedule", "wsd:peak=2e-4,steps=3000,warmup=100,cooldown=0.2")
    assert out["steps"] == list(range(1, 3000))  # step 0 has no LR area yet (warm-up from 0)


def test_predict_with_set_values_and_law_options():
    base = ["schedule", "predict", "--law", "lr_annealing", "--set", "L0=2.6", "--set", "A=0.43",
            "--set", "alpha=0.55", "--set", "C=0.41", "--schedule", "cosine:peak=2e-4,steps=2000,warmup=100"]
    a = ok_json(*base)
    b = ok_json(*base, "--law-opt", "lam=0")
    assert a["final_loss"] != b["final_loss"] and b["options"]["lam"] == 0.0


def test_compare_ranks_schedules_and_reads_lr_files(tmp_path):
    lr = tmp_path / "lrs.csv"
    from scalefit.schedule import parse_schedule

    eta = parse_schedule("wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=0.2,shape=sqrt").lr()
    pd.DataFrame({"run": "mine", "step": np.arange(eta.size), "lr": eta}).to_csv(lr, index=False)
    out = ok_json("schedule", "compare", *REF400, "-s", COS400, "-s", "constant:peak=3e-4,steps=24000,warmup=2160",
                  "--lr-table", lr, "--run", "mine")
    rows = out["schedules"]
    assert [r["schedule"].split(":")[0] for r in rows] == [str(lr), "cosine", "constant"]
    assert rows[0]["vs_best"] == 0 and rows[1]["final_loss"] == pytest.approx(2.757069, abs=1e-6)
    at = ok_json("schedule", "compare", *REF400, "-s", COS400, "--at", 16000)
    assert at["schedules"][0]["final_loss"] == pytest.approx(2.819068, abs=1e-6)


def test_optimize_writes_csv_and_never_overwrites(tmp_path):
    out_csv = tmp_path / "schedule.csv"
    args = ["schedule", "optimize", "--law", "multipower", "--reference", "100M", "--peak", "3e-4",
            "--warmup", 200, "--steps", "4k", "--out", out_csv]
    out = ok_json(*args)
    assert out["schedule"] == str(out_csv) and out["monotone"] and out["starts_at_peak"]
    assert out["final_loss"] <= out["best_wsd"]["final_loss"] <= out["best_cosine"]["final_loss"]
    table = pd.read_csv(out_csv)
    assert list(table.columns) == ["step", "lr"] and len(table) == 4000 and table.lr.iloc[200] == 3e-4
    before = out_csv.read_text()
    assert_clean_error(run(*args), "already exists")
    assert out_csv.read_text() == before
    assert run(*args, "--force", "--family", "wsd").exit_code == 0
    assert out_csv.read_text() != before


def test_plots(tmp_path):
    png = tmp_path / "opt.png"
    res = run("schedule", "optimize", "--law", "multipower", "--reference", "25M", "--peak", "3e-4",
              "--warmup", 100, "--steps", 3000, "--family", "wsd", "--plot", png)
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000
    png2 = tmp_path / "cmp.png"
    assert run("schedule", "compare", *REF400, "-s", COS400, "-s", COS400.replace("cosine", "linear"),
               "--plot", png2).exit_code == 0
    assert png2.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, match", [
    (["schedule", "predict", *REF400, "-s", "cosine:peak=3e-4"], "missing required key 'steps'"),
    (["schedule", "predict", *REF400, "-s", "cosine:peak=3e-4,steps=100,shape=sqrt"], "unknown key 'shape'"),
    (["schedule", "predict", *REF400], "give a schedule"),
    (["schedule", "predict", "-s", COS400], "give --fit fit.json"),
    (["schedule", "predict", "--law", "multipower", "--reference", "7B", "-s", COS400], "known sets: 25M, 100M, 400M"),
    (["schedule", "predict", "--law", "multipower", "-s", COS400], "no value for L0"),
    (["schedule", "predict", "--law", "chinchilla", "--reference", "hoffmann", "-s", COS400], "not a loss-curve law"),
    (["schedule", "predict", *REF400, "--set", "Q=1", "-s", COS400], "no such parameter"),
    (["schedule", "predict", *REF400, "--law-opt", "speed=1", "-s", COS400], "valid options"),
    (["schedule", "predict", "--fit", "nope.json", "-s", COS400], "no such fit file"),
    (["schedule", "predict", *REF400, "--lr-table", "nope.csv", "--run", "a"], "no such file"),
    (["schedule", "optimize", *REF400, "--peak", "3e-4", "--steps", "1000", "--warmup", "2000"], "warm-up"),
    (["schedule", "optimize", *REF400, "--peak", "3e-4", "--steps", "1000", "--floor", "1"], "--floor"),
    (["schedule", "optimize", *REF400, "--peak", "3e-4", "--steps", "1000", "--family", "zigzag"], "--family"),
])
def test_bad_input_is_one_clean_line(args, match):
    assert_clean_error(run(*args), match)


@pytest.mark.skipif(not TISSUE.exists(), reason="shared Tissue example not present")
def test_fit_then_predict_from_fit_json_with_intervals(tmp_path):
    """The core `fit` command on a curve table, then `schedule predict/compare --fit`."""
    from scalefit.schedule import parse_schedule

    lrs = tmp_path / "lrs.csv"
    rows = []
    for name, spec in (("cosine", "cosine:peak=2e-4,steps=20001,warmup=500"),
                       ("constant", "constant:peak=2e-4,steps=20001,warmup=500")):
        eta = parse_schedule(spec).lr()
        rows.append(pd.DataFrame({"run": name, "step": np.arange(eta.size), "lr": eta}))
    pd.concat(rows).to_csv(lrs, index=False)
    fit_json = tmp_path / "fit.json"
    res = run("fit", TISSUE, "--law", "lr_annealing", "--col", "run=schedule", "--lr-table", lrs,
              "--bootstrap", 30, "--out", fit_json)
    assert res.exit_code == 0, res.output
    out = ok_json("schedule", "predict", "--fit", fit_json, "-s", "cosine:peak=2e-4,steps=20001,warmup=500", "--every", 5000)
    assert 2.80 < out["final_loss"] < 2.87 and out["final_loss_low"] <= out["final_loss"] <= out["final_loss_high"]
    assert out["warnings"] == []  # within the fitted 20,000 steps
    # 3x past the longest fitted curve: said on stderr and in the JSON, in every schedule command.
    far = "cosine:peak=2e-4,steps=60000,warmup=500"
    res = run("schedule", "predict", "--fit", fit_json, "-s", far, "--every", 10000, "--json")
    assert res.exit_code == 0 and "3.0x the longest fitted curve (20,000 steps)" in res.stderr
    assert "extrapolated" in json.loads(res.stdout)["warnings"][0]
    assert len(ok_json("schedule", "compare", "--fit", fit_json, "-s", far, "-s", "constant:peak=2e-4,steps=20001,warmup=500")["warnings"]) == 1
    assert ok_json("schedule", "optimize", "--fit", fit_json, "--peak", 2e-4, "--steps", 60000, "--warmup", 500,
                   "--family", "wsd")["warnings"]
    cmp = ok_json("schedule", "compare", "--fit", fit_json, "-s", "cosine:peak=2e-4,steps=20001,warmup=500",
                  "-s", "wsd:peak=2e-4,steps=20001,warmup=500,cooldown=0.2,shape=sqrt")
    assert all("low" in r and "vs_best_low" in r for r in cmp["schedules"])
    png = tmp_path / "curves.png"
    res = run("schedule", "predict", "--fit", fit_json, "--data", TISSUE, "--col", "run=schedule",
              "--data-lr-table", lrs, "--holdout", "constant", "--plot", png, "--json")
    assert res.exit_code == 0, res.output
    scored = json.loads(res.stdout)
    assert {r["run"] for r in scored["runs"]} == {"cosine", "constant"} and scored["mean_r2"] > 0.99
    assert png.exists()
