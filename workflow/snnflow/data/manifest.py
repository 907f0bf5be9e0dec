"""What a user's dataset folder holds, as a small file whose modification time moves only
when the folder's contents change: the tracked input that makes Snakemake rebuild a
cache after a recording is added, removed or replaced.

Snakemake judges a folder input by the folder's own mtime, which does not move when a
file inside a label folder changes, and a file input by its mtime, which `cp -p` and
`rsync -a` keep old. So the Snakefile lists the files (name, size, mtime and ctime: a
file's ctime is set by the system on every write and rename and cannot be carried over
by a copy) when it is parsed, and rewrites the manifest only when that list differs.
Listing 70,000 recordings takes one stat per file, no read (docs/data.md gives the time);
the jobs then hash what they read (the caches' `identity`).
"""

import os
from pathlib import Path

from snnflow import SnnflowError
from snnflow.jobs.atomic import atomic_path
from snnflow.data.nmnist import SPLITS, is_recording

def _line(relative, stat):
    return f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}\t{stat.st_ctime_ns}"


def nmnist_listing(root):
    """One line per `.bin` file under `root`/Train/*/ and `root`/Test/*/ (every subfolder:
    a wrong one must rerun the event store too, which then names it), and one per
    subfolder, sorted."""
    lines = []
    for folder in SPLITS.values():
        split = Path(root) / folder
        if not split.is_dir():
            continue
        for name in sorted(e.name for e in _entries(split) if e.is_dir()):
            lines.append(f"{folder}/{name}/")
            for entry in _entries(split / name):
                if is_recording(entry):
                    lines.append(_line(f"{folder}/{name}/{entry.name}", entry.stat()))
    return sorted(lines)


def _entries(folder):
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as err:
        raise SnnflowError(f"{folder}: cannot be listed ({err.strerror}) - make it readable "
                           "(config key nmnist_dir)") from None


def tree_listing(root, extension):
    """One line per `extension` file under `root` (a tonic dataset's copy), sorted."""
    from snnflow.data.tonic_datasets import files_under

    return sorted(_line(os.path.normpath(os.path.join(folder, name)),
                        os.stat(os.path.join(root, folder, name)))
                  for folder, name in files_under(root, extension))


def file_listing(paths):
    """One line per file of `paths` (the MNIST IDX files)."""
    return [_line(Path(p).name, os.stat(p)) for p in sorted(map(str, paths))]


def update(path, lines):
    """Write `lines` to the manifest `path` unless it already holds exactly them, so that
    its mtime moves only when the listing changes; returns `path`."""
    text = "".join(line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                   + "\n" for line in lines)
    path = Path(path)
    try:
        if path.read_text() == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except OSError as err:
        raise SnnflowError(f"{path}: cannot be written ({err.strerror}) - make results/ "
                           "writable: the workflow lists the dataset folder there") from None
    return path
