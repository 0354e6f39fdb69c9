"""Regression check of a fit against a baseline fit: the law must not move between CI runs.

``compare(new, baseline)`` first requires the two fits to be comparable -- same law, same units, same
data conventions (loss function and width, fixed and tied parameters, how tokens/compute were derived);
anything else is a :class:`DataError` (exit 2), because a number that changed meaning cannot drift.
Column *names* may differ: renaming a column is not a change of convention.

Then every free parameter, and the loss at each requested forecast point, is compared:

* ``rule="interval"`` (default): drift when the new point estimate leaves the baseline's interval;
* ``rule="overlap"``: drift when the new and baseline intervals do not overlap;
* an explicit tolerance overrides the rule for its quantity: ``|new - baseline| <= tol + rtol*|baseline|``
  (the ``numpy.isclose`` form). ``tol={'loss': ...}`` applies to every forecast.

Parameters of Chinchilla-type laws trade off along a flat ridge (A with alpha, B with beta), so give A
and B loose tolerances and judge E, the exponents and the forecasts tightly.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping
from xml.sax.saxutils import escape, quoteattr

from .errors import CheckFailed, DataError, option_error
from .units import parse_count

RULES = ("interval", "overlap")
_POINT_ROLES = ("params", "tokens", "compute")


@dataclass
class Row:
    """One compared quantity. ``allowed`` is a human description of the tolerance applied."""

    name: str
    kind: str  # parameter | forecast
    baseline: float
    new: float
    baseline_low: float | None
    baseline_high: float | None
    new_low: float | None
    new_high: float | None
    allowed: str
    ok: bool

    @property
    def change(self) -> float:
        return self.new - self.baseline

    @property
    def rel_change(self) -> float | None:
        return self.change / abs(self.baseline) if self.baseline else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(change=self.change, rel_change=self.rel_change, verdict="ok" if self.ok else "drift")
        return out


@dataclass
class CheckReport:
    rows: list[Row]
    rule: str
    ci: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def drifted(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "rule": self.rule, "ci": self.ci, "notes": list(self.notes),
                "quantities": [r.to_dict() for r in self.rows]}

    def to_junit(self, name: str = "scalefit check") -> str:
        """JUnit XML: one test case per quantity, so CI systems list each drifted coefficient."""
        cases = []
        for r in self.rows:
            body = (f"baseline {r.baseline:.6g}, new {r.new:.6g}, change {r.change:+.3g}; allowed: {r.allowed}")
            case = f'  <testcase classname={quoteattr("scalefit." + r.kind)} name={quoteattr(r.name)}'
            if r.ok:
                cases.append(case + f"><system-out>{escape(body)}</system-out></testcase>")
            else:
                cases.append(case + f"><failure message={quoteattr('drift: ' + body)}>{escape(body)}</failure>"
                             "</testcase>")
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr(name)} '
                f'tests="{len(self.rows)}" failures="{len(self.drifted)}" errors="0">\n'
                + "\n".join(cases) + "\n</testsuite>\n")


# ---------------------------------------------------------------------- parsing CLI-style specs
def parse_point(spec: str) -> dict[str, float]:
    """``"params=7B,tokens=1.4T"`` -> ``{"params": 7e9, "tokens": 1.4e12}`` (any two, or compute alone).

    A spec is one item of :func:`compare`'s ``at``; errors name it so."""
    point: dict[str, float] = {}
    for part in spec.split(","):
        role, sep, value = part.partition("=")
        role = role.strip()
        if not sep or role not in _POINT_ROLES or not value.strip():
            raise option_error("at", spec, f"expected ROLE=SIZE pairs from {', '.join(_POINT_ROLES)}, "
                                           f"e.g. at='params=7B,tokens=1.4T'")
        try:
            point[role] = parse_count(value.strip(), what=role)
        except DataError as exc:
            raise option_error("at", spec, str(exc)) from None
        if point[role] <= 0:
            raise option_error("at", spec, f"{role} must be positive")
    return point


def parse_tolerances(items: Iterable[str] | None, param: str) -> dict[str, float]:
    """``["alpha=0.01"]`` -> absolute tolerances for :func:`compare`'s ``param`` (``"tol"`` or ``"rtol"``);
    for ``"rtol"`` a trailing % means percent (``E=0.5%``)."""
    param = param.lstrip("-")
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise option_error(param, item, f"expected NAME=VALUE, e.g. {param}={{'alpha': 0.01}}")
        scale = 1.0
        if value.endswith("%"):
            if param != "rtol":
                raise option_error(param, item, f"a percentage is a relative tolerance; use rtol={item!r}",
                                   options=("rtol",))
            value, scale = value[:-1].strip(), 0.01
        try:
            tol = float(value) * scale
        except ValueError:
            raise option_error(param, item, f"'{value}' is not a number") from None
        if not (math.isfinite(tol) and tol >= 0):
            raise option_error(param, item, "tolerance must be a non-negative number")
        out[name] = tol
    return out


def _points(at: Iterable[str | Mapping[str, float]]) -> list[tuple[str, dict[str, float]]]:
    """(label, point) pairs; a string spec keeps the user's spelling as its label (``loss@params=7B,...``)."""
    out = []
    for item in at:
        if isinstance(item, str):
            out.append(("loss@" + item.replace(" ", ""), parse_point(item)))
        else:
            out.append(("loss@" + ",".join(f"{k}={v:.4g}" for k, v in item.items()), dict(item)))
    return out


# ---------------------------------------------------------------------- the comparison
def _conventions(fit) -> dict:
    s = fit.settings
    derived = {role: col for role, col in fit.data_info.get("columns", {}).items() if "(" in str(col)}
    return {
        "law": fit.law.name,
        "parameters": list(fit.param_names),
        "loss unit": fit.units.get("loss_unit"),
        "parameter-count convention": fit.units.get("params_convention"),
        "fit loss": s.get("loss"),
        "Huber delta": s.get("delta"),
        "fixed parameters": dict(sorted((s.get("fixed") or {}).items())),
        "tied parameters": dict(sorted((s.get("ties") or {}).items())),
        "derived columns": derived,
    }


def check_comparable(new, baseline) -> None:
    """DataError naming every convention that differs (exit 2): such fits cannot be compared."""
    a, b = _conventions(new), _conventions(baseline)
    diffs = [f"{k}: baseline {b[k]!r}, new {a[k]!r}" for k in a if a[k] != b[k]]
    if diffs:
        raise DataError("fits are not comparable (" + "; ".join(diffs) + "); refit with the baseline's settings "
                        "or make a new baseline with update_baseline", options=("update_baseline",))


def _judge(name, kind, base, base_lo, base_hi, new, new_lo, new_hi, *, rule, tol, rtol) -> Row:
    if tol is not None or rtol is not None:
        allowed = (tol or 0.0) + (rtol or 0.0) * abs(base)
        parts = ([f"tol {tol:g}"] if tol is not None else []) + ([f"rtol {rtol:.3g}"] if rtol is not None else [])
        ok = bool(abs(new - base) <= allowed)
        return Row(name, kind, base, new, base_lo, base_hi, new_lo, new_hi, f"±{allowed:.3g} ({', '.join(parts)})", ok)
    # Intervals: the baseline's, written compactly; the table's title names the rule.
    if base_lo is None or base_hi is None:
        raise DataError(f"baseline has no interval for '{name}'; refit the baseline with n_bootstrap=N "
                        f"(e.g. 1000) or pass tol={{'{name.split('@')[0]}': VALUE}}", options=("n_bootstrap", "tol"))
    if rule == "interval":
        ok = bool(base_lo <= new <= base_hi)
        return Row(name, kind, base, new, base_lo, base_hi, new_lo, new_hi,
                   f"[{base_lo:.5g}, {base_hi:.5g}]", ok)
    if new_lo is None or new_hi is None:
        raise DataError(f"rule='overlap' needs an interval for '{name}' in the new fit; refit it with n_bootstrap=N",
                        options=("rule", "n_bootstrap"))
    ok = bool(new_lo <= base_hi and base_lo <= new_hi)
    return Row(name, kind, base, new, base_lo, base_hi, new_lo, new_hi,
               f"[{new_lo:.5g}, {new_hi:.5g}] meets [{base_lo:.5g}, {base_hi:.5g}]", ok)


def compare(new, baseline, *, at: Iterable[str | Mapping[str, float]] = (), tol: Mapping[str, float] | None = None,
            rtol: Mapping[str, float] | None = None, rule: str = "interval") -> CheckReport:
    """Compare two :class:`~scalefit.result.FitResult` objects; see the module docstring for the rules."""
    from .forecast import forecast

    if rule not in RULES:
        raise option_error("rule", rule, f"use one of {', '.join(RULES)}")
    check_comparable(new, baseline)
    if not baseline.success:
        raise DataError(f"the baseline fit failed ({baseline.diagnostics.get('message')}); it cannot be a baseline")
    if not new.success:
        raise CheckFailed(f"the new fit failed: {new.diagnostics.get('message')}")
    tol, rtol = dict(tol or {}), dict(rtol or {})
    points = _points(at)
    free = [n for n, e in baseline.params.items() if e.status == "free"]
    known = set(free) | {"loss"} | {label for label, _ in points}
    for name in list(tol) + list(rtol):
        if name not in known:
            raise DataError(f"tolerance for '{name}': no such quantity; use one of {', '.join(sorted(known))}")
    notes = []
    if baseline.ci != new.ci:
        notes.append(f"interval levels differ: baseline {baseline.ci:.0%}, new {new.ci:.0%}")
    hashes = (baseline.meta.get("law_source_hash"), new.meta.get("law_source_hash"))
    if None not in hashes and hashes[0] != hashes[1]:
        notes.append(f"law '{new.law.name}' changed between the fits (source {hashes[0]} -> {hashes[1]}); "
                     f"drift may come from the law, not the data")
    if baseline.data_info.get("hash") == new.data_info.get("hash"):
        notes.append("same input data as the baseline")

    rows = []
    for name in free:
        b, n = baseline.params[name], new.params[name]
        rows.append(_judge(name, "parameter", b.value, b.low, b.high, n.value, n.low, n.high,
                           rule=rule, tol=tol.get(name), rtol=rtol.get(name)))
    for label, point in points:
        fb = forecast(baseline.law, baseline.theta, baseline.draws, ci=baseline.ci, stretch=baseline.stretch, **point)
        fn = forecast(new.law, new.theta, new.draws, ci=new.ci, stretch=new.stretch, **point)
        rows.append(_judge(label, "forecast", fb.loss.value, fb.loss.low, fb.loss.high,
                           fn.loss.value, fn.loss.low, fn.loss.high, rule=rule,
                           tol=tol.get(label, tol.get("loss")), rtol=rtol.get(label, rtol.get("loss"))))
    return CheckReport(rows, rule, baseline.ci, notes)


def update_baseline(new_path: str | Path, baseline_path: str | Path) -> Path | None:
    """Make ``new_path`` the baseline, atomically; the old baseline is kept as ``<name>.<UTC time>.prev``.

    A new fit is promoted only when it loads and its checksum holds (an edited fit is never re-signed).
    Concurrent updates of one baseline are serialised by a lock, and each keeps its predecessor under a
    name of its own (created exclusively, never through a planted link), so no version is lost.
    Returns the path of the kept copy (None when there was no baseline yet).
    """
    from ._io import keep_copy, locked
    from .result import load_fit

    new = load_fit(new_path)  # never install a file that does not load
    status = new.meta.get("checksum")
    if status != "ok":
        raise DataError(f"{new_path}: its checksum is {status}: the numbers may have been edited by hand; "
                        f"refusing to make it the baseline (refit to get a clean file)")
    baseline_path = Path(baseline_path)
    with locked(baseline_path):
        kept = None
        if os.path.lexists(baseline_path):
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            kept = keep_copy(baseline_path, stamp)
        new.save(baseline_path, force=True)  # the kept copy keeps reading its own draws file (never deleted)
    return kept
