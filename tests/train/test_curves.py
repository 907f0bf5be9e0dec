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


def attempts(out):
    """The run's curve folders (one per computation: snnflow.train.curves.attempt_folder),
    oldest first."""
    return sorted((out / "tensorboard").iterdir(), key=lambda p: p.stat().st_mtime_ns)


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
    (folder,) = attempts(tmp_path)
    assert folder.name.startswith(curves.ATTEMPT_PREFIX)
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
    (folder,) = attempts(tmp_path)
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

    before = event_scalars(folder)
    logs = []
    train(settings("snn", epochs=2, lr=0.02), small_caches, tmp_path,
          log=logs.append)
    first, new = attempts(tmp_path)  # new settings: a TensorBoard run of their own
    assert first == folder and event_scalars(first) == before
    assert any(f"a new TensorBoard run for these settings; the run's earlier ones stay apart "
               f"({first.name})" in line for line in logs), logs
    assert_curves_hold_the_csvs(new, tmp_path)
    assert session_hparams(new)["lr"] == 0.02 and session_hparams(first)["lr"] == 0.01


def test_without_tensorboard_the_run_trains_and_says_so(small_caches, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not importable
    logs = []
    train(settings("snn", epochs=1), small_caches, tmp_path, log=logs.append)
    assert any("TensorBoard curves: off" in line for line in logs)
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
    assert not (tmp_path / "tensorboard").exists()  # no folder of curves at all


@pytest.mark.parametrize("obstacle", ["read-only", "fifo as folder", "file as folder"])
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
    elif obstacle == "fifo as folder":
        os.mkfifo(folder)
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


def test_a_running_tensorboard_shows_a_fresh_restart_as_a_second_run(small_caches, tmp_path):
    """A TensorBoard server (make watch, on 127.0.0.1) started before a run is started
    fresh with new settings: read through its own data API, as a browser would, the two
    computations are two runs, each with its own hparams and points; none mixed."""
    import os
    import signal
    import time
    import urllib.parse

    from conftest import started_watch, tensorboard_get

    results = tmp_path / "results"
    out = results / "runs" / "snn_T4" / "seed0"

    def train_into(s):
        out.mkdir(parents=True, exist_ok=True)
        run(snn.KIND, s, small_caches / "nmnist_T4.h5", outputs_in(out), tmp_path / "ck.pt",
            code_fingerprint="abc", log=lambda m: None,
            curves_folder=results / "tensorboard" / "runs" / "snn_T4" / "seed0")

    train_into(settings("snn", epochs=2))
    process, url = started_watch(results)
    try:
        def get(route, body=None):
            return tensorboard_get(url, route, body)

        def runs_shown(count):
            deadline = time.monotonic() + 120
            while len(shown := get("data/runs")) < count:
                assert time.monotonic() < deadline, shown
                time.sleep(1)
            time.sleep(6)  # a reload (every 5 s) after they appeared: every file read
            return shown

        (first,) = runs_shown(1)
        train_into(settings("snn", epochs=3, lr=0.02))  # new settings: a fresh start
        shown = runs_shown(2)
        (second,) = [name for name in shown if name != first]

        def test_acc(name):
            query = urllib.parse.urlencode({"run": name, "tag": curves.METRIC_TAGS["test_acc"]})
            return [step for _, step, _ in get(f"data/plugin/scalars/scalars?{query}")]
        assert test_acc(first) == [1, 2] and test_acc(second) == [1, 2, 3]
        groups = get("data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 10,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                "STATUS_RUNNING"], "colParams": [{"hparam": "lr"}]})
        lrs = {group["name"]: group["hparams"]["lr"] for group in groups["sessionGroups"]}
        assert lrs == {first: 0.01, second: 0.02}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
