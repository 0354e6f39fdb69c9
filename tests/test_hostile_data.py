"""Hostile run tables (issue #10, items 9, 14 and 17): FIFOs and devices, size limits, gzip, empty and
binary files, encodings, JSONL line numbers, duplicated or ambiguous columns, absurd values, mixed units,
and file names holding markup or control characters.

Every bad input ends in exit code 2 and exactly one ``error:`` line naming the file, column or value --
never a traceback, a hang or a silent answer. tests/test_hostile.py covers the generated tables; this
module covers the files themselves.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalefit.curves import load_curves
from scalefit.data import from_frame, load_runs, read_table
from scalefit.errors import DataError, UnitsWarning
from scalefit.limits import LimitError

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: tests/ is not on sys.path
from cli_helpers import assert_clean_error, run  # noqa: E402
from strategies import SHARED, chinchilla_frame  # noqa: E402

ROLES = ["params", "tokens", "loss"]
COS = "cosine:peak=1e-3,steps=200,warmup=10"


@pytest.fixture
def no_hang():
    """A safety net: a read that blocks fails the test after 20 s instead of hanging CI."""
    def _timeout(signum, frame):
        raise TimeoutError("the read blocked: the regular-file check did not run before open()")

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def good_csv_text():
    return chinchilla_frame(sizes=3, budgets=3).to_csv(index=False)


def _error_line(res) -> str:
    assert_clean_error(res)
    return next(line for line in res.stderr.splitlines() if line.startswith("error:"))


def _curve_frame(steps=(50, 100, 150, 199)) -> pd.DataFrame:
    return pd.DataFrame({"run": "a", "step": list(steps), "loss": np.linspace(3.0, 2.5, len(steps))})


# ---------------------------------------------------------------------- item 9: FIFOs, devices, size
@pytest.mark.parametrize("args", [
    ["data", "check", "{p}"], ["fit", "{p}"], ["data", "check", "{p}", "--law", "chinchilla"],
])
def test_fifo_as_runs_table_is_refused_before_open(tmp_path, no_hang, args):
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    line = _error_line(run(*[a.format(p=fifo) for a in args]))
    assert line == f"error: {fifo}: is a FIFO; the table file must be a regular file"


def test_fifo_as_lr_table_is_refused(tmp_path, no_hang):
    fifo = tmp_path / "lr.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"lr\.csv: is a FIFO; the LR table must be a regular file"):
        load_curves(_curve_frame(), lr_table=fifo)
    curves = tmp_path / "curves.csv"
    _curve_frame().to_csv(curves, index=False)
    line = _error_line(run("data", "check", curves, "--law", "multipower", "--lr-table", fifo))
    assert "lr.csv: is a FIFO" in line
    dense = tmp_path / "dense.csv.gz"  # the same command with a real (gzip'd) LR table, and with a spec
    dense.write_bytes(gzip.compress(pd.DataFrame({"run": "a", "step": range(200), "lr": 1e-3}).to_csv(index=False).encode()))
    assert run("data", "check", curves, "--law", "multipower", "--lr-table", dense).exit_code == 0
    assert run("data", "check", curves, "--law", "multipower", "--schedule", COS).exit_code == 0
    # a curve table is recognised by its step and lr columns: --schedule needs no --law (issue #14)
    assert run("data", "check", curves, "--schedule", COS).exit_code == 0


@pytest.mark.parametrize("name", ["runs.csv", "runs.parquet", "runs.csv.gz", "zero"])
def test_dev_zero_is_refused(tmp_path, no_hang, name):
    link = tmp_path / name
    link.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="is a device; the table file must be a regular file"):
        read_table(link)
    with pytest.raises(DataError, match="is a device"):
        read_table("/dev/zero")


def test_folder_is_one_line(tmp_path):
    folder = tmp_path / "runs.csv"
    folder.mkdir()
    assert _error_line(run("data", "check", folder)) == f"error: {folder}: is a folder, not a table file"


def test_size_limit_applies_to_the_file_and_to_decompressed_data(tmp_path, monkeypatch, good_csv_text):
    plain = tmp_path / "runs.csv"
    plain.write_text(good_csv_text)
    packed = tmp_path / "packed.csv.gz"
    packed.write_bytes(gzip.compress(good_csv_text.encode() * 40))  # compresses ~40x: small on disk, large inside
    limit = len(good_csv_text) + 100
    assert packed.stat().st_size < limit
    monkeypatch.setenv("SCALEFIT_MAX_INPUT_BYTES", str(limit))
    assert len(read_table(plain)) == 9
    with pytest.raises(LimitError, match=r"packed\.csv\.gz: decompresses to more than .* SCALEFIT_MAX_INPUT_BYTES"):
        read_table(packed)
    monkeypatch.setenv("SCALEFIT_MAX_INPUT_BYTES", "100")
    line = _error_line(run("data", "check", plain))
    assert str(plain) in line and "SCALEFIT_MAX_INPUT_BYTES" in line


def test_parquet_whose_data_would_not_fit_in_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "runs.parquet"
    pd.concat([chinchilla_frame()] * 40, ignore_index=True).to_parquet(path)
    monkeypatch.setenv("SCALEFIT_MAX_MEMORY", "2000")
    with pytest.raises(LimitError, match="uncompressed parquet data.*SCALEFIT_MAX_MEMORY"):
        read_table(path)


# ---------------------------------------------------------------------- item 17: files and messages
@pytest.mark.parametrize("content, match", [
    (b"", "the file is empty (no header, no rows)"),
    (b"\xef\xbb\xbf\n\n  \n", "the file is empty (no header, no rows)"),
    (b"params,tokens,loss\n", "table has no rows (only a header)"),
    (b"params,tokens,loss\r\n\r\n", "table has no rows (only a header)"),
    (b"params,tokens,loss\n1e9,2e10,caf\xe9\n", "is not UTF-8 text (byte 0xe9 on line 2); save the file as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "holds NUL bytes: a binary file, not CSV text"),
    (b"params,tokens,loss\n1e9,2e10,3,7\n", "the first data row has 4 fields but the header names 3 columns"),
    (b"params,tokens,loss\n1e9,2e10,3\n1e9,2e10,3,7,8\n", "cannot read as CSV: line 3 has 5 fields but the header has 3 (a stray"),
    (b'params,tokens,loss\n1e9,"2e10,3\n', "cannot read as CSV: the quote opened on line 2 is never closed"),
    (b"params,tokens,loss\n1e9,2e10,abc\n", "column 'loss' (loss) row 1: 'abc' is not a number"),
    (b"params,tokens,loss\n1e9,2e10,nan\n", "column 'loss' (loss) is NaN or infinite in 1 row(s): 1 (row 1: nan)"),
    (b"params,tokens,loss\n1e9,inf,3\n", "column 'tokens' (tokens) is NaN or infinite in 1 row(s): 1 (row 1: inf)"),
    (b"params,tokens,loss\n1e999,2e10,3\n", "column 'params' (params) is NaN or infinite in 1 row(s): 1 (row 1: inf)"),
    (b"PK\x03\x04\x14\x00\x06\x00", "is a zip archive (or an Excel workbook); unpack it first"),
    (b"BZh91AY&SY\x00\x01", "is bzip2-compressed; unpack it first"),
])
def test_bad_csv_files_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "runs.csv"
    path.write_bytes(content)
    line = _error_line(run("fit", path))
    assert line.startswith(f"error: {path}: {match}"), line
    with pytest.raises(DataError) as info:
        load_runs(path, required=ROLES)
    assert match in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".gz", ".data", ".tsv.gz", ".jsonl.gz", ".json.gz", ".jsonl"])
def test_gzip_is_recognised_by_its_magic_bytes(tmp_path, suffix):
    """Compressed data is read whatever the name says; the inner format comes from the name, or from the
    content when the name has no known suffix."""
    frame = chinchilla_frame(sizes=3, budgets=3)
    if "jsonl" in suffix or suffix == ".gz":
        text = frame.to_json(orient="records", lines=True)
    elif "json" in suffix:
        text = frame.to_json(orient="records")
    else:
        text = frame.to_csv(index=False, sep="\t" if "tsv" in suffix else ",")
    path = tmp_path / f"runs{suffix}"
    path.write_bytes(gzip.compress(text.encode()))
    data = load_runs(path, required=ROLES)
    np.testing.assert_allclose(data.column("loss"), frame["loss"], rtol=1e-9)  # to_json keeps 10 digits


def test_parquet_named_csv_and_gzip_damage(tmp_path):
    frame = chinchilla_frame(sizes=3, budgets=3)
    pq_as_csv = tmp_path / "runs.csv"
    frame.to_parquet(pq_as_csv)
    assert len(load_runs(pq_as_csv, required=ROLES)) == 9
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(frame.to_csv(index=False).encode())[:40])
    assert "cut.csv.gz: the gzip data is corrupt or cut short" in _error_line(run("data", "check", cut))
    twice = tmp_path / "twice.csv.gz"
    twice.write_bytes(gzip.compress(gzip.compress(b"params,tokens,loss\n")))
    assert "is gzip-compressed twice" in _error_line(run("data", "check", twice))


@pytest.mark.parametrize("bom, encoding", [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
                                           (b"\xef\xbb\xbf", "utf-8")])
def test_byte_order_marks_name_the_encoding(tmp_path, good_csv_text, bom, encoding):
    path = tmp_path / "runs.csv"
    path.write_bytes(bom + good_csv_text.encode(encoding))
    assert len(load_runs(path, required=ROLES)) == 9


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "runs.parquet"
    chinchilla_frame().to_parquet(path)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2: len(blob) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(blob))
    line = _error_line(run("data", "check", path))
    assert line.startswith(f"error: {path}: cannot read as parquet")


@pytest.mark.parametrize("content, match", [
    (b'{"params": 1e9, "tokens": 2e10, "loss": 3}\n\n{"params": 2e9, "tokens": 2e10, "loss": 2.9}\n{bad\n',
     "line 4: not valid JSON (Expecting property name enclosed in double quotes, column 2)"),
    (b'{"params": 1e9, "tokens": 2e10, "loss": 3}\n[1, 2, 3]\n', "line 2: expected one JSON object per line"),
    (b'{"params": 1e9, "tokens": 2e10, "loss": 3, "loss": 4}\n', "line 1: the key 'loss' appears twice in one record"),
    (b"[" * 5000 + b"]" * 5000 + b"\n", "line 1: JSON nested too deeply"),
    (b'{"params": [1e9], "tokens": 2e10, "loss": 3}\n', "column 'params' (params) row 1: '[1000000000.0]' is not a number"),
    (b'{"params": 1' + b"0" * 400 + b', "tokens": 2e10, "loss": 3}\n',
     "column 'params' (params) is NaN or infinite in 1 row(s): 1 (row 1: inf)"),
])
def test_jsonl_errors_name_the_line(tmp_path, content, match):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(content)
    line = _error_line(run("data", "check", path, "--law", "chinchilla"))
    assert match in line and str(path) in line, line


def test_json_records_errors(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text('[{"params": 1e9, "tokens": 2e10, "loss": 3},\n 7]')
    assert "record 2 is a number; a .json table is a list of objects" in _error_line(run("data", "check", path))
    path.write_text('[{"params": 1e9,\n "loss": }]')
    assert "not valid JSON (line 2, column 10: Expecting value)" in _error_line(run("data", "check", path))


@pytest.mark.parametrize("name", ["[bold]runs[/bold].csv", "[red]x.csv", "a\x1b[31mred.csv", "bell\x07.csv"])
def test_file_names_print_literally(tmp_path, name):
    """Markup in a name is not applied and control characters show as escapes, in errors and in output."""
    path = tmp_path / name  # '[bold]runs[/bold].csv' is the file 'bold].csv' in the folder '[bold]runs['
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"")
    line = _error_line(run("data", "check", path))
    shown = str(path).replace("\x1b", "\\x1b").replace("\x07", "\\x07")
    assert line == f"error: {shown}: the file is empty (no header, no rows)"
    chinchilla_frame(sizes=3, budgets=3).to_csv(path, index=False)
    res = run("data", "check", path)
    assert res.exit_code == 0 and f"{shown}: 9 rows" in res.stdout, res.stdout


# ---------------------------------------------------------------------- item 14: columns and values
def test_duplicated_header_is_an_error_that_says_how_to_choose(tmp_path):
    path = tmp_path / "runs.csv"
    frame = chinchilla_frame(sizes=3, budgets=3)
    text = frame.assign(loss2=frame["loss"] + 1).to_csv(index=False).replace("loss2", "loss")
    path.write_text(text)
    line = _error_line(run("fit", path))
    assert line == (f"error: {path}: 2 columns could be the loss: 'loss', 'loss.1' (the header names 'loss' more "
                    f"than once; pandas reads the copies as 'loss.1'); choose one with --col loss=NAME, e.g. "
                    f"--col loss=loss.1")
    picked = load_runs(path, required=ROLES, columns={"loss": "loss.1"})
    np.testing.assert_allclose(picked.column("loss"), frame["loss"] + 1)
    assert run("data", "check", path, "--col", "loss=loss").exit_code == 0


def test_duplicated_parquet_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = chinchilla_frame(sizes=3, budgets=3)
    table = pa.table([frame["params"], frame["tokens"], frame["loss"], frame["loss"] * 2],
                     names=["params", "tokens", "loss", "loss"])
    path = tmp_path / "runs.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"2 columns could be the loss: 'loss', 'loss.1'"):
        load_runs(path, required=ROLES)
    np.testing.assert_allclose(load_runs(path, required=ROLES, columns={"loss": "loss.1"}).column("loss"),
                               frame["loss"] * 2)


@pytest.mark.parametrize("extra, role", [("val_loss", "loss"), ("Loss", "loss"), ("N", "params"),
                                         ("training_tokens", "tokens"), ("run_id", "run")])
def test_two_columns_for_one_role_is_an_error(tmp_path, extra, role):
    frame = chinchilla_frame(sizes=3, budgets=3).assign(run=[f"r{i}" for i in range(9)])
    frame[extra] = frame[role] if role != "run" else [f"x{i}" for i in range(9)]
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    line = _error_line(run("data", "check", path, "--law", "chinchilla"))
    assert f"2 columns could be the {role}: '{role}', '{extra}'" in line and f"--col {role}=" in line
    res = run("data", "check", path, "--law", "chinchilla", "--col", f"{role}={extra}", "--json")
    assert res.exit_code == 0, res.output


def test_a_column_of_words_does_not_compete_for_a_role():
    """'data' is an alias of tokens, but a column of corpus names is no candidate (Brandfonbrener's sweep)."""
    frame = chinchilla_frame(sizes=3, budgets=3).assign(data="c4")
    assert from_frame(frame, required=ROLES).columns["tokens"] == "tokens"
    assert "tokens" not in from_frame(frame.drop(columns="tokens"), required=["loss"]).columns


@pytest.mark.parametrize("column, value, why", [
    ("tokens", 1e308, "is above 1e+20"),
    ("params", 1e300, "is above 1e+17"),
    ("params", 1e-300, "is below 1e-12"),
    ("loss", 1e300, "is above 1e+06"),
    ("params", -7e9, "is zero or negative"),
    ("tokens", 0.0, "is zero or negative"),
])
def test_absurd_values_name_column_row_run_and_value(tmp_path, column, value, why):
    frame = chinchilla_frame(sizes=3, budgets=3).assign(run=[f"r{i}" for i in range(9)])
    frame.loc[4, column] = value
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    line = _error_line(run("fit", path, "--json"))
    shown = f"{value:.6g}"
    assert line.startswith(f"error: {path}: column '{column}' ({column}) {why} in 1 row(s): 5 (row 5, run 'r4': "
                           f"{shown}); "), line
    assert "--drop-invalid" in line
    assert len(load_runs(path, required=ROLES, drop_invalid=True)) == 8


def test_flops_that_overflow_never_reach_the_fit():
    """6·N·D past 1.8e308 and tokens derived from an absurd FLOP count: errors, not inf or 0 in a fit."""
    frame = chinchilla_frame(sizes=3, budgets=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning either
        with pytest.raises(DataError, match=r"'params' \(params\) is above 1e\+17"):
            from_frame(frame.assign(params=1e200, tokens=1e200), required=ROLES)
        flops = frame.assign(flops=6 * frame["params"] * frame["tokens"]).drop(columns="tokens")
        flops.loc[0, "flops"] = 1e300
        with pytest.raises(DataError, match=r"'flops / \(6 \* params\)' \(tokens\) is above 1e\+20 in 1 row"):
            from_frame(flops, required=ROLES)


@pytest.mark.parametrize("edit, match", [
    (lambda f: f.assign(step=f["step"].astype(float).where(f.index != 2, 1e19)),
     "column 'step' row 3, run 'a': step 1e+19 is too large for a step count"),
    (lambda f: f.assign(step=f["step"].astype(float).where(f.index != 1, 7.5)),
     "column 'step' row 2, run 'a': step 7.5 is not a whole non-negative number"),
    (lambda f: f.assign(loss=f["loss"].where(f.index != 3, 1e300)),
     "column 'loss' (loss) is NaN, infinite, zero, negative or above 1e+06 in 1 row(s): 4 (row 4, run 'a', step "
     "199: 1e+300)"),
])
def test_absurd_curve_values(edit, match):
    with pytest.raises(DataError) as info:
        load_curves(edit(_curve_frame()), schedules={"*": COS})
    assert match in str(info.value), str(info.value)


def test_absurd_learning_rates(tmp_path):
    dense = pd.DataFrame({"run": "a", "step": np.arange(200), "lr": 1e-3, "loss": np.nan})
    dense.loc[[50, 100, 150, 199], "loss"] = [3.0, 2.9, 2.8, 2.7]
    bad = dense.copy()
    bad.loc[120, "lr"] = 1e300
    with pytest.raises(DataError, match=r"column 'lr' \(lr\) is above 1000, which no optimizer trains at in row 121 "
                                        r"\(run 'a', step 120: 1e\+300\)"):
        load_curves(bad)
    table = tmp_path / "lr.csv.gz"
    table.write_bytes(gzip.compress(bad[["run", "step", "lr"]].to_csv(index=False).encode()))
    with pytest.raises(DataError, match=r"lr\.csv\.gz: run 'a': LR is 1e\+300 at step 120"):
        load_curves(_curve_frame(), lr_table=table)
    good = tmp_path / "good_lr.csv.gz"
    good.write_bytes(gzip.compress(dense[["run", "step", "lr"]].to_csv(index=False).encode()))
    assert load_curves(_curve_frame(), lr_table=good).lr["a"].size == 200


# ---------------------------------------------------------------------- item 14: mixed units
def _mixed_units_frame() -> pd.DataFrame:
    frame = chinchilla_frame(sizes=4, budgets=3)
    billions = frame["params"] >= frame["params"].median()
    frame.loc[billions, "params"] = frame.loc[billions, "params"] / 1e9  # half the rows in billions
    return frame


def test_mixed_units_warn_once_naming_the_column(tmp_path):
    with pytest.warns(UnitsWarning) as record:
        from_frame(_mixed_units_frame(), source="mixed.csv", required=ROLES)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("mixed.csv: column 'params' (params) jumps from ")
    assert "6 row(s) look like counts in thousands, millions or billions and 6 like raw counts" in message
    path = tmp_path / "mixed.csv"
    _mixed_units_frame().to_csv(path, index=False)
    res = run("data", "check", path, "--law", "chinchilla")
    warned = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert res.exit_code == 0 and len(warned) == 1 and "column 'params' (params) jumps from" in warned[0]


def test_wide_but_even_sweeps_do_not_warn():
    """A Kaplan-style sweep from 768 to 1.5e9 parameters (3x steps) and a sweep in billions are fine."""
    sizes = np.geomspace(768, 1.5e9, 14)
    frame = pd.DataFrame({"params": np.repeat(sizes, 2), "tokens": np.tile([2e9, 2e10], 14),
                          "loss": np.linspace(5, 2, 28)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)
        from_frame(frame, required=ROLES)
        from_frame(frame.assign(params=frame["params"] / 1e9), required=ROLES)


REAL = [
    ("chinchilla/svg_extracted_data.csv", {}),
    ("gadre/gadre2024_final_losses.csv", {"loss": "loss_c4_val"}),
    ("gadre/gadre2024_final_losses.csv", {"loss": "loss_openlm", "params": "N_no_embed"}),
    ("hitchhiker/datablations_losses.csv", {"tokens": "token_num"}),
    ("hitchhiker/datablations_contour_losses.csv", {"tokens": "token_num", "loss": "openLM_loss"}),
    ("loss_to_loss/brandfonbrener2024/sweep.csv", {}),
    ("hparams/steplaw_dense_lr_bs_loss.csv", {}),
    ("hparams/steplaw_moe_lr_bs_loss.csv", {}),
]


@pytest.mark.parametrize("name, columns", REAL, ids=[f"{n}:{','.join(c.values())}" for n, c in REAL])
def test_real_sweeps_load_without_a_unit_warning(name, columns):
    path = SHARED / "data" / name
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)
        data = load_runs(path, columns=columns, required=ROLES, drop_invalid=True)
    assert len(data) > 20


def test_olmo_curves_load_without_a_unit_warning():
    path = SHARED / "data" / "hitchhiker" / "olmo.csv"
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)
        data = load_runs(path, columns={"loss": "pile-validation/CrossEntropyLoss"}, required=["params", "loss"],
                         drop_invalid=True)
    assert data.n_runs > 1 and data.columns["params"] == "num_params"


# ---------------------------------------------------------------------- property: damaged files
_BASES = {
    "runs.csv": lambda f: f.to_csv(index=False).encode(),
    "runs.jsonl": lambda f: f.to_json(orient="records", lines=True).encode(),
    "runs.csv.gz": lambda f: gzip.compress(f.to_csv(index=False).encode(), mtime=0),
    "runs.parquet": lambda f: _parquet_bytes(f),
}


def _parquet_bytes(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(_BASES)), edits=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(["flip", "cut", "insert", "delete"]),
              st.binary(min_size=1, max_size=4)), min_size=1, max_size=3))
def test_damaged_files_load_or_fail_in_one_line(tmp_path_factory, name, edits):
    """Bytes flipped, inserted, deleted or cut anywhere in a valid file: a Dataset or one DataError naming it."""
    blob = bytearray(_BASES[name](chinchilla_frame(sizes=3, budgets=3)))
    for where, how, data in edits:
        i = int(where * len(blob)) if blob else 0
        if how == "flip" and blob:
            blob[i] ^= data[0] or 1
        elif how == "cut":
            del blob[i:]
        elif how == "insert":
            blob[i:i] = data
        elif blob:
            del blob[i:i + len(data)]
    path = tmp_path_factory.mktemp("damaged") / name
    path.write_bytes(bytes(blob))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        try:
            load_runs(path, required=ROLES)
        except DataError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
