"""Typer's value conversion, cut to what this CLI uses.

Typer (0.29 here) converts every option value, ``None`` included, through a pydantic ``TypeAdapter`` built
on first use; importing pydantic and building one command's adapters took longer than all of ``scalefit
predict``'s own work. :func:`lighten` gives the plain ``str``, ``int``, ``float``, ``bool`` and
``list[str]`` options a converter that returns what pydantic returns for the values it recognises (any
string, a plain decimal number) and hands every other value, errors included, to typer's own converter.

It only skips work: where typer does not look as expected it does nothing and typer's own code runs.
``tests/test_startup.py`` checks that every converted value comes out the same. (Help pages need no such
work: they are click's plain text, without rich; see :mod:`._help`.)
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from functools import lru_cache
from typing import Any, get_args, get_origin

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
