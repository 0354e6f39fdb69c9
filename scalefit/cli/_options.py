"""Option parsing shared by commands (NAME=VALUE assignments, ties, size strings), and option naming:
the library's errors name Python parameters (``n_bootstrap=-1``); :func:`to_flags` names them as the flags
of the command being run (``--bootstrap -1``).

The flags come from click itself: each parameter's ``name`` and its longest ``--`` spelling. Where a
library parameter has another name on the command line, :data:`ALIASES` says which; nothing else is listed.
"""

from __future__ import annotations

import ast
import re
from typing import Iterable

from ..errors import DataError

# Library parameter -> the command's parameter(s) that carry it, tried in order (``schedule predict`` reads
# its data through ``--data-schedule``/``--data-lr-table``; ``fit`` and ``data check`` through
# ``--schedule``/``--lr-table``). A library name equal to the command's parameter name needs no entry.
ALIASES: dict[str, tuple[str, ...]] = {
    "n_bootstrap": ("bootstrap",),
    "fixed": ("set_",),
    "set_values": ("set_",),
    "columns": ("col",),
    "keys": ("by",),
    "law_files": ("law_file",),
    "schedules": ("data_schedule", "schedule"),
    "lr_table": ("data_lr_table", "lr_table"),
    "price_per_gpu_hour": ("price",),
    "update_baseline": ("update",),
    "overrides": ("set_",),
    "name": ("hardware",),  # get_hardware(name=...)
    "source_fit": ("source",),  # translate_fit(source_fit, via_fit): --from, --via
    "via_fit": ("via",),
    "by": ("holdout_by",),  # backtest(by=...): --holdout-by
    "ties": ("tie",),
}
# Advice that names another command's flag ("refit with --bootstrap N" from ``check`` or ``predict``).
ELSEWHERE: dict[str, str] = {"n_bootstrap": "--bootstrap"}


def command_flags(command) -> dict[str, tuple[str, bool]]:
    """``{parameter name: (longest --flag, is a boolean flag)}`` for a click command's options."""
    out = {}
    for param in getattr(command, "params", ()):
        longs = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if getattr(param, "param_type_name", "") == "option" and longs:
            out[param.name] = (max(longs, key=len), bool(getattr(param, "is_flag", False)))
    return out


def library_flags(command) -> dict[str, str]:
    """``{library parameter: flag}`` for the command: its own parameter names, and the :data:`ALIASES`."""
    flags = command_flags(command)
    out = {name: flag for name, (flag, _) in flags.items()}
    for name, candidates in ALIASES.items():
        hit = next((flags[c][0] for c in candidates if c in flags), None)
        if hit:
            out[name] = hit
    return out


_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_VALUE = rf"{_QUOTED}|\{{[^{{}}]*\}}|\[[^\[\]]*\]|[^\s,;:()\[\]{{}}]+"
_PAIR = re.compile(rf"\s*({_QUOTED}|[^:,{{}}\s]+)\s*:\s*({_QUOTED}|[^,{{}}]+?)\s*(?:,|$)")


def _word(text: str) -> str:
    """A Python literal as one would type it on the command line: strings bare when safe, else in quotes."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text.strip()
    if not isinstance(value, str):
        return text.strip()
    return value if re.fullmatch(r"[\w./:=,%+@*-]+", value) else '"' + value.replace('"', '\\"') + '"'


def _as_flag(flag: str, is_flag: bool, value: str | None) -> str:
    """``name=value`` in a message as typed after ``flag``: ``'x'`` stays quoted, ``{'E': 1.69}`` becomes
    ``--set E=1.69`` (one per entry), ``['N', 'D']`` becomes ``N,D``, ``True`` of a switch disappears."""
    if value is None:
        return flag
    if value.startswith("{"):
        pairs = _PAIR.findall(value[1:-1])
        return " ".join(f"{flag} {_word(k)}={_word(v)}" for k, v in pairs) if pairs else f"{flag} {value}"
    if value.startswith("["):
        try:
            items = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return f"{flag} {value}"
        return f"{flag} {','.join(str(i) for i in items)}"
    if is_flag and value == "True":
        return flag
    return f"{flag} {value}"


def to_flags(message: str, options: Iterable[str], command) -> str:
    """``message`` with each Python parameter in ``options`` named as ``command``'s flag.

    Where the message gives the parameter a value (``tokens=1e+30``, ``fixed={'E': 1.69}``) those are what
    it names: each becomes ``--flag value`` and any other ``tokens`` in the message is ordinary English
    (``(1 to 1e+24 tokens)``, ``columns are: ...``). Otherwise each bare whole word ``name`` becomes
    ``--flag``, except right after a number (a unit: ``7e+09 params``) or inside a quoted name, a path, a
    dotted name or a flag. A name with no flag in this command (nor in :data:`ELSEWHERE`) stays as it is.
    """
    switches = {flag for flag, switch in command_flags(command).values() if switch}
    named = library_flags(command)
    for name in sorted(set(options), key=len, reverse=True):
        flag = named.get(name) or ELSEWHERE.get(name)
        if not flag:
            continue
        word = rf"(?<![\w.'\"`=/-])(?<!\d ){re.escape(name)}"
        valued = re.compile(rf"{word}=({_VALUE})")
        if valued.search(message):
            message = valued.sub(lambda m, f=flag: _as_flag(f, f in switches, m.group(1)), message)
        else:
            message = re.sub(rf"{word}(?![\w'\"`=/-]|\.\w)", flag.replace("\\", "\\\\"), message)
    return message


def leaf_command(root, ctx, path: Iterable[str]):
    """The command being run: from ``root`` down the command names in ``path`` (``["schedule", "predict"]``)."""
    command = root
    for name in path:
        get = getattr(command, "get_command", None)
        sub = get(ctx, name) if get else None
        if sub is None:
            break
        command = sub
    return command


def parse_assignments(items: Iterable[str] | None, flag: str = "--set") -> dict[str, float]:
    """``["E=1.69", "alpha=0.34"]`` -> ``{"E": 1.69, "alpha": 0.34}`` (values may be size strings)."""
    from ..units import parse_count

    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise DataError(f"{flag} '{item}': expected NAME=VALUE, e.g. {flag} E=1.69")
        out[name.strip()] = parse_count(value.strip(), what=f"{flag} {name.strip()}")
    return out


def parse_ties(items: Iterable[str] | None) -> dict[str, str]:
    """``["beta=alpha"]`` -> ``{"beta": "alpha"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, source = item.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise DataError(f"--tie '{item}': expected NAME=OTHER, e.g. --tie beta=alpha")
        out[name.strip()] = source.strip()
    return out


def echo_size(text: str | None, what: str, unit: str) -> float | None:
    """A size option (``7B``, ``1.4T``, ``5.8e23``): positive, and echoed on stderr as it was read."""
    if text is None:
        return None
    from ..units import parse_positive
    from ._output import info

    value = parse_positive(text, what=what)
    shown = f"{value:.2e}" if unit in ("params", "tokens", "FLOPs") else f"{value:,.6g}"
    info(f"{text} → {shown} {unit}")
    return value


def parse_law_options(items: Iterable[str] | None) -> dict[str, str]:
    """``--law-opt lam=0.99`` (repeatable) -> ``{"lam": "0.99"}``; the law validates the values."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--law-opt '{item}': expected KEY=VALUE, e.g. --law-opt lam=0.99")
        out[key.strip()] = value.strip()
    return out
