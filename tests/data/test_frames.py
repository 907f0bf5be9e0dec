import h5py
import numpy as np
import pytest

from conftest import make_nmnist_tree, random_events
from snnflow import SnnflowError
from snnflow.data.events import build_event_store
from snnflow.data.caches import load_frames
from snnflow.data.frames import bin_codes, build_frame_cache
from snnflow.data.nmnist import write_events


def reference_frames(x, y, p, T):
    """Straight from the method: T runs of n // T events, the last frame also takes
    the n mod T remainder; one event at a time."""
    n = len(x)
    frames = np.zeros((T, 2, 34, 34), dtype=np.int64)
    per_frame = n // T
    for i in range(n):
        k = T - 1 if per_frame == 0 else min(i // per_frame, T - 1)
        frames[k, p[i], y[i], x[i]] += 1
    return frames


def codes_of(events):
    return ((events["p"].astype(np.int64) * 34 + events["y"]) * 34 + events["x"]).astype(np.uint16)


@pytest.mark.parametrize("n", [1, 3, 15, 16, 17, 100, 1001, 4097])
@pytest.mark.parametrize("T", [1, 4, 8, 16, 32])
def test_binning_matches_the_reference(rng, n, T):
    ev = random_events(rng, n)
    frames = bin_codes(codes_of(ev), T)
    np.testing.assert_array_equal(frames, reference_frames(ev["x"], ev["y"], ev["p"], T))
    assert frames.sum() == n


def test_remainder_goes_to_the_last_frame(rng):
    ev = random_events(rng, 10)
    counts = bin_codes(codes_of(ev), 4).reshape(4, -1).sum(1)
    assert list(counts) == [2, 2, 2, 4]


def test_fewer_events_than_frames_all_land_in_the_last_frame(rng):
    counts = bin_codes(codes_of(random_events(rng, 3)), 8).reshape(8, -1).sum(1)
    assert list(counts) == [0] * 7 + [3]


def test_polarity_and_axis_order():
    ev = np.zeros(1, dtype=[("x", "u2"), ("y", "u2"), ("t", "u4"), ("p", "u1")])
    ev["x"], ev["y"], ev["p"] = 3, 7, 1
    frames = bin_codes(codes_of(ev), 2)
    assert frames[1, 1, 7, 3] == 1 and frames.sum() == 1
    ev["p"] = 0
    assert bin_codes(codes_of(ev), 2)[1, 0, 7, 3] == 1


def test_frame_cache_from_real_format_files(tmp_path, rng):
    written = make_nmnist_tree(tmp_path / "raw", 2, rng, sizes=(1, 300), labels=[2, 5])
    build_event_store(tmp_path / "raw", tmp_path / "events.h5", allow_missing_classes=True)
    for T in (4, 16):
        out = tmp_path / f"nmnist_T{T}.h5"
        assert build_frame_cache(tmp_path / "events.h5", T, out, threads=2) == np.uint8
        with h5py.File(out) as h5:
            assert h5.attrs["T"] == T and h5.attrs["split_by"] == "number"
            assert list(h5.attrs["sensor_size"]) == [34, 34, 2]
            for split, folder in (("train", "Train"), ("test", "Test")):
                frames = h5[f"{split}/frames"][...]
                assert frames.shape == (4, T, 2, 34, 34) and frames.dtype == np.uint8
                names = [n.decode() for n in h5[f"{split}/names"][...]]
                assert names == ["2/00000.bin", "2/00001.bin", "5/00000.bin", "5/00001.bin"]
                assert list(h5[f"{split}/labels"][...]) == [2, 2, 5, 5]
                for i, name in enumerate(names):
                    ev = written[(folder, name)]
                    np.testing.assert_array_equal(
                        frames[i], reference_frames(ev["x"], ev["y"], ev["p"], T))


def test_counts_above_255_switch_to_uint16_never_clip(tmp_path, rng):
    make_nmnist_tree(tmp_path / "raw", 1, rng, labels=[0, 1])
    hot = np.zeros(700, dtype=[("x", "u2"), ("y", "u2"), ("t", "u4"), ("p", "u1")])
    hot["x"], hot["y"], hot["p"], hot["t"] = 9, 4, 1, np.arange(700)
    write_events(tmp_path / "raw" / "Train" / "0" / "hot.bin", hot)
    build_event_store(tmp_path / "raw", tmp_path / "events.h5", allow_missing_classes=True)
    assert build_frame_cache(tmp_path / "events.h5", 2, tmp_path / "f.h5") == np.uint16
    frames, labels = load_frames(tmp_path / "f.h5", "train")
    assert frames.dtype == np.uint16 and frames[1, 1, 1, 4, 9] == 350
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_more_counts_than_uint16_holds_name_the_recording(tmp_path, rng):
    make_nmnist_tree(tmp_path / "raw", 1, rng)
    hot = np.zeros(70_000, dtype=[("x", "u2"), ("y", "u2"), ("t", "u4"), ("p", "u1")])
    hot["x"], hot["y"], hot["p"] = 5, 6, 1
    write_events(tmp_path / "raw" / "Test" / "4" / "hot.bin", hot)
    build_event_store(tmp_path / "raw", tmp_path / "events.h5")
    assert build_frame_cache(tmp_path / "events.h5", 2, tmp_path / "f2.h5") == np.uint16
    with pytest.raises(SnnflowError, match=r"raw/Test/4/hot.bin: 70000 events in one pixel of "
                                           r"one frame at T=1, more than the 65535"):
        build_frame_cache(tmp_path / "events.h5", 1, tmp_path / "f1.h5")
    assert not (tmp_path / "f1.h5").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_damaged_frame_caches_are_refused(tmp_path, rng):
    make_nmnist_tree(tmp_path / "raw", 1, rng, labels=[0, 1])
    build_event_store(tmp_path / "raw", tmp_path / "events.h5", allow_missing_classes=True)
    build_frame_cache(tmp_path / "events.h5", 4, tmp_path / "f.h5")
    data = (tmp_path / "f.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(SnnflowError, match="cut.h5"):
        load_frames(tmp_path / "cut.h5", "train")
    with h5py.File(tmp_path / "f.h5", "a") as h5:
        del h5["test/labels"]
    with pytest.raises(SnnflowError, match="f.h5: incomplete file .*test/labels"):
        load_frames(tmp_path / "f.h5", "test")
