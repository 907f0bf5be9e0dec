"""Binning events into T frames by event count, and the per-T frame caches.

The n events of a sample are split, in file order, into T runs of n // T events;
the last frame also takes the n mod T remainder, so no event is lost (when n < T
every event lands in the last frame). Frame k counts events per (polarity, y, x);
channel 0 is OFF (p = 0), channel 1 is ON.
"""

import zlib

import numpy as np

from .atomic import atomic_path
from .caches import load_split
from .events import HEIGHT, PIXELS_PER_FRAME, POLARITIES, SPLITS, WIDTH, open_event_store
from .parallel import ordered_map

FRAME_SHAPE = (POLARITIES, HEIGHT, WIDTH)
SAMPLES_PER_CHUNK = 16
DEFLATE_LEVEL = 1


def frame_of_each_event(n, T):
    """Frame index of each of n events in order (see the module docstring)."""
    per_frame = n // T
    if per_frame == 0:
        return np.full(n, T - 1, dtype=np.intp)
    index = np.repeat(np.arange(T, dtype=np.intp), per_frame)
    return np.concatenate([index, np.full(n - index.size, T - 1, dtype=np.intp)])


def bin_codes(codes, T):
    """Count one sample's pixel codes into a (T, 2, 34, 34) int64 array."""
    flat = frame_of_each_event(len(codes), T) * PIXELS_PER_FRAME
    flat += codes
    return np.bincount(flat, minlength=T * PIXELS_PER_FRAME).reshape(T, *FRAME_SHAPE)


# Set in the parent before the workers fork, so they read the events without pickling.
_SHARED = {}


def _deflate(array):
    """zlib stream as HDF5's gzip filter reads it; run-length strategy: mostly-zero
    frames compress ~25x, faster than both level-1 deflate and LZF (README)."""
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    return compressor.compress(memoryview(array).cast("B")) + compressor.flush()


def _bin_chunk(start):
    """Frames of the samples of the chunk at `start`, compressed; also the largest count
    (0 when no count can exceed the dtype, which then needs no check)."""
    codes, offsets, T, dtype = (_SHARED[k] for k in ("codes", "offsets", "T", "dtype"))
    stop = min(start + SAMPLES_PER_CHUNK, len(offsets) - 1)
    frames = np.zeros((SAMPLES_PER_CHUNK, T, *FRAME_SHAPE), dtype=dtype)  # padded chunk
    limit = np.iinfo(dtype).max
    peak = 0
    for i in range(start, stop):
        n = int(offsets[i + 1] - offsets[i])
        counts = bin_codes(codes[offsets[i]:offsets[i + 1]], T)
        if n // T + n % T > limit:  # the largest frame holds n // T + n % T events
            peak = max(peak, int(counts.max(initial=0)))
        frames[i - start] = counts
    return peak, _deflate(frames)


def _write_split(h5, store, split, T, dtype, workers):
    """Bin one split into `h5`; returns False when a count does not fit `dtype`."""
    _SHARED.update(codes=store[f"{split}/codes"][...], offsets=store[f"{split}/offsets"][...],
                   T=T, dtype=dtype)
    n = len(_SHARED["offsets"]) - 1
    frames = h5.create_dataset(f"{split}/frames", shape=(n, T, *FRAME_SHAPE), dtype=dtype,
                               chunks=(SAMPLES_PER_CHUNK, T, *FRAME_SHAPE),
                               maxshape=(None, T, *FRAME_SHAPE),  # a chunk may exceed n
                               compression="gzip", compression_opts=DEFLATE_LEVEL)
    limit = np.iinfo(dtype).max
    try:
        starts = range(0, n, SAMPLES_PER_CHUNK)
        for start, (peak, chunk) in zip(starts, ordered_map(_bin_chunk, starts, workers)):
            if peak > limit:
                return False
            frames.id.write_direct_chunk((start, 0, 0, 0, 0), chunk)
    finally:
        _SHARED.clear()
    h5[f"{split}/labels"] = store[f"{split}/labels"][...]
    h5[f"{split}/names"] = store[f"{split}/names"][...]
    return True


def build_frame_cache(store_path, T, out_path, threads=1):
    """Write `out_path` with train/test frames (N, T, 2, 34, 34), labels and names.

    Counts are stored as uint8, or uint16 when any count exceeds 255 (never clipped).
    """
    import h5py

    with open_event_store(store_path) as store:
        for dtype in (np.uint8, np.uint16):
            try:
                with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
                    h5.attrs.update(T=T, split_by="number", layout="frames[n, t, p, y, x]",
                                    sensor_size=(WIDTH, HEIGHT, POLARITIES),
                                    source=store.attrs["source"])
                    for split in SPLITS:
                        if not _write_split(h5, store, split, T, dtype, threads):
                            raise _CountOverflow
                return np.dtype(dtype)
            except _CountOverflow:
                continue
    raise AssertionError("a pixel cannot count 65536 events in one frame of N-MNIST")


class _CountOverflow(Exception):
    """A count exceeded the dtype being written; the cache is rebuilt wider."""


def load_frames(path, split):
    """(frames, labels) of one split of a frame cache, checked."""
    return load_split(path, split, "frames", attrs=("T",))
