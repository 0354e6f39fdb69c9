"""Output helpers shared by every command: results to stdout, everything else to stderr.

Run names, file names and column names come from the user's files and can hold terminal escape
sequences or text that looks like rich markup or an emoji code (``:100:``). Both consoles therefore treat
text as plain (markup and emoji codes off) and show control characters as visible escapes; styled words are
built with :func:`styled`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 controls except tab and newline, DEL, and the C1 range (ESC and CSI among them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """``text`` with control characters shown as ``\\xNN`` so nothing reaches the terminal raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


class _PlainConsole(Console):
    """A console that never interprets markup unless asked and never passes control characters on."""

    def render_str(self, text: str, **kwargs) -> Text:
        return super().render_str(clean(text), **kwargs)


console = _PlainConsole(soft_wrap=True, markup=False, emoji=False)  # results
err_console = _PlainConsole(stderr=True, soft_wrap=True, markup=False, emoji=False)  # progress, warnings, errors


def styled(text: Any, style: str) -> Text:
    """One styled piece of text (user data stays literal)."""
    return Text(clean(text), style=style)


def line(*parts: str | Text) -> Text:
    """Join plain strings and :func:`styled` pieces into one line."""
    out = Text()
    for part in parts:
        out.append(part if isinstance(part, Text) else clean(part))
    return out


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout (control characters are escaped by JSON itself)."""
    from .._io import json_safe

    sys.stdout.write(json.dumps(json_safe(obj), indent=2) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    err_console.print(line(styled("warning:", "yellow"), " ", message), highlight=False)


def info(message: str) -> None:
    err_console.print(message, highlight=False)


def fmt(value: float | None, digits: int = 5) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"
