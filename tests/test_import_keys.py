"""Key choice and run metadata: which logged key is the loss, the LR, the step, and what a config says."""

from scalefit.importers.keys import find_key, loss_unit_of, run_metadata, step_keys


def test_training_loss_before_validation_loss_and_the_others_listed():
    key, others = find_key("loss", ["val/loss", "Train/Loss", "lr", "final-val/loss"])
    assert key == "Train/Loss" and others == ["val/loss", "final-val/loss"]
    assert find_key("loss", ["lm loss value", "lm loss"])[0] == "lm loss"
    assert find_key("lr", ["lr-AdamW", "grad_norm"])[0] == "lr-AdamW"
    assert find_key("lr", ["Learning Rate"])[0] == "Learning Rate"
    assert find_key("tokens", ["throughput/total_tokens", "tokens"])[0] == "throughput/total_tokens"
    assert find_key("loss", ["grad_norm", "lossy_metric"]) == (None, [])


def test_the_row_counter_comes_last_among_step_keys():
    assert step_keys(["_step", "loss", "iter", "trainer/global_step"]) == ["trainer/global_step", "iter", "_step"]
    assert step_keys(["Step", "x - loss"]) == ["Step"]


def test_loss_units_from_the_key():
    assert loss_unit_of("train/bpb") == "bits" and loss_unit_of("bits_per_byte") == "bits"
    assert loss_unit_of("loss_bits") == "bits" and loss_unit_of("val/bpc") == "bits"
    assert loss_unit_of("train/loss") is None and loss_unit_of("lm loss") is None


def test_metadata_from_nested_configs_and_string_params():
    meta = run_metadata({"model": {"n_params": "7B"}, "data": {"seq_len": 2048},
                         "global_batch_size": {"value": 1024, "desc": None}})  # W&B wraps config values
    assert meta == {"params": 7e9, "seq_len": 2048.0, "batch_tokens": 1024 * 2048.0}
    assert run_metadata({"tokens_per_batch": "4M", "batch_size": 8}) == {"batch_tokens": 4e6}
    assert run_metadata({"params": "unknown", "seq_len": -1, "tags": ["a"]}) == {}
    # the config wins over the summary, both are read
    assert run_metadata({"num_params": 1e8}, {"num_params": 2e8, "seq_length": 512}) == {"params": 1e8,
                                                                                       "seq_len": 512.0}
