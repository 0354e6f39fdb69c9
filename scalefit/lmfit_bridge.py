"""lmfit interoperability: ``Parameters`` in (constraints for :func:`scalefit.fit.fit`) and out (a fit's values,
standard errors and bounds as ``Parameters``).

scalefit's batched solver stays the engine; lmfit is the interface many researchers already know. Reading a
``Parameters`` object needs no lmfit at all (its entries are read by attribute: ``value``, ``vary``, ``min``,
``max``, ``expr``), so a fit given one never imports lmfit; only :func:`to_lmfit` does, lazily.

What each attribute means to scalefit:

* ``vary=False``: the parameter is held at ``value`` (``fixed=``).
* ``min`` / ``max``: bounds that narrow the law's own (infinite means "the law's"); a finite bound outside the
  law's range is refused, since the law's bounds are where its formula is valid.
* ``value`` of a varying parameter: one more starting point beside the law's grid.
* ``expr``: a parameter name (``"alpha"``: tied, ``ties=``), a positive number times one (``"2*alpha"``),
  or a number (held there). Any other
  expression is refused by name: the solver ties a parameter to a positive constant times another and
  cannot evaluate formulas.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from .errors import DataError
from .law import Law, Param
from .parameterization import parse_tie


@dataclass
class Constraints:
    """What a ``Parameters`` object asks of a fit, in :func:`scalefit.fit.fit`'s terms."""

    fixed: dict[str, float] = field(default_factory=dict)
    ties: dict[str, str] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # only those narrower than the law's
    start: dict[str, float] = field(default_factory=dict)  # values of the varying parameters


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x


def _parse_expr(name: str, expr: str, law: Law) -> tuple[str, Any]:
    """("tie", source) or ("fixed", value) for the expressions scalefit supports; a DataError otherwise."""
    def refuse(why: str) -> DataError:
        return DataError(f"params[{name!r}].expr = {expr!r}: {why}; scalefit supports a parameter name "
                         f"(a tie, e.g. 'alpha'), 1*name, or a number", options=("params",))

    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise refuse("not an expression") from None
    if isinstance(node, ast.Name):
        source, scale = node.id, 1.0
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return "fixed", float(node.value)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        return "fixed", -float(node.operand.value)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        pair = (node.left, node.right)
        consts = [n for n in pair if isinstance(n, ast.Constant) and isinstance(n.value, (int, float))
                  and not isinstance(n.value, bool)]
        names = [n for n in pair if isinstance(n, ast.Name)]
        if len(consts) != 1 or len(names) != 1:
            raise refuse("only a number times a parameter name is understood")
        source, scale = names[0].id, float(consts[0].value)
    else:
        raise refuse("not a parameter name, a number, or a number times a name")
    if source not in law.params:
        raise refuse(f"law '{law.name}' has no parameter '{source}' (parameters: {', '.join(law.param_names)})")
    if scale == 1.0:
        return "tie", source
    if not (math.isfinite(scale) and scale > 0):
        raise refuse(f"a tie's constant must be a positive number, not {scale:g}")
    return "tie", f"{scale!r}*{source}"


def constraints_from(law: Law, params: Mapping[str, Any]) -> Constraints:
    """Read an lmfit ``Parameters`` (or any mapping of name -> object with ``value``, ``vary``, ``min``,
    ``max``, ``expr``) for ``law``; a DataError naming the entry and attribute for anything unusable.
    Parameters the object does not mention keep the law's defaults (free, the law's bounds)."""
    if not isinstance(params, Mapping):
        raise DataError(f"params must be an lmfit Parameters object (a mapping of name -> Parameter), got "
                        f"{type(params).__name__}", options=("params",))
    out = Constraints()
    unknown = [n for n in params if n not in law.params]
    if unknown:
        raise DataError(f"params: law '{law.name}' has no parameter {', '.join(repr(n) for n in unknown)}; "
                        f"parameters are: {', '.join(law.param_names)}", options=("params",))
    for name, p in params.items():
        lo, hi = law.params[name].bounds
        value = _number(getattr(p, "value", None))
        expr = getattr(p, "expr", None)
        vary = bool(getattr(p, "vary", True))
        p_min, p_max = _number(getattr(p, "min", -math.inf)), _number(getattr(p, "max", math.inf))
        if p_min is None or p_max is None or math.isnan(p_min) or math.isnan(p_max):
            raise DataError(f"params[{name!r}]: min and max must be numbers (or -inf/inf for the law's bounds)",
                            options=("params",))
        for which, bound in (("min", p_min), ("max", p_max)):
            if math.isfinite(bound) and not lo <= bound <= hi:
                raise DataError(f"params[{name!r}].{which} = {bound:g} lies outside law '{law.name}''s bounds "
                                f"[{lo:g}, {hi:g}] for {name}: scalefit can narrow a law's bounds, not widen them "
                                f"(use -inf/inf for the law's own)", options=("params",))
        new_lo = max(lo, p_min) if math.isfinite(p_min) else lo
        new_hi = min(hi, p_max) if math.isfinite(p_max) else hi
        if not new_lo < new_hi:
            raise DataError(f"params[{name!r}]: min {new_lo:g} is not below max {new_hi:g}", options=("params",))
        if (new_lo, new_hi) != (lo, hi):
            out.bounds[name] = (new_lo, new_hi)
        if expr:
            kind, what = _parse_expr(name, str(expr), law)
            if kind == "tie":
                out.ties[name] = what
            else:
                out.fixed[name] = what
            continue
        if value is None or not math.isfinite(value):
            if not vary:
                raise DataError(f"params[{name!r}]: vary=False needs a finite value to hold it at",
                                options=("params",))
            continue
        if not vary:
            out.fixed[name] = value
        elif new_lo <= value <= new_hi:
            out.start[name] = value
        else:
            raise DataError(f"params[{name!r}].value = {value:g} lies outside its bounds [{new_lo:g}, {new_hi:g}]",
                            options=("params",))
    for name, text in out.ties.items():
        source = parse_tie(name, text)[0]
        if source in out.ties or source in out.fixed:
            raise DataError(f"params[{name!r}].expr = {source!r}: '{source}' must itself vary (not be tied or "
                            f"fixed)", options=("params",))
    return out


def merge(constraints: Constraints, fixed: Mapping[str, float] | None, ties: Mapping[str, str] | None):
    """``fixed`` and ``ties`` given beside ``params``: the union, refusing a parameter named twice."""
    fixed, ties = dict(fixed or {}), dict(ties or {})
    for name in set(constraints.fixed) | set(constraints.ties):
        if name in fixed or name in ties:
            raise DataError(f"parameter '{name}' is constrained both in params and in "
                            f"{'fixed' if name in fixed else 'ties'}; give it once", options=("params",))
    return {**constraints.fixed, **fixed}, {**constraints.ties, **ties}


def with_bounds(law: Law, bounds: Mapping[str, tuple[float, float]]) -> Law:
    """A copy of ``law`` whose named parameters have narrower bounds (the registry's law is left alone).

    The copy keeps everything else (options, origin, source file), so fit.json records the same law; the
    narrowed bounds are recorded in the fit's settings."""
    if not bounds:
        return law
    return law.with_params({n: _narrowed(p, bounds[n]) if n in bounds else p for n, p in law.params.items()})


def _narrowed(p: Param, span: tuple[float, float]) -> Param:
    """``p`` within ``span``; what the law says a fit at one of its own bounds means no longer applies to an
    end the user moved."""
    lo, hi = float(span[0]), float(span[1])
    moved = {"low": lo != p.bounds[0], "high": hi != p.bounds[1]}
    kept = tuple(e for e in getattr(p, "edges", ()) if not moved.get(e[0], False))
    return replace(p, bounds=(lo, hi), **({"edges": kept} if hasattr(p, "edges") else {}))


def start_vector(law: Law, start: Mapping[str, float], fixed: Mapping[str, float]) -> np.ndarray | None:
    """A full starting vector from the given values (the law's reference or grid middle elsewhere)."""
    if not start:
        return None
    base = law.reference_theta() if law.reference else np.array(
        [float(np.median(p.init)) for p in law.params.values()])
    vec = np.array(base, dtype=float)
    for i, name in enumerate(law.param_names):
        lo, hi = law.params[name].bounds
        vec[i] = start.get(name, fixed.get(name, min(max(vec[i], lo), hi)))
    return vec


# ---------------------------------------------------------------------- out
def to_lmfit(result) -> Any:
    """The fit as an lmfit ``Parameters``: value, stderr and the law's bounds per parameter; a fixed one has
    ``vary=False``, a tied one ``expr`` naming its source. Needs lmfit (imported here, not before)."""
    try:
        from lmfit import Parameters
    except ImportError:  # pragma: no cover - lmfit is a dependency
        raise DataError("to_lmfit needs lmfit: pip install lmfit") from None

    params = Parameters()
    bounds = result.settings.get("bounds") or {}
    for name, e in result.params.items():
        lo, hi = bounds.get(name) or result.law.params[name].bounds
        params.add(name, value=e.value, vary=e.status == "free", min=lo, max=hi)
    for name, e in result.params.items():  # expressions once every name they may use exists
        if e.status.startswith("tied:"):
            params[name].set(expr=e.status[5:])
    for name, e in result.params.items():
        params[name].stderr = e.stderr
    corr = result.diagnostics.get("correlations") or {}
    # lmfit's correl is the covariance at the optimum: the Jacobian's, which is the same in natural and log
    # space to first order (the bootstrap's is not: its draws are in log space for scale parameters).
    names, matrix = corr.get("names") or [], corr.get("jacobian")
    if matrix:
        for i, a in enumerate(names):
            params[a].correl = {b: float(matrix[i][j]) for j, b in enumerate(names)
                                if j != i and matrix[i][j] is not None}
    return params
