"""The optimiser's vector and the law's parameters: what is free, fixed or tied, and on which scale.

The solver works on ``u``, the free parameters only, each on the scale it is optimised on (log for scale
parameters that a law declares ``log=True``); a law sees ``theta``, every parameter in natural units.
:class:`Parameterization` maps one to the other (and back), with the chain rule for Jacobians, the
bounds in ``u`` and the law's start grid; :func:`parse_tie` reads a tie as written (``beta=2*alpha``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import DataError
from .law import Law


def parse_tie(name: str, text: str) -> tuple[str, float]:
    """A tie's source and constant: ``"alpha"`` -> ("alpha", 1.0), ``"2*alpha"`` or ``"alpha*2"`` ->
    ("alpha", 2.0). A positive finite constant only (a tie keeps the sign and bounds sense of a scale)."""
    parts = [part.strip() for part in str(text).split("*")]
    if len(parts) == 1:
        return parts[0], 1.0
    if len(parts) == 2:
        for number, src in (parts, parts[::-1]):
            try:
                scale = float(number)
            except ValueError:
                continue
            if np.isfinite(scale) and scale > 0 and src.isidentifier():
                return src, scale
    raise DataError(f"ties={{{name!r}: {text!r}}}: use a parameter name or a positive number times one "
                    f"(e.g. '2*alpha')", options=("ties",))


class Parameterization:
    """Maps the optimiser's free vector ``u`` to the law's full natural-unit vector ``theta``.

    Free parameters with ``log=True`` are optimised as log(value). ``fixed`` pins values (``--set``);
    ``ties`` makes one parameter equal another (``{"beta": "alpha"}``, as Gadre et al. do) or a constant
    times another (``{"beta": "2*alpha"}``); ``tie_scale`` holds those constants.
    """

    def __init__(self, law: Law, fixed: Mapping[str, float] | None = None, ties: Mapping[str, str] | None = None):
        names = law.param_names
        self.law = law
        self.names = names
        fixed = dict(fixed or {})
        ties = dict(ties or {})
        for name in list(fixed) + list(ties):
            if name not in names:
                raise DataError(f"law '{law.name}' has no parameter '{name}'; parameters are: {', '.join(names)}")
        parsed = {name: parse_tie(name, text) for name, text in ties.items()}
        ties = {name: src for name, (src, _) in parsed.items()}
        for name, src in ties.items():
            if src not in names:
                raise DataError(f"ties={{{name!r}: {src!r}}}: law '{law.name}' has no parameter '{src}'", options=("ties",))
            if src in ties or src in fixed:
                raise DataError(f"ties={{{name!r}: {src!r}}}: '{src}' must itself be free (not tied or fixed)", options=("ties",))
            if name in fixed:
                raise DataError(f"parameter '{name}' is both fixed and tied")
        lo, hi = law.bounds_array()
        for name, value in fixed.items():
            i = names.index(name)
            if not (lo[i] <= value <= hi[i]):
                raise DataError(f"fixed={{{name!r}: {value!r}}}: outside the law's bounds [{lo[i]:g}, {hi[i]:g}]",
                                options=("fixed",))
        self.fixed = {names.index(k): float(v) for k, v in fixed.items()}
        self.ties = {names.index(k): names.index(v) for k, v in ties.items()}
        self.tie_scale = {names.index(k): scale for k, (_, scale) in parsed.items()}
        self.free = [i for i in range(len(names)) if i not in self.fixed and i not in self.ties]
        if not self.free:
            raise DataError(f"law '{law.name}': every parameter is fixed or tied; nothing to fit")
        self.log = np.array([law.params[names[i]].log for i in self.free])
        self.lo = self._to_space(lo[self.free])
        self.hi = self._to_space(hi[self.free])
        # d theta / d theta_free: column j of ``expand`` says which full entries free j feeds.
        self.expand = np.zeros((len(names), len(self.free)))
        for j, i in enumerate(self.free):
            self.expand[i, j] = 1.0
        for i, src in self.ties.items():
            self.expand[i, self.free.index(src)] = self.tie_scale[i]

    def tie_text(self, i: int) -> str:
        """Parameter i's tie as written: ``alpha`` or ``2*alpha``."""
        src, scale = self.names[self.ties[i]], self.tie_scale[i]
        return src if scale == 1.0 else f"{scale:.17g}*{src}"

    def to_theta(self, u: np.ndarray) -> np.ndarray:
        u = np.atleast_2d(u)
        with np.errstate(over="ignore"):  # exp of a linear parameter's u is computed, then not selected
            free_vals = np.where(self.log, np.exp(u), u)
        theta = free_vals @ self.expand.T
        for i, v in self.fixed.items():
            theta[:, i] = v
        return theta

    def to_u(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return self._to_space(theta[:, self.free])

    def _to_space(self, free_vals: np.ndarray) -> np.ndarray:
        """Natural values of the free parameters -> optimiser space (log where declared)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.log, np.log(np.where(self.log, free_vals, 1.0)), free_vals)

    def jac_u(self, jac_theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Chain rule: d/du = d/dtheta @ expand, times exp(u) for log parameters."""
        j = jac_theta @ self.expand
        with np.errstate(over="ignore"):
            scale = np.where(self.log, np.exp(u), 1.0)  # (k, q)
        j *= scale[:, None, :]  # in place: one (k, n, q) array fewer at the solver's peak
        return j

    def clip(self, u: np.ndarray) -> np.ndarray:
        return np.clip(u, self.lo, self.hi)

    def start_grid(self, extra: np.ndarray | None = None) -> np.ndarray:
        """The law's init grid over the free parameters (duplicates removed), plus extra starts."""
        grids = [np.asarray(self.law.params[self.names[i]].init) for i in self.free]
        mesh = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, len(self.free))
        u = self._to_space(mesh)
        if extra is not None and len(extra):
            u = np.vstack([self.to_u(extra), u])
        u = u[np.all(np.isfinite(u), axis=1)]
        return self.clip(u)
