"""``scalefit cost estimate|calibrate|search|hardware|measure|probe``: wall-clock cost of training, both ways.

Thin layer over :mod:`scalefit.cost`: parse and echo sizes, call the library, print a table or one JSON
object. Heavy imports happen inside the commands. ``measure`` and ``probe`` live in :mod:`.cost_measure`.
"""

from __future__ import annotations

import math
from typing import List, Optional

import typer

from ._options import echo_size
from ._output import console, emit_json, fmt, info, warn

app = typer.Typer(no_args_is_help=True, help="Wall-clock cost of training: step time, hours, GPU-hours, dollars.")

# The stable key set of `scalefit cost estimate --json` (tests pin it).
ESTIMATE_KEYS = (
    "hours", "gpu_hours", "step_time_s", "tokens_per_s", "tokens", "flops", "mfu", "dollars", "model",
    "calibrated", "steps", "params", "gpus", "hardware", "time_model", "budget", "features", "breakdown",
    "memory_gb", "hbm_gb", "warnings", "loss",
)
SEARCH_KEYS = ("hours", "gpus", "hardware", "time_model", "calibrated", "flop_baseline", "grid_size", "best",
               "flop_optimal")


# --------------------------------------------------------------------------------------------  options
HardwareOpt = typer.Option(None, "--hardware", "-H", help="Device from the table (`scalefit cost hardware`), e.g. H100.")
GpusOpt = typer.Option(1, "--gpus", "-g", help="Number of devices (data parallel).")
PeakOpt = typer.Option(None, "--peak-tflops", help="Dense BF16 peak per device, TFLOP/s (overrides the table).")
HbmOpt = typer.Option(None, "--hbm-gbps", help="HBM bandwidth per device, GB/s (overrides the table).")
NetOpt = typer.Option(None, "--net-gbps", help="All-reduce bandwidth per device, GB/s one way (overrides the table).")
MfuOpt = typer.Option(None, "--mfu", help="Replace the step-time model by a fixed model-FLOP utilisation, e.g. 0.4.")
CalOpt = typer.Option(None, "--calibration", "-c", help="A cost.json from `scalefit cost calibrate`.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")


def _hardware(name, peak, hbm, net):
    from ..cost import get_hardware

    return get_hardware(name, peak_tflops=peak, hbm_gbps=hbm, net_gbps=net)


def _time_model(hardware, mfu, calibration):
    from ..cost import CostModel, MfuModel
    from ..errors import DataError

    if mfu is not None and calibration:
        raise DataError("give either --mfu (fixed utilisation) or --calibration (measured step times), not both")
    if mfu is not None:
        return MfuModel(mfu, hardware)
    if calibration:
        return CostModel.load(calibration)
    return CostModel.roofline(hardware)


def _print_model_kind(model) -> None:
    """Say on stderr which step-time model is in use; the uncalibrated roofline is flagged as such."""
    if getattr(model, "calibrated", False) or not hasattr(model, "coef"):
        info(f"step time: {model.label}")
    else:
        warn(f"step time from an {model.label}; measure step times and run `scalefit cost calibrate`")


# --------------------------------------------------------------------------------------------  estimate
@app.command("estimate")
def estimate_command(
    params: Optional[str] = typer.Option(None, "--params", "-N", help="Model size, e.g. 7B: expands to a conventional shape."),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="Width (with --layers: an explicit shape)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Depth."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention heads (default d_model/128)."),
    d_ff: Optional[int] = typer.Option(None, "--d-ff", help="MLP width (default 4 d_model)."),
    vocab: int = typer.Option(32000, "--vocab", help="Vocabulary size."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Sequence length (tokens)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Sequences per optimizer step, all devices (default ~4M tokens)."),
    micro_batch: Optional[int] = typer.Option(None, "--micro-batch", help="Sequences per device per forward/backward pass."),
    gated_mlp: bool = typer.Option(False, "--gated-mlp", help="SwiGLU-style MLP (3 matrices)."),
    tie_embeddings: bool = typer.Option(False, "--tie-embeddings", help="Input and output embeddings shared."),
    fused_attention: bool = typer.Option(True, "--fused-attention/--no-fused-attention", help="FlashAttention-style kernels (scores never written)."),
    recompute: bool = typer.Option(False, "--recompute", help="Full activation recomputation."),
    weight_bytes: float = typer.Option(2.0, "--weight-bytes", help="Bytes per weight (2 = bf16)."),
    act_bytes: float = typer.Option(2.0, "--act-bytes", help="Bytes per activation."),
    grad_bytes: float = typer.Option(2.0, "--grad-bytes", help="Bytes per gradient element."),
    optimizer_bytes: float = typer.Option(12.0, "--optimizer-bytes", help="Optimizer-state bytes per parameter (12: fp32 master + Adam m, v)."),
    shard_optimizer: bool = typer.Option(True, "--shard-optimizer/--no-shard-optimizer", help="ZeRO-1: optimizer state split over devices."),
    tokens: Optional[str] = typer.Option(None, "--tokens", "-D", help="Budget as training tokens, e.g. 2T."),
    flops: Optional[str] = typer.Option(None, "--flops", "-C", help="Budget as compute C = 6ND, e.g. 1e21."),
    hours: Optional[str] = typer.Option(None, "--hours", help="Budget as wall-clock hours."),
    gpu_hours: Optional[str] = typer.Option(None, "--gpu-hours", help="Budget as device-hours."),
    dollars: Optional[str] = typer.Option(None, "--dollars", help="Budget in dollars (needs --price-per-gpu-hour)."),
    price: Optional[float] = typer.Option(None, "--price-per-gpu-hour", help="Price of one device-hour."),
    hardware: Optional[str] = HardwareOpt,
    gpus: int = GpusOpt,
    peak_tflops: Optional[float] = PeakOpt,
    hbm_gbps: Optional[float] = HbmOpt,
    net_gbps: Optional[float] = NetOpt,
    mfu: Optional[float] = MfuOpt,
    calibration: Optional[str] = CalOpt,
    fit_path: Optional[str] = typer.Option(None, "--fit", "-f", help="A fit.json: also predict the loss at this budget."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file (with --fit)."),
    json_out: bool = JsonOpt,
):
    """Step time, tokens/s, MFU, hours, GPU-hours and dollars for a model and a budget given one way."""
    from .. import cost
    from ..errors import DataError

    budgets = {"tokens": (tokens, "tokens"), "flops": (flops, "FLOPs"), "hours": (hours, "hours"),
               "gpu_hours": (gpu_hours, "GPU-hours"), "dollars": (dollars, "dollars")}
    given = {k: v for k, v in budgets.items() if v[0] is not None}
    if len(given) != 1:
        raise DataError("give exactly one budget: --tokens, --flops, --hours, --gpu-hours or --dollars"
                        + (f" (got {', '.join('--' + k.replace('_', '-') for k in given)})" if given else ""))
    kind, (raw, unit) = next(iter(given.items()))
    value = echo_size(raw, f"--{kind.replace('_', '-')}", unit)
    n_params = echo_size(params, "--params", "params")
    # Ranges first: an absurd size or budget is refused before any shape or model is built.
    cost.check_range(kind, value)
    if n_params is not None:
        cost.check_range("params", n_params)
    cost.check_gpus(gpus)
    cost.check_seq_len(seq_len)
    if price is not None:
        cost.check_range("price_per_gpu_hour", price)
    hw = _hardware(hardware, peak_tflops, hbm_gbps, net_gbps)
    shape = _shape(n_params, d_model, layers, heads, d_ff, vocab=vocab, seq_len=seq_len, batch=batch, gpus=gpus,
                   micro_batch=micro_batch, gated_mlp=gated_mlp, tie_embeddings=tie_embeddings,
                   fused_attention=fused_attention, recompute=recompute, weight_bytes=weight_bytes,
                   act_bytes=act_bytes, grad_bytes=grad_bytes, optimizer_bytes=optimizer_bytes)
    model = _time_model(hw, mfu, calibration)
    _print_model_kind(model)
    est = cost.estimate(shape, hw, budget=kind, value=value, gpus=gpus, time_model=model,
                        price_per_gpu_hour=price, params=n_params, shard_optimizer=shard_optimizer)
    if fit_path:
        from ..result import load_fit

        fit = load_fit(fit_path, law_file or [])
        conv = cost.params_convention(fit.law, fit.units)
        n_law = shape.params_nonembedding if conv == "non-embedding" else (n_params or shape.params_total)
        est.loss = cost.predict_loss(fit.law, fit.theta, fit.draws, n_law, est.tokens, fit.ci, fit.stretch)
        est.loss.update(law=fit.law.name, params=n_law, params_convention=conv)
        if not math.isfinite(est.loss["value"]):
            est.warnings.append(f"law '{fit.law.name}' gives no finite loss at {n_law:.3g} params and "
                                f"{est.tokens:.3g} tokens; no loss is reported")
    for message in est.warnings:
        warn(message)
    if json_out:
        emit_json(est.to_dict())
        return
    _print_estimate(est, shape, model)


def _shape(n_params, d_model, layers, heads, d_ff, *, gpus, batch, seq_len, micro_batch, **kw):
    from .. import cost
    from ..errors import DataError

    cost.check_gpus(gpus)
    if batch is None:
        batch = cost.default_batch(seq_len, gpus)
    common = dict(seq_len=seq_len, batch=batch, micro_batch=micro_batch, **kw)
    explicit = d_model is not None or layers is not None
    if explicit:
        if d_model is None or layers is None:
            raise DataError("an explicit shape needs both --d-model and --layers (or give only --params 7B)")
        if heads is None:
            if d_model % cost.HEAD_DIM:
                raise DataError(f"--d-model {d_model}: not a multiple of {cost.HEAD_DIM}; give --heads explicitly")
            heads = d_model // cost.HEAD_DIM
        shape = cost.Shape(d_model=d_model, layers=layers, heads=heads, d_ff=d_ff or 4 * d_model, **common)
        shape.validate(gpus)
        if n_params is not None and abs(shape.params_total / n_params - 1) > 0.1:
            warn(f"--params {n_params:.3g} differs from the shape's {shape.params_total:.3g} parameters by "
                 f"{shape.params_total / n_params - 1:+.0%}; FLOPs use --params")
        return shape
    if n_params is None:
        raise DataError("give the model: --params 7B (a conventional shape) or --d-model and --layers")
    if heads is not None or d_ff is not None:
        raise DataError("--heads and --d-ff need --d-model and --layers; --params alone picks them by rule")
    shape = cost.conventional_shape(n_params, **common)
    shape.validate(gpus)
    info(f"{n_params:.3g} params → d_model {shape.d_model}, layers {shape.layers}, heads {shape.heads}, "
         f"d_ff {shape.d_ff} ({shape.params_total:.3g} total, {shape.params_nonembedding:.3g} non-embedding; "
         f"rule: d_model/layers ≈ {cost.CONVENTIONAL_ASPECT:.0f}, d_ff = {'8/3' if shape.gated_mlp else '4'} d_model, "
         f"head dim {cost.HEAD_DIM})")
    return shape


def _print_estimate(est, shape, model) -> None:
    from rich.table import Table

    from ..cost import FEATURES, GROUPS, CostModel
    from ..units import format_count

    t = Table(title="model", title_justify="left")
    for col in ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch", "params (total)", "non-embedding"):
        t.add_column(col, justify="right")
    m = est.model
    t.add_row(*(str(m[k]) for k in ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch")),
              format_count(m["params_total"]), format_count(m["params_nonembedding"]))
    console.print(t)

    acc = Table(title="per device, per step", title_justify="left")
    acc.add_column("feature")
    acc.add_column("amount", justify="right")
    acc.add_column("group")
    acc.add_column("seconds (group)", justify="right")
    group_of = {f: g for g, fs in GROUPS.items() for f in fs}
    shown = set()
    for f in FEATURES:
        g = group_of[f]
        secs = est.breakdown.get(g) if isinstance(model, CostModel) and g not in shown else None
        shown.add(g)
        unit = "FLOP" if f.startswith("flops") else ("s" if f.endswith("_s") else "B")
        acc.add_row(f, f"{est.features[f]:.3e} {unit}", g, fmt(secs, 4) if secs is not None else "")
    if isinstance(model, CostModel):
        acc.add_row("overhead", "", "intercept", fmt(est.breakdown["overhead"], 4))
    console.print(acc)

    r = Table(title=f"cost — {model.label}", title_justify="left")
    r.add_column("quantity")
    r.add_column("value", justify="right")
    rows = [
        ("step time", f"{est.step_time_s:.4g} s"),
        ("tokens / s", f"{est.tokens_per_s:.4g}"),
        ("MFU (6N)", f"{est.mfu:.1%}"),
        ("tokens", f"{format_count(est.tokens)} ({est.tokens:.3g})"),
        ("compute 6ND", f"{est.flops:.3g} FLOPs"),
        ("steps", f"{est.steps:.4g}"),
        ("wall clock", f"{est.hours:.4g} h ({est.hours / 24:.3g} days)"),
        ("GPU-hours", f"{est.gpu_hours:.4g} ({est.gpus} × {est.hardware})"),
        ("dollars", f"{est.dollars:,.0f}" if est.dollars is not None else "– (give --price-per-gpu-hour)"),
        ("memory / device", f"{est.memory_gb:.1f} GB" + (f" of {est.hbm_gb:.0f}" if est.hbm_gb else "")),
    ]
    if est.loss:
        lo, hi = est.loss.get("low"), est.loss.get("high")
        interval = f" [{fmt(lo, 4)}, {fmt(hi, 4)}] ({est.loss['level']:.0%})" if lo is not None else ""
        rows.append((f"loss ({est.loss['law']})", f"{fmt(est.loss['value'], 5)}{interval}"))
    for label, val in rows:
        r.add_row(label, val)
    console.print(r)


# --------------------------------------------------------------------------------------------  calibrate
@app.command("calibrate")
def calibrate_command(
    timings: str = typer.Argument(..., help="Measured step times: CSV/parquet with d_model, layers, heads, d_ff, vocab, seq_len, batch, step_time_s."),
    hardware: Optional[str] = HardwareOpt,
    peak_tflops: Optional[float] = PeakOpt,
    hbm_gbps: Optional[float] = HbmOpt,
    net_gbps: Optional[float] = NetOpt,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the calibrated model here (cost.json)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    folds: int = typer.Option(5, "--folds", help="k for the k-fold held-out error."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment."),
    json_out: bool = JsonOpt,
):
    """Fit t_step = b0 + Σ βk·featurek by non-negative least squares; compare with a FLOP-only fit."""
    from .. import cost
    from .._io import check_outputs
    from ..data import read_table

    cost.check_calibration_options(folds=folds, seed=seed)
    check_outputs({"out": out}, [timings], force=force)  # before the timings are read or fitted
    hw = _hardware(hardware, peak_tflops, hbm_gbps, net_gbps)
    frame = read_table(timings)
    model = cost.calibrate(frame, hw, source=str(timings), folds=folds, seed=seed)
    for message in model.diagnostics.get("warnings", []):
        warn(message)
    if out:
        model.save(out, force=force)
        info(f"wrote {out}")
    if json_out:
        emit_json(model.to_dict() | {"out": out})
        return
    _print_calibration(model)


def _print_calibration(model) -> None:
    from rich.table import Table

    d = model.diagnostics
    t = Table(title=f"calibrated step-time model ({d['rows']} timings, {model.hardware.name})", title_justify="left")
    t.add_column("term")
    t.add_column("coefficient", justify="right")
    t.add_column("reads as", justify="right")
    t.add_row("intercept", f"{model.intercept:.4g} s", "fixed per-step overhead")
    eff = d["effective"]
    reads = {"flops": f"{fmt(eff.get('tflops'), 4)} TFLOP/s ({fmt((eff.get('compute_fraction_of_peak') or 0) * 100, 3)}% of peak)"
             if eff.get("tflops") else "–"}
    for g in ("act_bytes", "param_bytes", "logit_bytes"):
        reads[g] = f"{fmt(eff.get(g + '_gbps'), 4)} GB/s" if eff.get(g + "_gbps") else "–"
    reads["allreduce_s"] = "× nominal all-reduce time"
    for g, beta in model.coef.items():
        note = reads.get(g, "") if g in d["identified"] else "not in these timings: roofline prior kept"
        t.add_row(g, f"{beta:.4g}", note)
    console.print(t)
    c = Table(title="memory-traffic model vs FLOP-only model (same timings)", title_justify="left")
    c.add_column("model", no_wrap=True, min_width=14)
    for col in ("R² (in sample)", "MAPE (in sample)", f"R² ({d['folds']}-fold held out)",
                f"MAPE ({d['folds']}-fold held out)", "max error (held out)"):
        c.add_column(col, justify="right")
    for name, key in (("memory traffic", "memory_model"), ("FLOP only", "flop_only_model")):
        ins, cv = d[key]["in_sample"], d[key]["cross_validated"]
        c.add_row(name, fmt(ins["r2"], 4), f"{ins['mape']:.2%}", fmt(cv["r2"], 4), f"{cv['mape']:.2%}",
                  f"{cv['max_ape']:.1%}")
    console.print(c)


# --------------------------------------------------------------------------------------------  search
def run_search(law, theta, draws, level, units, *, stretch=1.0, hours, hardware, gpus, peak_tflops=None, hbm_gbps=None,
               net_gbps=None, mfu=None, calibration=None, flop_mfu=0.4, seq_len=2048, vocab=32000, batch=None,
               max_aspect=512.0, json_out=False, source=""):
    """Shared by ``scalefit cost search`` and ``scalefit predict --hours``: search and print."""
    from .. import cost

    hw = _hardware(hardware, peak_tflops, hbm_gbps, net_gbps)
    model = _time_model(hw, mfu, calibration)
    _print_model_kind(model)
    res = cost.time_budget_search(law, theta, draws, hours=hours, hardware=hw, gpus=gpus, time_model=model,
                                  flop_mfu=flop_mfu, seq_len=seq_len, vocab=vocab, batch=batch, level=level, stretch=stretch,
                                  aspect_range=(cost.ASPECT_RANGE[0], max_aspect),
                                  convention=cost.params_convention(law, units))
    for which in ("best", "flop_optimal"):
        if getattr(res, which)["at_aspect_limit"]:
            warn(f"the {which.replace('_', '-')} shape sits on the edge of the searched aspect ratios; "
                 "the law cannot say whether going further pays (see --max-aspect)")
    if json_out:
        emit_json(res.to_dict())
        return res
    from rich.table import Table

    from ..units import format_count

    t = Table(title=f"best shape for {hours:g} h on {gpus} × {hw.name} — {source}", title_justify="left")
    t.add_column("")
    t.add_column("time-budget optimal", justify="right")
    t.add_column("FLOP-optimal", justify="right")
    b, f = res.best, res.flop_optimal

    def loss(q):
        s = fmt(q["loss"]["value"], 5)
        if q["loss"].get("low") is not None:
            s += f" [{fmt(q['loss']['low'], 4)}, {fmt(q['loss']['high'], 4)}]"
        return s

    rows = [
        ("d_model × layers", lambda q: f"{q['model']['d_model']} × {q['model']['layers']}"),
        ("heads, d_ff", lambda q: f"{q['model']['heads']}, {q['model']['d_ff']}"),
        ("d_model / layers", lambda q: f"{q['aspect']:.0f}"),
        ("params", lambda q: format_count(q["params"])),
        ("tokens in budget", lambda q: format_count(q["tokens"])),
        ("tokens / s", lambda q: f"{q['tokens_per_s']:.4g}"),
        ("MFU (6N)", lambda q: f"{q['mfu']:.1%}"),
        ("loss reached" + (f" ({level:.0%})" if draws is not None else ""), loss),
    ]
    for label, get in rows:
        t.add_row(label, get(b), get(f))
    console.print(t)
    info(f"FLOP-optimal: {res.flop_baseline}, conventional aspect; both evaluated under: {res.time_model}")
    return res


@app.command("search")
def search_command(
    hours: str = typer.Option(..., "--hours", help="Wall-clock budget in hours."),
    fit_path: Optional[str] = typer.Option(None, "--fit", "-f", help="A fit.json (loss law and its draws)."),
    law: Optional[str] = typer.Option(None, "--law", "-l", help="Or a law with --reference: its published values."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Published value set (default: the first)."),
    law_file: Optional[List[str]] = typer.Option(None, "--law-file", help="Load laws from this Python file."),
    hardware: Optional[str] = HardwareOpt,
    gpus: int = GpusOpt,
    peak_tflops: Optional[float] = PeakOpt,
    hbm_gbps: Optional[float] = HbmOpt,
    net_gbps: Optional[float] = NetOpt,
    mfu: Optional[float] = MfuOpt,
    calibration: Optional[str] = CalOpt,
    flop_mfu: float = typer.Option(0.4, "--flop-mfu", help="MFU the FLOP-optimal baseline assumes."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Sequence length."),
    vocab: int = typer.Option(32000, "--vocab", help="Vocabulary size."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Sequences per step (default ~4M tokens)."),
    max_aspect: float = typer.Option(512.0, "--max-aspect", help="Widest d_model/layers searched."),
    json_out: bool = JsonOpt,
):
    """The (width, depth) with the lowest predicted loss in a wall-clock budget, beside the FLOP-optimal one."""
    from .. import cost

    h = echo_size(hours, "--hours", "hours")
    cost.check_range("hours", h)
    cost.check_gpus(gpus)
    cost.check_seq_len(seq_len)
    from ..source import resolve

    # --law alone: the law's first published set; --reference beside --fit is ignored, as it always was here.
    src = resolve(fit_path, law, None if fit_path else reference, law_files=law_file, default_reference=True)
    run_search(src.law, src.theta, src.draws, src.ci, src.units, stretch=src.stretch, hours=h, hardware=hardware, gpus=gpus, peak_tflops=peak_tflops,
               hbm_gbps=hbm_gbps, net_gbps=net_gbps, mfu=mfu, calibration=calibration, flop_mfu=flop_mfu,
               seq_len=seq_len, vocab=vocab, batch=batch, max_aspect=max_aspect, json_out=json_out, source=src.source)


# --------------------------------------------------------------------------------------------  hardware
@app.command("hardware")
def hardware_command(json_out: bool = JsonOpt):
    """The hardware table: dense BF16 peak, HBM, interconnect, and where each figure comes from."""
    from ..cost import hardware_table, hardware_table_path

    rows = hardware_table()
    if json_out:
        emit_json({"path": str(hardware_table_path()), "devices": rows})
        return
    from rich.table import Table

    t = Table(title=f"hardware ({hardware_table_path()})", title_justify="left")
    for col in ("name", "aliases", "BF16 dense TFLOP/s", "HBM GB", "HBM GB/s", "link GB/s", "domain", "net GB/s", "source"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["name"], (r.get("aliases") or "").replace(";", ", "), fmt(r["bf16_dense_tflops"], 5),
                  fmt(r["hbm_gb"], 4), fmt(r["hbm_gbps"], 5), fmt(r["link_gbps"], 5), fmt(r["link_domain"], 5),
                  fmt(r["scaleout_gbps"], 4), r["source"])
    console.print(t)


# --------------------------------------------------------------------------------------------  measure, probe
from .cost_measure import measure_command, probe_command  # noqa: E402

app.command("measure")(measure_command)
app.command("probe")(probe_command)
