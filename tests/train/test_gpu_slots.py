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


def claim_here(folder, monkeypatch):
    from snnflow.train.gpu_slots import claim_gpu

    monkeypatch.setenv("SNNFLOW_GPU_LOCK_DIR", str(folder))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # recorded, so the claim's is undone
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    claim = claim_gpu(1, "auto", lambda m: None)
    os.close(claim.handle)
    return claim


def test_the_lock_folder_is_made_private_and_an_existing_ones_mode_is_kept(tmp_path,
                                                                            monkeypatch):
    claim_here(tmp_path / "fresh", monkeypatch)
    assert (tmp_path / "fresh").stat().st_mode & 0o7777 == 0o700
    (tmp_path / "mine").mkdir(mode=0o750)
    claim_here(tmp_path / "mine", monkeypatch)
    assert (tmp_path / "mine").stat().st_mode & 0o7777 == 0o750


def test_the_default_lock_folder_is_per_user(monkeypatch):
    from snnflow.train.gpu_slots import lock_folder

    monkeypatch.delenv("SNNFLOW_GPU_LOCK_DIR", raising=False)
    assert lock_folder().name == f"snnflow-gpu-slots-{os.getuid()}"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_another_users_lock_folder_is_refused(tmp_path, monkeypatch):
    from snnflow import SnnflowError

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    with pytest.raises(SnnflowError, match=rf"^{theirs}: belongs to another user \(uid 65534\)"):
        claim_here(theirs, monkeypatch)


def test_a_lock_file_planted_as_a_link_is_refused_not_followed(tmp_path, monkeypatch):
    from snnflow import SnnflowError

    folder, target = tmp_path / "locks", tmp_path / "target"
    folder.mkdir(mode=0o700)
    (folder / "gpu0.lock").symlink_to(target)
    with pytest.raises(SnnflowError, match=r"gpu0.lock: cannot be opened as a lock file"):
        claim_here(folder, monkeypatch)
    assert not target.exists()


def test_an_inherited_list_of_gpus_gives_the_slots_and_each_job_is_narrowed_to_one(tmp_path):
    """Inside `salloc --gpus=2` (or an exported CUDA_VISIBLE_DEVICES=3,5) the jobs share
    the listed GPUs, one each, whatever the config's count; a third job waits."""
    first, second = (holder(tmp_path, slots=8, hold=60, CUDA_VISIBLE_DEVICES="3, 5")
                     for _ in range(2))
    try:
        claims = [parse("".join(wait_for_line(p, "claimed"))) for p in (first, second)]
        assert sorted(c["visible"] for c in claims) == ["3", "5"]
        assert sorted(c["slot"] for c in claims) == ["0", "1"]
        assert any("claimed GPU slot 0 of 2 listed in the inherited CUDA_VISIBLE_DEVICES=3, 5"
                   in line for c in claims for line in c["lines"])
        assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["gpu3.lock",
                                                                          "gpu5.lock"]
        third = holder(tmp_path, slots=8, hold=0, CUDA_VISIBLE_DEVICES="3,5")
        wait_for_line(third, "log all 2 GPU slots listed in the inherited "
                             "CUDA_VISIBLE_DEVICES=3,5 are taken")
        third.kill()
        third.wait()
    finally:
        for process in (first, second):
            process.kill()
            process.wait()
