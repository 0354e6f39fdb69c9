"""Optimal LR and batch size (Step Law): cell optima, the law, hp.json, the CLI, and the authors' numbers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, ok_json, run

from scalefit.errors import DataError
from scalefit.hparams import (
    KIND,
    NAMES,
    fit_hparams,
    import_draws,
    is_hparams_file,
    load_hparams,
    published,
    save_hparams,
)
from scalefit.hparams.optimum import cell_optimum

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hparams"
DENSE = SHARED / "steplaw_dense_lr_bs_loss.csv"
MOE = SHARED / "steplaw_moe_lr_bs_loss.csv"
DRAWS = SHARED / "steplaw_fitted_bootstrap_params.csv"
needs_data = pytest.mark.skipif(not (DENSE.exists() and DRAWS.exists()), reason="shared Step Law data not present")
LR_STEP = math.log(math.sqrt(2))  # the Step Law sweep's LR grid spacing (log)


# ------------------------------------------------------------------------------------------- synthetic sweeps
TRUTH = (1.5, -0.7, 0.3, -0.5, 0.57)  # lr_intercept, lr_coefN, lr_coefD, bs_intercept, bs_coefD


def _sweep(noise=0.0, seed=0, cells=((2e8, 4e9), (2e8, 2e10), (4e8, 8e9), (4e8, 4e10), (8e8, 1.6e10), (8e8, 8e10),
                                     (1.6e9, 3.2e10))):
    """A sweep on a sqrt(2) LR grid and a doubling batch grid (sequences of 2048) whose loss is a bowl in
    (log lr, log batch) around the optimum that TRUTH gives: the optima fall between grid points."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in cells:
        lr_opt = math.exp(TRUTH[0] + TRUTH[1] * math.log(n) + TRUTH[2] * math.log(d))
        bs_opt = math.exp(TRUTH[3] + TRUTH[4] * math.log(d))
        for lr in 2.0 ** np.arange(-14, -4, 0.5):
            for bs in 2.0 ** np.arange(4, 13):
                dx, dy = math.log(lr / lr_opt), math.log(bs * 2048 / bs_opt)
                if abs(dx) > 2.2 or abs(dy) > 2.2:
                    continue
                loss = 2.5 * (1 + 0.02 * dx * dx + 0.006 * dx * dy + 0.01 * dy * dy) * math.exp(noise * rng.normal())
                rows.append({"N": n, "D": d, "lr": lr, "bs": bs, "ti": d / (bs * 2048), "loss": loss})
    return pd.DataFrame(rows)


def test_smooth_places_optima_between_grid_points_and_recovers_the_law():
    frame = _sweep()
    grid = fit_hparams(frame, optimum="grid", n_bootstrap=0)
    smooth = fit_hparams(frame, optimum="smooth", n_bootstrap=0)
    assert grid.seq_len == 2048 and grid.data["batch_unit"] == "sequences"  # inferred from ti x bs x 2048 = D
    truth = np.array(TRUTH)
    # an exact bowl: the smooth vertex is the optimum; the grid's best run misses it by up to a grid step
    assert all(c.method == "smooth" for c in smooth.cells)
    np.testing.assert_allclose(smooth.theta[[1, 2, 4]], truth[[1, 2, 4]], atol=2e-3)
    np.testing.assert_allclose(smooth.theta, truth, atol=0.05)
    assert np.max(np.abs(grid.theta[[1, 2, 4]] - truth[[1, 2, 4]])) > 10 * np.max(
        np.abs(smooth.theta[[1, 2, 4]] - truth[[1, 2, 4]]))
    for c in smooth.cells:
        lr_opt = math.exp(TRUTH[0] + TRUTH[1] * math.log(c.params) + TRUTH[2] * math.log(c.tokens))
        assert c.lr == pytest.approx(lr_opt, rel=1e-3)
        assert abs(math.log(c.grid_lr / lr_opt)) <= LR_STEP


def test_noisy_sweep_smooth_beats_grid_and_the_bootstrap_is_seeded():
    frame = _sweep(noise=0.002, seed=3)
    errs = {}
    for optimum in ("grid", "smooth"):
        f = fit_hparams(frame, optimum=optimum, n_bootstrap=100, seed=7)
        errs[optimum] = abs(f.theta[1] - TRUTH[1]) + abs(f.theta[2] - TRUTH[2])
        iv = f.intervals()
        for name, true in zip(NAMES[1:3], TRUTH[1:3]):
            assert iv[name][0] <= true <= iv[name][1], (optimum, name, iv[name], true)
    assert errs["smooth"] < errs["grid"]
    a = fit_hparams(frame, optimum="smooth", n_bootstrap=50, seed=7)
    b = fit_hparams(frame, optimum="smooth", n_bootstrap=50, seed=7)
    c = fit_hparams(frame, optimum="smooth", n_bootstrap=50, seed=8)
    assert np.array_equal(a.draws, b.draws) and not np.array_equal(a.draws, c.draws)


def test_flat_region_and_cell_notes():
    lr = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1e-3, 2e-3, 4e-3, 8e-3])
    bs = np.array([1e5, 1e5, 1e5, 1e5, 2e5, 2e5, 2e5, 2e5])
    loss = np.array([2.03, 2.004, 2.0, 2.2, 2.02, 2.009, 2.011, 2.3])
    c = cell_optimum(1e8, 1e9, lr, bs, loss, optimum="grid", flat=0.005)
    assert (c.lr, c.batch_tokens, c.n_flat) == (4e-3, 1e5, 3)
    assert c.flat_lr == (2e-3, 4e-3) and c.flat_batch_tokens == (1e5, 2e5)
    assert "batch at the edge" in c.note
    smooth = cell_optimum(1e8, 1e9, lr, bs, loss, optimum="smooth")  # 8 runs: too few for the local fit
    assert smooth.method == "grid" and "grid optimum kept" in smooth.note


def test_batch_in_tokens_and_seq_len_sources():
    frame = _sweep().drop(columns="ti")
    with pytest.raises(DataError, match="cannot tell whether the batch column counts sequences or tokens"):
        fit_hparams(frame, n_bootstrap=0)
    by_option = fit_hparams(frame, seq_len=2048, n_bootstrap=0)
    by_column = fit_hparams(frame.assign(seq_len=2048), n_bootstrap=0)
    tokens = fit_hparams(frame.assign(bs=frame.bs * 2048), batch_unit="tokens", n_bootstrap=0)
    np.testing.assert_allclose(by_option.theta, by_column.theta)
    np.testing.assert_allclose(by_option.theta, tokens.theta)
    assert tokens.seq_len is None and tokens.predict(7e9, 1.4e12).batch_sequences is None
    assert tokens.predict(7e9, 1.4e12, seq_len=4096).batch_sequences == pytest.approx(
        tokens.predict(7e9, 1.4e12).batch_tokens / 4096)


# ------------------------------------------------------------------------------------------- bad input
def _bad(frame, tmp_path, match, name="sweep.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=re.escape(match)) as exc:
        fit_hparams(path, n_bootstrap=0)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    res = run("hparams", "fit", path, "--bootstrap", 0)
    assert_clean_error(res, match)
    return res


def test_bad_input_is_one_line_exit_2(tmp_path):
    frame = _sweep()
    one = pd.concat([frame, pd.DataFrame([{"N": 3e9, "D": 6e10, "lr": 1e-3, "bs": 256, "ti": 6e10 / (256 * 2048),
                                            "loss": 2.0}])])
    _bad(one, tmp_path, "the cell N=3e+09, D=6e+10 has 1 run;")
    neg = frame.copy()
    neg.loc[5, "lr"] = -0.001
    _bad(neg, tmp_path, "column 'lr' (lr) row 6 = -0.001: must be a positive finite number")
    zero = frame.copy()
    zero.loc[0, "lr"] = 0
    _bad(zero, tmp_path, "column 'lr' (lr) row 1 = 0: must be a positive")
    _bad(frame.drop(columns="lr"), tmp_path, "no column for lr")
    _bad(frame.drop(columns="loss"), tmp_path, "no column for loss")
    text = frame.astype({"lr": object})
    text.loc[2, "lr"] = "fast"
    _bad(text, tmp_path, "column 'lr' (lr) row 3: 'fast' is not a number")
    few = frame[frame.N == frame.N.iloc[0]]
    _bad(few, tmp_path, "every cell has the same N")
    _bad(frame[frame.N < 1e9].groupby("N").head(1000)[lambda f: f.D.isin([4e9, 8e9, 1.6e10])], tmp_path,
         "3 (params, tokens) cell(s); the LR law has 3 coefficients and needs at least 4 cells")
    res = run("hparams", "fit", tmp_path / "sweep.csv", "--col", "lr=nope")
    assert_clean_error(res, "column 'nope' (for lr) not found")
    assert_clean_error(run("hparams", "fit", tmp_path / "sweep.csv", "--optimum", "best"), "--optimum 'best'")
    assert_clean_error(run("hparams", "fit", tmp_path / "sweep.csv", "--window", "0"), "--window 0")


def test_hp_json_round_trip_and_kind(tmp_path):
    fit = fit_hparams(_sweep(noise=0.002), n_bootstrap=40, seed=1)
    path = save_hparams(fit, tmp_path / "hp.json")
    payload = json.loads(path.read_text())
    assert payload["kind"] == KIND and payload["schema"] == "scalefit.hparams/1"
    back = load_hparams(path)
    assert np.array_equal(back.theta, fit.theta) and np.array_equal(back.draws, fit.draws)
    a, b = fit.predict(7e9, 1.4e12), back.predict(7e9, 1.4e12)
    assert (a.lr, a.lr_interval, a.batch_tokens, a.flat_lr) == (b.lr, b.lr_interval, b.batch_tokens, b.flat_lr)
    with pytest.raises(DataError, match="already exists"):
        save_hparams(fit, path)
    payload["params"]["lr_coefN"] = "x"
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(DataError, match=r"field params.lr_coefN must be a finite number"), pytest.warns(UserWarning):
        load_hparams(tmp_path / "bad.json")
    payload["params"]["lr_coefN"] = 10**400  # valid JSON, too large for a float: an error, not a traceback
    (tmp_path / "huge.json").write_text(json.dumps(payload))
    with pytest.raises(DataError, match=r"field params.lr_coefN must be a finite number"), pytest.warns(UserWarning):
        load_hparams(tmp_path / "huge.json")
    payload["params"]["lr_coefN"] = -0.5
    (tmp_path / "edited.json").write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        load_hparams(tmp_path / "edited.json")
    # neither file passes for the other
    from scalefit.fitfile import read_payload

    with pytest.raises(DataError, match="not a scalefit fit file"):
        read_payload(path)
    law_fit = tmp_path / "fit.json"
    law_fit.write_text(json.dumps({"schema": "scalefit.fit/1", "law": {"name": "chinchilla"}}))
    assert not is_hparams_file(law_fit) and is_hparams_file(path)
    with pytest.raises(DataError, match="not a scalefit hparams file"):
        load_hparams(law_fit)
    assert_clean_error(run("hparams", "predict", "--fit", law_fit, "--params", "7B", "--tokens", "1T"),
                       "not a scalefit hparams file")


def test_cli_fit_and_both_predict_routes(tmp_path):
    src = tmp_path / "sweep.csv"
    _sweep(noise=0.002).to_csv(src, index=False)
    out = ok_json("hparams", "fit", src, "--out", tmp_path / "hp.json", "--bootstrap", 30)
    assert out["kind"] == KIND and set(out["comparison"]) == {"grid", "smooth"}
    via_predict = ok_json("predict", "--fit", tmp_path / "hp.json", "--params", "7B", "--tokens", "1.4T")
    via_group = ok_json("hparams", "predict", "--fit", tmp_path / "hp.json", "--params", "7B", "--tokens", "1.4T")
    assert via_predict == via_group and via_predict["kind"] == "hparams"
    assert via_predict["batch_sequences"]["value"] == pytest.approx(via_predict["batch_tokens"]["value"] / 2048)
    table = run("predict", "--fit", tmp_path / "hp.json", "--params", "7B", "--tokens", "1.4T", "--seq-len", "4096")
    assert table.exit_code == 0 and "sequences of 4096" in table.stdout and "peak learning rate" in table.stdout
    assert_clean_error(run("predict", "--fit", tmp_path / "hp.json", "--params", "7B"), "give --params and --tokens")
    assert_clean_error(run("predict", "--fit", tmp_path / "hp.json", "--compute", "1e23"), "not --compute")
    assert_clean_error(run("predict", "--law", "chinchilla", "--reference", "--params", "7B", "--tokens", "1T",
                           "--seq-len", "2048"), "--seq-len applies to an hparams fit")
    assert_clean_error(run("hparams", "fit", src, "--out", tmp_path / "hp.json"), "already exists")
    assert out["n_draws"] + out["diagnostics"].get("dropped_draws", 0) == 30 and "draws" not in out
    ref = ok_json("hparams", "predict", "--reference", "steplaw", "--params", "7B", "--tokens", "1.4T")
    assert ref["lr"]["interval"] is None and ref["seq_len"] == 2048
    assert_clean_error(run("hparams", "predict", "--fit", tmp_path / "hp.json", "--reference", "steplaw", "--params",
                           "7B", "--tokens", "1T"), "one of them")
    assert_clean_error(run("hparams", "predict", "--reference", "chinchilla", "--params", "7B", "--tokens", "1T"),
                       "--reference 'chinchilla': unknown published law")
    assert_clean_error(run("hparams", "fit", src, "--resample", "rows"), "--resample 'rows': use one of runs, cells")
    no_len = tmp_path / "no_len.csv"
    _sweep().drop(columns="ti").to_csv(no_len, index=False)
    assert_clean_error(run("hparams", "fit", no_len), "give --seq-len 2048 (tokens per sequence")
    human = run("hparams", "fit", src, "--bootstrap", 0)
    assert human.exit_code == 0 and "procedures compared" in human.stdout and "LOCO" in human.stdout


def test_import_refuses_what_is_not_a_table_of_bootstrap_fits(tmp_path):
    good = pd.DataFrame([TRUTH, [v + 0.01 for v in TRUTH]], columns=list(NAMES))
    good.to_csv(tmp_path / "draws.csv", index=False)
    fit = import_draws(tmp_path / "draws.csv", seq_len=1024)
    np.testing.assert_allclose(fit.theta, good.mean().to_numpy())
    assert fit.predict(1e9, 1e11).seq_len == 1024 and fit.estimate.startswith("mean of bootstrap draws")
    good.drop(columns="bs_coefD").to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="column 'bs_coefD' not found"):
        import_draws(tmp_path / "short.csv")
    bad = good.astype(object)
    bad.loc[1, "lr_coefN"] = "n/a"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="row 2 holds a missing, non-numeric or non-finite value"):
        import_draws(tmp_path / "bad.csv")
    good.assign(bs_coefN=0.1).to_csv(tmp_path / "withn.csv", index=False)
    with pytest.raises(DataError, match="bs_coefN"):
        import_draws(tmp_path / "withn.csv")


# ------------------------------------------------------------------------------------------- the authors' numbers
@pytest.fixture(scope="module")
def authors():
    draws = pd.read_csv(DRAWS)[list(NAMES)]
    return {"mean": draws.mean().to_numpy(), "sd": draws.std().to_numpy(),
            "lo": draws.quantile(0.025).to_numpy(), "hi": draws.quantile(0.975).to_numpy()}


@pytest.fixture(scope="module")
def grid_fit():
    return fit_hparams(DENSE, optimum="grid", n_bootstrap=1000, seed=0)


@pytest.fixture(scope="module")
def smooth_fit():
    return fit_hparams(DENSE, optimum="smooth", n_bootstrap=300, seed=0)


@needs_data
def test_dense_table_is_read_as_the_authors_read_it(grid_fit):
    assert grid_fit.data["n_runs"] == 1911 and grid_fit.n_cells == 17
    assert grid_fit.data["columns"]["loss"] == "smooth loss" and grid_fit.seq_len == 2048
    frame = pd.read_csv(DENSE)
    best = frame.loc[frame.groupby(["N", "D"])["smooth loss"].idxmin()].sort_values(["N", "D"])
    np.testing.assert_allclose([c.grid_lr for c in grid_fit.cells], best.lr)
    np.testing.assert_allclose([c.batch_tokens for c in grid_fit.cells], best.bs * 2048)
    # the flat region, computed independently: runs within 0.5 % of each cell's best smooth loss
    for c, (_, cell) in zip(grid_fit.cells, frame.groupby(["N", "D"])):
        near = cell[cell["smooth loss"] <= cell["smooth loss"].min() * 1.005]
        assert c.flat_lr == (near.lr.min(), near.lr.max()) and c.n_flat == len(near)


@needs_data
def test_grid_procedure_against_the_authors_bootstrap(grid_fit, authors):
    """The authors' per-cell-minimum procedure on the released table, bootstrap means vs theirs.

    The batch law reproduces: both bootstrap means fall inside the central 95 % of the authors' 1,000 fits.
    The LR law does not: the released 17 cells give lr_coefN -0.83 where the authors' fits (on more runs than
    were released; their own code on this table gives -0.77, step-law/steplaw#10) spread only 0.03 around
    -0.713. What this table can say is checked instead: every one of the authors' means lies inside this
    fit's 95 % interval, and their law reaches the released cells' best runs to within one LR grid step.
    """
    mean = grid_fit.draws.mean(axis=0)
    assert np.all((mean[3:] >= authors["lo"][3:]) & (mean[3:] <= authors["hi"][3:])), mean[3:]
    assert np.all(np.abs(mean[3:] - authors["mean"][3:]) < authors["sd"][3:])
    assert abs(mean[2] - authors["mean"][2]) < 3 * authors["sd"][2]  # lr_coefD 0.26 vs 0.307 (sd 0.019)
    iv = grid_fit.intervals()
    for name, value in zip(NAMES, authors["mean"]):
        assert iv[name][0] <= value <= iv[name][1], (name, iv[name], value)
    cells = grid_fit.cells
    theirs = authors["mean"][0] + authors["mean"][1] * np.log([c.params for c in cells]) + authors["mean"][2] * np.log(
        [c.tokens for c in cells])
    assert np.sqrt(np.mean((np.log([c.grid_lr for c in cells]) - theirs) ** 2)) < LR_STEP


@needs_data
def test_predict_agrees_with_the_authors_tool(tmp_path, authors, grid_fit, smooth_fit):
    """Their tool (fit_tool.py pred-opt-lr-bs) reports the mean model: exp of the mean log-form parameters."""
    n, d, seq = 7e9, 1.4e12, 2048
    lr_tool = math.exp(authors["mean"][0] + authors["mean"][1] * math.log(n) + authors["mean"][2] * math.log(d))
    bs_tool = math.exp(authors["mean"][3] + authors["mean"][4] * math.log(d))
    assert run("hparams", "import", DRAWS, "--out", tmp_path / "steplaw.json", "--seq-len", seq).exit_code == 0
    got = ok_json("predict", "--fit", tmp_path / "steplaw.json", "--params", "7B", "--tokens", "1.4T")
    assert got["lr"]["value"] == pytest.approx(lr_tool, rel=1e-12)
    assert got["batch_tokens"]["value"] == pytest.approx(bs_tool, rel=1e-12)
    assert got["batch_sequences"]["value"] == pytest.approx(bs_tool / seq, rel=1e-12)
    assert lr_tool == pytest.approx(9.347e-4, rel=1e-3) and bs_tool / seq == pytest.approx(2440, rel=1e-3)
    lo, hi = got["lr"]["interval"]
    assert lo < lr_tool < hi
    ref = published("steplaw").predict(n, d)
    assert ref.lr == pytest.approx(lr_tool, rel=1e-12) and ref.batch_tokens == pytest.approx(bs_tool, rel=1e-12)
    # this table's own fits, by either procedure, hold the tool's answer inside their 95 % intervals
    for fit in (grid_fit, smooth_fit):
        fc = fit.predict(n, d)
        assert fc.lr_interval[0] < lr_tool < fc.lr_interval[1]
        assert fc.batch_tokens_interval[0] < bs_tool < fc.batch_tokens_interval[1]
        assert len(fc.warnings) == 2  # both N and D lie beyond the fitted cells


@needs_data
def test_leave_one_cell_out_for_both_procedures(grid_fit):
    comp = grid_fit.comparison
    grid, smooth = comp["grid"]["loco"], comp["smooth"]["loco"]
    # measured: grid 0.259, smooth 0.124 against its own optima and 0.235 against the grid's best runs
    assert grid["lr_rms_log"] < LR_STEP and smooth["lr_rms_log"] < grid["lr_rms_log"]
    assert smooth["lr_rms_log_vs_grid"] <= grid["lr_rms_log"]
    assert grid["lr_rms_log_vs_grid"] == grid["lr_rms_log"]
    assert sum(c.method == "smooth" for c in fit_hparams(DENSE, optimum="smooth", n_bootstrap=0).cells) >= 15


@needs_data
def test_moe_table_needs_active_params(tmp_path):
    with pytest.raises(DataError, match="the cells' N span only a factor 1 .* map params to the active parameters"):
        fit_hparams(MOE, n_bootstrap=0)
    moe = fit_hparams(MOE, columns={"params": "Na"}, n_bootstrap=0)
    assert moe.n_cells == 16 and moe.seq_len == 2048 and moe.data["seq_len_from"] == "column 'seq_len'"
    assert all(np.isfinite(moe.theta))  # no bar on the values: the README reports what they are


# ------------------------------------------------------------------------------------------- review fixes
def test_an_interval_at_another_level_uses_that_levels_stretch():
    """The t/z stretch of an interval at level ci used to be taken at the fit's own level: an interval at 50 %
    from a 95 % fit was stretched by t/z at 95 % (x1.42 with 7 cells, where 50 % needs x1.10)."""
    import dataclasses

    fit = fit_hparams(_sweep(noise=0.01), n_bootstrap=200, seed=0)
    assert fit.ci == 0.95 and fit.n_cells == 7
    at_50 = dataclasses.replace(fit, ci=0.5)  # the same draws and cells, made at 50 %
    assert fit.intervals(0.5) == at_50.intervals()
    assert fit.intervals(0.5) != fit.intervals()
    here, there = fit.predict(7e9, 1.4e12, ci=0.5), at_50.predict(7e9, 1.4e12)
    assert here.lr_interval == there.lr_interval and here.batch_tokens_interval == there.batch_tokens_interval
    assert here.ci == 0.5
    with pytest.raises(DataError, match="^ci=1.5: the interval level"):
        fit.intervals(1.5)


@pytest.mark.parametrize("bad", [-5.0, 0.5, float("nan"), float("inf")])
def test_published_values_refuse_a_bad_seq_len(bad):
    with pytest.raises(DataError, match="^seq_len=.*: the sequence length must be a positive number of tokens"):
        published("steplaw", seq_len=bad)
    assert published("steplaw", seq_len=4096).predict(7e9, 1.4e12).seq_len == 4096


def test_cli_reference_predict_with_a_negative_seq_len_is_one_line():
    """It used to print a negative batch in sequences and exit 0."""
    res = run("hparams", "predict", "--reference", "steplaw", "--params", "7B", "--tokens", "1.4T", "--seq-len", "-5")
    assert_clean_error(res, "--seq-len -5: the sequence length must be a positive number of tokens")
