"""Each training job checks its compiled paths on its own device before the first epoch
(snnflow.train.kernel_check): it passes on the kernels as they are, and a kernel made
wrong is switched off (kernels: auto) or stops the job (require), in the log, run.json
and the report's run table."""

import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch

import snnflow.train.loop as training
import snnflow.train.steps as steps
from conftest import REPO
from snnflow import SnnflowError
from snnflow.data.caches import load_frames
from snnflow.kernels import cpu_ops
from snnflow.model import cnn, snn
from snnflow.runs import RunSettings, outputs_in
from snnflow.train import kernel_check
from snnflow.train.dataset import ResidentDataset
from wrong_kernels import WrongLif


def settings(**overrides):
    values = dict(model="snn", epochs=1, batch_size=16, lr=0.01, seed=3, device="cpu", T=4)
    values.update(overrides)
    return RunSettings(**values)


@pytest.fixture
def train_split(small_caches):
    inputs, labels = load_frames(small_caches / "nmnist_T4.h5", "train")
    return ResidentDataset(inputs, labels, torch.device("cpu"), time_major=True)


@pytest.fixture
def wrong_lif(monkeypatch):
    ops = cpu_ops.load()
    assert ops is not None
    monkeypatch.setattr(cpu_ops, "load", lambda: WrongLif(ops))


def test_the_kernels_as_they_are_pass_at_the_study_widths(train_split):
    logs = []
    outcome = kernel_check.verify(snn.KIND, settings(), "cpp", train_split, None, logs.append)
    assert outcome.backend == "cpp" and not outcome.fell_back
    assert [c.path for c in outcome.checks] == ["C++ CPU ops"]
    detail = outcome.checks[0].detail
    assert "LIF spikes equal" in detail and "block spikes" in detail and "sparse conv" in detail
    assert logs[-1].startswith("kernel check: passed, max grad diff ")
    assert outcome.checks[0].grad_diff < 1e-4


def test_nothing_to_check_says_why(small_caches, train_split):
    logs = []
    outcome = kernel_check.verify(snn.KIND, settings(kernels="off"), "torch", train_split, None,
                                  logs.append)
    assert outcome.summary() == "nothing to check (the PyTorch ops run on cpu (kernels: off))"
    from snnflow.data.mnist import load_images
    images, labels = load_images(small_caches / "mnist.h5", "train")
    data = ResidentDataset(images, labels, torch.device("cpu"), time_major=False, scale=1 / 255)
    outcome = kernel_check.verify(cnn.KIND, settings(model="cnn", T=None), "torch", data, None,
                                  logs.append)
    assert "the CNN runs PyTorch's own ops" in outcome.summary()


def test_a_wrong_kernel_is_switched_off_for_the_job_and_reported(small_caches, tmp_path,
                                                                   wrong_lif):
    logs = []
    out = tmp_path / "run"
    out.mkdir()
    training.run(snn.KIND, settings(epochs=1), small_caches / "nmnist_T4.h5", outputs_in(out),
                 out / "checkpoint.pt", code_fingerprint="abc", log=logs.append)
    line = next(m for m in logs if "failed on cpu" in m)
    assert line.startswith("kernel check: C++ CPU ops failed on cpu (LIF spikes differ at ")
    assert line.endswith("- falling back to the PyTorch ops for this job")
    info = json.loads((out / "run.json").read_text())
    assert info["backend"] == "torch"
    summary = info["kernel_check"]["summary"]
    assert summary.startswith("failed: C++ CPU ops (LIF spikes differ")
    assert summary.endswith("fell back to C++ CPU ops -> the PyTorch ops")
    from snnflow.report.study import load_run
    from snnflow.report.tables import runs_table
    from snnflow.report.study import Study
    table = runs_table(Study([load_run(out)], 4, None, {}, {}))
    assert table["kernel_check"].iloc[0] == summary


def test_with_require_a_wrong_kernel_stops_the_job_naming_the_path(train_split, wrong_lif):
    with pytest.raises(SnnflowError, match=r"^config key performance.kernels: require, but the "
                                           r"kernel check: C\+\+ CPU ops failed on cpu \(LIF "
                                           r"spikes differ at \d+ of \d+"):
        kernel_check.verify(snn.KIND, settings(kernels="require"), "cpp", train_split, None,
                            print)


def test_a_kernel_that_raises_is_a_failed_check(train_split, monkeypatch):
    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("no kernel image is available for execution on the device")
    monkeypatch.setattr(cpu_ops, "load", lambda: Broken())
    outcome = kernel_check.verify(snn.KIND, settings(), "cpp", train_split, None, print)
    assert outcome.backend == "torch"
    assert "raised RuntimeError: no kernel image is available" in outcome.summary()


class Replay:
    """A "CUDA graph" on CPU: replays the captured step function itself."""

    def __init__(self, step):
        self.step = step

    def replay(self):
        self.step()


@pytest.mark.parametrize("broken", [False, True])
def test_the_graph_check_compares_replayed_with_eager_steps(train_split, monkeypatch, broken):
    """The CUDA-graph check's plumbing on CPU (the capture itself needs a GPU): steps
    replayed from a stand-in graph against eager ones; a replay that reads the wrong
    inputs fails."""
    monkeypatch.setattr(steps, "capture_cuda_graph", Replay)
    monkeypatch.setattr(steps, "run_on_side_stream", lambda step: step())
    original = steps.GraphedSteps.step

    def replayed(self, trainer, x, y, batch, sums):
        if self.graph is not None:  # a real graph's backward writes fresh gradients
            trainer.optimizer.zero_grad(set_to_none=True)
            if broken:  # the replay reads other inputs than the batch it was given
                x = x.flip(0)
        original(self, trainer, x, y, batch, sums)
    monkeypatch.setattr(steps.GraphedSteps, "step", replayed)
    x, y = next(train_split.batches(8))
    check = kernel_check.check_graph_steps(snn.KIND, settings(), "cpp", x, y,
                                           contextlib.nullcontext)
    assert check.passed != broken, check.detail
    assert check.detail.startswith("loss of replayed steps diff ")


def test_the_triton_checks_pass_in_the_interpreter():
    """The Triton LIF and the fused CUDA block through the jobs' comparisons, in Triton's
    interpreter on CPU, and a wrong Triton LIF fails."""
    pytest.importorskip("triton")
    script = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from snnflow.kernels import block_triton, lif_triton
from snnflow.model.neuron import LIFParams
from snnflow.model import kernel_paths as kc
g = torch.Generator().manual_seed(0)
p = LIFParams()
z = (torch.randn(6, 2, 4, 9, 9, generator=g) * 1.5 + 0.5)
ok = kc._lif_check("Triton LIF", lif_triton.load(), z, p, g)
y = torch.randn(12, 4, 9, 9, generator=g).contiguous(memory_format=torch.channels_last)
block = kc._block_check("fused CUDA block", block_triton.load(), y.unflatten(0, (6, 2)),
                        torch.nn.BatchNorm2d(4), p, g)
class Wrong:
    def __getattr__(self, name):
        return getattr(lif_triton.load(), name)
    def lif_forward(self, x, *a):
        s, h = lif_triton.load().lif_forward(x, *a)
        return s.roll(1, dims=-1), h
wrong = kc._lif_check("Triton LIF", Wrong(), z, p, g)
print(ok.passed, block.passed, wrong.passed, wrong.detail)
"""
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "workflow")],
                            capture_output=True, text=True,
                            env={**os.environ, "TRITON_INTERPRET": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("True True False LIF spikes differ at "), result.stdout


def lif_inputs(train_split):
    """The LIF inputs the checks see: the job's (its first layer on its own samples, T=4)
    and gpu-check's (random membranes at T=16 and 32)."""
    probe = kernel_check_probe(train_split)
    g = torch.Generator().manual_seed(5)
    randoms = [torch.randn(T, 8, 16, 9, 9, generator=g) * 1.5 + 0.5 for T in (16, 32)]
    return [probe.z1, *randoms]


def kernel_check_probe(train_split):
    from snnflow.model.kernel_paths import _Probe

    x, _ = next(train_split.batches(4))
    return _Probe(snn.KIND, settings(), x)


def test_a_lif_that_rounds_as_a_gpu_passes_and_wrong_ones_fail(train_split):
    """The LIF check's tolerance holds for correct compiled kernels (a GPU's sigmoid within
    2 ulp, contracted multiply-adds) and still catches wrong spikes, a surrogate slope 1 %
    off and a detached reset."""
    from snnflow.model.kernel_paths import _lif_check
    from snnflow.model.neuron import LIFParams
    from wrong_kernels import GpuRoundingLif, NoResetPathLif, WrongSlopeLif

    ops = cpu_ops.load()
    p = LIFParams()
    for z in lif_inputs(train_split):
        g = torch.Generator().manual_seed(0)
        gpu_like = _lif_check("Triton LIF", GpuRoundingLif(ops), z, p, g)
        assert gpu_like.passed and 0 < gpu_like.grad_diff < 1e-5, gpu_like.detail
        for wrong in (WrongLif(ops), WrongSlopeLif(ops), NoResetPathLif(ops)):
            check = _lif_check("Triton LIF", wrong, z, p, torch.Generator().manual_seed(0))
            assert not check.passed, (type(wrong).__name__, check.detail)
