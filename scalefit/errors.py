"""Errors and warnings. The CLI turns every ScalefitError into one line on stderr and an exit code.

A message names the *Python* parameters a caller passed (``n_bootstrap=-1: ...``), never a command-line
flag; ``options`` lists those names, so that the CLI can name the flag the user typed instead.
"""

from __future__ import annotations


class ScalefitError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with (2: bad usage or input).

    ``options``: the Python parameter names the message mentions (``("tokens", "compute")``), in the
    forms ``name`` and ``name=value``; the CLI replaces each with the flag of the command being run.
    """

    exit_code = 2

    def __init__(self, *args, options: tuple[str, ...] | list[str] = ()):
        super().__init__(*args)
        self.options: tuple[str, ...] = tuple(options)

    def __reduce__(self):
        # Exceptions pickle as cls(*args): carry the keyword-only options across (parallel workers).
        return (_rebuild, (type(self), self.args, self.options), self.__dict__)


def _rebuild(cls, args, options):
    return cls(*args, options=options)


class DataError(ScalefitError, ValueError):
    """The input table (file, column or value) is unusable; the message names which."""


class LawDefinitionError(ScalefitError, TypeError):
    """A law file or law object is malformed; the message names the file."""


class LawNotFoundError(ScalefitError, LookupError):
    """No law of that name; the message lists the known names."""


class FitError(ScalefitError, RuntimeError):
    """A fit could not be carried out (e.g. too few runs for the parameters)."""


class CheckFailed(ScalefitError):
    """A requested check ran and failed (drift, strict diagnostics): exit code 1."""

    exit_code = 1


class ConvergenceWarning(UserWarning):
    """The optimiser finished but the result is doubtful; the message says what to change."""


class UnitsWarning(UserWarning):
    """A forecast or comparison mixes loss units or parameter-count conventions."""


def shown(value) -> str:
    """A value as a message shows it after ``name=``: strings quoted as Python would, paths (``Path``) as
    they are, like every file name in a message, numbers short (``1e+308``, ``0.95``, ``-1``), numpy scalars
    as the Python number they hold."""
    if hasattr(value, "__fspath__"):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def option_error(param: str, value, rule: str, cls: type[ScalefitError] = DataError,
                 options: tuple[str, ...] = ()) -> ScalefitError:
    """The one template for "this option's value is bad": ``param=value: rule``, naming ``param`` (and any
    other parameter in ``options`` that ``rule`` mentions) for the CLI. Returns the error; raise it."""
    return cls(f"{param}={shown(value)}: {rule}", options=(param, *options))
