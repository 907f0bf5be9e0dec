"""tonic's event-camera datasets as the study's data (snnflow.data.tonic_datasets): each read
by tonic from a synthetic copy in its own layout and format (tests/tonic_copies.py) into
the event store, whose frames equal tonic's own ToFrame(n_event_bins=T) where T divides the
event count (elsewhere the study's last frame also takes the remainder). N-MNIST read
through tonic's NMNIST class, the generic path, gives the frames of the project's own
reader, on the real recordings where ../shared holds them."""

import json

import h5py
import numpy as np
import pytest

import tonic_copies
from conftest import REPO, make_nmnist_tree
from snnflow import SnnflowError
from snnflow.data import tonic_datasets
from snnflow.data.events import (build_event_store, build_tonic_event_store, open_event_store,
                                 sensor_and_classes)
from snnflow.data.frames import build_frame_cache
from snnflow.data.nmnist import SPLITS

tonic = pytest.importorskip("tonic")

T_VALUES = (4, 6, 16)  # 6: it divides the 111,954 events of every CIFAR10DVS copy's sample
EXPECTED_CLASSES = {
    "DVSGesture": tonic.datasets.DVSGesture.classes,
    "NCALTECH101": tonic_copies.NCALTECH101_CLASSES,  # its folders, sorted
    "POKERDVS": tonic_copies.POKERDVS_CLASSES,
    "CIFAR10DVS": tonic_copies.CIFAR10DVS_CLASSES,
}


write_copy = tonic_copies.write_copy


@pytest.fixture(params=list(EXPECTED_CLASSES), scope="module")
def store(request, tmp_path_factory):
    """(name, the copy's folder (tonic's save_to), its event store)."""
    root = tmp_path_factory.mktemp(request.param)
    write_copy(request.param, root / "copy", np.random.default_rng(5))
    build_tonic_event_store(request.param, root / "copy", root / "events.h5", test_fraction=0.3,
                            split_seed=1, log=lambda line: None, with_times=True)
    return request.param, root / "copy", root / "events.h5"


def tonic_samples(name, save_to):
    """{sample name: events} of every sample as tonic's own class reads it."""
    cls = tonic_datasets._as_found(tonic_datasets.dataset_class(name))
    parts = ([cls(str(save_to), train=True), cls(str(save_to), train=False)]
             if tonic_datasets.SPECS[name].has_split else [cls(str(save_to))])
    return {tonic_datasets.sample_name(ds, i): ds[i][0] for ds in parts for i in range(len(ds))}


def stored_samples(path):
    with open_event_store(path) as h5:
        sensor = tuple(int(v) for v in h5.attrs["sensor_size"])
        for split in SPLITS:
            offsets, codes = h5[f"{split}/offsets"][...], h5[f"{split}/codes"][...]
            for i, name in enumerate(h5[f"{split}/names"][...]):
                yield split, i, name.decode(), codes[offsets[i]:offsets[i + 1]], sensor


def test_the_store_holds_tonics_events_class_names_and_sensor(store):
    name, save_to, path = store
    theirs = tonic_samples(name, save_to)
    with open_event_store(path) as h5:
        assert json.loads(h5.attrs["classes"]) == list(EXPECTED_CLASSES[name])
        labels = np.concatenate([h5[f"{split}/labels"][...] for split in SPLITS])
        assert set(labels) == set(range(len(EXPECTED_CLASSES[name])))  # every class, both splits
        assert all(len(h5[f"{split}/labels"]) for split in SPLITS)
    names = []
    for _, _, sample, codes, sensor in stored_samples(path):
        events = theirs[sample]
        width, height, _ = sensor
        p = (events["p"].astype(np.int64) > 0)
        expected = (p * height + events["y"].astype(np.int64)) * width + events["x"]
        np.testing.assert_array_equal(codes, expected, err_msg=sample)
        names.append(sample)
    assert sorted(names) == sorted(theirs)  # every sample once, in one split or the other
    if tonic.datasets.__dict__[name].sensor_size is not None:
        assert sensor == tuple(tonic.datasets.__dict__[name].sensor_size)
    else:  # every recording its own size: the box holding them all
        assert sensor[0] == max(int(e["x"].max()) + 1 for e in theirs.values())
        assert sensor[1] == max(int(e["y"].max()) + 1 for e in theirs.values())


@pytest.mark.parametrize("T", T_VALUES)
def test_frames_are_tonics_to_frame_where_T_divides_the_event_count(store, tmp_path, T):
    name, save_to, path = store
    theirs = tonic_samples(name, save_to)
    build_frame_cache(path, T, tmp_path / "frames.h5")
    divisible = 0
    with h5py.File(tmp_path / "frames.h5") as cache:
        for split, i, sample, codes, sensor in stored_samples(path):
            events = theirs[sample].copy()
            events["p"] = events["p"] > 0
            to_frame = tonic.transforms.ToFrame(sensor_size=sensor, n_event_bins=T)
            expected = to_frame(events).astype(np.int64)
            ours = cache[f"{split}/frames"][i].astype(np.int64)
            if len(codes) % T == 0:
                np.testing.assert_array_equal(ours, expected, err_msg=f"{sample} T={T}")
                divisible += 1
            else:  # the remainder, left out by tonic, is in the study's last frame
                np.testing.assert_array_equal(ours[:-1], expected[:-1], err_msg=sample)
                assert ours.sum() == len(codes)
    assert divisible >= 3 or (name == "CIFAR10DVS" and T != 6)


def test_frames_by_time_are_tonics_to_frame_plus_the_events_after_its_windows(store, tmp_path):
    """The store keeps tonic's timestamps; framed by time, frames are tonic's
    ToFrame(n_time_bins=T) but for the events after its windows, in the last frame."""
    name, save_to, path = store
    theirs = tonic_samples(name, save_to)
    T = 6
    build_frame_cache(path, T, tmp_path / "frames.h5", framing="time")
    with h5py.File(tmp_path / "frames.h5") as cache, open_event_store(path) as h5:
        for split, i, sample, codes, sensor in stored_samples(path):
            events = theirs[sample].copy()
            offsets = h5[f"{split}/offsets"]
            np.testing.assert_array_equal(h5[f"{split}/times"][offsets[i]:offsets[i + 1]],
                                          events["t"], err_msg=sample)
            events["p"] = events["p"] > 0
            expected = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=T)(events)
            ours = cache[f"{split}/frames"][i].astype(np.int64)
            np.testing.assert_array_equal(ours[:-1], expected[:-1], err_msg=f"{sample}")
            t = events["t"].astype(np.int64)
            after = int((t >= t[0] + T * ((t[-1] - t[0]) // T)).sum())
            assert ours[-1].sum() == expected[-1].sum() + after
            assert ours.sum() == len(codes)


def test_a_coarser_frame_size_sums_blocks_of_pixels(store, tmp_path):
    """dataset.size: each event counts in the pixel of the coarser grid that holds it, as
    tonic's Downsample then ToFrame give where the sizes divide."""
    name, save_to, path = store
    if name not in ("DVSGesture", "CIFAR10DVS"):
        pytest.skip("the 128x128 sensors are the ones divided by 4")
    build_frame_cache(path, 6, tmp_path / "frames.h5", size=32)
    theirs = tonic_samples(name, save_to)
    transform = tonic.transforms.Compose([
        tonic.transforms.Downsample(spatial_factor=0.25),
        tonic.transforms.ToFrame(sensor_size=(32, 32, 2), n_event_bins=6)])
    with h5py.File(tmp_path / "frames.h5") as cache:
        assert cache["train/frames"].shape[2:] == (2, 32, 32)
        assert list(cache.attrs["frame_size"]) == [32, 32]
        compared = 0
        for split, i, sample, codes, _ in stored_samples(path):
            if len(codes) % 6 == 0:
                compared += 1
                events = theirs[sample].copy()
                events["p"] = events["p"] > 0
                np.testing.assert_array_equal(cache[f"{split}/frames"][i].astype(np.int64),
                                              transform(events).astype(np.int64))
    assert compared >= 3


def test_a_split_per_class_for_datasets_without_one(store):
    name, _, path = store
    if tonic_datasets.SPECS[name].has_split:
        pytest.skip("the dataset has its own test split")
    with open_event_store(path) as h5:
        train, test = h5["train/labels"][...], h5["test/labels"][...]
        names = {split: set(h5[f"{split}/names"].asstr()[...]) for split in SPLITS}
    assert not names["train"] & names["test"]
    for label in np.unique(train):
        n = (train == label).sum() + (test == label).sum()
        assert (test == label).sum() == max(1, round(0.3 * n))


def test_nmnist_through_tonic_gives_the_frames_of_the_projects_own_reader(tmp_path):
    """tonic as the oracle of the generic path: tonic's NMNIST class (through
    build_tonic_event_store) and the project's N-MNIST reader give the same frames."""
    real = REPO.parent / "shared" / "fixtures" / "nmnist-real-100" / "Train"
    copy = tmp_path / "copy" / "NMNIST"
    if real.is_dir():
        copy.mkdir(parents=True)
        for folder in SPLITS.values():  # the fixture has Train/ only: it serves as both
            (copy / folder).symlink_to(real)
    else:
        make_nmnist_tree(copy, 2, np.random.default_rng(3), sizes=(1, 700))
    build_event_store(copy, tmp_path / "own.h5", threads=2)
    build_tonic_event_store("NMNIST", tmp_path / "copy", tmp_path / "generic.h5",
                            log=lambda line: None)
    for T in (4, 16):
        build_frame_cache(tmp_path / "own.h5", T, tmp_path / f"own_T{T}.h5")
        build_frame_cache(tmp_path / "generic.h5", T, tmp_path / f"generic_T{T}.h5")
        with h5py.File(tmp_path / f"own_T{T}.h5") as own, \
                h5py.File(tmp_path / f"generic_T{T}.h5") as generic:
            for split, folder in SPLITS.items():
                assert list(own[f"{split}/names"].asstr()[...]) == [
                    name.removeprefix(f"{folder}/") for name in generic[f"{split}/names"].asstr()[...]]
                np.testing.assert_array_equal(own[f"{split}/frames"][...],
                                              generic[f"{split}/frames"][...])
                np.testing.assert_array_equal(own[f"{split}/labels"][...],
                                              generic[f"{split}/labels"][...])
                assert len(own[f"{split}/labels"]) >= (100 if real.is_dir() else 20)


def test_bad_samples_are_refused_by_name(tmp_path, rng):
    root = tonic_copies.write_dvsgesture(tmp_path / "copy", rng)
    empty = root / "ibmGestureTrain" / "user01_led" / "3.npy"
    good = np.load(empty)
    np.save(empty, good[:0])
    with pytest.raises(SnnflowError, match=r"user01_led/3\.npy: holds no events - remove"):
        build_tonic_event_store("DVSGesture", tmp_path / "copy", tmp_path / "e.h5")
    outside = good.copy()
    outside[5, 0] = 130
    np.save(empty, outside)
    with pytest.raises(SnnflowError, match=r"3\.npy: event 5 at x=130, y=\d+ lies outside the "
                                           r"128x128 sensor"):
        build_tonic_event_store("DVSGesture", tmp_path / "copy", tmp_path / "e.h5")
    np.save(empty, good)
    for user in (root / "ibmGestureTest").iterdir():
        (user / "7.npy").unlink()
    with pytest.raises(SnnflowError, match="no test samples of class Arm roll - restore"):
        build_tonic_event_store("DVSGesture", tmp_path / "copy", tmp_path / "e.h5")
    build_tonic_event_store("DVSGesture", tmp_path / "copy", tmp_path / "e.h5",
                            allow_missing_classes=True, log=lambda line: None)
    assert not (tmp_path / "e.h5.partial").exists()


def test_a_folder_not_in_tonics_layout_says_what_it_needs(tmp_path):
    (tmp_path / "DVSGesture").mkdir()
    with pytest.raises(SnnflowError, match=r"DVSGesture: no \.npy files in it - dataset "
                                           r"DVSGesture needs DVSGesture/ibmGestureTrain/"):
        build_tonic_event_store("DVSGesture", tmp_path, tmp_path / "e.h5")


def test_a_frame_cache_larger_than_the_memory_names_t_and_the_frame_size(store, tmp_path,
                                                                          monkeypatch):
    from snnflow.data import frames

    name, _, path = store
    monkeypatch.setattr(frames, "memory_bytes", lambda: (1000, 1000))
    with pytest.raises(SnnflowError, match=r"config key snn.T: 4 makes a frame cache of .* "
                                           r"- lower T or a smaller dataset.size"):
        build_frame_cache(path, 4, tmp_path / "frames.h5")
    assert not (tmp_path / "frames.h5").exists()


def test_a_copy_of_a_single_class_is_refused(tmp_path, rng):
    """N-Caltech101's classes are its folders: a copy of one folder would train a
    one-output network and report 100 %."""
    import shutil

    tonic_copies.write_ncaltech101(tmp_path / "copy", rng)
    classes = sorted((tmp_path / "copy" / "NCALTECH101" / "Caltech101").iterdir())
    for folder in classes[1:]:
        shutil.rmtree(folder)
    with pytest.raises(SnnflowError, match=rf"every training sample is of class "
                                           rf"{classes[0].name}; a classifier needs at least"):
        build_tonic_event_store("NCALTECH101", tmp_path / "copy", tmp_path / "e.h5",
                                log=lambda line: None)


def test_a_frame_size_above_the_sensor_is_refused_never_upsampled(store, tmp_path):
    name, _, path = store
    with open_event_store(path) as h5:
        width, height, _ = sensor_and_classes(h5)[0]
    with pytest.raises(SnnflowError, match=rf"config key dataset.size: \[{height + 1}, "
                                           rf"{width}\] is larger than the sensor's {height} x "
                                           rf"{width}"):
        build_frame_cache(path, 4, tmp_path / "frames.h5", size=[height + 1, width])
    assert not (tmp_path / "frames.h5").exists()


def test_a_copy_without_its_own_test_split_says_so(tmp_path, rng):
    import shutil

    tonic_copies.write_dvsgesture(tmp_path / "copy", rng, train_users=2, test_users=1)
    shutil.rmtree(tmp_path / "copy" / "DVSGesture" / "ibmGestureTest")
    with pytest.raises(SnnflowError, match=r"DVSGesture: no test samples - DVSGesture comes "
                                           r"with its own test split; the copy needs both "
                                           r"\(DVSGesture/ibmGestureTrain/"):
        build_tonic_event_store("DVSGesture", tmp_path / "copy", tmp_path / "e.h5",
                                log=lambda line: None)
