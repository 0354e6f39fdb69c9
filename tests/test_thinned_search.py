"""Dense curve tables are searched on a thinned copy and refined on every row: the answer is the full table's."""

import importlib

import numpy as np
import pandas as pd
import pytest

from scalefit.curves import load_curves
from scalefit.fit import fit
from scalefit.registry import get_law
from scalefit.schedule import parse_schedule
from scalefit.stats import noise_level

fit_module = importlib.import_module("scalefit.fit")


def _multipower_table(steps: int = 600, noise: float = 0.003):
    """Four runs (cosine, WSD, constant, cosine at half the peak), the loss at every step from step 1."""
    law = get_law("multipower")
    specs = [f"cosine:peak=2e-4,steps={steps},warmup={steps // 40}",
             f"wsd:peak=2e-4,steps={steps},warmup={steps // 40},cooldown=0.2",
             f"constant:peak=2e-4,steps={steps},warmup={steps // 40}",
             f"cosine:peak=1e-4,steps={steps},warmup={steps // 40}"]
    frames = [pd.DataFrame({"run": f"r{i}", "step": np.arange(steps), "lr": parse_schedule(s).lr()[:steps]})
              for i, s in enumerate(specs)]
    frame = pd.concat(frames, ignore_index=True)
    frame["loss"] = np.where(frame.step >= 1, 1.0, np.nan)  # step 0: the LR only (no LR area yet)
    data = load_curves(frame)
    clean = law.predict(law.reference_theta()[None], law.prepare(data))[0]
    frame.loc[frame.step >= 1, "loss"] = clean * np.exp(np.random.default_rng(0).normal(0, noise, clean.size))
    return load_curves(frame)


@pytest.fixture(scope="module")
def table():
    return _multipower_table()


def _fit(data, search_rows, monkeypatch):
    stages = []
    monkeypatch.setattr(fit_module, "_SEARCH_ROWS", search_rows)
    result = fit("multipower", data, identify=False, progress=lambda done, total, stage: stages.append(stage))
    return result, stages


def test_thinned_search_reaches_the_full_tables_optimum(table, monkeypatch):
    full, full_stages = _fit(table, 10**9, monkeypatch)
    thin, thin_stages = _fit(table, 800, monkeypatch)  # 2,396 rows: every third row searched
    assert "full-data" in thin_stages and "full-data" not in full_stages
    law = get_law("multipower")
    from scalefit.parameterization import Parameterization
    from scalefit.solver import Problem, RobustLoss

    problem = Problem(law, law.prepare(table), table.column("loss"), None, Parameterization(law), RobustLoss())
    u = Parameterization(law).to_u(np.asarray(full.theta)[None])[0]
    noise = noise_level(problem.loss, problem.residuals(u[None])[0], problem.w, len(u))
    # Stopped at 1e-3 of the noise level per step: the objective within a small fraction of it.
    assert thin.objective <= full.objective + 0.05 * noise
    # The predictions agree far inside the noise (parameters along the drop term's flat direction may not).
    design = law.prepare(table)
    ratio = law.predict(np.asarray(thin.theta)[None], design)[0] / law.predict(np.asarray(full.theta)[None], design)[0]
    assert np.max(np.abs(np.log(ratio))) < 1e-4
