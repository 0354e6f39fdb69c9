"""The ``fit.json`` format: writing it, and reading it back as untrusted input.

A fit.json may come from anywhere (a colleague, a CI artefact, a pull request), so reading one never runs
code and never reaches outside its folder:

* the law is named, never located: the name must be an identifier known to the registry;
* every field is type- and range-checked (finite numbers, parameters inside the law's bounds, intervals
  that contain their estimate) and a bad one is a one-line error naming the field;
* large bootstrap draws live beside it in ``<stem>.<sha256[:12]>.draws.parquet``: a plain regular file in
  the same folder (no path, no symlink), whose columns, shape and content hash must match the record.

The checksum is an integrity check -- it catches hand edits and damaged copies, not a determined forger
(anyone can recompute it). It covers what a fit *says* (law, data, settings, parameters, draws), not when
or how fast it ran, so two identical fits get the same checksum whatever ``--jobs`` or backend they used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write, check_input_file, json_safe, read_json, refuse_overwrite, write_table
from .errors import DataError
from .parameterization import parse_tie


def _tie_source(text: str) -> str | None:
    """The parameter a stored tie (``alpha`` or ``2*alpha``) refers to; None when it is not a tie."""
    try:
        return parse_tie("tie", text)[0]
    except DataError:
        return None

SCHEMA = "scalefit.fit/1"
INLINE_DRAWS = 200_000  # values; larger draw sets go to a parquet file beside fit.json
_DRAWS_NAME = re.compile(r"^[^/\\\x00]+\.([0-9a-f]{12})\.draws\.parquet$")
_VOLATILE_SETTINGS = ("jobs", "backend")  # how the work was spread, not what it found


# ---------------------------------------------------------------------- checksum
def checksum(payload: dict) -> str:
    """Hash of what the fit says: everything but the checksum, creation time, timings and parallelism."""
    body = {k: v for k, v in payload.items() if k not in ("checksum", "created", "timings")}
    if isinstance(body.get("settings"), dict):
        body["settings"] = {k: v for k, v in body["settings"].items() if k not in _VOLATILE_SETTINGS}
    return payload_digest(body)


def payload_digest(body: dict) -> str:
    """16 hex digits of the SHA-256 of ``body`` as sorted-key JSON (shared with hp.json's checksum)."""
    return hashlib.sha256(json.dumps(json_safe(body), sort_keys=True).encode()).hexdigest()[:16]


def checksum_status(payload: dict) -> str:
    """``ok``, ``missing`` or ``mismatch`` (files written before 0.1 hashed every field: still accepted)."""
    recorded = payload.get("checksum")
    if not recorded:
        return "missing"
    legacy = payload_digest({k: v for k, v in payload.items() if k != "checksum"})
    return "ok" if recorded in (checksum(payload), legacy) else "mismatch"


def draws_digest(draws: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(draws, dtype=float).tobytes()).hexdigest()[:12]


# ---------------------------------------------------------------------- writing
def write(path: str | Path, payload: dict, draws: np.ndarray | None, names: list[str], *, force: bool) -> Path:
    """Write ``payload`` (plus draws) as fit.json atomically; large draws go to a content-named file.

    A draws file is never deleted or rewritten: it is named by its contents, so a kept baseline, a backup
    copy or another fit.json that points at one keeps loading.
    """
    path = Path(path)
    if path.name.endswith(".draws.parquet"):
        raise DataError(f"{path}: that name is reserved for bootstrap draws files; name the fit .json")
    refuse_overwrite(path, force)  # before a draws file is written beside a fit.json that will be refused
    payload = dict(payload)
    draws_path = None
    if draws is not None:
        if draws.size <= INLINE_DRAWS:
            payload["draws"] = draws.tolist()
        else:
            digest = draws_digest(draws)
            draws_path = path.with_name(f"{path.stem}.{digest}.draws.parquet")
            payload["draws"] = {"file": draws_path.name, "shape": list(draws.shape), "sha256": digest}
    payload["checksum"] = checksum(payload)
    text = json.dumps(json_safe(payload), indent=1, allow_nan=False)
    if draws_path is not None and not _same_draws(draws_path, digest):
        import pandas as pd

        write_table(pd.DataFrame(draws, columns=names), draws_path, force=True)
    return atomic_write(path, text, force=force)


def _same_draws(path: Path, digest: str) -> bool:
    """An identical draws file is already there (a refit with the same seed): leave it as it is."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode) and draws_digest(_read_draws_file(path, None)) == digest
    except (OSError, DataError, ValueError, KeyError):
        return False


# ---------------------------------------------------------------------- reading
def read_payload(path: str | Path) -> dict:
    """The JSON object of a fit file (size-limited, regular file), with its schema checked."""
    check_input_file(path, "fit file", "fit_json_bytes")
    payload = read_json(path, "fit.json")
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        found = payload.get("schema") if isinstance(payload, dict) else None
        raise DataError(f"{path}: not a scalefit fit file (schema {str(found)[:40]!r}, expected {SCHEMA!r})")
    return payload


def law_name(path, payload: dict) -> str:
    """The recorded law name: an identifier looked up in the registry, never a path."""
    law = payload.get("law")
    name = law.get("name") if isinstance(law, dict) else None
    if not isinstance(name, str) or not name.isidentifier():
        raise DataError(f"{path}: field law.name must be a law name (an identifier); got {str(name)[:60]!r}")
    return name


def law_options(path, payload: dict) -> dict:
    options = payload["law"].get("options") or {}
    if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in options.items()):
        raise DataError(f"{path}: field law.options must map option names to plain values")
    return options


class _Fields:
    """Typed access to a payload; every failure names the field."""

    def __init__(self, path, payload: dict):
        self.path, self.payload = path, payload

    def fail(self, field: str, expected: str, got: Any) -> DataError:
        shown = json.dumps(json_safe(got))[:60] if _jsonable(got) else type(got).__name__
        return DataError(f"{self.path}: malformed fit file: field {field} must be {expected}; got {shown}")

    def number(self, value: Any, field: str, *, lo: float = -math.inf, hi: float = math.inf,
               optional: bool = False) -> float | None:
        if value is None and optional:
            return None
        try:  # a 400-digit integer is valid JSON but no float
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
                  and lo <= float(value) <= hi)
        except OverflowError:
            ok = False
        if not ok:
            what = "a finite number" + (f" in [{lo:g}, {hi:g}]" if math.isfinite(lo) or math.isfinite(hi) else "")
            raise self.fail(field, what + (" or null" if optional else ""), value)
        return float(value)

    def integer(self, value: Any, field: str, *, lo: int = 0) -> int:
        if not (isinstance(value, int) and not isinstance(value, bool) and lo <= value < 2**53):
            raise self.fail(field, f"an integer >= {lo}", value)
        return value

    def mapping(self, key: str, *, optional: bool = True) -> dict:
        value = self.payload.get(key, {} if optional else None)
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "an object", value)
        return value


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def _within(value: float, bounds: tuple[float, float]) -> bool:
    lo, hi = bounds
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    return lo - tol <= value <= hi + tol


def parse(path: str | Path, payload: dict, law) -> dict:
    """Validate every field the library uses; return clean values for :class:`scalefit.result.FitResult`."""
    path = Path(path)
    f = _Fields(path, payload)
    names = payload.get("param_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise f.fail("param_names", "a list of parameter names", names)
    if names != law.param_names:
        raise DataError(f"{path}: parameters {[n[:20] for n in names[:12]]} do not match law '{law.name}' "
                        f"({law.param_names}); the law changed since this fit was written: refit")
    p = len(names)
    raw_theta = payload.get("theta")
    if not isinstance(raw_theta, list) or len(raw_theta) != p:
        raise f.fail("theta", f"a list of {p} numbers", raw_theta)
    theta = np.array([f.number(v, f"theta[{i}]") for i, v in enumerate(raw_theta)])
    for name, value in zip(names, theta):
        if not _within(value, law.params[name].bounds):
            lo, hi = law.params[name].bounds
            raise DataError(f"{path}: parameter {name} = {value:g} is outside the law's bounds [{lo:g}, {hi:g}]")

    raw_params = f.mapping("params", optional=False)
    params = {}
    for name in names:
        e = raw_params.get(name)
        where = f"params.{name}"
        if not isinstance(e, dict) or set(e) - {"value", "stderr", "low", "high", "at_bound", "status"}:
            raise f.fail(where, "an object with value, stderr, low, high, at_bound, status", e)
        value = f.number(e.get("value"), f"{where}.value")
        low = f.number(e.get("low"), f"{where}.low", optional=True)
        high = f.number(e.get("high"), f"{where}.high", optional=True)
        if low is not None and high is not None and low > high:  # (an estimate may sit outside: at a bound)
            raise DataError(f"{path}: field {where}: low > high ([{low:g}, {high:g}])")
        status = e.get("status", "free")
        if not (isinstance(status, str) and (status in ("free", "fixed", "translated") or
                                             (status.startswith("tied:") and _tie_source(status[5:]) in names))):
            raise f.fail(f"{where}.status", "free, fixed, translated or tied:<parameter>", status)
        if not isinstance(e.get("at_bound", False), bool):
            raise f.fail(f"{where}.at_bound", "true or false", e.get("at_bound"))
        params[name] = {"value": value, "stderr": f.number(e.get("stderr"), f"{where}.stderr", lo=0, optional=True),
                        "low": low, "high": high, "at_bound": e.get("at_bound", False), "status": status}

    settings = f.mapping("settings")
    f.number(settings.get("ci", 0.95), "settings.ci", lo=1e-6, hi=1 - 1e-9)
    f.number(settings.get("stretch"), "settings.stretch", lo=1.0, hi=1e3, optional=True)
    diagnostics = f.mapping("diagnostics")
    f.number(diagnostics.get("residual_scale_log"), "diagnostics.residual_scale_log", lo=0.0, hi=10.0, optional=True)
    offsets = diagnostics.get("run_offsets_log")
    if offsets is not None:
        if not isinstance(offsets, list) or len(offsets) > 100_000:
            raise f.fail("diagnostics.run_offsets_log", "a list of numbers, one per run", offsets)
        for i, v in enumerate(offsets):
            f.number(v, f"diagnostics.run_offsets_log[{i}]", lo=-10.0, hi=10.0, optional=True)
    weak = diagnostics.get("undetermined")
    if weak is not None and not (isinstance(weak, list) and all(isinstance(n, str) and n in law.param_names
                                                                  for n in weak)):
        raise f.fail("diagnostics.undetermined", "a list of the law's parameter names", weak)
    calibration = diagnostics.get("extrapolation_errors")
    if calibration is not None:
        if not isinstance(calibration, dict):
            raise f.fail("diagnostics.extrapolation_errors", "an object", calibration)
        for key in ("shape", "horizon"):
            pairs = calibration.get(key) or []
            if not isinstance(pairs, list) or len(pairs) > 10_000 or not all(
                    isinstance(p, list) and len(p) == 2 for p in pairs):
                raise f.fail(f"diagnostics.extrapolation_errors.{key}", "a list of [log error, ratio] pairs", pairs)
            for i, (e, r) in enumerate(pairs):
                f.number(e, f"diagnostics.extrapolation_errors.{key}[{i}][0]", lo=-10.0, hi=10.0)
                f.number(r, f"diagnostics.extrapolation_errors.{key}[{i}][1]", lo=0.0, hi=1e9)
        notes = calibration.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise f.fail("diagnostics.extrapolation_errors.notes", "a list of strings", notes)
    _check_diagnostics_extras(f, diagnostics, settings, law)
    warns = diagnostics.get("warnings", [])
    if not isinstance(warns, list) or not all(isinstance(w, str) for w in warns):
        raise f.fail("diagnostics.warnings", "a list of strings", warns)
    if not isinstance(diagnostics.get("success", True), bool):
        raise f.fail("diagnostics.success", "true or false", diagnostics.get("success"))
    for key, kind in (("fixed", "number"), ("ties", "name")):
        values = settings.get(key) or {}
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise f.fail(f"settings.{key}", "an object of parameter names", values)
        for k, v in values.items():
            if kind == "number":
                f.number(v, f"settings.{key}.{k}")
            elif not isinstance(v, str):
                raise f.fail(f"settings.{key}.{k}", "a parameter name", v)
    f.number(settings.get("delta"), "settings.delta", lo=0.0, optional=True)
    f.number(settings.get("distinct_resamples"), "settings.distinct_resamples", lo=0, optional=True)
    for key in ("loss", "interval", "bootstrap_method"):
        if not isinstance(settings.get(key, ""), (str, type(None))):
            raise f.fail(f"settings.{key}", "a string", settings.get(key))
    data_info = f.mapping("data")
    columns = data_info.get("columns") or {}
    if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise f.fail("data.columns", "an object of role -> column names", columns)
    ranges = data_info.get("ranges") or {}
    if not isinstance(ranges, dict):
        raise f.fail("data.ranges", "an object of role -> [low, high]", ranges)
    for role, span in ranges.items():
        if not (isinstance(span, list) and len(span) == 2):
            raise f.fail(f"data.ranges.{role}", "[low, high]", span)
        for i, v in enumerate(span):
            f.number(v, f"data.ranges.{role}[{i}]", optional=True)
    units = f.mapping("units")
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in units.items()):
        raise f.fail("units", "an object of strings", units)
    n_runs = f.integer(payload.get("n_runs"), "n_runs", lo=1)
    n_points = f.integer(payload.get("n_points", n_runs), "n_points", lo=1)
    objective = f.number(payload.get("objective"), "objective", lo=0.0)
    return {
        "names": names, "theta": theta, "params": params, "objective": objective, "n_runs": n_runs,
        "n_points": n_points, "diagnostics": diagnostics, "settings": settings, "units": units,
        "data_info": data_info, "timings": f.mapping("timings"),
        "draws": _draws(f, payload.get("draws"), names, law),
    }


def _check_diagnostics_extras(f: _Fields, diagnostics: dict, settings: dict, law) -> None:
    """Correlations, allocation exponents, profile intervals and narrowed bounds (all optional: files
    written before they existed load as they are)."""
    names = law.param_names

    def names_list(value, field):
        if not (isinstance(value, list) and all(isinstance(n, str) and n in names for n in value)):
            raise f.fail(field, "a list of the law's parameter names", value)
        return value

    corr = diagnostics.get("correlations")
    if corr is not None:
        if not isinstance(corr, dict):
            raise f.fail("diagnostics.correlations", "an object", corr)
        free = names_list(corr.get("names"), "diagnostics.correlations.names")
        for kind in ("jacobian", "bootstrap"):
            matrix = corr.get(kind)
            if matrix is None:
                continue
            if not (isinstance(matrix, list) and len(matrix) == len(free)
                    and all(isinstance(row, list) and len(row) == len(free) for row in matrix)):
                raise f.fail(f"diagnostics.correlations.{kind}", f"a {len(free)} x {len(free)} matrix", matrix)
            for i, row in enumerate(matrix):
                for j, v in enumerate(row):
                    f.number(v, f"diagnostics.correlations.{kind}[{i}][{j}]", lo=-1.0, hi=1.0, optional=True)
        for key in ("pairs", "ridges"):
            if not isinstance(corr.get(key, []), list):
                raise f.fail(f"diagnostics.correlations.{key}", "a list", corr.get(key))
        if not all(isinstance(n, str) for n in corr.get("ridges", [])):
            raise f.fail("diagnostics.correlations.ridges", "a list of strings", corr.get("ridges"))
        for i, pair in enumerate(corr.get("pairs", [])):
            if not (isinstance(pair, dict) and isinstance(pair.get("ridge", False), bool)):
                raise f.fail(f"diagnostics.correlations.pairs[{i}]", "an object with params, jacobian, bootstrap, ridge", pair)
            names_list(pair.get("params"), f"diagnostics.correlations.pairs[{i}].params")
            for kind in ("jacobian", "bootstrap"):
                f.number(pair.get(kind), f"diagnostics.correlations.pairs[{i}].{kind}", lo=-1.0, hi=1.0, optional=True)
    alloc = diagnostics.get("allocation")
    if alloc is not None:
        if not isinstance(alloc, dict):
            raise f.fail("diagnostics.allocation", "an object", alloc)
        names_list(alloc.get("exponents"), "diagnostics.allocation.exponents")
        for key in ("a", "b"):
            q = alloc.get(key)
            if not isinstance(q, dict):
                raise f.fail(f"diagnostics.allocation.{key}", "an object with value, low, high", q)
            f.number(q.get("value"), f"diagnostics.allocation.{key}.value")
            for end in ("low", "high"):
                f.number(q.get(end), f"diagnostics.allocation.{key}.{end}", optional=True)
    prof = diagnostics.get("profile")
    if prof is not None:
        if not isinstance(prof, dict) or not isinstance(prof.get("params"), dict):
            raise f.fail("diagnostics.profile", "an object with level, threshold and params", prof)
        f.number(prof.get("level"), "diagnostics.profile.level", lo=1e-6, hi=1 - 1e-9)
        f.number(prof.get("threshold"), "diagnostics.profile.threshold", lo=0.0)
        if not isinstance(prof.get("rule", ""), str):
            raise f.fail("diagnostics.profile.rule", "a string", prof.get("rule"))
        for name, p in prof["params"].items():
            where = f"diagnostics.profile.params.{name}"
            if name not in names or not isinstance(p, dict):
                raise f.fail(where, "an interval of one of the law's parameters", p)
            low, high = f.number(p.get("low"), f"{where}.low"), f.number(p.get("high"), f"{where}.high")
            if low > high:
                raise DataError(f"{f.path}: field {where}: low > high ([{low:g}, {high:g}])")
            for end in ("low_open", "high_open"):
                if not isinstance(p.get(end, False), bool):
                    raise f.fail(f"{where}.{end}", "true or false", p.get(end))
    bounds = settings.get("bounds")
    if bounds is not None:
        if not isinstance(bounds, dict):
            raise f.fail("settings.bounds", "an object of parameter -> [low, high]", bounds)
        for name, span in bounds.items():
            if name not in names or not (isinstance(span, list) and len(span) == 2):
                raise f.fail(f"settings.bounds.{name}", "[low, high] of one of the law's parameters", span)
            lo, hi = (f.number(v, f"settings.bounds.{name}[{i}]") for i, v in enumerate(span))
            if not (lo < hi and _within(lo, law.params[name].bounds) and _within(hi, law.params[name].bounds)):
                raise DataError(f"{f.path}: field settings.bounds.{name} = [{lo:g}, {hi:g}] is not a range inside "
                                f"the law's bounds {list(law.params[name].bounds)}")


def _draws(f: _Fields, raw: Any, names: list[str], law) -> np.ndarray | None:
    path = f.path
    if raw is None:
        return None
    if isinstance(raw, dict):
        draws = _external_draws(f, raw, names)
    elif isinstance(raw, list):
        if not all(isinstance(row, list) and len(row) == len(names) for row in raw):
            raise f.fail("draws", f"a list of rows of {len(names)} numbers", raw[:1])
        try:
            draws = np.array(raw, dtype=float).reshape(len(raw), len(names))
        except (TypeError, ValueError):
            raise f.fail("draws", "numbers", raw[:1]) from None
    else:
        raise f.fail("draws", "a list of rows or a draws-file record", raw)
    if not np.all(np.isfinite(draws)):
        raise DataError(f"{path}: the bootstrap draws hold non-finite values")
    for j, name in enumerate(names):
        lo, hi = law.params[name].bounds
        if draws.size and not (_within(draws[:, j].min(), (lo, hi)) and _within(draws[:, j].max(), (lo, hi))):
            raise DataError(f"{path}: bootstrap draws of {name} leave the law's bounds [{lo:g}, {hi:g}]")
    return draws


def _external_draws(f: _Fields, raw: dict, names: list[str]) -> np.ndarray:
    path = f.path
    name, shape = raw.get("file"), raw.get("shape")
    match = _DRAWS_NAME.match(name) if isinstance(name, str) else None
    if match is None or Path(name).name != name or name.startswith("."):
        raise f.fail("draws.file", "the name of a draws file (<stem>.<hash>.draws.parquet) in the same folder", name)
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) and not isinstance(s, bool)
                                                                 for s in shape) and shape[1] == len(names)):
        raise f.fail("draws.shape", f"[draws, {len(names)}]", shape)
    digest = raw.get("sha256", match.group(1))
    if digest != match.group(1):
        raise DataError(f"{path}: field draws.sha256 does not match the draws file name {name}")
    file = path.with_name(name)
    try:
        mode = os.lstat(file).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: its bootstrap draws file {file} is missing") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: its bootstrap draws file {file} is not a regular file (a link or other): "
                        f"refusing to follow it")
    draws = _read_draws_file(file, names)
    if list(draws.shape) != shape:
        raise DataError(f"{path}: its draws file {name} holds {list(draws.shape)} values; the fit records {shape}")
    if draws_digest(draws) != digest:
        raise DataError(f"{path}: its draws file {name} does not match its recorded hash (changed or replaced)")
    return draws


def _read_draws_file(file: Path, names: list[str] | None) -> np.ndarray:
    import pandas as pd

    check_input_file(file, "draws file")
    try:
        frame = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise DataError(f"{file}: not a readable draws file ({type(exc).__name__})") from None
    if names is not None and list(frame.columns) != names:
        raise DataError(f"{file}: draws columns {[str(c)[:20] for c in frame.columns[:12]]} are not the fit's "
                        f"parameters {names}")
    try:
        return frame.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{file}: draws are not all numbers") from None
