"""make gpu-check: the CUDA path's command, run here at toy sizes on the CPU (the Triton
kernels in Triton's interpreter) so that a short GPU lease is never spent on a broken
script."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


def gpu_check(*args, **env):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=600)


def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = gpu_check("--json", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("gpu-check: no CUDA device on this machine")
    assert not (tmp_path / "out.json").exists()


def test_every_part_runs_at_toy_sizes_on_cpu(tmp_path):
    pytest.importorskip("triton")
    result = gpu_check("--device", "cpu", "--smoke", "--json", str(tmp_path / "out.json"),
                       TRITON_INTERPRET="1")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["passed"] and all(row["passed"] for row in report["lif"] + report["block"])
    assert {row["precision"] for row in report["lif"]} == {"float32", "bf16 autocast"}
    assert {row["layout"] for row in report["lif"]} == {"contiguous", "channels_last"}
    assert set(report["training"]["losses"]) == {"reference", "cuda_engine",
                                                 "cuda_engine_fused_block"}
    assert {row["model"] for row in report["speed"]} == {"snn_T2", "cnn"}
    assert report["accuracy"] and "all checks passed" in result.stdout
