"""`scalefit import log`: training log lines in the formats Megatron-LM and nanoGPT print (their format
strings reproduced here), and plain ``key=value`` loops; restarts across log files."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_clean_error, run

from scalefit.errors import DataError
from scalefit.importers import import_runs
from scalefit.importers.logs import parse_line


def megatron_log(path, iterations, lr, loss, *, val_every=None, args=True, total=500000):
    """Lines as Megatron-LM's training_log() and evaluate_and_print_results() format them."""
    lines = []
    if args:
        lines.append("------------------------ arguments ------------------------")
        for arg, value in (("global_batch_size", 512), ("num_layers", 12), ("seq_length", 2048)):
            lines.append("  {} {} {}".format(arg, "." * (48 - len(arg)), value))
        lines.append("-------------------- end of arguments ---------------------")
    for it, rate, value in zip(iterations, lr, loss):
        s = " iteration {:8d}/{:8d} |".format(it, total)
        s += " consumed samples: {:12d} |".format(it * 512)
        s += " elapsed time per iteration (ms): {:.1f} |".format(1234.5)
        s += " learning rate: {:.3E} |".format(rate)
        s += " global batch size: {:5d} |".format(512)
        s += " {}: {:.6E} |".format("lm loss", value)
        s += " loss scale: {:.1f} |".format(1.0)
        s += " grad norm: {:.3f} |".format(0.9)
        s += " number of skipped iterations: {:3d} |".format(0)
        lines.append(s)
        if val_every and it % val_every == 0:
            lines.append("-" * 60)
            lines.append(" validation loss at iteration {} | lm loss value: {:.6E} | lm loss PPL: {:.6E} | ".format(
                it, value + 0.05, np.exp(value + 0.05)))
            lines.append("-" * 60)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_megatron_lines_lr_loss_and_arguments(tmp_path):
    its = np.arange(10, 2010, 10)
    lr = 3e-4 * np.minimum(1.0, its / 200)  # linear warm-up to step 200, then constant
    loss = 8.0 - np.log(its) / 3
    log = megatron_log(tmp_path / "gpt-350m.log", its, lr, loss, val_every=500)
    imported = import_runs("log", [log])
    frame = imported.frame
    assert frame["run"].unique().tolist() == ["gpt-350m"]
    logged = frame.dropna(subset=["loss"])
    np.testing.assert_array_equal(logged["step"], its)
    np.testing.assert_allclose(logged["loss"], loss, rtol=1e-6)  # printed with 7 significant digits
    # LR printed every 10 iterations, as %.3E: back at every step, the ramp extended to 0 at step 0
    np.testing.assert_allclose(frame["lr"].iloc[:2001], 3e-4 * np.minimum(1.0, np.arange(2001) / 200), rtol=2e-3,
                               atol=1e-12)
    assert set(frame["seq_len"]) == {2048.0} and set(frame["batch_tokens"]) == {512.0 * 2048}
    notes = " ".join(imported.notes)
    assert "loss: 'lm loss' (also logged: 'lm loss value'" in notes and "lr: 'learning rate'" in notes

    val = import_runs("log", [log], loss="lm loss value", lr="none")
    np.testing.assert_array_equal(val.frame["step"], np.arange(500, 2001, 500))


def test_nanogpt_and_key_value_lines():
    assert parse_line("iter 100: loss 3.2100, time 12.34ms, mfu 5.20%") == (100.0, {"loss": 3.21})
    assert parse_line("step 2000: train loss 3.1000, val loss 3.2100") == (2000.0, {"train loss": 3.1,
                                                                                  "val loss": 3.21})
    assert parse_line("step=100 loss=3.2 lr=1e-4 tokens=409600") == (100.0, {"loss": 3.2, "lr": 1e-4,
                                                                            "tokens": 409600.0})
    assert parse_line("[2024-01-01 12:00:00,123] INFO step: 5 | loss: 2.5") == (5.0, {"loss": 2.5})
    # a printed dict without a step cannot be placed
    assert parse_line("{'loss': 3.2, 'learning_rate': 5e-05, 'epoch': 0.01}")[0] is None


def test_restart_across_two_log_files_as_one_run(tmp_path):
    first = tmp_path / "job.1.log"
    second = tmp_path / "job.2.log"
    first.write_text("".join(f"step={s} loss={5.0} lr=0.001\n" for s in range(0, 1000, 10)))
    # the job died after step 990 and resumed from its checkpoint at 800
    second.write_text("".join(f"step={s} loss={4.0} lr=0.001\n" for s in range(800, 1500, 10)))
    out = tmp_path / "runs.csv"
    res = run("import", "log", first, second, "--run", "job", "--min-step", "1", "--out", out)
    assert res.exit_code == 0, res.output
    assert "the step went back 1 time(s) (restarts); 20 value(s) purged (logged before a restart" in res.stderr
    assert "repeated step" not in res.stderr  # the resumed run's steps are its own, not repeats
    import pandas as pd

    table = pd.read_csv(out).dropna(subset=["loss"]).set_index("step")
    assert table.loss[790] == 5.0 and table.loss[800] == 4.0 and table.index[0] == 10
    assert table.index.is_unique and table.index.is_monotonic_increasing


def _two_attempts(tmp_path, resumed_steps):
    """A job logged every 10 steps to 990 (loss 5), died, and resumed from its checkpoint (loss 4)."""
    first, second = tmp_path / "job.1.log", tmp_path / "job.2.log"
    first.write_text("".join(f"step={s} loss=5.0\n" for s in range(0, 1000, 10)))
    second.write_text("".join(f"step={s} loss=4.0\n" for s in resumed_steps))
    imported = import_runs("log", [first, second], run="job")
    return imported.frame.set_index("step")["loss"], " ".join(imported.notes)


def test_a_resume_at_another_log_interval_leaves_no_sawtooth(tmp_path):
    loss, notes = _two_attempts(tmp_path, range(600, 1500, 25))  # resumed from 600, logging every 25
    assert loss.index.tolist() == list(range(0, 600, 10)) + list(range(600, 1500, 25))
    assert (loss[loss.index < 600] == 5.0).all() and (loss[loss.index >= 600] == 4.0).all()
    # 600..990 of the first attempt purged: 40 values, 32 of them at steps (610, 620, ...) the resume skips
    assert "40 value(s) purged (logged before a restart, at or after the step it resumed from; 32 of them at " \
           "steps not logged again" in notes


def test_a_resume_that_stopped_early_keeps_no_stale_tail(tmp_path):
    loss, notes = _two_attempts(tmp_path, range(600, 810, 10))  # resumed from 600, stopped at 800
    assert loss.index[-1] == 800 and loss[800] == 4.0  # not the first attempt's 810..990
    assert loss.index.tolist() == list(range(0, 810, 10))
    assert "40 value(s) purged" in notes and "19 of them at steps not logged again" in notes


def test_restarts_within_one_log_purge_like_tensorboard():
    from scalefit.importers.series import RunLog, Series, clean

    # 0..5, back to 3 (purges 3..5), on to 6, back to 1 (purges 1..6 of both attempts), on to 4
    steps = [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 1, 2, 3, 4]
    values = [10, 11, 12, 13, 14, 15, 23, 24, 25, 26, 31, 32, 33, 34]
    run = RunLog("r", "test", {})
    cleaned = clean(Series(steps, values), run, "loss")
    assert cleaned.steps.tolist() == [0, 1, 2, 3, 4]
    assert cleaned.values.tolist() == [10, 31, 32, 33, 34]
    assert (cleaned.restarts, cleaned.purged, cleaned.orphaned, cleaned.repeated) == (2, 9, 3, 0)
    # a step logged twice in a row is a repeat, not a restart: the later value wins
    again = clean(Series([0, 1, 1, 2], [1.0, 2.0, 3.0, 4.0]), run, "loss")
    assert again.values.tolist() == [1.0, 3.0, 4.0] and (again.restarts, again.repeated, again.purged) == (0, 1, 0)


def test_logs_of_one_name_that_cannot_be_restarts_are_refused(tmp_path):
    a, b = tmp_path / "seed1.log", tmp_path / "seed2.log"
    a.write_text("".join(f"step={s} loss=5.0\n" for s in range(0, 1000, 10)))
    b.write_text("".join(f"step={s} loss=4.0\n" for s in range(0, 1000, 10)))  # a second run, not a restart
    with pytest.raises(DataError, match="2 logs of run 'job' are not one restarted run \\('loss': one logs steps 0..990, "
                                        "starting at or before the first step of the other \\(0..990\\)\\), and no "
                                        "run id tells them apart"):
        import_runs("log", [a, b], run="job")
    b.write_text("".join(f"step={s} loss=4.0\n" for s in range(300, 1500, 10)))  # overlaps 690 of 990 steps
    with pytest.raises(DataError, match="over more than half of the other"):
        import_runs("log", [a, b], run="job")


def test_a_log_without_steps_is_refused(tmp_path):
    log = tmp_path / "hf.log"
    log.write_text("{'loss': 3.2, 'learning_rate': 5e-05, 'epoch': 0.01}\n" * 3)
    with pytest.raises(DataError, match="no 'key: value' line with a step"):
        import_runs("log", [log])
    out = tmp_path / "runs.parquet"
    assert_clean_error(run("import", "log", tmp_path / "missing.log", "--out", out), "no such training log")
    assert not out.exists()
