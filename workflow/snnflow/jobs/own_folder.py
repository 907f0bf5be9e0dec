"""Folders of this user's own (the GPU lock folder, the kernel cache), made without
following a link planted where they belong."""

import os


def create_own_folder(folder):
    """Create `folder` with mode 0700 unless it exists (its parents as usual); a link at
    `folder` is never followed. Raises the OSError of a folder that cannot be created;
    the caller checks what it found."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
