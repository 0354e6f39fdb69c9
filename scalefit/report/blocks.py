"""The plain pieces a report is made of, and numbers as report text. Every string in a block is plain text
(a run name, a column name, a law's formula); the renderers (:mod:`~scalefit.report.html`,
:mod:`~scalefit.report.markdown`) escape it. Figures are SVG text from :mod:`scalefit.plot`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


# ---------------------------------------------------------------------- blocks
@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: list[bool] | None = None  # right-align these columns


@dataclass
class Figure:
    name: str  # short file-name-safe id: "fit", "residuals", "forecast"
    title: str
    caption: str
    svg: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    anchor: str = ""


@dataclass
class Report:
    title: str
    subtitle: str
    alert: str | None  # a failed fit says so first
    sections: list[Section]
    fit_json: str  # the fit.json this report describes, with its draws inline


# ---------------------------------------------------------------------- numbers as text
def num(x, digits: int = 6) -> str:
    if x is None or not isinstance(x, (int, float, np.floating, np.integer)) or not math.isfinite(float(x)):
        return "–"
    return f"{float(x):.{digits}g}"


def interval(low, high, digits: int = 5) -> str:
    if low is None or high is None:
        return "–"
    if math.isinf(float(high)):
        return f"[{num(low, digits)}, unbounded]"
    return f"[{num(low, digits)}, {num(high, digits)}]"


def percent(x, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):+.{digits}g} %"


def count(x) -> str:
    from ..units import format_count

    return "–" if x is None or not math.isfinite(float(x)) else format_count(float(x))
