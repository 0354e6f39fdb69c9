"""Which logged key is the loss, the LR, the tokens, the step; and what a run's config says about it.

Training code names its scalars in many ways (``train/loss``, ``lm loss``, ``loss_metrics/global_avg_loss``,
``optim/learning_rate_group0``, ``learning rate``). Keys are compared after :func:`normalise` (lower case,
spaces, ``_`` and ``-`` removed), and each role has an ordered list of aliases: the first one a run logs is
taken, and the importer says which. Training losses come before validation losses (they are logged at
every step; the curve laws were fitted on them), and a key naming bits (``bpb``, ``bpc``, ``bits``) marks
the loss unit as bits.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from ..errors import DataError
from ..tables import normalise_name as normalise  # the same rule as table columns; callers use keys.normalise
from ..units import parse_count

# Ordered by preference within each role.
LOSS_ALIASES = (
    # training losses
    "train/loss", "train/CE loss", "train/CrossEntropyLoss", "train/lm loss", "train/ce_loss",
    "loss_metrics/global_avg_loss", "lm loss", "Metrics/loss", "train_loss", "training_loss", "train/loss_avg",
    "trainer/loss", "loss", "CrossEntropyLoss", "ce_loss",
    # validation losses
    "val/loss", "validation/loss", "eval/loss", "valid/loss", "val_loss", "eval_loss", "validation_loss",
    "lm loss value", "validation loss", "final-val/loss", "final_val/loss", "final/val_loss",
    # losses in bits
    "train/bpb", "val/bpb", "eval/bpb", "bpb", "bits_per_byte", "bpc", "bits_per_char", "loss_bits",
)
LR_ALIASES = (
    "optim/learning_rate_group0", "optim/lr", "train/learning_rate", "train/lr", "trainer/lr", "learning_rate",
    "learning-rate", "learning rate", "lr", "lr-AdamW", "lr-Adam", "lr_group0", "optimizer/lr", "lr/group0",
)
TOKENS_ALIASES = (
    "throughput/total_tokens", "train/tokens", "trainer/tokens", "tokens", "total_tokens", "consumed_tokens",
    "consumed tokens", "tokens_seen", "num_tokens", "n_tokens", "train/tokens_seen",
)
FLOPS_ALIASES = ("throughput/total_flops", "train/flops", "total_flops", "flops", "cumulative_flops")
# Training-step keys, preferred over W&B's ``_step`` (a counter of log calls, not of optimiser steps).
STEP_ALIASES = (
    "trainer/global_step", "train/global_step", "global_step", "train/step", "trainer/step", "iter", "iteration",
    "train/iter", "step", "Step", "_step",
)
ROW_COUNTER = "_step"

ALIASES = {"loss": LOSS_ALIASES, "lr": LR_ALIASES, "tokens": TOKENS_ALIASES, "flops": FLOPS_ALIASES}
_BITS = re.compile(r"bpb|bpc|bits?(per|_|/|$)|bitsperbyte|bitsperchar")
_VALIDATION = re.compile(r"^(val|valid|validation|eval|final)|lmlossvalue|validationloss")


def loss_unit_of(key: str) -> str | None:
    """'bits' when the key says so (``bpb``, ``bits_per_byte``); None when it does not say."""
    return "bits" if _BITS.search(normalise(key)) else None


def is_validation(key: str) -> bool:
    return bool(_VALIDATION.search(normalise(key)))


def find_key(role: str, keys: Iterable[str]) -> tuple[str | None, list[str]]:
    """The preferred key for ``role`` among ``keys`` and every other key that could also be it."""
    by_norm: dict[str, str] = {}
    for key in keys:
        by_norm.setdefault(normalise(key), key)
    found = [by_norm[n] for n in dict.fromkeys(normalise(a) for a in ALIASES[role]) if n in by_norm]
    return (found[0] if found else None), found[1:]


def step_keys(keys: Iterable[str]) -> list[str]:
    """Keys that could be the step, best first (the row counter ``_step`` last)."""
    by_norm: dict[str, str] = {}
    for key in keys:
        by_norm.setdefault(key if key == ROW_COUNTER else normalise(key), key)
    order = [ROW_COUNTER if a == ROW_COUNTER else normalise(a) for a in STEP_ALIASES]
    return [by_norm[n] for n in dict.fromkeys(order) if n in by_norm]


# ------------------------------------------------------------------------------ run metadata
_PARAMS_KEYS = ("n_params", "num_params", "nparams", "num_parameters", "model/num_params", "model/n_params",
                "params", "parameters", "model_params", "total_params", "param_count", "model/params")
_SEQ_KEYS = ("seq_length", "seq_len", "max_seq_len", "sequence_length", "context_length", "block_size",
             "max_seq_length", "n_ctx", "data/seq_len", "model/seq_len", "encoder_seq_length")
_BATCH_TOKENS_KEYS = ("tokens_per_batch", "batch_size_tokens", "global_batch_tokens", "batch_tokens",
                      "train_batch_tokens", "tokens_per_step")
_BATCH_KEYS = ("global_batch_size", "global batch size", "train_batch_size", "batch_size", "gbs",
               "total_batch_size")


def flatten(config: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested config dicts as one level with ``/``-joined keys; W&B's ``{"value": x}`` wrappers unwrapped."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if set(value) <= {"value", "desc"} and "value" in value:
                out[name] = value["value"]
            else:
                out.update(flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = parse_count(value, what="")
    except (DataError, TypeError, ValueError):  # text that is not a number, a list: not this field
        return None
    return number if number > 0 else None


def _lookup(flat: Mapping[str, object], names: tuple[str, ...]) -> float | None:
    """First positive number under one of ``names``, matched whole or as the last part of a nested key."""
    by_norm: dict[str, object] = {}
    for key, value in flat.items():
        by_norm.setdefault(normalise(key), value)
        by_norm.setdefault(normalise(re.split(r"[/.]", str(key))[-1]), value)  # model/n_params, model.n_params
    for name in names:
        number = _number(by_norm.get(normalise(name)))
        if number is not None:
            return number
    return None


def run_metadata(*configs: Mapping) -> dict[str, float]:
    """``params``, ``seq_len`` and ``batch_tokens`` (batch size in tokens) from a run's config/summary/params,
    where they are given; the batch in tokens is the batch in sequences times the sequence length when only
    those are given."""
    flat: dict[str, object] = {}
    for config in configs:
        for key, value in flatten(config or {}).items():
            flat.setdefault(key, value)
    out: dict[str, float] = {}
    params = _lookup(flat, _PARAMS_KEYS)
    if params is not None:
        out["params"] = params
    seq = _lookup(flat, _SEQ_KEYS)
    if seq is not None:
        out["seq_len"] = seq
    tokens = _lookup(flat, _BATCH_TOKENS_KEYS)
    batch = _lookup(flat, _BATCH_KEYS)
    if tokens is None and batch is not None and seq is not None:
        tokens = batch * seq
    if tokens is not None:
        out["batch_tokens"] = tokens
    return out
