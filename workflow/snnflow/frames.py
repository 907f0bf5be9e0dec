"""Binning events into T frames by event count, and the per-T frame caches.

The n events of a sample are split, in file order, into T runs of n // T events;
the last frame also takes the n mod T remainder, so no event is lost (when n < T
every event lands in the last frame). Frame k counts events per (polarity, y, x);
channel 0 is OFF (p = 0), channel 1 is ON.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .atomic import atomic_path
from .caches import load_split
from .events import HEIGHT, PIXELS_PER_FRAME, POLARITIES, SPLITS, WIDTH, open_event_store

FRAME_SHAPE = (POLARITIES, HEIGHT, WIDTH)
SAMPLES_PER_CHUNK = 64


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


def _bin_chunk(codes, offsets, T, dtype):
    """Frames of consecutive samples whose events are `codes`; also the largest count."""
    frames = np.empty((len(offsets) - 1, T, *FRAME_SHAPE), dtype=dtype)
    bounds = offsets - offsets[0]
    peak = 0
    for i in range(len(frames)):
        counts = bin_codes(codes[bounds[i]:bounds[i + 1]], T)
        peak = max(peak, int(counts.max(initial=0)))
        frames[i] = counts
    return frames, peak


def _write_split(h5, store, split, T, dtype, threads):
    """Bin one split into `h5`; returns False when a count does not fit `dtype`."""
    offsets = store[f"{split}/offsets"][...]
    n = len(offsets) - 1
    frames = h5.create_dataset(f"{split}/frames", shape=(n, T, *FRAME_SHAPE), dtype=dtype,
                               chunks=(min(max(n, 1), SAMPLES_PER_CHUNK), T, *FRAME_SHAPE),
                               compression="lzf")
    starts = range(0, n, SAMPLES_PER_CHUNK)
    codes = store[f"{split}/codes"]

    def job(start):
        stop = min(start + SAMPLES_PER_CHUNK, n)
        chunk_offsets = offsets[start:stop + 1]
        return start, _bin_chunk(codes[chunk_offsets[0]:chunk_offsets[-1]], chunk_offsets, T, dtype)

    limit = np.iinfo(dtype).max
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for start, (chunk, peak) in pool.map(job, starts):
            if peak > limit:
                return False
            frames[start:start + len(chunk)] = chunk
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
