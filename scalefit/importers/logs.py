r"""Training log lines (``key: value`` or ``key=value``), no dependency: Megatron-LM/DeepSpeed, GPT-NeoX,
nanoGPT-style and most hand-written training loops.

A line is split into fields at ``|``, ``,``, ``;`` and tabs (braces and brackets around a field are
ignored, so a printed dict reads too). A field that is one pair reads with :data:`FIELD`, whose key may
hold spaces (``lm loss: 3.41E+00``, ``learning rate: 1.5E-04``); a field of several space-separated pairs
(``step=100 loss=3.2 lr=1e-4``) reads with :data:`TOKEN`, whose keys have no spaces; a field with neither
is split at ``:`` and each part read as ``key value`` with :data:`SPACED`, whose keys hold letters only
(nanoGPT's ``iter 100: loss 3.2100`` and ``step 2000: train loss 3.10, val loss 3.21``). Values are plain
numbers (``3.2``, ``1.500E-04``, ``-1``); ``12.3ms`` or ``5%`` is not one and is skipped. The step of a line is its ``step``/``iter``/``iteration``/
``global_step`` value, else Megatron's ``iteration 100/ 500000`` or ``... at iteration 1000`` (:data:`STEP`).
Lines without a step are skipped (and counted). Megatron's argument dump (``  seq_length ........ 2048``,
:data:`ARGUMENT`) gives the run's sequence length, batch size and parameter count where printed.

One run per file, named after the file, unless ``run`` names all the files as one run (a job restarted
into several logs, given in order: each restart replaces what the earlier logs hold from its first step
on; logs that overlap far more than a restart would are refused).
"""

from __future__ import annotations

import re
from pathlib import Path

from .._io import check_input_file
from ..errors import DataError
from ..tables import show_name
from . import keys as K
from .series import RunLog, Series

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
FIELD = re.compile(rf"^['\"]?(?P<key>[A-Za-z_][\w ./()\-]*?)['\"]?\s*[:=]\s*(?P<value>{NUMBER})$")
TOKEN = re.compile(rf"(?<![\w./\-])['\"]?(?P<key>[A-Za-z_][\w./\-]*)['\"]?\s*[:=]\s*(?P<value>{NUMBER})(?![\w.])")
SPACED = re.compile(rf"^(?P<key>[A-Za-z_][A-Za-z_ ./\-]*?)\s+(?P<value>{NUMBER})$")
STEP = re.compile(r"\b(?:iteration|iter|step)\s+(?P<step>\d+)\s*(?:/\s*\d+)?", re.IGNORECASE)
ARGUMENT = re.compile(r"^\s*(?P<key>[A-Za-z_]\w*) \.{3,} (?P<value>\S+)\s*$")
SPLIT = re.compile(r"[|,;\t]")
_STEP_PHRASE = re.compile(r"\bat\s+(iteration|iter|step)$", re.IGNORECASE)  # "validation loss at iteration 1000"
_STEP_KEYS = {K.normalise(k) for k in ("step", "iter", "iteration", "global_step", "trainer/global_step",
                                       "train/step", "train/global_step")}


def parse_line(line: str) -> tuple[float | None, dict[str, float]]:
    """``(step, {key: value})`` of one log line; step None when the line names none."""
    pairs: dict[str, float] = {}
    for field in SPLIT.split(line):
        field = field.strip().strip("{}[]").strip()
        if not field:
            continue
        match = FIELD.match(field)
        if match:
            pairs[match.group("key").strip()] = float(match.group("value"))
            continue
        tokens = list(TOKEN.finditer(field))
        for token in tokens:
            pairs[token.group("key")] = float(token.group("value"))
        if not tokens:
            for part in field.split(":"):
                spaced = SPACED.match(part.strip())
                if spaced and not _STEP_PHRASE.search(spaced.group("key")):
                    pairs[spaced.group("key").strip()] = float(spaced.group("value"))
    step = None
    for key in list(pairs):
        if K.normalise(key) in _STEP_KEYS:
            step = pairs.pop(key) if step is None else step
    if step is None and pairs:
        match = STEP.search(line)
        if match:
            step = float(match.group("step"))
    return step, pairs


def read_log(path: Path, name: str) -> RunLog:
    """One log file as a run: every key with a step, and the Megatron argument dump as metadata."""
    path = check_input_file(path, "training log")
    steps: dict[str, list[float]] = {}
    values: dict[str, list[float]] = {}
    arguments: dict[str, str] = {}
    stepless = lines = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            lines += 1
            argument = ARGUMENT.match(line)
            if argument:
                arguments[argument.group("key")] = argument.group("value")
                continue
            step, pairs = parse_line(line)
            if not pairs:
                continue
            if step is None:
                stepless += 1
                continue
            for key, value in pairs.items():
                steps.setdefault(key, []).append(step)
                values.setdefault(key, []).append(value)
    # Constant logged values such as Megatron's "global batch size: 512" count as metadata too.
    constant = {k: v[0] for k, v in values.items() if len(set(v)) == 1}
    meta = K.run_metadata(arguments, constant)
    notes = [f"{stepless} line(s) with values but no step skipped"] if stepless else []
    series = {k: Series(steps[k], values[k]) for k in steps}
    return RunLog(name, str(path), series, meta, notes)


def read_logs(paths: list[str], *, run: str | None = None) -> tuple[list[RunLog], list[str]]:
    """Runs from log files (see the module docstring)."""
    runs = [read_log(Path(p), run or Path(p).stem) for p in paths]
    empty = [r for r in runs if not r.series]
    if empty:
        raise DataError(f"{empty[0].origin}: no 'key: value' line with a step (such as 'step: 100 | loss: 3.2' or "
                        f"Megatron's 'iteration 100/ 1000 | lm loss: 3.2E+00')")
    return runs, [f"log: {len(paths)} file(s) read as {len({r.name for r in runs})} run(s) "
                  f"{', '.join(show_name(n) for n in list(dict.fromkeys(r.name for r in runs))[:5])}"]
