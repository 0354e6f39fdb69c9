"""Rebuild the committed baseline fits that ``tests/test_check.py`` checks every refit against.

    PYTHONPATH=. python tests/baselines/make_baselines.py [chinchilla] [multipower]

Run it only when a change to the fitter is *meant* to move the reference fits, and say why in the commit
(or use ``scalefit check NEW --baseline tests/baselines/X.json --update-baseline``).

* ``chinchilla_epoch.json``: Epoch's 240 Chinchilla points, 1,000 run-resampled draws (intervals).
* ``multipower_400m.json``: the multi-power law on the official 400M training curves (cosine, constant,
  two-stage). Three curves make a run-resampling bootstrap meaningless, so this baseline has no draws
  and is checked with explicit tolerances.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

EPOCH_CSV = SHARED / "data" / "chinchilla" / "svg_extracted_data.csv"
EPOCH_COLUMNS = {"params": "Model Size", "flops": "Training FLOP"}
MPL_TIDY = SHARED / "data" / "loss_curves" / "mpl_official" / "mpl_curves_tidy.csv"
_W = "peak=3e-4,warmup=2160"
MPL_TRAIN_SPECS = {  # the official training split (reference/laws_schedule.md Sec. 2.5)
    "cosine_24000": f"cosine:{_W},steps=24000,floor=3e-5",
    "constant_24000": f"constant:{_W},steps=24000",
    "wsdcon_9": f"two_stage:{_W},steps=16000,switch=8000,low=9e-5",
}


def epoch240():
    """Epoch's 240 Chinchilla points: the SVG table without its 5 highest losses (Besiroglu et al. 2024)."""
    import pandas as pd

    frame = pd.read_csv(EPOCH_CSV)
    return frame.sort_values("loss", kind="stable").iloc[:-5].reset_index(drop=True)


def mpl_train_400m():
    """The 400M model's three official training curves, without the final step (as the official loader)."""
    import pandas as pd

    from scalefit.curves import load_curves

    tidy = pd.read_csv(MPL_TIDY)
    rows = tidy[(tidy["model_size"] == "400M") & (tidy["step"] != 24000) & (tidy["official_split"] == "train")]
    return load_curves(rows, columns={"run": "schedule"}, schedules=MPL_TRAIN_SPECS,
                       source="shared/data/loss_curves/mpl_official (400M, training split)")


def main(which=("chinchilla", "multipower")) -> int:
    from scalefit.data import from_frame
    from scalefit.fit import fit

    if "chinchilla" in which:
        _chinchilla(fit, from_frame)
    if "multipower" in which:
        result = fit("multipower", mpl_train_400m())
        out = result.save(HERE / "multipower_400m.json", force=True)
        print(f"wrote {out.relative_to(ROOT)}: {result!r}")
    return 0


def _chinchilla(fit, from_frame):
    data = from_frame(epoch240(), source="shared/data/chinchilla/svg_extracted_data.csv (240 points)",
                      columns=EPOCH_COLUMNS, required=["params", "tokens", "loss"])
    result = fit("chinchilla", data, n_bootstrap=1000, seed=0)
    out = result.save(HERE / "chinchilla_epoch.json", force=True)
    print(f"wrote {out.relative_to(ROOT)}: {result!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ("chinchilla", "multipower")))
