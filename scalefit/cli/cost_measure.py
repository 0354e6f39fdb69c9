"""``scalefit cost measure|probe``: measured step times and a measured hardware row.

Thin layer over :mod:`scalefit.cost.measure` and :mod:`scalefit.cost.probe` (registered onto the ``cost``
group by :mod:`scalefit.cli.cost`): parse, call the library once, show progress on stderr and a table (or
one JSON object) on stdout. JAX is imported by the library, only when a measurement starts.
"""

from __future__ import annotations

from typing import Optional

import typer

from ._output import console, emit_json, fmt, info

JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")

MEASURE_SHOWN = ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch")


def measure_command(
    d_model: Optional[str] = typer.Option(None, "--d-model", help="Widths, comma-separated: 64,128,256."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Depths, comma-separated."),
    heads: Optional[str] = typer.Option(None, "--heads", help="Attention heads, comma-separated (default d_model/64)."),
    d_ff: Optional[str] = typer.Option(None, "--d-ff", help="MLP widths (default 4 d_model)."),
    vocab: str = typer.Option("4096", "--vocab", help="Vocabulary sizes, comma-separated."),
    seq_len: Optional[str] = typer.Option(None, "--seq-len", help="Sequence lengths, comma-separated."),
    batch: Optional[str] = typer.Option(None, "--batch", help="Sequences per step, comma-separated."),
    shapes: Optional[str] = typer.Option(None, "--shapes", help="A table of shapes (d_model, layers, seq_len, batch; optional heads, d_ff, vocab) instead of a grid."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or bfloat16 (fp32 master weights)."),
    warmup: int = typer.Option(2, "--warmup", help="Steps run and discarded after the compile."),
    repeats: int = typer.Option(10, "--repeats", help="Steps timed; the median and its MAD are kept."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and tokens."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the timings table here (.csv or .parquet); rewritten after every shape."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    json_out: bool = JsonOpt,
):
    """Time real training steps (forward, backward, AdamW) of a GPT-style decoder for each shape (JAX)."""
    from ..cost import measure as lib
    from ..errors import DataError

    lib.check_dtype(dtype)
    lib.check_counts(warmup, repeats)
    grid_given = [f for f, v in (("--d-model", d_model), ("--layers", layers), ("--seq-len", seq_len),
                                 ("--batch", batch), ("--heads", heads), ("--d-ff", d_ff)) if v is not None]
    if shapes is not None:
        if grid_given:
            raise DataError(f"give either --shapes or a grid, not both (got --shapes and {', '.join(grid_given)})")
        plan = lib.shapes_from_table(shapes, dtype=dtype)
    else:
        missing = [f for f, v in (("--d-model", d_model), ("--layers", layers), ("--seq-len", seq_len),
                                  ("--batch", batch)) if v is None]
        if missing:
            raise DataError(f"give the shapes: {', '.join(missing)} (comma-separated lists) or --shapes FILE")
        plan = lib.grid(d_model, layers, seq_len, batch, heads=heads, d_ff=d_ff, vocab=vocab, dtype=dtype)
    info(f"{len(plan)} shape(s), {warmup} warm-up and {repeats} timed steps each ({dtype})")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ._output import err_console

    done: list[dict] = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    task = progress.add_task("measuring", total=len(plan))

    def on_start(i, shape):
        progress.update(task, description=f"d_model {shape.d_model} × {shape.layers} layers, seq {shape.seq_len}, "
                                          f"batch {shape.batch}")

    def on_row(i, row):
        done.append(row)
        progress.advance(task)

    try:
        with progress:
            frame = lib.measure(plan, dtype=dtype, warmup=warmup, repeats=repeats, seed=seed, out=out, force=force,
                                on_start=on_start, on_row=on_row)
    except KeyboardInterrupt:
        if out and done:
            info(f"kept the {len(done)} of {len(plan)} shapes finished before the stop in {out}")
        raise
    if out:
        info(f"wrote {out} ({len(frame)} rows)")
    device = frame["device"].iloc[0]
    if json_out:
        emit_json({"device": device, "platform": frame["platform"].iloc[0], "out": out,
                   "rows": frame.to_dict("records")})
        return
    from rich.table import Table

    t = Table(title=f"step times on {device} ({frame['framework'].iloc[0]} {frame['framework_version'].iloc[0]}, "
                    f"{dtype})", title_justify="left")
    for col in (*MEASURE_SHOWN, "step ms (median)", "MAD ms", "compile s", "load", "CPU/wall"):
        t.add_column(col, justify="right")
    for r in frame.to_dict("records"):
        t.add_row(*(str(r[c]) for c in MEASURE_SHOWN), fmt(r["step_time_s"] * 1e3, 4),
                  fmt(r["step_time_mad_s"] * 1e3, 2), fmt(r["compile_s"], 3), fmt(r["load_avg_1m"], 3),
                  fmt(r["cpu_per_wall"], 3))
    console.print(t)


def probe_command(
    framework: str = typer.Option("numpy", "--framework", help="numpy (the host) or jax (the device JAX picks)."),
    dtype: str = typer.Option("float32", "--dtype", help="Matmul dtype: float32, float64, bfloat16 (jax only)."),
    copy_mib: float = typer.Option(256, "--copy-mib", help="Size of the copied array, MiB."),
    matmul_n: int = typer.Option(2048, "--matmul-n", help="Side of the square matrices multiplied."),
    repeats: int = typer.Option(20, "--repeats", help="Timed repeats of each kernel."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the hardware row (default measured-<device>)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write a one-row hardware table (.csv, the columns of data/hardware.csv)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    json_out: bool = JsonOpt,
):
    """Measure memory-copy bandwidth and matmul FLOP/s, with their spread over repeats; a hardware row."""
    from .._io import check_outputs
    from ..cost import probe as lib

    lib.check_probe_options(framework, dtype, copy_mib, matmul_n, repeats)
    check_outputs({"out": out}, force=force)
    info(f"probing: {copy_mib:g} MiB copy and {matmul_n}² {dtype} matmul, {repeats} repeats each ({framework})")
    result = lib.probe(framework=framework, dtype=dtype, copy_mib=copy_mib, matmul_n=matmul_n, repeats=repeats)
    if out:
        lib.write_hardware_row(result, out, name=name, force=force)
        info(f"wrote {out}")
    if json_out:
        emit_json(result.to_dict() | {"hardware_row": result.hardware_row(name), "out": out})
        return
    from rich.table import Table

    t = Table(title=f"{result.device} ({result.framework} {result.framework_version}, {result.date}, load "
                    f"{result.load_avg_1m:.2f})", title_justify="left")
    for col in ("quantity", "median", "MAD", "MAD %", "best"):
        t.add_column(col, justify="right" if col != "quantity" else "left")
    for label, med, mad, best in (
        ("copy bandwidth, GB/s", result.bandwidth_gbps, result.bandwidth_mad_gbps, result.bandwidth_best_gbps),
        (f"{result.dtype} matmul, TFLOP/s", result.matmul_tflops, result.matmul_mad_tflops, result.matmul_best_tflops),
    ):
        t.add_row(label, fmt(med, 4), fmt(mad, 2), f"{mad / med:.1%}", fmt(best, 4))
    console.print(t)
    info(f"use as a roofline: --peak-tflops {result.matmul_tflops:.4g} --hbm-gbps {result.bandwidth_gbps:.4g}")
