"""The presets (workflow/presets/*.yaml: the PLIF paper's networks) run through Snakemake
on small synthetic copies of their datasets (tests/tonic_copies.py): the preset's layers,
neuron, surrogate, loss and dropout train and the report is finished. Not their accuracy:
the copies are small and the frames summed to 32 x 32 (dataset.size), one epoch at T=2,
to keep the test short; no preset was run at full size here."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import tonic_copies
from conftest import REPO, copy_workflow
from test_workflow import snakemake

pytestmark = pytest.mark.workflow

PRESETS = {"plif_dvsgesture": ("DVSGesture", [128] * 5),
           "plif_cifar10dvs": ("CIFAR10DVS", [128] * 4)}
SMALL = {"snn": {"T": [2], "main_T": 2, "epochs": 1}, "cnn": {"epochs": 1},
         "nir": {"enabled": False, "samples": None},  # checked for PLIF in tests/deploy
         "neurobench": {"enabled": False, "samples": None}}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_trains_its_network_and_finishes_the_report(preset, tmp_path):
    name, channels = PRESETS[preset]
    settings = yaml.safe_load((REPO / "workflow" / "presets" / f"{preset}.yaml").read_text())
    assert settings["snn"]["channels"] == channels and settings["snn"]["neuron"] == "plif"
    copy_workflow(tmp_path)
    sizes = {"train_users": 3, "test_users": 1} if name == "DVSGesture" else {}
    tonic_copies.write_copy(name, tmp_path / "copy", np.random.default_rng(0), **sizes)
    small = {**SMALL, "dataset": {"dir": str(tmp_path / "copy"), "size": 32,
                                  "test_fraction": 0.3}}
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small))
    snakemake(tmp_path, "--configfile", f"workflow/presets/{preset}.yaml", "small.yaml",
              runtime_only=True)
    results = tmp_path / settings["results_dir"]
    info = json.loads((results / "runs" / "snn_T2" / "seed0" / "run.json").read_text())
    s = info["settings"]
    assert (s["channels"], s["hidden"], s["neuron"], s["surrogate"], s["loss"], s["dropout"]) == (
        channels, 512, "plif", "atan", "mse_rate", 0.5)
    assert set(info["learned_tau"]) == {*(f"conv{k}" for k in range(1, len(channels) + 1)),
                                        "fc1", "fc2"}
    assert info["parameters"] > 128 * 128 * 9 * (len(channels) - 1)  # the preset's widths
    models = pd.read_csv(results / "tables" / "models.csv")
    assert models.loc[models["model"] == "SNN-2", "neuron"].iloc[0].startswith(
        "PLIF, tau learned from 2.0 (conv1 ")
    assert (results / "report.html").stat().st_size > 0
