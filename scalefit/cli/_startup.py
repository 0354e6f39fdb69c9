"""Typer's start-up work, cut to what this CLI uses.

Two pieces of work that typer does on every run cost more than this CLI needs from them:

* **help rendering**: ``typer.rich_utils`` (imported for any help page or usage error) imports
  ``rich.markdown`` (markdown-it, pygments) and ``rich.traceback`` (rich.pretty, attrs) at module level,
  about two thirds of its import time, for markdown help text and pretty tracebacks; this CLI renders help
  in rich markup mode and turns pretty exceptions off. After :func:`defer_rich_help_imports`, typer.rich_utils
  is imported (when typer first needs it) with stand-ins for those two modules, which load the real ones
  if anything ever uses them.
* **value conversion**: typer (0.29 here) converts every option value, ``None`` included, through a pydantic
  ``TypeAdapter`` built on first use; importing pydantic and building one command's adapters took longer
  than all of ``scalefit predict``'s own work. :func:`lighten` gives the plain ``str``, ``int``, ``float``,
  ``bool`` and ``list[str]`` options a converter that returns what pydantic returns for the values it
  recognises (any string, a plain decimal number) and hands every other value, errors included, to
  typer's own converter.

Both only skip work: where typer does not look as expected they do nothing and typer's own code runs.
``tests/test_startup.py`` checks that every help page and converted value comes out the same.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from functools import lru_cache
from typing import Any, get_args, get_origin

# ---------------------------------------------------------------------------------------------- help pages
_DEFERRED = {"rich.markdown": ("Markdown",), "rich.traceback": ("Traceback",)}


class _Deferred(type):
    """A class standing for ``cls._home.<name>``: calling it or reading an attribute loads the real one."""

    def _real(cls):
        return getattr(importlib.import_module(cls._home), cls.__name__)

    def __call__(cls, *args, **kwargs):
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._real(), name)

    def __instancecheck__(cls, obj):  # no instance exists before the real module is loaded
        real = getattr(sys.modules.get(cls._home), cls.__name__, cls)
        return real is not cls and isinstance(obj, real)


def _stand_in(home: str) -> types.ModuleType:
    module = types.ModuleType(home)
    for name in _DEFERRED[home]:
        setattr(module, name, _Deferred(name, (), {"_home": home}))
    return module


class _WithStandIns:
    """The loader of ``typer.rich_utils``, running it with stand-ins for the modules in :data:`_DEFERRED`
    (removed again at once, so any other import of them gets the real module)."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_source, get_filename, ... as the real loader has them
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        stand_ins = {home: _stand_in(home) for home in _DEFERRED if home not in sys.modules}
        sys.modules.update(stand_ins)
        try:
            self._loader.exec_module(module)
        except ImportError:  # a typer that wants more from these modules: run it with the real ones
            for home in stand_ins:
                sys.modules.pop(home, None)
            stand_ins = {}
            self._loader.exec_module(module)
        finally:
            for home, stand_in in stand_ins.items():
                if sys.modules.get(home) is stand_in:
                    del sys.modules[home]


class _RichHelpFinder:
    """Finds ``typer.rich_utils`` (once, the ordinary way) and gives it the :class:`_WithStandIns` loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "typer.rich_utils":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _WithStandIns(spec.loader)
        return spec


def defer_rich_help_imports() -> None:
    """Make a later import of ``typer.rich_utils`` (typer imports it for a help page or a usage error, and
    only then) skip ``rich.markdown`` and ``rich.traceback``; see the module's docstring."""
    if "typer.rich_utils" in sys.modules or any(isinstance(f, _RichHelpFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _RichHelpFinder())


# ------------------------------------------------------------------------------------------ option values
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")  # up to 18 digits (far below int()'s digit limit): int(text)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # float(text), correctly rounded
_MISS = object()


def _as_str(value: Any) -> Any:
    return value if type(value) is str else _MISS


def _as_int(value: Any) -> Any:
    if type(value) is int:
        return value
    return int(value) if type(value) is str and _INT.fullmatch(value) else _MISS


def _as_float(value: Any) -> Any:
    if type(value) is float:
        return value
    return float(value) if type(value) is str and _FLOAT.fullmatch(value) else _MISS


def _as_str_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and all(type(item) is str for item in value):
        return list(value)
    return _MISS


def _as_bool(value: Any) -> Any:  # typer converts flags itself; this meets the --help flag's unset value
    return value if type(value) is bool else _MISS


def _kind(annotation: Any):
    if annotation is str:
        return _as_str
    if annotation is int:
        return _as_int
    if annotation is float:
        return _as_float
    if annotation is bool:
        return _as_bool
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return _as_str_list
    return None


@lru_cache(maxsize=None)
def _light_class(convert):
    """A typer ``RuntimeParam`` that converts with ``convert`` and falls back to typer's own converter (which
    then replaces it on the parameter, so typer's path runs from there on)."""
    from typer._coercion import RuntimeParam, build_runtime_param

    def _coerce_value(self, value, param, ctx):
        out = convert(value)
        if out is not _MISS:
            return out
        full = build_runtime_param(param.type_descriptor)
        param._runtime_param = full
        return full._coerce_value(value, param=param, ctx=ctx)

    return type(f"Light{convert.__name__}", (RuntimeParam,), {"_coerce_value": _coerce_value})


_PLAIN_CHECKS = ("is_file", "is_path", "is_choice", "is_ranged", "is_datetime")
# What click asks a context for when it makes a command's --help option (this CLI keeps the default name).
_HELP_CONTEXT = types.SimpleNamespace(help_option_names=["--help"])


def _help_option(command):
    """``command``'s --help option, made now (click makes it on first parse) so that it can be lightened."""
    if "help_option_names" in (getattr(command, "context_settings", None) or {}):
        return None
    try:
        return command.get_help_option(_HELP_CONTEXT)
    except Exception:  # a click that wants a real context: leave it to typer
        return None


def lighten(command, subcommands: bool = True) -> None:
    """Give ``command``'s plain options, its --help and (with ``subcommands``) those of its subcommands the
    light converter (see above)."""
    if "typer._coercion" not in sys.modules:
        try:
            importlib.import_module("typer._coercion")
        except ImportError:  # a typer that converts with click's own types: nothing to lighten
            return
    for param in [*getattr(command, "params", ()), _help_option(command)]:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", _MISS) is not None:
            continue
        info = descriptor.parameter_info
        if getattr(info, "parser", None) is not None or any(getattr(descriptor, c, True) for c in _PLAIN_CHECKS):
            continue
        convert = _kind(descriptor.annotation)
        if convert is not None:
            param._runtime_param = _light_class(convert)(parameter_info=info, annotation=descriptor.annotation)
    if subcommands:
        for sub in getattr(command, "commands", {}).values():
            lighten(sub)
