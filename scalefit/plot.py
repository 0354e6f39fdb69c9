"""Figures a researcher would put in a paper (matplotlib, Agg backend, imported only when asked).

Every plotting function writes to ``path`` (.png, .pdf, .svg, .jpg) through the one atomic writer, or, with
``path=None``, returns the figure as SVG text (text drawn as glyph outlines, so it renders the same without
fonts and no label can become markup) for a report to embed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import option_error
from .law import Columns, CurveLaw

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
                         "savefig.dpi": 200, "savefig.bbox": "tight", "legend.frameon": False,
                         # SVG: glyphs as paths (no font needed), ids the same on every run (stable reports)
                         "svg.fonttype": "path", "svg.hashsalt": "scalefit"})
    return plt


def check_plot_path(path: str | Path, force: bool = False, param: str = "path") -> Path:
    """Before any work: a figure file name (.png/.pdf/.svg/.jpg) that may be written (see refuse_overwrite);
    an error names it as the parameter ``param`` (the plotting functions' ``path``)."""
    from ._io import refuse_overwrite

    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise option_error(param, path, "use a .png, .pdf or .svg file name")
    return refuse_overwrite(path, force)


def _target(path, force: bool) -> Path | None:
    """``path`` checked before any drawing (see :func:`check_plot_path`); None means "return SVG text"."""
    return None if path is None else check_plot_path(path, force)


def _save(plt, fig, path: Path | None, force: bool) -> Path | str:
    """Render into memory, then write through the one atomic writer (no partial or clobbered figures);
    without a path, return the SVG text."""
    import io

    from ._io import atomic_write

    buffer = io.BytesIO()
    try:
        if path is None:
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        else:
            fig.savefig(buffer, format=path.suffix.lower().lstrip(".").replace("jpg", "jpeg"))
    finally:
        plt.close(fig)
    if path is None:
        return buffer.getvalue().decode("utf-8")
    return atomic_write(path, buffer.getvalue(), force=force)


def _label(text) -> str:
    """A user's run name as literal plot text: '$' would start matplotlib math mode (and can crash it)."""
    return str(text).replace("$", r"\$")


def plot_fit(result, data, path: str | Path | None = None, *, force: bool = False) -> Path | str:
    """Loss vs compute (log-log): observed runs coloured by model size, the fitted law along each size
    with its bootstrap band, the compute-optimal frontier, and the fitted range marked."""
    law = result.law
    if isinstance(law, CurveLaw):
        return plot_curves(law, result.theta, data, path, force=force)
    path = _target(path, force)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if law.kind != "point" or not {"params", "tokens"} <= set(law.inputs):
        # Any other point law: observed vs predicted.
        pred = result.evaluate(data)
        y = data.column(law.target)
        ax.scatter(y, pred.value, s=14, color="C0")
        lims = [min(y.min(), pred.value.min()), max(y.max(), pred.value.max())]
        ax.plot(lims, lims, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel(f"observed {law.target}")
        ax.set_ylabel(f"predicted {law.target}")
        ax.set_title(f"{law.name}: {law.formula}", fontsize=9)
        return _save(plt, fig, path, force)

    n = data.column("params")
    d = data.column("tokens")
    y = data.column(law.target)
    c = 6 * n * d
    sizes = np.unique(n)
    cmap = plt.get_cmap("viridis")
    norm = plt.Normalize(np.log10(sizes.min()), np.log10(sizes.max()) if sizes.size > 1 else np.log10(sizes.min()) + 1)
    sc = ax.scatter(c, y, c=np.log10(n), cmap=cmap, norm=norm, s=14, zorder=3, edgecolor="none")
    # Fitted curve along each model size (a few, to keep the figure readable).
    shown = sizes if sizes.size <= 8 else sizes[np.unique(np.linspace(0, sizes.size - 1, 8).round().astype(int))]
    for size in shown:
        dd = np.geomspace(d[n == size].min() / 1.5, d[n == size].max() * 1.5, 60)
        pred = result.predict(Columns(params=np.full_like(dd, size), tokens=dd))
        cc = 6 * size * dd
        color = cmap(norm(np.log10(size)))
        ax.plot(cc, pred.value, color=color, lw=1.2)
        if pred.low is not None:
            ax.fill_between(cc, pred.low, pred.high, color=color, alpha=0.18, lw=0)
    # Compute-optimal frontier across and beyond the fitted range.
    try:
        from .forecast import optimal_params

        grid_c = np.geomspace(c.min(), c.max() * 100, 40)
        n_opt = optimal_params(law, result.theta[None], grid_c)[0]
        ok = np.isfinite(n_opt)
        if ok.any():
            frontier = result.predict(Columns(params=n_opt[ok], tokens=grid_c[ok] / (6 * n_opt[ok])))
            ax.plot(grid_c[ok], frontier.value, color="C3", lw=1.6, ls="--", label="compute-optimal")
            if frontier.low is not None:
                ax.fill_between(grid_c[ok], frontier.low, frontier.high, color="C3", alpha=0.12, lw=0)
    except Exception:  # the frontier is an extra: never let it cost the user the plot
        pass
    ax.axvspan(c.min(), c.max(), color="0.92", zorder=0, label="fitted range")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C = 6ND (FLOPs)")
    unit = result.units.get("loss_unit")
    ax.set_ylabel(f"{law.target} ({unit})" if unit else law.target)
    from matplotlib.ticker import LogLocator, ScalarFormatter

    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_title(f"{law.name}: {law.formula}", fontsize=9)
    cb = fig.colorbar(sc, ax=ax, pad=0.02)
    cb.set_label("log10 parameters")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return _save(plt, fig, path, force)


# ------------------------------------------------------------------ loss curves and LR schedules
def plot_schedules(law, theta, schedules: Mapping[str, np.ndarray], path, *, title: str = "",
                   every: int | None = None, highlight: str | None = None, force: bool = False):
    """Two panels: the LR schedules (top) and the law's predicted loss curves (bottom), final losses
    in the legend. ``highlight`` draws one schedule (e.g. the optimised one) thicker, in black."""
    from .schedule import as_lr, prediction_steps

    path = _target(path, force)
    plt = _pyplot()
    fig, (ax_lr, ax_loss) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True, gridspec_kw={"height_ratios": [1, 1.6]})
    ylo, yhi = np.inf, -np.inf
    for i, (name, eta) in enumerate(schedules.items()):
        eta = as_lr(eta)
        stride = every or max(1, eta.size // 400)
        steps = prediction_steps(eta, stride)
        loss = law.curve(np.asarray(theta, float)[None], eta, steps)[0]
        style = dict(color="k", lw=2.0, zorder=5) if name == highlight else dict(color=f"C{i}", lw=1.3)
        ax_lr.plot(np.arange(eta.size), eta, **style)
        ax_loss.plot(steps, loss, label=f"{_label(name)}  (final {loss[-1]:.4f})", **style)
        tail = loss[len(loss) // 3 :]
        ylo, yhi = min(ylo, tail.min()), max(yhi, tail.max())
    ax_lr.set_ylabel("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("predicted loss")
    pad = 0.08 * (yhi - ylo + 1e-9)
    ax_loss.set_ylim(ylo - pad, yhi + 3 * pad)
    ax_loss.legend(fontsize=8, loc="upper right")
    ax_lr.set_title(title or f"{law.name}: predicted loss under each schedule", fontsize=10)
    fig.align_ylabels()
    return _save(plt, fig, path, force)


def plot_curves(law, theta, data, path, *, holdout=(), title: str = "", force: bool = False):
    """Observed loss curves (points) against the law's prediction (lines), one colour per run; runs in
    ``holdout`` (not used for fitting) are drawn with open markers and dashed lines."""
    from .schedule import prediction_steps

    path = _target(path, force)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    holdout = set(holdout)
    y = data.column("loss")
    steps = data.column("step").astype(np.int64)
    runs = data.run_names
    for i, run in enumerate(dict.fromkeys(runs)):
        m = runs == run
        eta = data.lr[run]
        grid = prediction_steps(eta[: steps[m].max() + 1], max(1, int(steps[m].max()) // 300))
        pred = law.curve(np.asarray(theta, float)[None], eta, grid)[0]
        held = run in holdout
        c = f"C{i % 10}"
        ax.plot(steps[m], y[m], "o", ms=2.5, color=c, mfc="none" if held else c, alpha=0.7)
        ax.plot(grid, pred, "--" if held else "-", color=c, lw=1.2, label=f"{_label(run)}{' (held out)' if held else ''}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    lo, hi = float(np.min(y)), float(np.quantile(y, 0.9))  # axis limits that skip the early, high losses
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or f"{law.name}: observed (points) vs predicted (lines)", fontsize=10)
    return _save(plt, fig, path, force)




def plot_residuals(result, data, path: str | Path | None = None, *, force: bool = False) -> Path | str:
    """How far each observed loss sits from the fitted law, in percent (observed / predicted - 1): against
    training compute for (params, tokens) laws, against the step (one colour per run) for curve laws,
    against the prediction otherwise. The grey band is +-1 RMSE of log loss; a trend means the law's
    shape misses the data, not just noise."""
    law = result.law
    path = _target(path, force)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    y = data.column(law.target)
    with np.errstate(all="ignore"):
        pred = result.evaluate(data, draws=False).value
        log_res = np.log(y) - np.log(pred)
    pct = 100 * np.expm1(log_res)
    if isinstance(law, CurveLaw):
        steps = data.column("step")
        runs = data.run_names
        for i, run in enumerate(dict.fromkeys(runs)):
            m = runs == run
            ax.plot(steps[m], pct[m], "o", ms=2.2, color=f"C{i % 10}", alpha=0.7, label=_label(run))
        ax.set_xlabel("step")
        ax.legend(fontsize=7, ncol=2, markerscale=2)
    elif law.kind == "point" and {"params", "tokens"} <= set(law.inputs):
        n = data.column("params")
        sc = ax.scatter(6 * n * data.column("tokens"), pct, c=np.log10(n), cmap="viridis", s=12, edgecolor="none")
        ax.set_xscale("log")
        ax.set_xlabel("training compute C = 6ND (FLOPs)")
        fig.colorbar(sc, ax=ax, pad=0.02).set_label("log10 parameters")
    else:
        ax.scatter(pred, pct, s=12, color="C0")
        ax.set_xlabel(f"predicted {law.target}")
    finite = log_res[np.isfinite(log_res)]
    rmse = float(np.sqrt(np.mean(finite**2))) if finite.size else 0.0
    ax.axhspan(-100 * np.expm1(rmse), 100 * np.expm1(rmse), color="0.9", zorder=0, label="_rmse")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_ylabel("observed / predicted − 1 (%)")
    ax.set_title(f"residuals (grey band: ±1 RMSE = {100 * np.expm1(rmse):.2f} %)", fontsize=10)
    return _save(plt, fig, path, force)
