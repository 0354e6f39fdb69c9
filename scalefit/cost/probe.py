"""This machine's memory-copy bandwidth and matmul throughput, measured, as a row of the hardware table.

The uncalibrated roofline of :mod:`scalefit.cost.step` divides bytes by a bandwidth and FLOPs by a peak;
for a vendor's accelerator those come from its data sheet (``data/hardware.csv``), for anything else they
have to be measured. :func:`probe` times two kernels ``repeats`` times each after one untimed run:

* a copy of one large array into another (``copy_mib`` MiB, far beyond any cache), counted as the bytes
  read plus the bytes written (the STREAM "copy" convention; write-allocate traffic is not counted);
* a square ``matmul_n`` x ``matmul_n`` matrix product in ``dtype``, counted as 2 n^3 FLOPs.

Each is reported as the median rate over the repeats with its median absolute deviation (MAD) and the
fastest repeat. ``framework="numpy"`` measures the host (numpy's copy runs on one thread; its BLAS on all
cores); ``framework="jax"`` measures the device JAX picks (a GPU where there is one), with the copy as a
compiled elementwise pass ``y = x + 1`` (one read, one write).

Left out: the peak of any dtype but the one measured (the row's ``bf16_dense_tflops`` column holds the
measured dtype's rate, and its ``notes`` say which), interconnect bandwidth (left empty), and the noise
of a shared machine beyond what the spread and the recorded load average show.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError, option_error
from .hardware import hardware_table_path

FRAMEWORKS = ("numpy", "jax")
DTYPES = ("float32", "float64", "bfloat16")
HARDWARE_COLUMNS = ("name", "aliases", "vendor", "form_factor", "bf16_dense_tflops", "hbm_gb", "hbm_gbps",
                    "link_gbps", "link_domain", "scaleout_gbps", "source", "notes")


@dataclass
class ProbeResult:
    """Copy bandwidth (GB/s) and matmul throughput (TFLOP/s): median, MAD and best over the repeats."""

    device: str
    framework: str
    framework_version: str
    dtype: str
    date: str
    copy_bytes: int
    matmul_n: int
    repeats: int
    bandwidth_gbps: float
    bandwidth_mad_gbps: float
    bandwidth_best_gbps: float
    matmul_tflops: float
    matmul_mad_tflops: float
    matmul_best_tflops: float
    memory_gb: float | None
    load_avg_1m: float
    copy_seconds: list[float] = field(default_factory=list)
    matmul_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hardware_row(self, name: str | None = None) -> dict[str, Any]:
        """The result as a row of ``data/hardware.csv`` (same columns), labelled measured."""
        label = name or f"measured-{self.device}"
        return {
            "name": label, "aliases": "", "vendor": self.device, "form_factor": "measured",
            "bf16_dense_tflops": round(self.matmul_tflops, 6),
            "hbm_gb": round(self.memory_gb, 3) if self.memory_gb else "",
            "hbm_gbps": round(self.bandwidth_gbps, 3), "link_gbps": "", "link_domain": 1, "scaleout_gbps": "",
            "source": (f"measured by scalefit cost probe on {self.date} ({self.framework} {self.framework_version}): "
                       f"copy of {self.copy_bytes / 2**20:.0f} MiB, read + write counted; "
                       f"{self.matmul_n}x{self.matmul_n} {self.dtype} matmul, 2n^3 FLOPs; {self.repeats} repeats each"),
            "notes": (f"measured, not a data sheet; the TFLOP/s column holds the {self.dtype} matmul rate. "
                      f"Median (MAD) over repeats: copy {self.bandwidth_gbps:.4g} ({self.bandwidth_mad_gbps:.2g}) "
                      f"GB/s, matmul {self.matmul_tflops:.4g} ({self.matmul_mad_tflops:.2g}) TFLOP/s; "
                      f"load average {self.load_avg_1m:.2f}"),
        }


def _rates(seconds: np.ndarray, amount: float) -> tuple[float, float, float]:
    """Median rate, median absolute deviation of the rates, best rate (``amount`` per second)."""
    rates = amount / seconds
    median = float(np.median(rates))
    return median, float(np.median(np.abs(rates - median))), float(rates.max())


def _timed(fn: Callable[[], Any], repeats: int, sync: Callable[[Any], Any]) -> np.ndarray:
    sync(fn())  # untimed: first touch of the pages, compilation
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        out[i] = time.perf_counter() - t0
    return out


def _kernels(framework: str, dtype: str, n_copy: int, matmul_n: int):
    """(copy, matmul, sync, version, device name, device memory bytes) for the framework."""
    from .measure import cpu_name, free_memory_bytes

    if framework == "numpy":
        src = np.ones(n_copy, dtype=np.float64)
        dst = np.empty_like(src)
        if dtype == "bfloat16":
            raise option_error("dtype", dtype, "numpy has no bfloat16 matmul; use float32, or framework jax",
                               options=("framework",))
        a = np.random.default_rng(0).standard_normal((matmul_n, matmul_n)).astype(dtype)
        b = np.random.default_rng(1).standard_normal((matmul_n, matmul_n)).astype(dtype)
        return (lambda: np.copyto(dst, src), lambda: a @ b, lambda x: x, np.__version__, cpu_name(),
                _total_host_memory())
    from .measure import require_jax

    jax = require_jax()
    jnp = jax.numpy
    if dtype == "float64" and not jax.config.jax_enable_x64:  # JAX would silently compute in float32
        raise option_error("dtype", dtype, "JAX computes in float32 unless 64-bit mode is on (set "
                           "JAX_ENABLE_X64=1); use float32, or framework numpy", options=("framework",))
    dev = jax.devices()[0]
    x = jnp.ones((n_copy,), jnp.float32 if dtype != "float64" else jnp.float64)
    a = jax.random.normal(jax.random.PRNGKey(0), (matmul_n, matmul_n), jnp.dtype(dtype))
    b = jax.random.normal(jax.random.PRNGKey(1), (matmul_n, matmul_n), jnp.dtype(dtype))
    copy, matmul = jax.jit(lambda v: v + 1), jax.jit(jnp.matmul)
    name = cpu_name() if dev.platform == "cpu" else str(getattr(dev, "device_kind", dev))
    memory = _total_host_memory() if dev.platform == "cpu" else free_memory_bytes(dev)
    return (lambda: copy(x), lambda: matmul(a, b), jax.block_until_ready, jax.__version__, name, memory)


def _total_host_memory() -> float | None:
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_probe_options(framework: str, dtype: str, copy_mib: float, matmul_n: int, repeats: int) -> None:
    if framework not in FRAMEWORKS:
        raise option_error("framework", framework, f"use one of {', '.join(FRAMEWORKS)}")
    if dtype not in DTYPES:
        raise option_error("dtype", dtype, f"use one of {', '.join(DTYPES)}")
    if not (isinstance(copy_mib, (int, float)) and math.isfinite(copy_mib) and 16 <= copy_mib <= 65536):
        raise option_error("copy_mib", copy_mib, "must be 16 to 65536 MiB (far larger than the caches)")
    if isinstance(matmul_n, bool) or not isinstance(matmul_n, int) or not 64 <= matmul_n <= 32768:
        raise option_error("matmul_n", matmul_n, "must be a whole number from 64 to 32768")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 3 <= repeats <= 10_000:
        raise option_error("repeats", repeats, "must be a whole number from 3 to 10000 (a median and its spread)")


def probe(*, framework: str = "numpy", dtype: str = "float32", copy_mib: float = 256, matmul_n: int = 2048,
          repeats: int = 20) -> ProbeResult:
    """Measure copy bandwidth and matmul throughput (see the module docstring)."""
    check_probe_options(framework, dtype, copy_mib, matmul_n, repeats)
    n_copy = int(copy_mib * 2**20 // 8)
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    need = 2 * n_copy * 8 + 3 * matmul_n * matmul_n * itemsize
    free = _free_host_memory()
    if free and need > 0.5 * free:
        raise DataError(f"copy_mib={copy_mib:g} and matmul_n={matmul_n} need {need / 1e9:.3g} GB, more than half "
                        f"of the {free / 1e9:.3g} GB free; use smaller sizes", options=("copy_mib", "matmul_n"))
    copy, matmul, sync, version, device, memory = _kernels(framework, dtype, n_copy, matmul_n)
    copy_bytes = 2 * n_copy * (8 if framework == "numpy" or dtype == "float64" else 4)  # read + write
    copy_s = _timed(copy, repeats, sync)
    matmul_s = _timed(matmul, repeats, sync)
    bw, bw_mad, bw_best = _rates(copy_s, copy_bytes / 1e9)
    tf, tf_mad, tf_best = _rates(matmul_s, 2.0 * float(matmul_n) ** 3 / 1e12)
    try:
        load = float(os.getloadavg()[0])
    except (OSError, AttributeError):
        load = float("nan")
    return ProbeResult(
        device=device, framework=framework, framework_version=version, dtype=dtype,
        date=_dt.date.today().isoformat(), copy_bytes=copy_bytes, matmul_n=matmul_n, repeats=repeats,
        bandwidth_gbps=bw, bandwidth_mad_gbps=bw_mad, bandwidth_best_gbps=bw_best, matmul_tflops=tf,
        matmul_mad_tflops=tf_mad, matmul_best_tflops=tf_best, memory_gb=memory / 1e9 if memory else None,
        load_avg_1m=load, copy_seconds=copy_s.tolist(), matmul_seconds=matmul_s.tolist(),
    )


def _free_host_memory() -> float | None:
    from .measure import free_memory_bytes

    return free_memory_bytes()


def write_hardware_row(result: ProbeResult, path: str | Path, *, name: str | None = None,
                       force: bool = False) -> Path:
    """Write ``result`` as a one-row hardware table (the columns of ``data/hardware.csv``), atomically."""
    import pandas as pd

    from .._io import write_table

    if Path(path).suffix.lower() != ".csv":
        raise option_error("out", Path(path), "a hardware row is written as a .csv file")
    columns = _table_columns()
    row = result.hardware_row(name)
    return write_table(pd.DataFrame([[row.get(c, "") for c in columns]], columns=columns), path, force=force)


def _table_columns() -> list[str]:
    """The header of the installed hardware table, so a measured row always lines up with it."""
    import csv

    try:
        with open(hardware_table_path(), newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        return header if set(HARDWARE_COLUMNS) <= set(header) else list(HARDWARE_COLUMNS)
    except (OSError, StopIteration):
        return list(HARDWARE_COLUMNS)
