"""MNIST's IDX files: their names, where they are (gzipped or raw) and how one is written.
The reader that checks them is snnflow.data.mnist; this part is shared with the synthetic
data, which writes IDX files and must not rerun when the reader changes."""

import gzip
from pathlib import Path

import numpy as np

from snnflow import SnnflowError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = [name for pair in FILES.values() for name in pair]
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
IMAGE_SHAPE = (28, 28)


def idx_file(folder, name):
    """The path of IDX file `name` in `folder`, gzipped (`.gz`) or raw; None when neither
    is there."""
    for candidate in (Path(folder) / f"{name}.gz", Path(folder) / name):
        if candidate.is_file():
            return candidate
    return None


def find_idx_file(folder, name):
    """The path of IDX file `name` in `folder`, gzipped (`.gz`) or raw."""
    path = idx_file(folder, name)
    if path is not None:
        return path
    raise SnnflowError(f"{folder}: {name}.gz (or {name}) not found - put the four MNIST IDX "
                       "files there or set mnist_dir to the folder that holds them")


def write_idx(path, array):
    """Write a uint8 array as a gzipped IDX file (images: 3 dims, labels: 1 dim)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IMAGE_MAGIC if array.ndim == 3 else LABEL_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
