"""Help pages in click's plain layout, with click's names for values.

The CLI renders help without rich (``rich_markup_mode=None``): typer's rich help panels import rich's
console, tables and panels (about 0.05 s of the 0.17 s ``scalefit --help`` took with them), and plain text
is the same on a terminal and in a pipe. Three things typer's plain layout does would lose or blur
information, and :func:`plain_help` sets them right on the built click commands:

* **value names**: typer 0.29 names values by their Python type (``<str>``, ``<list[str]>``, ``{runs}``
  for a required argument). Options get click's names (``TEXT``, ``INTEGER``, ``FLOAT``; a repeatable
  option names one value, as its help says it repeats), ``FILE`` for the flags that take a path in every
  command (:data:`FILE_FLAGS`), or the ``metavar`` they declare; arguments are named in capitals
  (``RUNS``, ``[RUNS]`` when optional, ``SOURCES...`` for several), as in click.
* **command listings**: click cuts each command's line in a group's listing to the terminal width
  (``...``); every command's listing line is its whole first paragraph instead, wrapped.
* **wrapping**: click wraps lines at hyphens too, which can cut a flag in two (``--price-per-gpu-`` /
  ``hour``); lines are wrapped at spaces only (:class:`WholeWords`).
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any, get_args, get_origin

from typer.core import TyperArgument

_VALUE_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT"}
# Flags whose value is a path to read or write, in every command that has them (tests/test_cli_help.py
# checks each one's help names a file).
FILE_FLAGS = frozenset({"--out", "--plot", "--fit", "--law-file", "--lr-table", "--data-lr-table", "--data",
                        "--baseline", "--junit", "--calibration", "--from", "--via", "--shapes"})


def value_name(annotation: Any) -> str | None:
    """Click's name for a value of this type (``TEXT`` for ``str`` and for ``list[str]``), or None for a
    type this CLI does not use (typer's own name stays)."""
    if get_origin(annotation) is list and len(get_args(annotation)) == 1:
        annotation = get_args(annotation)[0]
    return _VALUE_NAMES.get(annotation)


def first_paragraph(help_text: str | None) -> str:
    """The first paragraph of a help text: what a group's listing shows for the command."""
    return inspect.cleandoc(help_text or "").partition("\f")[0].split("\n\n")[0].strip()


# Stands for "-" while click wraps a text, so that its wrapper sees no hyphen to break at (a private-use
# character: help texts never hold one).
_HELD_HYPHEN = "\ue000"


class WholeWords:
    """Mixed into click's help formatter: texts are wrapped at spaces only, never inside a hyphenated word
    or flag."""

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", _HELD_HYPHEN))

    def write_dl(self, rows, *args, **kwargs) -> None:
        super().write_dl([(term, text.replace("-", _HELD_HYPHEN)) for term, text in rows], *args, **kwargs)

    def getvalue(self) -> str:
        return super().getvalue().replace(_HELD_HYPHEN, "-")


@lru_cache(maxsize=None)
def _plain_context(context_class: type) -> type:
    """``context_class`` making its help formatter with :class:`WholeWords`."""
    formatter = type("PlainHelpFormatter", (WholeWords, context_class.formatter_class), {})
    return type("PlainHelpContext", (context_class,), {"formatter_class": formatter})


class PlainArgument(TyperArgument):
    """A typer argument named as click names it: in capitals, without a type."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else self.name.upper()

    def display_type_rich(self, ctx) -> str | None:  # the type column of the help page: none
        return None

    def _usage_display_name(self) -> str:  # typer writes a required argument as {name}
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def plain_help(command, subcommands: bool = True) -> None:
    """Name the values of ``command``'s parameters (and, with ``subcommands``, those of its subcommands) as
    click does, give each subcommand its whole first paragraph for the group's listing, and wrap help at
    spaces only."""
    formatter = getattr(command.context_class, "formatter_class", None)
    if formatter is not None and not issubclass(formatter, WholeWords):
        command.context_class = _plain_context(command.context_class)
    for param in getattr(command, "params", ()):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None:
            continue
        if type(param) is TyperArgument:
            param.__class__ = PlainArgument  # same object and state; only the three names above differ
        elif param.param_type_name == "option" and param.metavar is None and not getattr(param, "is_flag", False):
            name = value_name(descriptor.annotation)
            if name == "TEXT" and FILE_FLAGS.intersection(param.opts):
                name = "FILE"
            if name is not None:
                param.metavar = name
    if not getattr(command, "short_help", None) and getattr(command, "help", None):
        command.short_help = first_paragraph(command.help)  # its line in a group's listing, whole
    for sub in getattr(command, "commands", {}).values() if subcommands else ():
        plain_help(sub)
