"""tonic, the library an N-MNIST user knows, as the oracle of the data stages: the event
store holds exactly what `tonic.io.read_mnist_file` reads, and each frame cache what
`tonic.transforms.ToFrame(n_event_bins=T)` makes, but for the remainder: tonic's bins hold
n // T events each and leave the last n mod T out, where the study's last frame takes
them (docs/method.md); framed by time, what `ToFrame(n_time_bins=T)` makes, but for the
events after its T windows, which the last frame takes (docs/data.md). Checked on generated recordings and, where ../shared holds them,
on 100 real N-MNIST recordings."""

import numpy as np
import pytest

from conftest import REPO, make_nmnist_tree
from snnflow.data.events import build_event_store, open_event_store
from snnflow.data.frames import build_frame_cache
from snnflow.data.nmnist import HEIGHT, SPLITS, WIDTH

tonic = pytest.importorskip("tonic")

REAL = REPO.parent / "shared" / "fixtures" / "nmnist-real-100" / "Train"
T_VALUES = (4, 8, 16, 32)


@pytest.fixture(params=["generated", "real"], scope="module")
def caches(request, tmp_path_factory):
    """(recordings root, event store, {T: frame cache}) of generated or real recordings."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "generated":
        make_nmnist_tree(root / "nmnist", 2, np.random.default_rng(11), sizes=(1, 700))
    else:
        if not REAL.is_dir():
            pytest.skip(f"{REAL} is absent: the real recordings are checked where it exists")
        (root / "nmnist").mkdir()
        for folder in SPLITS.values():  # the fixture has Train/ only: it serves as both
            (root / "nmnist" / folder).symlink_to(REAL)
    build_event_store(root / "nmnist", root / "events.h5", threads=2, with_times=True)
    frames = {(T, framing): root / f"nmnist_T{T}_{framing}.h5"
              for T in T_VALUES for framing in ("count", "time")}
    for (T, framing), path in frames.items():
        build_frame_cache(root / "events.h5", T, path, threads=2, framing=framing)
    return root / "nmnist", root / "events.h5", frames


def tonic_events(path):
    return tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)


def samples(root, store_path):
    """(split, index, recording path, stored codes) of every sample of the store."""
    with open_event_store(store_path) as store:
        for split, folder in SPLITS.items():
            offsets = store[f"{split}/offsets"][...]
            codes = store[f"{split}/codes"][...]
            for i, name in enumerate(store[f"{split}/names"][...]):
                yield split, i, root / folder / name.decode(), codes[offsets[i]:offsets[i + 1]]


def test_the_event_store_holds_what_tonic_reads(caches):
    root, store, _ = caches
    checked = 0
    with open_event_store(store) as h5:
        times = {split: h5[f"{split}/times"][...] for split in SPLITS}
        offsets = {split: h5[f"{split}/offsets"][...] for split in SPLITS}
    for split, i, path, codes in samples(root, store):
        events = tonic_events(path)
        expected = (events["p"].astype(np.int64) * HEIGHT + events["y"]) * WIDTH + events["x"]
        np.testing.assert_array_equal(codes, expected, err_msg=str(path))
        np.testing.assert_array_equal(times[split][offsets[split][i]:offsets[split][i + 1]],
                                      events["t"], err_msg=str(path))
        checked += 1
    assert checked >= 40


@pytest.mark.parametrize("T", T_VALUES)
def test_frames_by_time_are_tonics_to_frame_plus_the_events_after_its_windows(caches, T):
    """framing: time is SpikingJelly's split_by='time': tonic's ToFrame(n_time_bins=T)
    windows, the last frame also taking the events from t_first + T dt on, which tonic
    leaves out (the last event always)."""
    import h5py

    root, store, frames = caches
    to_frame = tonic.transforms.ToFrame(sensor_size=(WIDTH, HEIGHT, 2), n_time_bins=T)
    checked = after = 0
    with h5py.File(frames[T, "time"]) as cache:
        assert cache.attrs["split_by"] == "time"
        for split, i, path, _ in samples(root, store):
            ours = cache[f"{split}/frames"][i].astype(np.int64)
            events = tonic_events(path)
            theirs = to_frame(events).astype(np.int64)
            assert theirs.shape == ours.shape
            np.testing.assert_array_equal(ours[:-1], theirs[:-1], err_msg=f"{path} T={T}")
            t = events["t"].astype(np.int64)
            tail = events[t >= t[0] + T * ((t[-1] - t[0]) // T)]
            assert len(tail) >= 1  # the last event, at least
            left_out = np.zeros_like(ours[-1])
            np.add.at(left_out, (tail["p"].astype(int), tail["y"], tail["x"]), 1)
            np.testing.assert_array_equal(ours[-1] - theirs[-1], left_out,
                                          err_msg=f"{path} T={T}")
            assert ours.sum() == len(events)  # no event lost
            checked += 1
            after += len(tail)
    assert checked >= 40
    assert frames_by_time_tally(frames[T, "time"]) == after


def frames_by_time_tally(cache):
    from snnflow.data.frames import after_the_windows

    return sum(n for n, _, _, _ in after_the_windows(cache).values())


@pytest.mark.parametrize("T", T_VALUES)
def test_frames_are_tonics_to_frame_plus_the_remainder_in_the_last_frame(caches, T):
    import h5py

    root, store, frames = caches
    to_frame = tonic.transforms.ToFrame(sensor_size=(WIDTH, HEIGHT, 2), n_event_bins=T)
    checked = 0
    with h5py.File(frames[T, "count"]) as cache:
        for split, i, path, _ in samples(root, store):
            ours = cache[f"{split}/frames"][i].astype(np.int64)
            events = tonic_events(path)
            theirs = to_frame(events).astype(np.int64)
            remainder = len(events) % T
            checked += 1
            if remainder == 0:  # T divides the event count: the same frames
                np.testing.assert_array_equal(ours, theirs, err_msg=f"{path} T={T}")
                continue
            # otherwise only the last frame differs, by the last n mod T events
            np.testing.assert_array_equal(ours[:-1], theirs[:-1], err_msg=f"{path} T={T}")
            left_out = np.zeros_like(ours[-1])
            tail = events[len(events) - remainder:]
            np.add.at(left_out, (tail["p"].astype(int), tail["y"], tail["x"]), 1)
            np.testing.assert_array_equal(ours[-1] - theirs[-1], left_out,
                                          err_msg=f"{path} T={T}")
    assert checked >= 40
