"""Start-up: what `import scalefit` and `scalefit --help` load, and that loading less changed nothing.

The checks are structural (which modules a fresh interpreter holds), never timed; the times are measured by
benchmarks/bench_startup.py. Each fresh interpreter runs in a subprocess, as this test process has long
imported everything.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest
import typer
from conftest import ROOT
from typer.testing import CliRunner

HEAVY = ("numpy", "pandas", "scipy", "pydantic", "markdown_it", "pygments", "matplotlib", "joblib")


def fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it ends by printing one JSON object, which is returned."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


LOADED = """
import json, sys
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({"heavy": heavy, "scalefit": sorted(m for m in sys.modules if m.startswith("scalefit")),
                  "rich": sorted(m for m in sys.modules if m.split(".")[0] == "rich")}))
""" % (HEAVY,)


def run_cli(*args: str) -> str:
    """Code that runs the console entry point with ``args`` (output discarded), then reports what is loaded."""
    return f"""
import contextlib, io, sys
sys.argv = ["scalefit", *{list(args)!r}]
from scalefit.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
""" + LOADED


# ------------------------------------------------------------------------------------ what is loaded
def test_import_scalefit_loads_no_numpy():
    loaded = fresh("import scalefit\n" + LOADED)
    assert loaded["heavy"] == []
    assert loaded["scalefit"] == ["scalefit", "scalefit.errors"]


def test_help_loads_no_heavy_library_and_no_command_module():
    loaded = fresh(run_cli("--help"))
    assert loaded["heavy"] == []
    assert not [m for m in loaded["scalefit"] if m.startswith("scalefit.cli.") and m.split(".")[-1][0] != "_"]
    assert loaded["rich"] == []  # help pages are click's plain text: rich is not imported at all


def test_a_group_help_and_a_usage_error_load_no_heavy_library():
    for args in (("schedule", "--help"), ("predict", "--no-such-option")):
        loaded = fresh(run_cli(*args))
        assert loaded["heavy"] == [], args
        assert loaded["rich"] == [], args


def test_predict_from_published_values_loads_neither_pydantic_nor_the_other_commands():
    loaded = fresh(run_cli("predict", "--law", "chinchilla", "--reference", "epoch", "--compute", "1e24"))
    assert loaded["heavy"] == ["numpy"]
    commands = {m for m in loaded["scalefit"] if m.startswith("scalefit.cli.") and m.split(".")[-1][0] != "_"}
    assert commands == {"scalefit.cli.predict"}



def test_a_json_forecast_loads_no_rich_and_a_table_forecast_no_file_writer():
    forecast = ("predict", "--law", "chinchilla", "--reference", "epoch", "--compute", "1e24")
    listed = 'print(json.dumps(sorted(m for m in sys.modules if any(m == x or m.startswith(x + ".") for x in %r))))'
    assert fresh(run_cli(*forecast, "--json") + listed % (("rich",),)) == []  # the size echo is plain text
    assert fresh(run_cli(*forecast) + listed % (("tempfile", "scalefit._io"),)) == []  # it writes no file


@pytest.mark.parametrize("say", ["info", "warn"])
def test_an_info_or_warning_line_is_what_rich_would_print(say, capsys):
    """Before a rich console exists, info() and (on a stream that is no terminal: no colour to show)
    warn() write the line themselves; it is the line rich prints."""
    from scalefit.cli import _output

    message = "1e24 → 1.00e+24 FLOPs\tand [bold]markup[/bold] :fire: \x1b[31m kept literal " + "long " * 40
    stderr = _output.err_console
    made = stderr._console
    try:
        stderr._console = None
        getattr(_output, say)(message)
        plain = capsys.readouterr().err
        assert stderr._console is None  # no console was made for it
        stderr.real  # noqa: B018 - now a rich console exists: the line goes through it
        getattr(_output, say)(message)
        assert capsys.readouterr().err == plain
    finally:
        stderr._console = made
    assert plain.count("\n") == 1 and "\\x1b[31m" in plain
    assert plain.startswith("warning: 1e24" if say == "warn" else "1e24")


def test_a_json_fit_with_draws_loads_no_pandas_scipy_or_rich(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)  # a clean 6 x 6 Chinchilla grid: nothing to warn about on stderr
    N, D = np.meshgrid(np.geomspace(5e7, 3e9, 6), np.geomspace(1e9, 1e11, 6))
    loss = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(rng.normal(0, 0.005, N.shape))
    runs = tmp_path / "runs.csv"
    runs.write_text("params,tokens,loss\n" + "".join(f"{n:.6g},{d:.6g},{v:.6f}\n" for n, d, v in
                                                    zip(N.ravel(), D.ravel(), loss.ravel())))
    code = run_cli("fit", str(runs), "--law", "chinchilla", "--json", "--bootstrap", "50")
    loaded = fresh(code + 'print(json.dumps(sorted(m for m in sys.modules if m.startswith("rich"))))')
    assert loaded == []  # nothing went through rich, so its consoles were never made
    out = fresh(code)
    assert out["heavy"] == ["numpy"]  # no pandas (small CSV), no scipy (t quantiles are our own)
    assert not [m for m in out["scalefit"] if m.startswith("scalefit.schedule")]  # a point fit reads no schedule


def test_a_worker_restoring_a_law_loads_only_that_laws_file():
    """A worker process's first task unpickles its law: only that law's file is imported, not every law
    (lr_annealing's, with scipy.signal, once cost each worker about a second)."""
    out = fresh("""
import json, pickle, subprocess, sys
from scalefit.registry import get_law
blob = pickle.dumps(get_law("kaplan_e").with_options())
code = "import pickle, sys, json; law = pickle.loads(sys.stdin.buffer.read()); " \\
       "print(json.dumps([law.name, sorted(m for m in sys.modules if m.startswith('scalefit._laws')), " \\
       "'scipy' in {m.split('.')[0] for m in sys.modules}]))"
got = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True).stdout
print(got.decode())
""")
    assert out == ["kaplan_e", ["scalefit._laws.kaplan_e"], False]


@pytest.mark.parametrize("discovered", [False, True], ids=["one-file", "all-laws"])
def test_a_worker_with_scalefit_installed_elsewhere_restores_a_built_in_law_by_name(discovered):
    """A built-in law travels as (name, its file, options, "builtin", source hash, parameters): on a worker
    whose scalefit lies under another path it is that worker's own built-in of the name, with the options
    and the caller's narrowed bounds; a worker whose copy of the law differs refuses it."""
    out = fresh(f"""
import json, pickle, sys
from scalefit.errors import LawDefinitionError
from scalefit.lmfit_bridge import with_bounds
from scalefit.registry import all_laws, get_law
law = with_bounds(get_law("lr_annealing").with_options(lam=0.99), {{"alpha": (0.1, 0.9)}})
restore, (name, path, options, origin, digest, params) = law.__reduce_ex__(4)
if {discovered!r}:
    all_laws()
elsewhere = "/elsewhere/site-packages/scalefit/_builtin_laws/lr_annealing.py"
back = restore(name, elsewhere, options, origin, digest, params)
try:
    restore(name, elsewhere, options, origin, "0" * 16, params)
    refused = False
except LawDefinitionError as exc:
    refused = "differs from the file" in str(exc)
print(json.dumps([origin, back.name, back.options["lam"], back.params["alpha"].bounds, back.source_file == path,
                  refused, get_law("lr_annealing").params["alpha"].bounds]))
""")
    assert out[:6] == ["builtin", "lr_annealing", 0.99, [0.1, 0.9], True, True]
    assert out[6] == [0.0, 3.0]  # the registry's own law keeps the file's bounds


def test_a_worker_restores_a_user_file_law_that_shares_a_built_in_name(tmp_path):
    """A --law-file law named like a built-in one reaches a worker as the user's law, not the built-in."""
    path = tmp_path / "mine.py"
    path.write_text(
        '"""My Chinchilla: one exponent for both terms."""\n'
        "from scalefit.law import law, Param\n"
        "@law(inputs={'N': 'params', 'D': 'tokens'}, params={'E': Param((1e-3, 20.0), [1.0]), "
        "'A': Param((1e-6, 1e15), [1e2], log=True), 'B': Param((1e-6, 1e15), [1e2], log=True), "
        "'a': Param((0.0, 3.0), [0.3])})\n"
        "def chinchilla(N, D, *, E, A, B, a):\n"
        "    return E + A / N**a + B / D**a\n")
    out = fresh(f"""
import json, pickle, subprocess, sys, warnings
from scalefit.registry import get_law
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # it overrides the built-in law: said once, in the parent
    blob = pickle.dumps(get_law("chinchilla", [{str(path)!r}]))
code = "import pickle, sys, json; law = pickle.loads(sys.stdin.buffer.read()); " \\
       "print(json.dumps([law.source_file, law.param_names]))"
got = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True).stdout
print(got.decode())
""")
    assert out == [str(path.resolve()), ["E", "A", "B", "a"]]


def test_compare_workers_read_the_table_without_pandas():
    """A table read through pandas goes to compare's workers as plain arrays: a worker then never imports
    pandas (0.37 s of its start), and the rows equal the serial ones."""
    out = fresh("""
import json, sys
sys.path.insert(0, "tests")
from strategies import chinchilla_frame
from scalefit.backtest import compare
from scalefit.bootstrap import parallel_map
from scalefit.data import from_frame
from scalefit.registry import get_law

def loaded(_table, _i):
    import sys
    return sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "pandas"})

data = from_frame(chinchilla_frame(seed=4), required=["params", "tokens", "loss"])
laws = [get_law("chinchilla"), get_law("kaplan")]
strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
same = strip(compare(laws, data, ["largest"], jobs=2)) == strip(compare(laws, data, ["largest"]))
print(json.dumps([same, list(parallel_map(loaded, None, [(1,), (2,)], 2, "loky"))]))
""")
    assert out == [True, [["numpy"], ["numpy"]]]


def test_listing_every_law_imports_no_scipy():
    out = fresh("""
import json, sys
from scalefit.registry import all_laws
names = sorted(all_laws())
print(json.dumps({"n": len(names), "scipy": sorted(m for m in sys.modules if m.split(".")[0] == "scipy")}))
""")
    assert out["n"] >= 7 and out["scipy"] == []


# ------------------------------------------------------------------------------------ the process's end
def scalefit_process(*args: str, before: str = "") -> subprocess.CompletedProcess:
    """The console entry point in a fresh interpreter, after ``before`` (code run first)."""
    code = f"{before}\nimport sys\nsys.argv = ['scalefit', *{list(args)!r}]\nfrom scalefit.cli import run\nrun()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_quick_exit_keeps_the_status_the_output_and_the_written_file(tmp_path):
    out = tmp_path / "fit.json"
    done = scalefit_process("fit", "data/example_runs.csv", "--law", "chinchilla", "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # all of it reached the pipe
    assert json.loads(out.read_text())["objective"] == pytest.approx(printed["objective"], rel=1e-12)
    missing = scalefit_process("fit", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    usage = scalefit_process("fit", "data/example_runs.csv", "--bootstrap", "many")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_the_quick_exit_is_taken_and_a_closed_stdout_is_no_error(tmp_path):
    quick = "import os\n_exit = os._exit\nos._exit = lambda code: (print('quick exit', code, flush=True), _exit(code))"
    done = scalefit_process("--version", before=quick)  # would be the normal exit if anything (logging, ...)
    assert done.returncode == 0 and done.stdout.split()[-3:] == ["quick", "exit", "0"]  # registered at import
    out = tmp_path / "fit.json"
    closed = subprocess.run(["sh", "-c", 'exec "$0" -m scalefit fit data/example_runs.csv --json --out "$1" >&-',
                             sys.executable, str(out)],  # stdout closed: Python then has no sys.stdout
                            stderr=subprocess.PIPE, text=True, timeout=300, cwd=ROOT)
    assert closed.returncode == 0 and "Traceback" not in closed.stderr and json.loads(out.read_text())["objective"] > 0
    # stderr closed while a warning is due (a row dropped): Python has no sys.stderr, and the warning is lost
    runs = tmp_path / "runs.csv"
    runs.write_text((ROOT / "data" / "example_runs.csv").read_text() + "bad,1e8,1e9,nan\n")
    quiet = subprocess.run(["sh", "-c", 'exec "$0" -m scalefit fit "$1" --drop-invalid --json 2>&-',
                            sys.executable, str(runs)], stdout=subprocess.PIPE, text=True, timeout=300, cwd=ROOT)
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["objective"] > 0


def test_a_profiler_or_a_host_running_the_module_keeps_the_normal_exit(tmp_path):
    prof = tmp_path / "cli.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "scalefit", "--version"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and prof.stat().st_size > 0  # written at the profiler's exit
    host = ("import runpy, sys\nsys.argv = ['scalefit', '--version']\ntry:\n    runpy.run_module('scalefit', "
            "run_name='__main__')\nexcept SystemExit as exc:\n    print('host goes on', exc.code)")
    hosted = subprocess.run([sys.executable, "-c", host], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert hosted.returncode == 0 and hosted.stdout.split()[-4:] == ["host", "goes", "on", "0"]


def test_work_registered_for_the_exit_still_runs():
    """An atexit handler (logging, a ray or dask client, loky, coverage) or a live thread: the normal exit."""
    from scalefit import __version__

    registered = scalefit_process("--version", before="import atexit; atexit.register(print, 'handler ran')")
    assert registered.returncode == 0 and registered.stdout.rstrip().endswith("handler ran")
    thread = ("import threading, time\n"
              "threading.Thread(target=lambda: (time.sleep(1.0), print('thread ended', flush=True))).start()")
    waited = scalefit_process("--version", before=thread)  # answers in well under the thread's second
    assert waited.returncode == 0 and waited.stdout.split() == ["scalefit", __version__, "thread", "ended"]


# ------------------------------------------------------------- scalefit.fit and scalefit.law stay functions
@pytest.mark.parametrize("first", [
    "import scalefit.fit, scalefit.law, scalefit",  # the submodules before the package's names
    "import scalefit; scalefit.fit; scalefit.law; import scalefit.fit, scalefit.law",  # the names first
    "import scalefit.result, scalefit.registry, scalefit.cli.fit, scalefit",  # the library importing them
])
def test_fit_and_law_stay_the_functions_after_any_import(first):
    checked = fresh(first + """
import inspect, json, sys, types
from scalefit import fit, law, Law, Param
import scalefit.fit as via_import_as
from scalefit.fit import fit as function
assert fit is scalefit.fit is function is via_import_as, (fit, function)
assert isinstance(sys.modules["scalefit.fit"], types.ModuleType) and isinstance(sys.modules["scalefit.law"], types.ModuleType)
assert inspect.isfunction(scalefit.law) and scalefit.law is law and scalefit.Law is Law

@scalefit.law(inputs={"N": "params", "D": "tokens"}, reference={"E": 1.7, "A": 400.0, "alpha": 0.3},
              params={"E": Param((0.1, 10), [1, 2], log=True), "A": Param((1, 1e6), [100, 1000], log=True),
                      "alpha": Param((0.01, 1), [0.2, 0.4])})
def size_only(N, D, *, E, A, alpha):
    return E + A / N**alpha

res = scalefit.fit("chinchilla", "data/example_runs.csv")
print(json.dumps({"law": res.law.name, "runs": res.n_runs, "params": sorted(res.params),
                  "objective": res.objective, "made": type(size_only).__name__}))
""")
    assert checked["law"] == "chinchilla" and checked["runs"] == 60
    assert checked["params"] == ["A", "B", "E", "alpha", "beta"]
    assert 0 < checked["objective"] < 1e-2
    assert checked["made"] == "FunctionLaw"


def test_the_package_lists_its_lazy_names():
    import scalefit

    assert {"fit", "law", "load_fit", "get_law", "forecast"} <= set(dir(scalefit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        scalefit.nope  # noqa: B018


# --------------------------------------------------------------------------- the same help, the same values
def _reference_app() -> typer.Typer:
    """The root as it was built before commands loaded on demand: every command registered up front (with
    the same plain help pages)."""
    from typer.core import TyperGroup

    from scalefit.cli import _SETTINGS, COMMANDS, _root
    from scalefit.cli._help import plain_help

    class EagerRoot(TyperGroup):
        def main(self, *args, **kwargs):
            plain_help(self)
            return super().main(*args, **kwargs)

    ref = typer.Typer(cls=EagerRoot, no_args_is_help=True, **_SETTINGS,
                      help="Fit and forecast neural scaling laws with honest error bars.")
    ref.callback()(_root)
    groups = []
    for name, (module, attr, _) in COMMANDS.items():
        target = getattr(importlib.import_module(f"scalefit.cli.{module}"), attr)
        if isinstance(target, typer.Typer):
            groups.append((name, target))
        else:
            ref.command(name)(target)
    for name, target in groups:
        ref.add_typer(target, name=name)
    return ref


def _paths(group, prefix=()):
    for name in group.list_commands(None):
        yield (*prefix, name)
        sub = group.get_command(None, name)
        if hasattr(sub, "commands"):
            yield from _paths(sub, (*prefix, name))


def test_every_help_page_is_the_one_typer_builds_up_front():
    from scalefit.cli import app

    runner = CliRunner()
    ref = _reference_app()
    paths = [(), *_paths(typer.main.get_command(ref))]
    assert len(paths) > 30
    for path in paths:
        lazy = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        eager = runner.invoke(ref, [*path, "--help"], env={"COLUMNS": "100"})
        assert lazy.exit_code == eager.exit_code == 0, path
        assert lazy.output == eager.output, path


def test_the_root_listing_is_each_commands_own_first_paragraph():
    import inspect

    from scalefit.cli import COMMANDS, build_command

    for name, (_, _, listed) in COMMANDS.items():
        command = build_command(name)
        first = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].strip()
        assert listed == first, name


def test_the_root_loads_a_command_only_when_asked():
    from scalefit.cli import COMMANDS, app

    root = typer.main.get_command(app)
    assert root.list_commands(None) == list(COMMANDS)
    assert root.commands.built("predict") is None
    assert root.get_command(None, "predict").name == "predict"
    assert root.commands.built("predict") is not None and root.commands.built("fit") is None
    assert root.get_command(None, "no-such-command") is None


def test_an_unknown_command_and_the_version_still_answer():
    from scalefit import __version__
    from scalefit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["no-such-command"])
    assert res.exit_code == 2 and "No such command" in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"scalefit {__version__}"


VALUES = ["1e24", "1E+24", "-3.5e-4", ".5", "5.", "007", "-0", "0", "42", "99999999999999999999", "1_000",
          " 5", "5 ", "1.0", "1.5", "inf", "-nan", "0x10", "abc", "", "7B", "3e-4", "+2", "1e400", "9" * 5000,
          "0." + "3" * 400]


@pytest.mark.parametrize("annotation", [str, int, float])
def test_light_conversion_returns_what_typer_returns(annotation):
    """For every value, the light converter gives typer's (pydantic's) answer: the same value of the same type,
    or the same error message."""
    coercion = pytest.importorskip("typer._coercion")
    from typer.models import OptionInfo

    from scalefit.cli._startup import _kind, _light_class

    descriptor = coercion.resolve_type_descriptor(annotation, OptionInfo())
    full = coercion.build_runtime_param(descriptor)

    class Param:  # what a converter reads from its parameter
        multiple, nargs, type_descriptor, _runtime_param = False, 1, descriptor, None

    def outcome(runtime, value):
        try:
            got = runtime.coerce(value, param=Param(), ctx=None)
        except Exception as exc:  # noqa: BLE001 - comparing the errors themselves
            return "error", type(exc).__name__, str(exc)
        return "value", type(got).__name__, repr(got)

    light = _light_class(_kind(annotation))(parameter_info=descriptor.parameter_info, annotation=annotation)
    for value in [*VALUES, None, 3, 2.5, True]:
        assert outcome(light, value) == outcome(full, value), value


def test_light_conversion_of_a_repeated_option():
    coercion = pytest.importorskip("typer._coercion")
    from typing import List

    from typer.models import OptionInfo

    from scalefit.cli._startup import _kind, _light_class

    descriptor = coercion.resolve_type_descriptor(List[str], OptionInfo())
    full = coercion.build_runtime_param(descriptor)

    class Param:
        multiple, nargs, type_descriptor, _runtime_param = True, 1, descriptor, None

    light = _light_class(_kind(List[str]))(parameter_info=descriptor.parameter_info, annotation=List[str])
    for value in [("E=1.69", "alpha=0.34"), ["a"], (), None]:
        got, want = light.coerce(value, param=Param(), ctx=None), full.coerce(value, param=Param(), ctx=None)
        assert got == want and type(got) is type(want), value


def test_options_still_refuse_bad_values_with_typers_message():
    from cli_helpers import run

    res = run("predict", "--gpus", "two", "--hours", "1", "--hardware", "H100", "--law", "chinchilla",
              "--reference", "epoch")
    assert res.exit_code == 2 and "Invalid value for '--gpus'" in res.output and "valid integer" in res.output


def test_user_text_is_never_turned_into_emoji(capsys):
    from scalefit.cli._output import console, info

    console.print("run :100: of :fire:")
    info("loss :thumbs_up:")
    captured = capsys.readouterr()
    assert "run :100: of :fire:" in captured.out and "loss :thumbs_up:" in captured.err
