import os

import numpy as np
import pytest

from conftest import make_nmnist_tree, random_events
from snnflow import SnnflowError
from snnflow.data.events import build_event_store, open_event_store
from snnflow.data.nmnist import list_recordings, read_events, read_pixel_codes, write_events


def test_reader_round_trip(tmp_path, rng):
    events = random_events(rng, 1000)
    events["t"][-1] = (1 << 23) - 1  # the largest timestamp the format holds
    write_events(tmp_path / "a.bin", events)
    assert (tmp_path / "a.bin").stat().st_size == 5 * 1000
    np.testing.assert_array_equal(read_events(tmp_path / "a.bin"), events)


def test_bit_layout_of_one_event(tmp_path):
    # x=5, y=7, ON, t = 0x012345: bytes 05 07 (80|01) 23 45
    (tmp_path / "e.bin").write_bytes(bytes([5, 7, 0x81, 0x23, 0x45]))
    ev = read_events(tmp_path / "e.bin")
    assert (ev["x"][0], ev["y"][0], ev["p"][0], ev["t"][0]) == (5, 7, 1, 0x012345)
    assert read_pixel_codes(tmp_path / "e.bin")[0] == (1 * 34 + 7) * 34 + 5


def test_pixel_codes_match_events(tmp_path, rng):
    events = random_events(rng, 500)
    write_events(tmp_path / "a.bin", events)
    codes = read_pixel_codes(tmp_path / "a.bin")
    expected = (events["p"].astype(int) * 34 + events["y"]) * 34 + events["x"]
    np.testing.assert_array_equal(codes, expected)


def test_overflow_markers_are_not_events(tmp_path):
    raw = bytes([1, 2, 0, 0, 10]) + bytes([0, 240, 0, 0, 0]) + bytes([3, 4, 0x80, 0, 20])
    (tmp_path / "o.bin").write_bytes(raw)
    assert list(read_events(tmp_path / "o.bin")["x"]) == [1, 3]


@pytest.mark.parametrize("content, words", [
    (b"\x01\x02\x03\x04", "not a multiple of 5"),
    (b"", "empty file"),
    (bytes([34, 0, 0, 0, 0]), "outside the 34x34 sensor"),
    (bytes([0, 40, 0, 0, 0]), "outside the 34x34 sensor"),
])
def test_bad_recordings_are_refused_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    for reader in (read_events, read_pixel_codes):
        with pytest.raises(SnnflowError, match=words) as err:
            reader(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_recordings_are_listed_by_label_then_name(tmp_path, rng):
    for name in ("1/b.bin", "1/a.bin", "0/z.bin"):
        write_events(tmp_path / name, random_events(rng, 3))
    assert list_recordings(tmp_path, allow_missing_classes=True) == [
        ("0/z.bin", 0), ("1/a.bin", 1), ("1/b.bin", 1)]


def test_a_split_missing_a_class_is_refused_unless_allowed(tmp_path, rng):
    make_nmnist_tree(tmp_path, 1, rng, labels=[0, 1, 2, 3, 4, 5, 6, 8, 9])
    with pytest.raises(SnnflowError, match="Train: no recordings of class 7 - .*"
                                           "allow_missing_classes: true") as err:
        list_recordings(tmp_path / "Train")
    assert "\n" not in str(err.value)
    assert len(list_recordings(tmp_path / "Train", allow_missing_classes=True)) == 9


def test_a_file_name_that_is_not_utf8_is_named(tmp_path, rng):
    make_nmnist_tree(tmp_path, 1, rng)
    folder = os.fsencode(tmp_path / "Train" / "3")
    with open(os.path.join(folder, b"bad-\xff.bin"), "wb") as f:
        f.write(bytes(5))
    with pytest.raises(SnnflowError, match=r"Train/3/bad-\\xff.bin: the file name is not valid "
                                           "UTF-8 - rename the file"):
        list_recordings(tmp_path / "Train")


def test_bad_layouts_are_refused(tmp_path, rng):
    write_events(tmp_path / "Train" / "eleven" / "a.bin", random_events(rng, 3))
    with pytest.raises(SnnflowError, match="label folder must be one of 0-9"):
        list_recordings(tmp_path / "Train")
    (tmp_path / "Test" / "3").mkdir(parents=True)
    with pytest.raises(SnnflowError, match="no <label>/\\*.bin recordings"):
        list_recordings(tmp_path / "Test")
    with pytest.raises(SnnflowError, match="folder not found"):
        list_recordings(tmp_path / "missing")


def test_event_store_keeps_every_event_in_order(tmp_path, rng):
    written = make_nmnist_tree(tmp_path / "raw", 2, rng, labels=[0, 3])
    build_event_store(tmp_path / "raw", tmp_path / "events.h5", threads=2,
                      allow_missing_classes=True)
    with open_event_store(tmp_path / "events.h5") as h5:
        names = [n.decode() for n in h5["train/names"][...]]
        assert names == ["0/00000.bin", "0/00001.bin", "3/00000.bin", "3/00001.bin"]
        assert list(h5["train/labels"][...]) == [0, 0, 3, 3]
        offsets, codes = h5["train/offsets"][...], h5["train/codes"][...]
        for i, name in enumerate(names):
            ev = written[("Train", name)]
            expected = (ev["p"].astype(int) * 34 + ev["y"]) * 34 + ev["x"]
            np.testing.assert_array_equal(codes[offsets[i]:offsets[i + 1]], expected)


def test_a_failed_event_store_leaves_nothing(tmp_path, rng):
    make_nmnist_tree(tmp_path / "raw", 1, rng, labels=[0, 1])
    (tmp_path / "raw" / "Test" / "0" / "broken.bin").write_bytes(b"123")
    with pytest.raises(SnnflowError, match="broken.bin"):
        build_event_store(tmp_path / "raw", tmp_path / "out" / "events.h5",
                          allow_missing_classes=True)
    assert list((tmp_path / "out").iterdir()) == []


def test_framing_by_time_refuses_a_store_without_times_or_with_a_mismatched_one(tmp_path, rng):
    """A store of a study framed by count holds no timestamps; one whose times disagree
    with its codes is damaged: each is named, with what to do, and no cache is left."""
    import h5py

    from snnflow.data.frames import build_frame_cache

    make_nmnist_tree(tmp_path / "raw", 1, rng, labels=[0, 1])
    build_event_store(tmp_path / "raw", tmp_path / "events.h5", allow_missing_classes=True)
    with pytest.raises(SnnflowError, match="events.h5: holds no timestamps.*delete it"):
        build_frame_cache(tmp_path / "events.h5", 4, tmp_path / "frames.h5", framing="time")
    build_event_store(tmp_path / "raw", tmp_path / "timed.h5", allow_missing_classes=True,
                      with_times=True)
    with h5py.File(tmp_path / "timed.h5", "a") as h5:
        h5["test/times"].resize((len(h5["test/times"]) - 1,))
    with pytest.raises(SnnflowError, match="timed.h5: test/times holds a different number"):
        build_frame_cache(tmp_path / "timed.h5", 4, tmp_path / "frames.h5", framing="time")
    assert not (tmp_path / "frames.h5").exists()


def test_truncated_event_store_is_detected(tmp_path, rng):
    make_nmnist_tree(tmp_path / "raw", 1, rng, labels=[0, 1])
    build_event_store(tmp_path / "raw", tmp_path / "events.h5", allow_missing_classes=True)
    data = (tmp_path / "events.h5").read_bytes()
    (tmp_path / "events.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(SnnflowError, match="events.h5"):
        open_event_store(tmp_path / "events.h5")


def test_a_copy_of_a_single_class_is_refused_by_its_folder(tmp_path, rng):
    """A one-class study would report 100 % of nothing."""
    make_nmnist_tree(tmp_path / "raw", 2, rng, labels=[3])
    with pytest.raises(SnnflowError, match=r"raw/Train: every training sample is of class 3; a "
                                           r"classifier needs at least two classes"):
        build_event_store(tmp_path / "raw", tmp_path / "events.h5", allow_missing_classes=True)
    assert not (tmp_path / "events.h5").exists()
