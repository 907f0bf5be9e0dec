"""Write-to-temporary-then-rename, so a crash never leaves a half-written output."""

import contextlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary sibling of `path`; on success it is renamed onto `path`,
    on any exception it is removed. Works for files and directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(p):
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
