"""A report as one self-contained HTML file: no network, no JavaScript, figures as inline SVG, and the
fit.json embedded in a ``<script type="application/json" id="fit">`` element (data, never run).

Every piece of text is escaped here; the SVG comes from matplotlib with its text drawn as outlines, and is
stripped of its XML prolog and comments, with its ids made unique per figure (several SVGs share a page).
"""

from __future__ import annotations

import re
from html import escape

from .. import __version__
from .blocks import Bullets, Code, Figure, Paragraph, Report, Table

_STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #2a5db0; --warn: #9a5b00; --bad: #b00020; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 28px 48px; }
header h1 { font-size: 26px; margin: 0 0 4px; }
.sub { color: var(--muted); margin: 0 0 14px; }
nav { font-size: 14px; color: var(--muted); border-bottom: 1px solid var(--line); padding-bottom: 10px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
h2 { font-size: 20px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 8px 0; }
ul { margin: 6px 0 10px; padding-left: 22px; }
li { margin: 3px 0; }
pre { background: #f4f6f9; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  font: 14px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; }
table { border-collapse: collapse; margin: 10px 0 4px; font-size: 13.5px; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 13px; padding-top: 6px; }
table.kv td:first-child { color: var(--muted); white-space: nowrap; width: 1%; }
figure { margin: 14px 0 22px; }
figure svg { display: block; width: 100%; max-width: 700px; height: auto; margin: 0 auto; }
.wide { overflow-x: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.alert { border: 2px solid var(--bad); color: var(--bad); font-weight: 600; padding: 10px 14px; border-radius: 6px; }
.at-bound { color: var(--warn); font-weight: 600; }
footer { margin-top: 36px; color: var(--muted); font-size: 13px; border-top: 1px solid var(--line); padding-top: 10px; }
@media print { nav { display: none; } main { max-width: none; } }
"""


def _e(text) -> str:
    return escape(str(text), quote=True)


_PROLOG = re.compile(r"^.*?(?=<svg[\s>])", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(svg: str, prefix: str) -> str:
    """matplotlib's SVG ready to sit inside HTML: no prolog or DOCTYPE, no comments, every id (and each
    reference to it) prefixed so that two figures on one page never share an id."""
    svg = _COMMENT.sub("", _PROLOG.sub("", svg, count=1))
    ids = set(_ID.findall(svg))
    if not ids:
        return svg.strip()

    def ref(match):
        name = match.group(2)
        return f"{match.group(1)}{prefix}{name}" if name in ids else match.group(0)

    svg = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'((?:href="|url\()#)([^")]+)', ref, svg)
    return svg.strip()


def _json_in_script(text: str) -> str:
    """JSON that cannot end its <script> element: <, > and & only occur inside JSON strings, where their
    \\u escapes decode to the same characters."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_NUM = ' class="num"'


def _cell(text: str, numeric: bool) -> str:
    cls = _NUM if numeric else ""
    body = _e(text)
    if "AT A BOUND" in text:
        body = f'<span class="at-bound">{body}</span>'
    return f"<td{cls}>{body}</td>"


def _table(t: Table, kv: bool = False) -> str:
    numeric = t.numeric or [False] * len(t.columns)
    head = "" if kv else ("<thead><tr>" + "".join(
        f"<th{_NUM if n else ''}>{_e(c)}</th>" for c, n in zip(t.columns, numeric)) + "</tr></thead>")
    rows = "".join("<tr>" + "".join(_cell(c, n) for c, n in zip(row, numeric)) + "</tr>" for row in t.rows)
    caption = f"<caption>{_e(t.caption)}</caption>" if t.caption else ""
    kind = ' class="kv"' if kv else ""
    return f'<div class="wide"><table{kind}>{caption}{head}<tbody>{rows}</tbody></table></div>'


def _block(block, figure_index: list[int], section_anchor: str) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre>{_e(block.text)}</pre>"
    if isinstance(block, Table):
        return _table(block, kv=section_anchor == "provenance")
    if isinstance(block, Figure):
        figure_index[0] += 1
        n = figure_index[0]
        svg = inline_svg(block.svg, f"f{n}-")
        return (f'<figure id="figure-{_e(block.name)}"><h3>Figure {n}. {_e(block.title)}</h3>{svg}'
                f"<figcaption>{_e(block.caption)}</figcaption></figure>")
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(report: Report) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    figures = [0]
    nav = "".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in report.sections)
    body = []
    for s in report.sections:
        inner = "".join(_block(b, figures, s.anchor) for b in s.blocks)
        body.append(f'<section id="{_e(s.anchor)}"><h2>{_e(s.title)}</h2>{inner}</section>')
    alert = f'<p class="alert">{_e(report.alert)}</p>' if report.alert else ""
    data = (f'<script type="application/json" id="fit">{_json_in_script(report.fit_json)}</script>'
            if report.fit_json else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"scalefit {_e(__version__)}\">\n"
        f"<title>{_e(report.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{_e(report.title)}</h1><p class=\"sub\">{_e(report.subtitle)}</p></header>\n"
        f"{alert}<nav>{nav}</nav>\n" + "\n".join(body) +
        f"\n<footer>Made with scalefit {_e(__version__)}. Opens offline: no scripts, no external files.</footer>\n"
        f"</main>\n{data}\n</body>\n</html>\n"
    )
