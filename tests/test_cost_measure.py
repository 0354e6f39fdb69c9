"""``scalefit cost measure|probe`` (issue 16): real step timings and a measured hardware row.

The timing tests run real JAX training steps (skipped without the ``measure`` extra); the input checks
run without JAX, because every shape is refused before JAX is imported.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_clean_error, run

from scalefit import cost
from scalefit.cost import measure, probe
from scalefit.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "examples" / "cost_calibration" / "measured_cpu"
TINY = ("--d-model", "32,48,64", "--layers", "1", "--heads", "2", "--seq-len", "16", "--batch", "2",
        "--vocab", "128", "--warmup", "1", "--repeats", "3")


# ============================================================================ input checks (no JAX needed)
def test_grid_is_the_cartesian_product_with_default_heads_and_d_ff():
    shapes = measure.grid("64,128", "1,2", "32", "2,4", vocab=512)
    assert len(shapes) == 2 * 2 * 2
    assert {(s.d_model, s.heads, s.d_ff) for s in shapes} == {(64, 1, 256), (128, 2, 512)}
    assert all(s.micro_batch == s.batch and not s.fused_attention for s in shapes)
    wide, half = measure.grid("64", "1", "32", "2")[0], measure.grid("64", "1", "32", "2", dtype="bfloat16")[0]
    assert (wide.weight_bytes, wide.act_bytes, wide.grad_bytes, wide.optimizer_bytes) == (4, 4, 4, 8)
    assert (half.weight_bytes, half.act_bytes, half.grad_bytes, half.optimizer_bytes) == (2, 2, 4, 12)


@pytest.mark.parametrize("text", ["64,abc", "0", "64,-1", "1.5", ""])
def test_int_list_refuses_what_is_not_positive_whole_numbers(text):
    with pytest.raises(DataError, match="d_model="):
        measure.int_list(text, "d_model")


@pytest.mark.parametrize("args, fragment", [
    (("--heads", "0"), "--heads"),
    (("--heads", "3"), "not divisible by"),
    (("--d-model", "0"), "--d-model"),
])
def test_bad_shapes_are_one_line_exit_2_and_nothing_written(tmp_path, args, fragment):
    out = tmp_path / "t.csv"
    base = {"--d-model": "64", "--layers": "1", "--seq-len": "16", "--batch": "2"}
    base.update(dict(zip(args[::2], args[1::2])))
    res = run("cost", "measure", *[x for kv in base.items() for x in kv], "--out", out)
    assert_clean_error(res, fragment)
    assert list(tmp_path.iterdir()) == []


def test_a_shape_too_big_for_memory_is_refused_before_anything_is_allocated():
    huge = measure.grid("16384", "64", "4096", "64", vocab=32000)
    need = measure.memory_estimate(huge[0])
    assert need > 1e12  # ~5e10 parameters at 16 bytes each, before activations
    with pytest.raises(DataError, match=r"shape 1 .* needs about .* GB by estimate but host has 32 GB free"):
        measure.check_fits(huge, 32e9, "host")
    measure.check_fits(measure.grid("64", "1", "16", "2"), 32e9, "host")  # a small one passes


def test_shapes_table_errors_name_the_file_and_line(tmp_path):
    good = tmp_path / "shapes.csv"
    good.write_text("d_model,layers,seq_len,batch,heads\n64,1,16,2,2\n96,2,32,1,\n")
    shapes = measure.shapes_from_table(good)
    assert [(s.d_model, s.heads, s.layers) for s in shapes] == [(64, 2, 1), (96, 1, 2)]
    bad = tmp_path / "bad.csv"
    bad.write_text("d_model,layers,seq_len,batch,heads\n64,1,16,2,2\n96,2,32,1,5\n")
    with pytest.raises(DataError, match=r"bad.csv: line 3: d_model=96 is not divisible by heads=5"):
        measure.shapes_from_table(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("d_model,layers,batch\n64,1,2\n")
    res = run("cost", "measure", "--shapes", missing)
    assert_clean_error(res, "missing column(s) seq_len")


def test_shapes_and_a_grid_together_are_refused(tmp_path):
    table = tmp_path / "s.csv"
    table.write_text("d_model,layers,seq_len,batch\n64,1,16,2\n")
    assert_clean_error(run("cost", "measure", "--shapes", table, "--d-model", "64"), "not both")


def test_an_existing_output_is_refused_before_measuring(tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("keep me\n")
    res = run("cost", "measure", *TINY, "--out", out)
    assert_clean_error(res, "already exists")
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize("args, fragment", [(("--repeats", "2"), "--repeats"), (("--dtype", "int8"), "--dtype"),
                                            (("--warmup", "-1"), "--warmup")])
def test_bad_counts_and_dtype_are_refused(args, fragment):
    assert_clean_error(run("cost", "measure", "--d-model", "64", "--layers", "1", "--seq-len", "16", "--batch", "2",
                           *args), fragment)


# ============================================================================ real steps (JAX)
def test_three_small_shapes_measure_in_under_a_minute_and_calibrate_reads_them(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "timings.csv"
    started = time.perf_counter()
    res = run("cost", "measure", *TINY, "--out", out, "--json")
    elapsed = time.perf_counter() - started
    assert res.exit_code == 0, res.output
    assert elapsed < 60, f"3 small shapes took {elapsed:.0f} s"
    payload = json.loads(res.stdout)
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(measure.MEASURE_COLUMNS)
    assert frame["d_model"].tolist() == [32, 48, 64] and len(payload["rows"]) == 3
    assert (frame["step_time_s"] > 0).all() and (frame["step_time_mad_s"] >= 0).all()
    assert (frame["step_time_min_s"] <= frame["step_time_s"]).all()
    assert (frame["repeats"] == 3).all() and (frame["dtype"] == "float32").all()
    assert frame["framework"].eq("jax").all() and frame["framework_version"].str.len().gt(0).all()
    assert frame["device"].str.len().gt(0).all() and np.isfinite(frame["load_avg_1m"]).all()
    # The rows are the calibration's input as they stand: the byte sizes and unfused attention are read.
    feats, times = cost.timings_features(frame, cost.get_hardware("H100"), str(out))
    assert np.allclose(times, frame["step_time_s"])
    assert np.all(feats["attn_bytes"] > 0)  # scores written: fused_attention=False was read from the file


def test_the_measured_step_trains_and_its_parameters_are_the_accounted_ones():
    pytest.importorskip("jax")
    import jax

    shape = measure.grid("32", "2", "16", "4", heads="2", vocab=64)[0]
    params, state, tokens = measure.initial_state(shape, seed=3)
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    d, L, n_ctx = shape.d_model, shape.layers, shape.seq_len
    # The feature model's count plus what it leaves out: position embedding and LayerNorm gains and biases.
    assert n == shape.params_total + n_ctx * d + 4 * L * d + 2 * d
    step = measure.train_step(shape, lr=1e-2)
    losses = []
    for _ in range(30):
        params, state, loss = step(params, state, tokens)
        losses.append(float(loss))
    assert losses[0] == pytest.approx(np.log(64), rel=0.05)  # uniform guess over the vocabulary at the start
    assert losses[-1] < 0.1 * losses[0]  # AdamW on a fixed batch memorises it (~0.04 after 30 steps)


def test_an_interrupt_keeps_the_rows_finished_so_far(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "t.csv"
    shapes = measure.grid("32,48", "1", "16", "2", vocab=64)

    def stop_at_second(i, shape):
        if i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure.measure(shapes, warmup=1, repeats=3, out=out, on_start=stop_at_second)
    frame = pd.read_csv(out)
    assert frame["d_model"].tolist() == [32]  # the finished row, complete; the second never started
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temp file left behind


# ============================================================================ probe
def test_probe_measures_positive_rates_with_spread_and_writes_a_hardware_row(tmp_path):
    result = probe.probe(copy_mib=32, matmul_n=256, repeats=5)
    assert 0.1 < result.bandwidth_gbps < 2000 and 1e-4 < result.matmul_tflops < 1e4
    assert 0 <= result.bandwidth_mad_gbps <= result.bandwidth_gbps
    assert result.bandwidth_best_gbps >= result.bandwidth_gbps
    assert len(result.copy_seconds) == len(result.matmul_seconds) == 5
    # The reported median is the median of the per-repeat rates.
    assert result.bandwidth_gbps == pytest.approx(np.median(result.copy_bytes / 1e9 / np.array(result.copy_seconds)))
    out = tmp_path / "hw.csv"
    probe.write_hardware_row(result, out, name="this-box")
    with open(out, newline="") as fh, open(cost.hardware_table_path(), newline="") as ref:
        assert next(csv.reader(fh)) == next(csv.reader(ref))  # the columns of data/hardware.csv, in order
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == "this-box" and rows[0]["form_factor"] == "measured"
    assert float(rows[0]["hbm_gbps"]) == pytest.approx(result.bandwidth_gbps, rel=1e-3)
    assert result.date in rows[0]["source"] and "measured" in rows[0]["notes"]


def test_probe_cli_prints_rates_and_refuses_bad_options(tmp_path):
    res = run("cost", "probe", "--copy-mib", "32", "--matmul-n", "256", "--repeats", "4", "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["bandwidth_gbps"] > 0 and payload["matmul_tflops"] > 0
    assert payload["hardware_row"]["hbm_gbps"] == pytest.approx(payload["bandwidth_gbps"], rel=1e-3)
    assert_clean_error(run("cost", "probe", "--repeats", "2"), "--repeats")
    assert_clean_error(run("cost", "probe", "--framework", "torch"), "--framework")
    assert_clean_error(run("cost", "probe", "--copy-mib", "1"), "--copy-mib")
    assert_clean_error(run("cost", "probe", "--out", tmp_path / "hw.txt", "--copy-mib", "16", "--matmul-n", "64",
                           "--repeats", "3"), "--out")
    assert list(tmp_path.iterdir()) == []


def test_probe_refuses_float64_that_jax_would_silently_run_in_float32():
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("64-bit mode is on here: float64 really is float64")
    assert_clean_error(run("cost", "probe", "--framework", "jax", "--dtype", "float64", "--copy-mib", "16",
                           "--matmul-n", "64", "--repeats", "3"), "JAX_ENABLE_X64")


# ============================================================================ the measured data set
def test_the_measured_cpu_data_set_spans_the_shapes_and_calibrates():
    path = MEASURED / "timings.csv"
    if not path.exists():
        pytest.skip("the measured data set is not in this checkout")
    frame = pd.read_csv(path)
    assert len(frame) >= 40
    for column, at_least in (("d_model", 5), ("layers", 4), ("seq_len", 5), ("batch", 4), ("vocab", 4)):
        assert frame[column].nunique() >= at_least, column
    assert frame["platform"].eq("cpu").all() and frame["load_avg_1m"].notna().all()
    probe_row = pd.read_csv(MEASURED / "hardware.csv").iloc[0]
    hw = cost.get_hardware(peak_tflops=float(probe_row["bf16_dense_tflops"]), hbm_gbps=float(probe_row["hbm_gbps"]))
    d = cost.calibrate(frame, hw, source=str(path)).diagnostics
    assert set(d["identified"]) == {"flops", "act_bytes", "param_bytes", "logit_bytes"}
    # The held-out errors the results page (and the README) quote are what the data give today.
    claim = (ROOT / "benchmarks" / "results" / "cost_claim.md").read_text(encoding="utf-8")
    quoted = re.search(r"reports held-out ([0-9.]+) % \(memory traffic\) vs ([0-9.]+) % \(FLOP only\)", claim)
    assert quoted, "benchmarks/results/cost_claim.md lost its summary line"
    assert float(quoted.group(1)) == pytest.approx(100 * d["memory_model"]["cross_validated"]["mape"], abs=0.051)
    assert float(quoted.group(2)) == pytest.approx(100 * d["flop_only_model"]["cross_validated"]["mape"], abs=0.051)
