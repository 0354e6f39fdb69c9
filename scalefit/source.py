"""Where a command's law parameters come from: a fit (``fit_path="fit.json"``) or a paper (``law="NAME",
reference="SET"``), with single values replaced by ``set_values={"NAME": VALUE}``.

:func:`resolve` loads the fit (:func:`scalefit.result.load_fit`) or looks the law up
(:func:`scalefit.registry.get_law`) and returns a :class:`ParamSource`: the law, theta, the bootstrap draws
(None for published values), the interval level, the t-stretch, the residual scale, units and fitted ranges
(empty for published values), a label of the source for titles, and the fit itself when there is one.

Commands differ in what they accept besides a fit, and their error messages say so:

* ``predict``: ``law`` needs ``reference`` (the default);
* ``cost search``: ``law`` alone takes the law's first published set (``default_reference=True``);
* ``schedule``: ``law`` with ``reference`` or ``set_values`` for every parameter (``set_values`` is a dict,
  possibly empty, rather than None).

Errors are one-line :class:`~scalefit.errors.DataError` naming :func:`resolve`'s parameters (the CLI names
them as its flags: ``--fit``, ``--law``, ``--reference``, ``--set``). The schedule package
cannot import this module (it is reached from ``scalefit.curves``, below the fit and the registry): its CLI
calls :func:`resolve` and hands ``ParamSource.fit`` or ``ParamSource.law`` to
:func:`scalefit.schedule.curve_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DataError

# (both given, neither given) for each command's way of naming published values; tests pin these texts.
_MESSAGES = {
    "reference": ("give either fit_path or law with reference, not both",
                  "give fit_path=fit.json, or law=NAME with reference to use published values"),
    "default": ("give either fit_path or law (with reference), not both",
                "give fit_path=fit.json, or law=NAME (with reference=SET) to use published values"),
    "set": ("give either fit_path or law (with reference or set_values), not both",
            "give fit_path=fit.json, or law=NAME with reference=SET or set_values={'NAME': VALUE}"),
}
_OPTIONS = ("fit_path", "law", "reference", "set_values")


@dataclass(frozen=True, eq=False)
class ParamSource:
    """A law and its parameters, resolved from a fit or from published / given values."""

    law: Any
    theta: np.ndarray
    draws: np.ndarray | None
    ci: float
    source: str  # for titles: the fit's path, "<law> published values (<set>)" or "--set values"
    stretch: float = 1.0
    residual_scale: float | None = None  # the fit's run-to-run scale of log loss; None for published values
    units: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, Any] = field(default_factory=dict)
    fit: Any = None  # the FitResult when the values come from --fit
    notes: tuple[str, ...] = ()  # what the caller should tell the user (dropped draws)


def resolve(fit_path: str | None = None, law: str | None = None, reference: str | None = None,
            set_values: Mapping[str, float] | None = None, law_files: Sequence[str] | None = (),
            ci: float | None = None, *, default_reference: bool = False) -> ParamSource:
    """Parameters from ``fit_path`` (a fit.json) or from ``law`` with ``reference`` (a published set;
    ``"default"`` is the first) and/or ``set_values`` (name -> value, replacing single values; with no
    reference they must give every parameter). ``default_reference``: ``law`` alone means its first set.
    ``ci`` defaults to the fit's level, else 0.95; the caller checks its range."""
    both, neither = _MESSAGES["set" if set_values is not None else "default" if default_reference else "reference"]
    if fit_path and (law or reference):
        raise DataError(both, options=_OPTIONS)
    law_files = list(law_files or [])
    overrides = dict(set_values or {})
    if fit_path:
        from .result import load_fit

        fit = load_fit(fit_path, law_files)
        src = ParamSource(fit.law, fit.theta, fit.draws, ci if ci is not None else fit.ci, str(fit_path),
                          stretch=fit.stretch, residual_scale=fit.diagnostics.get("residual_scale_log"),
                          units=fit.units, ranges=fit.data_info.get("ranges", {}), fit=fit)
    elif law and (reference or default_reference or set_values is not None):
        from .registry import get_law

        law_obj = get_law(law, law_files)
        theta, source = law_obj.published_or_given(reference or ("default" if default_reference else None),
                                                   overrides, param="set_values")
        src = ParamSource(law_obj, theta, None, ci if ci is not None else 0.95, source)
    else:
        raise DataError(neither, options=_OPTIONS)
    return _with_overrides(src, overrides) if overrides else src


def _with_overrides(src: ParamSource, overrides: Mapping[str, float]) -> ParamSource:
    """``src`` with single parameter values replaced; a fit's draws no longer describe them and are dropped."""
    names = list(src.law.param_names)
    theta = np.array(src.theta, dtype=float, copy=True)
    for name, value in overrides.items():
        if name not in names:
            raise DataError(f"set_values={{{name!r}: ...}}: law '{src.law.name}' has no such parameter; parameters "
                            f"are: {', '.join(names)}", options=("set_values",))
        theta[names.index(name)] = value
    if src.draws is None:
        return replace(src, theta=theta)
    return replace(src, theta=theta, draws=None,
                   notes=src.notes + ("--set overrides fitted values: bootstrap intervals are dropped",))
