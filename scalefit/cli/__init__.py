"""The ``scalefit`` command: a thin typer layer over the library.

Every command group lives in its own module and exposes ``app``. Library errors
(:class:`scalefit.errors.ScalefitError`) become one line on stderr and an exit code here, in one place.
Heavy imports (pandas, scipy, matplotlib) happen inside the commands so ``scalefit --help`` is fast.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings

import typer
from typer.core import TyperGroup

from .._io import written
from ..errors import ScalefitError
from ._options import leaf_command, to_flags
from ._output import clean

# Options whose value may be left out: ``--reference`` alone means the law's first published set.
_OPTIONAL_VALUE = {"--reference": "default"}
_PATH = "scalefit.command_path"


class _Boundary(TyperGroup):
    """Turns library errors into one-line messages with the right exit code (no tracebacks), naming the
    Python parameters an error lists (``exc.options``) as the flags of the command being run."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        args = list(args)
        for i in range(len(args) - 1, -1, -1):
            if args[i] in _OPTIONAL_VALUE and (i + 1 == len(args) or args[i + 1].startswith("--")):
                args.insert(i + 1, _OPTIONAL_VALUE[args[i]])
        rest = super().parse_args(ctx, args)
        # The command path (``schedule predict``): groups below the root take no options, so the leading
        # words name the subcommands; kept here because click closes each sub-context as an error leaves it.
        ctx.meta[_PATH] = [*ctx._protected_args, *rest]
        return rest

    def invoke(self, ctx):
        before = len(written())
        restore = _catch_termination()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except ScalefitError as exc:
            message = str(exc)
            if getattr(exc, "options", ()):
                message = to_flags(message, exc.options, leaf_command(self, ctx, ctx.meta.get(_PATH, ())))
            message = clean(message.replace("\n", " ").strip())
            typer.echo(f"error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            # Ctrl-C or a termination signal: say honestly which files are complete (each was written
            # atomically, so nothing is half-written) and exit 128 + the signal number.
            done = list(dict.fromkeys(written()[before:]))  # a file rewritten row by row is named once
            outcome = (f"wrote {', '.join(clean(p) for p in done)} before stopping" if done
                       else "nothing was written")
            if isinstance(exc, Terminated):
                typer.echo(f"error: terminated by {exc.name}; {outcome}", err=True)
                ctx.exit(128 + exc.signum)
            typer.echo(f"error: interrupted; {outcome}", err=True)
            ctx.exit(130)
        finally:
            restore()


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) turned into the same clean stop as Ctrl-C: parallel workers
    are stopped and no output is left half-written."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


_TERMINATION = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _catch_termination():
    """Raise :class:`Terminated` in the main thread on SIGTERM/SIGHUP for the command's duration; returns
    the function that restores the previous handlers. A second signal, during the clean-up, ends the process
    at once (the default action); workers still end with it, as they watch their parent."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, frame):
        for sig in _TERMINATION:
            signal.signal(sig, signal.SIG_DFL)
        raise Terminated(signum)

    for sig in _TERMINATION:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):  # pragma: no cover - a platform that refuses
            pass

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    return restore


def _show_warning(message, category, filename, lineno, file=None, line=None):
    typer.echo(f"warning: {clean(message)}", err=True)


app = typer.Typer(
    cls=_Boundary,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Fit and forecast neural scaling laws with honest error bars.",
)


def _version(value: bool):
    if value:
        from .. import __version__

        typer.echo(f"scalefit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    """Fit and forecast neural scaling laws with honest error bars."""


from . import check as _check_cmd  # noqa: E402
from . import cost as _cost_cmd  # noqa: E402
from . import data as _data_cmd  # noqa: E402
from . import fit as _fit_cmd  # noqa: E402
from . import laws as _laws_cmd  # noqa: E402
from . import predict as _predict_cmd  # noqa: E402
from . import schedule as _schedule_cmd  # noqa: E402

app.command("fit")(_fit_cmd.fit_command)
app.command("predict")(_predict_cmd.predict_command)
app.command("check")(_check_cmd.check_command)
app.add_typer(_laws_cmd.app, name="laws")
app.add_typer(_data_cmd.app, name="data")
app.add_typer(_schedule_cmd.app, name="schedule")
app.add_typer(_cost_cmd.app, name="cost")
from . import hparams as _hparams_cmd  # noqa: E402

app.add_typer(_hparams_cmd.app, name="hparams")

from . import compare as _compare_cmd  # noqa: E402
from . import l2l as _l2l_cmd  # noqa: E402

app.command("compare")(_compare_cmd.compare)
app.command("pair")(_l2l_cmd.pair)
app.command("translate")(_l2l_cmd.translate)

from . import importer as _import_cmd  # noqa: E402

app.command("import")(_import_cmd.import_command)  # `import` is a Python keyword: the function has another name

from . import isoflop as _isoflop_cmd  # noqa: E402

app.command("isoflop")(_isoflop_cmd.isoflop_command)

from . import report as _report_cmd  # noqa: E402

app.command("report")(_report_cmd.report_command)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
