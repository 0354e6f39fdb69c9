"""Output helpers shared by every command: results to stdout, everything else to stderr.

Run names, file names and column names come from the user's files and can hold terminal escape
sequences or text that looks like rich markup or an emoji code (``:100:``). Both consoles therefore treat
text as plain (markup and emoji codes off) and show control characters as visible escapes; styled words are
built with :func:`styled`.
"""

from __future__ import annotations

import math
import os
import re
import sys
from typing import Any

# C0 controls except tab and newline, DEL, and the C1 range (ESC and CSI among them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """``text`` with control characters shown as ``\\xNN`` so nothing reaches the terminal raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _plain_console(**options):
    """A rich console that never interprets markup unless asked and never passes control characters on."""
    from rich.console import Console

    class _PlainConsole(Console):
        def render_str(self, text: str, **kwargs):
            return super().render_str(clean(text), **kwargs)

    return _PlainConsole(soft_wrap=True, markup=False, emoji=False, **options)


class _LazyConsole:
    """Stands for a :func:`_plain_console` and makes it on first use, so that a command whose output is
    JSON alone never imports rich (30-40 ms of its start-up)."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name):
        return getattr(self.real, name)

    @property
    def real(self):
        """The rich console itself (made now if it was not yet)."""
        if self._console is None:
            self._console = _plain_console(**self._options)
        return self._console

    @property
    def is_terminal(self) -> bool:
        """rich's answer, without making the console for the common case of a stream that is no
        terminal and no TTY_COMPATIBLE / FORCE_COLOR override (rich would say False there too)."""
        stream = sys.stderr if self._options.get("stderr") else sys.stdout
        isatty = getattr(stream, "isatty", None)
        try:
            plain = isatty is None or not isatty()
        except ValueError:  # a closed stream
            plain = True
        if self._console is None and plain and not {"TTY_COMPATIBLE", "FORCE_COLOR"} & set(os.environ):
            return False
        return self.real.is_terminal

    def __enter__(self):  # rich's Live holds the console as a context (special methods skip __getattr__)
        return self.real.__enter__()

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)


console = _LazyConsole()  # results
err_console = _LazyConsole(stderr=True)  # progress, warnings, errors


def styled(text: Any, style: str):
    """One styled piece of text (user data stays literal): a rich Text."""
    from rich.text import Text

    return Text(clean(text), style=style)


def line(*parts):
    """Join plain strings and :func:`styled` pieces into one rich Text line."""
    from rich.text import Text

    out = Text()
    for part in parts:
        out.append(part if isinstance(part, Text) else clean(part))
    return out


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout (control characters are escaped by JSON itself)."""
    import json

    from .._io import json_safe

    if sys.stdout is None:  # the descriptor was closed at start-up (``>&-``): nowhere to print, as click.echo
        return
    sys.stdout.write(json.dumps(json_safe(obj), indent=2) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    if sys.stderr is None:  # the descriptor was closed at start-up (``2>&-``): nowhere to print, as rich does
        return
    if err_console._console is None and not err_console.is_terminal:  # no colour to show: the line rich
        sys.stderr.write(("warning: " + clean(message)).expandtabs(8) + "\n")  # would print, without importing
        sys.stderr.flush()  # rich (13 ms of a small fit's 0.19 s)
        return
    err_console.print(line(styled("warning:", "yellow"), " ", message), highlight=False)


def info(message: str) -> None:
    if sys.stderr is None:  # as in warn()
        return
    if err_console._console is None:  # no rich console yet, so no live progress display to print around:
        sys.stderr.write(clean(message).expandtabs(8) + "\n")  # the line rich would print, without rich
        sys.stderr.flush()
        return
    err_console.print(message, highlight=False)


def fmt(value: float | None, digits: int = 5) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"
