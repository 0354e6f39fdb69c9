"""hp.json: a fitted (or imported, or published) Step Law of optimal hyperparameters, on disk.

Its own small format, not a law fit.json: ``schema`` is ``scalefit.hparams/1`` and ``kind`` is
``hparams``, so neither file can be taken for the other (``scalefit check`` and ``predict`` on a law fit read
the schema and refuse this one; :func:`load_hparams` refuses a law fit). Written atomically through
:mod:`scalefit._io`; every field is validated on load; a checksum tells a hand-edited file (a warning, as
for fit.json).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from .._io import atomic_write, json_safe, read_json
from ..errors import DataError, option_error
from ..fitfile import payload_digest
from .model import NAMES, HparamsFit
from .optimum import CellOptimum
from .table import check_seq_len

SCHEMA = "scalefit.hparams/1"
KIND = "hparams"
FORMULA = {"lr": "lr_opt = exp(lr_intercept) * N^lr_coefN * D^lr_coefD",
           "batch": "B_opt (tokens) = exp(bs_intercept) * D^bs_coefD"}
# The authors' mean model: the means of their 1,000 bootstrap fits (data/1004_fitted_... in step-law/steplaw),
# i.e. lr_opt = 1.79 N^-0.713 D^0.307 and B_opt = 0.58 D^0.571 tokens, as the paper's headline. Full
# precision: six decimals of an exponent move a 7B / 1.4T forecast by 1e-5.
PUBLISHED = {
    "steplaw": {"theta": (0.5863077907399268, -0.7129222911869904, 0.30749095041206964, -0.5435421736103339,
                          0.5709443646895045), "seq_len": 2048.0,
                "source": "Step Law published values (Li et al. 2025, arXiv:2503.04715: means of the authors' "
                          "1,000 bootstrap fits)"},
}


def _digest(payload: dict) -> str:
    return payload_digest({k: v for k, v in payload.items() if k != "checksum"})


def to_payload(fit: HparamsFit) -> dict:
    from .. import __version__

    intervals = fit.intervals()
    payload = {
        "schema": SCHEMA, "kind": KIND, "scalefit_version": __version__, "formula": FORMULA,
        "params": fit.params, "intervals": {k: list(v) for k, v in intervals.items()} if intervals else None,
        "estimate": fit.estimate, "ci": fit.ci, "seq_len": fit.seq_len, "source": fit.source,
        "settings": fit.settings, "data": fit.data, "diagnostics": fit.diagnostics, "comparison": fit.comparison,
        "cells": [c.to_dict() for c in fit.cells],
        "draws": {"names": list(NAMES), "values": fit.draws.tolist()} if fit.draws is not None else None,
    }
    payload = json_safe(payload)
    payload["checksum"] = _digest(payload)
    return payload


def save_hparams(fit: HparamsFit, path: str | Path, *, force: bool = False) -> Path:
    """Write ``fit`` to ``path`` (hp.json) atomically; an existing file only with ``force``."""
    return atomic_write(path, json.dumps(to_payload(fit), indent=1) + "\n", force=force)


def is_hparams_file(path: str | Path) -> bool:
    """Whether ``path`` is an hp.json (False for anything else, unreadable files included: the reader the
    caller uses next reports those)."""
    try:
        payload = read_json(path, "fit file")
    except DataError:
        return False
    return isinstance(payload, dict) and (payload.get("kind") == KIND or str(payload.get("schema", "")).startswith(
        "scalefit.hparams"))


class _Check:
    """Field checks for one file: each failure is one DataError naming the file and the field."""

    def __init__(self, path):
        self.path = path

    def fail(self, field: str, rule: str):
        raise DataError(f"{self.path}: field {field} {rule}; not a valid hparams file (refit or re-import it)")

    def number(self, value, field: str, positive: bool = False) -> float:
        try:  # an integer too large for a float (JSON allows 10**400) is as bad as inf
            finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite or (positive and value <= 0):
            self.fail(field, f"must be a {'positive ' if positive else ''}finite number (got {str(value)[:40]!r})")
        return float(value)

    def pair(self, value, field: str) -> tuple[float, float]:
        if not isinstance(value, list) or len(value) != 2:
            self.fail(field, "must be a list of two numbers")
        lo, hi = (self.number(v, field, positive=True) for v in value)
        if lo > hi:
            self.fail(field, f"must be [low, high] (got [{lo:g}, {hi:g}])")
        return lo, hi

    def mapping(self, value, field: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(field, "must be an object")
        return value


_CELL_NUMBERS = ("params", "tokens", "lr", "batch_tokens", "best_loss", "grid_lr", "grid_batch_tokens")


def _cell(check: _Check, raw, i: int) -> CellOptimum:
    raw = check.mapping(raw, f"cells[{i}]")
    values = {k: check.number(raw.get(k), f"cells[{i}].{k}", positive=True) for k in _CELL_NUMBERS}
    counts = {k: int(check.number(raw.get(k), f"cells[{i}].{k}", positive=k == "n_runs"))
              for k in ("n_runs", "n_flat", "n_fit")}
    text = {k: raw.get(k) if isinstance(raw.get(k), str) else check.fail(f"cells[{i}].{k}", "must be text")
            for k in ("method", "note")}
    return CellOptimum(**values, **counts, **text, flat_lr=check.pair(raw.get("flat_lr"), f"cells[{i}].flat_lr"),
                       flat_batch_tokens=check.pair(raw.get("flat_batch_tokens"), f"cells[{i}].flat_batch_tokens"))


def load_hparams(path: str | Path) -> HparamsFit:
    """Read and validate an hp.json written by :func:`save_hparams`."""
    payload = read_json(path, "hparams file")
    check = _Check(path)
    if not isinstance(payload, dict) or payload.get("kind") != KIND or payload.get("schema") != SCHEMA:
        found = payload.get("schema") if isinstance(payload, dict) else None
        hint = " (a law fit: use it with predict or check)" if str(found).startswith("scalefit.fit") else ""
        raise DataError(f"{path}: not a scalefit hparams file (schema {str(found)[:40]!r}, expected {SCHEMA!r}){hint}")
    if payload.get("checksum") != _digest(payload):
        warnings.warn(f"{path}: contents changed after scalefit wrote it (checksum mismatch); numbers may have "
                      f"been edited by hand", stacklevel=2)
    params = check.mapping(payload.get("params"), "params")
    theta = np.array([check.number(params.get(n), f"params.{n}") for n in NAMES])
    ci = check.number(payload.get("ci"), "ci")
    if not 0 < ci < 1:
        check.fail("ci", "must lie strictly between 0 and 1")
    seq_len = payload.get("seq_len")
    seq_len = None if seq_len is None else check.number(seq_len, "seq_len", positive=True)
    draws = None
    raw = payload.get("draws")
    if raw is not None:
        raw = check.mapping(raw, "draws")
        if raw.get("names") != list(NAMES):
            check.fail("draws.names", f"must be {list(NAMES)}")
        values = raw.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(r, list) and len(r) == 5 for r in values):
            check.fail("draws.values", "must be a non-empty list of rows of 5 numbers")
        try:
            draws = np.array(values, dtype=float)
        except (TypeError, ValueError):
            check.fail("draws.values", "must hold numbers only")
        if not np.all(np.isfinite(draws)):
            check.fail("draws.values", "must hold finite numbers only")
    cells_raw = payload.get("cells") or []
    if not isinstance(cells_raw, list):
        check.fail("cells", "must be a list")
    cells = [_cell(check, c, i) for i, c in enumerate(cells_raw)]
    data = check.mapping(payload.get("data"), "data")
    ranges = check.mapping(data.get("ranges"), "data.ranges")
    for name in ("params", "tokens"):
        if name in ranges:
            ranges[name] = list(check.pair(ranges[name], f"data.ranges.{name}"))
    settings = check.mapping(payload.get("settings"), "settings")
    if "flat" in settings:
        check.number(settings["flat"], "settings.flat", positive=True)
    text = {k: str(payload.get(k) or "") for k in ("estimate", "source")}
    return HparamsFit(theta, draws, ci, text["estimate"] or "full-data fit", text["source"] or str(path), seq_len,
                      settings, data, cells, check.mapping(payload.get("diagnostics"), "diagnostics"),
                      check.mapping(payload.get("comparison"), "comparison"))


def import_draws(path: str | Path, *, seq_len: float | None = None, ci: float = 0.95) -> HparamsFit:
    """An hp.json-ready fit from the Step Law authors' bootstrap table (columns ``lr_intercept``,
    ``lr_coefN``, ``lr_coefD``, ``bs_intercept``, ``bs_coefD``; one row per bootstrap fit). The estimate is
    the draws' mean, as their tool (``fit_tool.py pred-opt-lr-bs``) reports it (its "mean model")."""
    from ..tables import read_table, show_names

    if not (isinstance(ci, (int, float)) and 0 < ci < 1):
        raise option_error("ci", ci, "the interval level must lie strictly between 0 and 1, e.g. 0.95")
    seq_len = check_seq_len(seq_len)
    frame = read_table(path)
    missing = [n for n in NAMES if n not in frame.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found; a table of bootstrap fits needs "
                        f"{', '.join(NAMES)}; columns are: {show_names(frame.columns)}")
    if "bs_coefN" in frame.columns:
        raise DataError(f"{path}: column 'bs_coefN': a batch law with an N term is not the Step Law form "
                        f"(B_opt = c D^gamma); drop the column if it is all zeros")
    import pandas as pd

    draws = frame[list(NAMES)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.all(np.isfinite(draws), axis=1)
    if np.any(bad):
        row = int(np.argmax(bad))
        raise DataError(f"{path}: row {row + 1} holds a missing, non-numeric or non-finite value in {', '.join(NAMES)}")
    return HparamsFit(draws.mean(axis=0), draws, ci, "mean of bootstrap draws (the authors' mean model)", str(path),
                      float(seq_len) if seq_len else None, {"imported": True}, {"source": str(path)})


def published(name: str = "steplaw", *, seq_len: float | None = None) -> HparamsFit:
    """The published law ``name`` (no draws, so no intervals)."""
    if name not in PUBLISHED:
        raise option_error("reference", name, f"unknown published law; known: {', '.join(PUBLISHED)}")
    seq_len = check_seq_len(seq_len)
    ref = PUBLISHED[name]
    return HparamsFit(np.array(ref["theta"], dtype=float), None, 0.95, "published", ref["source"],
                      seq_len or ref["seq_len"])
