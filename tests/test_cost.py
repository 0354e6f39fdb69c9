"""The wall-clock cost model (issue 5): hardware table, accounting, step-time models, budgets, search, CLI.

Nothing here is timed; the oracles are arithmetic from shared/reference/laws_l2l_time.md §4.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalefit import cost
from scalefit.cli import app
from scalefit.errors import DataError
from scalefit.registry import get_law

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def json_of(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_clean_error(result, *fragments):
    """Exit 2, one `error:` line, no traceback."""
    assert result.exit_code == 2, result.output
    out = result.output
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    for frag in fragments:
        assert frag.lower() in errors[0].lower(), errors[0]


H100 = cost.get_hardware("H100")


# ============================================================================ hardware table
REQUIRED_DEVICES = ["A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "B200", "TPU-v4", "TPU-v5e", "TPU-v5p"]


def test_hardware_table_has_required_devices_with_sources():
    rows = {r["name"]: r for r in cost.hardware_table()}
    for name in REQUIRED_DEVICES:
        assert name in rows, name
        assert rows[name]["source"].strip(), f"{name} has no source"
        assert rows[name]["bf16_dense_tflops"] > 0 and rows[name]["hbm_gbps"] > 0
    # dense, never the sparse headline figures
    assert rows["H100-SXM"]["bf16_dense_tflops"] == 989
    assert rows["B200"]["bf16_dense_tflops"] == 2250
    assert rows["A100-80GB"]["bf16_dense_tflops"] == 312


def test_hardware_table_is_found_in_checkout_and_wheel_layout(monkeypatch, tmp_path):
    from scalefit.cost import hardware as cost  # the table's path is computed (and patched) there
    assert cost.hardware_table_path() == ROOT / "data" / "hardware.csv"
    # An installed wheel has no pyproject.toml beside the package: the force-included copy is used.
    fake_pkg = tmp_path / "site" / "scalefit"
    monkeypatch.setattr(cost, "_PACKAGE_DIR", fake_pkg)
    assert cost.hardware_table_path() == fake_pkg / "_data" / "hardware.csv"
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert conf["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["data/hardware.csv"] == \
        "scalefit/_data/hardware.csv"


@pytest.mark.skipif(not (SHARED / "data" / "hardware" / "accelerators.csv").exists(), reason="shared data absent")
def test_hardware_table_agrees_with_shared_reference_table():
    from scalefit.cost import hardware as cost  # _key, the name normaliser, is private to it
    with open(SHARED / "data" / "hardware" / "accelerators.csv", newline="") as fh:
        ref = {cost._key(r["name"]): r for r in csv.DictReader(fh)}
    pairs = {"A100-40GB": "A100-40GB-SXM", "A100-80GB": "A100-80GB-SXM", "H100-SXM": "H100-SXM",
             "H100-PCIe": "H100-PCIe", "H200": "H200-SXM", "B200": "B200-HGX", "TPU-v4": "TPU-v4",
             "TPU-v5e": "TPU-v5e", "TPU-v5p": "TPU-v5p", "TPU-v6e": "TPU-v6e"}
    ours = {r["name"]: r for r in cost.hardware_table()}
    for mine, theirs in pairs.items():
        r = ref[cost._key(theirs)]
        assert ours[mine]["bf16_dense_tflops"] == pytest.approx(float(r["bf16_dense_tflops"]))
        assert ours[mine]["hbm_gbps"] == pytest.approx(float(r["hbm_bw_gbps"]))


@pytest.mark.parametrize("name, expected", [("h100", "H100-SXM"), ("H100 SXM", "H100-SXM"), ("a100", "A100-80GB"),
                                            ("A100-40GB", "A100-40GB"), ("tpu v5p", "TPU-v5p"), ("V5E", "TPU-v5e"),
                                            ("h100-pcie", "H100-PCIe"), ("b200", "B200"), ("H200", "H200")])
def test_hardware_lookup_is_case_and_punctuation_insensitive(name, expected):
    assert cost.get_hardware(name).name == expected


def test_unknown_hardware_suggests_names():
    with pytest.raises(DataError, match="did you mean.*H100"):
        cost.get_hardware("H1000")


def test_explicit_hardware_figures():
    hw = cost.get_hardware(None, peak_tflops=100, hbm_gbps=1000, net_gbps=25)
    assert hw.peak_flops == 1e14 and hw.hbm_bw == 1e12 and hw.allreduce_bw(64) == 25e9
    assert cost.get_hardware("H100", peak_tflops=500).peak_flops == 5e14
    with pytest.raises(DataError, match="peak_tflops and hbm_gbps"):
        cost.get_hardware(None, hbm_gbps=1000)


def test_allreduce_bandwidth_inside_and_beyond_the_node():
    assert H100.allreduce_bw(8) == pytest.approx(450e9)  # NVLink, one direction
    assert H100.allreduce_bw(256) == pytest.approx(50e9)  # one 400 Gb/s NIC per GPU


# ============================================================================ shapes and counts
def test_conventional_shape_rule_and_counts():
    s = cost.conventional_shape(7e9)
    assert s.d_model % 128 == 0 and s.heads == s.d_model // 128 and s.d_ff == 4 * s.d_model
    assert s.aspect == pytest.approx(128, rel=0.1)
    assert s.params_total == pytest.approx(7e9, rel=0.05)
    n = s.layers * 12 * s.d_model**2
    assert s.params_nonembedding == n
    assert s.params_total == n + 2 * 32000 * s.d_model  # untied embeddings
    tied = cost.conventional_shape(7e9, tie_embeddings=True)
    assert tied.params_total == tied.params_nonembedding + 32000 * tied.d_model
    gated = cost.conventional_shape(7e9, gated_mlp=True)
    assert gated.params_total == pytest.approx(7e9, rel=0.05)


@pytest.mark.parametrize("bad, match", [
    (dict(d_model=1000, heads=3), "not divisible"),
    (dict(layers=0), "layers=0: "),
    (dict(batch=4), "at least one"),
])
def test_shape_validation(bad, match):
    kw = dict(d_model=1024, layers=8, heads=8, d_ff=4096, batch=64) | bad
    with pytest.raises(DataError, match=match):
        cost.Shape(**kw).validate(gpus=8)


def test_step_features_formulas_by_hand():
    s = cost.Shape(d_model=1024, layers=8, heads=8, d_ff=4096, vocab=1000, seq_len=512, batch=4, micro_batch=4)
    f = cost.shape_features(s, gpus=1)
    P_layers = 8 * (4 * 1024**2 + 2 * 1024 * 4096)
    P_total = P_layers + 2 * 1000 * 1024
    P_matmul = P_layers + 1000 * 1024
    T = 4 * 512
    assert f["params_total"] == P_total and f["params_nonembedding"] == P_layers
    assert f["flops_dense"] == 6 * P_matmul * T
    assert f["flops_attn"] == 12 * 8 * 1024 * 512 * T
    assert f["act_bytes"] == 2 * T * 8 * (8 * 1024 + 2 * 4096) * 2
    assert f["attn_bytes"] == 0  # fused attention never writes scores
    assert f["weight_bytes"] == 2 * P_matmul * 2
    assert f["grad_bytes"] == 2 * P_total * 2
    assert f["optimizer_bytes"] == P_total * (2 * 12 + 2)
    assert f["logit_bytes"] == 16 * T * 1000
    assert f["allreduce_s"] == 0
    unfused = cost.shape_features(cost.Shape(**{**s.__dict__, "fused_attention": False}))
    assert unfused["attn_bytes"] == 2 * T * 8 * (2 * 8 * 512) * 2
    rec = cost.shape_features(cost.Shape(**{**s.__dict__, "recompute": True}))
    assert rec["flops_dense"] == pytest.approx(8 * P_matmul * T)  # HFU counts the extra forward
    dp = cost.shape_features(cost.Shape(**{**s.__dict__, "batch": 64}), gpus=16, hardware=H100)
    assert dp["allreduce_s"] == pytest.approx(2 * 15 / 16 * 2 * P_total / 50e9)
    assert dp["optimizer_bytes"] == pytest.approx(P_total * 26 / 16)  # ZeRO-1 sharding


def test_step_features_broadcast_over_a_grid():
    d = np.array([512, 1024, 2048])[:, None]
    L = np.array([4, 8])[None, :]
    f = cost.step_features(d, L, d // 128, 4 * d, 32000, 2048, 8)
    assert f["flops_dense"].shape == (3, 2)
    one = cost.shape_features(cost.Shape(1024, 8, 8, 4096, batch=8))
    assert f["flops_dense"][1, 1] == one["flops_dense"]


# ============================================================================ FLOP oracles (reference §4.1-4.2)
@pytest.mark.parametrize("flops, gpus, params, hours", [
    (1e21, 64, 1e9, 10.97),  # 39,497 s
    (5.88e23, 1024, 70e9, 16.8 * 24),  # Chinchilla-70B: 1.4515e6 s = 16.8 days
    (1.2e20, 8, 1e9, 10.53),  # 1B params x 20B tokens
])
def test_mfu_oracles(flops, gpus, params, hours):
    shape = cost.conventional_shape(params, batch=max(gpus, 64))
    est = cost.estimate(shape, H100, budget="flops", value=flops, gpus=gpus, time_model=cost.MfuModel(0.4, H100),
                        params=params)
    assert est.hours == pytest.approx(hours, abs=0.005 if hours < 100 else 0.05 * 24)
    assert est.mfu == pytest.approx(0.4)


def test_oracle_through_tokens_budget():
    shape = cost.conventional_shape(1e9, batch=64)
    est = cost.estimate(shape, H100, budget="tokens", value=20e9, gpus=8, time_model=cost.MfuModel(0.4, H100),
                        params=1e9)
    assert round(est.hours, 2) == 10.53
    assert est.flops == pytest.approx(1.2e20)


CHINCHILLA_A4 = {  # layers, d_model, ffw, heads, kv size, published ratio (ours / 6ND)
    "73M": (10, 640, 2560, 10, 64, 1.03), "305M": (20, 1024, 4096, 16, 64, 1.10),
    "552M": (24, 1280, 5120, 10, 128, 1.08), "1.1B": (26, 1792, 7168, 14, 128, 1.04),
    "1.6B": (28, 2048, 8192, 16, 128, 1.03), "6.8B": (40, 3584, 14336, 28, 128, 0.99),
}


@pytest.mark.parametrize("name", list(CHINCHILLA_A4))
def test_chinchilla_table_a4_flop_ratios(name):
    L, d, f, h, k, published = CHINCHILLA_A4[name]
    n = cost.chinchilla_params(d, L, h, k, f)
    ratio = cost.chinchilla_flops(d, L, h, k, f) / (6 * n * 2048)
    assert ratio == pytest.approx(published, abs=0.006)  # 1.1B computes to 1.045, printed 1.04
    with_emb = cost.chinchilla_flops(d, L, h, k, f, embeddings=True) / (6 * n * 2048)
    assert with_emb > ratio  # the formula as printed overstates the small models


# ============================================================================ step-time models and budgets
def test_roofline_is_uncalibrated_and_additive():
    m = cost.CostModel.roofline(H100)
    assert not m.calibrated and "uncalibrated" in m.label
    s = cost.conventional_shape(1e9, batch=64)
    feats = cost.shape_features(s, 8, H100)
    parts = m.breakdown(feats)
    assert float(m.step_time(feats)) == pytest.approx(sum(parts.values()))
    assert parts["flops"] == pytest.approx((feats["flops_dense"] + feats["flops_attn"]) / (0.7 * 989e12))


def test_budgets_both_ways_are_consistent():
    s = cost.conventional_shape(7e9, batch=2048)
    fwd = cost.estimate(s, H100, budget="tokens", value=2e12, gpus=256, price_per_gpu_hour=2.0, params=7e9)
    for kind, value in (("hours", fwd.hours), ("gpu_hours", fwd.gpu_hours), ("dollars", fwd.dollars),
                        ("flops", fwd.flops)):
        back = cost.estimate(s, H100, budget=kind, value=value, gpus=256, price_per_gpu_hour=2.0, params=7e9)
        assert back.tokens == pytest.approx(2e12, rel=1e-9), kind
    assert fwd.dollars == pytest.approx(fwd.gpu_hours * 2.0)
    assert fwd.gpu_hours == pytest.approx(fwd.hours * 256)
    assert fwd.tokens_per_s == pytest.approx(s.batch * s.seq_len / fwd.step_time_s)
    # the implied MFU, used as a fixed MFU, gives back the same hours
    base = cost.estimate(s, H100, budget="tokens", value=2e12, gpus=256, params=7e9,
                         time_model=cost.MfuModel(fwd.mfu, H100))
    assert base.hours == pytest.approx(fwd.hours)


@settings(max_examples=25, deadline=None)
@given(
    d_mult=st.integers(1, 64), layers=st.integers(1, 96), seq=st.sampled_from([128, 512, 2048, 8192]),
    gpus=st.sampled_from([1, 8, 64, 1024]), per_dev=st.integers(1, 16), kind=st.sampled_from(cost.BUDGET_KINDS),
    value=st.floats(1e-3, 1e9),
)
def test_any_budget_round_trips_through_tokens(d_mult, layers, seq, gpus, per_dev, kind, value):
    shape = cost.Shape(128 * d_mult, layers, d_mult, 512 * d_mult, seq_len=seq, batch=gpus * per_dev)
    est = cost.estimate(shape, H100, budget=kind, value=value, gpus=gpus, price_per_gpu_hour=3.0)
    back = cost.estimate(shape, H100, budget="tokens", value=est.tokens, gpus=gpus, price_per_gpu_hour=3.0)
    got = {"tokens": back.tokens, "flops": back.flops, "hours": back.hours, "gpu_hours": back.gpu_hours,
           "dollars": back.dollars}[kind]
    assert got == pytest.approx(value, rel=1e-9)
    assert 0 < est.mfu < 0.7  # the roofline runs matmuls at 70 % of peak and adds time on top


def test_estimate_rejects_bad_budgets():
    s = cost.conventional_shape(1e9, batch=64)
    with pytest.raises(DataError, match="positive"):
        cost.estimate(s, H100, budget="hours", value=-3)
    with pytest.raises(DataError, match="price"):
        cost.estimate(s, H100, budget="dollars", value=1e6)
    with pytest.raises(DataError, match="fraction"):
        cost.MfuModel(1.5, H100)


# ============================================================================ calibration
TRUTH = {"flops": 1 / (0.6 * H100.peak_flops), "act_bytes": 1 / (0.4 * H100.hbm_bw),
         "param_bytes": 1 / (0.5 * H100.hbm_bw), "logit_bytes": 1 / (0.8 * H100.hbm_bw)}


def test_calibration_recovers_known_coefficients_within_5_percent():
    frame = cost.simulate_timings(TRUTH, 0.01, H100, n=200, noise=0.02, seed=0)
    model = cost.calibrate(frame, H100)
    assert model.calibrated
    for g, beta in TRUTH.items():
        assert model.coef[g] == pytest.approx(beta, rel=0.05), g
    assert model.intercept == pytest.approx(0.01, rel=0.05)
    assert model.diagnostics["not_identified"] == ["allreduce_s"]  # one device: no all-reduce in the data
    assert model.coef["allreduce_s"] == cost.CostModel.roofline(H100).coef["allreduce_s"]  # prior kept


def test_memory_model_beats_flop_only_on_held_out_timings():
    frame = cost.simulate_timings(TRUTH, 0.01, H100, n=120, noise=0.02, seed=1)
    d = cost.calibrate(frame, H100).diagnostics
    mem, flop = d["memory_model"]["cross_validated"], d["flop_only_model"]["cross_validated"]
    assert mem["mape"] < 0.03 < flop["mape"]
    assert mem["r2"] > flop["r2"]


def test_flop_only_timings_do_not_favour_the_memory_model_by_much():
    frame = cost.simulate_timings({"flops": TRUTH["flops"]}, 0.01, H100, n=60, noise=0.02, seed=2)
    d = cost.calibrate(frame, H100).diagnostics
    assert d["flop_only_model"]["cross_validated"]["mape"] < 0.03
    assert d["memory_model"]["cross_validated"]["mape"] < 0.03


def test_cost_model_round_trips_and_refuses_overwrite(tmp_path):
    model = cost.calibrate(cost.simulate_timings(TRUTH, 0.01, H100, n=40, seed=3), H100)
    path = tmp_path / "cost.json"
    model.save(path)
    back = cost.CostModel.load(path)
    assert back.coef == model.coef and back.intercept == model.intercept and back.calibrated
    with pytest.raises(DataError, match="force=True"):
        model.save(path)
    model.save(path, force=True)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(DataError, match="not a scalefit cost model"):
        cost.CostModel.load(bad)


def test_too_few_timing_rows():
    frame = cost.simulate_timings(TRUTH, 0.01, H100, n=4, seed=0)
    with pytest.raises(DataError, match="at least 7"):
        cost.calibrate(frame, H100)


# ============================================================================ time-budget search
CHIN = get_law("chinchilla")
THETA = CHIN.reference_theta("hoffmann")


def _search(model, **kw):
    return cost.time_budget_search(CHIN, THETA, None, hours=72, hardware=H100, gpus=256, time_model=model, **kw)


def test_search_goes_wider_and_shallower_when_memory_dominates():
    mem = cost.CostModel({"flops": 1 / (0.7 * H100.peak_flops), "act_bytes": 1 / (0.05 * H100.hbm_bw),
                          "param_bytes": 0.0, "logit_bytes": 0.0, "allreduce_s": 0.0}, 0.0, H100)
    res = _search(mem)
    best, flop = res.best, res.flop_optimal
    assert best["aspect"] > 1.5 * flop["aspect"]
    assert best["model"]["layers"] < flop["model"]["layers"]
    assert best["loss"]["value"] < flop["loss"]["value"]  # in this budget, under this time model
    assert flop["aspect"] == pytest.approx(cost.CONVENTIONAL_ASPECT, rel=0.1)


def test_search_returns_the_flop_optimal_shape_when_memory_terms_vanish():
    flop_only = cost.CostModel({"flops": 1 / (0.4 * H100.peak_flops), "act_bytes": 0.0, "param_bytes": 0.0,
                                "logit_bytes": 0.0, "allreduce_s": 0.0}, 0.0, H100)
    res = _search(flop_only, seq_len=512)
    assert res.best["model"] == res.flop_optimal["model"]
    res = _search(cost.MfuModel(0.4, H100))
    assert res.best["model"] == res.flop_optimal["model"]


def test_search_flop_optimal_size_matches_the_closed_form():
    res = _search(cost.MfuModel(0.4, H100))
    compute = 72 * 3600 * 256 * H100.peak_flops * 0.4
    n_opt = float(CHIN.optimal_params(THETA[None], [compute])[0, 0])
    assert res.flop_optimal["params"] == pytest.approx(n_opt, rel=0.2)


def test_predict_loss_interval_from_draws():
    rng = np.random.default_rng(0)
    draws = THETA * np.exp(0.01 * rng.standard_normal((50, THETA.size)))
    out = cost.predict_loss(CHIN, THETA, draws, 7e9, 2e12, level=0.9)
    assert out["low"] < out["value"] < out["high"]
    assert out["value"] == pytest.approx(1.69 + 406.4 / 7e9**0.34 + 410.7 / 2e12**0.28)


# ============================================================================ CLI
def test_cli_estimate_json_keys_and_echo():
    r = invoke("cost", "estimate", "--params", "7B", "--tokens", "2T", "--hardware", "H100", "--gpus", "256",
               "--json")
    out = json_of(r)
    from scalefit.cli.cost import ESTIMATE_KEYS

    assert set(out) == set(ESTIMATE_KEYS)
    for key in ("hours", "gpu_hours", "step_time_s", "tokens_per_s", "tokens", "flops", "mfu", "dollars", "model",
                "calibrated"):
        assert key in out
    assert out["dollars"] is None and out["calibrated"] is False
    assert out["model"]["d_model"] % 128 == 0 and out["model"]["params_nonembedding"] < out["model"]["params_total"]
    assert "7B → 7.00e+09 params" in r.stderr
    assert "uncalibrated" in r.stderr


def test_cli_estimate_mfu_oracle_and_price():
    out = json_of(invoke("cost", "estimate", "--params", "70B", "--flops", "5.88e23", "--hardware", "h100",
                         "--gpus", "1024", "--mfu", "0.4", "--price-per-gpu-hour", "2", "--json"))
    assert out["hours"] / 24 == pytest.approx(16.8, abs=0.01)
    assert out["dollars"] == pytest.approx(out["gpu_hours"] * 2)
    assert out["mfu"] == pytest.approx(0.4)


def test_cli_estimate_inverse_budget_and_table():
    r = invoke("cost", "estimate", "--d-model", "2048", "--layers", "16", "--hours", "72", "--hardware", "A100",
               "--gpus", "8")
    assert r.exit_code == 0, r.output
    assert "tokens" in r.stdout and "wall clock" in r.stdout and "72" in r.stdout
    out = json_of(invoke("cost", "estimate", "--d-model", "2048", "--layers", "16", "--gpu-hours", "576",
                         "--hardware", "A100", "--gpus", "8", "--json"))
    assert out["hours"] == pytest.approx(72)


def test_cli_calibrate_writes_and_estimate_uses_it(tmp_path):
    timings = tmp_path / "timings.csv"
    cost.simulate_timings(TRUTH, 0.01, H100, n=60, seed=4).to_csv(timings, index=False)
    out_path = tmp_path / "cost.json"
    r = invoke("cost", "calibrate", timings, "--hardware", "H100", "--out", out_path)
    assert r.exit_code == 0, r.output
    assert "FLOP only" in r.stdout and "memory traffic" in r.stdout and out_path.exists()
    assert_clean_error(invoke("cost", "calibrate", timings, "--hardware", "H100", "--out", out_path), "--force")
    d = json_of(invoke("cost", "calibrate", timings, "--hardware", "H100", "--out", out_path, "--force", "--json"))
    assert {"coef", "intercept_s", "diagnostics", "calibrated", "hardware"} <= set(d)
    assert {"memory_model", "flop_only_model"} <= set(d["diagnostics"])
    est = json_of(invoke("cost", "estimate", "--params", "1B", "--tokens", "20B", "--hardware", "H100",
                         "--calibration", out_path, "--json"))
    assert est["calibrated"] is True


def test_every_cost_command_is_documented():
    from scalefit.cli.cost import app as cost_app

    for cmd in cost_app.registered_commands:
        assert (cmd.callback.__doc__ or "").strip(), cmd.name
        r = invoke("cost", cmd.name, "--help")
        assert r.exit_code == 0 and "Usage" in r.output


def test_cli_hardware_lists_the_table():
    out = json_of(invoke("cost", "hardware", "--json"))
    assert {"path", "devices"} == set(out)
    assert {r["name"] for r in out["devices"]} >= set(REQUIRED_DEVICES)
    assert invoke("cost", "hardware").exit_code == 0


def test_cli_search_from_published_values():
    out = json_of(invoke("cost", "search", "--law", "chinchilla", "--hours", "72", "--hardware", "H100", "--gpus",
                         "256", "--json"))
    from scalefit.cli.cost import SEARCH_KEYS

    assert set(out) == set(SEARCH_KEYS)
    assert {"model", "loss", "tokens", "aspect"} <= set(out["best"])


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory):
    from scalefit.data import from_frame
    from scalefit.fit import fit
    from scalefit.law import Columns

    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(5e7, 5e9, 8), 5)
    D = np.tile(np.geomspace(1e9, 2e11, 5), 8)
    y = CHIN.predict(THETA[None], CHIN.prepare(Columns(params=N, tokens=D)))[0]
    y = y * np.exp(0.005 * rng.standard_normal(N.size))
    ds = from_frame(pd.DataFrame({"params": N, "tokens": D, "loss": y}), required=["params", "tokens", "loss"])
    path = tmp_path_factory.mktemp("fit") / "fit.json"
    fit("chinchilla", ds, n_bootstrap=20, seed=0).save(path)
    return path


def test_cli_estimate_with_fit_gives_loss_interval(fit_json):
    out = json_of(invoke("cost", "estimate", "--params", "7B", "--hours", "72", "--hardware", "H100", "--gpus",
                         "256", "--fit", fit_json, "--json"))
    loss = out["loss"]
    assert loss["low"] < loss["value"] < loss["high"] and loss["law"] == "chinchilla"


def test_cli_predict_hours_searches_shapes(fit_json):
    r = invoke("predict", "--fit", fit_json, "--hours", "72", "--hardware", "H100", "--gpus", "256", "--json")
    out = json_of(r)
    assert out["best"]["loss"]["low"] < out["best"]["loss"]["value"] < out["best"]["loss"]["high"]
    assert out["flop_optimal"]["aspect"] == pytest.approx(cost.CONVENTIONAL_ASPECT, rel=0.1)
    r = invoke("predict", "--fit", fit_json, "--hours", "72", "--hardware", "H100", "--gpus", "256")
    assert r.exit_code == 0 and "FLOP-optimal" in r.stdout
    assert_clean_error(invoke("predict", "--fit", fit_json, "--hours", "72", "--params", "7B", "--hardware", "H100"),
                       "--hours")


@pytest.mark.parametrize("args, fragment", [
    (["cost", "estimate", "--params", "7B", "--tokens", "2T", "--hardware", "H1000"], "did you mean"),
    (["cost", "estimate", "--params", "7B", "--tokens", "-2T", "--hardware", "H100"], "positive"),
    (["cost", "estimate", "--params", "7B", "--hours", "0", "--hardware", "H100"], "positive"),
    (["cost", "estimate", "--d-model", "1000", "--layers", "8", "--heads", "3", "--tokens", "1B", "--hardware",
      "H100"], "not divisible"),
    (["cost", "estimate", "--params", "7B", "--tokens", "2T", "--hours", "3", "--hardware", "H100"], "exactly one"),
    (["cost", "estimate", "--params", "7B", "--dollars", "1e6", "--hardware", "H100"], "price"),
    (["cost", "estimate", "--params", "7B", "--tokens", "2T"], "--hardware"),
    (["cost", "estimate", "--params", "seven", "--tokens", "2T", "--hardware", "H100"], "not a number"),
    (["cost", "estimate", "--tokens", "2T", "--hardware", "H100"], "--params"),
    (["cost", "estimate", "--params", "7B", "--tokens", "2T", "--hardware", "H100", "--mfu", "2"], "--mfu"),
    (["cost", "estimate", "--params", "7B", "--tokens", "2T", "--hardware", "H100", "--gpus", "0"], "--gpus"),
    (["cost", "estimate", "--params", "7B", "--tokens", "2T", "--hardware", "H100", "--gpus", "8", "--batch", "4"],
     "at least one sequence"),
    (["cost", "estimate", "--params", "7B", "--tokens", "2T", "--peak-tflops", "500", "--hbm-gbps", "2000", "--gpus",
      "16"], "--net-gbps"),
    (["cost", "search", "--law", "chinchilla", "--hours", "5", "--hardware", "H100", "--gpus", "0"], "--gpus"),
    (["cost", "search", "--law", "chinchilla", "--hours", "-5", "--hardware", "H100"], "positive"),
    (["cost", "search", "--law", "chinchilla", "--hours", "5", "--hardware", "XPU9"], "unknown device"),
])
def test_cli_bad_input_is_one_clean_line(args, fragment):
    assert_clean_error(invoke(*args), fragment)


def test_cli_calibrate_bad_timings(tmp_path):
    few = tmp_path / "few.csv"
    cost.simulate_timings(TRUTH, 0.01, H100, n=4, seed=0).to_csv(few, index=False)
    assert_clean_error(invoke("cost", "calibrate", few, "--hardware", "H100"), "at least 7")
    missing = tmp_path / "missing.csv"
    pd.DataFrame({"d_model": [512], "step_time_s": [0.1]}).to_csv(missing, index=False)
    assert_clean_error(invoke("cost", "calibrate", missing, "--hardware", "H100"), "missing column")
    badrow = tmp_path / "badrow.csv"
    frame = cost.simulate_timings(TRUTH, 0.01, H100, n=20, seed=0)
    frame.loc[3, "step_time_s"] = -1.0
    frame.to_csv(badrow, index=False)
    assert_clean_error(invoke("cost", "calibrate", badrow, "--hardware", "H100"), "step_time_s")
    heads = tmp_path / "heads.csv"
    frame = cost.simulate_timings(TRUTH, 0.01, H100, n=20, seed=0)
    frame.loc[0, "heads"] = 7
    frame.loc[0, "d_model"] = 512
    frame.to_csv(heads, index=False)
    assert_clean_error(invoke("cost", "calibrate", heads, "--hardware", "H100"), "not divisible")
    assert_clean_error(invoke("cost", "calibrate", tmp_path / "nope.csv", "--hardware", "H100"), "no such file")


def test_cli_unreadable_cost_json(tmp_path):
    bad = tmp_path / "cost.json"
    bad.write_text("{not json")
    assert_clean_error(invoke("cost", "estimate", "--params", "1B", "--tokens", "1B", "--hardware", "H100",
                              "--calibration", bad), "not valid JSON")


def test_cost_and_predict_quote_the_same_interval(tmp_path):
    """One interval rule everywhere: cost estimate --fit and predict --fit agree at the same (N, D)."""
    import json

    from typer.testing import CliRunner

    from scalefit.cli import app

    runner = CliRunner()
    fit_json = tmp_path / "fit.json"
    example = Path(__file__).resolve().parents[1] / "data" / "example_runs.csv"
    assert runner.invoke(app, ["fit", str(example), "-b", "100", "--out", str(fit_json)]).exit_code == 0
    cost_out = runner.invoke(app, ["cost", "estimate", "--params", "1B", "--tokens", "20B", "--hardware", "H100",
                                   "--fit", str(fit_json), "--json"])
    pred_out = runner.invoke(app, ["predict", "--fit", str(fit_json), "--params", "1B", "--tokens", "20B", "--json"])
    a, b = json.loads(cost_out.stdout)["loss"], json.loads(pred_out.stdout)["loss"]
    assert (a["value"], a["low"], a["high"]) == (b["value"], b["low"], b["high"])
    assert a["level"] == 0.95
