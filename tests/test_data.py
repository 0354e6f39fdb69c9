"""Reading tables: formats, aliases, number strings, and one clear error per kind of bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from scalefit.data import from_frame, load_runs, parse_column_mapping, read_table
from scalefit.errors import DataError
from scalefit.units import format_count, parse_count


@pytest.mark.parametrize("text,value", [("7B", 7e9), ("1.3b", 1.3e9), ("350M", 3.5e8), ("2T", 2e12),
                                        ("5.8e23", 5.8e23), ("70_000_000", 7e7), (" 12k ", 1.2e4), (3, 3.0)])
def test_parse_count(text, value):
    assert parse_count(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["7X", "", "B", "1e400", "nan", "--1"])
def test_parse_count_rejects(text):
    with pytest.raises(DataError):
        parse_count(text, what="--params")


def test_format_count():
    assert format_count(7e9) == "7B" and format_count(1.4e12) == "1.4T" and format_count(350e6) == "350M"


def _write(tmp_path, frame, name):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    elif name.endswith(".tsv"):
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["runs.csv", "runs.parquet", "runs.jsonl", "runs.tsv"])
def test_formats_and_aliases(tmp_path, name):
    """N / D / final_loss are recognised; every format gives the same table."""
    frame = pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": [2e9, 4e9, 8e9], "final_loss": [3.1, 2.9, 2.7]})
    data = load_runs(_write(tmp_path, frame, name), required=["params", "tokens", "loss"])
    np.testing.assert_array_equal(data.column("params"), frame["N"])
    np.testing.assert_allclose(data.column("flops"), 6 * frame["N"] * frame["D"])
    assert data.columns["params"] == "N"


def test_tokens_from_flops_and_number_strings(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("Model Size,Training FLOP,loss\n7B,4.2e21,2.5\n350M,2.1e20,3.0\n")
    data = load_runs(path, columns=parse_column_mapping(['params="Model Size"', "flops=Training FLOP"]),
                     required=["params", "tokens", "loss"])
    np.testing.assert_allclose(data.column("tokens"), [4.2e21 / (6 * 7e9), 2.1e20 / (6 * 3.5e8)])


def test_bom_and_semicolons(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_bytes("\ufeffparams;tokens;loss\n1e8;2e9;3.1\n2e8;4e9;2.9\n".encode())
    assert load_runs(path, required=["params", "tokens", "loss"]).column("loss").tolist() == [3.1, 2.9]


def test_json_records(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([{"params": 1e8, "tokens": 2e9, "loss": 3.0}, {"params": 2e8, "tokens": 2e9, "loss": 2.8}]))
    assert len(load_runs(path, required=["params", "tokens", "loss"])) == 2


@pytest.mark.parametrize(
    "content,match",
    [
        ("params,tokens\n1,2\n", "missing column for 'loss'; columns are: 'params', 'tokens'"),
        ("params,tokens,loss\n1e8,2e9,abc\n", "column 'loss' \\(loss\\) row 1: 'abc' is not a number"),
        ("params,tokens,loss\n1e8,2e9,nan\n2e8,2e9,3\n", "'loss' \\(loss\\) is NaN or infinite in 1 row"),
        ("params,tokens,loss\n-1e8,2e9,3\n2e8,2e9,3\n", "'params' \\(params\\) is zero or negative"),
        ("params,tokens,loss\n1e8,0,3\n2e8,2e9,3\n", "'tokens' \\(tokens\\) is zero or negative"),
        ("params,tokens,loss\n", "no rows"),
        ("", "empty"),
    ],
)
def test_bad_input_messages(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        load_runs(path, required=["params", "tokens", "loss"])
    assert "bad.csv" in str(info.value) and "\n" not in str(info.value)


def test_drop_invalid_reports_rows(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3\n2e8,2e9,nan\n3e8,2e9,-1\n4e8,3e9,2.5\n")
    data = load_runs(path, required=["params", "tokens", "loss"], drop_invalid=True)
    assert len(data) == 2
    assert any("rows 2" in line for line in data.dropped) and any("rows 3" in line for line in data.dropped)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown format '.xlsx'"):
        read_table(tmp_path / "x.xlsx")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read as parquet"):
        read_table(tmp_path / "broken.parquet")


def test_explicit_mapping_to_missing_column():
    frame = pd.DataFrame({"a": [1.0], "loss": [2.0]})
    with pytest.raises(DataError, match="column 'size' \\(for params\\) not found; columns are: 'a', 'loss'"):
        from_frame(frame, columns={"params": "size"}, required=["params", "loss"])


def test_units_are_validated():
    frame = pd.DataFrame({"params": [1e8], "tokens": [1e9], "loss": [3.0]})
    with pytest.raises(DataError, match="^loss_unit='furlongs': use one of nats, bits"):
        from_frame(frame, loss_unit="furlongs")
    assert from_frame(frame, loss_unit="bits").units["loss_unit"] == "bits"


# ---------------------------------------------------------------------------- review fixes: budget, units, where
def _chinchilla_rows():
    """A 3 x 3 grid of runs whose loss follows Chinchilla's law, with an IsoFLOP ``budget`` beside ``flops``."""
    n = np.repeat([1e8, 3e8, 1e9], 3)
    d = n * np.tile([10.0, 20.0, 40.0], 3)
    loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    return pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d, "budget": np.round(6 * n * d, -18),
                         "loss": loss})


def test_a_flops_column_wins_over_an_isoflop_budget_column():
    """Both columns used to be candidates for flops ('2 columns could be the flops') for every point law."""
    frame = _chinchilla_rows()
    data = from_frame(frame, required=["params", "tokens", "loss"])
    assert data.columns["flops"] == "flops"
    np.testing.assert_allclose(data.column("flops"), frame["flops"])
    # Alone, budget is the compute (and gives the tokens when they are missing).
    alone = from_frame(frame.drop(columns=["flops", "tokens"]), required=["params", "tokens", "loss"])
    assert alone.columns["flops"] == "budget"
    np.testing.assert_allclose(alone.column("tokens"), frame["budget"] / (6 * frame["params"]))
    # Two primary names for the compute are still a choice the user makes.
    with pytest.raises(DataError, match="2 columns could be the flops: 'flops', 'compute'"):
        from_frame(frame.assign(compute=frame["flops"]), required=["params", "tokens", "loss"])


def test_fit_cli_reads_a_table_with_flops_and_budget(tmp_path):
    from cli_helpers import ok_json

    path = tmp_path / "runs.csv"
    _chinchilla_rows().to_csv(path, index=False)
    out = ok_json("data", "check", path, "--law", "chinchilla")
    assert out["columns"]["flops"] == "flops"


@pytest.mark.parametrize("column, option, expected", [("Bits", None, "bits"), (" NATS ", None, "nats"),
                                                      ("bits", "BITS", "bits"), (None, "Nats", "nats")])
def test_loss_unit_spellings_are_read_case_insensitively(column, option, expected):
    frame = pd.DataFrame({"params": [1e8], "tokens": [1e9], "loss": [3.0]})
    if column is not None:
        frame["loss_unit"] = column
    assert from_frame(frame, loss_unit=option).units["loss_unit"] == expected


def test_unknown_or_contradicted_units_are_refused():
    """An unknown loss_unit ('bpb') used to be dropped, so the loss was recorded as nats; an option used to
    override a column that says otherwise."""
    frame = pd.DataFrame({"params": [1e8], "tokens": [1e9], "loss": [3.0]})
    with pytest.raises(DataError, match=r"^t.csv: column 'loss_unit' holds 'bpb', not one of nats, bits"):
        from_frame(frame.assign(loss_unit="bpb"), source="t.csv")
    with pytest.raises(DataError, match=r"column 'params_convention' holds 'embedding', not one of total"):
        from_frame(frame.assign(params_convention="embedding"))
    with pytest.raises(DataError, match=r"loss_unit='nats' contradicts the table's column 'loss_unit' \('bits'\)") as e:
        from_frame(frame.assign(loss_unit="Bits"), loss_unit="nats")
    assert e.value.options == ("loss_unit",)
    ok = from_frame(frame.assign(params_convention="Non-Embedding"), params_convention="non-embedding")
    assert ok.units["params_convention"] == "non-embedding"


def test_cli_loss_unit_against_the_table_is_one_line(tmp_path):
    from cli_helpers import assert_clean_error, run

    path = tmp_path / "runs.csv"
    _chinchilla_rows().drop(columns="budget").assign(loss_unit="bits").to_csv(path, index=False)
    assert_clean_error(run("fit", path, "--loss-unit", "nats"), "--loss-unit 'nats' contradicts the table's column")
    path.write_text(_chinchilla_rows().assign(loss_unit="bpb").to_csv(index=False))
    assert_clean_error(run("fit", path), "column 'loss_unit' holds 'bpb'")


def test_group_rows_names_and_orders_groups_as_where_reads_them():
    from scalefit.rowsets import filter_rows, group_rows

    frame = pd.DataFrame({"dataset": [" rpj", "c4", "rpj", None], "epochs": [10, 2, 1, 2],
                          "loss": [3.0, 3.1, 3.2, 3.3]})
    groups, missing = group_rows(frame, "dataset", "t.csv")
    assert list(groups) == ["c4", "rpj"] and missing == 1  # spaces stripped, as --where compares
    assert groups["rpj"]["loss"].tolist() == filter_rows(frame, "dataset=rpj")["loss"].tolist() == [3.0, 3.2]
    by_epochs, _ = group_rows(frame, "epochs")
    assert list(by_epochs) == ["1", "2", "10"]  # numerically, not as text
    with pytest.raises(DataError, match="per column 'corpus' not found; columns are: 'dataset'"):
        group_rows(frame, "corpus", "t.csv")
    with pytest.raises(DataError, match="holds no values"):
        group_rows(frame.assign(dataset=None), "dataset", "t.csv")


def test_filter_rows_from_python():
    from scalefit.rowsets import filter_rows

    frame = pd.DataFrame({"dataset": ["rpj", "c4", "rpj"], "epochs": [1.0, 1.0, 4.0], "loss": [3.0, 3.1, 3.2]})
    assert filter_rows(frame, ["dataset=rpj", "epochs = 4"], "t.csv")["loss"].tolist() == [3.2]
    assert filter_rows(frame, {"dataset": "rpj", "epochs": 1}, "t.csv")["loss"].tolist() == [3.0]  # 1 == 1.0
    assert filter_rows(frame, None).equals(frame) and filter_rows(frame, "dataset=c4")["loss"].tolist() == [3.1]
    with pytest.raises(DataError, match=r"^where='x': expected COLUMN=VALUE") as e:
        filter_rows(frame, ["x"], "t.csv")
    assert e.value.options == ("where",)
    with pytest.raises(DataError, match=r"^t.csv: where column 'corpus' not found; columns are: 'dataset'") as e:
        filter_rows(frame, {"corpus": "c4"}, "t.csv")
    assert e.value.options == ("where",)
    with pytest.raises(DataError, match=r"where=dataset=c4 matches no row \(column 'dataset' holds 'rpj' in"):
        filter_rows(frame, ["epochs=4", "dataset=c4"], "t.csv")
