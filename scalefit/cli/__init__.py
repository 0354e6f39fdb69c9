"""The ``scalefit`` command: a thin typer layer over the library.

Every command group lives in its own module and exposes ``app``. Library errors
(:class:`scalefit.errors.ScalefitError`) become one line on stderr and an exit code here, in one place.
Start-up stays small: a command's module is imported only when it runs (:data:`COMMANDS`), each imports
the library inside its function, and typer's own start-up work is cut to what is used (:mod:`._startup`);
``scalefit --help`` imports neither numpy nor pydantic nor rich. Help pages are click's plain text, with
click's names for values (:mod:`._help`).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import warnings
from collections.abc import MutableMapping

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import ScalefitError
from ._help import first_paragraph, plain_help
from ._startup import lighten

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
        before = len(_written())
        restore = _catch_termination()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except ScalefitError as exc:
            from ._options import leaf_command, to_flags  # here: only an error needs them (not --help)
            from ._output import clean

            message = str(exc)
            if getattr(exc, "options", ()):
                message = to_flags(message, exc.options, leaf_command(self, ctx, ctx.meta.get(_PATH, ())))
            message = clean(message.replace("\n", " ").strip())
            typer.echo(f"error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            from ._output import clean

            # Ctrl-C or a termination signal: say honestly which files are complete (each was written
            # atomically, so nothing is half-written) and exit 128 + the signal number.
            done = list(dict.fromkeys(_written()[before:]))  # a file rewritten row by row is named once
            outcome = (f"wrote {', '.join(clean(p) for p in done)} before stopping" if done
                       else "nothing was written")
            if isinstance(exc, Terminated):
                typer.echo(f"error: terminated by {exc.name}; {outcome}", err=True)
                ctx.exit(128 + exc.signum)
            typer.echo(f"error: interrupted; {outcome}", err=True)
            ctx.exit(130)
        finally:
            restore()


def _written() -> list:
    """Files this process has written so far, without importing the writer (``_io``, with tempfile) for a
    command that writes nothing: not imported yet means none."""
    io = sys.modules.get(__name__.rpartition(".")[0] + "._io")
    return io.written() if io is not None else []


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
    from ._output import clean

    typer.echo(f"warning: {clean(message)}", err=True)


# Every command, in the order `scalefit --help` lists them: name -> (module of scalefit.cli, attribute: a
# command function or a typer app of subcommands, the first paragraph of its help). A command's module is
# imported only when that command runs or shows its help, so `scalefit --help` imports none of them; the
# help line is kept here for the root listing (tests/test_startup.py checks it against each command).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "fit": ("fit", "fit_command", "Fit a law with the robust multi-start fitter; bootstrap over runs for intervals."),
    "predict": ("predict", "predict_command",
                "Forecast loss: give two of --params/--tokens/--compute, or one for the compute-optimal rest; "
                "or --hours\nwith --hardware and --gpus for the best model shape in a wall-clock budget."),
    "check": ("check", "check_command",
              "Compare a fit with a baseline: exit 0 within tolerance, 1 on drift, 2 when they cannot be compared."),
    "compare": ("compare", "compare",
                "Fit each law without the largest models and report in-range and held-out absolute relative error."),
    "pair": ("l2l", "pair", "Build a loss-to-loss table: one row per model pair, the two losses side by side."),
    "translate": ("l2l", "translate",
                  "Translate a scaling law to another training set: alpha' = kappa alpha, beta' = kappa beta,\n"
                  "A' = A K^(1/(kappa alpha)), B' = B K^(1/(kappa beta)), E' = E_y."),
    "import": ("importer", "import_command",  # `import` is a Python keyword: the function has another name
               "Import training curves into one table that `scalefit fit` reads: run, step, loss (+ lr, tokens, "
               "flops)."),
    "isoflop": ("isoflop", "isoflop_command",
                "Fit a parabola of loss against log N per compute budget, take each minimum, and fit N_opt ∝ C^a "
                "and\nD_opt ∝ C^b across budgets, with intervals from resampling runs within budgets."),
    "report": ("report", "report_command",
               "Write a report of a fit that a person who never ran scalefit can read: the law, the parameters "
               "with\nintervals, the diagnostics in words, figures, forecasts and backtests; the HTML embeds the "
               "fit.json."),
    "laws": ("laws", "app", "List the available laws and show one in detail."),
    "data": ("data", "app", "Inspect and validate run tables."),
    "schedule": ("schedule", "app", "Predict, compare and optimise LR schedules with a curve law."),
    "cost": ("cost", "app", "Wall-clock cost of training: step time, hours, GPU-hours, dollars."),
    "hparams": ("hparams", "app",
                "Optimal learning rate and batch size: fit the Step Law to a sweep, forecast it (Li et al. 2025)."),
}

# rich_markup_mode=None: help pages and usage errors in click's plain text, without rich (see ._help).
_SETTINGS = dict(pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)


def build_command(name: str):
    """The click command ``name`` exactly as typer builds it for a subcommand of the root (the same typer
    calls on a holder app with the root's settings), with light value conversion (:mod:`._startup`)."""
    module, attr, _ = COMMANDS[name]
    target = getattr(importlib.import_module(f".{module}", __name__), attr)
    holder = typer.Typer(**_SETTINGS)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
        command = typer.main.get_command(holder).commands[name]
    else:
        holder.command(name)(target)
        command = typer.main.get_command(holder)
    lighten(command)
    plain_help(command)
    return command


class _Commands(MutableMapping):
    """The root's subcommands by name, in listing order; one named in :data:`COMMANDS` is built on first
    access (:func:`build_command`)."""

    def __init__(self, added=None):
        self._names = dict.fromkeys([*COMMANDS, *(added or {})])
        self._built = dict(added or {})

    def __getitem__(self, name):
        if name not in self._built:
            if name not in self._names or name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = build_command(name)
        return self._built[name]

    def built(self, name):
        """The command if it is built already, else None (nothing is imported)."""
        return self._built.get(name)

    def __contains__(self, name):  # without building it
        return name in self._names

    def __setitem__(self, name, command):
        self._names[name] = None
        self._built[name] = command

    def __delitem__(self, name):
        del self._names[name]
        self._built.pop(name, None)

    def __iter__(self):
        return iter(list(self._names))

    def __len__(self):
        return len(self._names)


class _Root(_Boundary):
    """The root group: subcommands load on demand, and its help lists them from :data:`COMMANDS` without
    loading any."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)
        self._listing = False

    def main(self, *args, **kwargs):
        lighten(self, subcommands=False)
        plain_help(self, subcommands=False)
        return super().main(*args, **kwargs)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx, name: str):
        if self._listing and name in COMMANDS and name in self.commands and self.commands.built(name) is None:
            listed = COMMANDS[name][2]  # its line in the listing, whole (click would cut it); nothing imported
            return TyperCommand(name, help=listed, short_help=first_paragraph(listed))
        return self.commands.get(name)

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=_Root,
    no_args_is_help=True,
    **_SETTINGS,
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


def main() -> None:
    """The command line in this process: ends with ``SystemExit`` carrying the exit status."""
    app()


def run() -> None:  # the console script and ``python -m scalefit``
    """:func:`main`, then the process ends with its exit status (:func:`_leave`)."""
    try:
        main()
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code) -> None:
    """End the process with exit status ``code``, skipping the interpreter's teardown where nothing needs
    it: freeing every module and object of a process that imported numpy took 25-40 ms, a tenth of a
    point fit's whole command. The output streams are flushed first, and every file this program writes is
    closed by then (written atomically and renamed). The normal exit runs instead where something
    registered work for it (an ``atexit`` handler: logging, a ray or dask client, loky's executor,
    coverage), a profiler or tracer watches (``python -m cProfile``, a debugger), a non-daemon thread
    still runs, the status is not a number, or a stream cannot be flushed (a closed pipe: the normal exit
    reports it as it always has)."""
    import atexit
    import os

    pending = getattr(atexit, "_ncallbacks", None)
    if (not isinstance(code, (int, type(None))) or pending is None or pending()
            or sys.getprofile() is not None or sys.gettrace() is not None
            or any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread())):
        sys.exit(code)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the descriptor was closed at start-up (``>&-``)
                stream.flush()
    except Exception:
        sys.exit(code)
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    run()
