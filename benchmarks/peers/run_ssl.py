"""Runs inside benchmarks/.venv-ssl: one simple-scaling-laws fit of E + A N^-alpha + B D^-beta; prints one JSON line.

    python run_ssl.py RUNS.csv DRAWS

SSL's `fit` reads the CSV itself (the `columns` mapping names our run, params, tokens and loss columns)
and always bootstraps: DRAWS is its `n_draws`, and 1, its minimum, stands for a point fit. It fits
least squares on raw losses over predictors normalised by a reference scale; the amplitudes are
converted back to raw units (A * ref_N^alpha, B * ref_D^beta) so the harness can score them. Only
SSL and its dependencies are imported here: this file runs in the peer's environment.
"""

import json
import sys

from simple_scaling_laws import fit

COLUMNS = {"training_run_id": "run", "model_size": "params", "dataset_size": "tokens", "test_loss": "loss"}

path, draws = sys.argv[1], int(sys.argv[2])
model = fit(path, law="separable-power", columns=COLUMNS, n_draws=draws, seed=0)
p = model.params(model.primary_target)
ref = {name: values["reference"] for name, values in model.observed_domain.items()}
params = {"E": p["E"], "A": p["A"] * ref["params"] ** p["alpha"], "B": p["B"] * ref["tokens"] ** p["beta"],
          "alpha": p["alpha"], "beta": p["beta"]}
print(json.dumps({"params": {k: float(v) for k, v in params.items()}, "n_draws": draws,
                  "warnings": [note.code for note in model.warnings]}))
