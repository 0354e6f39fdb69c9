"""scalefit: fit and forecast neural scaling laws with honest error bars.

Every entry point loads on first use, so ``import scalefit`` (and ``scalefit --help``) imports no numpy.

``scalefit.fit`` and ``scalefit.law`` are functions that share their names with submodules. Importing a
submodule makes Python bind it to the package attribute of the same name, which would turn
``scalefit.fit(...)`` into "module is not callable" as soon as anything imported ``scalefit.fit`` (the
library does, internally). :class:`_Package` refuses that one binding, so the two names stay the functions
whatever was imported, and in whichever order.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

from .errors import (  # noqa: E402  (errors are dependency-free)
    ConvergenceWarning,
    DataError,
    FitError,
    LawDefinitionError,
    LawNotFoundError,
    ScalefitError,
)

# Public name -> (submodule, attribute), imported on first access.
_LAZY = {
    "fit": ("fit", "fit"),
    "law": ("law", "law"),
    "CurveLaw": ("law", "CurveLaw"),
    "Law": ("law", "Law"),
    "Param": ("law", "Param"),
    "load_runs": ("data", "load_runs"),
    "load_fit": ("result", "load_fit"),
    "get_law": ("registry", "get_law"),
    "forecast": ("forecast", "forecast"),
}
# Names of both a submodule and a public function where the function wins, whatever is imported.
_FUNCTION_OVER_SUBMODULE = frozenset({"fit", "law"})


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _FUNCTION_OVER_SUBMODULE and isinstance(value, types.ModuleType):
            return  # the import system binding the submodule: keep (or later load) the function instead
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value  # cached: later lookups skip this function
        return value
    raise AttributeError(f"module 'scalefit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "ConvergenceWarning",
    "DataError",
    "FitError",
    "LawDefinitionError",
    "LawNotFoundError",
    "ScalefitError",
    *_LAZY,
]
