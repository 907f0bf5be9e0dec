"""The HDF5 event store: every N-MNIST recording parsed once (snnflow.data.nmnist).

The store keeps, per split, each event's pixel code `(p * 34 + y) * 34 + x`
in file order plus per-sample offsets: all that binning by event count needs,
so that building frames for a new T never reparses 70,000 files. Parsing runs in
the data-prep C kernels (snnflow.kernels.prep) where they build, else in numpy.
"""

import ctypes
import os
from pathlib import Path

import numpy as np

from snnflow import SnnflowError
from snnflow.atomic import atomic_path
from snnflow.data.caches import open_checked
from snnflow.data.identity import Digest, sha256_of
from snnflow.data.nmnist import (HEIGHT, POLARITIES, RECORD_BYTES, SPLITS, WIDTH, list_recordings,
                                 read_pixel_codes, unreadable)
from snnflow.data.parallel import ordered_map
from snnflow.kernels import prep

STORE_FORMAT = 1


FILES_PER_TASK = 500


def _parse_files(paths):
    """Pixel codes of consecutive recordings, concatenated, and their event counts."""
    lib = prep.library()
    if lib is None:
        codes = [read_pixel_codes(p) for p in paths]
        return np.concatenate(codes), np.fromiter(map(len, codes), np.int64, len(codes))
    capacity = sum(map(_size, paths)) // RECORD_BYTES
    codes, counts = np.empty(capacity, np.uint16), np.empty(len(paths), np.int64)
    c_paths = (ctypes.c_char_p * len(paths))(*map(os.fsencode, paths))
    written = lib.parse_files(c_paths, len(paths), codes.ctypes.data, capacity,
                              counts.ctypes.data)
    if written < 0:
        bad = paths[-written - 1]
        read_pixel_codes(bad)  # raises the error that names the file and what is wrong
        raise SnnflowError(f"{bad}: changed while it was being read - rerun the workflow")
    return codes[:written], counts


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError as err:
        raise unreadable(path, err) from None


def _parse_and_hash(paths):
    """_parse_files, and the digest of the codes, hashed in the worker thread: the store's
    identity costs little time of its own on several cores."""
    codes, counts = _parse_files(paths)
    return codes, counts, sha256_of(codes)


def build_event_store(root, out_path, threads=1, allow_missing_classes=False):
    """Parse every recording under `root` (Train/ and Test/) once into an HDF5 store.

    The codes are stored uncompressed: they are close to random 11-bit values,
    which LZF shrank by a few percent for a second of CPU time per 70,000 files. The
    store's `identity` is a hash of everything it holds (names, labels, offsets, codes).
    """
    import h5py

    root = Path(root)
    splits = {split: list_recordings(root / folder, allow_missing_classes)
              for split, folder in SPLITS.items()}
    digest = Digest(f"event store {STORE_FORMAT}")
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(format=STORE_FORMAT, source=str(root.resolve()),
                        sensor_size=(WIDTH, HEIGHT, POLARITIES))
        for split, entries in splits.items():
            folder = SPLITS[split]
            paths = [os.path.join(root, folder, name) for name, _ in entries]
            tasks = [paths[i:i + FILES_PER_TASK] for i in range(0, len(paths), FILES_PER_TASK)]
            parts = list(ordered_map(_parse_and_hash, tasks, threads))
            offsets = np.concatenate([[0], np.cumsum(np.concatenate([c for _, c, _ in parts]))])
            group = h5.create_group(split)
            group["offsets"] = offsets
            codes = group.create_dataset("codes", shape=(offsets[-1],), dtype=np.uint16)
            labels = np.array([label for _, label in entries], dtype=np.uint8)
            for text in (split, "\n".join(name for name, _ in entries)):
                digest.add(text)
            digest.add(labels)
            digest.add(offsets)
            start = 0
            for part, _, part_digest in parts:  # no concatenated copy of ~600 MB
                codes[start:start + len(part)] = part
                digest.add(part_digest)
                start += len(part)
            group["labels"] = labels
            group["names"] = np.array([name for name, _ in entries], dtype=object)
            group["names"].attrs["relative_to"] = folder
        h5.attrs["identity"] = digest.hexdigest()


def open_event_store(path):
    """Open an event store after checking that it is complete and consistent."""
    datasets = [f"{s}/{d}" for s in SPLITS for d in ("offsets", "codes", "labels", "names")]
    h5 = open_checked(path, datasets, attrs=("format", "identity"),
                      same_length=[[f"{s}/labels", f"{s}/names"] for s in SPLITS])
    for split in SPLITS:
        offsets = h5[f"{split}/offsets"]
        n_samples, n_codes = len(h5[f"{split}/labels"]), len(h5[f"{split}/codes"])
        if len(offsets) != n_samples + 1 or offsets[-1] != n_codes:
            h5.close()
            raise SnnflowError(f"{path}: {split}/offsets disagree with the events stored "
                               "- delete it and rerun the workflow to rebuild it")
    return h5
