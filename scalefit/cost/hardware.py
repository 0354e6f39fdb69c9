"""Named accelerators: the hardware table (dense BF16 peak, HBM, interconnect) and :class:`Hardware`.

The table is ``data/hardware.csv`` in a source checkout and ``scalefit/_data/hardware.csv`` in an
installed wheel (pyproject.toml force-includes it there); every figure carries its source. A device is
looked up by name or alias, case- and punctuation-insensitively, or defined by explicit figures
(``peak_tflops``, ``hbm_gbps``, ``net_gbps``) that also override a table row.

Left out: peaks other than dense BF16 (FP8, structured sparsity), clocks that throttle under power or
heat, and network topology beyond two tiers -- a scale-up link domain (an NVLink node, a TPU slice) and
one per-device scale-out figure beyond it; a hierarchical all-reduce is not modelled.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError
from .ranges import check_range

# The scalefit package directory (this file is scalefit/cost/hardware.py): the wheel's copy of the table
# sits at scalefit/_data/hardware.csv, the checkout's at <repo>/data/hardware.csv.
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Hardware:
    """One accelerator: dense BF16 peak, HBM, interconnect; per device, SI units (FLOP/s, B/s, B)."""

    name: str
    peak_flops: float
    hbm_bw: float
    hbm_bytes: float | None = None
    link_bw: float | None = None  # scale-up link (NVLink / ICI), bidirectional, per device
    link_domain: int = 1  # devices reachable over that link (an 8-GPU node; a TPU pod)
    scaleout_bw: float | None = None  # per-device network bandwidth beyond the link domain
    source: str = ""

    def allreduce_bw(self, gpus: float) -> float:
        """Per-device bandwidth a ring all-reduce over ``gpus`` devices runs at (B/s, one direction).

        Inside the link domain: half the bidirectional link figure; beyond it: the scale-out network.
        """
        inside = self.link_bw / 2.0 if self.link_bw else None
        if gpus <= max(self.link_domain, 1):
            bw = inside or self.scaleout_bw
        else:
            bw = self.scaleout_bw or inside
        if not bw:
            raise DataError(
                f"hardware '{self.name}': no interconnect bandwidth for {int(gpus)} devices; pass net_gbps",
                options=("net_gbps",)
            )
        return bw

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware_table_path() -> Path:
    """``<repo>/data/hardware.csv`` in a checkout, ``scalefit/_data/hardware.csv`` in an installed wheel."""
    checkout = _PACKAGE_DIR.parent / "data" / "hardware.csv"
    if checkout.is_file() and (_PACKAGE_DIR.parent / "pyproject.toml").exists():
        return checkout
    return _PACKAGE_DIR / "_data" / "hardware.csv"


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def hardware_table() -> list[dict[str, Any]]:
    """The rows of the hardware table, as dicts (strings and floats; empty cells -> None)."""
    import csv

    path = hardware_table_path()
    if not path.is_file():
        raise DataError(f"{path}: hardware table missing; reinstall scalefit or pass peak_tflops and hbm_gbps",
                        options=("peak_tflops", "hbm_gbps"))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    numeric = ("bf16_dense_tflops", "hbm_gb", "hbm_gbps", "link_gbps", "link_domain", "scaleout_gbps")
    out = []
    for row in rows:
        rec: dict[str, Any] = dict(row)
        for col in numeric:
            text = (row.get(col) or "").strip()
            rec[col] = float(text) if text else None
        out.append(rec)
    return out


def _row_to_hardware(row: Mapping[str, Any]) -> Hardware:
    gb = 1e9
    return Hardware(
        name=row["name"],
        peak_flops=row["bf16_dense_tflops"] * 1e12,
        hbm_bw=row["hbm_gbps"] * gb,
        hbm_bytes=row["hbm_gb"] * gb if row.get("hbm_gb") else None,
        link_bw=row["link_gbps"] * gb if row.get("link_gbps") else None,
        link_domain=int(row["link_domain"] or 1),
        scaleout_bw=row["scaleout_gbps"] * gb if row.get("scaleout_gbps") else None,
        source=row.get("source", ""),
    )


def get_hardware(
    name: str | None = None,
    *,
    peak_tflops: float | None = None,
    hbm_gbps: float | None = None,
    net_gbps: float | None = None,
    hbm_gb: float | None = None,
) -> Hardware:
    """A device by table name or alias (case- and punctuation-insensitive), or from explicit figures.

    Explicit ``peak_tflops``/``hbm_gbps`` override the table row (or define a device when ``name`` is
    None); ``net_gbps`` (GB/s per device, one direction) replaces the all-reduce bandwidth.
    """
    if name is None:
        if peak_tflops is None or hbm_gbps is None:
            raise DataError(
                "name: give a device (see `scalefit cost hardware`) or both peak_tflops and hbm_gbps",
                options=("name", "peak_tflops", "hbm_gbps")
            )
        hw = Hardware(name="custom", peak_flops=0.0, hbm_bw=0.0, source="given on the command line")
    else:
        rows = hardware_table()
        index: dict[str, dict] = {}
        for row in rows:
            for alias in [row["name"], *str(row.get("aliases") or "").split(";")]:
                if alias.strip():
                    index.setdefault(_key(alias), row)
        row = index.get(_key(name))
        if row is None:
            names = [r["name"] for r in rows]
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.4)
            close += [r["name"] for r in rows if _key(name) and _key(name) in _key(r["name"]) and r["name"] not in close]
            hint = f"did you mean {' or '.join(close[:3])}? " if close else ""
            raise DataError(
                f"name={name!r}: unknown device; {hint}known: {', '.join(names)} "
                f"(or give peak_tflops and hbm_gbps)", options=("name", "peak_tflops", "hbm_gbps")
            )
        hw = _row_to_hardware(row)
    changes: dict[str, Any] = {}
    for value, what in ((peak_tflops, "peak_tflops"), (hbm_gbps, "hbm_gbps"), (net_gbps, "net_gbps"),
                        (hbm_gb, "hbm_gb")):
        if value is not None:
            check_range(what, value)
    if peak_tflops is not None:
        changes["peak_flops"] = peak_tflops * 1e12
    if hbm_gbps is not None:
        changes["hbm_bw"] = hbm_gbps * 1e9
    if hbm_gb is not None:
        changes["hbm_bytes"] = hbm_gb * 1e9
    if net_gbps is not None:  # one figure for every scale: link and scale-out
        changes.update(link_bw=2 * net_gbps * 1e9, scaleout_bw=net_gbps * 1e9, link_domain=1)
    if changes and name is not None:
        changes["name"] = f"{hw.name} (modified)"
    return replace(hw, **changes)
