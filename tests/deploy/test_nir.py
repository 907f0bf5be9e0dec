"""The NIR export (snnflow.deploy.nir_graph) and its check in other frameworks' importers
(snnflow.deploy.nir_check), on a small trained model, spike for spike."""

import json
import subprocess
from dataclasses import replace
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from snnflow.deploy import nir_check, nir_graph
from snnflow.model import snn
from snnflow.runs import RunSettings, outputs_in
from snnflow.train.loop import run

pytest.importorskip("nir", reason="nir is a runtime dependency: pip install -e .")
IMPORTERS_MISSING = [name for name in nir_check.IMPORTERS
                     if nir_check.installed_version(name) is None]


@pytest.fixture(scope="module")
def trained(small_caches, tmp_path_factory):
    """A small SNN trained 6 epochs on the T=4 cache (its output neurons spike: 125 spikes
    on the 60 test samples), exported: (run folder, graph path)."""
    folder = tmp_path_factory.mktemp("run")
    s = RunSettings(model="snn", T=4, seed=1, epochs=6, batch_size=12, lr=0.05, device="cpu",
                    channels=[4, 8, 8], hidden=16)
    run(snn.KIND, s, small_caches / "nmnist_T4.h5", outputs_in(folder), folder / "ck.pt",
        code_fingerprint="abc", log=lambda m: None)
    nir_graph.export(folder / "model.pt", folder / "run.json", folder / "model.nir")
    return folder, folder / "model.nir"


def test_the_graph_opens_in_a_fresh_interpreter_stating_dt_and_the_threshold_rule(trained):
    _, path = trained
    script = ("import json, sys, nir; g = nir.read(sys.argv[1]); "
              "print(json.dumps({k: str(v) for k, v in g.metadata.items()})); "
              "print(json.dumps(sorted(g.nodes)))")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                            text=True, check=True)
    metadata, nodes = map(json.loads, result.stdout.splitlines())
    assert float(metadata["dt"]) == nir_graph.DT == 1e-4
    assert "v >= v_threshold" in metadata["threshold_rule"]
    assert "v > v_threshold" in metadata["threshold_rule"]
    assert metadata["model"] == "snn_T4" and metadata["seed"] == "1"
    assert {"input", "conv1", "lif1", "pool1", "pool1_fire", "flatten", "fc2", "lif_fc2",
            "output"} <= set(nodes)


def test_lifs_are_nirs_lif_with_tau_times_dt_and_the_trained_threshold(trained):
    import nir

    graph = nir.read(str(trained[1]))
    lif = graph.nodes["lif2"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (8, 17, 17)
    assert np.allclose(lif.tau, 2.0 * 1e-4) and np.all(lif.r == 1) and np.all(lif.v_leak == 0)
    assert np.all(lif.v_threshold == 1.0) and np.all(lif.v_reset == 0.0)
    assert isinstance(graph.nodes["pool2"], nir.Conv2d)
    assert graph.nodes["pool2"].weight.shape == (8, 8, 2, 2)
    assert ("pool3_fire", "flatten") in graph.edges and ("fc1", "lif_fc1") in graph.edges


def test_folding_batchnorm_into_the_convolution(trained):
    model, _ = nir_graph.trained_model(trained[0] / "model.pt")
    conv, bn = model.convs[1]
    weight, bias = nir_graph.fold_batchnorm(conv, bn)
    x = torch.randn(3, 4, 17, 17, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = bn(conv(x))
        folded = torch.nn.functional.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias),
                                            padding=1)
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)


def test_the_pool_construction_is_a_max_pool_of_binary_spikes():
    """An identity 2x2 convolution of stride 2, then a LIF of tau 2 and threshold 1/4 that
    starts every step at 0, on binary spikes of an odd-sized map."""
    from snnflow.model.neuron import LIF, LIFParams

    spikes = (torch.rand(5, 3, 6, 17, 17, generator=torch.Generator().manual_seed(1)) < 0.2)
    spikes = spikes.float()
    weight = torch.from_numpy(nir_graph._sum_pool(6, (17, 17)).weight)
    sums = torch.nn.functional.conv2d(spikes.flatten(0, 1), weight, stride=2).unflatten(0, (5, 3))
    fire = LIF(LIFParams(tau=2.0, v_threshold=nir_graph.POOL_THRESHOLD), "reference", "torch")
    with torch.no_grad():
        pooled = fire(sums)
    expected = torch.nn.functional.max_pool2d(spikes.flatten(0, 1), 2).unflatten(0, (5, 3))
    assert torch.equal(pooled, expected)


@pytest.mark.skipif(bool(IMPORTERS_MISSING), reason=f"{IMPORTERS_MISSING} not installed: "
                    "pip install --no-deps -r envs/nir-importers.txt")
def test_every_importer_runs_the_graph_spike_for_spike(trained, small_caches, tmp_path):
    folder, path = trained
    rows = nir_check.verify(path, folder / "model.pt", folder / "run.json",
                            small_caches / "nmnist_T4.h5", None, tmp_path / "check.csv",
                            log=lambda m: None)
    assert [row["importer"] for row in rows] == ["spikingjelly", "norse", "snntorch"]
    for row in rows:
        assert row["samples"] == 60 and row["prediction_agreement"] == 1.0, row
        assert row["spike_mismatches"] == row["tie_mismatches"] and row["other_mismatches"] == 0
        assert row["accuracy_importer"] == row["accuracy_ours"]
    spikingjelly = rows[0]  # fires on v >= v_threshold, as the study
    assert spikingjelly["spike_mismatches"] == 0 and spikingjelly["layer_spikes"] == "equal"
    model, _ = nir_graph.trained_model(folder / "model.pt")
    frames, _ = snn.KIND.load(small_caches / "nmnist_T4.h5", "test")
    with torch.no_grad():
        assert model(torch.as_tensor(frames).float().transpose(0, 1)).sum() >= 100  # it spikes


@pytest.mark.skipif(bool(IMPORTERS_MISSING), reason="the importers are not installed")
def test_a_wrong_export_is_caught(trained, small_caches):
    """The check fails a graph whose neurons are not the trained ones (tau 3, not 2)."""
    model, s = nir_graph.trained_model(trained[0] / "model.pt")
    strict, _ = nir_graph.trained_model(trained[0] / "model.pt",
                                        v_threshold=nir_check.strict_threshold(1.0))
    other, _ = nir_graph.trained_model(trained[0] / "model.pt")
    for lif in (*other.neurons, other.lif1, other.lif2):
        lif.params = replace(lif.params, tau=3.0)
    wrong = nir_graph.graph_of(other, s.v_threshold, s.v_reset, {})
    frames, labels = snn.KIND.load(small_caches / "nmnist_T4.h5", "test")
    rows = nir_check.compare(model, strict, wrong, frames, labels, log=lambda m: None)
    assert all(row["other_mismatches"] > 0 for row in rows)


def test_an_importer_that_is_not_installed_gets_a_row_saying_so(trained, small_caches,
                                                                monkeypatch):
    monkeypatch.setattr(nir_check, "installed_version", lambda name: None)
    import nir

    model, s = nir_graph.trained_model(trained[0] / "model.pt")
    frames, labels = snn.KIND.load(small_caches / "nmnist_T4.h5", "test")
    rows = nir_check.compare(model, model, nir.read(str(trained[1])), frames[:8], labels[:8],
                             log=lambda m: None)
    assert all(row["note"].startswith("not installed: pip install --no-deps") for row in rows)
    assert all("spike_mismatches" not in row for row in rows)


def test_a_file_that_is_no_models_is_named(tmp_path):
    from snnflow import SnnflowError

    (tmp_path / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(SnnflowError, match="model.pt: not an SNN run's model .* - delete it"):
        nir_graph.trained_model(tmp_path / "model.pt")


def test_spikingjelly_without_triton_says_nothing_that_asks_nothing():
    """A CPU install has no Triton: SpikingJelly's first multi-step LIF made torch log
    "Triton not available" for each of its ops (16 lines in a demo)."""
    script = """
import sys
sys.modules["triton"] = None  # as in an install without Triton
sys.path.insert(0, sys.argv[1])
import torch
from snnflow.deploy.nir_check import quiet_triton_probe
from spikingjelly.activation_based import neuron
if sys.argv[2] == "quiet":
    quiet_triton_probe()
print(neuron.LIFNode(step_mode="m")(torch.rand(4, 2, 3)).shape)
"""
    pytest.importorskip("spikingjelly")
    loud, quiet = (subprocess.run([sys.executable, "-c", script, str(REPO / "workflow"), mode],
                                  capture_output=True, text=True) for mode in ("loud", "quiet"))
    assert "Triton not available" in loud.stderr  # the line is there to be silenced
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


@pytest.fixture(scope="module")
def other_neurons(small_caches, tmp_path_factory):
    """{neuron: run folder} of small PLIF and IF SNNs trained as the LIF one above,
    exported and checked in the importers (the check's rows in check.csv)."""
    folders = {}
    for neuron in ("plif", "if"):
        folder = tmp_path_factory.mktemp(neuron)
        s = RunSettings(model="snn", T=4, seed=1, epochs=6, batch_size=12, lr=0.05, device="cpu",
                        channels=[4, 8, 8], hidden=16, neuron=neuron)
        run(snn.KIND, s, small_caches / "nmnist_T4.h5", outputs_in(folder), folder / "ck.pt",
            code_fingerprint="abc", log=lambda m: None)
        nir_graph.export(folder / "model.pt", folder / "run.json", folder / "model.nir")
        nir_check.verify(folder / "model.nir", folder / "model.pt", folder / "run.json",
                         small_caches / "nmnist_T4.h5", None, folder / "check.csv",
                         log=lambda m: None)
        folders[neuron] = folder
    return folders


@pytest.mark.skipif(bool(IMPORTERS_MISSING), reason="the importers are not installed")
def test_a_plif_run_exports_its_learned_taus_and_every_importer_agrees(other_neurons):
    import nir
    import pandas as pd

    folder = other_neurons["plif"]
    learned = json.loads((folder / "run.json").read_text())["learned_tau"]
    assert set(learned) == {"conv1", "conv2", "conv3", "fc1", "fc2"}
    assert any(abs(tau - 2.0) > 1e-3 for tau in learned.values())  # learned, not kept
    graph = nir.read(str(folder / "model.nir"))
    assert isinstance(graph.nodes["lif2"], nir.LIF) and graph.metadata["neuron"] == "plif"
    assert np.allclose(graph.nodes["lif2"].tau, learned["conv2"] * nir_graph.DT)
    assert np.allclose(graph.nodes["lif_fc2"].tau, learned["fc2"] * nir_graph.DT)
    rows = pd.read_csv(folder / "check.csv")
    assert (rows["spike_mismatches"] == 0).all() and (rows["layer_spikes"] == "equal").all(), rows


@pytest.mark.skipif(bool(IMPORTERS_MISSING), reason="the importers are not installed")
def test_an_if_run_is_nirs_if_and_agrees_where_an_importer_takes_it(other_neurons):
    """NIR's IF (dv/dt = r I, r = 1 / dt) runs spike for spike in SpikingJelly's and Norse's
    importers; snnTorch 1.0's refuses any r but 1 (its row says so: a finding, named in
    docs/nir.md)."""
    import nir
    import pandas as pd

    graph = nir.read(str(other_neurons["if"] / "model.nir"))
    assert isinstance(graph.nodes["lif1"], nir.IF)
    assert np.allclose(graph.nodes["lif1"].r, 1 / nir_graph.DT)
    rows = pd.read_csv(other_neurons["if"] / "check.csv").set_index("importer")
    for importer in ("spikingjelly", "norse"):
        assert rows.loc[importer, "spike_mismatches"] == 0, rows
        assert rows.loc[importer, "layer_spikes"] == "equal", rows
    assert rows.loc["snntorch", "note"] == "failed: AssertionError: r != 1 not supported"
