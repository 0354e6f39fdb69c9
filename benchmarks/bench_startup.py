"""Start-up of the command line, whole processes: `scalefit --help` (piped, and at a terminal), forecasts
from published values and from a saved fit, and the 400M schedule optimisation, beside `python -c "pass"`,
`python -c "import numpy"` (and `import typer`) as yardsticks.

    python benchmarks/bench_startup.py [--rounds 9]

Each round runs every command once, in turn (alternated, so a busy machine slows them alike); the table
gives the median wall time of each, and the median CPU time (user + system) of the process, which a shared
machine disturbs less. Bytecode is cached, as in an installed package (pip compiles it), in a temporary
folder (PYTHONPYCACHEPREFIX) so the checkout gets no __pycache__; the short commands also run, in the same
rounds, compiling every module from source each time (PYTHONDONTWRITEBYTECODE=1 with an editable install).
`schedule optimize` runs with its default of one BLAS thread and with OpenBLAS's default (one per core).
Where util-linux `script` exists, `scalefit --help` also runs at a terminal (a pseudo-terminal through
`script`, beside `python -c pass` through `script` for the cost of `script` itself): the target holds for
what a user at a terminal waits for, `script`'s own start-up taken off.
Writes benchmarks/results/startup.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "startup.md"
OPTIMIZE = ["schedule", "optimize", "--law", "multipower", "--reference", "400M", "--peak", "3e-4",
            "--warmup", "2160", "--steps", "24000"]
PREDICT = ["predict", "--law", "chinchilla", "--reference", "epoch", "--compute", "1e24"]


def scalefit_command() -> list[str]:
    """The console script a user runs (beside this Python), else ``python -m scalefit``."""
    script = Path(sys.executable).parent / "scalefit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "scalefit"]


def run_once(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, stderr) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"bench_startup: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def rounds(commands: dict, env: dict, n: int) -> dict:
    """Every command (argv, extra environment) once per round, the starting one rotating; medians per command."""
    names = list(commands)
    for name in names:  # warm-up: bytecode written, files in the page cache
        run_once(commands[name][0], {**env, **commands[name][1]})
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    outs: dict[str, list[str]] = {name: [] for name in names}
    for r in range(n):
        for name in names[r % len(names):] + names[: r % len(names)]:
            wall, cpu, out = run_once(commands[name][0], {**env, **commands[name][1]})
            walls[name].append(wall)
            cpus[name].append(cpu)
            outs[name].append(out)
    return {name: {"wall": statistics.median(walls[name]), "min": min(walls[name]),
                   "cpu": statistics.median(cpus[name]), "outs": outs[name]} for name in names}


def saved_fit() -> Path:
    """A fit.json with 200 bootstrap draws (the example runs), in a temporary folder."""
    from scalefit.fit import fit

    folder = Path(tempfile.mkdtemp(prefix="scalefit-startup-"))
    fit("chinchilla", str(ROOT / "data" / "example_runs.csv"), n_bootstrap=200, seed=0).save(folder / "fit.json")
    return folder / "fit.json"


def optimiser_seconds(outputs: list[str]) -> float | None:
    """Median of the optimiser's own time, as `schedule optimize` reports it on stderr ("...; 1.3 s")."""
    found = [re.findall(r"([0-9.]+) s\s*$", out.strip()) for out in outputs]
    seconds = [float(f[-1]) for f in found if f]
    return statistics.median(seconds) if seconds else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternated rounds (at least 7)")
    parser.add_argument("--repeat", type=int, default=0, help="as --rounds when larger (benchmarks/run.py)")
    args, _ = parser.parse_known_args()
    n = max(7, args.rounds, args.repeat)
    scalefit = scalefit_command()
    fit_json = saved_fit()
    threads = str(os.cpu_count() or 1)
    numpy_key, typer_key = "python -c 'import numpy'", "python -c 'import typer'"
    bare_key = "python -c pass"
    help_key, predict_key = "scalefit --help", "scalefit " + " ".join(PREDICT)
    saved_key = "scalefit predict --fit fit.json --params 7B --tokens 1.4T --json"
    optimize_key = "scalefit " + " ".join(OPTIMIZE)
    threaded_key = f"OPENBLAS_NUM_THREADS={threads} " + optimize_key
    commands = {
        bare_key: ([sys.executable, "-c", "pass"], {}),
        numpy_key: ([sys.executable, "-c", "import numpy"], {}),
        typer_key: ([sys.executable, "-c", "import typer"], {}),
        help_key: ([*scalefit, "--help"], {}),
        predict_key: ([*scalefit, *PREDICT], {}),
        saved_key: ([*scalefit, "predict", "--fit", str(fit_json), "--params", "7B", "--tokens", "1.4T", "--json"], {}),
        optimize_key: ([*scalefit, *OPTIMIZE], {}),
        threaded_key: ([*scalefit, *OPTIMIZE], {"OPENBLAS_NUM_THREADS": threads}),  # OpenBLAS's default
    }
    # At a terminal: the same command with a pseudo-terminal for its output (script -e: its exit status).
    tty_help_key, tty_bare_key = "script: scalefit --help (at a terminal)", "script: python -c pass"
    if shutil.which("script") and sys.platform.startswith("linux"):
        commands[tty_help_key] = (["script", "-qec", shlex.join([*scalefit, "--help"]), "/dev/null"], {})
        commands[tty_bare_key] = (["script", "-qec", shlex.join([sys.executable, "-c", "pass"]), "/dev/null"], {})
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    base["COLUMNS"] = "100"
    cache = tempfile.mkdtemp(prefix="scalefit-pyc-")
    compiled = {"PYTHONDONTWRITEBYTECODE": "1"}
    everything = {**{key: (argv, {"PYTHONPYCACHEPREFIX": cache, **env}) for key, (argv, env) in commands.items()},
                  **{("compiled", key): (argv, {**compiled, **env}) for key, (argv, env) in commands.items()
                     if key in (numpy_key, typer_key, help_key, predict_key, saved_key)}}
    try:
        measured = rounds(everything, base, n)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(fit_json.parent, ignore_errors=True)
    cached = {key: measured[key] for key in commands}
    cold = {key[1]: res for key, res in measured.items() if isinstance(key, tuple)}

    numpy_wall = cached[numpy_key]["wall"]
    targets = {
        help_key: ("≤ 0.15 s", cached[help_key]["wall"] <= 0.15),
        predict_key: (f"≤ 1.5x import numpy = {1.5 * numpy_wall:.3f} s", cached[predict_key]["wall"] <= 1.5 * numpy_wall),
        optimize_key: ("≤ 1.5 s", cached[optimize_key]["wall"] <= 1.5),
    }
    if tty_help_key in cached:  # script's own cost: script + bare Python, less bare Python
        script_cost = cached[tty_bare_key]["wall"] - cached[bare_key]["wall"]
        at_terminal = cached[tty_help_key]["wall"] - script_cost
        targets[tty_help_key] = (f"≤ 0.15 s without script's own {script_cost:.3f} s: {at_terminal:.3f} s",
                                 at_terminal <= 0.15)
    rows = []
    for key, res in cached.items():
        target, met = targets.get(key, ("–", None))
        verdict = "" if met is None else (" (met)" if met else " (NOT met)")
        ratio = res["wall"] / numpy_wall
        cold_wall = f"{cold[key]['wall']:.3f} s" if key in cold else "–"
        rows.append(f"| `{key}` | {res['wall']:.3f} s | {res['min']:.3f} s | {res['cpu']:.3f} s | {ratio:.2f}x | "
                    f"{cold_wall} | {target}{verdict} |")
    notes = []
    for key, label in ((optimize_key, "one BLAS thread (the command's default)"),
                       (threaded_key, f"{threads} BLAS threads (OpenBLAS's default)")):
        inside = optimiser_seconds(cached[key]["outs"])
        if inside is not None:
            notes.append(f"- `schedule optimize`, {label}: the search itself (WSD grid, cosine, free-form optimiser) reports "
                         f"{inside:.2f} s (median); the rest of the command (interpreter, imports, law, output) is "
                         f"about {cached[key]['wall'] - inside:.2f} s of its median wall time.")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        "# scalefit start-up benchmark",
        "",
        f"Whole processes, medians of {n} alternated rounds; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load:.1f} at the end. Bytecode cached (as installed); "
        f"the 'compiled' column compiles every module from source each run (PYTHONDONTWRITEBYTECODE=1 with an "
        f"editable install). CPU is user + system time of the process.",
        "",
        "| command | wall (median) | wall (min) | CPU (median) | / import numpy | wall, compiled | target |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        "",
    ])
    print(text)
    from scalefit._io import atomic_write

    atomic_write(OUT, text, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
