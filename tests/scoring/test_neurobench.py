"""NeuroBench's harness on a trained SNN and CNN (snnflow.scoring): its numbers equal the
project's own counts where the project has them, and a count of the project's that is
off by one layer shows as a disagreement."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from snnflow import SnnflowError
from snnflow.model import cnn, snn
from snnflow.runs import RunSettings, outputs_in
from snnflow.scoring import NEUROBENCH_COLUMNS, NEUROBENCH_METRICS, agreement, harness
from snnflow.scoring.networks import SpikingView, trained_network
from snnflow.train.loop import run

pytest.importorskip("neurobench", reason="pip install --no-deps -r envs/neurobench.txt")

COMPARED = {"snn": {"ParameterCount", "ClassificationAccuracy", "ActivationSparsity",
                    "Effective_ACs", "Effective_MACs", "Dense"},
            "cnn": {"ParameterCount", "ClassificationAccuracy", "Effective_ACs", "Dense"}}


@pytest.fixture(scope="module")
def trained(small_caches, tmp_path_factory):
    """{"snn": (run folder, cache), "cnn": ...}: a small SNN (T=4, its output spiking) and
    CNN trained a few epochs on the small caches."""
    runs = {}
    for kind, cache, settings in (
            (snn.KIND, small_caches / "nmnist_T4.h5",
             RunSettings(model="snn", T=4, seed=1, epochs=6, batch_size=12, lr=0.05,
                         device="cpu", channels=[4, 8, 8], hidden=16)),
            (cnn.KIND, small_caches / "mnist.h5",
             RunSettings(model="cnn", seed=0, epochs=2, batch_size=20, lr=0.01, device="cpu",
                         channels=[4, 8, 8], hidden=16))):
        folder = tmp_path_factory.mktemp(kind.name)
        run(kind, settings, cache, outputs_in(folder), folder / "ck.pt", code_fingerprint="abc",
            log=lambda m: None)
        runs[kind.name] = folder, cache
    return runs


def score(trained, name, tmp_path, samples=None):
    folder, cache = trained[name]
    out = tmp_path / f"{name}.csv"
    rows = harness.score(folder / "model.pt", folder / "run.json", folder / "predictions.csv",
                         cache, samples, out, log=lambda m: None)
    return rows, out


@pytest.mark.parametrize("name", ["snn", "cnn"])
def test_neurobench_agrees_with_the_projects_counts(trained, name, tmp_path):
    rows, out = score(trained, name, tmp_path)
    table = pd.read_csv(out)
    assert list(table.columns) == NEUROBENCH_COLUMNS
    assert list(table["metric"]) == list(NEUROBENCH_METRICS)
    by_metric = table.set_index("metric")
    compared = set(table.loc[table["agrees"] != "not compared", "metric"])
    assert compared == COMPARED[name]
    assert (by_metric.loc[sorted(compared), "agrees"] == "yes").all(), table
    assert by_metric.loc["ParameterCount", "neurobench"] == json.loads(
        (trained[name][0] / "run.json").read_text())["parameters"]
    if name == "snn":  # a network that spikes: counts that could disagree
        assert 0 < by_metric.loc["Effective_ACs", "neurobench"]
        assert 0 < by_metric.loc["Effective_MACs", "neurobench"]
        assert 0.0 < by_metric.loc["ActivationSparsity", "neurobench"] < 1.0
    else:
        assert by_metric.loc["Effective_ACs", "neurobench"] == 0
        assert 0 < by_metric.loc["Effective_MACs", "neurobench"] < by_metric.loc["Dense",
                                                                                 "neurobench"]


def test_a_subset_of_the_test_split_is_scored_on_its_own_predictions(trained, tmp_path):
    rows, _ = score(trained, "snn", tmp_path, samples=7)
    assert {row["samples"] for row in rows} == {7}
    accuracy = next(r for r in rows if r["metric"] == "ClassificationAccuracy")
    predictions = pd.read_csv(trained["snn"][0] / "predictions.csv").head(7)
    assert accuracy["project"] == (predictions["label"] == predictions["prediction"]).mean()
    assert accuracy["agrees"] == "yes"


def _disagreeing(rows):
    return {row["metric"] for row in agreement.disagreements(rows)}


def test_a_synaptic_operation_count_missing_a_layer_disagrees(trained, tmp_path, monkeypatch):
    """The project's SOPs without the output layer's (fc2) disagree with NeuroBench's
    effective ACs."""
    add = snn.SpikeRecord.add

    def without_fc2(self, layer, spikes=0.0, synaptic_ops=0.0, macs=0.0):
        add(self, layer, spikes, 0.0 if layer == "fc2" else synaptic_ops, macs)
    monkeypatch.setattr(snn.SpikeRecord, "add", without_fc2)
    rows, _ = score(trained, "snn", tmp_path)
    assert _disagreeing(rows) == {"Effective_ACs"}


def test_neurons_counted_for_one_layer_too_many_disagree(trained, tmp_path, monkeypatch):
    """The project's neurons with a conv layer counted on the whole map (the dropped row
    and column of an odd size too) disagree with NeuroBench's activation sparsity."""
    neurons = snn.CSNN.layer_neurons

    def whole_map(self):
        counts = neurons(self)
        counts["conv2"] = self.convs[1][0].out_channels * 17 * 17
        return counts
    monkeypatch.setattr(snn.CSNN, "layer_neurons", whole_map)
    rows, _ = score(trained, "snn", tmp_path)
    assert _disagreeing(rows) == {"ActivationSparsity"}


def test_multiply_accumulates_missing_a_layer_disagree(trained, tmp_path, monkeypatch):
    """The CNN's MACs without fc2's disagree with NeuroBench's dense operations."""
    macs = cnn.CNN.layer_macs

    def without_fc2(self):
        return {layer: 0 if layer == "fc2" else count for layer, count in macs(self).items()}
    monkeypatch.setattr(cnn.CNN, "layer_macs", without_fc2)
    rows, _ = score(trained, "cnn", tmp_path)
    assert _disagreeing(rows) == {"Dense"}


def test_frames_of_only_zeros_and_ones_count_as_spikes_on_both_sides(trained):
    """NeuroBench calls a layer's input spikes when it holds only 0 and 1: on such frames
    the first convolution's operations are accumulates, and the project's split follows."""
    network, settings = trained_network(trained["snn"][0] / "model.pt")
    frames, labels = snn.KIND.load(trained["snn"][1], "test")
    binary = harness.Samples(np.minimum(frames, 1), labels, 1.0)
    theirs = harness.neurobench_scores(network, settings, binary)
    ours = harness.project_counts(network, settings, binary)
    assert theirs["Effective_MACs"] == ours["Effective_MACs"] == 0
    assert theirs["Effective_ACs"] == pytest.approx(ours["Effective_ACs"], rel=1e-6)


def test_the_view_neurobench_sees_computes_the_trained_networks_spikes(trained):
    network, _ = trained_network(trained["snn"][0] / "model.pt")
    frames, _ = snn.KIND.load(trained["snn"][1], "test")
    x = torch.as_tensor(frames[:9]).float()
    with torch.no_grad():
        assert torch.equal(SpikingView(network)(x), network(x.transpose(0, 1)).transpose(0, 1))


def test_a_metric_neurobench_fails_on_is_an_error_not_a_zero(trained, monkeypatch):
    """NeuroBench prints a workload metric that raised and scores it 0; here it stops."""
    from neurobench.metrics.workload import ActivationSparsity

    def broken(self, model, preds, data):
        raise RuntimeError("hooks saw nothing")
    monkeypatch.setattr(ActivationSparsity, "__call__", broken)
    network, settings = trained_network(trained["snn"][0] / "model.pt")
    frames, labels = snn.KIND.load(trained["snn"][1], "test")
    with pytest.raises(SnnflowError, match="ActivationSparsity.*hooks saw nothing"):
        harness.neurobench_scores(network, settings, harness.Samples(frames, labels, 1.0))


def test_predictions_of_another_split_are_refused(trained, tmp_path):
    folder, cache = trained["snn"]
    wrong = tmp_path / "predictions.csv"
    table = pd.read_csv(folder / "predictions.csv")
    table["label"] = (table["label"] + 1) % 10
    table.to_csv(wrong, index=False)
    with pytest.raises(SnnflowError, match="not the predictions of this test split"):
        harness.score(folder / "model.pt", folder / "run.json", wrong, cache, None,
                      tmp_path / "out.csv", log=lambda m: None)
    assert not (tmp_path / "out.csv").exists()


def test_neurobench_is_installed_beside_the_projects_torch_and_never_imports_torchaudio():
    """envs/neurobench.txt is installed without dependencies: torch stays the one the
    Makefile pins, and scoring imports nothing of torchaudio (whose library cannot load
    beside this torch)."""
    from importlib import metadata

    pins = dict(line.split("==") for line in (REPO / "envs" / "neurobench.txt").read_text()
                .splitlines() if line and not line.startswith("#"))
    assert {name: metadata.version(name) for name in pins} == pins
    assert "torch==2.13.0" in (REPO / "Makefile").read_text()
    assert metadata.version("torch").split("+")[0] == "2.13.0"
    post_deploy = (REPO / "envs" / "neurobench.post-deploy.sh").read_text()
    assert all(f"{name}=={version}" in post_deploy for name, version in pins.items())
    script = ("import sys; sys.path.insert(0, 'workflow'); import snnflow.scoring.harness; "
              "import neurobench.benchmarks, neurobench.metrics.workload, "
              "neurobench.metrics.static, neurobench.processors.postprocessors; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchaudio'))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
