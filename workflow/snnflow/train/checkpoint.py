"""Per-epoch training checkpoints: written atomically, read without running code.

A checkpoint lives outside Snakemake's outputs (Snakemake deletes declared outputs
before a job starts) and carries the key of the settings and code that made it; a job
with the same key resumes from it, a job with another key starts fresh. It holds
only tensors and plain data (the random-number states as tensors), so it is loaded
with `weights_only=True`: a crafted file in a shared or copied results/ is refused,
never executed.
"""

import io

import torch

from snnflow import first_line
from snnflow.atomic import atomic_path


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
