"""GPU slots: one GPU per training job, claimed with a lock before CUDA is touched."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

HOLDER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from snnflow.train.gpu_slots import claim_gpu
claim = claim_gpu(int(sys.argv[2]), sys.argv[3], lambda m: print("log", m, flush=True), poll=0.02)
print("claimed", claim.slot, os.environ.get("CUDA_VISIBLE_DEVICES"), time.time(), flush=True)
print("torch imported:", "torch" in sys.modules, flush=True)
time.sleep(float(sys.argv[4]))
print("released", time.time(), flush=True)
"""


def holder(tmp_path, slots=2, device="auto", hold=1.0, **env):
    environment = {**os.environ, "SNNFLOW_GPU_LOCK_DIR": str(tmp_path / "locks"), **env}
    if "CUDA_VISIBLE_DEVICES" not in env:
        environment.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(REPO / "workflow"), str(slots),
                             device, str(hold)], stdout=subprocess.PIPE, text=True,
                            env=environment)


def parse(output):
    lines = output.splitlines()
    claimed = next(line.split() for line in lines if line.startswith("claimed"))
    released = [float(line.split()[1]) for line in lines if line.startswith("released")]
    return {"slot": claimed[1], "visible": claimed[2], "start": float(claimed[3]),
            "end": released[0] if released else None, "lines": lines}


def wait_for_line(process, prefix, timeout=20):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no '{prefix}' line: {seen}")


def test_three_jobs_on_two_slots_never_share_one_and_the_third_waits(tmp_path):
    processes = [holder(tmp_path, hold=1.5) for _ in range(3)]
    runs = [parse(p.communicate(timeout=60)[0]) for p in processes]
    for run in runs:
        assert run["slot"] in ("0", "1") and run["visible"] == run["slot"]
        assert "torch imported: False" in run["lines"]  # chosen before torch, so before CUDA
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if a["start"] < b["end"] and b["start"] < a["end"]:  # held at the same time
                assert a["slot"] != b["slot"]
    waited = [r for r in runs if any("all 2 GPU slots are taken; waiting" in line
                                     for line in r["lines"])]
    assert len(waited) == 1
    assert waited[0]["start"] >= min(r["end"] for r in runs if r is not waited[0]) - 0.05


def test_a_killed_jobs_slot_is_free_again(tmp_path):
    first, second = holder(tmp_path, hold=60), holder(tmp_path, hold=60)
    try:
        wait_for_line(first, "claimed")
        wait_for_line(second, "claimed")
        third = holder(tmp_path, hold=0)
        wait_for_line(third, "log all 2 GPU slots are taken")
        os.kill(first.pid, signal.SIGKILL)
        lines = wait_for_line(third, "claimed")
        assert "after waiting" in "".join(lines)
        third.wait(timeout=20)
    finally:
        for process in (first, second):
            process.kill()
            process.wait()


@pytest.mark.parametrize("case", ["scheduler set CUDA_VISIBLE_DEVICES", "device cpu",
                                  "device cuda:1", "no GPU"])
def test_cases_that_claim_no_slot(tmp_path, case):
    env, device, slots = {}, "auto", 2
    if case == "scheduler set CUDA_VISIBLE_DEVICES":
        env["CUDA_VISIBLE_DEVICES"] = "3"
    elif case == "no GPU":
        slots = 0
    else:
        device = case.split()[1]
    run = parse(holder(tmp_path, slots=slots, device=device, hold=0, **env).communicate(
        timeout=30)[0])
    assert run["slot"] == "None"
    assert run["visible"] == ("3" if env else "None")
    assert not (tmp_path / "locks").exists() or not list((tmp_path / "locks").iterdir())
