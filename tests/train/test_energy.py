"""The GPU energy columns, plumbed with a fake NVML (no GPU here): what the meter reads,
what metrics.csv and run.json get, what the report shows, and why nothing is measured
on the CPU."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import snnflow.train.loop as training
from snnflow.model import snn
from snnflow.report.study import Study, load_run
from snnflow.report.tables import energy_table
from snnflow.runs import RunSettings, outputs_in
from snnflow.train import energy


class FakeNVML:
    """pynvml's calls the meter makes; the counter advances 250 J per reading."""

    class NVMLError(Exception):
        pass

    def __init__(self, uuids=("GPU-1234",), supported=True):
        self.uuids, self.supported, self.millijoules = uuids, supported, 1_000_000

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid not in self.uuids:
            raise self.NVMLError("Not Found")
        return uuid

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H200"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        self.millijoules += 250_000
        return self.millijoules


def test_the_meter_reads_joules_from_the_gpu_named_by_its_uuid():
    meter, note = energy.meter_for_uuid(FakeNVML(), "GPU-1234")
    assert note == "measured by NVML on NVIDIA H200"
    first = meter.joules()
    assert meter.joules() - first == pytest.approx(250.0)


@pytest.mark.parametrize("nvml, words", [
    (FakeNVML(uuids=()), "cannot read the energy of GPU-1234 (Not Found)"),
    (FakeNVML(supported=False), "cannot read the energy of GPU-1234 (Not Supported)")])
def test_a_gpu_nvml_cannot_read_is_not_measured_saying_why(nvml, words):
    meter, note = energy.meter_for_uuid(nvml, "GPU-1234")
    assert meter is None and note == f"not measured: NVML {words}"


def test_on_the_cpu_nothing_is_measured():
    meter, note = energy.open_meter(torch.device("cpu"))
    assert meter is None and note.startswith("not measured: the job trained on the CPU")


def settings(**overrides):
    values = dict(model="snn", epochs=2, batch_size=16, lr=0.01, seed=3, device="cpu", T=4,
                  channels=[4, 8, 8], hidden=16)
    return RunSettings(**{**values, **overrides})


def train(small_caches, out, monkeypatch=None, fake=None):
    if fake is not None:
        monkeypatch.setattr(energy, "open_meter",
                            lambda device: energy.meter_for_uuid(fake, "GPU-1234"))
    out.mkdir()
    training.run(snn.KIND, settings(), small_caches / "nmnist_T4.h5", outputs_in(out),
                 out / "checkpoint.pt", code_fingerprint="abc", log=lambda m: None)
    return load_run(out)


def test_measured_joules_go_to_metrics_run_json_and_the_report(small_caches, tmp_path,
                                                                monkeypatch):
    run = train(small_caches, tmp_path / "gpu", monkeypatch, FakeNVML())
    # three readings an epoch (start, after training, after evaluation), 250 J apart
    assert list(run.metrics["train_joules"]) == [250.0, 250.0]
    assert list(run.metrics["test_joules"]) == [250.0, 250.0]
    assert json.loads((tmp_path / "gpu" / "run.json").read_text())["energy_measurement"] == \
        "measured by NVML on NVIDIA H200"
    row = energy_table(Study([run], 4, None, {}, {"e_ac_pj": 0.9, "e_mac_pj": 4.6})).iloc[0]
    assert row["measured_train_j_per_epoch"] == pytest.approx(250.0)
    assert row["measured_uj_per_inference"] == pytest.approx(250.0 / run.info["n_test"] * 1e6)
    assert row["measured_on"].startswith("measured by NVML on ")


def test_a_cpu_run_leaves_the_columns_empty_and_the_report_says_why(small_caches, tmp_path):
    run = train(small_caches, tmp_path / "cpu")
    raw = pd.read_csv(tmp_path / "cpu" / "metrics.csv", keep_default_na=False)
    assert set(raw["train_joules"]) == {""} and set(raw["test_joules"]) == {""}
    row = energy_table(Study([run], 4, None, {}, {"e_ac_pj": 0.9, "e_mac_pj": 4.6})).iloc[0]
    assert np.isnan(row["measured_train_j_per_epoch"])
    assert row["measured_on"].startswith("not measured: the job trained on the CPU")
