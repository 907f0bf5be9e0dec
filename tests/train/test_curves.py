"""A run's live curves (snnflow.train.curves): TensorBoard event files holding every
metrics.csv and layers.csv value of each epoch, the running training loss and the run's
hparams; rewritten, never duplicated, when a job resumes; fresh when the run is."""

import sys

import numpy as np
import pandas as pd
import pytest

import snnflow.train.steps as steps
from conftest import event_scalars, session_hparams
from snnflow.model import cnn, snn
from snnflow.runs import RunSettings, outputs_in
from snnflow.train import curves
from snnflow.train.loop import run



def settings(model, **overrides):
    values = dict(model=model, epochs=3, batch_size=4, lr=0.01, seed=3, device="cpu",
                  channels=[4, 8, 8], hidden=16, T=4 if model == "snn" else None)
    return RunSettings(**{**values, **overrides})


def train(s, caches, out, log=lambda m: None):
    cache = caches / ("nmnist_T4.h5" if s.model == "snn" else "mnist.h5")
    out.mkdir(parents=True, exist_ok=True)
    kind = {"snn": snn.KIND, "cnn": cnn.KIND}[s.model]
    return run(kind, s, cache, outputs_in(out), out / "checkpoint.pt",
               code_fingerprint="abc", log=log, curves_folder=out / "tensorboard")


def by_tag(points):
    """{tag: [(step, value)]} of event_scalars' points."""
    tags = {}
    for tag, step, value in points:
        tags.setdefault(tag, []).append((step, value))
    return tags


def assert_curves_hold_the_csvs(folder, run_folder, spiking=True):
    """Each epoch's metrics.csv and layers.csv values once, as float32 (TensorBoard's)."""
    tags = by_tag(event_scalars(folder))
    metrics = pd.read_csv(run_folder / "metrics.csv")
    for column, tag in curves.METRIC_TAGS.items():
        if metrics[column].isna().all():
            assert tag not in tags, f"{tag} written without a value"
            continue
        assert tags[tag] == [(e, float(np.float32(v)))
                             for e, v in zip(metrics["epoch"], metrics[column])], tag
    layers = pd.read_csv(run_folder / "layers.csv")
    for layer, rows in layers.groupby("layer"):
        for column, tag in curves.LAYER_TAGS.items():
            tag = tag.format(layer=layer)
            if not spiking:
                assert tag not in tags
                continue
            assert tags[tag] == [(e, float(np.float32(v)))
                                 for e, v in zip(rows["epoch"], rows[column])], tag
    return tags


@pytest.mark.parametrize("model", ["snn", "cnn"])
def test_every_epoch_value_of_the_csvs_is_a_point_and_the_settings_are_hparams(
        small_caches, tmp_path, model):
    s = settings(model)  # 60 samples: 15 batches an epoch
    train(s, small_caches, tmp_path)
    folder = tmp_path / "tensorboard"
    tags = assert_curves_hold_the_csvs(folder, tmp_path, spiking=model == "snn")
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert [step for step, _ in tags[curves.SAMPLES_PER_SECOND_TAG]] == [1, 2, 3]
    # the running loss: every batch of the 15 but the last (the epoch's own point)
    running = [step for step, _ in tags[curves.RUNNING_LOSS_TAG]]
    assert running == [epoch * 15 + b for epoch in range(3) for b in range(1, 15)]
    assert all(np.isfinite(value) for _, value in tags[curves.RUNNING_LOSS_TAG])
    final = float(np.float32(metrics["test_acc"].iloc[-1]))
    assert tags[curves.FINAL_TAGS["final"]] == [(3, final)]
    hparams = session_hparams(folder)
    assert hparams["model"] == model and hparams["seed"] == 3 and hparams["lr"] == 0.01
    assert hparams["channels"] == "[4, 8, 8]" and hparams["channels_last"] == "true"
    assert ("T" in hparams) == (model == "snn")


def test_a_resumed_run_has_each_point_once_and_a_fresh_one_starts_over(
        small_caches, tmp_path, monkeypatch):
    s = settings("snn")
    original = steps.Trainer.train_epoch

    def dies_in_epoch_3_batch_7(self, data, generator, epoch, on_batch=None):
        def until_batch_7(epoch, b, sums):
            on_batch(epoch, b, sums)
            if epoch == 3 and b == 7:
                raise KeyboardInterrupt
        return original(self, data, generator, epoch, until_batch_7)

    monkeypatch.setattr(steps.Trainer, "train_epoch", dies_in_epoch_3_batch_7)
    with pytest.raises(KeyboardInterrupt):
        train(s, small_caches, tmp_path)
    folder = tmp_path / "tensorboard"
    killed = by_tag(event_scalars(folder))
    assert max(step for step, _ in killed[curves.RUNNING_LOSS_TAG]) == 2 * 15 + 7

    monkeypatch.setattr(steps.Trainer, "train_epoch", original)
    logs = []
    train(s, small_caches, tmp_path, log=logs.append)
    assert any("2 epoch(s) written again, continuing at epoch 3" in line for line in logs)
    tags = assert_curves_hold_the_csvs(folder, tmp_path)
    running = [step for step, _ in tags[curves.RUNNING_LOSS_TAG]]
    assert running == [epoch * 15 + b for epoch in range(3) for b in range(1, 15)]
    assert killed[curves.RUNNING_LOSS_TAG][:28] == tags[curves.RUNNING_LOSS_TAG][:28]
    files = sorted(folder.iterdir())
    assert len(files) == 2 and files[0].stat().st_size == 0  # the killed attempt's, emptied

    logs = []
    train(settings("snn", epochs=2, lr=0.02), small_caches, tmp_path,
          log=logs.append)
    assert any("starting fresh, the earlier curves there are dropped" in line for line in logs)
    assert_curves_hold_the_csvs(folder, tmp_path)
    assert [f.stat().st_size > 0 for f in sorted(folder.iterdir())] == [False, True]
    assert session_hparams(folder)["lr"] == 0.02


def test_without_tensorboard_the_run_trains_and_says_so(small_caches, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not importable
    logs = []
    train(settings("snn", epochs=1), small_caches, tmp_path, log=logs.append)
    assert any("TensorBoard curves: off" in line for line in logs)
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
    assert not (tmp_path / "tensorboard").exists()


@pytest.mark.parametrize("obstacle", ["read-only", "folder as event file", "file as folder"])
def test_a_curves_folder_that_cannot_hold_them_leaves_a_warning_and_the_run_trains(
        small_caches, tmp_path, obstacle):
    """The curves are optional: a folder that cannot hold them is one warning line, never
    a failed run."""
    import os

    folder = tmp_path / "tensorboard"
    if obstacle == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder.mkdir()
        folder.chmod(0o500)
    elif obstacle == "folder as event file":
        (folder / f"{curves.EVENT_FILE_PREFIX}1.host").mkdir(parents=True)
    else:
        folder.write_text("not a folder")
    logs = []
    try:
        train(settings("snn", epochs=1), small_caches, tmp_path, log=logs.append)
    finally:
        if folder.is_dir():
            folder.chmod(0o700)
    warnings = [line for line in logs if line.startswith("warning: TensorBoard curves: off, ")]
    assert len(warnings) == 1 and "it trains on without its curves" in warnings[0], logs
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
