"""Curve tables: the four LR sources, and one clear error for each kind of bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalefit.curves import check_points, load_curves, parse_schedule_options
from scalefit.errors import DataError
from scalefit.schedule import parse_schedule

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MPL = SHARED / "data" / "loss_curves" / "mpl_official"
COURSE = SHARED / "data" / "loss_curves" / "course_gpt100m_20b"
COS = "cosine:peak=1e-3,steps=200,warmup=20,floor=1e-4"


def sparse_frame(runs=("a", "b"), steps=range(20, 200, 15)):
    return pd.DataFrame([{"run": r, "step": s, "loss": 3.0 - 0.001 * s} for r in runs for s in steps])


def dense_lr(spec=COS, run="a"):
    return pd.DataFrame({"run": run, "step": np.arange(200), "lr": parse_schedule(spec).lr()})


def one_line_error(call, needle):
    with pytest.raises(DataError) as info:
        call()
    msg = str(info.value)
    assert needle in msg, msg
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- LR sources
def test_schedule_spec_per_run_and_for_all_runs():
    ds = load_curves(sparse_frame(), schedules={"a": COS, "*": "constant:peak=1e-3,steps=200"})
    np.testing.assert_array_equal(ds.lr["a"], parse_schedule(COS).lr())
    assert np.all(ds.lr["b"] == 1e-3)
    assert list(ds.frame["run"].unique()) == ["a", "b"]
    assert ds.frame.groupby("run")["step"].apply(lambda s: s.is_monotonic_increasing).all()


def test_lr_table_and_lr_column_and_schedule_column_agree():
    frame = sparse_frame(runs=("a",))
    from_table = load_curves(frame, lr_table=dense_lr())
    # Dense log: lr at every step, loss only at some (empty loss = LR-only row).
    dense = dense_lr().assign(loss=np.nan)
    dense.loc[dense.step.isin(frame.step), "loss"] = frame.loss.to_numpy()
    from_column = load_curves(dense)
    with_spec = load_curves(frame.assign(schedule=COS))
    for ds in (from_column, with_spec):
        np.testing.assert_array_equal(ds.lr["a"], from_table.lr["a"])
        np.testing.assert_array_equal(ds.column("loss"), from_table.column("loss"))


def test_sparse_lr_column_is_checked_against_the_spec():
    frame = sparse_frame(runs=("a",))
    frame["lr"] = parse_schedule(COS).lr()[frame.step]
    ds = load_curves(frame, schedules={"a": COS})
    assert ds.lr["a"].size == 200
    frame.loc[3, "lr"] *= 1.01
    one_line_error(lambda: load_curves(frame, schedules={"a": COS}), "disagrees with")


def test_label_schedule_column_is_not_mistaken_for_a_spec():
    frame = sparse_frame(runs=("a",)).assign(schedule="cosine_24000")
    one_line_error(lambda: load_curves(frame), "a label, not a spec")
    assert load_curves(frame, schedules={"a": COS}).lr["a"].size == 200


def test_column_aliases_and_mapping():
    frame = sparse_frame().rename(columns={"run": "name", "step": "iteration", "loss": "val/loss"})
    ds = load_curves(frame, columns={"loss": "val/loss"}, schedules={"*": COS})
    assert len(ds) == len(frame)


# ----------------------------------------------------------------------------- bad input
def test_steps_not_increasing():
    frame = sparse_frame(runs=("a",))
    frame.loc[[2, 3], "step"] = frame.loc[[3, 2], "step"].to_numpy()
    one_line_error(lambda: load_curves(frame, schedules={"a": COS}), "steps are not increasing")
    dup = pd.concat([sparse_frame(runs=("a",)).iloc[:3], sparse_frame(runs=("a",)).iloc[2:]])
    one_line_error(lambda: load_curves(dup, schedules={"a": COS}), "steps are not increasing")


@pytest.mark.parametrize("bad", [-1e-4, np.nan])
def test_negative_or_nan_lr(bad):
    table = dense_lr()
    table.loc[50, "lr"] = bad
    one_line_error(lambda: load_curves(sparse_frame(runs=("a",)), lr_table=table), "step 50")
    frame = dense_lr().assign(loss=2.5)
    frame.loc[7, "lr"] = bad
    one_line_error(lambda: load_curves(frame), "LRs must be >= 0")


def test_lr_table_with_gaps():
    table = dense_lr().drop(index=[10, 11])
    one_line_error(lambda: load_curves(sparse_frame(runs=("a",)), lr_table=table), "LR at every step")


def test_lr_table_disagrees_with_schedule():
    table = dense_lr("cosine:peak=1e-3,steps=200,warmup=20,floor=0")
    one_line_error(lambda: load_curves(sparse_frame(runs=("a",)), lr_table=table, schedules={"a": COS}),
                   "disagrees with")


def test_schedule_too_short_for_the_logged_steps():
    one_line_error(lambda: load_curves(sparse_frame(), schedules={"*": "cosine:peak=1e-3,steps=100"}),
                   "covers only steps 0..99")


def test_no_lr_source_and_unknown_run():
    one_line_error(lambda: load_curves(sparse_frame()), "has no LR sequence")
    one_line_error(lambda: load_curves(sparse_frame(), schedules={"zz": COS}), "no run 'zz'")


def test_bad_loss_and_drop_invalid():
    frame = sparse_frame()
    frame.loc[4, "loss"] = -1.0
    one_line_error(lambda: load_curves(frame, schedules={"*": COS}), "drop_invalid=True")
    ds = load_curves(frame, schedules={"*": COS}, drop_invalid=True)
    assert len(ds) == len(frame) - 1 and ds.dropped


def test_too_few_points_for_the_law():
    ds = load_curves(sparse_frame(steps=[50, 60, 70]), schedules={"*": COS})
    one_line_error(lambda: check_points(ds, 7, "multipower"), "has 3 loss point(s) but law 'multipower' has 7")
    from scalefit.fit import fit

    with pytest.raises(DataError, match="7 parameters"):
        fit("multipower", load_curves(sparse_frame(runs=("a", "b", "c"), steps=[50, 60, 70]), schedules={"*": COS}))


def test_schedule_option_parsing():
    assert parse_schedule_options(["a=" + COS, COS]) == {"a": COS, "*": COS}
    one_line_error(lambda: parse_schedule_options(["a=cosine:peak=x,steps=10"]), "not a number")


# ----------------------------------------------------------------------------- real data
@pytest.mark.skipif(not MPL.exists(), reason="shared MPL data not present")
def test_official_mpl_lr_column_equals_reconstructed_schedules():
    tidy = pd.read_csv(MPL / "mpl_curves_tidy.csv")
    sub = tidy[tidy.model_size == "400M"]
    specs = {
        "cosine_24000": "cosine:peak=3e-4,steps=24001,warmup=2160,floor=3e-5",
        "wsd_20000_24000": "wsd:peak=3e-4,steps=24001,warmup=2160,cooldown=4001,shape=exp,floor=3e-5",
    }
    # The loader cross-checks the logged lr column against each spec (relative 1e-6); MPL's own
    # horizon is 24000 steps, the extra step only covers the logged row at step 24000.
    for name in ("cosine_24000", "wsdcon_9"):
        rows = sub[sub.schedule == name]
        spec = {"cosine_24000": "cosine:peak=3e-4,steps=24000,warmup=2160,floor=3e-5",
                "wsdcon_9": "two_stage:peak=3e-4,steps=16000,warmup=2160,switch=8000,low=9e-5"}[name]
        rows = rows[rows.step < parse_schedule(spec).steps]
        ds = load_curves(rows, columns={"run": "schedule"}, schedules={name: spec})
        assert ds.lr[name][2160] == 3e-4
    assert specs  # documented above


@pytest.mark.skipif(not COURSE.exists(), reason="shared course data not present")
def test_course_811_dense_lr_column():
    frame = pd.read_parquet(COURSE / "gpt_loss_lrs.parquet")
    ds = load_curves(frame[frame.schedule == "811"], schedules={"*": "multistep:peak=1e-3,steps=33908"})
    assert ds.lr[ds.run_names[0]].size == 33908
    # The wsd run misses a logged step: its lr column alone is not a full sequence.
    one_line_error(lambda: load_curves(frame[frame.schedule == "wsd"]), "33907 of the 33908 steps")
