"""tonic, the library an N-MNIST user knows, as the oracle of the data stages: the event
store holds exactly what `tonic.io.read_mnist_file` reads, and each frame cache what
`tonic.transforms.ToFrame(n_event_bins=T)` makes, but for the remainder: tonic's bins hold
n // T events each and leave the last n mod T out, where the study's last frame takes
them (docs/method.md). Checked on generated recordings and, where ../shared holds them,
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
    build_event_store(root / "nmnist", root / "events.h5", threads=2)
    frames = {T: root / f"nmnist_T{T}.h5" for T in T_VALUES}
    for T, path in frames.items():
        build_frame_cache(root / "events.h5", T, path, threads=2)
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
    for _, _, path, codes in samples(root, store):
        events = tonic_events(path)
        expected = (events["p"].astype(np.int64) * HEIGHT + events["y"]) * WIDTH + events["x"]
        np.testing.assert_array_equal(codes, expected, err_msg=str(path))
        checked += 1
    assert checked >= 40


@pytest.mark.parametrize("T", T_VALUES)
def test_frames_are_tonics_to_frame_plus_the_remainder_in_the_last_frame(caches, T):
    import h5py

    root, store, frames = caches
    to_frame = tonic.transforms.ToFrame(sensor_size=(WIDTH, HEIGHT, 2), n_event_bins=T)
    checked = 0
    with h5py.File(frames[T]) as cache:
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
