"""A fit as plain text, in the sections lmfit users know from ``fit_report()``, from scalefit's own numbers.

[[Model]], [[Fit Statistics]] (with AIC and BIC), [[Variables]] (bootstrap or asymptotic intervals, the
profile interval beside them when computed, and the allocation exponents), [[Correlations]] (lmfit's
``C(A, alpha) = +0.99`` lines, the bootstrap's beside the Jacobian's, ridges said in words) and [[Warnings]].
"""

from __future__ import annotations

import math

from .correlation import LISTED, pairs_above

LOWER_OBJECTIVE = ("the profile found a lower objective than the fit's optimum: the fit did not reach the best "
                   "optimum, so its estimates and intervals are not final")


def information_criteria(rss: float, n_points: int, n_free: int) -> tuple[float, float]:
    """(AIC, BIC) of a fit whose weighted sum of squared log residuals is ``rss`` over ``n_points`` rows with
    ``n_free`` fitted parameters, lmfit's convention: n ln(RSS/n) + 2k and n ln(RSS/n) + k ln n.

    It treats the log residuals as independent Gaussian noise of one unknown variance (a constant for that
    variance is left out, as lmfit does: it cancels when laws are compared on the same rows). scalefit fits
    the Huber loss, not least squares, so these are the Gaussian criteria evaluated at the robust optimum."""
    if not (n_points > 0 and rss > 0 and math.isfinite(rss)):
        return math.nan, math.nan
    base = n_points * math.log(rss / n_points)
    return base + 2 * n_free, base + n_free * math.log(n_points)


def _num(x, digits: int) -> str:
    return f"{x:.{digits}g}" if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def _n_free(result) -> int:
    return sum(1 for e in result.params.values() if e.status == "free")


def fit_statistics(result) -> dict:
    """AIC, BIC and the number of free parameters of a fit (from its RMSE of log loss over its rows)."""
    d = result.diagnostics
    rmse, n = d.get("rmse_log"), int(d.get("n_points") or result.n_points)
    k = _n_free(result)
    aic, bic = information_criteria(rmse**2 * n, n, k) if isinstance(rmse, (int, float)) else (math.nan, math.nan)
    return {"n_free": k, "aic": aic, "bic": bic}


def _variables(result, lines: list[str]) -> None:
    d, ci = result.diagnostics, result.ci
    prof = (d.get("profile") or {}).get("params") or {}
    width = max(len(n) for n in result.params)
    for name, e in result.params.items():
        text = f"    {name:<{width}}: {e.value:.6g}"
        if e.low is not None and e.high is not None and result.success:
            text += f"  [{e.low:.5g}, {e.high:.5g}] ({ci:.0%})"
        if e.stderr is not None and result.success:
            text += f"  +/- {e.stderr:.3g}"
        p = prof.get(name)
        if p and result.success and e.status != "fixed":
            text += f"  profile {profile_text(p)}"
        notes = [e.status] if e.status != "free" else []
        notes += ["at bound"] if e.at_bound else []
        lines.append(text + (f"  ({', '.join(notes)})" if notes else ""))
    alloc = d.get("allocation")
    if alloc and result.success:
        alpha, beta = alloc["exponents"]
        for key, top, what in (("a", beta, "N_opt"), ("b", alpha, "D_opt")):
            q = alloc[key]
            rng = f"  [{q['low']:.4g}, {q['high']:.4g}] ({ci:.0%})" if q.get("low") is not None else ""
            lines.append(f"    {key:<{width}}: {q['value']:.4g}{rng}  ({what} ∝ C^{key}, {key} = {top}/({alpha}+{beta}))")


def profile_text(p: dict) -> str:
    """``[low, high]`` of a profile interval; an end the profile never reached is shown as ``<=``/``>=`` the bound."""
    low = f"<={p['low']:.5g}" if p.get("low_open") else f"{p['low']:.5g}"
    high = f">={p['high']:.5g}" if p.get("high_open") else f"{p['high']:.5g}"
    return f"[{low}, {high}]"


def correlation_lines(record: dict | None, min_correl: float = LISTED) -> list[str]:
    """lmfit's ``C(a, b) = r`` lines, strongest first; the bootstrap's beside the Jacobian's."""
    lines = []
    for p in pairs_above(record, min_correl):
        a, b = p["params"]
        jac, boot = p["jacobian"], p["bootstrap"]
        main = f"{jac:+.4f}" if jac is not None else "–"
        extra = f"  (bootstrap {boot:+.4f})" if boot is not None else ""
        lines.append(f"    C({a}, {b}) = {main}{extra}" + ("  ridge" if p["ridge"] else ""))
    return lines


def starts_text(diagnostics: dict) -> str:
    """The multi-start in one line: "25 evaluated (E, A, B solved at each), 25 refined, 25 reached the best
    objective" (the parenthesis where variable projection solved the linear coefficients)."""
    d = diagnostics
    solved = f" ({', '.join(d['projected'])} solved at each)" if d.get("projected") else ""
    return (f"{d.get('n_starts')} evaluated{solved}, {d.get('n_refined')} refined, "
            f"{d.get('n_converged_best')} reached the best objective")


def text_report(result, min_correl: float = LISTED) -> str:
    d = result.diagnostics
    lines = [f"[[Model]]\n    {result.law.name}: {result.law.formula}"]
    if not result.success:
        lines.append(f"    FIT FAILED: {d.get('message', '')} -- the values below are not estimates")
    stats = fit_statistics(result)
    lines.append("[[Fit Statistics]]")
    for label, value in (("runs / points", f"{result.n_runs} / {result.n_points}"),
                         ("# variables", str(stats["n_free"])),
                         ("objective", f"{result.objective:.6g} ({result.settings.get('loss', 'huber')}, "
                                       f"delta={_num(result.settings.get('delta'), 6)})"),
                         ("RMSE (log loss)", _num(d.get("rmse_log"), 4)), ("R² (log loss)", _num(d.get("r2_log"), 5)),
                         ("AIC / BIC", f"{_num(stats['aic'], 6)} / {_num(stats['bic'], 6)} (Gaussian, log loss)"),
                         ("starts", starts_text(d)),
                         ("intervals", d.get("interval", ""))):
        lines.append(f"    {label:<17} = {value}")
    prof = d.get("profile")
    if prof:
        lines.append(f"    {'profile':<17} = {prof.get('level', result.ci):.0%}: {prof.get('rule', '')}")
        if prof.get("lower_objective"):
            lines.append(f"    {'':<17}   {LOWER_OBJECTIVE}")
    lines.append("[[Variables]]")
    _variables(result, lines)
    corr = d.get("correlations")
    listed = correlation_lines(corr, min_correl)
    if listed:
        lines.append(f"[[Correlations]] (unreported correlations are < {min_correl:.3f}; in the "
                     f"{(corr or {}).get('space', 'optimiser coordinates')})")
        lines.extend(listed)
        lines.extend(f"    {note}" for note in (corr or {}).get("ridges") or [])
    if d.get("warnings"):
        lines.append("[[Warnings]]")
        lines.extend(f"    {w}" for w in d["warnings"])
    return "\n".join(lines)
