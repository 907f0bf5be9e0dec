"""The data-prep C kernels (snnflow/kernels/csrc/prep.c) against the numpy and zlib code they
replace, and the fallback when they cannot be built."""

import os
import subprocess
import sys
import zlib

import h5py
import numpy as np
import pytest

from conftest import REPO, make_nmnist_tree, random_events
from snnflow import SnnflowError
from snnflow.data import events, frames
from snnflow.data.events import build_event_store
from snnflow.data.frames import bin_codes, build_frame_cache, deflate
from snnflow.data.nmnist import EVENT_DTYPE, read_events, read_pixel_codes, write_events
from snnflow.kernels import prep


@pytest.fixture(params=["c", "numpy"])
def kernels(request, monkeypatch):
    """Run a test with the C kernels, then with the fallback."""
    if request.param == "c":
        assert prep.library() is not None, "the C kernels did not build (is cc installed?)"
    else:
        monkeypatch.setattr(prep, "library", lambda: None)
    return request.param


def byte_buffers(rng):
    """Inputs that exercise every branch of the encoder: empty, tiny, zero runs on each
    side of the 258-byte match limit, sparse and dense, skewed and uniform."""
    yield np.zeros(0, np.uint8)
    yield np.zeros(1, np.uint8)
    yield np.ones(1, np.uint8)
    yield np.full(1000, 7, np.uint8)
    yield rng.integers(0, 256, 50_000).astype(np.uint8)
    for run in (1, 2, 3, 4, 5, 257, 258, 259, 260, 261, 262, 516, 517, 518, 10_000):
        for lead in (0, 1):
            parts = [np.full(lead, 5), np.zeros(run), [9]]
            yield np.concatenate(parts).astype(np.uint8)
    for density in (0.0005, 0.02, 0.3, 0.95):
        for size in (7, 100, 1001, 70_001):
            mask = rng.random(size) < density
            yield (mask * rng.integers(1, 256, size)).astype(np.uint8)
            yield (mask * np.minimum(rng.geometric(0.6, size), 255)).astype(np.uint8)
    sparse = np.zeros(2_000_000, np.uint8)  # long runs and rare symbols: deep Huffman trees
    sparse[rng.integers(0, sparse.size, 2000)] = rng.integers(1, 256, 2000)
    yield sparse


def test_deflate_round_trips_through_zlib(kernels, rng):
    for data in byte_buffers(rng):
        assert zlib.decompress(deflate(data)) == data.tobytes()


def test_deflate_of_frames_matches_zlib_in_size(rng):
    ev = [random_events(rng, 4000) for _ in range(16)]
    chunk = np.stack([bin_codes(((e["p"].astype(int) * 34 + e["y"]) * 34 + e["x"]), 16)
                      for e in ev]).astype(np.uint8)
    ours = deflate(chunk)
    reference = zlib.compress(chunk.tobytes(), 6)
    assert zlib.decompress(ours) == chunk.tobytes()
    assert len(ours) < 1.1 * len(reference)


@pytest.mark.parametrize("T", [1, 4, 16, 32])
def test_chunk_binning_matches_the_per_sample_reference(kernels, rng, T):
    sizes = [0, 1, T - 1, T, T + 1, 4097] + list(rng.integers(1, 600, 13))
    codes = [rng.integers(0, 2 * 34 * 34, n).astype(np.uint16) for n in sizes]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in codes])]).astype(np.int64)
    flat = np.concatenate(codes)
    for start in (0, 16):  # a full chunk, then a partial one padded with zeros
        chunk = frames._bin_chunk(flat, offsets, start, T, np.uint8, "store.h5",
                                  frames.NMNIST_SHAPE).copy()
        for i in range(frames.SAMPLES_PER_CHUNK):
            expected = bin_codes(codes[start + i], T) if start + i < len(codes) else 0
            np.testing.assert_array_equal(chunk[i], expected)


def test_chunk_binning_reports_counts_that_overflow(kernels):
    codes = np.full(600, 77, np.uint16)  # 300 events on one pixel in each of 2 frames
    offsets = np.array([0, 600], np.int64)
    assert frames._bin_chunk(codes, offsets, 0, 2, np.uint8, "store.h5", frames.NMNIST_SHAPE) is None
    wide = frames._bin_chunk(codes, offsets, 0, 2, np.uint16, "store.h5", frames.NMNIST_SHAPE)
    assert wide[0].reshape(2, -1)[:, 77].tolist() == [300, 300]


def test_a_code_off_the_sensor_names_the_event_store():
    assert prep.library() is not None
    codes, offsets = np.array([5, 2312], np.uint16), np.array([0, 2], np.int64)
    with pytest.raises(SnnflowError, match="store.h5: holds a pixel code outside the sensor"):
        frames._bin_chunk(codes, offsets, 0, 1, np.uint8, "store.h5", frames.NMNIST_SHAPE)


def test_parsing_matches_the_numpy_reader(kernels, tmp_path, rng):
    paths, written = [], []
    for i, n in enumerate([1, 5, 4000, 33]):
        path = tmp_path / f"{i}.bin"
        written.append(random_events(rng, n))
        write_events(path, written[-1])
        paths.append(str(path))
    marker = bytes([0, 240, 0, 0, 0])  # a timestamp-overflow record: not an event
    data = (tmp_path / "0.bin").read_bytes()
    (tmp_path / "0.bin").write_bytes(marker + data + marker)
    codes, counts, no_times = events._parse_files(paths)
    expected = [read_pixel_codes(p) for p in paths]
    assert counts.tolist() == [len(e) for e in expected] and no_times is None
    np.testing.assert_array_equal(codes, np.concatenate(expected))
    codes, counts, times = events._parse_files(paths, with_times=True)
    np.testing.assert_array_equal(codes, np.concatenate(expected))
    # tonic's rule: the opening marker adds 2^13 us to the events after it
    written[0]["t"] += 1 << 13
    np.testing.assert_array_equal(times, np.concatenate([w["t"] for w in written]))
    np.testing.assert_array_equal(times, np.concatenate([read_events(p)["t"] for p in paths]))
    assert times.dtype == np.uint32


def test_a_timestamp_beyond_32_bits_is_refused_by_name(kernels, tmp_path):
    marker, event = bytes([0, 240, 0, 0, 0]), bytes([1, 1, 0x7F, 0xFF, 0xFF])
    (tmp_path / "late.bin").write_bytes(marker * (1 << 19) + event)
    with pytest.raises(SnnflowError, match="pass 32 bits") as err:
        events._parse_files([str(tmp_path / "late.bin")], with_times=True)
    assert str(tmp_path / "late.bin") in str(err.value)
    assert len(events._parse_files([str(tmp_path / "late.bin")])[0]) == 1  # codes need no time


@pytest.mark.parametrize("content, words", [
    (b"\x01\x02\x03\x04", "not a multiple of 5"),
    (b"", "empty file"),
    (bytes([1, 1, 0, 0, 0, 34, 0, 0, 0, 0]), "event 1 at x=34, y=0 lies outside"),
])
def test_bad_files_among_good_ones_are_named(kernels, tmp_path, rng, content, words):
    write_events(tmp_path / "good.bin", random_events(rng, 10))
    (tmp_path / "bad.bin").write_bytes(content)
    with pytest.raises(SnnflowError, match=words) as err:
        events._parse_files([str(tmp_path / "good.bin"), str(tmp_path / "bad.bin")])
    assert str(tmp_path / "bad.bin") in str(err.value)


def test_c_and_numpy_stages_write_the_same_caches(tmp_path, rng, monkeypatch):
    make_nmnist_tree(tmp_path / "raw", 3, rng, sizes=(1, 900), labels=[1, 7])
    hot = np.zeros(700, dtype=EVENT_DTYPE)  # forces the uint16 rebuild at T=2
    hot["x"], hot["y"], hot["p"], hot["t"] = 9, 4, 1, np.arange(700)
    write_events(tmp_path / "raw" / "Test" / "7" / "hot.bin", hot)

    def build(out):
        build_event_store(tmp_path / "raw", out / "events.h5", threads=2,
                          allow_missing_classes=True, with_times=True)
        return {(T, framing): build_frame_cache(out / "events.h5", T, out / f"T{T}{framing}.h5",
                                                threads=2, framing=framing)
                for T in (2, 16) for framing in ("count", "time")}

    assert prep.library() is not None
    dtypes = build(tmp_path / "c")
    monkeypatch.setattr(prep, "library", lambda: None)
    assert build(tmp_path / "numpy") == dtypes == {(2, "count"): np.uint16, (16, "count"): np.uint8,
                                                   (2, "time"): np.uint16, (16, "time"): np.uint8}
    for name in ("events.h5", "T2count.h5", "T16count.h5", "T2time.h5", "T16time.h5"):
        with h5py.File(tmp_path / "c" / name) as a, h5py.File(tmp_path / "numpy" / name) as b:
            for split in ("train", "test"):
                for key in a[split]:
                    np.testing.assert_array_equal(a[split][key][...], b[split][key][...])


def loader_in_fresh_process(env):
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from snnflow.kernels import prep; "
              "print('kernels:', prep.library() is not None)")
    return subprocess.run([sys.executable, "-c", script, str(REPO / "workflow")],
                          capture_output=True, text=True, env={**os.environ, **env})


def test_without_a_compiler_the_stages_fall_back(tmp_path):
    result = loader_in_fresh_process({"SNNFLOW_KERNEL_CACHE": str(tmp_path), "CC": "/bin/false"})
    assert result.returncode == 0 and "kernels: False" in result.stdout, result.stderr
    assert "snnflow_prep unavailable" in result.stderr and "numpy and zlib" in result.stderr
    assert list(tmp_path.glob("*/*.so")) == []  # no half-built library


def test_the_kernels_can_be_switched_off():
    result = loader_in_fresh_process({"SNNFLOW_KERNELS": "off"})
    assert "kernels: False" in result.stdout, result.stderr


def test_a_fresh_cache_builds_the_library(tmp_path):
    result = loader_in_fresh_process({"SNNFLOW_KERNEL_CACHE": str(tmp_path)})
    assert "kernels: True" in result.stdout, result.stderr
    assert len(list(tmp_path.glob("snnflow_prep-*/libsnnflow_prep.so"))) == 1
