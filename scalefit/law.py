"""The law interface: a small declarative object plus two pure functions.

A law declares its parameters (bounds, log-space flag, starting grid), the column roles it reads, its
published reference values, and implements

* ``prepare(data) -> design``: everything that does not depend on the parameters, computed once
  (log N, cumulative LR sums, ...). ``design`` is a dict of numpy arrays, one entry per row or per run.
* ``predict(theta, design) -> (k, n)``: the predicted target for a *batch* of k parameter vectors
  ``theta`` of shape ``(k, p)`` in natural units, in the order of ``params``.
* ``jacobian(theta, design) -> (k, n, p)``: d predict / d theta. Optional: return ``None`` and the
  fitter falls back to batched central differences.

Point laws read one row per run; curve laws (subclasses of :class:`CurveLaw`, ``kind = "curve"``) read
one row per (run, step) and find each run's dense LR sequence in ``data.lr``. Batch shapes are what make multi-start and the
bootstrap fast: the fitter evaluates thousands of parameter vectors in one call.

Two ways to write a law:

1. Subclass :class:`Law` (custom ``prepare``) or :class:`CurveLaw` (loss-curve laws).
2. Decorate a plain formula with :func:`law` -- inputs before ``*``, parameters after::

       @law(inputs={"N": "params", "D": "tokens"}, params={...}, reference={...})
       def my_law(N, D, *, E, A, alpha):
           return E + A / N**alpha
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .errors import DataError, LawDefinitionError

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset

Design = dict  # name -> np.ndarray; built by Law.prepare


@dataclass(frozen=True)
class Param:
    """One law parameter.

    bounds: inclusive (low, high) in natural units; the fitter never leaves them.
    init:   starting values; the product of all parameters' ``init`` is the multi-start grid.
    log:    optimise log(value) (for positive scale parameters such as A, B, E).
    doc:    what the parameter means, shown by ``scalefit laws show``.
    edges:  what a fit at a bound means, where the bound is a meaningful limit of the law rather than a
            guard: ``("low" | "high", text)`` pairs, said in the fit report instead of "the bound is too tight".
    linear: the prediction is a sum of each linear parameter times a function of the other parameters
            (E, A and B in E + A/N^alpha + B/D^beta): for fixed others the fitter solves them exactly
            (variable projection, :mod:`scalefit.varpro`). The conformance suite checks the claim.
    """

    bounds: tuple[float, float]
    init: Sequence[float]
    log: bool = False
    doc: str = ""
    edges: tuple[tuple[str, str], ...] = ()
    linear: bool = False

    def __post_init__(self):
        object.__setattr__(self, "bounds", (float(self.bounds[0]), float(self.bounds[1])))
        object.__setattr__(self, "init", tuple(float(v) for v in np.atleast_1d(self.init)))


class Law:
    """Base class of every law. Subclasses set the class attributes and implement ``predict``."""

    name: str = ""
    formula: str = ""  # one line, plain text, shown in tables
    citation: str = ""
    description: str = ""  # longer text: the docstring of the law file by default
    kind: str = "point"  # "point": one row per run; "curve": one row per (run, step)
    inputs: tuple[str, ...] = ()  # column roles read by prepare(), e.g. ("params", "tokens")
    target: str = "loss"  # column role that is predicted
    params: Mapping[str, Param] = {}
    # Published parameter sets: {set name: {param: value}}; the first set is the default.
    reference: Mapping[str, Mapping[str, float]] = {}
    # Units the reference values are in, e.g. {"loss_unit": "nats", "params_convention": "total"}.
    reference_units: Mapping[str, str] = {}
    # Point laws of the form E + A/N^alpha + B/D^beta: the (N, D) exponents whose ratio gives the allocation
    # exponents N_opt ∝ C^a (scalefit.allocation); None for laws without that closed form.
    allocation_exponents: tuple[str, str] | None = None
    origin: str = "builtin"  # set by the registry: builtin | file:PATH | entrypoint:DIST==VER
    source_file: str | None = None

    # ---------------------------------------------------------------- declared structure
    @property
    def options(self) -> dict[str, Any]:
        """Settings that change predictions but are not fitted (e.g. the LR-annealing momentum)."""
        return {}

    def with_options(self, **options) -> "Law":
        """A copy of the law with other options (``--law-opt KEY=VALUE``); recorded in fit.json.

        A law with options takes them as constructor keywords named as in ``options`` and validates
        them there; this method only rejects unknown names and carries the law's origin over.
        """
        if not options:
            return self
        known = self.options
        unknown = sorted(set(options) - set(known))
        if unknown and not known:
            raise DataError(f"law '{self.name}' takes no options (got {', '.join(unknown)})")
        if unknown:
            raise DataError(f"law '{self.name}' has no option {unknown}; valid options: {', '.join(known)}")
        new = type(self)(**{**known, **options})
        new.origin, new.source_file = self.origin, self.source_file
        if "_restore" in self.__dict__:
            new._restore = self._restore
        return new

    def with_params(self, params: Mapping[str, Param]) -> "Law":
        """A copy of the law with these parameter declarations (bounds narrowed by the caller); everything
        else, the registry's copy included, is left as it is."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.params = dict(params)
        return new

    @property
    def param_names(self) -> list[str]:
        return list(self.params)

    @property
    def linear_params(self) -> list[str]:
        """Parameters declared ``linear`` (see :class:`Param`)."""
        return [name for name, p in self.params.items() if p.linear]

    @property
    def n_params(self) -> int:
        return len(self.params)

    def bounds_array(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([p.bounds[0] for p in self.params.values()])
        hi = np.array([p.bounds[1] for p in self.params.values()])
        return lo, hi

    def reference_theta(self, name: str | None = None) -> np.ndarray:
        """The published parameter vector (first set unless ``name`` is given)."""
        if not self.reference:
            raise DataError(f"law '{self.name}' has no published reference values")
        if name is None or (name == "default" and "default" not in self.reference):
            name = next(iter(self.reference))
        if name not in self.reference:
            raise DataError(
                f"law '{self.name}' has no reference set '{name}'; known sets: {', '.join(self.reference)}"
            )
        values = self.reference[name]
        return np.array([float(values[p]) for p in self.params])

    def published_or_given(self, reference: str | None, given, *, param: str = "given") -> tuple[np.ndarray, str]:
        """Parameters from a published set (``"default"``: the first) or, without one, from ``given``
        (name -> value) for every parameter; with the label tables show. Single values over a set are
        the caller's to apply. ``param``: the caller's name for ``given`` in errors."""
        if reference:
            label = reference if reference != "default" else next(iter(self.reference), "default")
            return self.reference_theta(reference), f"{self.name} published values ({label})"
        missing = [n for n in self.param_names if n not in (given or {})]
        if missing:
            raise DataError(f"law '{self.name}': no value for {', '.join(missing)}; give {param}={{'NAME': VALUE}} "
                            f"for each, or reference=SET (sets: {', '.join(self.reference) or 'none'})",
                            options=(param, "reference"))
        return np.zeros(self.n_params), "--set values"

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """theta (k, p) -> {name: (k, 1) column}, ready to broadcast against (n,) inputs."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return {name: theta[:, i : i + 1] for i, name in enumerate(self.params)}

    # ---------------------------------------------------------------- the work
    def prepare(self, data: "Dataset") -> Design:
        """Default: one float array per input role."""
        return {role: data.column(role) for role in self.inputs}

    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray | None:
        return None

    def predict_and_jacobian(self, theta: np.ndarray, design: Design) -> tuple[np.ndarray, np.ndarray | None]:
        """Both at once; override when they share work (the fitter calls this in its inner loop)."""
        return self.predict(theta, design), self.jacobian(theta, design)

    def linear_basis(self, theta: np.ndarray, design: Design) -> tuple[np.ndarray, np.ndarray]:
        """yhat (k, n) and d yhat / d(each ``linear`` parameter) (k, n, m), which for those parameters is
        their basis function. Default: columns of the Jacobian; override when they come cheaper (the
        variable-projection solver calls this once per step)."""
        yhat, jac = self.predict_and_jacobian(theta, design)
        if jac is None:
            return yhat, None
        return yhat, jac[..., [self.param_names.index(n) for n in self.linear_params]]

    def start_points(self, design: Design, y: np.ndarray) -> np.ndarray | None:
        """Extra, data-driven starting vectors (m, p) added to the grid; None for none."""
        return None

    def check_fixed(self, data: "Dataset", fixed: Mapping[str, float]) -> None:
        """Raise DataError when ``fixed`` values cannot hold for this data (default: no check)."""

    def example_inputs(self):
        """Typical inputs for conformance tests and docs: a Columns (or Dataset for curve laws).

        The default covers (params, tokens) laws: 8 sizes from 1e7 to 1e10 x 8 budgets of 2-200 tokens per
        parameter. Laws with other inputs override it.
        """
        if not set(self.inputs) <= {"params", "tokens"}:
            raise NotImplementedError(f"law '{self.name}' must define example_inputs() for its inputs {self.inputs}")
        n, ratio = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(2, 200, 8), indexing="ij")
        return Columns(source=f"<{self.name} example>", params=n.ravel(), tokens=(n * ratio).ravel())

    def check_identifiable(self, data: "Dataset") -> None:
        """Raise DataError when the data cannot determine the law: each input must vary (curve laws:
        see :meth:`CurveLaw.check_identifiable`)."""
        for role in self.inputs:
            values = data.column(role)
            ordered = np.sort(values)  # not np.unique, which imports numpy.ma (25 ms of a whole-process fit)
            # one distinct value (NaN sorts last: a NaN first means all are NaN, as np.unique counts them)
            if ordered.size == 0 or ordered[0] == ordered[-1] or ordered[0] != ordered[0]:
                raise DataError(
                    f"{data.source}: every row has {role} = {values[0]:.4g}; law '{self.name}' cannot be "
                    f"identified without at least two distinct values of '{role}'"
                )

    # ---------------------------------------------------------------- helpers
    def grid(self) -> np.ndarray:
        """The product of the parameters' ``init`` values, shape (m, p)."""
        return np.array(list(itertools.product(*(p.init for p in self.params.values()))), dtype=float)

    def source_hash(self) -> str:
        """sha256 of the law's source file (or class source): detects a changed law on reload."""
        import hashlib  # here: it loads OpenSSL, a large share of `scalefit predict`'s start-up

        try:
            if self.source_file:
                with open(self.source_file, "rb") as fh:
                    blob = fh.read()
            else:
                blob = inspect.getsource(type(self)).encode()
        except (OSError, TypeError):
            blob = repr(sorted((k, v.bounds) for k, v in self.params.items())).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "formula": self.formula,
            "citation": self.citation,
            "inputs": list(self.inputs),
            "target": self.target,
            "params": {
                n: {"bounds": list(p.bounds), "log": p.log, "init": list(p.init), "doc": p.doc}
                for n, p in self.params.items()
            },
            "reference": {k: dict(v) for k, v in self.reference.items()},
            "reference_units": dict(self.reference_units),
            "options": dict(self.options),
            "origin": self.origin,
        }

    def __repr__(self) -> str:
        return f"<Law {self.name}: {self.formula}>"

    def __reduce_ex__(self, protocol):
        # A law from a file lives in a module (scalefit._laws.*) that a fresh worker process (loky,
        # dask, ray) never imported: send a reference and look the law up again on the other side.
        # The registry, which set source_file, also hands over its restore function (law.py imports
        # nothing above errors, so the dependency is given, not reached for).
        # The file's hash lets the worker refuse a different version of the law, and the parameter
        # declarations carry bounds the caller narrowed, which the file does not know.
        restore = self.__dict__.get("_restore")
        if self.source_file and restore is not None:
            return restore, (self.name, self.source_file, dict(self.options), self.origin, self.source_hash(),
                             dict(self.params))
        return super().__reduce_ex__(protocol)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check the declaration; raise LawDefinitionError naming the law and its file."""
        where = f"law '{self.name or type(self).__name__}'" + (
            f" in {self.source_file}" if self.source_file else ""
        )
        if not self.name or not str(self.name).isidentifier():
            raise LawDefinitionError(f"{where}: 'name' must be an identifier, got {self.name!r}")
        if self.kind not in ("point", "curve"):
            raise LawDefinitionError(f"{where}: kind must be 'point' or 'curve', got {self.kind!r}")
        if (self.kind == "curve") != isinstance(self, CurveLaw):
            raise LawDefinitionError(f"{where}: a loss-curve law subclasses scalefit.law.CurveLaw (which sets "
                                     f"kind = 'curve'); a point law does not")
        if isinstance(self, CurveLaw):
            missing = [m for m in CurveLaw.REQUIRED if getattr(type(self), m) is getattr(CurveLaw, m)]
            if missing:
                raise LawDefinitionError(f"{where}: a curve law must implement {', '.join(missing)}")
        if not self.params:
            raise LawDefinitionError(f"{where}: declares no parameters")
        for pname, p in self.params.items():
            if not isinstance(p, Param):
                raise LawDefinitionError(f"{where}: parameter '{pname}' is not a Param")
            lo, hi = p.bounds
            if not lo < hi:
                raise LawDefinitionError(f"{where}: parameter '{pname}' has bounds {p.bounds} with low >= high")
            if p.log and lo <= 0:
                raise LawDefinitionError(f"{where}: log parameter '{pname}' needs a positive lower bound")
            if not p.init:
                raise LawDefinitionError(f"{where}: parameter '{pname}' has no starting values")
            bad = [v for v in p.init if not lo <= v <= hi]
            if bad:
                raise LawDefinitionError(f"{where}: starting values {bad} of '{pname}' lie outside {p.bounds}")
        for set_name, values in self.reference.items():
            missing = [n for n in self.params if n not in values]
            if missing:
                raise LawDefinitionError(f"{where}: reference set '{set_name}' lacks {missing}")
            for n in self.params:
                lo, hi = self.params[n].bounds
                if not lo <= float(values[n]) <= hi:
                    raise LawDefinitionError(
                        f"{where}: reference {set_name}.{n} = {values[n]} lies outside bounds {(lo, hi)}"
                    )


def check_points(data: "Dataset", n_params: int, law_name: str) -> None:
    """Each run of a curve table must have at least as many loss points as the law has parameters."""
    counts = data.frame.groupby("run").size()
    few = counts[counts < n_params]
    if len(few):
        run, n = few.index[0], int(few.iloc[0])
        raise DataError(f"{data.source}: run '{run}' has {n} loss point(s) but law '{law_name}' has {n_params} "
                        f"parameters; log more steps or drop that run")


class CurveLaw(Law):
    """Base class of the loss-curve laws (LR-annealing, multi-power): one row per (run, step), each run's
    dense LR sequence in ``data.lr``, warm-up included.

    A subclass implements

    * ``design_from_lr(lrs, runs, steps, source) -> design``: the design for the points
      (runs[i], steps[i]) given a dense LR array per run (``prepare`` calls it);
    * ``curve(theta, eta, steps) -> (k, len(steps))``: the predicted loss at ``steps`` of one LR
      sequence ``eta`` (schedule prediction);
    * ``final_loss_grad(theta, eta, warmup) -> (loss, grad)``: the loss at the last step of ``eta`` and
      its gradient in every eta_j (schedule optimisation); ``warmup`` is the ramp's length, if known.

    and may override ``final_loss`` (the loss alone, when that is cheaper) and ``curve_bytes`` (its
    working memory). Options (constructor keywords, kept as attributes of the same names) are listed
    in ``option_names``. Code that needs the curve interface asks ``isinstance(law, CurveLaw)``;
    ``kind`` stays ``"curve"`` as the declared, recorded attribute.
    """

    kind = "curve"
    inputs = ("step", "lr")
    option_names: tuple[str, ...] = ()
    # Schedule kinds (``wsd``, ``two_stage``, ...) for which the law's forecasts are known to be biased,
    # each with the sentence (and the measurement) that ``schedule predict|compare`` print as a warning.
    known_bias: Mapping[str, str] = {}
    REQUIRED = ("design_from_lr", "curve", "final_loss_grad")

    @property
    def options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.option_names}

    def prepare(self, data: "Dataset") -> Design:
        if data.lr is None:
            raise DataError(f"{data.source}: law '{self.name}' needs each run's LR at every step (load with "
                            f"load_curves)")
        import pandas as pd

        codes, names = pd.factorize(data.frame["run"].astype(str))
        names = np.asarray(names, dtype=object)
        runs = names[codes]  # each name one shared string (data.run_names makes one per row: 60 MB at 1M rows)
        steps = data.column("step").astype(np.int64)
        return self.design_from_lr({r: data.lr[r] for r in names}, runs, steps, data.source)

    def check_identifiable(self, data: "Dataset") -> None:
        """Raise DataError when a run has fewer loss points than the law has parameters."""
        check_points(data, self.n_params, self.name)

    def design_from_lr(self, lrs: Mapping[str, np.ndarray], runs: np.ndarray, steps: np.ndarray,
                       source: str = "<schedule>") -> Design:  # pragma: no cover - abstract
        raise NotImplementedError

    def curve(self, theta: np.ndarray, eta: np.ndarray, steps) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def final_loss_grad(self, theta: np.ndarray, eta: np.ndarray,
                        warmup: int | None = None) -> tuple[float, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def final_loss(self, theta: np.ndarray, eta: np.ndarray, warmup: int | None = None) -> float:
        """The loss at the last step of ``eta`` (default: ``final_loss_grad``'s, gradient discarded)."""
        return self.final_loss_grad(theta, eta, warmup)[0]

    def curve_bytes(self, n_steps: int, n_points: int, n_theta: int = 1) -> int:
        """Working memory of :meth:`curve` (default: a few float64 arrays over the steps and the points)."""
        return 64 * int(n_steps) + 8 * int(n_points) * (6 + 4 * int(n_theta))


class FunctionLaw(Law):
    """A point law made from a plain formula ``f(*inputs, **params)`` by :func:`law`."""

    def __init__(self, func: Callable, arg_roles: Mapping[str, str], **attrs):
        self._func = func
        self._arg_roles = dict(arg_roles)
        for key, value in attrs.items():
            setattr(self, key, value)

    def prepare(self, data: "Dataset") -> Design:
        return {arg: data.column(role) for arg, role in self._arg_roles.items()}

    def predict(self, theta, design):
        theta = np.atleast_2d(theta)
        out = self._func(**design, **self.unpack(theta))
        n = len(next(iter(design.values()))) if design else 1
        return np.broadcast_to(out, (theta.shape[0], n)).astype(float)


def law(
    *,
    inputs: Mapping[str, str],
    params: Mapping[str, Param],
    name: str | None = None,
    target: str = "loss",
    reference: Mapping[str, Mapping[str, float]] | Mapping[str, float] | None = None,
    formula: str = "",
    citation: str = "",
    reference_units: Mapping[str, str] | None = None,
) -> Callable[[Callable], Law]:
    """Turn ``f(N, D, *, E, A, ...)`` into a :class:`Law`; ``inputs`` maps argument -> column role."""

    def decorate(func: Callable) -> Law:
        sig = inspect.signature(func)
        positional = [p.name for p in sig.parameters.values() if p.kind != p.KEYWORD_ONLY]
        keyword = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
        where = f"law '{name or func.__name__}' ({inspect.getsourcefile(func)})"
        if positional != list(inputs):
            raise LawDefinitionError(f"{where}: inputs {list(inputs)} must equal the arguments before '*' {positional}")
        if keyword != list(params):
            raise LawDefinitionError(f"{where}: params {list(params)} must equal the arguments after '*' {keyword}")
        ref = dict(reference or {})
        if ref and not isinstance(next(iter(ref.values())), Mapping):
            ref = {"default": ref}
        obj = FunctionLaw(
            func,
            inputs,
            name=name or func.__name__,
            inputs=tuple(inputs.values()),
            target=target,
            params=dict(params),
            reference=ref,
            formula=formula or ((func.__doc__ or "").strip().splitlines() or [""])[0],
            citation=citation,
            description=inspect.getdoc(func) or "",
            reference_units=dict(reference_units or {}),
        )
        obj.validate()
        return obj

    return decorate


class Columns:
    """Inputs given as arrays (for forecasts): the same ``column``/``has`` accessors as a Dataset.

    Keeps ``scalefit predict`` free of pandas, so it starts fast.
    """

    def __init__(self, source: str = "<inputs>", **columns):
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in columns.items() if v is not None}
        n = max((a.size for a in arrays.values()), default=1)
        self._cols = {k: np.broadcast_to(a, (n,)).copy() for k, a in arrays.items()}
        self.source = source
        self.lr = None

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def has(self, role: str) -> bool:
        return role in self._cols

    def column(self, role: str) -> np.ndarray:
        if role not in self._cols:
            raise DataError(f"{self.source}: this law needs '{role}' (given: {', '.join(self._cols) or 'nothing'})")
        return self._cols[role]
