"""Shared by the import tests: curves drawn from the multi-power law (so a fit of the imported table has a
known answer), and the end-to-end check `scalefit fit --law multipower` on an imported table. The tests
here check the generator itself."""

from __future__ import annotations

import json

import numpy as np

from scalefit.registry import get_law
from scalefit.schedule import parse_schedule

STEPS = 1000
LOG_EVERY = 20
TRUTH = "100M"
SCHEDULES = {
    "cosine": f"cosine:peak=3e-4,steps={STEPS},warmup=100,floor=3e-5",
    "wsd": f"wsd:peak=3e-4,steps={STEPS},warmup=100,cooldown=0.2,floor=0",
    "two-stage": f"two_stage:peak=3e-4,steps={STEPS},warmup=100,switch=600,low=6e-5",
}


def truth() -> dict[str, float]:
    law = get_law("multipower")
    return dict(zip(law.param_names, law.reference_theta(TRUTH)))


def synthetic_curves(seed: int = 0, noise: float = 0.002) -> dict[str, dict[str, np.ndarray]]:
    """Per run: ``lr`` at every step 0..STEPS-1, and ``steps``/``loss`` logged every LOG_EVERY steps from
    the multi-power law's published 100M parameters, with multiplicative noise."""
    law = get_law("multipower")
    theta = law.reference_theta(TRUTH)
    rng = np.random.default_rng(seed)
    out = {}
    for run, spec in SCHEDULES.items():
        eta = parse_schedule(spec).lr()
        steps = np.arange(LOG_EVERY, STEPS, LOG_EVERY)
        loss = law.curve(theta, eta, steps)[0] * np.exp(rng.normal(0.0, noise, steps.size))
        out[run] = {"lr": eta, "steps": steps, "loss": loss}
    return out


def fit_imported(run_cli, table, tmp_path) -> dict:
    """`scalefit fit TABLE --law multipower --json`; asserts the fit recovers the law behind the curves."""
    res = run_cli("fit", table, "--law", "multipower", "--json", "--out", tmp_path / "fit.json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_runs"] == len(SCHEDULES)
    assert summary["units"]["loss_unit"] == "nats"  # carried from the imported table into the fit
    assert summary["diagnostics"]["r2_log"] > 0.999
    assert abs(summary["params"]["L0"]["value"] - truth()["L0"]) < 0.05
    assert abs(summary["params"]["alpha"]["value"] - truth()["alpha"]) < 0.1
    return summary


def test_the_generator_follows_the_schedules():
    curves = synthetic_curves()
    assert set(curves) == set(SCHEDULES)
    for run, spec in SCHEDULES.items():
        np.testing.assert_array_equal(curves[run]["lr"], parse_schedule(spec).lr())
        loss = curves[run]["loss"]
        assert loss.size == (STEPS - 1) // LOG_EVERY and np.all(np.isfinite(loss))
        assert loss[0] > loss[-1] > truth()["L0"]  # decreasing towards the floor
    # the decay runs end lower than the two-stage run, whose LR stays higher
    assert curves["wsd"]["loss"][-1] < curves["two-stage"]["loss"][-1]
