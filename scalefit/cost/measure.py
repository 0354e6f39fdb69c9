"""Measured step times: real training steps of a GPT-style decoder, timed, as the table ``calibrate`` reads.

Each shape is built in JAX (the optional ``measure`` extra; it runs on CPU and, unchanged, on whatever
device JAX picks, a GPU included): token and learned position embeddings, ``layers`` pre-norm blocks
(LayerNorm, fused QKV projection, causal softmax attention that writes its scores -- not fused --, output
projection, LayerNorm, GELU MLP of width ``d_ff``), a final LayerNorm and an untied unembedding; next-token
cross-entropy on fixed random tokens. The layers' weights are stacked and run by ``lax.scan``. One step is
forward, backward and an AdamW update, compiled as one function with the parameters and optimizer state
donated (updated in place). The compile and ``warmup`` steps are discarded; the median of ``repeats``
timed steps is kept, with its median absolute deviation.

Precision: ``float32`` keeps everything in fp32 (4-byte weights, activations and gradients; AdamW m and v,
8 bytes per parameter). ``bfloat16`` keeps fp32 master weights and casts them to bf16 for the forward and
backward (2-byte weights and activations, 4-byte gradients, 12 bytes of optimizer state). The byte columns
of each row say which, so :func:`scalefit.cost.calibrate` counts the traffic of what was run.

Left out: data loading (the batch is fixed and on the device), dropout, gradient clipping, biases of the
linear layers; the position embedding and norms (``seq_len d + 4 L d + 2 d`` parameters) are not in the
feature model's parameter count. Timings on a shared machine are only as quiet as the machine: every row
records the 1-minute load average and the process's CPU time per wall-clock second while it was timed.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import time
from itertools import product
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DataError, option_error
from .shape import Shape
from .step import shape_features

DTYPES = ("float32", "bfloat16")
# XLA holds temporaries beside what the feature model counts as stored (GELU inputs, fp32 softmax copies,
# the update's intermediates): a shape is refused when this many times its estimate exceeds what is free.
MEMORY_SAFETY = 2.0
MEMORY_FRACTION = 0.8  # of the device's free memory a measurement may plan to use
MEASURE_COLUMNS = (
    "d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch", "micro_batch", "fused_attention",
    "weight_bytes", "act_bytes", "grad_bytes", "optimizer_bytes", "step_time_s", "step_time_mad_s",
    "step_time_min_s", "step_cpu_s", "repeats", "warmup", "compile_s", "params", "load_avg_1m",
    "cpu_per_wall", "device", "platform", "framework", "framework_version", "dtype", "measured_at",
)


# =====================================================================================  shapes
def int_list(value: Any, param: str) -> list[int]:
    """``"64,128"`` or ``[64, 128]`` -> ``[64, 128]``: whole numbers >= 1, named by ``param`` when not."""
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(np.atleast_1d(value))
    out = []
    for item in items:
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise option_error(param, value, "expected whole numbers separated by commas, e.g. 64,128") from None
        if not (math.isfinite(number) and number == round(number) and number >= 1):
            raise option_error(param, value, f"{item!s} is not a positive whole number")
        out.append(int(number))
    if not out:
        raise option_error(param, value, "give at least one value")
    return out


def _shape(d_model, layers, heads, d_ff, vocab, seq_len, batch, dtype) -> Shape:
    """The :class:`Shape` a measurement runs, with the byte sizes of ``dtype`` and scores written."""
    wide = dtype == "float32"
    return Shape(d_model=int(d_model), layers=int(layers), heads=int(heads), d_ff=int(d_ff), vocab=int(vocab),
                 seq_len=int(seq_len), batch=int(batch), micro_batch=int(batch), fused_attention=False,
                 weight_bytes=4.0 if wide else 2.0, act_bytes=4.0 if wide else 2.0, grad_bytes=4.0,
                 optimizer_bytes=8.0 if wide else 12.0)


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise option_error("dtype", dtype, f"use one of {', '.join(DTYPES)}")
    return dtype


def grid(d_model, layers, seq_len, batch, *, heads=None, d_ff=None, vocab=4096, dtype="float32") -> list[Shape]:
    """Every combination of the given widths, depths, sequence lengths and batches (each a list or a
    comma-separated string). ``heads`` defaults to d_model / 64 (at least 1), ``d_ff`` to 4 d_model."""
    check_dtype(dtype)
    lists = {name: int_list(v, name) for name, v in (("d_model", d_model), ("layers", layers),
                                                     ("seq_len", seq_len), ("batch", batch), ("vocab", vocab))}
    head_list = int_list(heads, "heads") if heads is not None else None
    ff_list = int_list(d_ff, "d_ff") if d_ff is not None else [None]
    shapes = []
    for d, L, n, b, v, ff in product(lists["d_model"], lists["layers"], lists["seq_len"], lists["batch"],
                                     lists["vocab"], ff_list):
        for h in (head_list or [max(1, d // 64)]):
            shapes.append(validate(_shape(d, L, h, ff or 4 * d, v, n, b, dtype)))
    return shapes


def validate(shape: Shape, where: str = "") -> Shape:
    """:meth:`Shape.validate`, with ``where`` (a file and line) in front of the message."""
    try:
        return shape.validate()
    except DataError as exc:
        if not where:
            raise
        raise DataError(f"{where}: {exc}") from None


def shapes_from_table(path: str | Path, *, dtype: str = "float32") -> list[Shape]:
    """Shapes from a table (CSV, parquet, ...) with columns d_model, layers, seq_len, batch and optional
    heads (default d_model / 64), d_ff (default 4 d_model), vocab (default 4096). Extra columns are ignored."""
    from ..tables import read_table

    check_dtype(dtype)
    frame = read_table(path, "shapes table")
    cols = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in ("d_model", "layers", "seq_len", "batch") if c not in cols]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a shapes table needs d_model, layers, "
                        f"seq_len, batch (optional heads, d_ff, vocab)")
    if not len(frame):
        raise DataError(f"{path}: no rows; list at least one shape")
    shapes = []
    for i, row in enumerate(frame.to_dict("records")):
        where = f"{path}: line {i + 2}"
        values = {}
        for name in ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch"):
            raw = row.get(cols[name]) if name in cols else None
            if raw is None or (isinstance(raw, float) and math.isnan(raw)):
                continue
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise DataError(f"{where}: {name} {raw!r} is not a number") from None
            if not (math.isfinite(number) and number == round(number)):
                raise DataError(f"{where}: {name} {raw!r} is not a whole number")
            values[name] = int(number)
        missing = [c for c in ("d_model", "layers", "seq_len", "batch") if c not in values]
        if missing:
            raise DataError(f"{where}: {', '.join(missing)} empty")
        d = values["d_model"]
        shape = _shape(d, values["layers"], values.get("heads", max(1, d // 64)), values.get("d_ff", 4 * d),
                       values.get("vocab", 4096), values["seq_len"], values["batch"], dtype)
        shapes.append(validate(shape, where))
    return shapes


def memory_estimate(shape: Shape) -> float:
    """Bytes a measurement of ``shape`` is planned to need: the feature model's peak (weights, gradients,
    optimizer state, stored activations and scores, logits) times :data:`MEMORY_SAFETY`, plus the tokens."""
    feats = shape_features(shape)
    return MEMORY_SAFETY * feats["memory_bytes"] + 8.0 * shape.batch * (shape.seq_len + 1)


def check_fits(shapes: Sequence[Shape], free_bytes: float | None, device: str = "the device") -> None:
    """Refuse, before anything is allocated, a shape whose :func:`memory_estimate` exceeds
    :data:`MEMORY_FRACTION` of ``free_bytes`` (None: unknown, nothing refused)."""
    if not free_bytes:
        return
    for i, shape in enumerate(shapes):
        need = memory_estimate(shape)
        if need > MEMORY_FRACTION * free_bytes:
            raise DataError(
                f"shape {i + 1} ({shape.describe()}, batch {shape.batch}) needs about {need / 1e9:.3g} GB by "
                f"estimate but {device} has {free_bytes / 1e9:.3g} GB free; measure a smaller shape")


# =====================================================================================  the device
def free_memory_bytes(device=None) -> float | None:
    """Free memory of a JAX device: the allocator's limit less what is in use on an accelerator; on the
    CPU (or with no device), the host's available memory (Linux ``MemAvailable``; else the physical total)."""
    stats = None
    try:
        stats = device.memory_stats() if device is not None else None
    except Exception:  # noqa: BLE001 - backends without allocator statistics
        stats = None
    if stats and stats.get("bytes_limit"):
        return float(stats["bytes_limit"]) - float(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for text in fh:
                if text.startswith("MemAvailable:"):
                    return float(text.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def cpu_name() -> str:
    """The host CPU's model name and core count (``/proc/cpuinfo`` where there is one)."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            name = next((t.split(":", 1)[1].strip() for t in fh if t.lower().startswith("model name")), "")
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def device_info() -> dict[str, Any]:
    """The device JAX runs on: name, platform, framework version, free memory."""
    jax = require_jax()
    dev = jax.devices()[0]
    name = cpu_name() if dev.platform == "cpu" else str(getattr(dev, "device_kind", dev))
    return {"device": name, "platform": dev.platform, "framework": "jax", "framework_version": jax.__version__,
            "free_bytes": free_memory_bytes(dev), "handle": dev}


def require_jax():
    try:
        import jax
    except ImportError:
        raise DataError("measuring step times needs JAX: pip install 'scalefit[measure]' "
                        "(or 'jax[cuda12]' on a GPU)") from None
    return jax


# =====================================================================================  the model
def _init(shape: Shape, seed: int) -> dict:
    """Parameters (fp32 numpy, made on the host: eager JAX random ops would each compile once per shape)
    at the usual scale: N(0, 0.02), output projections scaled by 1/sqrt(2 L)."""
    rng = np.random.default_rng(seed)
    d, f, V, L = shape.d_model, shape.d_ff, shape.vocab, shape.layers

    def normal(size, scale=0.02):
        return (scale * rng.standard_normal(size, dtype=np.float32)).astype(np.float32)

    def norm(*lead):
        return {"g": np.ones((*lead, d), np.float32), "b": np.zeros((*lead, d), np.float32)}

    out_scale = 0.02 / math.sqrt(2 * L)
    # The layers' weights are stacked (leading axis L) and run by lax.scan: the compile time then does not
    # grow with depth (unrolled, it grew ~2 s per layer on this CPU), as in JAX training code at scale.
    blocks = {"ln1": norm(L), "qkv": normal((L, d, 3 * d)), "proj": normal((L, d, d), out_scale), "ln2": norm(L),
              "up": normal((L, d, f)), "down": normal((L, f, d), out_scale)}
    return {"embed": normal((V, d)), "pos": normal((shape.seq_len, d)), "blocks": blocks, "ln_f": norm(),
            "unembed": normal((d, V))}


def _loss_fn(shape: Shape, compute_dtype):
    jax = require_jax()
    jnp = jax.numpy
    h, n = shape.heads, shape.seq_len
    dh = shape.d_model // h
    causal = jnp.tril(jnp.ones((n, n), dtype=bool))

    def layer_norm(x, p):
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = ((x32 - mean) ** 2).mean(-1, keepdims=True)
        return ((x32 - mean) * jax.lax.rsqrt(var + 1e-5) * p["g"] + p["b"]).astype(compute_dtype)

    def block(x, blk):
        b = x.shape[0]
        q, k, v = jnp.split(layer_norm(x, blk["ln1"]) @ blk["qkv"], 3, axis=-1)
        q, k, v = (t.reshape(b, n, h, dh) for t in (q, k, v))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(dh)
        probs = jax.nn.softmax(jnp.where(causal, scores, -1e30), axis=-1).astype(compute_dtype)
        x = x + jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, n, h * dh) @ blk["proj"]
        x = x + jax.nn.gelu(layer_norm(x, blk["ln2"]) @ blk["up"]) @ blk["down"]
        return x, None

    def loss(params, tokens):
        p = jax.tree_util.tree_map(lambda w: w.astype(compute_dtype), params)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        x = p["embed"][inputs] + p["pos"][None]
        x, _ = jax.lax.scan(block, x, p["blocks"])
        logits = (layer_norm(x, p["ln_f"]) @ p["unembed"]).astype(jnp.float32)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(logp, targets[..., None], axis=-1).mean()

    return loss


def train_step(shape: Shape, dtype: str = "float32", *, lr=1e-3, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1):
    """The jitted step ``(params, (m, v, count), tokens) -> (params, state, loss)``: forward, backward and a
    decoupled-weight-decay Adam update (AdamW), parameters and state donated."""
    jax = require_jax()
    jnp = jax.numpy
    grad_fn = jax.value_and_grad(_loss_fn(shape, jnp.float32 if dtype == "float32" else jnp.bfloat16))
    tmap = jax.tree_util.tree_map

    def step(params, state, tokens):
        m, v, count = state
        loss, grads = grad_fn(params, tokens)
        count = count + 1
        m = tmap(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = tmap(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        c1, c2 = 1 - b1 ** count, 1 - b2 ** count
        params = tmap(lambda w, a, s: w - lr * ((a / c1) / (jnp.sqrt(s / c2) + eps) + weight_decay * w), params, m, v)
        return params, (m, v, count), loss

    return jax.jit(step, donate_argnums=(0, 1))


def initial_state(shape: Shape, seed: int = 0):
    """(params, optimizer state, tokens) for :func:`train_step`, on the device: fixed random tokens of
    ``batch`` sequences of ``seq_len + 1``, AdamW moments at zero."""
    jax = require_jax()
    params = _init(shape, seed)
    put = jax.device_put
    zeros = [jax.tree_util.tree_map(lambda w: put(np.zeros_like(w)), params) for _ in range(2)]
    state = (zeros[0], zeros[1], put(np.zeros((), np.float32)))
    tokens = np.random.default_rng(seed + 1).integers(0, shape.vocab, (shape.batch, shape.seq_len + 1), dtype=np.int32)
    return jax.tree_util.tree_map(put, params), state, put(tokens)


# =====================================================================================  timing
def time_shape(shape: Shape, *, dtype: str = "float32", warmup: int = 2, repeats: int = 10, seed: int = 0,
               device: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the timings table: ``shape`` compiled, ``warmup`` steps run and discarded, ``repeats``
    steps timed one by one (each waits for the device); the median, its median absolute deviation and
    the fastest step, the median CPU time of the process per step (all its threads: on a shared CPU it
    moves less with other processes' load than the wall clock does), the compile time and the load."""
    jax = require_jax()
    device = device or device_info()
    params, state, tokens = initial_state(shape, seed)
    started = time.perf_counter()
    compiled = train_step(shape, dtype).lower(params, state, tokens).compile()
    compile_s = time.perf_counter() - started
    for _ in range(warmup):
        params, state, loss = compiled(params, state, tokens)
    jax.block_until_ready(params)
    times, cpu = np.empty(repeats), np.empty(repeats)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        params, state, loss = compiled(params, state, tokens)
        jax.block_until_ready((params, loss))
        times[i], cpu[i] = time.perf_counter() - t0, time.process_time() - c0
    cpu_per_wall = (time.process_time() - cpu0) / max(time.perf_counter() - wall0, 1e-12)
    if not np.isfinite(float(loss)):
        raise DataError(f"shape {shape.describe()}: the training loss became {float(loss)}; the step is broken")
    median = float(np.median(times))
    row = {
        "d_model": shape.d_model, "layers": shape.layers, "heads": shape.heads, "d_ff": shape.d_ff,
        "vocab": shape.vocab, "seq_len": shape.seq_len, "batch": shape.batch, "micro_batch": shape.batch,
        "fused_attention": False, "weight_bytes": shape.weight_bytes, "act_bytes": shape.act_bytes,
        "grad_bytes": shape.grad_bytes, "optimizer_bytes": shape.optimizer_bytes,
        "step_time_s": median, "step_time_mad_s": float(np.median(np.abs(times - median))),
        "step_time_min_s": float(times.min()), "step_cpu_s": float(np.median(cpu)), "repeats": int(repeats), "warmup": int(warmup),
        "compile_s": compile_s, "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
        "load_avg_1m": _load_average(), "cpu_per_wall": cpu_per_wall, "device": device["device"],
        "platform": device["platform"], "framework": device["framework"],
        "framework_version": device["framework_version"], "dtype": dtype,
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return row


def _load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


def check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise option_error("warmup", warmup, "must be a whole number >= 0")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 3:
        raise option_error("repeats", repeats, "must be a whole number >= 3 (a median and its spread)")


def measure(
    shapes: Sequence[Shape],
    *,
    dtype: str = "float32",
    warmup: int = 2,
    repeats: int = 10,
    seed: int = 0,
    out: str | Path | None = None,
    force: bool = False,
    on_start: Callable[[int, Shape], None] | None = None,
    on_row: Callable[[int, dict], None] | None = None,
):
    """Time a training step of every shape; returns the timings table (a DataFrame, columns
    :data:`MEASURE_COLUMNS`), the format :func:`scalefit.cost.calibrate` reads.

    Everything is checked before the first step is compiled: the shapes, ``warmup`` and ``repeats``, that
    every shape fits in the device's free memory by :func:`memory_estimate`, and that ``out`` can be
    written. With ``out``, the table of the rows finished so far is rewritten atomically after each shape,
    so an interrupted measurement keeps every finished row and never a half-written file.
    """
    import pandas as pd

    from .._io import refuse_overwrite, write_table

    check_dtype(dtype)
    check_counts(warmup, repeats)
    if not shapes:
        raise DataError("no shapes to measure; give at least one")
    # What is run, whatever the caller's Shape said about precision, fusion or micro-batches: the row's byte
    # columns must describe this step for the calibration to count its traffic.
    shapes = [validate(_shape(s.d_model, s.layers, s.heads, s.d_ff, s.vocab, s.seq_len, s.batch, dtype))
              for s in shapes]
    if out is not None:
        if Path(out).suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise option_error("out", Path(out), "use a .csv or .parquet file name")
        refuse_overwrite(out, force)
    device = device_info()
    check_fits(shapes, device["free_bytes"], device["device"])
    rows: list[dict] = []
    for i, shape in enumerate(shapes):
        if on_start:
            on_start(i, shape)
        rows.append(time_shape(shape, dtype=dtype, warmup=warmup, repeats=repeats, seed=seed, device=device))
        if out is not None:
            write_table(pd.DataFrame(rows, columns=list(MEASURE_COLUMNS)), out, force=force or i > 0)
        if on_row:
            on_row(i, rows[-1])
    return pd.DataFrame(rows, columns=list(MEASURE_COLUMNS))
