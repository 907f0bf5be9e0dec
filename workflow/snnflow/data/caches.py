"""Opening the HDF5 files the pipeline reads, refusing incomplete and foreign ones.

A file left by a crash outside Snakemake (truncated, or missing a dataset) must be
reported with its name, never loaded as garbage. And an HDF5 file can make its reader
read other files: a dataset stored in an external file, a virtual dataset mapping
other files, an external or soft link. The pipeline writes none of these, so every
HDF5 file it reads (`open_checked`, for the event store, the frame and image caches and
the NIR graph) is refused, naming the file and the dataset, if it holds one, or a
dataset whose stored bytes lie beyond the file's end.
"""

import json
import os

import numpy as np

from snnflow import SnnflowError


def open_checked(path, datasets, attrs=(), same_length=()):
    """Open `path` read-only, check that it reads nothing outside itself
    (`refuse_foreign_storage`), that every dataset and attribute is there and that each
    group of datasets in `same_length` agrees on its first dimension."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise SnnflowError(f"{path}: unreadable HDF5 file ({err}) - delete it and rerun "
                           "the workflow to rebuild it") from None
    try:
        refuse_foreign_storage(h5, path)
    except BaseException:
        h5.close()
        raise
    missing = [d for d in datasets if d not in h5] + [f"@{a}" for a in attrs if a not in h5.attrs]
    if missing:
        h5.close()
        raise SnnflowError(f"{path}: incomplete file (missing {', '.join(missing)}) - delete "
                           "it and rerun the workflow to rebuild it")
    for group in same_length:
        lengths = {name: h5[name].shape[0] for name in group}
        if len(set(lengths.values())) > 1:
            h5.close()
            raise SnnflowError(f"{path}: datasets disagree on the sample count ({lengths}) "
                               "- delete it and rerun the workflow to rebuild it")
    return h5


def refuse_foreign_storage(h5, path):
    """A SnnflowError naming `path` and the first object that is reached through a soft
    or external link, is a virtual dataset or is stored in an external file, or a
    dataset whose stored bytes lie beyond the end of the file (truncated or crafted)."""
    import h5py

    size = os.path.getsize(path)

    def refuse(name, what):
        return SnnflowError(f"{path}: {name} {what} - delete the file and rerun the workflow "
                            "to rebuild it (the pipeline reads only data stored in the file "
                            "itself)")

    def check(name):
        link = h5.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise refuse(name, f"is an external link to {link.filename}")
        if isinstance(link, h5py.SoftLink):
            raise refuse(name, f"is a soft link to {link.path}")
        item = h5[name]
        if not isinstance(item, h5py.Dataset):
            return
        if item.is_virtual:
            raise refuse(name, "is a virtual dataset, mapping other files")
        if item.external:
            raise refuse(name, f"is stored in an external file ({item.external[0][0]!r})")
        end = _stored_end(item.id)
        if end > size:
            raise refuse(name, f"declares data up to byte {end}, beyond the file's "
                               f"{size} bytes")

    names = []
    h5.visit_links(names.append)  # every link, none followed
    for name in names:
        check(name)


def _stored_end(dataset):
    """The byte offset where the last of `dataset`'s stored data ends in its file."""
    import h5py

    layout = dataset.get_create_plist().get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dataset.get_offset()
        return 0 if offset is None else offset + dataset.get_storage_size()
    if layout == h5py.h5d.CHUNKED:
        ends = [0]
        dataset.chunk_iter(lambda chunk: ends.append(chunk.byte_offset + chunk.size))
        return max(ends)
    return 0  # compact: stored in the object header, inside the file


def read_dataset(h5, name):
    """Read one whole dataset, turning HDF5 read errors into a message naming the file."""
    try:
        return h5[name][...]
    except OSError as err:
        raise SnnflowError(f"{h5.filename}: cannot read {name} ({err}); the file is damaged "
                           "- delete it and rerun the workflow") from None


def load_split(path, split, inputs_name, sample_shape, attrs=()):
    """(inputs, labels) of one split of a frame or image cache, after checking the file:
    each input of `sample_shape` (None: any size on that axis), unsigned integers."""
    datasets = [f"{s}/{d}" for s in ("train", "test") for d in (inputs_name, "labels")]
    pairs = [datasets[:2], datasets[2:]]
    with open_checked(path, datasets, (*attrs, "classes"), same_length=pairs) as h5:
        stored = h5[f"{split}/{inputs_name}"]
        shape = stored.shape[1:]
        if len(shape) != len(sample_shape) or any(
                want is not None and got != want for got, want in zip(shape, sample_shape)) \
                or stored.dtype.kind != "u":
            expected = "x".join("any" if d is None else str(d) for d in sample_shape)
            raise SnnflowError(f"{path}: {split}/{inputs_name} holds {stored.dtype} samples of "
                               f"shape {'x'.join(map(str, shape)) or 'scalar'}, not unsigned "
                               f"integers of {expected} - delete it and rerun")
        inputs = read_dataset(h5, f"{split}/{inputs_name}")
        labels = read_dataset(h5, f"{split}/labels").astype(np.int64)
        n_classes = len(class_names(h5))
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise SnnflowError(f"{path}: {split}/labels holds values outside 0-{n_classes - 1} - "
                           "delete it and rerun")
    return inputs, labels


def load_frames(path, split):
    """(frames (N, T, P, H, W), labels) of one split of a frame cache (snnflow.data.frames),
    checked against the T, polarities and frame size the cache records."""
    with open_checked(path, [], attrs=("T", "sensor_size", "frame_size")) as h5:
        try:
            shape = (int(h5.attrs["T"]), int(h5.attrs["sensor_size"][2]),
                     *(int(v) for v in h5.attrs["frame_size"]))
        except (TypeError, ValueError, IndexError):
            raise SnnflowError(f"{path}: its T, sensor or frame size attributes are malformed "
                               "- delete it and rerun") from None
    return load_split(path, split, "frames", shape)


def load_event_images(path, split):
    """(event images (N, P, H, W), labels): a T=1 frame cache, each sample's events summed
    over its whole duration (the CNN's input where the dataset has no static twin)."""
    frames, labels = load_frames(path, split)
    if frames.shape[1] != 1:
        raise SnnflowError(f"{path}: holds {frames.shape[1]} frames per sample, not one event "
                           "image - delete it and rerun")
    return frames[:, 0], labels


def class_names(h5):
    """The class names, in label order, that an event store or cache records (JSON)."""
    try:
        classes = json.loads(h5.attrs["classes"])
        if not (isinstance(classes, list) and classes
                and all(isinstance(c, str) for c in classes)):
            raise ValueError("not a list of names")
    except (KeyError, TypeError, ValueError):
        raise SnnflowError(f"{h5.filename}: its class names are missing or malformed - delete "
                           "it and rerun the workflow") from None
    return classes


def input_shape(path):
    """(channels, height, width, class count) of the samples of a frame or image cache:
    what the networks are shaped by (a frame cache's (N, T, P, H, W) gives P, H, W)."""
    with open_checked(path, ["train/labels"]) as h5:
        inputs = h5["train/frames"] if "train/frames" in h5 else h5["train/images"]
        channels, height, width = inputs.shape[-3:]
        return int(channels), int(height), int(width), len(class_names(h5))


def cache_framing(path):
    """How a frame cache divided each sample's events into frames: "count" or "time"
    (config dataset.framing, from its split_by: snnflow.data.frames); None for an image
    cache."""
    with open_checked(path, []) as h5:
        split_by = h5.attrs.get("split_by")
    return None if split_by is None else {"number": "count", "time": "time"}.get(str(split_by))


def cache_identity(path):
    """The `identity` a cache records: what it was made from (snnflow.data.identity)."""
    with open_checked(path, [], attrs=("identity",)) as h5:
        return str(h5.attrs["identity"])
