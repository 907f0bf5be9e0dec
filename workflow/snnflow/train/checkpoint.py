"""Per-epoch training checkpoints: written atomically, read without running code.

A checkpoint lives outside Snakemake's outputs (Snakemake deletes declared outputs
before a job starts) and carries the key of the settings and code that made it; a job
with the same key resumes from it, a job with another key starts fresh. It holds
only tensors and plain data (the random-number states as tensors), so it is loaded
with `weights_only=True`: a crafted file in a shared or copied results/ is refused,
never executed.
"""

import contextlib
import fcntl
import io
import os
import platform
from pathlib import Path

import torch

from snnflow import SnnflowError, first_line
from snnflow.jobs.atomic import atomic_path, reporting_full_disk


@contextlib.contextmanager
def holding_run(checkpoint):
    """Hold the run of `checkpoint` for this process: an exclusive lock on a file beside
    it, released by the system however the process ends. Snakemake's own lock keeps two
    runs of the workflow apart until someone runs --unlock while one still trains; then
    two jobs of one run would write the same checkpoint and CSV files, so the second
    stops with one line naming the first."""
    path = Path(f"{checkpoint}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise SnnflowError(f"{path}: cannot be opened ({err.strerror}) - remove it: it marks "
                           "the run a job is training") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode(errors="replace").strip() or "unknown"
            raise SnnflowError(f"{checkpoint}: another job is training this run ({holder}) - "
                               "let it finish or stop it first (was --unlock run while a "
                               "study still ran?)") from None
        with reporting_full_disk(path):
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"process {os.getpid()} on {platform.node()}".encode(), 0)
        yield
    finally:
        os.close(handle)


def save_state(path, state):
    """torch.save `state` to `path` atomically. Serialised in memory first: torch's own
    file writer reports a full disk as 'iostream error', Python's file names it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_state(path, device, log):
    """The saved state, or None when there is none or it cannot be read (then the run
    starts fresh: a damaged checkpoint must not stop a study)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated, foreign, crafted or from an incompatible version
        log(f"{path} is unreadable ({type(err).__name__}: {first_line(err, 160)}); "
            "starting fresh")
        return None


def rng_states(generator):
    """The random-number states a resumed run needs, as tensors."""
    states = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states, generator):
    torch.set_rng_state(states["torch"])
    generator.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
