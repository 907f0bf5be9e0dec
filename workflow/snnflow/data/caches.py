"""Opening the HDF5 files the pipeline writes, refusing incomplete ones.

A file left by a crash outside Snakemake (truncated, or missing a dataset) must be
reported with its name, never loaded as garbage.
"""

import numpy as np

from snnflow import SnnflowError


def open_checked(path, datasets, attrs=(), same_length=()):
    """Open `path` read-only and check that every dataset and attribute is there and
    that each group of datasets in `same_length` agrees on its first dimension."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise SnnflowError(f"{path}: unreadable HDF5 file ({err}) - delete it and rerun "
                           "the workflow to rebuild it") from None
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
    with open_checked(path, datasets, attrs, same_length=pairs) as h5:
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
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise SnnflowError(f"{path}: {split}/labels holds values outside 0-9 - delete it and rerun")
    return inputs, labels


def cache_identity(path):
    """The `identity` a cache records: what it was made from (snnflow.data.identity)."""
    with open_checked(path, [], attrs=("identity",)) as h5:
        return str(h5.attrs["identity"])
