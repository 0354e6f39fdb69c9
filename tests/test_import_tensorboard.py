"""`scalefit import tensorboard`: event files written by the real writers (tensorboardX, as PyTorch logs
them, and TensorBoard's own writer), read whole; bad folders and files refused with one line, nothing written."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorboard")
tensorboardX = pytest.importorskip("tensorboardX")

from cli_helpers import assert_clean_error, run  # noqa: E402
from test_import_helpers import STEPS, fit_imported, synthetic_curves  # noqa: E402

from scalefit.errors import DataError  # noqa: E402
from scalefit.importers import import_runs  # noqa: E402


def write_tensorboard(folder, curves, *, lr_tag="lr", loss_tag="train/loss", restart_at=None):
    """One event folder per run, as a PyTorch training loop writes it (tensorboardX ``add_scalar``). With
    ``restart_at``, the job dies at that step and a second writer (a new event file) logs again from
    ``restart_at - 100``, the last checkpoint."""
    for name, c in curves.items():
        logged = dict(zip(c["steps"].tolist(), c["loss"].tolist()))
        spans = [(0, STEPS)] if restart_at is None else [(0, restart_at), (restart_at - 100, STEPS)]
        for part, (start, stop) in enumerate(spans):
            # A suffix per writer: two writers started within one second would otherwise share a file name.
            writer = tensorboardX.SummaryWriter(os.path.join(folder, name), filename_suffix=f".{part}")
            for step in range(start, stop):
                writer.add_scalar(lr_tag, c["lr"][step], step)
                if step in logged:
                    writer.add_scalar(loss_tag, logged[step], step)
            writer.close()


def test_three_runs_import_and_fit_multipower_end_to_end(tmp_path):
    curves = synthetic_curves()
    write_tensorboard(tmp_path / "tb", curves, restart_at=700)
    out = tmp_path / "runs.parquet"
    res = run("import", "tensorboard", tmp_path / "tb", "--out", out)
    assert res.exit_code == 0, res.output
    assert "loss: 'train/loss'" in res.stderr and "lr: 'lr'" in res.stderr
    assert "the step went back 1 time(s)" in res.stderr  # the restart, reported
    table = pd.read_parquet(out)
    assert sorted(table["run"].unique()) == sorted(curves)
    for name, c in curves.items():
        rows = table[table["run"] == name]
        np.testing.assert_array_equal(rows["step"], np.arange(STEPS))  # the LR at every step
        np.testing.assert_allclose(rows["lr"], c["lr"], rtol=1e-7)  # float32 as TensorBoard stores it
        logged = rows.dropna(subset=["loss"])
        np.testing.assert_array_equal(logged["step"], c["steps"])
        np.testing.assert_allclose(logged["loss"], c["loss"], rtol=1e-7)
    assert set(table["loss_unit"]) == {"nats"}
    assert pd.read_parquet(out).attrs["scalefit_import"]["runs"][0]["restarts"] == 1
    serial = import_runs("tensorboard", [tmp_path / "tb"]).frame
    parallel = import_runs("tensorboard", [tmp_path / "tb"], jobs=2).frame  # run folders read in 2 processes
    pd.testing.assert_frame_equal(parallel, serial)
    fit_imported(run, out, tmp_path)


def test_a_50000_step_curve_is_imported_whole(tmp_path):
    # TensorBoard's EventAccumulator would keep a 10,000-point sample of this tag.
    writer = tensorboardX.SummaryWriter(str(tmp_path / "long"))
    loss = 2.0 + 3.0 / np.sqrt(1.0 + np.arange(50_000))
    for step, value in enumerate(loss):
        writer.add_scalar("train/loss", value, step)
    writer.close()
    imported = import_runs("tensorboard", [tmp_path], lr="none")
    frame = imported.frame
    assert len(frame) == 50_000
    np.testing.assert_array_equal(frame["step"], np.arange(50_000))
    np.testing.assert_allclose(frame["loss"], loss.astype(np.float32), rtol=0)


def test_tensorboards_own_writer_and_tensor_scalars(tmp_path):
    """TF2-style scalars (a scalar tensor, not simple_value), written by tensorboard.summary.Writer."""
    from tensorboard.summary import Writer

    writer = Writer(str(tmp_path / "tf2run"))
    for step in range(0, 300):
        writer.add_scalar("optim/learning_rate_group0", 1e-3 * min(1.0, (step + 1) / 30), step=step)
        if step % 10 == 0:
            writer.add_scalar("loss_metrics/global_avg_loss", 4.0 - step / 1000, step=step)
    writer.close()
    imported = import_runs("tensorboard", [tmp_path / "tf2run"], min_step=1)
    frame = imported.frame
    assert frame["run"].unique().tolist() == ["tf2run"]
    logged = frame.dropna(subset=["loss"])
    assert logged["step"].tolist() == list(range(10, 300, 10))  # step 0 dropped by min_step
    np.testing.assert_allclose(frame["lr"].iloc[29], 1e-3, rtol=1e-6)
    assert "loss: 'loss_metrics/global_avg_loss'" in " ".join(imported.notes)


def test_restart_later_value_wins_and_sparse_lr_is_interpolated(tmp_path):
    first = tensorboardX.SummaryWriter(str(tmp_path / "r"), filename_suffix=".0")
    for step in range(0, 600, 10):
        first.add_scalar("train/loss", 5.0, step)
        if step % 50 == 0:
            first.add_scalar("learning_rate", 1e-3 * step / 550, step)  # a linear ramp, logged every 50
    first.close()
    second = tensorboardX.SummaryWriter(str(tmp_path / "r"), filename_suffix=".1")  # restarted from step 500
    for step in range(500, 800, 10):
        second.add_scalar("train/loss", 4.0, step)
        if step % 50 == 0:
            second.add_scalar("learning_rate", 1e-3 * step / 550, step)
    second.close()
    imported = import_runs("tensorboard", [tmp_path])
    frame = imported.frame.set_index("step")
    assert frame.loc[550, "loss"] == 4.0 and frame.loc[490, "loss"] == 5.0
    # The ramp logged every 50 steps comes back at every step.
    np.testing.assert_allclose(frame.loc[:750, "lr"], 1e-3 * np.arange(751) / 550, rtol=1e-6, atol=1e-10)
    text = " ".join(imported.notes)
    assert "LR logged every ~50 steps: filled in by linear interpolation" in text
    assert "loss: the step went back 1 time(s) (restarts); 10 value(s) purged" in text
    assert "lr: the step went back 1 time(s) (restarts); 2 value(s) purged" in text  # 500 and 550


def test_bad_sources_are_one_line_errors_and_write_nothing(tmp_path):
    out = tmp_path / "runs.parquet"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run("import", "tensorboard", empty, "--out", out), "no TensorBoard event files")
    assert_clean_error(run("import", "tensorboard", tmp_path / "missing", "--out", out), "no such folder")

    good = tmp_path / "good" / "a"
    writer = tensorboardX.SummaryWriter(str(good))
    for step in range(100):
        writer.add_scalar("train/loss", 3.0, step)
    writer.close()
    res = run("import", "tensorboard", tmp_path / "good", "--loss", "val/loss", "--out", out)
    assert_clean_error(res, "run 'a' has no key 'val/loss' (--loss 'val/loss'); its keys are: 'train/loss'")

    event = next(good.iterdir())
    blob = bytearray(event.read_bytes())
    corrupt = tmp_path / "corrupt" / "a"
    corrupt.mkdir(parents=True)
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte: a checksum fails half way
    (corrupt / event.name).write_bytes(bytes(blob))
    res = run("import", "tensorboard", tmp_path / "corrupt", "--out", out)
    assert_clean_error(res, "corrupt or cut-short event file")
    assert event.name in res.stderr

    cut = tmp_path / "cut" / "a"
    cut.mkdir(parents=True)
    (cut / event.name).write_bytes(event.read_bytes()[:-7])
    assert_clean_error(run("import", "tensorboard", tmp_path / "cut", "--out", out), "cut-short")
    assert not out.exists()


def test_mixed_units_are_refused(tmp_path):
    for run_name, tag in (("nats_run", "train/loss"), ("bits_run", "train/bpb")):
        writer = tensorboardX.SummaryWriter(str(tmp_path / run_name))
        for step in range(50):
            writer.add_scalar(tag, 3.0, step)
        writer.close()
    out = tmp_path / "runs.parquet"
    res = run("import", "tensorboard", tmp_path, "--out", out)
    assert_clean_error(res, "mixed loss units: run 'bits_run' logs 'train/bpb' (bits) but run 'nats_run' logs "
                            "'train/loss' (nats)")
    assert not out.exists()
    with pytest.raises(DataError, match="--loss-unit|loss_unit='nats': run 'bits_run' logs 'train/bpb'"):
        import_runs("tensorboard", [tmp_path], runs="bits", loss_unit="nats")
    bits = import_runs("tensorboard", [tmp_path], runs="bits")
    assert set(bits.frame["loss_unit"]) == {"bits"}


def test_an_event_file_must_be_a_regular_file_within_the_size_limit(tmp_path, monkeypatch):
    import threading

    fifo_run = tmp_path / "fifo" / "a"
    fifo_run.mkdir(parents=True)
    os.mkfifo(fifo_run / "events.out.tfevents.1700000000.host")  # reading it would block for ever
    outcome = []

    def attempt():
        try:
            import_runs("tensorboard", [tmp_path / "fifo"])
        except DataError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the import blocked on a FIFO"
    assert outcome and "events.out.tfevents.1700000000.host: is a FIFO; the event file must be a regular file" \
        in outcome[0]

    writer = tensorboardX.SummaryWriter(str(tmp_path / "big" / "a"))
    for step in range(100):
        writer.add_scalar("train/loss", 3.0, step)
    writer.close()
    size = next((tmp_path / "big" / "a").iterdir()).stat().st_size
    monkeypatch.setenv("SCALEFIT_MAX_INPUT_BYTES", str(size - 1))
    with pytest.raises(DataError, match="events.out.tfevents.* over the limit .* set SCALEFIT_MAX_INPUT_BYTES"):
        import_runs("tensorboard", [tmp_path / "big"])
    monkeypatch.setenv("SCALEFIT_MAX_INPUT_BYTES", str(size))
    assert len(import_runs("tensorboard", [tmp_path / "big"]).frame) == 100


def test_runs_of_one_name_from_two_folders_are_not_stitched(tmp_path):
    for experiment, loss in (("exp1", 5.0), ("exp2", 4.0)):  # both hold a run folder named 'seed1'
        writer = tensorboardX.SummaryWriter(str(tmp_path / experiment / "seed1"))
        for step in range(0, 500, 10):
            writer.add_scalar("train/loss", loss, step)
        writer.close()
    out = tmp_path / "runs.parquet"
    res = run("import", "tensorboard", tmp_path / "exp1", tmp_path / "exp2", "--out", out)
    assert_clean_error(res, "2 logs of run 'seed1' are not one restarted run ('train/loss': one logs steps 0..490")
    assert "give the folder above both" in res.stderr and not out.exists()
    # as the advice says: from the folder above both, each run is named by its path
    imported = import_runs("tensorboard", [tmp_path])
    frame = imported.frame.set_index("run")
    assert sorted(frame.index.unique()) == ["exp1/seed1", "exp2/seed1"]
    assert set(frame.loc["exp1/seed1", "loss"]) == {5.0} and set(frame.loc["exp2/seed1", "loss"]) == {4.0}
