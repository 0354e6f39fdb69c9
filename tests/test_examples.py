"""The real data bundled for newcomers (data/examples/) and the demo that runs on it (examples/demo.sh):
licensed, documented, byte-for-byte what PROVENANCE.md says, read by the commands the README shows, and
the published numbers reproduced from the bundled copies."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run
from conftest import ROOT

EXAMPLES = ROOT / "data" / "examples"
GADRE = EXAMPLES / "gadre" / "gadre2024_final_losses.csv"
TRAIN = EXAMPLES / "mpl_official" / "curves_400m_train.csv"
HELDOUT = EXAMPLES / "mpl_official" / "curves_400m_heldout.csv"
DEMO = ROOT / "examples" / "demo.sh"


@pytest.mark.parametrize("folder, licence, holder", [("gadre", "LICENSE.txt", "Copyright (c) 2024 mlfoundations"),
                                                     ("mpl_official", "LICENSE", "Copyright (c) 2025 Kairong Luo")])
def test_each_data_set_carries_its_licence_and_provenance(folder, licence, holder):
    here = EXAMPLES / folder
    text = (here / licence).read_text(encoding="utf-8")
    assert text.startswith("MIT License") and holder in text
    provenance = (here / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "MIT" in provenance and re.search(r"commit\s+`[0-9a-f]{40}`", provenance)
    for path in [*here.glob("*.csv"), here / licence]:  # each file's checksum is the one the note gives
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in provenance, f"{path.name}: sha256 {digest} not in PROVENANCE.md"


def test_the_bundled_data_stay_small():
    total = sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file())
    assert total < 2_000_000, total


def test_gadre_fits_with_the_readme_flags():
    """`scalefit fit` on the bundled table as the README shows it: the 35 RedPajama runs, C4 loss."""
    res = run("fit", GADRE, "--where", "dataset=rpj", "--col", "loss=loss_c4_val", "-b", "50", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_runs"] == 35 and out["diagnostics"]["success"] and out["diagnostics"]["r2_log"] > 0.95
    assert out["diagnostics"]["at_bound"] == []
    assert 0.1 < out["params"]["alpha"]["value"] < 0.5 and 0.1 < out["params"]["beta"]["value"] < 0.5


def test_gadre_paper_forecasts_from_the_bundled_copy():
    """The paper's extrapolation test on the bundled file: 5 small RedPajama runs (alpha = beta) forecast
    the 1.4B (M = 640) and 6.9B (M = 20) runs within 1 % (paper: 0.71 %, 0.73 %)."""
    from scalefit.data import from_frame
    from scalefit.fit import fit

    rpj = pd.read_csv(GADRE).query("dataset == 'rpj'")
    small = ["d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8"]
    train = rpj[(rpj["model"].isin(small) & (rpj["tok_mult"] == 20))
                | ((rpj["model"] == "d=96_l=8_h=4") & (rpj["tok_mult"] == 320))]
    data = from_frame(train, columns={"params": "N", "tokens": "D", "loss": "loss_c4_val", "run": "name"},
                      required=["params", "tokens", "loss"])
    result = fit("chinchilla", data, ties={"beta": "alpha"})
    for model, mult in (("open_lm_1b", 640), ("open_lm_7b", 20)):
        row = rpj[(rpj["model"] == model) & (rpj["tok_mult"] == mult)].iloc[0]
        assert abs(result.predict(params=row["N"], tokens=row["D"]).value[0] / row["loss_c4_val"] - 1) < 0.01


def test_bundled_curves_carry_their_whole_schedules():
    """Each curve's schedule column is a spec its logged LRs agree with (checked on reading), and the
    official 400M multi-power parameters forecast each held-out curve's final loss within 1.2 %."""
    from scalefit.curves import load_curves
    from scalefit.registry import get_law

    train, held = load_curves(TRAIN), load_curves(HELDOUT)
    assert sorted(train.lr) == ["constant_24000", "cosine_24000", "wsdcon_9"]
    assert len(held.lr) == 6 and not set(held.lr) & set(train.lr)
    assert all(src.startswith("schedule '") for src in {**train.frame.attrs["lr_source"],
                                                         **held.frame.attrs["lr_source"]}.values())
    law = get_law("multipower")
    theta = law.reference_theta("400M")
    for run_name, eta in held.lr.items():
        m = held.run_names == run_name
        steps, loss = held.column("step")[m], held.column("loss")[m]
        final = law.curve(theta[None], eta, steps[-1:])[0, 0]
        assert abs(final / np.mean(loss[-3:]) - 1) < 0.012, run_name


# ---------------------------------------------------------------------------------------------- the demo
def _env() -> dict:
    """The demo calls `scalefit`: the one installed beside this interpreter."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


needs_cli = pytest.mark.skipif(shutil.which("bash") is None or not (Path(sys.executable).parent / "scalefit").exists(),
                               reason="needs bash and the installed scalefit command")


@needs_cli
def test_demo_never_touches_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "report.html").write_text("my own report")
    res = subprocess.run(["bash", str(DEMO), str(mine)], capture_output=True, text=True, env=_env(), timeout=60)
    assert res.returncode == 2 and "did not write" in res.stderr
    assert (mine / "report.html").read_text() == "my own report" and len(list(mine.iterdir())) == 1


@needs_cli
@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    """examples/demo.sh as a newcomer runs it (from another folder, into a folder of its own that already
    holds a file of a previous run): every step succeeds and the reports are complete."""
    html5lib = pytest.importorskip("html5lib")
    out = tmp_path / "demo"
    out.mkdir()
    (out / ".scalefit-demo").touch()
    (out / "report.html").write_text("an older demo report")  # its own output: replaced
    res = subprocess.run(["bash", str(DEMO), str(out)], capture_output=True, text=True, env=_env(),
                         timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for name in ("gadre_fit.json", "gadre_fit.png", "mpl_fit.json", "schedule.csv", "schedules.png",
                 "report.html", "report_multipower.html"):
        assert (out / name).stat().st_size > 1000, name
    assert "7B → 7.00e+09 params" in res.stdout + res.stderr and "best wsd" in res.stdout.lower()
    for report in ("report.html", "report_multipower.html"):
        text = (out / report).read_text(encoding="utf-8")
        html5lib.HTMLParser(strict=True).parse(text)
        assert "are the data this fit was made from" in text  # --data (and --where) found the fitted rows
    schedule = pd.read_csv(out / "schedule.csv")
    assert len(schedule) == 24000 and schedule["lr"].max() <= 3e-4 * (1 + 1e-9)
