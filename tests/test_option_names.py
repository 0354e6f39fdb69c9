"""One validation voice (issue #11): library errors name the Python parameter a caller passed
(``params=1e+30``) and list it in ``exc.options``; the CLI boundary names it as the flag the user typed
(``--params 1e+30``), with the flags taken from click itself."""

import pickle

import pytest
import typer
from cli_helpers import assert_clean_error, run

from scalefit import cost
from scalefit.check import parse_tolerances
from scalefit.cli import app
from scalefit.cli._options import ALIASES, leaf_command, library_flags, to_flags
from scalefit.data import parse_column_mapping
from scalefit.errors import DataError, FitError, ScalefitError, option_error
from scalefit.forecast import forecast
from scalefit.limits import LimitError
from scalefit.registry import get_law

ROOT = typer.main.get_command(app)


def command(*path):
    return leaf_command(ROOT, None, path)


# ---------------------------------------------------------------------- the library names its parameters
def test_forecast_names_its_parameter_and_lists_it():
    law = get_law("chinchilla")
    with pytest.raises(DataError, match=r"^params=1e\+30: outside the range a forecast accepts") as info:
        forecast(law, law.reference_theta(), params=1e30)
    assert info.value.options == ("params",)
    with pytest.raises(DataError, match=r"^give params, tokens or compute") as info:
        forecast(law, law.reference_theta())
    assert set(info.value.options) == {"params", "tokens", "compute"}
    with pytest.raises(DataError, match=r"^interval='band': use confidence or prediction"):
        forecast(law, law.reference_theta(), params=7e9, interval="band")


def test_cost_and_check_name_their_parameters():
    with pytest.raises(DataError, match=r"^name='H9000': unknown device") as info:
        cost.get_hardware("H9000")
    assert info.value.options[0] == "name" and "--" not in str(info.value)
    with pytest.raises(DataError, match=r"^gpus=0: must be a positive whole number"):
        cost.check_gpus(0)
    with pytest.raises(DataError, match=r"^tol='E': expected NAME=VALUE, e\.g\. tol=\{'alpha': 0\.01\}"):
        parse_tolerances(["E"], "tol")
    with pytest.raises(DataError, match=r"""^columns='x': expected ROLE=COLUMN, e\.g\. columns=\{'params': 'Model Size'\}"""):
        parse_column_mapping(["x"])


def test_option_error_is_the_one_template():
    exc = option_error("n_bootstrap", -1, "the number of bootstrap draws must be a whole number >= 0")
    assert str(exc) == "n_bootstrap=-1: the number of bootstrap draws must be a whole number >= 0"
    assert isinstance(exc, DataError) and exc.options == ("n_bootstrap",)
    assert str(option_error("interval", "band", "no")) == "interval='band': no"
    assert str(option_error("tokens", 1e308, "no", cls=FitError)) == "tokens=1e+308: no"
    assert ScalefitError("plain").options == ()


@pytest.mark.parametrize("exc", [
    DataError("x=1: bad", options=("x",)), FitError("plain"), LimitError("big", options=("jobs",)),
])
def test_errors_pickle_with_their_options(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc) and back.options == exc.options


# ---------------------------------------------------------------------- the CLI names the flags
def test_the_same_errors_through_the_cli_name_the_flags():
    assert_clean_error(run("predict", "--law", "chinchilla", "--reference", "--params", "1e30"),
                       "error: --params 1e+30: outside the range a forecast accepts (1 to 1e+16 parameters)")
    assert_clean_error(run("predict", "--law", "chinchilla", "--reference"),
                       "error: give --params, --tokens or --compute (or two of them)")
    assert_clean_error(run("cost", "estimate", "--params", "1B", "--tokens", "1T", "--hardware", "H9000"),
                       "error: --hardware 'H9000': unknown device")
    assert_clean_error(run("cost", "estimate", "--params", "1B", "--tokens", "1T"),
                       "or both --peak-tflops and --hbm-gbps")
    assert_clean_error(run("predict", "--params", "7B"),
                       "error: give --fit fit.json, or --law NAME with --reference to use published values")


def test_a_subgroup_command_names_its_own_flags(tmp_path):
    """``schedule predict`` reads its data's schedules through --data-schedule: the same library error names
    that flag there and --schedule under ``fit``."""
    curve = tmp_path / "curve.csv"
    curve.write_text("run,step,loss\na,1,3\n")
    assert_clean_error(run("schedule", "predict", "--law", "multipower", "--reference", "--schedule",
                           "cosine:peak=3e-4,steps=1000", "--data", curve, "--data-schedule", "=x"),
                       "error: --data-schedule '=x': expected RUN=SPEC, e.g. --data-schedule run1=cosine:peak=3e-4")
    assert_clean_error(run("fit", curve, "--law", "multipower", "--schedule", "=x"),
                       "error: --schedule '=x': expected RUN=SPEC, e.g. --schedule run1=cosine:peak=3e-4")


def test_flags_come_from_click_and_the_alias_table():
    fit = library_flags(command("fit"))
    assert fit["n_bootstrap"] == "--bootstrap" and fit["fixed"] == "--set" and fit["columns"] == "--col"
    assert fit["schedules"] == "--schedule" and fit["ci"] == "--ci"
    # A subgroup's command: its data schedules come through --data-schedule.
    predict = library_flags(command("schedule", "predict"))
    assert predict["schedules"] == "--data-schedule" and predict["overrides"] == "--set"
    assert library_flags(command("cost", "estimate"))["price_per_gpu_hour"] == "--price-per-gpu-hour"
    assert library_flags(command("translate"))["source_fit"] == "--from"
    every = {name for c in ("fit", "predict", "check", "compare", "pair", "translate") for name in
             [p.name for p in command(c).params]} | {p.name for g in ("schedule", "cost", "data")
                                                     for c in ROOT.commands[g].commands.values() for p in c.params}
    assert {c for cands in ALIASES.values() for c in cands} <= every, "an alias names no CLI parameter"


@pytest.mark.parametrize("path, message, options, expected", [
    (("predict",), "tokens=1e+30: outside the range (at most 1e+24 tokens)", ("tokens",),
     "--tokens 1e+30: outside the range (at most 1e+24 tokens)"),
    (("predict",), "interval='band': use confidence", ("interval",), "--interval 'band': use confidence"),
    (("fit",), "x.csv: missing column for 'loss'; columns are: a, b (map with columns={'loss': 'NAME'})",
     ("columns",), "x.csv: missing column for 'loss'; columns are: a, b (map with --col loss=NAME)"),
    (("fit",), "map with columns={'params': 'NAME', 'tokens': 'NAME'}", ("columns",),
     "map with --col params=NAME --col tokens=NAME"),
    (("fit",), "e.g. columns={'params': 'Model Size'}", ("columns",), 'e.g. --col params="Model Size"'),
    (("fit",), "fix the data, or pass drop_invalid=True to drop them", ("drop_invalid",),
     "fix the data, or pass --drop-invalid to drop them"),
    (("fit",), "x: already exists; pass force=True to overwrite it", ("force",),
     "x: already exists; pass --force to overwrite it"),
    (("pair",), "name the key columns with keys=['N', 'D']", ("keys",), "name the key columns with --by N,D"),
    (("schedule", "predict"), "give lr_table=FILE or schedules={'RUN': SPEC}", ("lr_table", "schedules"),
     "give --data-lr-table FILE or --data-schedule RUN=SPEC"),
    # bare names: not a unit after a number, not inside a path, a quoted name or a flag
    (("predict",), "law 'x' has no optimum for 7e+09 params; give tokens (or compute) with params",
     ("params", "tokens", "compute"), "law 'x' has no optimum for 7e+09 params; give --tokens (or --compute) with --params"),
    (("fit",), "runs/lr_table.csv: lr_table run 'a' disagrees", ("lr_table",),
     "runs/lr_table.csv: --lr-table run 'a' disagrees"),
    # a name the command has no flag for stays the Python name; advice may name another command's flag
    (("compare",), "n_bootstrap=N and fixed={'E': 1.69}", ("fixed",), "n_bootstrap=N and fixed={'E': 1.69}"),
    (("check",), "refit the baseline with n_bootstrap=N (e.g. 1000) or pass tol={'E': VALUE}",
     ("n_bootstrap", "tol"), "refit the baseline with --bootstrap N (e.g. 1000) or pass --tol E=VALUE"),
    (("cost", "estimate"), "d_model=1000 is not divisible by heads=3; pick heads that divide d_model",
     ("d_model", "heads"), "--d-model 1000 is not divisible by --heads 3; pick heads that divide d_model"),
])
def test_to_flags(path, message, options, expected):
    assert to_flags(message, options, command(*path)) == expected
