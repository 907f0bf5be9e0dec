"""Links inside a study's results folder, refused before any job.

Every job writes under the results folder (config key results_dir), and Snakemake
writes some of its files itself (benchmarks, logs), following a symbolic link found at
their path. A link planted anywhere inside the folder (by a copied or shared results
folder, or another user where the folder is shared) would make a job write, or read,
outside the project. The pipeline makes no links there, so any link is refused: the
folder itself may be one (results on a scratch disk), nothing inside it.
"""

import os
from pathlib import Path

from snnflow import SnnflowError


def refuse_links_inside(root):
    """SnnflowError naming the first symbolic link inside `root` (none followed)."""
    todo = [Path(root)]
    while todo:
        folder = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            raise SnnflowError(f"{folder}: cannot be listed ({err.strerror}) - make it "
                               "readable: the study writes there") from None
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink():
                raise SnnflowError(
                    f"{entry.path}: a symbolic link inside the results folder, where jobs "
                    f"write through it (to {os.readlink(entry.path)}) - remove it: the "
                    "pipeline makes no links there")
            if entry.is_dir(follow_symlinks=False):
                todo.append(Path(entry.path))
