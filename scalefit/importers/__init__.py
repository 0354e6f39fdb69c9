"""Training logs in, one curve table out: ``scalefit import``.

    from scalefit.importers import import_runs, write_import
    imported = import_runs("tensorboard", ["runs/"], min_step=1)
    write_import(imported, "runs.parquet")

Sources (one module each): ``tensorboard`` (event folders), ``wandb`` (the API, a history table, or a
chart's "Export CSV"), ``mlflow`` (a tracking store) and ``log`` (``key: value`` training log lines).
Every reader returns :class:`~scalefit.importers.series.RunLog` objects; :func:`~.assemble.assemble` turns
them into the table ``run, step, loss`` (+ ``lr`` at every step when the LR was logged, ``tokens``,
``flops``), with per-run ``params``, ``batch_tokens`` (batch size in tokens) and ``seq_len`` where the
run's config gives them, ``source``, and ``loss_unit``. :func:`scalefit.curves.load_curves` reads the
table as it is (``scalefit fit runs.parquet --law multipower``); the table is checked that way before
anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import DataError, option_error
from ..limits import enforce
from . import keys
from .assemble import NO_LR, Imported, assemble
from .series import RunLog, Series, matches

KINDS = ("tensorboard", "wandb", "mlflow", "log")
__all__ = ["KINDS", "Imported", "RunLog", "Series", "import_runs", "parse_branches", "write_import"]


def parse_branches(items: Iterable[str] | None) -> dict[str, str]:
    """``["cooldown=const"]`` (as the CLI takes them) -> ``{"cooldown": "const"}``, for ``branch_of``."""
    out: dict[str, str] = {}
    for item in items or []:
        child, sep, parent = str(item).partition("=")
        if not sep or not child.strip() or not parent.strip():
            raise option_error("branch_of", str(item), "expected CHILD=PARENT, e.g. branch_of={'cool-80k': 'const'}")
        out[child.strip()] = parent.strip()
    return out


def _wanted(given: Iterable[str | None]):
    """Keys worth fetching from a store that fetches key by key: those asked for, and every alias."""
    names = {keys.normalise(k) for k in given if k and k != NO_LR}
    for aliases in keys.ALIASES.values():
        names |= {keys.normalise(a) for a in aliases}
    return lambda key: keys.normalise(key) in names


def import_runs(kind: str, sources: Iterable[str | Path], *, loss: str | None = None, lr: str | None = None,
                tokens: str | None = None, flops: str | None = None, step: str | None = None,
                runs: str | None = None, run: str | None = None, experiment: str | None = None,
                min_step: int | None = None, branch_of: Mapping[str, str] | None = None,
                loss_unit: str | None = None, params_convention: str | None = None, jobs: int = 1) -> Imported:
    """Read training logs of ``kind`` from ``sources`` into one curve table (see the module docstring).

    ``loss``/``lr``/``tokens``/``flops`` name the keys (default: the first known alias a run logs;
    ``lr='none'`` leaves the LR out); ``step`` names the step key of W&B tables; ``runs`` keeps runs whose
    name (or ``NAME#RUN_ID``, W&B and MLflow) matches a regular expression; ``run`` names every file as one
    run (W&B tables, logs); ``experiment`` picks an MLflow experiment; ``min_step`` drops losses logged before that step;
    ``branch_of={child: parent}`` stitches a branch onto the run it branched from; ``jobs`` reads
    TensorBoard run folders in that many processes (-1: one per CPU).
    """
    if kind not in KINDS:
        raise option_error("kind", kind, f"use one of {', '.join(KINDS)}")
    sources = [str(s) for s in sources]
    if not sources:
        raise DataError(f"{kind}: give at least one source to import")
    for name, value, kinds in (("step", step, ("wandb",)), ("run", run, ("wandb", "log")),
                               ("experiment", experiment, ("mlflow",))):
        if value is not None and kind not in kinds:
            raise option_error(name, value, f"applies to {' and '.join(kinds)} sources, not {kind}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not (jobs >= 1 or jobs == -1):
        raise option_error("jobs", jobs, "use a positive number of workers, or -1 for one per CPU")
    enforce("jobs", (os.cpu_count() or 1) if jobs == -1 else jobs, f"jobs={jobs}")
    try:
        pattern = re.compile(runs) if runs else None
    except re.error as exc:
        raise option_error("runs", runs, f"not a regular expression ({exc})") from None
    found: list[RunLog] = []
    notes: list[str] = []
    if kind == "tensorboard":
        from .tensorboard import read_tensorboard

        for source in sources:
            more, extra = read_tensorboard(source, jobs=jobs)
            found += more
            notes += extra
    elif kind == "wandb":
        from .wandb import read_wandb

        found, notes = read_wandb(sources, step=step, runs=runs, run=run)
    elif kind == "mlflow":
        from .mlflow import read_mlflow

        for source in sources:
            more, extra = read_mlflow(source, wanted=_wanted((loss, lr, tokens, flops)), runs=runs,
                                      experiment=experiment)
            found += more
            notes += extra
    else:
        from .logs import read_logs

        found, notes = read_logs(sources, run=run)
    if pattern is not None:
        kept = [r for r in found if matches(pattern, r.name, r.run_id)]
        if not kept:
            names = sorted({r.name for r in found})
            raise DataError(f"{sources[0]}: no run name matches runs={runs!r}; runs are: "
                            f"{', '.join(repr(n) for n in names[:20])}", options=("runs",))
        found = kept
    imported = assemble(found, kind=kind, loss=loss, lr=lr, tokens=tokens, flops=flops, min_step=min_step,
                        branch_of=branch_of, loss_unit=loss_unit, params_convention=params_convention,
                        reader_notes=notes)
    if "lr" in imported.frame.columns:
        # The guarantee that ``fit`` reads the table: the curve loader accepts it as it is.
        from ..curves import load_curves

        load_curves(imported.frame, source=f"{kind} import")
    return imported


def write_import(imported: Imported, out: str | Path, *, force: bool = False) -> Path:
    """Write the table (``.parquet`` or ``.csv``) atomically; a parquet file also keeps the notes and the
    per-run summary in its metadata (``pandas.read_parquet(out).attrs["scalefit_import"]``)."""
    from .._io import json_safe, write_table

    frame = imported.frame.copy()
    frame.attrs = {"scalefit_import": json_safe(imported.summary())}
    return write_table(frame, out, force=force)
