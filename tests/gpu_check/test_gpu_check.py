"""make gpu-check: the CUDA path's command, run here at toy sizes on the CPU (the Triton
kernels in Triton's interpreter) so that a short GPU lease is never spent on a broken
script; its rows guarded, freed and written into one folder as they come, within a time
budget; its outcome told apart by exit status and last line; its energy row."""

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref

import pytest

from conftest import REPO

from snnflow.gpu_check import command
from snnflow.gpu_check import rows as checks
from snnflow.gpu_check import report as record


def run_gpu_check(*args, **env):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=600)


def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_gpu_check("--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("gpu-check: no CUDA device on this machine")
    assert not (tmp_path / "out").exists()


def test_every_part_runs_at_toy_sizes_on_cpu(tmp_path):
    pytest.importorskip("triton")
    result = run_gpu_check("--device", "cpu", "--smoke", "--out", str(tmp_path / "out"),
                           TRITON_INTERPRET="1")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "gpu-check.json").read_text())
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
    table = (tmp_path / "out" / "gpu-check.md").read_text()
    assert "## Seconds per epoch at batch 16" in table and "| snn_T2 | default | cpp |" in table
    assert report["energy"] == [{"name": "NVML energy counter", "measured": False,
                                 "note": report["energy"][0]["note"], "passed": None}]
    assert report["energy"][0]["note"].startswith("not measured: ")
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("result: all checks passed; energy not measured: ") \
        and last.endswith("(exit 0)")
    log = (tmp_path / "out" / "gpu-check.log").read_text()
    assert log.strip().splitlines()[-1] == last and "## Triton LIF" in log
    environment = json.loads((tmp_path / "out" / "environment.json").read_text())
    import numpy
    import torch
    import triton
    assert (environment["torch"], environment["numpy"], environment["triton"]) == (
        torch.__version__, numpy.__version__, triton.__version__)


def settings():
    return {"name": "test", "torch": "x", "device": "cpu", "batch": 16, "n_train": 1,
            "n_test": 1}


def test_a_row_that_raises_becomes_its_reason_and_everything_so_far_is_on_disk(tmp_path):
    """An out-of-memory error late in the run loses nothing: every row is guarded and the
    JSON and the table are written after each."""
    report = record.Report(tmp_path, settings(), budget_seconds=600)
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
    report = record.Report(tmp_path, settings(), budget_seconds=600)
    report.run_row("training", "30 steps' loss", lambda: {"max_relative_difference": 0.01,
                                                          "passed": True})
    report.budget = 0
    ran = []
    report.run_row("speed", "snn_T16 default", lambda: ran.append(1) or {})
    assert not ran and report.finish() is True  # every correctness row ran and passed
    assert report.data["skipped"] == ["speed: snn_T16 default"]
    report = record.Report(tmp_path, settings(), budget_seconds=0)
    report.run_row("lif", "T=1 contiguous float32", lambda: ran.append(1) or {})
    assert not ran and report.finish() is None
    table = (tmp_path / "gpu-check.md").read_text()
    assert "incomplete: correctness rows skipped at the time budget" in table
    assert "## Skipped (time budget)\n\n- lif: T=1 contiguous float32" in table


def test_a_budget_from_the_command_line_writes_the_table_with_what_it_has(tmp_path):
    pytest.importorskip("triton")
    result = run_gpu_check("--device", "cpu", "--smoke", "--budget-minutes", "0",
                           "--out", str(tmp_path), TRITON_INTERPRET="1")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["finished"] and report["passed"] is None and report["skipped"]
    assert result.stdout.strip().splitlines()[-1].startswith(
        "result: incomplete: correctness rows skipped")


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
                            lambda g, h, tau, v_th, v_reset, alpha, surrogate:
                            right(g, h, tau, v_th, v_reset, alpha * 1.01, surrogate))
    report = record.Report(tmp_path, settings(), budget_seconds=600)
    checks.check_training(report, torch.device("cpu"), steps=1, attempts=4)
    rows = [row for row in report.data["training"] if "tries" in row]
    assert len(rows) == 2
    for row in rows:
        assert row["passed"] is not wrong, row
        assert row["batches_passed"] == (0 if wrong else 4), row["tries"]


def test_a_trainer_with_cuda_graphs_is_freed_without_the_garbage_collector():
    """A Trainer and its GraphedSteps hold no cycle: dropping the last reference frees
    them (and on a GPU the captured graph's memory pool) at once."""
    import torch

    from snnflow.train.steps import Trainer

    model = torch.nn.Linear(2, 2)
    trainer = Trainer(model, model, None, torch.optim.Adam(model.parameters()), 4, None, None,
                      print, cuda_graphs=True)
    alive = weakref.ref(trainer.graphs)
    gc.disable()
    try:
        del trainer
        assert alive() is None
    finally:
        gc.enable()


def test_each_row_frees_what_it_left_before_the_next_starts(tmp_path, monkeypatch):
    """What a row leaves in a reference cycle (as a CUDA graph's pool was) is collected
    before the next row, whose peak is then its own: the peak is reset after the row."""
    class Pool:
        pass

    left = []

    def row_with_a_cycle():
        pool = Pool()
        pool.me = pool
        left.append(weakref.ref(pool))
        return {"passed": None}

    resets = []
    monkeypatch.setattr(record, "free_device_memory",
                        lambda free=record.free_device_memory: (free(), resets.append(1)))
    report = record.Report(tmp_path, settings(), budget_seconds=600)
    gc.disable()
    try:
        report.run_row("accuracy", "demo data", row_with_a_cycle)
        assert left[0]() is None and resets == [1]
    finally:
        gc.enable()


def test_energy_without_nvml_is_not_measured_never_zero(tmp_path, monkeypatch):
    import torch

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml fails
    report = record.Report(tmp_path, settings(), budget_seconds=600)
    checks.check_energy(report, torch.device("cuda"), n_train=4, n_test=4, batch=2)
    assert report.data["energy"] == [{
        "name": "NVML energy counter", "measured": False, "passed": None,
        "note": "not measured: nvidia-ml-py (NVML) is not installed"}]
    assert record.energy_line(report.data) == \
        "energy not measured: nvidia-ml-py (NVML) is not installed"
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| NVML energy counter | not measured: nvidia-ml-py (NVML) is not installed |" \
        in table and " 0.0 J" not in table


@pytest.mark.parametrize("advances", [True, False])
def test_energy_is_read_over_a_fixed_load_and_a_training_epoch(tmp_path, advances):
    """The counter read as the jobs read it, around the work; a counter that does not
    move is "not measured", not 0 J."""
    import torch

    from snnflow.train.energy import EnergyMeter

    class Counter:
        millijoules = 0

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            self.millijoules += 1500 if advances else 0
            return self.millijoules

    meter = EnergyMeter(Counter(), None, "stand-in GPU")
    report = record.Report(tmp_path, settings(), budget_seconds=600)
    checks.check_energy(report, torch.device("cpu"), n_train=8, n_test=4, batch=4,
                           load_seconds=0.05, T=2,
                           open_meter=lambda device: (meter, "measured by NVML on stand-in"))
    rows = report.data["energy"]
    assert [row["name"] for row in rows] == ["fixed load (0.05 s)", "SNN-2 training epoch"]
    for row in rows:
        assert "error" not in row, row
        assert row["measured"] is advances
        if advances:
            assert row["joules"] == 1.5 and row["watts"] > 0
        else:
            assert row["note"].startswith("not measured: the counter of stand-in GPU did not")
    assert record.energy_line(report.data).startswith(
        "energy measured" if advances else "energy not measured")


def wait_for_rows(folder, count, process, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        try:
            data = json.loads((folder / "gpu-check.json").read_text())
        except (OSError, ValueError):
            data = None
        if data and sum(len(data[s]) for s in record.SECTIONS) >= count:
            return data
        time.sleep(0.1)
    raise AssertionError("gpu-check wrote no rows in time")


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_a_check_stopped_in_the_middle_leaves_every_row_done_so_far(tmp_path, stop):
    """Killed (nothing can be written after) or stopped by a timeout's SIGTERM (the
    tables are written, the outcome says so, exit 1): the folder holds the rows done."""
    pytest.importorskip("triton")
    out = tmp_path / "kept"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
         "--smoke", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "TRITON_INTERPRET": "1"})
    wait_for_rows(out, 3, process)
    process.send_signal(stop)
    output = process.communicate(timeout=120)[0]
    data = json.loads((out / "gpu-check.json").read_text())
    done = [row["name"] for row in data["lif"]]
    assert len(done) >= 3 and not data["finished"]
    assert f"| {done[0]} | spikes equal" in (out / "gpu-check.md").read_text()
    assert f"lif      {done[0]}" in (out / "gpu-check.log").read_text()
    assert json.loads((out / "environment.json").read_text())["device"] == "cpu"
    if stop == signal.SIGTERM:
        assert process.returncode == 1
        assert data["stopped_by"] == "SIGTERM"
        assert output.strip().splitlines()[-1].startswith(
            "result: incomplete: stopped by SIGTERM; ")
    else:
        assert process.returncode == -signal.SIGKILL


def test_make_gpu_check_without_cuda_ends_with_its_line_and_make_says_error_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run(["make", "-s", "gpu-check", f"PYTHON={sys.executable}",
                             f"GPU_CHECK_OUT={tmp_path / 'out'}"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("gpu-check: no CUDA device on this machine")
    assert lines[-1].endswith("gpu-check] Error 2")  # the script's own status, in make's line


@pytest.mark.parametrize("args, line", [
    (["--device", "foo"], "gpu-check: --device 'foo' is not a device torch knows"),
    (["--device", "cpu"], "gpu-check: --device cpu only with --smoke"),
    (["--device", "cpu", "--smoke", "--out", "{file}"], "gpu-check: --out {file}: a file"),
])
def test_what_cannot_run_here_is_one_line_and_exit_2(tmp_path, args, line):
    file = tmp_path / "a-file"
    file.write_text("")
    result = run_gpu_check(*[a.format(file=file) for a in args], TRITON_INTERPRET="1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0 and not result.stdout
    assert result.stderr.startswith(line.format(file=file))


def test_an_interpreter_that_cannot_run_the_kernels_is_said_in_one_line(monkeypatch, capsys):
    """Triton 3.6's interpreter with numpy 2.4 or later cannot loop over a run-time count
    (checked by hand with those versions); the smoke run says so instead of reporting a
    MISMATCH in every row. The probe itself runs the interpreter here."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert command.interpreter_problem() is None  # the tested Triton runs the probe
    monkeypatch.setattr(command, "interpreter_problem",
                        lambda: "Triton 3.6.0's interpreter cannot run the LIF kernels with "
                                "numpy 2.5.2 (...)")
    assert command.main(["--device", "cpu", "--smoke", "--out", "unused"]) == 2
    assert capsys.readouterr().err == ("gpu-check: Triton 3.6.0's interpreter cannot run the "
                                       "LIF kernels with numpy 2.5.2 (...)\n")
