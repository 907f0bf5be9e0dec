"""One GPU per training job on a machine with several: each job claims a free slot.

Snakemake's `gpu` resource is only a counter (`--resources gpu=4` lets four training
jobs run at once) and never says which GPU a job may use. So a training job claims a
slot itself, before anything initialises CUDA: an exclusive `flock` on one of N lock
files, taken in order, held for the life of the process and released by the kernel
when it ends however it ends (SIGKILL included); the job then sets
CUDA_VISIBLE_DEVICES to that slot, so its `cuda:0` is its own GPU. When every slot is
taken the job waits for one.

When a scheduler has already set CUDA_VISIBLE_DEVICES to one GPU (SLURM's `--gpus=1`
does), the job uses what it was given and claims nothing. When it lists several
(inside `salloc --gpus=4`, or exported by hand), the job claims one of those, the slots
being the listed GPUs, and narrows CUDA_VISIBLE_DEVICES to it. A slot's lock file is
named by the GPU's entry (gpu2.lock for GPU 2), so jobs given a list and jobs counting
the machine's GPUs share the same locks.

The lock folder is the user's own (snnflow-gpu-slots-<uid> in the temporary folder, or
$SNNFLOW_GPU_LOCK_DIR): it is created without following links, a folder there that is a
link or belongs to another user is refused, an existing folder's mode is never changed,
and lock files are opened without following links. Several users of one machine share
its GPUs through a scheduler, not through these locks.

This module must not import torch: choosing happens before CUDA may be initialised.
"""

import fcntl
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from snnflow import SnnflowError
from snnflow.jobs.own_folder import create_own_folder

POLL_SECONDS = 1.0


@dataclass
class Claim:
    """What a job runs on: the slot it holds (None when it claimed none) and why."""
    slot: int | None
    visible_devices: str | None
    note: str
    handle: int | None = None  # the open, locked lock file; closing it releases the slot


def lock_folder():
    """Where the slot locks live: per machine and user, shared by all of its workflows."""
    configured = os.environ.get("SNNFLOW_GPU_LOCK_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"snnflow-gpu-slots-{os.getuid()}"


def open_lock_folder(folder):
    """A file descriptor of `folder`, created (mode 0700) if absent; a link, something
    other than a folder, or another user's folder is refused with one line."""
    def refuse(what):
        return SnnflowError(f"{folder}: {what}, so GPU slots cannot be claimed there safely "
                            "- remove it, or set SNNFLOW_GPU_LOCK_DIR to a folder of your own")
    try:
        create_own_folder(folder)
    except OSError as err:
        raise refuse(f"cannot be created ({err.strerror})") from None
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        if os.path.islink(folder):
            raise refuse("is a symbolic link") from None
        raise refuse(f"is not a folder this job can open ({err.strerror})") from None
    owner = os.fstat(handle).st_uid
    if owner != os.getuid():
        os.close(handle)
        raise refuse(f"belongs to another user (uid {owner})")
    return handle


def count_gpus():
    """NVIDIA GPUs on this machine, counted without initialising CUDA: their device files
    (/dev/nvidia0, ...), or where a container shows none, the lines of `nvidia-smi -L`."""
    devices = [p for p in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia\d+", p)]
    if devices or shutil.which("nvidia-smi") is None:
        return len(devices)
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if listed.returncode != 0:  # a driver without GPUs: "No devices were found"
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())


def slot_count(configured, machine_gpus=None):
    """The config's `gpus`, or this machine's GPUs (`machine_gpus`, counted when None)
    when it is null."""
    if configured is not None:
        return configured
    return count_gpus() if machine_gpus is None else machine_gpus


def claim_gpu(slots, device, log, poll=POLL_SECONDS):
    """Claim one of `slots` GPU slots for this process (see the module docstring) and set
    CUDA_VISIBLE_DEVICES. `device` is the config's: an explicit `cuda:N` or `cpu`
    claims nothing. An inherited CUDA_VISIBLE_DEVICES that lists several GPUs gives the
    slots instead of `slots`."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    listed = [entry.strip() for entry in (given or "").split(",") if entry.strip()]
    if given is not None and (len(listed) < 2 or device not in ("auto", "cuda")):
        return _noted(Claim(None, given, f"CUDA_VISIBLE_DEVICES={given} was set by the "
                                         "scheduler or the user; claiming no GPU slot"), log)
    if device not in ("auto", "cuda"):
        return _noted(Claim(None, None, f"device {device} set in the config; claiming no GPU "
                                        "slot"), log)
    gpus = listed or [str(slot) for slot in range(slots)]
    origin = f" listed in the inherited CUDA_VISIBLE_DEVICES={given}" if listed else ""
    if not gpus:
        return _noted(Claim(None, None, "no GPU slots (gpus: 0 or no GPU found); claiming "
                                        "none"), log)
    folder = lock_folder()
    folder_handle = open_lock_folder(folder)
    waiting_since = None
    while True:
        for slot, gpu in enumerate(gpus):
            handle = _try_lock(folder_handle, folder, f"gpu{_file_safe(gpu)}.lock")
            if handle is not None:
                os.close(folder_handle)
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                waited = "" if waiting_since is None else \
                    f" after waiting {time.monotonic() - waiting_since:.0f} s"
                return _noted(Claim(slot, gpu, f"claimed GPU slot {slot} of {len(gpus)}{origin}"
                                    f"{waited} (CUDA_VISIBLE_DEVICES={gpu})", handle), log)
        if waiting_since is None:
            waiting_since = time.monotonic()
            log(f"all {len(gpus)} GPU slots{origin} are taken; waiting for one ({folder})")
        time.sleep(poll)


def _file_safe(entry):
    """A CUDA_VISIBLE_DEVICES entry (2, GPU-8f3a..., MIG-...) as part of a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", entry)


def _try_lock(folder_handle, folder, name):
    """An open file descriptor of lock file `name` in the folder open as `folder_handle`,
    holding its exclusive lock, or None if it is taken. A link planted in its place is
    refused, never followed."""
    try:
        handle = os.open(name, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600,
                         dir_fd=folder_handle)
    except OSError as err:
        raise SnnflowError(f"{folder / name}: cannot be opened as a lock file "
                           f"({err.strerror}) - remove it, or set SNNFLOW_GPU_LOCK_DIR to a "
                           "folder of your own") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


def _noted(claim, log):
    log(claim.note)
    return claim
