"""Model shapes: :class:`Shape`, parameter counts, and a size such as 7B expanded to a conventional shape.

A decoder-only transformer is described by its hyperparameters and how it is trained (batch, micro-batch,
bytes per weight, activation, gradient and optimizer-state element). :func:`param_counts` gives the three
counts the accounting of :mod:`scalefit.cost.step` uses (P_layers, P_total, P_matmul; notation there):
attention and MLP weights per layer, plus the embeddings, plus only the unembedding for the matmul count.
A bare size is expanded by rule (:func:`conventional_shape`: head dim 128, d_ff = 4 d_model, d_model /
layers = 128 as in GPT-3 and LLaMA). Chinchilla's own accounting (Hoffmann et al. 2022, Appendix F) is
here too, to check the 6ND convention against its Table A4.

Left out: biases and norms, grouped-query or multi-query attention (K and V are full width),
mixture-of-experts and any architecture other than a dense decoder-only transformer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import DataError, option_error
from .ranges import check_gpus, check_range, check_seq_len

CONVENTIONAL_ASPECT = 128.0  # d_model / layers of GPT-3 (12288/96) and LLaMA-7B (4096/32)
HEAD_DIM = 128
DEFAULT_VOCAB = 32_000
DEFAULT_SEQ_LEN = 2048
DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024  # ~4M tokens per optimizer step (LLaMA)


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
                raise option_error(name, value, "must be a positive whole number")
            check_range(name, value)
        if self.d_model % self.heads:
            raise DataError(
                f"d_model={self.d_model} is not divisible by heads={self.heads}; "
                f"pick heads that divide d_model (e.g. {max(1, self.d_model // HEAD_DIM)})", options=("d_model", "heads")
            )
        for name in ("weight_bytes", "act_bytes", "grad_bytes", "optimizer_bytes"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name != "optimizer_bytes" and value == 0):
                raise option_error(name, value, "must be a positive number of bytes")
        check_gpus(gpus)
        if self.batch < gpus:
            raise DataError(
                f"batch={self.batch} sequences over gpus={int(gpus)}: every device needs at least one "
                f"sequence per step; use batch={int(gpus)} or more, or fewer devices",
                options=("batch", "gpus")
            )
        if self.micro_batch is not None and not (isinstance(self.micro_batch, (int, np.integer)) and self.micro_batch >= 1):
            raise option_error("micro_batch", self.micro_batch, "must be a positive whole number")
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


def default_batch(seq_len: int, gpus: int) -> int:
    """~4M tokens per step (LLaMA's batch), at least one sequence per device, a multiple of ``gpus``."""
    check_gpus(gpus)
    check_seq_len(seq_len)
    seqs = max(1, round(DEFAULT_BATCH_TOKENS / seq_len))
    return int(max(gpus, math.ceil(seqs / gpus) * gpus))



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
