"""tonic's event-camera classification datasets as the study's data (config `dataset.name`).

tonic stays the reader: it downloads (here through snnflow.data.download's bounded
transfer, with tonic's URL and md5), unpacks and parses each dataset's own files. This
module only turns what tonic's dataset classes return, sample by sample, into the event
store (snnflow.data.events): each sample's events as pixel codes in file order, its
label, its file name, and the dataset's sensor size and class names. Every T is then
binned from the store, never from the raw files again.

A local copy (`dataset.dir`) is the folder tonic downloads into: it holds `<name>/` in
tonic's layout. tonic's own check that a download is complete (at least so many files)
is for downloads; a local copy is used as found, so that a subset is a valid study.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnflow import SnnflowError


@dataclass(frozen=True)
class TonicSpec:
    """What the pipeline needs to know about a tonic dataset beyond what tonic says."""
    extension: str            # the files holding the samples
    has_split: bool           # tonic offers train=True/False; else the study splits it
    layout: str               # the local copy's layout, for the error messages
    archives: tuple = ()      # the files tonic downloads (named here: the Snakefile needs
                              # them without importing tonic); none: tonic (1.7) cannot


SPECS = {
    "DVSGesture": TonicSpec(".npy", True, "DVSGesture/ibmGestureTrain/user<NN>_<lighting>/"
                                          "<class>.npy and DVSGesture/ibmGestureTest/...",
                            ("ibmGestureTrain.tar.gz", "ibmGestureTest.tar.gz")),
    "NCALTECH101": TonicSpec(".bin", False, "NCALTECH101/Caltech101/<class>/image_<NNNN>.bin",
                             ("N-Caltech101-archive.zip",)),
    "CIFAR10DVS": TonicSpec(".aedat4", False, "CIFAR10DVS/<class>/cifar10_<class>_<N>.aedat4",
                            ("CIFAR10DVS.zip",)),
    "POKERDVS": TonicSpec(".npy", True, "POKERDVS/pips_train/<cl|he|di|sp>/*.npy and "
                                        "POKERDVS/pips_test/..."),
    # N-MNIST through tonic: not offered in the config (`nmnist`, the project's own faster
    # reader, is), but the oracle of this generic path (tests/data/test_tonic_datasets.py)
    "NMNIST": TonicSpec(".bin", True, "NMNIST/Train/<label>/*.bin and NMNIST/Test/...",
                        ("train.zip", "test.zip")),
}
NMNIST = "nmnist"  # the project's own reader; the names config dataset.name allows: the schema
# A dataset tonic does not know the sensor of (NCALTECH101: every recording its own size)
# is coded with this provisional width while it is read; its sensor is then the smallest
# box holding every event.
PROVISIONAL_SIDE = 1 << 12


def store_name(name):
    """The name of a dataset's event store and frame caches: nmnist, dvsgesture, ..."""
    return name.lower()


def dataset_class(name):
    import tonic.datasets

    return getattr(tonic.datasets, name)


def archives(name, mirror=None):
    """[(url, file name, md5)] tonic downloads for `name` (both splits where it has two);
    from `mirror` (a base URL) instead of tonic's URLs if given."""
    cls = dataset_class(name)
    if hasattr(cls, "train_url"):
        found = [(cls.train_url, cls.train_filename, cls.train_md5),
                 (cls.test_url, cls.test_filename, cls.test_md5)]
    else:
        found = [(cls.url, cls.filename, cls.file_md5)]
    if mirror:
        return [(f"{mirror.rstrip('/')}/{file}", file, md5) for _, file, md5 in found]
    return found


def local_copy_problem(name, save_to):
    """Why `save_to` is not a usable copy of `name` in tonic's layout, or None."""
    spec, folder = SPECS[name], Path(save_to) / name
    if not folder.is_dir():
        return f"{folder}: folder not found"
    if next(files_under(folder, spec.extension), None) is None:
        return f"{folder}: no {spec.extension} files in it"
    return None


def files_under(root, extension):
    """(folder relative to `root`, file name) of every `extension` file below `root`, folders
    sorted, following links to folders (a split linked into the copy) but never into a
    folder twice (a link loop)."""
    seen = set()
    for folder, names, files in os.walk(root, followlinks=True, onerror=_unlisted):
        identity = os.stat(folder)
        if (identity.st_dev, identity.st_ino) in seen:
            names[:] = []
            continue
        seen.add((identity.st_dev, identity.st_ino))
        names.sort()
        relative = os.path.relpath(folder, root)
        for file in sorted(files):
            if file.endswith(extension):
                yield relative, file


def _unlisted(err):
    raise SnnflowError(f"{err.filename}: cannot be listed ({err.strerror}) - make it readable "
                       "(config key dataset.dir)")


def _as_found(cls):
    """`cls` taking its folder as it is (no download, no unpacking), whatever tonic's file
    count check says."""
    return type(cls.__name__, (cls,), {"_check_exists": lambda self: True})


def open_splits(name, save_to, test_fraction, split_seed):
    """{split: (tonic dataset, indices into it)} of `name` read from `save_to` (which holds
    `<name>/` as tonic writes it), each split's samples in the order of their names.
    Datasets without a test split are split per class: `test_fraction` of each class's
    samples, drawn with `split_seed`."""
    problem = local_copy_problem(name, save_to)
    if problem:
        raise SnnflowError(f"{problem} - dataset {name} needs {SPECS[name].layout} (tonic's "
                           f"layout) under dataset.dir")
    cls = _as_found(dataset_class(name))
    try:
        if SPECS[name].has_split:
            parts = {split: cls(str(save_to), train=split == "train")
                     for split in ("train", "test")}
            return {split: (ds, in_name_order(ds, range(len(ds))))
                    for split, ds in parts.items()}
        ds = cls(str(save_to))
    except SnnflowError:
        raise
    except Exception as err:  # tonic's own errors on a folder that is not its layout
        raise SnnflowError(f"{Path(save_to) / name}: tonic cannot read it ({type(err).__name__}: "
                           f"{str(err)[:160]}) - it needs {SPECS[name].layout}") from None
    order = in_name_order(ds, range(len(ds)))
    labels = np.array([_class_index(ds, ds.targets[i]) for i in order], dtype=np.int64)
    test = held_out_per_class(labels, test_fraction, split_seed)
    return {"train": (ds, order[~test]), "test": (ds, order[test])}


def in_name_order(ds, indices):
    """`indices` sorted by their samples' names: tonic lists files in the order the file
    system gives them, which differs from one copy to the next."""
    return np.array(sorted(indices, key=lambda i: sample_name(ds, i)), dtype=np.int64)


def held_out_per_class(labels, fraction, seed):
    """A mask of `fraction` of each class's samples (at least one of a class of two or
    more), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = int(round(fraction * len(members)))
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        mask[rng.permutation(members)[:take]] = True
    return mask


def class_names(ds):
    """The class names of a tonic dataset, in the order of its integer targets; a dataset
    whose targets are folder names (NCALTECH101) has them sorted."""
    classes = getattr(type(ds), "classes", None)
    if classes is None or not ds.targets or isinstance(ds.targets[0], str):
        return sorted(set(map(str, ds.targets)))
    if isinstance(classes, dict):
        return [name for name, _ in sorted(classes.items(), key=lambda item: item[1])]
    return [str(c) for c in classes]


def _class_index(ds, target):
    """The label of a target: itself, or a folder name's place among the sorted names
    (looked up in a table made once per dataset, not by sorting every target again)."""
    if not isinstance(target, str):
        return int(target)
    if not hasattr(ds, "class_indices"):
        ds.class_indices = {name: i for i, name in enumerate(class_names(ds))}
    return ds.class_indices[target]


def sample_name(ds, index):
    """A sample's file relative to the dataset's folder."""
    item = ds.data[index]
    if not isinstance(item, (str, os.PathLike)):
        item = _files_read(ds)[index]
    return os.path.relpath(item, ds.location_on_system)


def _files_read(ds):
    """The files of a dataset tonic keeps only the arrays of (POKERDVS), in the order it
    read them: its walk of the folder, each folder's files sorted."""
    if not hasattr(ds, "files_read"):
        folder = os.path.join(ds.location_on_system, ds.folder_name)
        extension = SPECS[type(ds).__name__].extension
        ds.files_read = [os.path.join(path, file) for path, _, files in os.walk(folder)
                         for file in sorted(files) if file.endswith(extension)]
        if len(ds.files_read) != len(ds.data):
            raise SnnflowError(f"{folder}: changed while tonic read it - rerun the workflow")
    return ds.files_read


def sensor_of(ds):
    """(width, height, polarities) tonic gives for the dataset, or None where every
    recording has its own size."""
    size = getattr(type(ds), "sensor_size", None)
    return None if size is None else tuple(int(v) for v in size)


def pixel_codes(events, sensor, where):
    """(p * H + y) * W + x of each event in file order (p > 0 is ON, channel 1), refusing
    a sample with no events or one outside the sensor (W, H, P) by `where`."""
    n = len(events)
    if n == 0:
        raise SnnflowError(f"{where}: holds no events - remove the file or replace it with "
                           "a good copy")
    width, height, _ = sensor
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = (events["p"].astype(np.int64) > 0).astype(np.int64)
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise SnnflowError(f"{where}: event {i} at x={x[i]}, y={y[i]} lies outside the "
                           f"{width}x{height} sensor - remove the file or replace it with a "
                           "good copy")
    return (p * height + y) * width + x


def timestamps(events, where):
    """Each event's timestamp as int64 microseconds, as tonic read it; refusing fractions
    of a microsecond, which the store could not hold as they are."""
    t = events["t"]
    if t.dtype.kind == "f":
        if not np.isfinite(t).all() or (t != np.round(t)).any():
            raise SnnflowError(f"{where}: holds timestamps that are not whole microseconds - "
                               "remove the file or replace it with a good copy")
    return t.astype(np.int64)


def read_samples(ds, indices, sensor, where):
    """(codes, times, name, label) of each sample of `indices`, read by tonic, in order."""
    for i in indices:
        name = sample_name(ds, i)
        try:
            events, target = ds[i]
        except SnnflowError:
            raise
        except Exception as err:  # a damaged file: tonic's readers raise many kinds
            raise SnnflowError(f"{where}/{name}: tonic cannot read it ({type(err).__name__}: "
                               f"{str(err)[:120]}) - remove the file or replace it with a "
                               "good copy") from None
        yield (pixel_codes(events, sensor, f"{where}/{name}"), timestamps(events, f"{where}/{name}"),
               name, _class_index(ds, target))


# What one of tonic's archives may unpack to: the largest file in them (CIFAR10DVS's
# per-class zips, N-Caltech101's Caltech101.zip) is about 1 GB, the most files (CIFAR10DVS)
# 10,000; event recordings compress a few times, so an archive that unpacks to more than
# MAX_EXPANSION times its own size (plus a small allowance) is refused.
MAX_ARCHIVE_MEMBERS = 100_000
MAX_ARCHIVE_MEMBER_BYTES = 8 << 30
MAX_EXPANSION = 20
EXPANSION_ALLOWANCE_BYTES = 64 << 20


def archive_limits(name, archive):
    """The bounds of one of `name`'s archives (snnflow.data.archives.Limits)."""
    size = Path(archive).stat().st_size
    from snnflow.data import archives

    return archives.Limits(
        MAX_ARCHIVE_MEMBERS, MAX_ARCHIVE_MEMBER_BYTES,
        MAX_EXPANSION * size + EXPANSION_ALLOWANCE_BYTES, f"a {name}",
        f"{name}'s archives hold at most {MAX_ARCHIVE_MEMBERS} files and unpack to at most "
        f"{MAX_EXPANSION} times their size")


def unpack(name, archive_paths, out):
    """Unpack `name`'s downloaded archives into `out` (tonic's `<save_to>/<name>`), and the
    archives inside them that tonic unpacks itself (NCALTECH101's Caltech101.zip,
    CIFAR10DVS's one zip per class), as tonic lays them out, but through
    snnflow.data.archives: only files and folders inside `out`, bounded in count and size
    (tonic's own unpacker trusts every member). Unpacked beside `out` and renamed at the
    end (snnflow.jobs.atomic): a killed or refused job leaves no half-unpacked copy."""
    from snnflow.data import archives
    from snnflow.jobs.atomic import atomic_path

    with atomic_path(out) as partial:
        partial.mkdir()
        for archive in archive_paths:
            archives.unpack(archive, partial, archive_limits(name, archive))
        inner = getattr(dataset_class(name), "data_filename", None)
        for file in [inner] if isinstance(inner, str) else inner or []:
            for found in sorted(partial.rglob(file)):
                if found.is_symlink() or not found.is_file():
                    continue
                archives.unpack(found, found.parent, archive_limits(name, found))
                found.unlink()
