"""Help pages: click's plain text with click's value names, and nothing of the help text lost.

Every page is rendered through the real entry point (CliRunner), the same way for a terminal and a pipe.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from scalefit.cli import app
from scalefit.cli._help import FILE_FLAGS, value_name

runner = CliRunner()
VALUE_NAMES = {"TEXT", "INTEGER", "FLOAT", "FILE"}


def _pages():
    """(path, click command, help page) for the root and every command and subcommand."""
    root = typer.main.get_command(app)

    def walk(group, prefix):
        for name in group.list_commands(None):
            cmd = group.get_command(None, name)
            yield (*prefix, name), cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*prefix, name))

    out = []
    for path, cmd in [((), root), *walk(root, ())]:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert res.exit_code == 0, (path, res.output)
        out.append((path, cmd, res.stdout))
    return out


PAGES = _pages()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_there_are_pages_for_every_command():
    assert len(PAGES) > 30
    assert {" ".join(p) for p, _, _ in PAGES} >= {"", "fit", "predict", "schedule optimize", "cost estimate"}


@pytest.mark.parametrize("path, cmd, page", PAGES, ids=[" ".join(p) or "root" for p, _, _ in PAGES])
def test_a_page_keeps_every_word_of_the_help(path, cmd, page):
    """The command's whole help text and every option's and argument's help (with its default) are on the
    page, word for word; wrapping only moved line breaks."""
    flat = _flat(page)
    text = inspect.cleandoc(cmd.help or "").replace("\b", "")
    assert _flat(text) in flat, path
    for param in cmd.params:
        if getattr(param, "hidden", False) or not getattr(param, "help", None):
            continue
        assert _flat(param.help) in flat, (path, param.name)


@pytest.mark.parametrize("path, cmd, page", PAGES, ids=[" ".join(p) or "root" for p, _, _ in PAGES])
def test_values_are_named_as_click_names_them(path, cmd, page):
    assert not re.search(r"<(str|int|float|bool|list\[[a-z]+\])>|\{[a-z_]+\}", page), (path, page)
    for param in cmd.params:
        if param.param_type_name == "argument":
            name = param.name.upper()
            assert re.search(rf"^Usage: .* \[?{name}\]?(\.\.\.)?( |$)", page, re.M), (path, name)
            assert re.search(rf"^  {name}(\.\.\.)?  ", page, re.M), (path, name)  # its row under Arguments
        elif not param.is_flag and not param.hidden:
            longest = max(param.opts, key=len)
            row = re.search(rf"^  (?:-\w, )?{re.escape(longest)} (\S+)", page, re.M)
            assert row and row.group(1) in VALUE_NAMES, (path, longest, page)
            assert row.group(1) == ("FILE" if FILE_FLAGS & set(param.opts) else
                                    value_name(param.type_descriptor.annotation)), (path, longest)


def test_every_file_flag_takes_a_file():
    """FILE is given by flag name across commands: each such option's help names a file or table."""
    kinds = ("file", "json", "table", "figure", "image", "csv", "parquet", "report", "curves")
    seen = 0
    for path, cmd, _ in PAGES:
        for param in cmd.params:
            if param.param_type_name == "option" and FILE_FLAGS & set(param.opts):
                assert any(k in (param.help or "").lower() for k in kinds), (path, param.opts, param.help)
                seen += 1
    assert seen > 40


def test_listings_show_each_commands_whole_first_paragraph():
    """click would cut a listing line at the terminal width with '...'; here none is cut."""
    for path, cmd, page in PAGES:
        if not hasattr(cmd, "commands"):
            continue
        listing = _flat(page.split("Commands:", 1)[1])
        for name in cmd.list_commands(None):
            sub = cmd.get_command(None, name)
            first = inspect.cleandoc(sub.short_help or sub.help).split("\n\n")[0]
            assert f"{name} {_flat(first)}" in listing, (path, name)
    root = _flat(PAGES[0][2])
    assert "or --hours with --hardware and --gpus for the best model shape in a wall-clock budget." in root


def test_lines_break_at_spaces_only():
    """A flag or a hyphenated word is never cut at its hyphen (click's wrapper would: '--price-per-gpu-')."""
    for path, _, page in PAGES:
        cut = [line for line in page.splitlines() if re.search(r"\w-$", line)]
        assert not cut, (path, cut)
    estimate = next(page for path, _, page in PAGES if path == ("cost", "estimate"))
    assert "--price-per-gpu-hour" in estimate


def test_usage_errors_are_plain_and_name_the_argument():
    res = runner.invoke(app, ["fit", "--no-such-flag"])
    assert res.exit_code == 2
    assert "Usage: root fit [OPTIONS] RUNS" in res.output and "Error: No such option: --no-such-flag" in res.output
    assert "╭" not in res.output and "<str>" not in res.output
    res = runner.invoke(app, ["fit"])
    assert res.exit_code == 2 and "Missing argument 'RUNS'" in res.output


@pytest.mark.skipif(not shutil.which("script") or not sys.platform.startswith("linux"),
                    reason="needs util-linux `script` for a pseudo-terminal")
def test_a_terminal_sees_the_same_page_as_a_pipe():
    """At a terminal (a pty through `script`) the page is the same text as piped: no colour, no panels."""
    scalefit = [sys.executable, "-m", "scalefit", "fit", "--help"]
    env = {"COLUMNS": "100", "PATH": "/usr/bin:/bin"}
    piped = subprocess.run(scalefit, capture_output=True, text=True, env=env, timeout=120).stdout
    tty = subprocess.run(["script", "-qec", " ".join(scalefit), "/dev/null"], capture_output=True, text=True,
                         env=env, timeout=120).stdout
    assert tty.replace("\r\n", "\n") == piped
    assert "\x1b[" not in tty and "-l, --law TEXT" in piped
