"""A report as GitHub-flavoured Markdown, for a pull-request comment or a CI job summary: headings, pipe
tables, and each figure as an SVG file beside the .md (``<stem>_<figure>.svg``), linked by a relative path.

Text from the fit or the data (run and column names) is escaped so that it reads as itself: no table cell
breaks on a ``|``, no name turns into emphasis, a link or HTML.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from .. import __version__
from .blocks import Bullets, Code, Figure, Paragraph, Report, Table

_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")  # inline markup (and GitHub's $math$) anywhere in a line
_LEADING = re.compile(r"^(\s*)([#+-]|\d+)([.)]?)")  # block markup where a line starts: heading, list item


def md_escape(text, line_start: bool = True) -> str:
    """Plain text as Markdown that renders as the same text (HTML characters as entities, Markdown
    punctuation backslash-escaped, line breaks as spaces). ``line_start``: the text may begin a line, where
    ``#``, ``-``, ``+`` and ``1.`` would start a heading or a list (not so in a table cell)."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", " ".join(text.splitlines()))
    if not line_start:
        return text

    def defuse(m):
        lead, mark, dot = m.groups()
        return f"{lead}{mark}\\{dot}" if mark[0].isdigit() and dot else \
            f"{lead}\\{mark}{dot}" if not mark[0].isdigit() else m.group(0)
    return _LEADING.sub(defuse, text)


def md_table(columns, rows, numeric=None) -> str:
    """A GitHub pipe table: a header row, an alignment row (numbers right-aligned), one row per entry."""
    numeric = numeric or [False] * len(columns)
    head = "| " + " | ".join(md_escape(c, False) or " " for c in columns) + " |"
    align = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(md_escape(c, False) for c in row) + " |" for row in rows]
    return "\n".join([head, align, *body])


def _fence(text: str) -> str:
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, ticks + 1)
    return f"{fence}text\n{text}\n{fence}"


def render_markdown(report: Report, image_stem: str) -> tuple[str, dict[str, str]]:
    """``(markdown, {file name: SVG text})``: the figures are to be written beside the .md under the
    names given, ``<image_stem>_<figure name>.svg``."""
    out = [f"# {md_escape(report.title, False)}", "", md_escape(report.subtitle), ""]
    if report.alert:
        out += [f"> **{md_escape(report.alert, False)}**", ""]
    images: dict[str, str] = {}
    n = 0
    for section in report.sections:
        out += [f"## {md_escape(section.title, False)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                out += [md_escape(block.text), ""]
            elif isinstance(block, Bullets):
                out += [f"- {md_escape(item)}" for item in block.items] + [""]
            elif isinstance(block, Code):
                out += [_fence(block.text), ""]
            elif isinstance(block, Table):
                columns = block.columns if any(block.columns) else ["item", "value"]
                out += [md_table(columns, block.rows, block.numeric), ""]
                if block.caption:
                    out += [f"*{md_escape(block.caption, False)}*", ""]
            elif isinstance(block, Figure):
                n += 1
                name = f"{image_stem}_{block.name}.svg"
                images[name] = block.svg
                out += [f"**Figure {n}. {md_escape(block.title, False)}**", "",
                        f"![{md_escape(block.title, False)}]({quote(name)})", "",
                        f"*{md_escape(block.caption, False)}*", ""]
            else:
                raise TypeError(f"unknown report block {type(block).__name__}")
    out += ["---", f"*Made with scalefit {md_escape(__version__, False)}.*", ""]
    return "\n".join(out), images


def check_markdown(report, new: str = "new fit", baseline: str = "baseline") -> str:
    """A :class:`scalefit.check.CheckReport` as Markdown for a CI job summary or a PR comment: the verdict,
    the rule, one table row per compared quantity, and the notes."""
    rule = {"interval": f"drift when the new value leaves the baseline's {report.ci:.0%} interval",
            "overlap": f"drift when the new and baseline {report.ci:.0%} intervals stop overlapping"}[report.rule]
    verdict = (f"passed: all {len(report.rows)} quantities within tolerance" if report.passed else
               f"DRIFT: {len(report.drifted)} of {len(report.rows)} quantities moved")
    rows = []
    for r in report.rows:
        rel = f" ({100 * r.rel_change:+.2f} %)" if r.rel_change is not None else ""
        rows.append([r.name, r.kind, f"{r.baseline:.6g}", f"{r.new:.6g}", f"{r.change:+.3g}{rel}", r.allowed,
                     "ok" if r.ok else "**DRIFT**"])
    table = md_table(["quantity", "kind", "baseline", "new", "change", "allowed", "verdict"], rows,
                     [False, False, True, True, True, False, False])
    # the verdict cell is ours, not user text: let its emphasis through
    table = table.replace("\\*\\*DRIFT\\*\\*", "**DRIFT**")
    out = [f"### scalefit check: {md_escape(verdict, False)}", "",
           f"{md_escape(new, False)} against {md_escape(baseline, False)}; {md_escape(rule, False)} "
           f"(explicit tolerances override the rule).", "", table, ""]
    out += [f"- {md_escape(note)}" for note in report.notes]
    return "\n".join(out).rstrip() + "\n"
