import json

import pandas as pd
import pytest
import torch

import snnflow.train.loop as training
import snnflow.train.steps as steps
from snnflow import SnnflowError
from snnflow.model import cnn, snn
from snnflow.runs import LAYER_COLUMNS, METRICS_COLUMNS, RunSettings, layer_names, outputs_in
from snnflow.train.loop import run

LAYERS = layer_names(3)  # the study's network: three conv blocks

KINDS = {"snn": snn.KIND, "cnn": cnn.KIND}

TIMES = ["train_seconds", "test_seconds"]


def settings(model, **overrides):
    values = dict(model=model, epochs=3, batch_size=16, lr=0.01, seed=3, device="cpu",
                  channels=[4, 8, 8], hidden=16)
    if model == "snn":
        values["T"] = 4
    values.update(overrides)
    return RunSettings(**values)


def train(s, caches, out, log=lambda m: None, **kw):
    cache = caches / ("nmnist_T4.h5" if s.model == "snn" else "mnist.h5")
    out.mkdir(parents=True, exist_ok=True)
    return run(KINDS[s.model], s, cache, outputs_in(out), out / "checkpoint.pt",
               code_fingerprint="abc", log=log, **kw)


@pytest.mark.parametrize("model", ["snn", "cnn"])
def test_run_writes_one_row_per_epoch_model_and_run_info(small_caches, tmp_path, model):
    s = settings(model)
    train(s, small_caches, tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == METRICS_COLUMNS
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert metrics["lr"].iloc[0] == pytest.approx(0.01) and metrics["lr"].is_monotonic_decreasing
    assert metrics[["train_acc", "test_acc"]].stack().between(0, 1).all()
    assert (metrics[TIMES] > 0).all().all()
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["settings"]["model"] == model and "state_dict" in saved
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["device"] == "cpu" and info["versions"]["torch"] == torch.__version__
    assert (info["n_train"], info["n_test"]) == ((60, 60) if model == "snn" else (60, 20))
    assert ("tau" in info["settings"]) == (model == "snn")


def test_an_atan_run_passes_the_kernel_check_of_its_own_surrogate(small_caches, tmp_path):
    """snn.surrogate: atan trains on the fused C++ kernels, which the job checks against
    the reference with the ATan surrogate first; the gradients differ from the sigmoid's."""
    logs = []
    train(settings("snn", surrogate="atan", surrogate_alpha=2.0), small_caches,
          tmp_path / "atan", log=logs.append)
    train(settings("snn"), small_caches, tmp_path / "sigmoid")
    assert any(line.startswith("kernel check: passed") for line in logs), logs
    info = json.loads((tmp_path / "atan" / "run.json").read_text())
    assert info["backend"] == "cpp" and info["settings"]["surrogate"] == "atan"
    atan, sigmoid = (torch.load(tmp_path / d / "model.pt", weights_only=True)["state_dict"]
                     for d in ("atan", "sigmoid"))
    assert not torch.equal(atan["fc1.weight"], sigmoid["fc1.weight"])  # other gradients


def test_a_plif_run_says_which_kernels_run_its_neurons(small_caches, tmp_path):
    """The C++ kernels carry the PLIF, fused blocks included: a PLIF job's log says so, its
    kernel check passes on the PLIF's neuron and block kernels and the C++ convolution of
    spikes, and it learns each layer's tau."""
    logs = []
    # 32 channels in conv2: its input spikes take the C++ sparse convolution
    train(settings("snn", neuron="plif", channels=[4, 32, 32]), small_caches, tmp_path,
          log=logs.append)
    assert any("snn.neuron plif runs in the C++ neuron and block kernels" in line
               for line in logs), logs
    assert any(line.startswith("kernel check: passed") for line in logs), logs
    info = json.loads((tmp_path / "run.json").read_text())
    (check,) = info["kernel_check"]["checks"]
    assert check["passed"] and "PLIF spikes equal" in check["detail"]
    assert "decay grad diff" in check["detail"] and "sparse conv" in check["detail"]
    assert "block spikes differ" in check["detail"]
    assert info["backend"] == "cpp" and set(info["learned_tau"]) == set(LAYERS)


def test_same_seed_gives_identical_metrics(small_caches, tmp_path):
    s = settings("snn")
    train(s, small_caches, tmp_path / "a")
    train(s, small_caches, tmp_path / "b")
    a, b = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns=TIMES) for d in "ab")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("choices", [{}, {"loss": "ce_rate", "dropout": 0.3}])
def test_resume_after_interruption_continues_the_same_run(small_caches, tmp_path, monkeypatch,
                                                          choices):
    """Also with dropout, whose masks come from torch's random state: the checkpoint keeps
    it."""
    s = settings("snn", **choices)
    train(s, small_caches, tmp_path / "straight")
    original = steps.Trainer.train_epoch

    def dies_in_epoch_3(self, data, generator, epoch, on_batch=None):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, data, generator, epoch, on_batch)

    monkeypatch.setattr(steps.Trainer, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(s, small_caches, tmp_path / "resumed")
    monkeypatch.setattr(steps.Trainer, "train_epoch", original)
    logs = []
    train(s, small_caches, tmp_path / "resumed", log=logs.append)
    assert any("resuming" in line and "after epoch 2" in line for line in logs)
    straight, resumed = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns=TIMES)
                         for d in ("straight", "resumed"))
    pd.testing.assert_frame_equal(straight, resumed)
    for name in ("layers.csv", "predictions.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "straight" / name),
                                      pd.read_csv(tmp_path / "resumed" / name))


def test_a_job_resumed_after_its_last_epoch_still_writes_its_predictions(small_caches, tmp_path):
    s = settings("cnn", epochs=2)
    train(s, small_caches, tmp_path / "straight")
    train(s, small_caches, tmp_path / "again")
    (tmp_path / "again" / "predictions.csv").unlink()  # as if killed after the checkpoint
    logs = []
    train(s, small_caches, tmp_path / "again", log=logs.append)
    assert any("after epoch 2" in line for line in logs)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "straight" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "again" / "predictions.csv"))


@pytest.mark.parametrize("model", ["snn", "cnn"])
def test_layer_activity_and_predictions_are_written(small_caches, tmp_path, model):
    train(settings(model), small_caches, tmp_path)
    layers = pd.read_csv(tmp_path / "layers.csv")
    assert list(layers.columns) == LAYER_COLUMNS
    assert list(layers["epoch"]) == [e for e in (1, 2, 3) for _ in LAYERS]
    assert list(layers["layer"]) == list(LAYERS) * 3
    if model == "snn":  # spikes per neuron per step; SOPs from spikes; MACs on the events
        assert layers["firing_rate"].between(0, 1).all()
        assert (layers.loc[layers.layer == "conv1", "macs"] > 0).all()
        assert (layers.loc[layers.layer != "conv1", "macs"] == 0).all()
    else:  # no spikes: MACs from the shapes, the same every epoch
        assert layers["firing_rate"].isna().all() and (layers["synaptic_ops"] == 0).all()
        first = layers[layers.epoch == 1].set_index("layer")["macs"]
        assert first["conv1"] == 1 * 4 * (26 * 26 * 9 + 4 * 26 * 6 + 4 * 4)  # 28x28 input
        assert first["fc2"] == 16 * 10
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert list(predictions.columns) == ["index", "label", "prediction"]
    n_test = 60 if model == "snn" else 20
    assert list(predictions["index"]) == list(range(n_test))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    accuracy = (predictions["label"] == predictions["prediction"]).mean()
    assert accuracy == pytest.approx(metrics["test_acc"].iloc[-1])


def test_changed_setting_starts_fresh(small_caches, tmp_path):
    train(settings("cnn", epochs=2), small_caches, tmp_path)
    logs = []
    s = settings("cnn", epochs=2, lr=0.02, autocast="bf16")
    train(s, small_caches, tmp_path, log=logs.append)
    assert any("was made with other settings (cnn.lr: 0.01 -> 0.02, performance.autocast: "
               "'none' -> 'bf16'); starting fresh" in line for line in logs), logs
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1, 2]


def test_changed_code_starts_fresh_naming_the_fingerprints(small_caches, tmp_path):
    train(settings("cnn", epochs=1), small_caches, tmp_path)
    logs = []
    s = settings("cnn", epochs=1)
    run(KINDS["cnn"], s, small_caches / "mnist.h5", outputs_in(tmp_path),
        tmp_path / "checkpoint.pt", code_fingerprint="def", log=logs.append)
    assert any("was made with other code (fingerprint abc -> def)" in line for line in logs)


def test_non_finite_loss_names_epoch_and_batch_and_keeps_the_checkpoint(
        small_caches, tmp_path, monkeypatch):
    original = steps.loss_and_scores
    calls = []

    def nan_in_epoch_2_batch_3(model, kind, x, y):
        loss, scores = original(model, kind, x, y)
        if model.training:
            calls.append(1)
            if len(calls) == 4 + 3:  # 60 samples / batch 16 = 4 batches per epoch
                loss = loss * float("nan")
        return loss, scores

    monkeypatch.setattr(steps, "loss_and_scores", nan_in_epoch_2_batch_3)
    with pytest.raises(SnnflowError, match="epoch 2 batch 3: loss is nan"):
        train(settings("cnn"), small_caches, tmp_path)
    kept = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert len(kept["history"]) == 1


def test_batch_larger_than_the_dataset_is_refused(small_caches, tmp_path):
    with pytest.raises(SnnflowError, match="config key snn.batch_size: 1000 is larger than the 60 training"):
        train(settings("snn", batch_size=1000), small_caches, tmp_path)


def test_cuda_without_a_gpu_is_refused(small_caches, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SnnflowError, match="config key device: 'cuda'"):
        train(settings("cnn", device="cuda"), small_caches, tmp_path)


def test_a_job_on_a_gpu_node_whose_torch_cannot_use_it_refuses_the_cpu(monkeypatch):
    """The jobs' own check (on a cluster they run on other nodes than the one that plans
    them): device auto, GPUs on the node, a torch that cannot use them."""
    if torch.cuda.is_available():
        pytest.skip("this machine's torch can use its GPU")
    monkeypatch.setattr(training, "count_gpus", lambda: 4)
    with pytest.raises(SnnflowError, match=r"^config key device: auto, but this machine has 4 "
                                           r"NVIDIA GPUs and torch .* - install a CUDA build"):
        training.resolve_device("auto")
    monkeypatch.setattr(training, "count_gpus", lambda: 0)
    assert training.resolve_device("auto") == torch.device("cpu")


def test_damaged_checkpoint_starts_fresh(small_caches, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    logs = []
    s = settings("cnn", epochs=1)
    train(s, small_caches, tmp_path, log=logs.append)
    assert any("unreadable" in line and "starting fresh" in line for line in logs)
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1]


def test_graphed_steps_train_exactly_as_eager_steps(small_caches, tmp_path, monkeypatch):
    """The CUDA-graph path's plumbing on CPU: warm-up steps, the capture, inputs copied
    into the captured ones, eager last batches, sums on the device. A "graph" here replays
    the step function itself; the capture on a GPU is checked by make gpu-check."""
    replays = []

    class Replay:
        def __init__(self, step):
            self.step = step

        def replay(self):
            replays.append(1)
            self.step()

    s = settings("snn", epochs=3)
    train(s, small_caches, tmp_path / "eager")
    monkeypatch.setattr(steps, "capture_cuda_graph", Replay)
    monkeypatch.setattr(steps, "run_on_side_stream", lambda step: step())
    original_step = steps.GraphedSteps.step

    def replayed(self, trainer, x, y, batch, sums):
        if self.graph is not None:  # a real graph's backward writes fresh gradients
            trainer.optimizer.zero_grad(set_to_none=True)
        original_step(self, trainer, x, y, batch, sums)
    monkeypatch.setattr(steps.GraphedSteps, "step", replayed)
    original = steps.Trainer.__init__

    def with_graphs(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "cuda_graphs": True})
    monkeypatch.setattr(steps.Trainer, "__init__", with_graphs)
    train(s, small_caches, tmp_path / "graphed")
    # 60 samples in batches of 16: 3 full ones and 12 left each epoch; 3 warm-ups
    assert len(replays) == 3 * 3 - steps.GraphedSteps.WARMUP
    eager, graphed = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns=TIMES)
                      for d in ("eager", "graphed"))
    pd.testing.assert_frame_equal(eager, graphed)


def test_a_cuda_build_that_cannot_use_the_gpus_says_why(monkeypatch):
    """The phrase of a CUDA build of torch that finds no usable GPU: torch's own warning
    (an old driver), or CUDA_VISIBLE_DEVICES set to nothing."""
    import warnings

    from snnflow.device.cuda_check import cuda_problem

    def unavailable():
        warnings.warn("CUDA initialization: The NVIDIA driver on your system is too old "
                      "(found version 12020).\nPlease update your GPU driver.")
        return False
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", unavailable)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cuda_problem().endswith("built for CUDA 13.0, cannot use them: CUDA initialization: "
                                   "The NVIDIA driver on your system is too old (found version "
                                   "12020).")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda_problem().endswith("cannot use them: CUDA_VISIBLE_DEVICES is set to nothing, "
                                   "which hides every GPU")


def test_without_a_validation_split_the_run_trains_on_the_whole_training_split(small_caches,
                                                                              tmp_path):
    """validation.fraction 0 (the default, the reference study's protocol): the training
    data is the cache's whole training split, in its order, as before the split existed."""
    s = settings("snn")
    cache = small_caches / "nmnist_T4.h5"
    train_data, validation, test_data, split = training.load_data(snn.KIND, s, cache,
                                                                  torch.device("cpu"))
    inputs, labels = snn.KIND.load(cache, "train")
    assert validation is None and split["n_validation"] == 0
    assert torch.equal(train_data.inputs, torch.as_tensor(inputs))
    assert torch.equal(train_data.labels, torch.as_tensor(labels))
    train(s, small_caches, tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics[["val_loss", "val_acc"]].isna().all().all()
    assert json.loads((tmp_path / "run.json").read_text())["validation"]["fraction"] == 0.0


@pytest.mark.parametrize("model", ["snn", "cnn"])
def test_a_validation_split_is_held_out_of_training_and_evaluated_each_epoch(
        small_caches, tmp_path, model):
    from snnflow.data.validation import held_out

    s = settings(model, validation_fraction=0.25, validation_seed=4)
    cache = small_caches / ("nmnist_T4.h5" if model == "snn" else "mnist.h5")
    train_data, validation, _, split = training.load_data(KINDS[model], s, cache,
                                                          torch.device("cpu"))
    inputs, labels = KINDS[model].load(cache, "train")
    mask = held_out(labels, 0.25, 4)
    assert torch.equal(validation.inputs, torch.as_tensor(inputs[mask]))
    assert torch.equal(train_data.inputs, torch.as_tensor(inputs[~mask]))  # in order, the rest
    assert len(train_data) + len(validation) == len(labels) == 60
    # 6 samples of each class in both caches: round(0.25 * 6) = 2 of each held out
    assert torch.bincount(validation.labels, minlength=10).tolist() == [2] * 10
    train(s, small_caches, tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics[["val_loss", "val_acc"]].notna().all().all()
    assert metrics["val_acc"].between(0, 1).all()
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["n_train"] == len(train_data) and info["validation"] == split
    assert split["n_validation"] == mask.sum() and split["seed"] == 4


def test_every_snn_and_seed_of_a_study_holds_out_the_same_samples(small_caches, tmp_path):
    """The split is chosen from the labels, which every frame cache holds in the same
    order: SNN-2 and SNN-4, seeds 0 and 1, validate on the same recordings."""
    from snnflow.data.frames import build_frame_cache

    build_frame_cache(small_caches / "events.h5", 2, tmp_path / "nmnist_T2.h5")
    splits = []
    for T, seed in ((4, 0), (4, 1), (2, 0)):
        s = settings("snn", T=T, seed=seed, validation_fraction=0.3, validation_seed=9)
        cache = small_caches / "nmnist_T4.h5" if T == 4 else tmp_path / "nmnist_T2.h5"
        _, validation, _, split = training.load_data(snn.KIND, s, cache, torch.device("cpu"))
        splits.append((split["identity"], validation.labels.tolist(),
                       validation.inputs.sum((1, 2, 3, 4)).tolist()))  # T frames: same events
    assert splits[0] == splits[1] == splits[2]
