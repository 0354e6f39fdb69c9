"""Per-step accounting and step-time models: FLOPs and memory traffic, :class:`CostModel`, :class:`MfuModel`.

Everything here is per *device* and per *optimizer step* of pure data parallelism (every device holds the
whole model; optionally the optimizer state is sharded as in ZeRO-1). Notation:

    d = d_model, L = layers, h = heads, f = d_ff, V = vocab, n = seq_len, p = devices
    b = batch / p           sequences per device per step;  T = b * n tokens per device per step
    m = micro_batch         sequences per forward/backward pass; a = b / m gradient-accumulation passes
    P_layers = L * (4 d^2 + k_f d f)      k_f = 2 (GELU MLP) or 3 (gated / SwiGLU MLP); biases and norms ignored
    P_total  = P_layers + V d (x2 when input and output embeddings are untied)
    P_matmul = P_layers + V d             the unembedding is a matmul; the embedding lookup is a gather

Named per-step features (``FEATURES``), all per device:

    flops_dense     = 6 P_matmul T (x 4/3 with full activation recomputation: one more forward)
    flops_attn      = 12 L d n T (x 4/3 with recomputation)       PaLM App. B: QK^T and AV, fwd + bwd
    act_bytes       = s_a T L (8 d + k_f f) x (2, or 3 with recomputation)
                      activations of a layer (norm inputs, Q, K, V, attention output, MLP input, MLP hidden)
                      written in the forward pass and read in the backward pass (recomputation writes
                      them once more); cf. Korthikanti et al. 2022, 34 s b h bytes per layer incl. dropout masks
    attn_bytes      = s_a T L 2 h n x (2 or 3)  attention scores and probabilities, only when attention is not
                      fused (FlashAttention never writes them; Korthikanti's 5 a s^2 b term)
    weight_bytes    = s_w P_matmul a x (2, or 3 with recomputation)   weights read forward and backward per pass
    grad_bytes      = s_g P_total 2 a           gradient written (accumulated) per pass and read once
    optimizer_bytes = P_total (2 s_o + s_w) / shard   AdamW state (fp32 master, m, v) read and written, new
                      bf16 weights written; shard = p with a sharded optimizer, else 1
    logit_bytes     = 16 T V                    fp32 logits written, read by softmax/CE, their gradient
                      written and read by the unembedding backward
    allreduce_s     = 2 (p-1)/p s_g P_total / BW_net   ring all-reduce of the gradients over the stated
                      per-device bandwidth (seconds at nominal bandwidth; 0 on one device)

Step-time models, all linear in the features so that the uncalibrated prior and the calibrated fit are
the same model with different coefficients:

    t_step = beta_0 + beta_F (flops_dense + flops_attn) + beta_act (act_bytes + attn_bytes)
             + beta_par (weight_bytes + grad_bytes + optimizer_bytes) + beta_log logit_bytes + beta_net allreduce_s

* uncalibrated (``CostModel.roofline``): beta_F = 1/(eta_c peak), every byte at 1/(eta_m HBM bandwidth),
  beta_net = 1/eta_n, beta_0 = a fixed per-step overhead -- an additive roofline in which matmuls run at a
  stated fraction of dense peak and memory-bound kernels at a stated fraction of HBM bandwidth, not
  overlapped. It is labelled uncalibrated everywhere it is printed.
* calibrated (``calibrate``): non-negative least squares of measured step times on the same groups.
  Weights, gradients and optimizer state all scale with the parameter count, so one machine's timings
  cannot tell their per-byte costs apart; they share one coefficient (their sum is what the step moves).
* ``MfuModel``: the FLOP baseline users know, t_step = 6 N tokens_per_step / (p peak MFU).

Calibration against measured step times is :mod:`scalefit.cost.calibration`; budgets and the compute
convention (C = 6 N D) are :mod:`scalefit.cost.budget`.

Left out (first order only): tensor/pipeline parallelism and their bubbles, overlap of the all-reduce with
the backward pass (the calibrated beta_net absorbs it), hierarchical all-reduce, tile/wave quantisation
of small matmuls.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError, option_error
from .hardware import Hardware
from .shape import Shape, param_counts

FEATURES = (
    "flops_dense",
    "flops_attn",
    "act_bytes",
    "attn_bytes",
    "weight_bytes",
    "grad_bytes",
    "optimizer_bytes",
    "logit_bytes",
    "allreduce_s",
)
# Regression groups: features whose per-unit cost is the same physical quantity (seconds per FLOP,
# seconds per HBM byte of a given kind) or that cannot be separated from timings of one machine.
GROUPS: dict[str, tuple[str, ...]] = {
    "flops": ("flops_dense", "flops_attn"),
    "act_bytes": ("act_bytes", "attn_bytes"),
    "param_bytes": ("weight_bytes", "grad_bytes", "optimizer_bytes"),
    "logit_bytes": ("logit_bytes",),
    "allreduce_s": ("allreduce_s",),
}
FLOP_ONLY_GROUPS = ("flops",)

# Uncalibrated prior: stated efficiencies (fractions of the vendor's peak).
ETA_COMPUTE = 0.70  # large bf16 matmuls reach ~70-80 % of dense peak
ETA_MEMORY = 0.80  # achievable HBM bandwidth is ~80-90 % of the vendor figure
ETA_NETWORK = 0.80  # NCCL/ICI bus bandwidth relative to the link figure
STEP_OVERHEAD_S = 0.005  # kernel launches, host work, data loader per step

DEFAULT_MICRO_TOKENS = 4096  # tokens per device per forward/backward pass (2 sequences of 2048)


def _default_micro(per_device, seq_len):
    return np.minimum(per_device, np.maximum(1.0, np.floor(DEFAULT_MICRO_TOKENS / np.asarray(seq_len, float))))


# =====================================================================================  per-step accounting
def step_features(
    d_model,
    layers,
    heads,
    d_ff,
    vocab,
    seq_len,
    batch,
    *,
    gpus=1,
    hardware: Hardware | None = None,
    micro_batch=None,
    gated_mlp=False,
    tie_embeddings=False,
    weight_bytes=2.0,
    act_bytes=2.0,
    grad_bytes=2.0,
    optimizer_bytes=12.0,
    fused_attention=True,
    recompute=False,
    shard_optimizer=True,
    net_bw=None,
) -> dict[str, np.ndarray]:
    """Per-device, per-step FLOPs and bytes by category (see the module docstring), vectorised.

    Every argument broadcasts, so a grid of thousands of shapes is one call. Returns the named
    ``FEATURES`` plus bookkeeping arrays: ``tokens_per_step`` (global), ``params_total``,
    ``params_nonembedding``, ``params_matmul``, ``memory_bytes`` (peak per device), ``comm_bytes``.
    ``allreduce_s`` needs a bandwidth: ``net_bw`` (B/s) or ``hardware``.
    """
    d = np.asarray(d_model, dtype=float)
    L = np.asarray(layers, dtype=float)
    h = np.asarray(heads, dtype=float)
    f = np.asarray(d_ff, dtype=float)
    V = np.asarray(vocab, dtype=float)
    n = np.asarray(seq_len, dtype=float)
    p = np.asarray(gpus, dtype=float)
    b = np.asarray(batch, dtype=float) / p  # sequences per device per step
    m = _default_micro(b, n) if micro_batch is None else np.minimum(np.asarray(micro_batch, dtype=float), b)
    passes = b / m  # gradient-accumulation passes per step
    T = b * n
    gated = np.asarray(gated_mlp, dtype=bool)
    k_f = np.where(gated, 3.0, 2.0)
    rec = np.asarray(recompute, dtype=bool)
    fwd = np.where(rec, 4.0 / 3.0, 1.0)  # one more forward pass = +2 of 6 FLOPs per parameter-token
    rw = np.where(rec, 3.0, 2.0)  # activations and weights touched: written/read twice, thrice with recompute
    s_w, s_a, s_g, s_o = (np.asarray(x, dtype=float) for x in (weight_bytes, act_bytes, grad_bytes, optimizer_bytes))
    nonemb, total, matmul = param_counts(d, L, f, V, gated, tie_embeddings)
    shard = np.where(np.asarray(shard_optimizer, dtype=bool), p, 1.0)

    per_layer_act = 8.0 * d + k_f * f  # elements per token per layer kept for the backward pass
    scores = np.where(np.asarray(fused_attention, dtype=bool), 0.0, 2.0 * h * n)
    comm_bytes = np.where(p > 1, 2.0 * (p - 1.0) / p * s_g * total, 0.0)
    if net_bw is None:
        if hardware is None:
            bw = np.ones_like(p)  # harmless: comm_bytes is 0 unless p > 1, checked below
            if np.any(p > 1):
                raise DataError("all-reduce time needs a bandwidth: pass hardware or net_bw")
        else:
            bw = np.vectorize(hardware.allreduce_bw, otypes=[float])(p) if np.any(p > 1) else np.ones_like(p)
    else:
        bw = np.asarray(net_bw, dtype=float)

    feats = {
        "flops_dense": 6.0 * matmul * T * fwd,
        "flops_attn": 12.0 * L * d * n * T * fwd,
        "act_bytes": s_a * T * L * per_layer_act * rw,
        "attn_bytes": s_a * T * L * scores * rw,
        "weight_bytes": s_w * matmul * passes * rw,
        "grad_bytes": s_g * total * 2.0 * passes,
        "optimizer_bytes": total * (2.0 * s_o + s_w) / shard,
        "logit_bytes": 16.0 * T * V,
        "allreduce_s": comm_bytes / bw,
    }
    stored_act = np.where(rec, d, per_layer_act + scores) * s_a * m * n * L
    feats.update(
        tokens_per_step=b * p * n,
        params_total=total,
        params_nonembedding=nonemb,
        params_matmul=matmul,
        comm_bytes=comm_bytes,
        memory_bytes=total * (s_w + s_g) + total * s_o / shard + stored_act + 8.0 * m * n * V,
    )
    shape = np.broadcast_shapes(*(np.shape(v) for v in feats.values()))
    return {k: np.broadcast_to(v, shape).astype(float) for k, v in feats.items()}


def shape_features(shape: Shape, gpus: int = 1, hardware: Hardware | None = None, *,
                   shard_optimizer: bool = True, net_bw: float | None = None) -> dict[str, float]:
    """:func:`step_features` of one :class:`Shape` (floats)."""
    feats = step_features(
        shape.d_model, shape.layers, shape.heads, shape.d_ff, shape.vocab, shape.seq_len, shape.batch,
        gpus=gpus, hardware=hardware, micro_batch=shape.micro_batch, gated_mlp=shape.gated_mlp,
        tie_embeddings=shape.tie_embeddings, weight_bytes=shape.weight_bytes, act_bytes=shape.act_bytes,
        grad_bytes=shape.grad_bytes, optimizer_bytes=shape.optimizer_bytes,
        fused_attention=shape.fused_attention, recompute=shape.recompute, shard_optimizer=shard_optimizer,
        net_bw=net_bw,
    )
    return {k: float(v) for k, v in feats.items()}


def group_matrix(feats: Mapping[str, Any], groups: Sequence[str] = tuple(GROUPS)) -> np.ndarray:
    """Features summed into regression groups: (..., len(groups))."""
    return np.stack([sum(np.asarray(feats[k], dtype=float) for k in GROUPS[g]) for g in groups], axis=-1)


# =====================================================================================  step-time models
@dataclass
class CostModel:
    """t_step = intercept + sum_g coef[g] * group_g (seconds). See the module docstring for the groups.

    ``calibrated`` is False for the roofline prior. ``diagnostics`` holds the calibration report.
    """

    coef: dict[str, float]
    intercept: float
    hardware: Hardware
    calibrated: bool = False
    label: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def roofline(cls, hardware: Hardware, *, eta_compute: float = ETA_COMPUTE, eta_memory: float = ETA_MEMORY,
                 eta_network: float = ETA_NETWORK, overhead_s: float = STEP_OVERHEAD_S) -> "CostModel":
        """Uncalibrated additive roofline from the hardware table at stated efficiencies."""
        per_byte = 1.0 / (eta_memory * hardware.hbm_bw)
        coef = {"flops": 1.0 / (eta_compute * hardware.peak_flops), "act_bytes": per_byte,
                "param_bytes": per_byte, "logit_bytes": per_byte, "allreduce_s": 1.0 / eta_network}
        label = (f"uncalibrated roofline: {hardware.name}, matmuls at {eta_compute:.0%} of "
                 f"{hardware.peak_flops / 1e12:.0f} TFLOP/s, memory at {eta_memory:.0%} of "
                 f"{hardware.hbm_bw / 1e9:.0f} GB/s, {overhead_s * 1e3:.0f} ms per step")
        return cls(coef, overhead_s, hardware, calibrated=False, label=label)

    @property
    def kind(self) -> str:
        return "calibrated" if self.calibrated else "uncalibrated roofline"

    def step_time(self, feats: Mapping[str, Any]) -> np.ndarray:
        groups = list(self.coef)
        return self.intercept + group_matrix(feats, groups) @ np.array([self.coef[g] for g in groups])

    def breakdown(self, feats: Mapping[str, Any]) -> dict[str, float]:
        """Seconds per step attributed to each group (plus the intercept)."""
        out = {"overhead": float(self.intercept)}
        for g, beta in self.coef.items():
            out[g] = float(beta * sum(float(feats[k]) for k in GROUPS[g]))
        return out

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "kind": "scalefit-cost-model",
            "scalefit_version": __version__,
            "calibrated": self.calibrated,
            "label": self.label,
            "hardware": self.hardware.to_dict(),
            "intercept_s": self.intercept,
            "coef": dict(self.coef),
            "units": {"flops": "s/FLOP", "act_bytes": "s/B", "param_bytes": "s/B", "logit_bytes": "s/B",
                      "allreduce_s": "s/s at nominal bandwidth"},
            "diagnostics": self.diagnostics,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], source: str = "<dict>") -> "CostModel":
        try:
            if obj.get("kind") != "scalefit-cost-model":
                raise KeyError("kind")
            hw_fields = {k: obj["hardware"][k] for k in Hardware.__dataclass_fields__ if k in obj["hardware"]}
            hardware = Hardware(**hw_fields)
            coef = {str(k): float(v) for k, v in obj["coef"].items()}
            unknown = set(coef) - set(GROUPS)
            if unknown:
                raise KeyError(f"coef {sorted(unknown)}")
            bad = [k for k, v in coef.items() if not (math.isfinite(v) and v >= 0)]
            if bad or not math.isfinite(float(obj["intercept_s"])):
                raise ValueError(f"coefficients {bad or ['intercept_s']} must be finite and non-negative")
            return cls(coef, float(obj["intercept_s"]), hardware, bool(obj.get("calibrated", True)),
                       str(obj.get("label", "")), dict(obj.get("diagnostics", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{source}: not a scalefit cost model ({exc}); make one with `scalefit cost calibrate`") from None

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write cost.json through the one atomic writer (same mode and overwrite rules as every artefact)."""
        from .._io import atomic_write, json_safe

        return atomic_write(path, json.dumps(json_safe(self.to_dict()), indent=2) + "\n", force=force)

    @classmethod
    def load(cls, path: str | Path) -> "CostModel":
        from .._io import check_input_file

        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such cost model file; make one with `scalefit cost calibrate`")
        check_input_file(path, "cost model file", "fit_json_bytes")  # a regular file of sane size (not a FIFO)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{path}: not valid JSON ({str(exc)[:200] or 'nested too deeply'})") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read the cost model file ({exc.strerror or exc})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: expected a JSON object written by `scalefit cost calibrate`")
        return cls.from_dict(obj, str(path))


@dataclass
class MfuModel:
    """The FLOP baseline: t_step = 6 N tokens_per_step / (devices x peak x MFU)."""

    mfu: float
    hardware: Hardware
    calibrated: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.mfu) and 0 < self.mfu <= 1):
            raise option_error("mfu", self.mfu, "must be a fraction in (0, 1], e.g. 0.4")

    @property
    def kind(self) -> str:
        return f"fixed MFU {self.mfu:.0%}"

    @property
    def label(self) -> str:
        return f"FLOP baseline: 6N FLOPs per token at {self.mfu:.0%} of {self.hardware.peak_flops / 1e12:.0f} TFLOP/s"

    def step_time(self, feats: Mapping[str, Any], gpus=1, params=None) -> np.ndarray:
        n_params = np.asarray(feats["params_total"] if params is None else params, dtype=float)
        return 6.0 * n_params * np.asarray(feats["tokens_per_step"]) / (
            np.asarray(gpus, dtype=float) * self.hardware.peak_flops * self.mfu)


def model_step_time(model, feats, gpus, params=None):
    """Seconds per step under either model: a :class:`CostModel` reads the features alone, an
    :class:`MfuModel` also the device count and the N of 6N (default: the total parameter count)."""
    if isinstance(model, MfuModel):
        return model.step_time(feats, gpus=gpus, params=params)
    return model.step_time(feats)
