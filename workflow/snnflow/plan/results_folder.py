"""The study's results folder (config key results_dir), checked before any job.

Every job writes under the results folder, and `make stale REMOVE=1` removes from it,
so the folder must be the study's own: not the file system's root, a home folder, the
project or the workflow's clone (or a folder holding one of them), not a dataset's
folder (or one holding it or inside it), not an existing file. Refused by its key
before anything walks it.

Inside it, Snakemake writes some files itself (benchmarks, logs), following a symbolic
link found at their path, and a job opening a FIFO or a device where it expects its
checkpoint, log or manifest waits forever. A link or special file planted inside the
folder (by a copied or shared results folder, or another user where it is shared)
would make a job write or read outside the project, or hang. The pipeline makes only
files and folders there, so anything else is refused: the folder itself may be a link
(results on a scratch disk), nothing inside it.
"""

import os
import stat
from pathlib import Path

from snnflow import SnnflowError


_CLAIMED = set()  # the results folders of the studies this Snakemake process plans


def claim_results_dir(results):
    """The workflow used as two modules (or more) of one outer Snakefile is parsed once
    each in one process: two of them with the same results folder (one `prefix:` for
    both) would make every file twice, which Snakemake reports as its own exception."""
    folder = os.path.normpath(os.path.abspath(results))
    if folder in _CLAIMED:
        raise SnnflowError(f"config key results_dir: {results} is the results folder of two "
                           "studies (modules of one Snakefile with the same prefix: and "
                           "results_dir) - give each module its own prefix:")
    _CLAIMED.add(folder)


def protected_folders(workflow_root):
    """{what: folder} no results folder may be or hold: the file system's root, the home
    folder, the project Snakemake runs in and the workflow's own folder."""
    return {"the file system's root": Path(os.sep), "your home folder": Path.home(),
            "the project (the folder Snakemake runs in)": Path.cwd(),
            "the workflow's own folder": Path(workflow_root)}


def check_results_dir(results, protected, data_folders):
    """SnnflowError naming config key results_dir if `results` is or holds one of the
    `protected` folders ({what: folder}: the project, the workflow, the home folder), or
    is, holds or lies inside one of `data_folders` ({config key: folder}), or is a file."""
    given = results
    results = Path(os.path.realpath(results))
    if os.path.lexists(given) and not results.is_dir():
        raise SnnflowError(f"config key results_dir: {given} is a file, not a folder - choose a "
                           "folder for the study's results (the default: results)")
    for what, folder in protected.items():
        folder = Path(os.path.realpath(folder))
        if results == folder or results in folder.parents:
            raise SnnflowError(f"config key results_dir: {given} is {what} or holds it, and "
                               "the study writes and cleans up there - choose a folder of "
                               "its own (the default: results)")
    for key, folder in data_folders.items():
        if folder is None:
            continue
        folder = Path(os.path.realpath(folder))
        if results == folder or results in folder.parents or folder in results.parents:
            raise SnnflowError(f"config key results_dir: {given} is, holds or lies inside the "
                               f"dataset folder of {key} ({folder}) - keep the results apart "
                               "from the data (the default: results)")


def refuse_links_inside(root):
    """SnnflowError naming the first symbolic link or special file (FIFO, socket,
    device) inside `root` (none followed)."""
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
            elif not entry.is_file(follow_symlinks=False):
                kind = special_kind(entry.stat(follow_symlinks=False).st_mode)
                raise SnnflowError(
                    f"{entry.path}: {kind} inside the results folder, where a job reading "
                    "or writing it would wait forever - remove it: the pipeline makes only "
                    "files and folders there")


def special_kind(mode):
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "neither a file nor a folder"
