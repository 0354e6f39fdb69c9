"""scalefit: fit and forecast neural scaling laws with honest error bars.

``law`` and ``fit`` are imported eagerly: each shares its name with a submodule, and only an import
here makes ``scalefit.law``/``scalefit.fit`` the function for good. Other entry points load on first use.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402  (errors are dependency-free)
    ConvergenceWarning,
    DataError,
    FitError,
    LawDefinitionError,
    LawNotFoundError,
    ScalefitError,
)
from .fit import fit  # noqa: E402
from .law import CurveLaw, Law, Param, law  # noqa: E402

_LAZY = {
    "load_runs": ("data", "load_runs"),
    "load_fit": ("result", "load_fit"),
    "get_law": ("registry", "get_law"),
    "forecast": ("forecast", "forecast"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'scalefit' has no attribute {name!r}")


__all__ = [
    "__version__",
    "ConvergenceWarning",
    "DataError",
    "FitError",
    "LawDefinitionError",
    "LawNotFoundError",
    "ScalefitError",
    "CurveLaw",
    "Law",
    "Param",
    "law",
    "fit",
    *_LAZY,
]
