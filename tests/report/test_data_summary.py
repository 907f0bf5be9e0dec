"""The data summary: a row per split of the data used, and one test sample per class."""

import h5py
import numpy as np
import pandas as pd

from snnflow.report.data_summary import describe_sources, summarize

SYNTHETIC = {"kind": "synthetic", "enabled": True, "train_per_class": 6, "test_per_class": 6,
             "seed": 0}


def test_rows_per_split_and_the_first_test_sample_of_each_class(small_caches, tmp_path):
    summarize(small_caches / "events.h5", {4: small_caches / "nmnist_T4.h5"},
              small_caches / "mnist.h5", SYNTHETIC, tmp_path / "dataset.csv",
              tmp_path / "examples.npz")
    table = pd.read_csv(tmp_path / "dataset.csv").set_index(["dataset", "split"])
    with h5py.File(small_caches / "events.h5") as store:
        events = np.diff(store["test/offsets"][...])
    row = table.loc[("N-MNIST", "test")]
    assert row["samples"] == 60 and all(row[f"class_{c}"] == 6 for c in range(10))
    assert row["events_mean"] == events.mean() and row["events_min"] == events.min()
    assert table.loc[("MNIST", "test"), "samples"] == 20
    assert table.loc[("MNIST", "train"), "source"].startswith("synthetic (snnflow.data.synthetic")
    with np.load(tmp_path / "examples.npz", allow_pickle=False) as examples, \
            h5py.File(small_caches / "nmnist_T4.h5") as frames, \
            h5py.File(small_caches / "mnist.h5") as mnist:
        assert examples["frames_T4"].shape == (10, 4, 2, 34, 34)
        labels = frames["test/labels"][...]
        for c in (0, 7):
            first = np.flatnonzero(labels == c)[0]
            np.testing.assert_array_equal(examples["frames_T4"][c], frames["test/frames"][first])
            assert examples["names"][c] == frames["test/names"][first].decode()
            digit = np.flatnonzero(mnist["test/labels"][...] == c)[0]
            np.testing.assert_array_equal(examples["digits"][c], mnist["test/images"][digit, 0])


def test_sources_name_the_urls_and_md5_sums_or_the_local_copies():
    downloaded = describe_sources({"kind": "datasets", "nmnist_dir": None, "mnist_dir": "/d/m",
                                   "nmnist_mirror": "http://mirror/", "mnist_mirror": None})
    assert downloaded["events"].startswith("download, md5 checked: http://mirror/train.zip (md5 ")
    assert downloaded["mnist"] == "local copy: /d/m"
    mnist = describe_sources({"kind": "datasets", "nmnist_dir": "/d/n", "mnist_dir": None,
                              "nmnist_mirror": None, "mnist_mirror": None})["mnist"]
    assert "train-images-idx3-ubyte.gz (md5 f68b3c2dcbeaaa9fbdd348bbdeb94873)" in mnist


def test_test_samples_identical_to_training_samples_are_counted_and_warned_of(tmp_path, rng):
    """A test split that repeats training recordings (a copied folder, a bad subset) is a
    study that measures memory: the data table counts them, the page warns at its top."""
    import shutil

    from conftest import make_nmnist_tree
    from snnflow.data.events import build_event_store
    from snnflow.report.page import warnings
    from snnflow.report.study import Study

    make_nmnist_tree(tmp_path / "raw", 2, rng)
    for label in (3, 5):  # two test recordings are copies of training ones
        shutil.copy(tmp_path / "raw" / "Train" / str(label) / "00000.bin",
                    tmp_path / "raw" / "Test" / str(label) / "00001.bin")
    build_event_store(tmp_path / "raw", tmp_path / "events.h5")
    from snnflow.data.idx import write_idx
    from snnflow.data.mnist import build_image_cache
    from conftest import all_classes

    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    (tmp_path / "mnist").mkdir()
    for prefix, part in (("train", images[:10]), ("t10k", images[:10])):  # test = train
        write_idx(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte.gz", part)
        write_idx(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", all_classes(rng, 10))
    build_image_cache(tmp_path / "mnist", tmp_path / "mnist.h5")
    summarize(tmp_path / "events.h5", {}, tmp_path / "mnist.h5", SYNTHETIC,
              tmp_path / "dataset.csv", tmp_path / "examples.npz")
    table = pd.read_csv(tmp_path / "dataset.csv").set_index(["dataset", "split"])
    assert table.loc[("N-MNIST", "test"), "test_in_train"] == 2
    assert table.loc[("N-MNIST", "train"), "test_in_train"] == 0
    assert table.loc[("MNIST", "test"), "test_in_train"] == 10
    found = warnings(Study([], 4, table.reset_index(), {}, {}))
    assert found[0].startswith("2 of the 20 N-MNIST test samples are identical to a training "
                               "sample: on them the test accuracy measures memory")
    assert found[1].startswith("10 of the 10 MNIST test samples")


def test_distinct_splits_have_nothing_in_common(small_caches, tmp_path):
    summarize(small_caches / "events.h5", {}, small_caches / "mnist.h5", SYNTHETIC,
              tmp_path / "dataset.csv", tmp_path / "examples.npz")
    assert (pd.read_csv(tmp_path / "dataset.csv")["test_in_train"] == 0).all()


def test_samples_with_fewer_events_than_T_are_counted_and_warned_of(small_caches, tmp_path):
    """A T above the events of a sample leaves all its frames but the last empty: the data
    table counts such samples per T and split, the page warns, the frames job logs it."""
    from snnflow.data.frames import build_frame_cache, fewer_events_than
    from snnflow.report.page import displayed, warnings
    from snnflow.report.registry import CONTENTS
    from snnflow.report.study import Study

    build_frame_cache(small_caches / "events.h5", 150, tmp_path / "nmnist_T150.h5")
    summarize(small_caches / "events.h5", {4: small_caches / "nmnist_T4.h5",
                                           150: tmp_path / "nmnist_T150.h5"},
              small_caches / "mnist.h5", SYNTHETIC, tmp_path / "dataset.csv",
              tmp_path / "examples.npz")
    table = pd.read_csv(tmp_path / "dataset.csv")
    with h5py.File(small_caches / "events.h5") as store:
        events = {split: np.diff(store[f"{split}/offsets"][...]) for split in ("train", "test")}
    short = fewer_events_than(small_caches / "events.h5", 150)
    for split in ("train", "test"):
        row = table[(table["dataset"] == "N-MNIST") & (table["split"] == split)].iloc[0]
        assert row["fewer_events_than_T4"] == 0
        assert row["fewer_events_than_T150"] == (events[split] < 150).sum() > 0
        assert short[split] == (row["fewer_events_than_T150"], row["samples"])
    assert table.loc[table["dataset"] == "MNIST", "fewer_events_than_T150"].isna().all()
    found = warnings(Study([], 4, table, {}, {}))
    n = int(table["fewer_events_than_T150"].iloc[0])
    assert found[0] == (f"{n} of the 60 N-MNIST train samples ({100 * n / 60:.1f} %) have fewer "
                        "events than T=150: all their frames but the last are empty, so "
                        "SNN-150 sees them in one time step (the data table, column "
                        "fewer_events_than_T150)")
    assert len(found) == 2  # and the test split's; none for T=4
    display = next(entry.display for entry in CONTENTS if entry.name == "dataset")
    assert not [c for c in displayed(table, display).columns if "fewer" in c]
