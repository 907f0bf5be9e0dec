"""A study on a user's small copies never misleads: the small-study recipe's settings
(workflow/small.yaml with workflow/subset.yaml) train SNN-4 above chance in evaluation on
about 1,000 training recordings, a run with few optimizer steps is evaluated with
BatchNorm statistics that describe it, and a network that does not work says so in its
job's log."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from snnflow.model import snn
from snnflow.runs import RunSettings, failure_signs, outputs_in
from snnflow.plan.settings import fill_in_defaults, snn_settings
from snnflow.train.loop import run


@pytest.fixture(scope="module")
def thousand(tmp_path_factory):
    """Frames (T=4) of 1,000 synthetic N-MNIST training and 200 test recordings."""
    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache
    from snnflow.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("thousand")
    write_dataset(root / "raw", 100, 20, seed=0)
    build_event_store(root / "raw" / "NMNIST", root / "events.h5", 2)
    build_frame_cache(root / "events.h5", 4, root / "nmnist_T4.h5", 2)
    return root / "nmnist_T4.h5"


def recipe_config():
    """config.yaml with workflow/small.yaml, then workflow/subset.yaml, on top (as
    Snakemake merges --configfile files), on the CPU."""
    config = {}
    for name in ("workflow/subset.yaml", "workflow/small.yaml"):  # later files win: first here
        for section, value in yaml.safe_load((REPO / name).read_text()).items():
            if isinstance(value, dict):
                config[section] = {**value, **config.get(section, {})}
            else:
                config.setdefault(section, value)
    fill_in_defaults(config, REPO / "config.yaml")
    config["device"] = "cpu"
    return config


def test_the_small_study_recipe_trains_snn_4_above_chance_on_1000_recordings(thousand,
                                                                             tmp_path):
    """SNN-4, the recipe's smaller T (SNN-8 costs twice the test's time)."""
    config = recipe_config()
    assert config["snn"]["batch_size"] == 32 and config["snn"]["T"] == [4, 8]
    s = RunSettings(**snn_settings(config, 4, 0))
    logs = []
    run(snn.KIND, s, thousand, outputs_in(tmp_path), tmp_path / "ck.pt", code_fingerprint="t",
        log=logs.append)  # one thread: the suite runs two files at once
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert len(metrics) == config["snn"]["epochs"]
    assert metrics["test_acc"].iloc[-1] >= 0.5, metrics
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    layers = pd.read_csv(tmp_path / "layers.csv")
    rate = layers[layers["layer"] == "fc2"]["firing_rate"].iloc[-1]
    assert failure_signs(rate, predictions["prediction"], predictions["label"], 10) == []
    assert not [line for line in logs if line.startswith("warning:")], logs


def test_few_optimizer_steps_are_evaluated_with_statistics_that_describe_the_network(
        thousand, tmp_path):
    """The full study's batch of 256 on 1,000 recordings: 4 steps an epoch. BatchNorm's
    running statistics then still mostly hold their initial values and evaluation was
    silent (10 %); recomputed over the training split, the same weights classify."""
    s = RunSettings(model="snn", epochs=3, batch_size=256, lr=1e-3, seed=0, device="cpu", T=4,
                    channels=[32, 64, 128], hidden=256)
    logs = []
    run(snn.KIND, s, thousand, outputs_in(tmp_path), tmp_path / "ck.pt", code_fingerprint="t",
        log=logs.append)  # one thread: the suite runs two files at once
    steps = math.ceil(1000 / 256)
    assert (f"BatchNorm: {steps} optimizer steps by epoch 1, fewer than 100: its running "
            "statistics are recomputed over the training split before each evaluation until "
            "then (they would not yet describe the trained network)") in logs
    layers = pd.read_csv(tmp_path / "layers.csv")
    assert (layers[layers["layer"] == "fc2"]["firing_rate"] > 0).all()  # was 0: silent
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert failure_signs(layers["firing_rate"].iloc[-1], predictions["prediction"],
                         predictions["label"], 10) == []  # above chance, every sign clear


def test_a_network_that_never_spikes_is_named_in_its_log(small_caches, tmp_path):
    """A threshold no input reaches: every epoch's line is followed by one warning naming
    the signs, the likely causes and what to change."""
    s = RunSettings(model="snn", epochs=2, batch_size=8, lr=1e-3, seed=0, device="cpu", T=4,
                    channels=[4, 8, 8], hidden=16, v_threshold=1000.0)
    logs = []
    run(snn.KIND, s, small_caches / "nmnist_T4.h5", outputs_in(tmp_path), tmp_path / "ck.pt",
        code_fingerprint="t", log=logs.append)
    warnings = [line for line in logs if line.startswith("warning: ")]
    assert [w.split(":")[1] for w in warnings] == [" epoch 1", " epoch 2"]
    assert all("the network does not work in evaluation: its output layer never spiked, "
               "every prediction is class" in w and "likely causes: too few optimizer steps"
               in w and "v_threshold" in w for w in warnings), warnings


def test_the_signs_of_a_network_that_does_not_work():
    labels = np.repeat(np.arange(10), 20)
    assert failure_signs(0.0, np.zeros(200), labels, 10) == [
        "its output layer never spiked", "every prediction is class 0",
        "its test accuracy 10.0 % is at chance (10.0 %)"]
    assert failure_signs(None, labels, labels, 10) == []  # a CNN that works
    guessing = np.arange(200) % 10  # every class in turn: right one time in ten
    assert failure_signs(0.05, guessing, np.roll(labels, 3), 10)[-1].startswith(
        "its test accuracy")
