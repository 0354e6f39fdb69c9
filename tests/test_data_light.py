"""The pandas-free CSV path (scalefit.csvtable + array-backed Dataset) against the pandas path it replaces.

Every check reads the same bytes twice: ``load_runs`` (the light reader where it applies) and
``from_frame(read_table(path))`` (pandas' read_csv, today's path), and asserts the same values, run ids,
content hash and the same one-line errors. The committed baseline's data hash pins the digest itself.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import ROOT, shared_file

from scalefit.csvtable import NA_STRINGS, TextTable
from scalefit.data import Dataset, from_frame, load_runs
from scalefit.errors import DataError
from scalefit.tables import read_table

pd = pytest.importorskip("pandas")

EPOCH_COLUMNS = {"params": "Model Size", "flops": "Training FLOP"}
POINT = ["params", "tokens", "loss"]


def both(path, **kwargs):
    """(light result, pandas result): a Dataset or the DataError message, for the same file and options."""
    out = []
    for load in (lambda: load_runs(path, **kwargs), lambda: from_frame(read_table(path), source=str(path), **kwargs)):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out.append((load(), [str(w.message) for w in caught]))
        except DataError as exc:
            out.append((str(exc), None))
    return out


def summary(data: Dataset) -> dict:
    return {"hash": data.content_hash(), "columns": data.columns, "units": data.units, "dropped": data.dropped,
            "runs": data.run_names.tolist(), "codes": data.run_codes.tolist(), "n_runs": data.n_runs,
            "values": {r: data.column(r).tolist() for r in ("params", "tokens", "flops", "loss", "weight")
                       if data.has(r)}}


def assert_same(path, light_expected: bool = True, **kwargs):
    (light, light_warnings), (full, full_warnings) = both(path, **kwargs)
    assert isinstance(read_table(path, light=True), TextTable) == light_expected
    if isinstance(full, str):
        assert light == full
        return full
    assert not isinstance(light, str), light
    assert summary(light) == summary(full)
    assert light_warnings == full_warnings
    pd.testing.assert_frame_equal(light.frame, full.frame)
    assert light.frame.attrs == full.frame.attrs
    return light


def write(tmp_path, text: str, name: str = "runs.csv") -> str:
    path = tmp_path / name
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def test_the_missing_value_spellings_are_pandas_own():
    from pandas._libs.parsers import STR_NA_VALUES

    assert NA_STRINGS == set(STR_NA_VALUES)


def test_the_committed_baseline_digest_comes_back_from_a_csv_read_without_pandas(tmp_path):
    """tests/baselines/chinchilla_epoch.json records the hash of Epoch's 240 runs read by pandas; the same
    rows written to CSV and read by the light reader hash to it, value for value."""
    frame = pd.read_csv(shared_file("chinchilla", "svg_extracted_data.csv"))
    frame = frame.sort_values("loss", kind="stable").iloc[:-5].reset_index(drop=True)
    path = tmp_path / "epoch240.csv"
    frame.to_csv(path, index=False)
    assert isinstance(read_table(path, light=True), TextTable)
    data = load_runs(path, columns=EPOCH_COLUMNS, required=POINT)
    baseline = json.loads((ROOT / "tests" / "baselines" / "chinchilla_epoch.json").read_text())
    assert data.content_hash() == baseline["data"]["hash"] == "29594e0849723dcd"
    assert len(data) == 240 and data.n_runs == 240
    assert data.column("flops")[0] == frame["Training FLOP"][0]
    assert_same(path, columns=EPOCH_COLUMNS, required=POINT)


def test_example_runs_read_alike_and_the_frame_is_built_only_when_asked(example_csv):
    data = assert_same(example_csv, required=POINT)
    fresh = load_runs(example_csv, required=POINT)
    assert fresh._frame is None  # nothing built yet: the fit path never asks for it
    digest = fresh.content_hash()
    assert fresh.frame["run"].iloc[0] == "n2e+07-r2"
    assert fresh.content_hash() == digest == data.content_hash()


@pytest.mark.parametrize("text, kwargs", [
    # number strings, thousands separators in quotes, underscores, padding, missing spellings
    ('run,params,tokens,loss\na,7B,"1,000,000,000",3.1\nb,70M,2e10,2.9\nc, 1_000_000 ,4.4e9 ,3.0\n', {}),
    ("run,params,tokens,loss\na,1e9,2e10,3.1\nb,NA,2e10,2.9\nc,2e9,#N/A,3.0\nd,3e9,4e10,null\ne,4e9,5e10,None\n",
     {"drop_invalid": True}),
    ("run,params,tokens,loss\na,1e9,2e10,3.1\nb,n/a,2e10,2.9\n", {}),
    # integer run ids (pandas reads 007 as 7), blank lines, CRLF, a short row, a BOM, a quoted header
    ('\ufeffrun,"params",tokens,loss\r\n007,1e9,2e10,3.1\r\n\r\n8,2e9,3e10,2.9\r\n9,3e9,4e10\r\n',
     {"drop_invalid": True}),
    # no run column: the row numbers, counted before rows are dropped
    ("params,tokens,loss\n1e9,2e10,3.1\n0,2e10,2.9\n2e9,3e10,2.8\n", {"drop_invalid": True}),
    # a weight column, a unit column, another column that never matters
    ("name,params,tokens,loss,weight,loss_unit,notes\nx,1e9,2e10,3.1,1,nats,a b\ny,2e9,3e10,2.9,0.5,NATS ,\n", {}),
    # flops and params: tokens derived; the fallback name budget
    ("run,N,budget,loss\na,1e9,1.2e20,3.1\nb,2e9,3.6e20,2.9\n", {}),
    # semicolons, a space after each, inf and a huge value, a unit jump (warning)
    ("run; params; tokens; loss\na; 1e9; 2e10; 3.1\nb; 2e3; 3e10; 2.9\nc; 3e9; inf; 2.8\n", {"drop_invalid": True}),
])
def test_tables_read_alike(tmp_path, text, kwargs):
    assert_same(write(tmp_path, text), required=POINT, **kwargs)


@pytest.mark.parametrize("text, message", [
    ("run,params,tokens,loss\na,1e9,2e10,3.1\nb,big,2e10,2.9\n", "column 'params' (params) row 2: 'big' is not a number"),
    ("run,params,tokens,loss\na,1e9,2e10,3.1\nb,0,2e10,2.9\n", "is zero or negative in 1 row(s): 2 (row 2, run 'b': 0)"),
    ("run,params,tokens,loss\na,1e9,2e10,3.1\n,2e9,2e10,2.9\n", "column 'run' (run) is empty in 1 row(s)"),
    ("run,params,tokens\na,1e9,2e10\n", "missing column for 'loss'"),
    ("params,tokens,loss,val_loss\n1e9,2e10,3.1,3.2\n", "2 columns could be the loss"),
    ("run,params,tokens,loss,loss_unit\na,1e9,2e10,3.1,nats\nb,2e9,3e10,2.9,bits\n", "mixes 'bits', 'nats'"),
    ("run,params,tokens,loss\na,True,2e10,3.1\nb,False,2e10,2.9\n", "holds true/false values"),
])
def test_errors_read_alike(tmp_path, text, message):
    assert message in assert_same(write(tmp_path, text), required=POINT)


@pytest.mark.parametrize("text, message", [
    ('params,tokens,loss\n1e9,"2e10,3\n', "cannot read as CSV: the quote opened on line 2 is never closed"),
    ("params,tokens,loss\n1e9,2e10,3.1\n2e9,3e10,2.9,7\n", "line 3 has 4 fields but the header has 3"),
    ("params,params,loss\n1e9,2e10,3.1\n", "2 columns could be the params"),
    ("params,tokens,loss\n", "table has no rows (only a header)"),
])
def test_files_pandas_decides_are_read_by_pandas(tmp_path, text, message):
    """Shapes whose reading or message is pandas' own (a stray quote, a long row, a repeated name, no rows)."""
    path = write(tmp_path, text)
    with pytest.raises(DataError, match="^" + str(path)) as light:
        load_runs(path, required=POINT)
    assert message in str(light.value)
    with pytest.raises(DataError) as full:
        from_frame(read_table(path), source=str(path), required=POINT)
    assert str(full.value) == str(light.value)


@pytest.mark.parametrize("name, sep", [("runs.tsv", "\t"), ("runs.csv.gz", ","), ("runs.txt", "|")])
def test_tsv_gzip_and_other_delimiters_take_the_light_path(tmp_path, name, sep):
    text = "\n".join(sep.join(row) for row in [["run", "params", "tokens", "loss"], ["a", "1e9", "2e10", "3.1"],
                                              ["b", "2e9", "3e10", "2.9"], ["c", "4e9", "6e10", "2.7"]]) + "\n"
    data = assert_same(write(tmp_path, text, name), required=POINT)
    assert data.column("tokens").tolist() == [2e10, 3e10, 6e10]


@pytest.mark.parametrize("runs", [["1.5", "2.5", "3.5"], ["True", "False", "True"], ["a", "NA", "c"],
                                  ["1", "x", "3"]])
def test_run_ids_pandas_would_rewrite_go_to_pandas(tmp_path, runs):
    """Decimal run ids ('1.5'), true/false, a missing id, numbers mixed with text: pandas decides the text."""
    rows = [f"{r},{p},2e10,3.1" for r, p in zip(runs, ("1e9", "2e9", "3e9"))]
    path = write(tmp_path, "run,params,tokens,loss\n" + "\n".join(rows) + "\n")
    assert_same(path, required=POINT, drop_invalid=True)


def test_the_frame_once_built_is_the_table(example_csv):
    """Code that writes into ``data.frame`` is read back by ``column`` (tests and tools rely on it)."""
    data = load_runs(example_csv, required=POINT)
    loss = data.column("loss")
    with pytest.raises(ValueError):
        loss[0] = 1.0  # read-only, as pandas' copy-on-write hands out
    data.frame["loss"] = data.frame["loss"] * 2
    assert np.array_equal(data.column("loss"), loss * 2)


def test_subset_run_codes_and_ranges_match_the_frame_path(example_csv):
    light = load_runs(example_csv, required=POINT)
    full = from_frame(read_table(example_csv), source=str(example_csv), required=POINT)
    mask = light.column("params") > 5e7
    for a, b in ((light, full), (light.subset(mask), full.subset(mask))):
        assert a.run_codes.tolist() == b.run_codes.tolist()
        assert a.n_runs == b.n_runs and len(a) == len(b)
        assert a.ranges() == b.ranges() and a.content_hash() == b.content_hash()
        assert [a.run_name(i) for i in range(3)] == b.run_names[:3].tolist()
    assert light.subset(mask)._frame is None


def test_a_point_fit_of_a_csv_file_never_imports_pandas():
    code = """
import contextlib, io, json, sys
sys.argv = ["scalefit", "fit", "data/example_runs.csv", "--law", "chinchilla", "--json"]
from scalefit.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
print(json.dumps({"heavy": sorted({m.split('.')[0] for m in sys.modules} & {"pandas", "pyarrow"}),
                  "objective": json.loads(out.getvalue())["objective"]}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["heavy"] == []
    assert loaded["objective"] > 0
