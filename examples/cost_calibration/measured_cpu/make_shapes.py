"""Write ``shapes.csv``: the shapes measured on this project's CPU machine (seeded, reproducible).

Two parts. One-factor sweeps around a base shape (d_model 256, 2 layers, 4 heads, seq_len 128, batch 2,
vocab 4096) change width, depth, heads, sequence length, batch and vocabulary one at a time, so each
term of the step-time model can be seen moving on its own. Then random shapes drawn from the same ranges
fill the space between, kept only where a rough CPU roofline (40 GFLOP/s, 13 GB/s: `scalefit cost probe`
under load) predicts 10-250 ms per step (measuring all 48 took 22 minutes with the machine shared).

On a CPU, which does a few FLOPs per byte of bandwidth (a GPU some hundreds), FLOPs dominate the roofline
prior of every shape; the byte terms are largest where the shapes below put them: attention scores at long
sequences with many heads (seq_len 1024, 16 heads), activations in narrow models over many tokens
(d_model 32-64), optimizer and weight traffic at batch 1, short sequences and wide models, logits at
vocab 16384-32768 with narrow models.

Run from the repository root: python examples/cost_calibration/measured_cpu/make_shapes.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.cost import step_features

HERE = Path(__file__).resolve().parent
BASE = {"d_model": 256, "layers": 2, "heads": 4, "seq_len": 128, "batch": 2, "vocab": 4096}
SWEEPS = {
    "d_model": [64, 128, 384, 512],
    "layers": [1, 4, 8],
    "heads": [1, 16],
    "seq_len": [32, 64, 256, 512],
    "batch": [1, 4, 8],
    "vocab": [512, 16384, 32768],
}
FLOPS, BYTES = 40e9, 13e9  # a rough prior for this CPU, only to keep every shape in a measurable range


def prior_seconds(frame):
    f = step_features(frame.d_model, frame.layers, frame.heads, 4 * frame.d_model, frame.vocab, frame.seq_len,
                      frame.batch, micro_batch=frame.batch, fused_attention=False, weight_bytes=4.0, act_bytes=4.0,
                      grad_bytes=4.0, optimizer_bytes=8.0)
    flops = f["flops_dense"] + f["flops_attn"]
    moved = f["act_bytes"] + f["attn_bytes"] + f["weight_bytes"] + f["grad_bytes"] + f["optimizer_bytes"] + f["logit_bytes"]
    return 0.005 + flops / FLOPS + moved / BYTES


def main() -> None:
    rows = [dict(BASE)]
    for key, values in SWEEPS.items():
        rows += [{**BASE, key: v} for v in values]
    rows.append({**BASE, "d_model": 128, "seq_len": 1024, "heads": 16, "batch": 1})  # attention scores at their largest
    rows.append({**BASE, "d_model": 512, "heads": 8, "seq_len": 32, "batch": 1})  # optimizer traffic dominates
    rows.append({**BASE, "d_model": 64, "heads": 1, "vocab": 32768})  # logits dominate
    rows.append({**BASE, "d_model": 32, "heads": 2, "seq_len": 512, "vocab": 1024})  # activations: narrow, long
    rows.append({**BASE, "d_model": 32, "heads": 4, "layers": 8, "batch": 8, "vocab": 1024})
    rng = np.random.default_rng(16)
    seen = {tuple(r.values()) for r in rows}
    while len(rows) < 48:
        d = int(rng.choice([32, 64, 128, 192, 256, 384, 512]))
        r = {"d_model": d, "layers": int(rng.choice([1, 2, 3, 4, 6, 8])),
             "heads": int(rng.choice([h for h in (1, 2, 4, 8, 16) if d % h == 0 and d // h >= 8])),
             "seq_len": int(rng.choice([32, 64, 128, 256, 512, 768])), "batch": int(rng.choice([1, 2, 4, 8])),
             "vocab": int(rng.choice([1024, 4096, 8192, 16384]))}
        t = float(prior_seconds(pd.DataFrame([r]))[0])
        if 0.01 <= t <= 0.25 and tuple(r.values()) not in seen:
            seen.add(tuple(r.values()))
            rows.append(r)
    frame = pd.DataFrame(rows)[["d_model", "layers", "heads", "seq_len", "batch", "vocab"]]
    frame["prior_s"] = prior_seconds(frame).round(4)
    frame.to_csv(HERE / "shapes.csv", index=False)
    print(f"wrote {HERE / 'shapes.csv'}: {len(frame)} shapes, prior {frame.prior_s.sum():.1f} s per step-sweep")


if __name__ == "__main__":
    main()
