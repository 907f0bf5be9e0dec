"""The MNIST reader (IDX files checked by name, snnflow.data.idx) and the MNIST image
cache for the CNN."""

import gzip
import json
from pathlib import Path

import numpy as np

from snnflow import SnnflowError
from snnflow.jobs.atomic import atomic_path
from snnflow.data.caches import load_split
from snnflow.data.identity import derived, md5sum
from snnflow.data.nmnist import LABELS as DIGITS
from snnflow.data.idx import (ALL_FILES, FILES, IMAGE_MAGIC, IMAGE_SHAPE, LABEL_MAGIC,
                              find_idx_file)


def read_idx(path, magic):
    """The array stored in one IDX file with the given magic number, size-checked."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise SnnflowError(f"{path}: cannot read ({err}) - replace it with a good copy") from None
    if len(data) < 4 or int.from_bytes(data[:4], "big") != magic:
        found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
        raise SnnflowError(f"{path}: magic number {found}, expected {magic} - not an MNIST "
                           f"{'image' if magic == IMAGE_MAGIC else 'label'} file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    header = 4 + 4 * ndim
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise SnnflowError(f"{path}: {len(data)} bytes but the header promises {expected} "
                           f"(shape {dims}) - the file is truncated; replace it")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_split(folder, split, allow_missing_classes=False):
    """(images (N, 28, 28), labels (N,)) of one MNIST split from `folder`."""
    images_name, labels_name = FILES[split]
    images_path = find_idx_file(folder, images_name)
    labels_path = find_idx_file(folder, labels_name)
    images = read_idx(images_path, IMAGE_MAGIC)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if images.ndim != 3 or labels.ndim != 1:
        raise SnnflowError(f"{images_path}: expected images (N, rows, cols) and labels (N,)")
    if images.shape[1:] != IMAGE_SHAPE:
        raise SnnflowError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} "
                           f"pixels; MNIST's are {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} - replace "
                           "it with the MNIST file")
    if len(images) == 0:
        raise SnnflowError(f"{images_path}: holds no images - replace it with the MNIST file")
    if len(images) != len(labels):
        raise SnnflowError(f"{images_path}: {len(images)} images but {labels_path.name} holds "
                           f"{len(labels)} labels - the pair does not belong together")
    if labels.max() > 9:
        raise SnnflowError(f"{labels_path}: label {labels.max()} outside 0-9 - replace it "
                           "with the MNIST file")
    missing = sorted(set(range(10)) - set(labels.tolist()))
    if missing and not allow_missing_classes:
        raise SnnflowError(f"{labels_path}: no images of class {', '.join(map(str, missing))} "
                           "- a split must hold all ten digits; use the complete file, or set "
                           "allow_missing_classes: true to study a subset")
    return images, labels


def build_image_cache(folder, out_path, allow_missing_classes=False, code=""):
    """Write `out_path` with train/test images (N, 1, 28, 28) uint8 and labels; it records
    the md5 of each IDX file read, and its `identity` is derived from them and `code`
    (the job's code fingerprint)."""
    import h5py

    splits = {split: read_split(folder, split, allow_missing_classes) for split in FILES}
    md5s = {name: md5sum(find_idx_file(folder, name)) for name in ALL_FILES}
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(source=str(Path(folder).resolve()), classes=json.dumps(DIGITS),
                        sources_md5=json.dumps(md5s, sort_keys=True),
                        identity=derived(json.dumps(md5s, sort_keys=True), code))
        for split, (images, labels) in splits.items():
            h5.create_dataset(f"{split}/images", data=images[:, None],
                              chunks=True, compression="lzf")
            h5[f"{split}/labels"] = labels


def load_images(path, split):
    """(images, labels) of one split of the MNIST cache, checked."""
    return load_split(path, split, "images", (1, *IMAGE_SHAPE))
