"""Writing outputs safely: write-to-temporary-then-rename, so a crash never leaves a
half-written output, and a full disk reported as such, naming the file."""

import contextlib
import errno
import glob
import os
import re
import shutil
from pathlib import Path

from snnflow import SnnflowError

_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's tofile, no errno


def disk_full_reason(err):
    """'the disk is full' (or the quota) when `err` says so, else None. HDF5 and torch
    wrap the system's error in their own, so their message is read too, and a short
    write to a file (numpy reports one without the system's error) is a full disk."""
    if isinstance(err, OSError) and err.errno in _FULL:
        return _FULL[err.errno]
    text = str(err)
    if isinstance(err, OSError) and err.errno is None and _SHORT_WRITE.fullmatch(text):
        return _FULL[errno.ENOSPC]
    if "No space left on device" in text or "errno = 28" in text:
        return _FULL[errno.ENOSPC]
    if "Disk quota exceeded" in text or f"errno = {errno.EDQUOT}," in text:
        return _FULL[errno.EDQUOT]
    return None


@contextlib.contextmanager
def reporting_full_disk(path):
    """Turn a full-disk error while writing `path` into a one-line SnnflowError."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        reason = disk_full_reason(err)
        if reason is None:
            raise
        raise full_disk_error(path, reason) from None


def full_disk_error(path, reason):
    """The one-line error for a full disk (`reason`) while writing `path`, or while
    writing some file of the job when the system did not say which (path None)."""
    if path is None:
        return SnnflowError(f"a file of this job: cannot be written, {reason} - free space "
                            "and rerun")
    return SnnflowError(f"{path}: cannot be written, {reason} - free space on "
                        f"{_mount_point(Path(path))} and rerun")


def _mount_point(path):
    path = path.resolve().parent
    while not path.is_mount():
        path = path.parent
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary sibling of `path`; on success it is renamed onto `path`,
    on any exception it is removed. Works for files and directories.

    Temporaries of `path` left by a killed job (its whole process group killed, so
    its cleanup never ran) are removed when a later write of `path` succeeds: one
    job at a time writes a given output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    remove_path(tmp)
    try:
        with reporting_full_disk(path):
            yield tmp
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        remove_path(stale)


def remove_path(p):
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)
