"""``scalefit import``: training logs (TensorBoard, W&B, MLflow, log lines) to one curve table."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._options import to_flags
from ._output import console, emit_json, info, warn

# Library parameters the notes may name; shown as this command's flags (``min_step=1`` -> ``--min-step 1``).
_NOTE_OPTIONS = ("loss", "lr", "tokens", "flops", "step", "runs", "min_step", "branch_of", "loss_unit")


def _flags(note: str, ctx) -> str:
    """A note with each ``param=value`` it gives written as the flag (plain words such as 'loss' stay)."""
    import re

    named = tuple(n for n in _NOTE_OPTIONS if re.search(rf"\b{n}=", note))
    return to_flags(note, named, ctx.command) if named else note


def import_command(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="Where the runs are: tensorboard, wandb, mlflow or log."),
    sources: List[str] = typer.Argument(..., help="tensorboard: folders of event files (one run per folder). "
                                        "wandb: ENTITY/PROJECT (API), history tables, or a chart's Export CSV. "
                                        "mlflow: a tracking URI, an sqlite store or an mlruns folder. log: training log files."),
    out: str = typer.Option(..., "--out", "-o", help="Write the curve table here (.parquet or .csv)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="The loss key/tag (default: the first known alias, e.g. train/loss, lm loss, val/loss)."),
    lr: Optional[str] = typer.Option(None, "--lr", help="The LR key/tag (default: a known alias such as lr, learning_rate, optim/learning_rate_group0); 'none' leaves the LR out."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help="The tokens-seen key (default: a known alias such as throughput/total_tokens)."),
    flops: Optional[str] = typer.Option(None, "--flops", help="The cumulative FLOPs key (default: a known alias)."),
    step: Optional[str] = typer.Option(None, "--step", help="wandb: the training-step key (default: trainer/global_step, global_step, iter, ... before _step)."),
    runs: Optional[str] = typer.Option(None, "--runs", help="Keep runs whose name (or NAME#RUN_ID) matches this regular expression."),
    run: Optional[str] = typer.Option(None, "--run", help="wandb tables, log: read every source as this one run (a restarted job)."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="mlflow: only this experiment (name or id)."),
    min_step: Optional[int] = typer.Option(None, "--min-step", help="Drop losses logged before this step (e.g. 1: the step-0 eval)."),
    branch_of: Optional[List[str]] = typer.Option(None, "--branch-of", help="CHILD=PARENT: the run CHILD branched off PARENT (a WSD cooldown off a constant-LR run); PARENT's values before CHILD's first step are stitched in (repeatable)."),
    loss_unit: Optional[str] = typer.Option(None, "--loss-unit", help="nats or bits (default: bits when the key says so, else nats)."),
    params_convention: Optional[str] = typer.Option(None, "--params-convention", help="total or non-embedding, recorded in the table."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="tensorboard: read run folders in this many processes (-1: one per CPU)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object: the runs imported and every note."),
):
    """Import training curves into one table that `scalefit fit` reads: run, step, loss (+ lr, tokens, flops).

    A restart (the step going back) drops what the aborted attempt logged from that step on; a sparsely logged LR is filled in by linear
    interpolation; every choice made (which key is the loss, how the LR was filled in) is printed.
    """
    from pathlib import Path

    from .._io import check_outputs
    from ..errors import DataError
    from ..importers import import_runs, parse_branches, write_import

    if Path(out).suffix.lower() not in (".parquet", ".pq", ".csv"):  # refused before any log is read
        raise DataError(f"--out {out}: name a .parquet or .csv file")
    check_outputs({"out": out}, sources, force=force)
    imported = import_runs(kind, sources, loss=loss, lr=lr, tokens=tokens, flops=flops, step=step, runs=runs,
                           run=run, experiment=experiment, min_step=min_step,
                           branch_of=parse_branches(branch_of), loss_unit=loss_unit,
                           params_convention=params_convention, jobs=jobs)
    write_import(imported, out, force=force)
    for message in imported.warnings:
        warn(_flags(message, ctx))
    if json_out:
        emit_json({"out": out, **imported.summary()})
        return
    for note in imported.notes:
        info(_flags(note, ctx))
    from rich.table import Table

    table = Table(title=f"{out}: {len(imported.runs)} run(s), {len(imported.frame)} rows", title_justify="left")
    meta_columns = [(k, label) for k, label in (("params", "params"), ("batch_tokens", "batch tokens"))
                    if any(k in r["meta"] for r in imported.runs)]
    for name in ("run", "losses", "steps", "loss key", "LR key", "restarts", *(label for _, label in meta_columns)):
        table.add_column(name, justify="left" if name in ("run", "loss key", "LR key") else "right")
    for r in imported.runs:
        table.add_row(r["run"], str(r["points"]), f"{r['first_step']}..{r['last_step']}", r["keys"]["loss"],
                      r["keys"].get("lr", "–"), str(r["restarts"]),
                      *(f"{r['meta'][k]:.3g}" if k in r["meta"] else "–" for k, _ in meta_columns))
    console.print(table)
    info(f"wrote {out}")
