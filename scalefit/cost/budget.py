"""Budgets and what they buy: tokens, FLOPs, GPU-hours and dollars <-> wall clock, and the loss reached.

:func:`estimate` turns a budget given one way into every other way under a step-time model of
:mod:`scalefit.cost.step`; :func:`predict_loss` evaluates a fitted law at (N, D) with the interval
``scalefit predict`` quotes; :func:`time_budget_search` rewrites the law with ``tokens = time x
throughput`` and finds the (width, depth) with the lowest predicted loss in a wall-clock budget, beside
the shape FLOP reasoning picks.

Compute convention: ``flops`` (budgets, reports, MFU) is C = 6 N D with N the total parameter count, the
convention scaling laws are fitted with; hours at a given MFU therefore match the usual arithmetic
(1e21 FLOPs on 64 H100 at 40 % MFU = 10.97 h). The attention FLOPs enter the step time, not C.

The law sees only N and D: the time-budget search assumes loss does not depend on where the parameters
sit (parameter equivalence), which is supported over a band of aspect ratios only, so the search stays
inside one and says when its winner sits on the edge.

Left out: data loading, evaluation, checkpointing and restarts (goodput): wall clock is steps times the
step time, nothing more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import DataError, option_error
from .hardware import Hardware
from .ranges import RANGES, check_gpus, check_range, check_seq_len
from .shape import CONVENTIONAL_ASPECT, DEFAULT_SEQ_LEN, DEFAULT_VOCAB, HEAD_DIM, Shape, default_batch, param_counts
from .step import FEATURES, CostModel, MfuModel, model_step_time, shape_features, step_features

ASPECT_RANGE = (16.0, 512.0)  # where the time-budget search trusts parameter equivalence
LONG_HOURS = 1e5  # beyond ~11 years of wall clock a warning says how long that is
BUDGET_KINDS = ("tokens", "flops", "hours", "gpu_hours", "dollars")


def _check_finite(what: str, **values) -> None:
    """A result that overflowed or is not a number is an error, never output."""
    bad = [k for k, v in values.items() if v is not None and not math.isfinite(float(v))]
    if bad:
        raise DataError(f"{what}: {', '.join(bad)} came out as {values[bad[0]]} (the inputs are beyond what the model "
                        f"can compute); check the sizes and budget")


# =====================================================================================  budgets
@dataclass
class Estimate:
    """A training run's cost: the JSON keys of ``scalefit cost estimate`` plus the details behind them."""

    hours: float
    gpu_hours: float
    step_time_s: float
    tokens_per_s: float
    tokens: float
    flops: float
    mfu: float
    dollars: float | None
    model: dict[str, Any]
    calibrated: bool
    steps: float
    params: float
    gpus: int
    hardware: str
    time_model: str
    budget: dict[str, Any]
    features: dict[str, float]
    breakdown: dict[str, float]
    memory_gb: float
    hbm_gb: float | None
    warnings: list[str] = field(default_factory=list)
    loss: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(
    shape: Shape,
    hardware: Hardware,
    *,
    budget: str,
    value: float,
    gpus: int = 1,
    time_model: CostModel | MfuModel | None = None,
    price_per_gpu_hour: float | None = None,
    params: float | None = None,
    shard_optimizer: bool = True,
) -> Estimate:
    """Cost of training ``shape`` for a budget given one way, every other way.

    ``budget`` is one of ``BUDGET_KINDS``: tokens; flops (C = 6 N D); hours (wall clock); gpu_hours
    (device-hours); dollars (needs ``price_per_gpu_hour``). ``params`` is the N of C = 6ND and of MFU
    (default: the shape's total count; pass the user's own N so that the FLOP arithmetic is theirs).
    """
    if budget not in BUDGET_KINDS:
        raise DataError(f"budget '{budget}': use one of {', '.join(BUDGET_KINDS)}")
    check_gpus(gpus)
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise option_error(budget, value, "a budget must be a positive number")
    check_range(budget, value)
    if price_per_gpu_hour is not None and not (math.isfinite(price_per_gpu_hour) and price_per_gpu_hour > 0):
        raise option_error("price_per_gpu_hour", price_per_gpu_hour, "must be a positive number")
    if price_per_gpu_hour is not None:
        check_range("price_per_gpu_hour", price_per_gpu_hour)
    if params is not None:
        check_range("params", params)
    if budget == "dollars" and price_per_gpu_hour is None:
        raise DataError("dollars needs price_per_gpu_hour to turn money into device-hours",
                        options=("dollars", "price_per_gpu_hour"))
    shape.validate(gpus)
    time_model = time_model or CostModel.roofline(hardware)
    feats = shape_features(shape, gpus, hardware, shard_optimizer=shard_optimizer)
    n_params = float(params) if params is not None else feats["params_total"]
    t_step = float(model_step_time(time_model, feats, gpus, n_params))
    tps = feats["tokens_per_step"] / t_step
    if budget == "tokens":
        tokens = value
    elif budget == "flops":
        tokens = value / (6.0 * n_params)
    else:
        gpu_hours = value / price_per_gpu_hour if budget == "dollars" else None
        hours = value if budget == "hours" else (gpu_hours if gpu_hours is not None else value) / gpus
        tokens = hours * 3600.0 * tps
    hours = tokens / tps / 3600.0
    gpu_hours = hours * gpus
    dollars = gpu_hours * price_per_gpu_hour if price_per_gpu_hour is not None else None
    _check_finite("the cost estimate", step_time_s=t_step, tokens=tokens, hours=hours, gpu_hours=gpu_hours,
                  flops=6.0 * n_params * tokens, dollars=dollars)
    if not t_step > 0:
        raise DataError(f"the step time came out as {t_step:g} s; check the MFU, the calibration and the "
                        f"hardware figures")
    hi = RANGES["tokens"][1]
    if budget != "tokens" and not tokens <= hi:
        raise DataError(f"{budget}={value:g} buys {tokens:.3g} tokens, beyond the {hi:g} tokens scalefit accepts",
                        options=(budget,))
    warnings = []
    if hours > LONG_HOURS:
        warnings.append(f"the run takes {hours:.3g} hours of wall clock, about {hours / 8766:.3g} years")
    if tokens < feats["tokens_per_step"]:
        warnings.append(f"the budget covers {tokens / feats['tokens_per_step']:.3g} of one optimizer step "
                        f"({feats['tokens_per_step']:.3g} tokens); the figures are for a partial step")
    hbm = hardware.hbm_bytes
    if hbm and feats["memory_bytes"] > hbm:
        warnings.append(
            f"the model needs ~{feats['memory_bytes'] / 1e9:.0f} GB per device but {hardware.name} has "
            f"{hbm / 1e9:.0f} GB; shard the optimizer, recompute activations, lower --micro-batch, or "
            "use tensor/pipeline parallelism (not modelled); the time assumes it fits"
        )
    if isinstance(time_model, CostModel) and time_model.calibrated:
        hw_cal = time_model.hardware.name
        if hw_cal.replace(" (modified)", "") != hardware.name.replace(" (modified)", ""):
            warnings.append(f"the cost model was calibrated on {hw_cal}, not {hardware.name}")
    breakdown = (time_model.breakdown(feats) if isinstance(time_model, CostModel)
                 else {"fixed_mfu": t_step})
    return Estimate(
        hours=hours, gpu_hours=gpu_hours, step_time_s=t_step, tokens_per_s=tps, tokens=tokens,
        flops=6.0 * n_params * tokens, mfu=6.0 * n_params * tps / (gpus * hardware.peak_flops),
        dollars=dollars,
        model=shape.to_dict(), calibrated=bool(getattr(time_model, "calibrated", False)),
        steps=tokens / feats["tokens_per_step"], params=n_params, gpus=int(gpus), hardware=hardware.name,
        time_model=time_model.label, budget={"kind": budget, "value": value},
        features={k: feats[k] for k in FEATURES}, breakdown=breakdown,
        memory_gb=feats["memory_bytes"] / 1e9, hbm_gb=hbm / 1e9 if hbm else None, warnings=warnings,
    )


# =====================================================================================  loss at a budget
def _law_design(law, params, tokens):
    from ..law import Columns

    usable = {"params", "tokens", "flops"}
    if not set(law.inputs) <= usable:
        raise DataError(
            f"law '{law.name}' reads {', '.join(law.inputs)}; a cost forecast can only supply params, tokens "
            "and flops"
        )
    params = np.atleast_1d(np.asarray(params, dtype=float))
    tokens = np.broadcast_to(np.asarray(tokens, dtype=float), params.shape)
    return law.prepare(Columns(source="<cost forecast>", params=params, tokens=tokens, flops=6.0 * params * tokens))


def params_convention(law, units: Mapping[str, Any] | None = None) -> str:
    """'total' or 'non-embedding': the fit's recorded convention, else the law's reference convention."""
    conv = (units or {}).get("params_convention") or (getattr(law, "reference_units", {}) or {}).get(
        "params_convention")
    return "non-embedding" if conv == "non-embedding" else "total"


def law_params(law, shape_or_feats, convention: str | None = None) -> Any:
    """The parameter count in the law's convention (total, or non-embedding for e.g. Kaplan)."""
    conv = convention or params_convention(law)
    key = "params_nonembedding" if conv == "non-embedding" else "params_total"
    if isinstance(shape_or_feats, Shape):
        return getattr(shape_or_feats, key)
    return shape_or_feats[key]


def predict_loss(law, theta, draws, params, tokens, level: float = 0.95, stretch: float = 1.0) -> dict[str, Any]:
    """Loss predicted by ``law`` at (params, tokens): the point value at ``theta`` and, with bootstrap
    ``draws`` (B, p), the same interval ``scalefit predict`` quotes there (``level`` percentile over the
    draws, stretched about the estimate by the fit's ``stretch``; see :mod:`scalefit.stats`)."""
    from ..stats import checked_interval

    design = _law_design(law, params, tokens)
    value = law.predict(np.atleast_2d(np.asarray(theta, dtype=float)), design)[0]
    out: dict[str, Any] = {"value": value, "low": None, "high": None, "level": level}
    if draws is not None and len(draws):
        with np.errstate(all="ignore"):
            preds = law.predict(np.asarray(draws, dtype=float), design)
        out["low"], out["high"] = checked_interval(preds, level, value, stretch, f"law '{law.name}': the predicted loss")
    if np.ndim(params) == 0:
        out = {k: (float(np.asarray(v).ravel()[0]) if v is not None and k != "level" else v) for k, v in out.items()}
        if not math.isfinite(out["value"]) or (out["low"] is not None and not (
                math.isfinite(out["low"]) and math.isfinite(out["high"]))):
            out["low"] = out["high"] = None  # never an interval beside a value that is not a number
    return out


# =====================================================================================  time-budget search
@dataclass
class SearchResult:
    """Best shape for a wall-clock budget beside the FLOP-optimal one (both under the same time model)."""

    best: dict[str, Any]
    flop_optimal: dict[str, Any]
    hours: float
    gpus: int
    hardware: str
    time_model: str
    calibrated: bool
    flop_baseline: str
    grid_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shape_grid(min_params, max_params, vocab, tie_embeddings, gated_mlp, aspect_range,
                max_width=65536, max_layers=512):
    d = np.arange(HEAD_DIM, max_width + 1, HEAD_DIM, dtype=float)
    L = np.arange(1, max_layers + 1, dtype=float)
    D, LL = np.meshgrid(d, L, indexing="ij")
    D, LL = D.ravel(), LL.ravel()
    f = np.where(gated_mlp, np.round(8.0 * D / 3.0 / HEAD_DIM) * HEAD_DIM, 4.0 * D)
    _, total, _ = param_counts(D, LL, f, vocab, gated_mlp, tie_embeddings)
    aspect = D / LL
    keep = (total >= min_params) & (total <= max_params)
    keep &= (aspect >= aspect_range[0]) & (aspect <= aspect_range[1])
    return D[keep], LL[keep], f[keep]


def _pick(loss, aspect, tol):
    """Index of the best shape: lowest loss, but among shapes within ``tol`` (relative) of it the one
    nearest the conventional aspect ratio -- a gain the cost model cannot resolve is no reason to
    recommend an unusual shape."""
    best = np.nanmin(loss)
    near = np.flatnonzero(loss <= best + tol * abs(best))
    dist = np.abs(np.log(aspect[near] / CONVENTIONAL_ASPECT))
    order = np.lexsort((loss[near], np.round(dist, 9)))
    return int(near[order[0]])


def time_budget_search(
    law,
    theta,
    draws=None,
    *,
    hours: float,
    hardware: Hardware,
    gpus: int = 1,
    time_model: CostModel | MfuModel | None = None,
    flop_mfu: float = 0.4,
    vocab: int = DEFAULT_VOCAB,
    seq_len: int = DEFAULT_SEQ_LEN,
    batch: int | None = None,
    micro_batch: int | None = None,
    tie_embeddings: bool = False,
    gated_mlp: bool = False,
    fused_attention: bool = True,
    recompute: bool = False,
    shard_optimizer: bool = True,
    params_range: tuple[float, float] | None = None,
    aspect_range: tuple[float, float] = ASPECT_RANGE,
    convention: str | None = None,
    tol: float = 1e-3,
    level: float = 0.95,
    stretch: float = 1.0,
) -> SearchResult:
    """The (width, depth) with the lowest predicted loss after ``hours`` of wall clock on ``gpus`` devices.

    For each shape on a grid (d_model a multiple of 128, whole layers, d_ff = 4 d_model, heads =
    d_model/128, d_model/layers inside ``aspect_range``): tokens = hours x 3600 x tokens_per_step / t_step(shape) under ``time_model``,
    loss = law(N(shape), tokens) at ``theta``. The *FLOP-optimal* shape is what FLOP reasoning picks: with
    C = hours x 3600 x gpus x peak x ``flop_mfu`` and tokens = C / 6N, loss depends on N alone, and among
    near-equal shapes the conventional aspect ratio wins. Both are then evaluated under ``time_model`` so
    that the loss each really reaches in the budget is comparable; intervals come from ``draws``.

    The law sees only N and D, i.e. it assumes loss does not depend on where the parameters sit (the
    parameter-equivalence principle). That is supported over a band of aspect ratios, not at 1 layer of
    width 20000, so the search stays inside ``aspect_range`` (default 16-512, i.e. 1/8 to 4 times the
    conventional 128; Kaplan et al. 2020, Fig. 5, saw only mild loss changes over such a band) and reports
    when the winner sits on its edge.
    """
    if not (0 < aspect_range[0] < aspect_range[1]):
        raise DataError(f"aspect range {aspect_range}: need 0 < low < high")
    if not (math.isfinite(hours) and hours > 0):
        raise option_error("hours", hours, "a time budget must be a positive number")
    check_range("hours", hours)
    check_gpus(gpus)
    check_seq_len(seq_len)
    check_range("vocab", vocab)
    if not (math.isfinite(flop_mfu) and 0 < flop_mfu <= 1):
        raise option_error("flop_mfu", flop_mfu, "must be a fraction in (0, 1], e.g. 0.4")
    time_model = time_model or CostModel.roofline(hardware)
    if batch is None:
        batch = default_batch(seq_len, gpus)
    check_range("batch", batch)
    if batch < gpus:
        raise DataError(f"batch={batch} sequences over gpus={gpus}: need at least one sequence per device",
                        options=("batch", "gpus"))
    seconds = hours * 3600.0
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    compute = seconds * gpus * hardware.peak_flops * flop_mfu
    if params_range is None:
        # Brackets N_opt of any sensible law: a few tokens per parameter up to thousands.
        params_range = (max(1e6, math.sqrt(compute / 6.0 / 1e4)), math.sqrt(compute / 6.0 / 0.5))
    D, L, F = _shape_grid(*params_range, vocab, tie_embeddings, gated_mlp, aspect_range)
    if D.size == 0:
        raise DataError(f"no transformer shape has between {params_range[0]:.3g} and {params_range[1]:.3g} params")
    feats = step_features(D, L, D / HEAD_DIM, F, vocab, seq_len, batch, gpus=gpus, hardware=hardware,
                          micro_batch=micro_batch, gated_mlp=gated_mlp, tie_embeddings=tie_embeddings,
                          fused_attention=fused_attention, recompute=recompute, shard_optimizer=shard_optimizer)
    t_step = model_step_time(time_model, feats, gpus)
    tokens_time = seconds * feats["tokens_per_step"] / t_step
    n_law = law_params(law, feats, convention)
    aspect = D / L
    loss_time = law.predict(theta, _law_design(law, n_law, tokens_time))[0]
    tokens_flop = compute / (6.0 * feats["params_total"])
    loss_flop = law.predict(theta, _law_design(law, n_law, tokens_flop))[0]
    for what, loss in (("in the time budget", loss_time), ("by FLOP reasoning", loss_flop)):
        if not np.isfinite(loss).any():
            raise DataError(f"law '{law.name}' gives no finite loss for any shape {what} ({hours:g} hours on "
                            f"{gpus} devices); the budget is far outside what the law describes")
    i_best = _pick(np.where(np.isfinite(loss_time), loss_time, np.nan), aspect, tol)
    i_flop = _pick(np.where(np.isfinite(loss_flop), loss_flop, np.nan), aspect, tol)

    def describe(i):
        shape = Shape(int(D[i]), int(L[i]), int(D[i] // HEAD_DIM), int(F[i]), vocab, seq_len, int(batch),
                      micro_batch, gated_mlp, tie_embeddings, fused_attention=fused_attention, recompute=recompute)
        pred = predict_loss(law, theta[0], draws, float(n_law[i]), float(tokens_time[i]), level, stretch)
        return {
            "model": shape.to_dict(),
            "aspect": float(aspect[i]),
            # whole layers make the reachable aspect ratios discrete: "at the limit" = within 15 % of it
            "at_aspect_limit": bool(aspect[i] > aspect_range[1] / 1.15 or aspect[i] < aspect_range[0] * 1.15),
            "params": float(feats["params_total"][i]),
            "tokens": float(tokens_time[i]),
            "tokens_per_s": float(feats["tokens_per_step"][i] / t_step[i]),
            "step_time_s": float(t_step[i]),
            "mfu": float(6.0 * feats["params_total"][i] * feats["tokens_per_step"][i] / t_step[i]
                         / (gpus * hardware.peak_flops)),
            "loss": pred,
            "loss_flop_reasoning": float(loss_flop[i]),
            "tokens_flop_reasoning": float(tokens_flop[i]),
        }

    return SearchResult(
        best=describe(i_best), flop_optimal=describe(i_flop), hours=hours, gpus=int(gpus),
        hardware=hardware.name, time_model=time_model.label,
        calibrated=bool(getattr(time_model, "calibrated", False)),
        flop_baseline=f"C = {compute:.3g} FLOPs (hours x gpus x peak x {flop_mfu:.0%} MFU), tokens = C / 6N",
        grid_size=int(D.size),
    )
