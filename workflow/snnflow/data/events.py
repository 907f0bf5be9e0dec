"""The HDF5 event store: every recording of the dataset parsed once.

The store keeps, per split, each event's pixel code `(p * H + y) * W + x` (N-MNIST:
`(p * 34 + y) * 34 + x`) in file order plus per-sample offsets: all that binning by
event count needs, so that building frames for a new T never reparses 70,000 files. Its
attributes name the sensor (W, H, P) and the classes (JSON, in label order).
N-MNIST's own reader (snnflow.data.nmnist) parses in the data-prep C kernels
(snnflow.kernels.prep) where they build, else in numpy; the other datasets are read by
tonic (snnflow.data.tonic_datasets).
"""

import ctypes
import json
import os
from pathlib import Path

import numpy as np

from snnflow import SnnflowError
from snnflow.jobs.atomic import atomic_path
from snnflow.data.caches import class_names, open_checked
from snnflow.data.identity import Digest, sha256_of
from snnflow.data.nmnist import (HEIGHT, LABELS, POLARITIES, RECORD_BYTES, SPLITS, WIDTH,
                                 list_recordings, read_pixel_codes, unreadable)
from snnflow.data.parallel import ordered_map
from snnflow.kernels import prep

STORE_FORMAT = 1
# Timestamps rise slowly within a recording: byte-shuffled and deflated they take about
# a third of their 4 bytes (docs/data.md).
TIMES_STORAGE = {"shuffle": True, "compression": "gzip", "compression_opts": 1,
                 "chunks": (1 << 16,), "maxshape": (None,)}


FILES_PER_TASK = 500


def _parse_files(paths, with_times=False):
    """Pixel codes of consecutive recordings, concatenated, their event counts, and (with
    `with_times`, else None) each event's timestamp in microseconds."""
    lib = prep.library()
    if lib is None:
        read = [read_pixel_codes(p, with_times) for p in paths]
        codes = [r[0] for r in read] if with_times else read
        times = np.concatenate([r[1] for r in read]) if with_times else None
        return np.concatenate(codes), np.fromiter(map(len, codes), np.int64, len(codes)), times
    capacity = sum(map(_size, paths)) // RECORD_BYTES
    codes, counts = np.empty(capacity, np.uint16), np.empty(len(paths), np.int64)
    times = np.empty(capacity, np.uint32) if with_times else None
    c_paths = (ctypes.c_char_p * len(paths))(*map(os.fsencode, paths))
    written = lib.parse_files(c_paths, len(paths), codes.ctypes.data, capacity,
                              counts.ctypes.data, None if times is None else times.ctypes.data)
    if written < 0:
        bad = paths[-written - 1]
        read_pixel_codes(bad, with_times)  # raises the error naming the file and the fault
        raise SnnflowError(f"{bad}: changed while it was being read - rerun the workflow")
    return codes[:written], counts, None if times is None else times[:written]


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError as err:
        raise unreadable(path, err) from None


def _parse_and_hash(paths, with_times):
    """_parse_files, and the digests of the codes and times, hashed in the worker thread:
    the store's identity costs little time of its own on several cores."""
    codes, counts, times = _parse_files(paths, with_times)
    return codes, counts, times, sha256_of(codes) + (b"" if times is None else sha256_of(times))


def build_event_store(root, out_path, threads=1, allow_missing_classes=False, with_times=False):
    """Parse every recording under `root` (Train/ and Test/) once into an HDF5 store;
    `with_times`: each event's timestamp too (`{split}/times`, what framing by time
    needs; the store of a study framed by event count goes without).

    The codes are stored uncompressed: they are close to random 11-bit values,
    which LZF shrank by a few percent for a second of CPU time per 70,000 files. The
    store's `identity` is a hash of everything it holds (names, labels, offsets, codes,
    times).
    """
    import h5py

    root = Path(root)
    splits = {split: list_recordings(root / folder, allow_missing_classes)
              for split, folder in SPLITS.items()}
    digest = Digest(f"event store {STORE_FORMAT}")
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(format=STORE_FORMAT, source=str(root.resolve()), dataset="nmnist",
                        sensor_size=(WIDTH, HEIGHT, POLARITIES), classes=json.dumps(LABELS))
        for split, entries in splits.items():
            folder = SPLITS[split]
            paths = [os.path.join(root, folder, name) for name, _ in entries]
            tasks = [paths[i:i + FILES_PER_TASK] for i in range(0, len(paths), FILES_PER_TASK)]
            parts = list(ordered_map(lambda task: _parse_and_hash(task, with_times), tasks,
                                     threads))
            offsets = np.concatenate([[0], np.cumsum(np.concatenate([p[1] for p in parts]))])
            group = h5.create_group(split)
            group["offsets"] = offsets
            codes = group.create_dataset("codes", shape=(offsets[-1],), dtype=np.uint16)
            times = (group.create_dataset("times", shape=(offsets[-1],), dtype=np.uint32,
                                          **TIMES_STORAGE) if with_times else None)
            labels = np.array([label for _, label in entries], dtype=np.uint8)
            if split == "train":
                refuse_a_single_class(root / folder, labels, LABELS)
            for text in (split, "\n".join(name for name, _ in entries)):
                digest.add(text)
            digest.add(labels)
            digest.add(offsets)
            start = 0
            for part, _, part_times, part_digest in parts:  # no concatenated copy of ~600 MB
                codes[start:start + len(part)] = part
                if times is not None:
                    times[start:start + len(part)] = part_times
                digest.add(part_digest)
                start += len(part)
            group["labels"] = labels
            group["names"] = np.array([name for name, _ in entries], dtype=object)
            group["names"].attrs["relative_to"] = folder
        h5.attrs["identity"] = digest.hexdigest()


def refuse_a_single_class(folder, labels, classes):
    """A training split of one class makes a study without meaning: every prediction is
    that class, 100 % on a test split of it."""
    present = sorted({int(label) for label in labels})
    if len(present) == 1:
        raise SnnflowError(f"{folder}: every training sample is of class "
                           f"{classes[present[0]]}; a classifier needs at least two classes - "
                           "add the other classes' samples to the copy")


def open_event_store(path):
    """Open an event store after checking that it is complete and consistent."""
    datasets = [f"{s}/{d}" for s in SPLITS for d in ("offsets", "codes", "labels", "names")]
    h5 = open_checked(path, datasets, attrs=("format", "identity", "sensor_size", "classes"),
                      same_length=[[f"{s}/labels", f"{s}/names"] for s in SPLITS])
    for split in SPLITS:
        offsets = h5[f"{split}/offsets"]
        n_samples, n_codes = len(h5[f"{split}/labels"]), len(h5[f"{split}/codes"])
        if len(offsets) != n_samples + 1 or offsets[-1] != n_codes:
            h5.close()
            raise SnnflowError(f"{path}: {split}/offsets disagree with the events stored "
                               "- delete it and rerun the workflow to rebuild it")
        if f"{split}/times" in h5 and len(h5[f"{split}/times"]) != n_codes:
            h5.close()
            raise SnnflowError(f"{path}: {split}/times holds a different number of events "
                               "than its codes - delete it and rerun the workflow to rebuild it")
    return h5


def has_times(h5):
    """Whether an event store holds each event's timestamp (build_event_store's with_times)."""
    return all(f"{split}/times" in h5 for split in SPLITS)


def sensor_and_classes(h5):
    """((width, height, polarities), [class names]) an event store or a cache records."""
    try:
        width, height, polarities = (int(v) for v in h5.attrs["sensor_size"])
    except (KeyError, TypeError, ValueError):
        raise SnnflowError(f"{h5.filename}: its sensor size is missing or malformed - delete "
                           "it and rerun the workflow") from None
    return (width, height, polarities), class_names(h5)


def build_tonic_event_store(name, save_to, out_path, test_fraction=0.1, split_seed=0,
                            allow_missing_classes=False, log=print, with_times=False):
    """Read dataset `name` with tonic from `save_to` (snnflow.data.tonic_datasets) into an
    event store like N-MNIST's: one pass over the files, codes (and with `with_times` the
    timestamps, int64 microseconds) streamed to disk. A
    dataset without a sensor size in tonic (NCALTECH101) gets the smallest box holding all
    its events, its codes rewritten once at the end. The identity is hashed from what is
    read as it is written (for NCALTECH101: the codes before rewriting, the same content)."""
    import h5py

    from snnflow.data import tonic_datasets as td

    splits = td.open_splits(name, save_to, test_fraction, split_seed)
    first = next(iter(splits.values()))[0]
    classes = td.class_names(first)
    sensor = td.sensor_of(first)
    known = sensor is not None
    if not known:
        sensor = (td.PROVISIONAL_SIDE, td.PROVISIONAL_SIDE, 2)
    code_type = np.uint16 if known and int(np.prod(sensor)) <= 1 << 16 else np.uint32
    folder = Path(save_to) / name
    digest = Digest(f"event store {STORE_FORMAT}")
    seen_x = seen_y = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(format=STORE_FORMAT, source=str(folder.resolve()), dataset=name,
                        classes=json.dumps(classes))
        for split, (ds, indices) in splits.items():
            group = h5.create_group(split)
            codes = group.create_dataset("codes", shape=(0,), maxshape=(None,), dtype=code_type,
                                         chunks=(1 << 16,))
            times = (group.create_dataset("times", shape=(0,), dtype=np.int64, **TIMES_STORAGE)
                     if with_times else None)
            offsets, labels, names = [0], [], []
            digest.add(split)
            for sample_codes, sample_times, sample, label in td.read_samples(ds, indices, sensor,
                                                                            folder):
                start = offsets[-1]
                sample_codes = sample_codes.astype(code_type)
                codes.resize((start + len(sample_codes),))
                codes[start:] = sample_codes
                digest.add(sample_codes)
                if times is not None:
                    times.resize((start + len(sample_times),))
                    times[start:] = sample_times
                    digest.add(sample_times)
                offsets.append(start + len(sample_codes))
                labels.append(label)
                names.append(sample)
                if not known:
                    seen_x = max(seen_x, int((sample_codes % sensor[0]).max()) + 1)
                    seen_y = max(seen_y, int((sample_codes // sensor[0] % sensor[1]).max()) + 1)
            if not names and td.SPECS[name].has_split:
                raise SnnflowError(f"{folder}: no {split} samples - {name} comes with its own "
                                   f"{split} split; the copy needs both ({td.SPECS[name].layout})")
            if not names:
                raise SnnflowError(f"{folder}: no {split} samples - the copy holds too few "
                                   "samples of some class to split")
            missing = sorted(set(range(len(classes))) - set(labels))
            if missing and not allow_missing_classes:
                shown = ", ".join(classes[c] for c in missing[:5])
                raise SnnflowError(f"{folder}: no {split} samples of class {shown}"
                                   f"{' and more' if len(missing) > 5 else ''} - restore them, "
                                   "or set allow_missing_classes: true to study a subset")
            if split == "train":
                refuse_a_single_class(folder, labels, classes)
            offsets = np.array(offsets, dtype=np.int64)
            labels = np.array(labels, dtype=np.uint8 if len(classes) <= 256 else np.uint16)
            group["offsets"], group["labels"] = offsets, labels
            group["names"] = np.array(names, dtype=object)
            for part in ("\n".join(names), labels, offsets):
                digest.add(part)
            group["names"].attrs["relative_to"] = ""
            log(f"{split}: {len(names)} samples, {offsets[-1]} events")
        if not known:
            sensor = (seen_x, seen_y, 2)
            _recode(h5, (td.PROVISIONAL_SIDE, td.PROVISIONAL_SIDE), sensor, splits)
            log(f"sensor: {seen_x}x{seen_y} (the box holding every event)")
        h5.attrs["sensor_size"] = sensor
        h5.attrs["identity"] = digest.hexdigest()


def _recode(h5, provisional, sensor, splits, step=1 << 22):
    """Rewrite codes made with the provisional (width, height) for the final sensor."""
    width0, height0 = provisional
    width, height, _ = sensor
    for split in splits:
        codes = h5[f"{split}/codes"]
        for start in range(0, len(codes), step):
            part = codes[start:start + step].astype(np.int64)
            x, y, p = part % width0, part // width0 % height0, part // (width0 * height0)
            codes[start:start + step] = (p * height + y) * width + x
