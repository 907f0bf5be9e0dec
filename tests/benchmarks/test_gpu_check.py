"""make gpu-check: the CUDA path's command, run here at toy sizes on the CPU (the Triton
kernels in Triton's interpreter) so that a short GPU lease is never spent on a broken
script; its rows guarded and written as they come, within a time budget."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402


def run_gpu_check(*args, **env):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=600)


def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_gpu_check("--json", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("gpu-check: no CUDA device on this machine")
    assert not (tmp_path / "out.json").exists()


def test_every_part_runs_at_toy_sizes_on_cpu(tmp_path):
    pytest.importorskip("triton")
    result = run_gpu_check("--device", "cpu", "--smoke", "--json", str(tmp_path / "out.json"),
                           TRITON_INTERPRET="1")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["passed"] is True and report["finished"] and not report["skipped"]
    assert all(row["passed"] for row in report["lif"] + report["block"] + report["training"])
    assert {row["precision"] for row in report["lif"]} == {"float32", "bf16"}
    assert {row["layout"] for row in report["lif"]} == {"contiguous", "channels_last"}
    assert {(row["layout"], row["precision"]) for row in report["block"]} == {
        (layout, precision) for layout in ("contiguous", "channels_last")
        for precision in ("float32", "bfloat16")}
    assert {tuple(row["tile"]) for row in report["block"]} == {(4, 32), (32, 4), (128, 1)}
    first_steps = [row for row in report["training"] if "tries" in row]
    assert len(first_steps) == 2 and all(row["batches_passed"] for row in first_steps)
    assert {row["model"] for row in report["speed"]} == {"snn_T2", "cnn"}
    snn = next(row for row in report["speed"] if row["switches"] == "default"
               and row["model"] == "snn_T2")
    assert snn["ran"] == "cpp" and snn["kernel_check"].startswith("passed")
    assert report["accuracy"][-1]["final_test_acc"] >= 0
    table = (tmp_path / "out.md").read_text()
    assert "## Seconds per epoch at batch 16" in table and "| snn_T2 | default | cpp |" in table
    assert "result: all checks passed" in result.stdout


def settings():
    return {"name": "test", "torch": "x", "device": "cpu", "batch": 16, "n_train": 1,
            "n_test": 1}


def test_a_row_that_raises_becomes_its_reason_and_everything_so_far_is_on_disk(tmp_path):
    """An out-of-memory error late in the run loses nothing: every row is guarded and the
    JSON and the table are written after each."""
    report = gpu_check.Report(tmp_path / "gpu-check.json", settings(), budget_seconds=600)
    report.run_row("lif", "T=4", lambda: {"T": 4, "spikes_equal": True, "spike_mismatches": 0,
                                          "max_grad_diff": 1e-7, "relative_grad_diff": 5e-8,
                                          "passed": True})
    on_disk = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [row["name"] for row in on_disk["lif"]] == ["T=4"] and not on_disk["finished"]

    def out_of_memory():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(GPU 0; ...)")
    report.run_row("speed", "snn_T32 graphs", out_of_memory)
    report.run_row("block", "(4, 32, 32, 34, 34)", out_of_memory)
    assert report.finish() is False
    on_disk = json.loads((tmp_path / "gpu-check.json").read_text())
    speed, block = on_disk["speed"][0], on_disk["block"][0]
    assert speed["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB " \
                             "(GPU 0; ...)" and speed["passed"] is None
    assert block["passed"] is False  # a correctness row that cannot run is no pass
    table = (tmp_path / "gpu-check.md").read_text()
    assert "result: MISMATCH" in table
    assert "| snn_T32 graphs | | error | | | | RuntimeError: CUDA out of memory" in table


def test_past_the_time_budget_rows_are_skipped_and_listed(tmp_path):
    report = gpu_check.Report(tmp_path / "gpu-check.json", settings(), budget_seconds=600)
    report.run_row("training", "30 steps' loss", lambda: {"max_relative_difference": 0.01,
                                                          "passed": True})
    report.budget = 0
    ran = []
    report.run_row("speed", "snn_T16 default", lambda: ran.append(1) or {})
    assert not ran and report.finish() is True  # every correctness row ran and passed
    assert report.data["skipped"] == ["speed: snn_T16 default"]
    report = gpu_check.Report(tmp_path / "gpu-check.json", settings(), budget_seconds=0)
    report.run_row("lif", "T=1 contiguous float32", lambda: ran.append(1) or {})
    assert not ran and report.finish() is None
    table = (tmp_path / "gpu-check.md").read_text()
    assert "incomplete: correctness rows skipped at the time budget" in table
    assert "## Skipped (time budget)\n\n- lif: T=1 contiguous float32" in table


def test_a_budget_from_the_command_line_writes_the_table_with_what_it_has(tmp_path):
    pytest.importorskip("triton")
    result = run_gpu_check("--device", "cpu", "--smoke", "--budget-minutes", "0",
                           "--json", str(tmp_path / "out.json"), TRITON_INTERPRET="1")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["finished"] and report["passed"] is None and report["skipped"]
    assert "result: incomplete: correctness rows skipped" in result.stdout


@pytest.mark.parametrize("wrong", [False, True])
def test_the_training_check_passes_the_engine_and_fails_a_wrong_gradient(tmp_path,
                                                                          monkeypatch, wrong):
    """gpu-check's first-step comparison against float64, both ways: the engine as it is
    passes every batch (spikes that flip on the threshold flip in the float32 reference
    alike), a backward with a surrogate slope 1 % off fails every batch."""
    import torch

    from snnflow.model import neuron

    if wrong:
        right = neuron._backward_loop
        monkeypatch.setattr(neuron, "_backward_loop",
                            lambda g, h, tau, v_th, v_reset, alpha:
                            right(g, h, tau, v_th, v_reset, alpha * 1.01))
    report = gpu_check.Report(tmp_path / "gpu-check.json", settings(), budget_seconds=600)
    gpu_check.check_training(report, torch.device("cpu"), steps=1, attempts=4)
    rows = [row for row in report.data["training"] if "tries" in row]
    assert len(rows) == 2
    for row in rows:
        assert row["passed"] is not wrong, row
        assert row["batches_passed"] == (0 if wrong else 4), row["tries"]
