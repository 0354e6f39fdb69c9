"""Wall-clock cost of training a transformer: per-step FLOPs and memory traffic, step time, budgets.

The idea (Inbar & Sernau 2024, "Time Matters: Scaling Laws for Any Budget", arXiv:2406.18922): FLOP
counts alone predict training time poorly; the bytes a step moves through memory, counted from the
transformer's hyperparameters, predict it better. A linear regression on measured step times calibrates
the model to one machine, and a scaling law rewritten with ``tokens = time x throughput`` gives the loss
reachable in a wall-clock budget -- which favours wider, shallower models than FLOP reasoning does.

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

Compute convention: ``flops`` (budgets, reports, MFU) is C = 6 N D with N the total parameter count, the
convention scaling laws are fitted with; hours at a given MFU therefore match the usual arithmetic
(1e21 FLOPs on 64 H100 at 40 % MFU = 10.97 h). The attention FLOPs enter the step time, not C.

Left out (first order only): tensor/pipeline parallelism and their bubbles, overlap of the all-reduce with
the backward pass (the calibrated beta_net absorbs it), hierarchical all-reduce, tile/wave quantisation
of small matmuls, data loading, evaluation, checkpointing and restarts (goodput).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DataError

_PACKAGE_DIR = Path(__file__).resolve().parent

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

CONVENTIONAL_ASPECT = 128.0  # d_model / layers of GPT-3 (12288/96) and LLaMA-7B (4096/32)
ASPECT_RANGE = (16.0, 512.0)  # where the time-budget search trusts parameter equivalence
HEAD_DIM = 128
DEFAULT_VOCAB = 32_000
DEFAULT_SEQ_LEN = 2048
DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024  # ~4M tokens per optimizer step (LLaMA)
DEFAULT_MICRO_TOKENS = 4096  # tokens per device per forward/backward pass (2 sequences of 2048)

# What a cost question may accept: far beyond today's largest runs, yet small enough that every derived
# number (hours, FLOPs, dollars) stays finite -- ``--tokens 1e308`` overflowed 6ND, ``--hours 1e-300`` and
# ``--gpus 1e10`` gave absurd figures without a word. Budgets below one optimizer step are allowed (a
# warning says so); tokens and FLOPs have no lower bound but zero, as smaller budgets only mean partial steps.
RANGES: dict[str, tuple[float, float, str]] = {
    "params": (1.0, 1e16, "parameters"),
    "tokens": (0.0, 1e24, "tokens"),
    "flops": (0.0, 1e41, "FLOPs"),
    "hours": (1e-6, 1e10, "hours"),  # 3.6 ms to about a million years
    "gpu_hours": (1e-6, 1e16, "device-hours"),
    "dollars": (1e-6, 1e18, "dollars"),
    "gpus": (1, 10_000_000, "devices"),
    "price_per_gpu_hour": (1e-6, 1e6, "per device-hour"),
    "seq_len": (1, 100_000_000, "tokens"),
    "vocab": (1, 100_000_000, "tokens"),
    "batch": (1, 1e12, "sequences"),
    "d_model": (1, 10_000_000, ""),
    "layers": (1, 1_000_000, ""),
    "heads": (1, 10_000_000, ""),
    "d_ff": (1, 100_000_000, ""),
    "peak_tflops": (1e-6, 1e9, "TFLOP/s"),
    "hbm_gbps": (1e-6, 1e9, "GB/s"),
    "net_gbps": (1e-6, 1e9, "GB/s"),
    "hbm_gb": (1e-6, 1e9, "GB"),
}
LONG_HOURS = 1e5  # beyond ~11 years of wall clock a warning says how long that is


def check_range(name: str, value, flag: str | None = None) -> None:
    """One DataError naming ``flag`` (default ``--name``) when ``value`` is not a finite number inside
    ``RANGES[name]``."""
    lo, hi, unit = RANGES[name]
    flag = flag or f"--{name.replace('_', '-')}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{flag} {value!r}: must be a number") from None
    if not (math.isfinite(x) and x > 0):
        raise DataError(f"{flag} {value}: must be a positive number")
    if not lo <= x <= hi:
        span = f"{lo:g} to {hi:g}" if lo > 0 else f"at most {hi:g}"
        raise DataError(f"{flag} {x:g}: outside the range scalefit accepts ({span}{' ' + unit if unit else ''})")


def _check_finite(what: str, **values) -> None:
    """A result that overflowed or is not a number is an error, never output."""
    bad = [k for k, v in values.items() if v is not None and not math.isfinite(float(v))]
    if bad:
        raise DataError(f"{what}: {', '.join(bad)} came out as {values[bad[0]]} (the inputs are beyond what the model "
                        f"can compute); check the sizes and budget")


# =====================================================================================  hardware
@dataclass(frozen=True)
class Hardware:
    """One accelerator: dense BF16 peak, HBM, interconnect; per device, SI units (FLOP/s, B/s, B)."""

    name: str
    peak_flops: float
    hbm_bw: float
    hbm_bytes: float | None = None
    link_bw: float | None = None  # scale-up link (NVLink / ICI), bidirectional, per device
    link_domain: int = 1  # devices reachable over that link (an 8-GPU node; a TPU pod)
    scaleout_bw: float | None = None  # per-device network bandwidth beyond the link domain
    source: str = ""

    def allreduce_bw(self, gpus: float) -> float:
        """Per-device bandwidth a ring all-reduce over ``gpus`` devices runs at (B/s, one direction).

        Inside the link domain: half the bidirectional link figure; beyond it: the scale-out network.
        """
        inside = self.link_bw / 2.0 if self.link_bw else None
        if gpus <= max(self.link_domain, 1):
            bw = inside or self.scaleout_bw
        else:
            bw = self.scaleout_bw or inside
        if not bw:
            raise DataError(
                f"hardware '{self.name}': no interconnect bandwidth for {int(gpus)} devices; pass --net-gbps"
            )
        return bw

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware_table_path() -> Path:
    """``<repo>/data/hardware.csv`` in a checkout, ``scalefit/_data/hardware.csv`` in an installed wheel."""
    checkout = _PACKAGE_DIR.parent / "data" / "hardware.csv"
    if checkout.is_file() and (_PACKAGE_DIR.parent / "pyproject.toml").exists():
        return checkout
    return _PACKAGE_DIR / "_data" / "hardware.csv"


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def hardware_table() -> list[dict[str, Any]]:
    """The rows of the hardware table, as dicts (strings and floats; empty cells -> None)."""
    import csv

    path = hardware_table_path()
    if not path.is_file():
        raise DataError(f"{path}: hardware table missing; reinstall scalefit or pass --peak-tflops/--hbm-gbps")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    numeric = ("bf16_dense_tflops", "hbm_gb", "hbm_gbps", "link_gbps", "link_domain", "scaleout_gbps")
    out = []
    for row in rows:
        rec: dict[str, Any] = dict(row)
        for col in numeric:
            text = (row.get(col) or "").strip()
            rec[col] = float(text) if text else None
        out.append(rec)
    return out


def _row_to_hardware(row: Mapping[str, Any]) -> Hardware:
    gb = 1e9
    return Hardware(
        name=row["name"],
        peak_flops=row["bf16_dense_tflops"] * 1e12,
        hbm_bw=row["hbm_gbps"] * gb,
        hbm_bytes=row["hbm_gb"] * gb if row.get("hbm_gb") else None,
        link_bw=row["link_gbps"] * gb if row.get("link_gbps") else None,
        link_domain=int(row["link_domain"] or 1),
        scaleout_bw=row["scaleout_gbps"] * gb if row.get("scaleout_gbps") else None,
        source=row.get("source", ""),
    )


def get_hardware(
    name: str | None = None,
    *,
    peak_tflops: float | None = None,
    hbm_gbps: float | None = None,
    net_gbps: float | None = None,
    hbm_gb: float | None = None,
) -> Hardware:
    """A device by table name or alias (case- and punctuation-insensitive), or from explicit figures.

    Explicit ``peak_tflops``/``hbm_gbps`` override the table row (or define a device when ``name`` is
    None); ``net_gbps`` (GB/s per device, one direction) replaces the all-reduce bandwidth.
    """
    if name is None:
        if peak_tflops is None or hbm_gbps is None:
            raise DataError(
                "--hardware: give a device name (see `scalefit cost hardware`) or both --peak-tflops and --hbm-gbps"
            )
        hw = Hardware(name="custom", peak_flops=0.0, hbm_bw=0.0, source="given on the command line")
    else:
        rows = hardware_table()
        index: dict[str, dict] = {}
        for row in rows:
            for alias in [row["name"], *str(row.get("aliases") or "").split(";")]:
                if alias.strip():
                    index.setdefault(_key(alias), row)
        row = index.get(_key(name))
        if row is None:
            names = [r["name"] for r in rows]
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.4)
            close += [r["name"] for r in rows if _key(name) and _key(name) in _key(r["name"]) and r["name"] not in close]
            hint = f"did you mean {' or '.join(close[:3])}? " if close else ""
            raise DataError(
                f"--hardware '{name}': unknown device; {hint}known: {', '.join(names)} "
                f"(or give --peak-tflops and --hbm-gbps)"
            )
        hw = _row_to_hardware(row)
    changes: dict[str, Any] = {}
    for value, what in ((peak_tflops, "peak_tflops"), (hbm_gbps, "hbm_gbps"), (net_gbps, "net_gbps"),
                        (hbm_gb, "hbm_gb")):
        if value is not None:
            check_range(what, value)
    if peak_tflops is not None:
        changes["peak_flops"] = peak_tflops * 1e12
    if hbm_gbps is not None:
        changes["hbm_bw"] = hbm_gbps * 1e9
    if hbm_gb is not None:
        changes["hbm_bytes"] = hbm_gb * 1e9
    if net_gbps is not None:  # one figure for every scale: link and scale-out
        changes.update(link_bw=2 * net_gbps * 1e9, scaleout_bw=net_gbps * 1e9, link_domain=1)
    if changes and name is not None:
        changes["name"] = f"{hw.name} (modified)"
    return replace(hw, **changes)


# =====================================================================================  model shape
@dataclass(frozen=True)
class Shape:
    """A decoder-only transformer and how it is trained.

    ``batch`` is the global number of sequences per optimizer step; ``micro_batch`` the sequences each
    device runs per forward/backward pass (gradient accumulation makes up the rest). Precisions are bytes
    per element: weights and activations (2 = bf16), gradients, and optimizer state per parameter
    (12 = fp32 master weights + Adam m and v).
    """

    d_model: int
    layers: int
    heads: int
    d_ff: int
    vocab: int = DEFAULT_VOCAB
    seq_len: int = DEFAULT_SEQ_LEN
    batch: int = 1
    micro_batch: int | None = None
    gated_mlp: bool = False
    tie_embeddings: bool = False
    weight_bytes: float = 2.0
    act_bytes: float = 2.0
    grad_bytes: float = 2.0
    optimizer_bytes: float = 12.0
    fused_attention: bool = True
    recompute: bool = False

    def validate(self, gpus: int = 1) -> "Shape":
        for name in ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= 1):
                raise DataError(f"--{name.replace('_', '-')} {value}: must be a positive whole number")
            check_range(name, value)
        if self.d_model % self.heads:
            raise DataError(
                f"--d-model {self.d_model} is not divisible by --heads {self.heads}; "
                f"pick heads that divide d_model (e.g. {max(1, self.d_model // HEAD_DIM)})"
            )
        for name in ("weight_bytes", "act_bytes", "grad_bytes", "optimizer_bytes"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name != "optimizer_bytes" and value == 0):
                raise DataError(f"--{name.replace('_', '-')} {value}: must be a positive number of bytes")
        check_gpus(gpus)
        if self.batch < gpus:
            raise DataError(
                f"--batch {self.batch} sequences over --gpus {int(gpus)}: every device needs at least one "
                f"sequence per step; raise --batch to at least {int(gpus)} or use fewer devices"
            )
        if self.micro_batch is not None and not (isinstance(self.micro_batch, (int, np.integer)) and self.micro_batch >= 1):
            raise DataError(f"--micro-batch {self.micro_batch}: must be a positive whole number")
        return self

    # parameter counts --------------------------------------------------------------
    @property
    def params_nonembedding(self) -> float:
        return float(param_counts(self.d_model, self.layers, self.d_ff, self.vocab, self.gated_mlp,
                                  self.tie_embeddings)[0])

    @property
    def params_total(self) -> float:
        return float(param_counts(self.d_model, self.layers, self.d_ff, self.vocab, self.gated_mlp,
                                  self.tie_embeddings)[1])

    @property
    def aspect(self) -> float:
        return self.d_model / self.layers

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["params_total"] = self.params_total
        out["params_nonembedding"] = self.params_nonembedding
        return out

    def describe(self) -> str:
        return (f"d_model {self.d_model}, layers {self.layers}, heads {self.heads}, d_ff {self.d_ff}, "
                f"vocab {self.vocab}, seq_len {self.seq_len}")


def param_counts(d, layers, d_ff, vocab, gated_mlp=False, tie_embeddings=False):
    """(non-embedding, total, matmul) parameter counts; numpy-broadcasting over any argument.

    Per layer 4 d^2 (Q, K, V, output projection) + k_f d f (MLP; k_f = 3 when gated), biases and norms
    ignored. Embeddings V d, twice when untied. ``matmul`` adds only the unembedding: the embedding is a
    lookup and costs no FLOPs.
    """
    d = np.asarray(d, dtype=float)
    k_f = np.where(np.asarray(gated_mlp, dtype=bool), 3.0, 2.0)
    nonemb = np.asarray(layers, dtype=float) * (4.0 * d * d + k_f * d * np.asarray(d_ff, dtype=float))
    emb = np.asarray(vocab, dtype=float) * d
    total = nonemb + np.where(np.asarray(tie_embeddings, dtype=bool), 1.0, 2.0) * emb
    return nonemb, total, nonemb + emb


def conventional_shape(
    params: float,
    *,
    aspect: float = CONVENTIONAL_ASPECT,
    vocab: int = DEFAULT_VOCAB,
    tie_embeddings: bool = False,
    **kwargs,
) -> Shape:
    """The conventional transformer with about ``params`` total parameters.

    Rule: d_ff = 4 d_model (8/3 d_model, rounded to 128, with a gated MLP), head dim 128 (heads = d_model / 128), d_model / layers = ``aspect`` (128, as in
    GPT-3 175B and LLaMA-7B), d_model a multiple of 128. Solve 12 d^3 / aspect + e V d = params for d
    (e = 1 tied, 2 untied), round layers = d / aspect to a whole number (at least 1), then solve
    12 L d^2 + e V d = params for d at that depth and round d to the nearest multiple of 128.
    """
    check_range("params", params)
    check_range("vocab", vocab)
    e = 1.0 if tie_embeddings else 2.0
    roots = np.roots([12.0 / aspect, 0.0, e * vocab, -params])
    d_cont = float(max(r.real for r in roots if abs(r.imag) < 1e-6 * max(1.0, abs(r.real))))
    layers = max(1, int(round(d_cont / aspect)))
    a2, a1 = 12.0 * layers, e * vocab
    d_at_depth = (-a1 + math.sqrt(a1 * a1 + 4.0 * a2 * params)) / (2.0 * a2)
    d = max(HEAD_DIM, int(round(d_at_depth / HEAD_DIM)) * HEAD_DIM)
    # A gated MLP with d_ff = 8/3 d_model has the same 8 d^2 parameters as a GELU MLP with 4 d_model.
    d_ff = max(HEAD_DIM, int(round(8 * d / 3 / HEAD_DIM)) * HEAD_DIM) if kwargs.get("gated_mlp") else 4 * d
    return Shape(d_model=d, layers=layers, heads=d // HEAD_DIM, d_ff=d_ff, vocab=vocab,
                 tie_embeddings=tie_embeddings, **kwargs)


def check_gpus(gpus) -> int:
    if isinstance(gpus, bool) or not isinstance(gpus, (int, np.integer)) or gpus < 1:
        raise DataError(f"--gpus {gpus}: must be a positive whole number")
    check_range("gpus", gpus)
    return int(gpus)


def check_seq_len(seq_len) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise DataError(f"--seq-len {seq_len}: must be a positive whole number of tokens")
    check_range("seq_len", seq_len)
    return int(seq_len)


def default_batch(seq_len: int, gpus: int) -> int:
    """~4M tokens per step (LLaMA's batch), at least one sequence per device, a multiple of ``gpus``."""
    check_gpus(gpus)
    check_seq_len(seq_len)
    seqs = max(1, round(DEFAULT_BATCH_TOKENS / seq_len))
    return int(max(gpus, math.ceil(seqs / gpus) * gpus))


def _default_micro(per_device, seq_len):
    return np.minimum(per_device, np.maximum(1.0, np.floor(DEFAULT_MICRO_TOKENS / np.asarray(seq_len, float))))


def chinchilla_flops(d_model, layers, heads, kv_size, d_ff, vocab=32_000, seq_len=2048, *, embeddings=False):
    """Training FLOPs per sequence by Hoffmann et al. 2022, Appendix F (forward; backward = 2 x forward).

    Per layer: QKV 2*3*S*d*(k h), attention logits 2*S^2*(k h), softmax 3*h*S^2, softmax @ V 2*S^2*(k h),
    output projection 2*S*(k h)*d, dense 2*S*(2 d f). The embedding (2 S V d) and final-logit (2 S d V)
    terms are included only with ``embeddings=True``: Table A4's ratios are reproduced without them
    (see :func:`chinchilla_params`).
    """
    S, d, kh = float(seq_len), float(d_model), float(heads) * float(kv_size)
    per_layer = (2 * 3 * S * d * kh + 2 * S * S * kh + 3 * heads * S * S + 2 * S * S * kh + 2 * S * kh * d
                 + 2 * S * 2 * d * d_ff)
    forward = layers * per_layer + (4 * S * vocab * d if embeddings else 0.0)
    return 3.0 * forward


def chinchilla_params(d_model, layers, heads, kv_size, d_ff, vocab=32_000):
    """The N under which Table A4's FLOP ratios (ours / 6ND) reproduce: attention and MLP weights, one
    relative-position matrix (d x k h) per layer, and one V x d embedding: L(4 d k h + 2 d f) + L d k h + V d."""
    kh = float(heads) * float(kv_size)
    return layers * (4 * d_model * kh + 2 * d_model * d_ff) + layers * d_model * kh + vocab * d_model


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
        from . import __version__

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
        from ._io import atomic_write, json_safe

        return atomic_write(path, json.dumps(json_safe(self.to_dict()), indent=2) + "\n", force=force)

    @classmethod
    def load(cls, path: str | Path) -> "CostModel":
        from ._io import check_input_file

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
            raise DataError(f"--mfu {self.mfu}: must be a fraction in (0, 1], e.g. 0.4")

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


def _step_time(model, feats, gpus, params=None):
    if isinstance(model, MfuModel):
        return model.step_time(feats, gpus=gpus, params=params)
    return model.step_time(feats)


# =====================================================================================  budgets
BUDGET_KINDS = ("tokens", "flops", "hours", "gpu_hours", "dollars")


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
    (default: the shape's total count; pass the user's ``--params`` so that the FLOP arithmetic is theirs).
    """
    if budget not in BUDGET_KINDS:
        raise DataError(f"budget '{budget}': use one of {', '.join(BUDGET_KINDS)}")
    check_gpus(gpus)
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise DataError(f"--{budget.replace('_', '-')} {value}: a budget must be a positive number")
    check_range(budget, value)
    if price_per_gpu_hour is not None and not (math.isfinite(price_per_gpu_hour) and price_per_gpu_hour > 0):
        raise DataError(f"--price-per-gpu-hour {price_per_gpu_hour}: must be a positive number")
    if price_per_gpu_hour is not None:
        check_range("price_per_gpu_hour", price_per_gpu_hour)
    if params is not None:
        check_range("params", params)
    if budget == "dollars" and price_per_gpu_hour is None:
        raise DataError("--dollars needs --price-per-gpu-hour to turn money into device-hours")
    shape.validate(gpus)
    time_model = time_model or CostModel.roofline(hardware)
    feats = shape_features(shape, gpus, hardware, shard_optimizer=shard_optimizer)
    n_params = float(params) if params is not None else feats["params_total"]
    t_step = float(_step_time(time_model, feats, gpus, n_params))
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
        raise DataError(f"the step time came out as {t_step:g} s; check --mfu, --calibration and the hardware figures")
    hi = RANGES["tokens"][1]
    if budget != "tokens" and not tokens <= hi:
        raise DataError(f"--{budget.replace('_', '-')} {value:g} buys {tokens:.3g} tokens, beyond the {hi:g} tokens "
                        f"scalefit accepts")
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


# =====================================================================================  calibration
TIMING_COLUMNS = ("d_model", "layers", "heads", "d_ff", "vocab", "seq_len", "batch")
_TIME_ALIASES = ("step_time_s", "step_time", "time_s", "seconds", "t_step")
_OPTIONAL_INT = ("gpus", "micro_batch")
_OPTIONAL_BOOL = ("gated_mlp", "tie_embeddings", "fused_attention", "recompute", "shard_optimizer")
_OPTIONAL_FLOAT = ("weight_bytes", "act_bytes", "grad_bytes", "optimizer_bytes")


def timings_features(frame, hardware: Hardware, source: str = "<timings>") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validate a timings table and return (features per row, measured step times).

    Required columns: d_model, layers, heads, d_ff, vocab, seq_len, batch (global sequences per step) and
    the measured step time in seconds (``step_time_s``). Optional: gpus, micro_batch, gated_mlp,
    tie_embeddings, fused_attention, recompute, shard_optimizer, weight_bytes, act_bytes, grad_bytes,
    optimizer_bytes (defaults as in :class:`Shape`).
    """
    import pandas as pd

    cols = {str(c).strip().lower(): c for c in frame.columns}
    time_col = next((cols[a] for a in _TIME_ALIASES if a in cols), None)
    missing = [c for c in TIMING_COLUMNS if c not in cols] + ([] if time_col else ["step_time_s"])
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; a timings table needs "
            f"{', '.join(TIMING_COLUMNS)}, step_time_s (columns are: {', '.join(map(str, frame.columns))})"
        )

    def numeric(name, col, integer=False, positive=True):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
        if integer:
            bad |= np.isfinite(values) & (values != np.round(values))
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(str(r + 2) for r in rows[:5])  # +2: header line, 1-based
            raise DataError(
                f"{source}: column '{col}' has {'non-integer, ' if integer else ''}missing or non-positive "
                f"values on line(s) {shown} (value {frame[col].iloc[rows[0]]!r}); fix or remove those rows"
            )
        return values

    def boolean(col):
        raw = frame[col].astype(str).str.strip().str.lower()
        mapping = {"true": True, "1": True, "yes": True, "1.0": True, "false": False, "0": False, "no": False,
                   "0.0": False}
        bad = ~raw.isin(list(mapping))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: column '{col}' line {row + 2}: '{frame[col].iloc[row]}' is not true/false")
        return raw.map(mapping).to_numpy(dtype=bool)

    kw: dict[str, Any] = {}
    base = {c: numeric(c, cols[c], integer=True) for c in TIMING_COLUMNS}
    for c in _OPTIONAL_INT:
        if c in cols:
            kw["gpus" if c == "gpus" else c] = numeric(c, cols[c], integer=True)
    for c in _OPTIONAL_BOOL:
        if c in cols:
            kw[c] = boolean(cols[c])
    for c in _OPTIONAL_FLOAT:
        if c in cols:
            kw[c] = numeric(c, cols[c], positive=c != "optimizer_bytes")
    bad_heads = np.flatnonzero(base["d_model"] % base["heads"] != 0)
    if bad_heads.size:
        r = int(bad_heads[0])
        raise DataError(f"{source}: line {r + 2}: d_model {int(base['d_model'][r])} is not divisible by heads "
                        f"{int(base['heads'][r])}; fix the row")
    gpus = kw.get("gpus", np.ones(len(frame)))
    low = np.flatnonzero(base["batch"] < gpus)
    if low.size:
        raise DataError(f"{source}: line {int(low[0]) + 2}: batch is smaller than gpus; batch is the global "
                        "number of sequences per step")
    times = numeric("step_time_s", time_col)
    feats = step_features(base["d_model"], base["layers"], base["heads"], base["d_ff"], base["vocab"],
                          base["seq_len"], base["batch"], hardware=hardware, **kw)
    return feats, times


def _nnls_fit(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """min sum ((y - b0 - X beta) / y)^2 over b0, beta >= 0 (relative errors: step times span decades)."""
    from scipy.optimize import nnls

    A = np.column_stack([np.ones(len(y)), X]) / y[:, None]
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    sol, _ = nnls(A / scale, np.ones(len(y)), maxiter=50 * A.shape[1])
    sol = sol / scale
    return float(sol[0]), sol[1:]


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    rel = (pred - y) / y
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "mape": float(np.mean(np.abs(rel))),
        "max_ape": float(np.max(np.abs(rel))),
        "rmse_s": float(np.sqrt(np.mean((y - pred) ** 2))),
    }


def _fit_and_score(X, y, folds, seed):
    b0, beta = _nnls_fit(X, y)
    in_sample = _metrics(y, b0 + X @ beta)
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(y)) % folds
    held = np.empty_like(y)
    for k in range(folds):
        test = fold_of == k
        c0, cb = _nnls_fit(X[~test], y[~test])
        held[test] = c0 + X[test] @ cb
    return b0, beta, in_sample, _metrics(y, held)


def check_calibration_options(*, folds: int = 5, seed: int = 0) -> None:
    """``folds`` a whole number >= 2 (fewer rows than folds use one row per fold) and ``seed`` >= 0."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise DataError(f"--folds {folds}: k-fold cross-validation needs a whole number of folds >= 2")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"--seed {seed}: the seed must be a whole number >= 0")


def calibrate(frame, hardware: Hardware, *, source: str = "<timings>", folds: int = 5, seed: int = 0) -> CostModel:
    """Fit t_step = b0 + sum_g beta_g group_g by non-negative least squares to measured step times.

    Rows are weighted by 1/t (relative error). Groups that are zero in every row (the all-reduce in
    single-device timings) are left out of the fit, reported as not identified, and keep the
    uncalibrated roofline coefficient. Beside it a
    FLOP-only model t = b0 + beta_F FLOPs is fitted to the same timings; both are scored in sample and by
    k-fold cross-validation (held-out error), in ``diagnostics``.
    """
    check_calibration_options(folds=folds, seed=seed)
    feats, y = timings_features(frame, hardware, source)
    G = group_matrix(feats)
    names = list(GROUPS)
    used = [g for i, g in enumerate(names) if np.any(G[:, i] > 0)]
    X = G[:, [names.index(g) for g in used]]
    n, p = len(y), len(used) + 1
    need = p + 2
    if n < need:
        raise DataError(
            f"{source}: {n} timing row(s) but the memory-traffic model has {p} coefficients (intercept + "
            f"{', '.join(used)}); measure at least {need} configurations that differ in width, depth, batch "
            "and sequence length"
        )
    scaled = X / np.abs(X).max(axis=0)
    rank = np.linalg.matrix_rank(np.column_stack([np.ones(n), scaled]) / y[:, None], tol=1e-8)
    warnings_out = []
    if rank < p:
        warnings_out.append(
            f"{source}: the features {', '.join(used)} are linearly dependent across these rows, so some "
            "coefficients are not identified; vary width, depth, batch, sequence length and vocab independently"
        )
    folds = int(max(2, min(folds, n)))
    b0, beta, fit_in, fit_cv = _fit_and_score(X, y, folds, seed)
    f0, fbeta, flop_in, flop_cv = _fit_and_score(G[:, [names.index("flops")]], y, folds, seed)
    # Terms the timings cannot see (the all-reduce in single-device timings) keep the roofline prior, so a
    # model calibrated on one GPU still charges for communication when it is used for 256.
    prior = CostModel.roofline(hardware).coef
    coef = {g: float(prior[g]) for g in names}
    coef.update({g: float(v) for g, v in zip(used, beta)})
    diagnostics = {
        "source": source,
        "rows": n,
        "folds": folds,
        "identified": used,
        "not_identified": [g for g in names if g not in used],  # these keep the roofline prior
        "memory_model": {"in_sample": fit_in, "cross_validated": fit_cv},
        "flop_only_model": {"intercept_s": f0, "coef": {"flops": float(fbeta[0])}, "in_sample": flop_in,
                            "cross_validated": flop_cv},
        "effective": _effective(coef, hardware),
        "warnings": warnings_out,
    }
    label = (f"calibrated on {n} timings from {Path(source).name} ({hardware.name}); held-out error "
             f"{fit_cv['mape']:.1%} vs {flop_cv['mape']:.1%} FLOP-only")
    return CostModel(coef, b0, hardware, calibrated=True, label=label, diagnostics=diagnostics)


def _effective(coef: Mapping[str, float], hardware: Hardware) -> dict[str, float | None]:
    """Coefficients as readable rates: achieved TFLOP/s and GB/s, and their fraction of the table's peak."""
    def inv(x):
        return 1.0 / x if x > 0 else None

    tf = inv(coef.get("flops", 0.0))
    out = {"tflops": tf / 1e12 if tf else None,
           "compute_fraction_of_peak": tf / hardware.peak_flops if tf and hardware.peak_flops else None}
    for g in ("act_bytes", "param_bytes", "logit_bytes"):
        bw = inv(coef.get(g, 0.0))
        out[f"{g}_gbps"] = bw / 1e9 if bw else None
    return out


def simulate_timings(
    coef: Mapping[str, float],
    intercept: float,
    hardware: Hardware,
    *,
    n: int = 80,
    noise: float = 0.02,
    seed: int = 0,
    fused_attention: bool = True,
):
    """Synthetic step timings from known coefficients, with multiplicative log-normal noise ``noise``.

    Shapes are drawn across log-spaced widths 64-4096, depths 2-32, batches 1-64 sequences, sequence lengths
    128-4096 and three vocabularies, on one device: a design in which the groups vary independently
    enough to be recovered. Returns a DataFrame in the timings format.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    # Log-spaced widths, many of them narrow: activation traffic relative to FLOPs falls as 1/d_model,
    # so narrow and short-sequence rows are what identify its coefficient.
    d = rng.choice(np.array([64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096]), n)
    frame = pd.DataFrame({
        "d_model": d,
        "layers": rng.integers(2, 33, n),
        "heads": d // 64,
        "d_ff": 4 * d,
        "vocab": rng.choice([4096, 32_000, 128_000], n),
        "seq_len": rng.choice([128, 256, 512, 1024, 2048, 4096], n),
        "batch": rng.choice([1, 4, 16, 64], n),
        "fused_attention": fused_attention,
    })
    frame["micro_batch"] = frame["batch"]
    feats, _ = timings_features(frame.assign(step_time_s=1.0), hardware, "<simulated>")
    model = CostModel({g: float(coef.get(g, 0.0)) for g in GROUPS}, intercept, hardware)
    truth = model.step_time(feats)
    frame["step_time_s"] = truth * np.exp(noise * rng.standard_normal(n))
    return frame


# =====================================================================================  loss at a budget
def _law_design(law, params, tokens):
    from .law import Columns

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
    from .stats import check_contains, percentile_interval

    design = _law_design(law, params, tokens)
    value = law.predict(np.atleast_2d(np.asarray(theta, dtype=float)), design)[0]
    out: dict[str, Any] = {"value": value, "low": None, "high": None, "level": level}
    if draws is not None and len(draws):
        with np.errstate(all="ignore"):
            preds = law.predict(np.asarray(draws, dtype=float), design)
        out["low"], out["high"] = percentile_interval(preds, level, value, stretch)
        check_contains(value, out["low"], out["high"], f"law '{law.name}': the predicted loss")
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
        raise DataError(f"--hours {hours}: a time budget must be a positive number")
    check_range("hours", hours)
    check_gpus(gpus)
    check_seq_len(seq_len)
    check_range("vocab", vocab)
    if not (math.isfinite(flop_mfu) and 0 < flop_mfu <= 1):
        raise DataError(f"--flop-mfu {flop_mfu}: must be a fraction in (0, 1], e.g. 0.4")
    time_model = time_model or CostModel.roofline(hardware)
    if batch is None:
        batch = default_batch(seq_len, gpus)
    check_range("batch", batch)
    if batch < gpus:
        raise DataError(f"--batch {batch} sequences over --gpus {gpus}: need at least one sequence per device")
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
    t_step = _step_time(time_model, feats, gpus)
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
