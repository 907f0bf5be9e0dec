"""The GPU path's self-checks through Snakemake, on this machine without a GPU: fake
NVIDIA GPUs (an `nvidia-smi` on PATH) with the CPU build of torch stop the study before
any job unless `device: cpu` says to train on the CPU; a kernel made wrong in a copy of
the workflow is switched off by the jobs' kernel check and shows in the report."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPO, copy_workflow

pytestmark = pytest.mark.workflow

TINY = {"synthetic": {"enabled": True, "train_per_class": 3, "test_per_class": 2, "seed": 0},
        "snn": {"T": [4], "main_T": 4, "epochs": 2, "batch_size": 10, "channels": [4, 8, 8],
                "hidden": 16},
        "cnn": {"epochs": 1, "batch_size": 10, "channels": [4, 8, 8], "hidden": 16},
        "nir": {"enabled": False, "samples": None},  # tests/workflow/test_workflow.py runs them
        "neurobench": {"enabled": False, "samples": None}}

FAKE_NVIDIA_SMI = """#!/bin/sh
echo "GPU 0: NVIDIA H200 (UUID: GPU-8d1a7c52-0000-0000-0000-000000000000)"
"""

# Appended to the copy's snnflow/kernels/cpu_ops.py: its operators with a wrong fused LIF
# (tests/wrong_kernels.py).
WRONG_KERNEL = f"""

import sys as _sys
_sys.path.insert(0, {str(REPO / "tests")!r})
from wrong_kernels import WrongLif as _WrongLif

_right_load = load


def load():
    ops = _right_load()
    return None if ops is None else _WrongLif(ops)
"""


@pytest.fixture
def gpu_machine(tmp_path):
    """A copy of the workflow with a wrong C++ LIF, and a PATH that shows one GPU."""
    copy_workflow(tmp_path)
    with open(tmp_path / "workflow" / "snnflow" / "kernels" / "cpu_ops.py", "a") as f:
        f.write(WRONG_KERNEL)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    import os
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return tmp_path, env


def snakemake(workdir, env, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
                           "tiny.yaml", *args], cwd=workdir, capture_output=True, text=True,
                          env=env)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
def test_a_gpu_machine_with_a_cpu_torch_stops_then_trains_on_the_cpu_on_purpose(gpu_machine):
    workdir, env = gpu_machine
    stopped = snakemake(workdir, env)
    assert stopped.returncode == 1
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: config key device: auto, but this machine has 1 NVIDIA GPU and torch "
        f"{torch.__version__} ({sys.executable}) is a CPU-only build - install a CUDA build "
        f"of torch ({sys.executable.rsplit('/', 1)[0]}/pip uninstall -y torch && "
        f"{sys.executable.rsplit('/', 1)[0]}/pip install torch=="
        f"{torch.__version__.split('+')[0]}; docs/running.md \"Training on a GPU\" for other CUDA "
        "versions) or set device: cpu to train on the CPU on purpose"]
    assert not (workdir / "results" / "logs").exists()  # before any job

    run = snakemake(workdir, env, "--config", "device=cpu")
    assert run.returncode == 0, run.stdout + run.stderr
    log = (workdir / "results" / "logs" / "train_snn_T4_seed0.log").read_text()
    assert "kernel check: C++ CPU ops failed on cpu (LIF spikes differ at " in log
    assert "- falling back to the PyTorch ops for this job" in log
    assert "done: 2 epochs (2 in this job), last test acc " in log
    info = json.loads((workdir / "results" / "runs" / "snn_T4" / "seed0" / "run.json").read_text())
    assert info["backend"] == "torch"
    assert info["kernel_check"]["summary"].startswith("failed: C++ CPU ops (LIF spikes differ")
    cnn_log = (workdir / "results" / "logs" / "train_cnn_seed0.log").read_text()
    assert "kernel check: nothing to check (the CNN runs PyTorch's own ops)" in cnn_log
    page = (workdir / "results" / "report.html").read_text()
    assert "failed: C++ CPU ops (LIF spikes differ" in page
    assert "not measured: the job trained on the CPU" in page
