"""The law conformance suite as a public function, so a plugin author can run it in their own CI.

    from scalefit.testing import check_law
    check_law(my_law)            # raises AssertionError naming the law and the check that failed

The same checks run over every registered law in scalefit's own tests (scikit-learn's ``check_estimator``
idea): the declaration is valid, the law is documented, ``predict`` broadcasts over parameter batches and
is finite, the analytic Jacobian agrees with finite differences, parameters declared linear are, a curve law's ``final_loss_grad`` agrees
with its ``curve`` and with finite differences, and data drawn from the published values are recovered by
the fitter within their intervals.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .law import CurveLaw, Law


def _fail(law: Law, check: str, message: str) -> AssertionError:
    return AssertionError(f"law '{law.name}': {check}: {message}")


def _thetas(law: Law) -> np.ndarray:
    names = list(law.reference) or [None]
    return np.vstack([law.reference_theta(name) if name else law.grid()[:1][0] for name in names])


def check_declaration(law: Law) -> None:
    """Bounds are ordered; the starting grid and every reference set lie inside them."""
    law.validate()
    lo, hi = law.bounds_array()
    grid = law.grid()
    if not np.all((grid >= lo) & (grid <= hi)):
        raise _fail(law, "declaration", "the starting grid leaves the bounds")
    for name in law.reference:
        ref = law.reference_theta(name)
        if not np.all((ref >= lo) & (ref <= hi)):
            raise _fail(law, "declaration", f"reference set '{name}' lies outside the bounds")


def check_documented(law: Law) -> None:
    """The formula, citation, description and every parameter's meaning are given."""
    missing = [what for what in ("formula", "citation", "description") if not getattr(law, what)]
    missing += [f"doc of parameter '{n}'" for n, p in law.params.items() if not p.doc]
    if missing:
        raise _fail(law, "documentation", "missing " + ", ".join(missing))


def check_predict(law: Law) -> None:
    """predict((k, p)) -> (k, n), finite and positive at the reference values; rows are independent."""
    design = law.prepare(law.example_inputs())
    theta = np.vstack([_thetas(law)] * 2)
    out = law.predict(theta, design)
    if out.ndim != 2 or out.shape[0] != theta.shape[0] or out.shape[1] < 2:
        raise _fail(law, "predict", f"expected shape ({theta.shape[0]}, n > 1), got {out.shape}")
    if not (np.all(np.isfinite(out)) and np.all(out > 0)):
        raise _fail(law, "predict", "non-finite or non-positive values at the reference parameters")
    if not np.array_equal(law.predict(theta[1:2], design)[0], out[1]):
        raise _fail(law, "predict", "a row depends on the other rows of the batch")


def check_jacobian(law: Law, rtol: float = 1e-5) -> bool:
    """The analytic Jacobian agrees with central differences; False when the law has none."""
    design = law.prepare(law.example_inputs())
    theta = _thetas(law)
    jac = law.jacobian(theta, design)
    if jac is None:
        return False
    value = law.predict(theta, design)
    if jac.shape != value.shape + (law.n_params,):
        raise _fail(law, "jacobian", f"shape {jac.shape}, expected {value.shape + (law.n_params,)}")
    for j, name in enumerate(law.param_names):
        h = 1e-6 * np.maximum(np.abs(theta[:, j]), 1e-6)
        tp, tm = theta.copy(), theta.copy()
        tp[:, j] += h
        tm[:, j] -= h
        fd = (law.predict(tp, design) - law.predict(tm, design)) / (2 * h[:, None])
        scale = np.abs(fd).max() + 1e-12
        if not np.allclose(jac[..., j], fd, rtol=rtol, atol=1e-6 * scale):
            worst = float(np.max(np.abs(jac[..., j] - fd)))
            raise _fail(law, "jacobian", f"d/d{name} differs from finite differences by up to {worst:.3g}")
    return True


def check_linear(law: Law, rtol: float = 1e-9) -> bool:
    """Parameters declared ``linear`` enter the prediction affinely (the fitter solves them exactly for
    fixed others): moving them changes the prediction by exactly each one's basis function times its
    move, and the basis functions do not depend on them. False when the law declares none."""
    names = law.linear_params
    if not names:
        return False
    idx = [law.param_names.index(n) for n in names]
    design = law.prepare(law.example_inputs())
    theta = _thetas(law)
    moved = theta.copy()
    moved[:, idx] = theta[:, idx] * 1.7 + 0.1

    def basis(t):  # prediction change per unit of each linear parameter: exact for an affine law
        base = law.predict(t, design)
        cols = []
        for j in idx:
            step = t.copy()
            step[:, j] += 1.0
            cols.append(law.predict(step, design) - base)
        return base, np.stack(cols, axis=-1)

    y0, b0 = basis(theta)
    y1, b1 = basis(moved)
    expected = y0 + np.einsum("knm,km->kn", b0, moved[:, idx] - theta[:, idx])
    scale = np.abs(y0).max()
    if not (np.allclose(y1, expected, rtol=rtol, atol=rtol * scale) and np.allclose(b0, b1, rtol=1e-7, atol=1e-7 * scale)):
        raise _fail(law, "linear", f"the prediction is not affine in the parameters declared linear ({', '.join(names)})")
    given_y, given = law.linear_basis(theta, design)
    if given is not None and not (np.allclose(given_y, y0, rtol=1e-12, atol=0)
                                  and np.allclose(given, b0, rtol=1e-6, atol=1e-9 * np.abs(b0).max())):
        raise _fail(law, "linear", "linear_basis() disagrees with predict()")
    return True


def check_curve(law: Law, rtol: float = 2e-5) -> bool:
    """A curve law's ``final_loss_grad`` equals its ``curve`` at the last step and agrees with central
    differences in the learning rate; False when the law is not a curve law with that interface."""
    if not isinstance(law, CurveLaw):
        return False
    from .schedule import parse_schedule

    warmup = 200
    eta = parse_schedule(f"wsd:peak=3e-4,steps=2000,warmup={warmup},cooldown=0.3,shape=sqrt,floor=1e-6").lr()
    for theta in _thetas(law):
        loss, grad = law.final_loss_grad(theta, eta, warmup)
        last = float(np.asarray(law.curve(theta, eta, [eta.size - 1])).ravel()[0])
        if not abs(loss - last) <= 1e-10 * max(1.0, abs(last)):
            raise _fail(law, "curve", f"final_loss_grad gives {loss!r}, curve's last point {last!r}")
        for j in (0, 5, warmup - 1, warmup, warmup + 1, 1000, 1700, eta.size - 1):
            h = 1e-9
            up, down = eta.copy(), eta.copy()
            up[j] += h
            down[j] -= h
            fd = (law.final_loss_grad(theta, up, warmup)[0] - law.final_loss_grad(theta, down, warmup)[0]) / (2 * h)
            if not abs(grad[j] - fd) <= max(rtol * abs(fd), 1e-6):
                raise _fail(law, "curve", f"dL/d eta[{j}] = {grad[j]:.6g}, finite differences {fd:.6g}")
    return True


def check_recovery(law: Law, n_bootstrap: int = 200, noise: float = 0.01, seed: int = 1) -> bool:
    """Point laws: data drawn from the reference values with 1 % log-noise are fitted, every 95 %
    interval covers the truth, and forecasts at the data are within 1 %. False for curve laws."""
    if law.kind != "point":
        return False
    import pandas as pd

    from .data import from_frame
    from .fit import fit

    truth = law.reference_theta()
    inputs = law.example_inputs()
    design = law.prepare(inputs)
    rng = np.random.default_rng(seed)
    y = law.predict(truth[None], design)[0] * np.exp(rng.normal(0, noise, len(inputs)))
    frame = pd.DataFrame({role: inputs.column(role) for role in law.inputs})
    frame[law.target] = y
    data = from_frame(frame, source="synthetic", required=[*law.inputs, law.target])
    result = fit(law, data, n_bootstrap=n_bootstrap, seed=0)
    for name, true in zip(law.param_names, truth):
        e = result.params[name]
        if not (e.low <= true <= e.high):
            raise _fail(law, "recovery", f"{name} = {true:g} not in its interval [{e.low:g}, {e.high:g}]")
    pred = result.evaluate(inputs)
    true_y = law.predict(truth[None], design)[0]
    worst = float(np.max(np.abs(pred.value / true_y - 1)))
    if worst >= 0.01:
        raise _fail(law, "recovery", f"forecasts at the data miss the truth by up to {worst:.2%}")
    return True


CHECKS: dict[str, Callable[[Law], object]] = {
    "declaration": check_declaration,
    "documented": check_documented,
    "predict": check_predict,
    "jacobian": check_jacobian,
    "linear": check_linear,
    "curve": check_curve,
    "recovery": check_recovery,
}


def check_law(law: Law | str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Run every check on ``law`` (a Law or a registered name); return the names of the checks that ran.

    Raises AssertionError naming the law and the first check that failed. ``skip`` names checks to leave
    out (``recovery`` fits 200 bootstrap draws and takes seconds).
    """
    if isinstance(law, str):
        from .registry import get_law

        law = get_law(law)
    ran = []
    for name, check in CHECKS.items():
        if name in skip:
            continue
        if check(law) is not False:
            ran.append(name)
    return ran
