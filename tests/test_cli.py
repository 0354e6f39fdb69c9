"""The command line through typer's CliRunner: exit codes 0/1/2, --json output, one-line errors."""


from pathlib import Path

import pytest
from cli_helpers import assert_clean_error, ok_json, run


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from conftest import ROOT

    out = tmp_path_factory.mktemp("fit") / "fit.json"
    res = run("fit", ROOT / "data" / "example_runs.csv", "--bootstrap", 100, "--seed", 0, "--out", out,
              "--loss-unit", "nats")
    assert res.exit_code == 0, res.output
    return out


def test_help_lists_every_command():
    res = run("--help")
    assert res.exit_code == 0
    for command in ("fit", "predict", "laws", "data"):
        assert command in res.stdout


def test_fit_json_keys(example_csv):
    out = ok_json("fit", example_csv, "--bootstrap", 20)
    assert out["law"] == "chinchilla" and out["n_runs"] == 60 and isinstance(out["objective"], float)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert set(out["params"][name]) >= {"value", "stderr", "low", "high", "at_bound"}
    assert {"rmse_log", "r2_log", "n_starts", "n_converged_best", "largest_residuals"} <= set(out["diagnostics"])


def test_fit_refuses_to_overwrite(fitted, example_csv):
    before = fitted.read_text()
    assert_clean_error(run("fit", example_csv, "--out", fitted), match="already exists")
    assert fitted.read_text() == before


def test_fit_plot(tmp_path, example_csv):
    res = run("fit", example_csv, "--bootstrap", 20, "--plot", tmp_path / "fit.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fit.png").stat().st_size > 10_000


def test_fit_with_set_and_tie(example_csv):
    out = ok_json("fit", example_csv, "--set", "E=1.69", "--tie", "beta=alpha")
    assert out["params"]["E"]["value"] == 1.69 and out["params"]["E"]["status"] == "fixed"
    assert out["params"]["beta"]["value"] == out["params"]["alpha"]["value"]


def test_predict_modes(fitted):
    given = ok_json("predict", "--fit", fitted, "--params", "70B", "--tokens", "1.4T")
    assert given["params"] == 7e10 and given["tokens"] == 1.4e12
    assert given["loss"]["low"] < given["loss"]["value"] < given["loss"]["high"]
    assert any("beyond the largest fitted" in w for w in given["warnings"])
    optimal = ok_json("predict", "--fit", fitted, "--compute", "5.76e23")
    assert optimal["compute"] == pytest.approx(5.76e23)
    assert optimal["params_low"] < optimal["params"] < optimal["params_high"]
    for_size = ok_json("predict", "--fit", fitted, "--params", "7B")
    assert for_size["params"] == 7e9 and for_size["tokens_low"] < for_size["tokens"] < for_size["tokens_high"]


def test_predict_from_published_values():
    """Hoffmann's rounded values: C = 5.76e23 -> N_opt 3.219e10, D/N 92.6, L 1.9307."""
    out = ok_json("predict", "--law", "chinchilla", "--reference", "--compute", "5.76e23")
    assert out["params"] == pytest.approx(3.219e10, rel=1e-3)
    assert out["tokens"] / out["params"] == pytest.approx(92.6, rel=1e-3)
    assert out["loss"]["value"] == pytest.approx(1.9307, abs=1e-4)
    epoch = ok_json("predict", "--law", "chinchilla", "--reference", "epoch", "--params", "70B", "--tokens", "1.4T")
    assert epoch["loss"]["value"] == pytest.approx(1.9739, abs=1e-4)


def test_laws_list_and_show():
    listed = ok_json("laws", "list")
    names = {entry["name"] for entry in listed}
    assert {"chinchilla", "kaplan"} <= names
    assert all(set(entry) >= {"name", "inputs", "params", "origin"} for entry in listed)
    res = run("laws", "show", "chinchilla")
    assert res.exit_code == 0 and "406.4" in res.stdout and "Hoffmann" in res.stdout


def test_data_check(example_csv):
    out = ok_json("data", "check", example_csv, "--law", "chinchilla")
    assert out["ok"] and out["rows"] == 60 and out["runs"] == 60


def test_law_file(tmp_path, example_csv):
    law_file = tmp_path / "my_law.py"
    law_file.write_text(
        '"""A pure power law in compute."""\n'
        "import numpy as np\n"
        "from scalefit import Param, law\n\n"
        "@law(inputs={'N': 'params', 'D': 'tokens'}, params={\n"
        "    'E': Param((0.1, 10), [1, 2], log=True, doc='floor'),\n"
        "    'A': Param((1e-3, 1e6), [10, 100], log=True, doc='scale'),\n"
        "    'a': Param((0.0, 1.0), [0.05, 0.2], doc='exponent')},\n"
        "    reference={'E': 1.7, 'A': 50.0, 'a': 0.1}, citation='test')\n"
        "def compute_law(N, D, *, E, A, a):\n"
        '    """L = E + A (6ND)^-a"""\n'
        "    return E + A * (6 * N * D) ** -a\n"
    )
    listed = ok_json("laws", "list", "--law-file", law_file)
    assert any(e["name"] == "compute_law" and e["origin"].startswith("file:") for e in listed)
    out = ok_json("fit", example_csv, "--law", "compute_law", "--law-file", law_file)
    assert out["law"] == "compute_law" and out["diagnostics"]["r2_log"] > 0.5


@pytest.mark.parametrize(
    "args,match",
    [
        (("fit", "nope.csv"), "nope.csv: no such file"),
        (("fit", "{example}", "--law", "nolaw"), "unknown law 'nolaw'; known laws:"),
        (("fit", "{example}", "--col", "params=Size"), "column 'Size' (for params) not found"),
        (("fit", "{example}", "--set", "Q=1"), "no parameter 'Q'"),
        (("fit", "{example}", "--set", "E"), "expected NAME=VALUE"),
        (("fit", "{example}", "--loss", "cauchy"), "loss 'cauchy'"),
        (("fit", "{example}", "--backend", "mpi"), "--backend 'mpi'"),
        (("predict", "--params", "7B"), "give --fit fit.json"),
        (("predict", "--law", "chinchilla", "--reference", "--params", "7X"), "'7X' is not a number"),
        (("predict", "--law", "chinchilla", "--reference", "nosuchset", "--params", "7B"), "no reference set"),
        (("predict", "--law", "chinchilla", "--reference", "--params", "-7B"), "must be positive"),
        (("predict", "--fit", "missing.json", "--params", "7B"), "missing.json: no such fit file"),
        (("laws", "show", "zzz"), "unknown law 'zzz'"),
        (("data", "check", "{bad}"), "bad.csv: column 'loss' (loss) row 2: 'oops' is not a number"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, match, example_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("params,tokens,loss\n1e8,2e9,3.0\n2e8,2e9,oops\n")
    args = [str(a).format(example=example_csv, bad=bad) for a in args]
    assert_clean_error(run(*args), match=match)


def test_broken_law_file_names_the_file(tmp_path, example_csv):
    broken = tmp_path / "broken_law.py"
    broken.write_text("import numpy as np\nraise RuntimeError('boom')\n")
    assert_clean_error(run("fit", example_csv, "--law-file", broken), match="broken_law.py: failed to import")
    bounds = tmp_path / "bounds_law.py"
    bounds.write_text(
        "from scalefit import Param, law\n"
        "@law(inputs={'N': 'params'}, params={'E': Param((2.0, 1.0), [1.5], doc='x')})\n"
        "def bad(N, *, E):\n    return E + 0 * N\n"
    )
    assert_clean_error(run("laws", "list", "--law-file", bounds), match="low >= high")


def test_strict_exits_1_on_a_doubtful_fit(tmp_path):
    """Pure noise with no trend: --strict turns the diagnostics into exit 1."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = np.repeat([1e7, 1e8, 1e9], 4)
    d = np.tile([1e9, 1e10, 1e11, 1e12], 3)
    path = tmp_path / "noise.csv"
    path.write_text("params,tokens,loss\n" + "".join(f"{a},{b},{3 + rng.normal(0, 0.3):.4f}\n" for a, b in zip(n, d)))
    res = run("fit", path, "--strict")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output


def _commands(group, prefix=()):
    """Every (path, click command) under the typer app, groups and leaves."""
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):  # a group (typer may bring its own click)
            yield from _commands(cmd, (*prefix, name))


def test_every_command_is_documented_and_named_in_the_readme():
    """sqlite-utils' rule: every command and subcommand has help text, runs --help, and the README names it."""
    import re

    import typer

    from scalefit.cli import app

    readme = re.sub(r"\s+", " ", (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8"))
    root = typer.main.get_command(app)
    seen = 0
    for path, cmd in _commands(root):
        assert (cmd.help or "").strip(), f"scalefit {' '.join(path)} has no help text"
        res = run(*path, "--help")
        assert res.exit_code == 0 and "Usage" in res.output, path
        assert f"scalefit {' '.join(path)}" in readme, f"README never names `scalefit {' '.join(path)}`"
        seen += 1
    assert seen >= 20
