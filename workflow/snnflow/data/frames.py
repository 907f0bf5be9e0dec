"""Binning events into T frames, by event count or by time, and the per-T frame caches.

By count (config dataset.framing: count, the reference study's, SpikingJelly's
split_by='number'): the n events of a sample are split, in file order, into T runs of
n // T events; the last frame also takes the n mod T remainder, so no event is lost
(when n < T every event lands in the last frame).

By time (framing: time, SpikingJelly's split_by='time'): T windows of
dt = (t_last - t_first) // T microseconds from the sample's first event, frame k holding
the events with t_first + k dt <= t < t_first + (k + 1) dt; the last frame also takes the
events from t_first + T dt on (the last event always among them), so again no event is
lost, and a sample shorter than T microseconds (dt = 0) has every event in its last
frame. tonic's ToFrame(n_time_bins=T) makes the same windows but leaves those last events
out. Timestamps are taken as they come, non-decreasing in a recording (as both libraries
take them); an earlier one than the first event's counts in the first frame.

Frame k counts events per (polarity, y, x);
channel 0 is OFF (p = 0), channel 1 is ON. With a frame size (config `dataset.size`)
smaller than the sensor, each event counts in the pixel of the coarser grid that holds
it (x * w // W, y * h // H): the events of each block of pixels are summed.

The caches are dense (N, T, P, H, W) datasets (N-MNIST: (N, T, 2, 34, 34)) in chunks
of 16 samples, each compressed as a zlib stream (HDF5's gzip filter) and written
directly. On N-MNIST's sensor the C kernels (snnflow.kernels.prep) bin a chunk and
compress it in time proportional to its events; elsewhere, and without them, numpy and
zlib produce the same frames.
"""

import json
import threading
import zlib
from pathlib import Path

import numpy as np

from snnflow import SnnflowError
from snnflow.jobs.atomic import atomic_path
from snnflow.data.events import has_times, open_event_store, sensor_and_classes
from snnflow.data.identity import derived
from snnflow.data.nmnist import HEIGHT, POLARITIES, SPLITS, WIDTH
from snnflow.data.parallel import ordered_map
from snnflow.kernels import prep
from snnflow.device.machine import memory_bytes, size_text

NMNIST_SHAPE = (POLARITIES, HEIGHT, WIDTH)
# config dataset.framing -> the cache's split_by attribute (SpikingJelly's names)
SPLIT_BY = {"count": "number", "time": "time"}
SAMPLES_PER_CHUNK = 16
DEFLATE_LEVEL = 1


def frame_of_each_event(n, T):
    """Frame index of each of n events in order (see the module docstring)."""
    per_frame = n // T
    if per_frame == 0:
        return np.full(n, T - 1, dtype=np.intp)
    index = np.repeat(np.arange(T, dtype=np.intp), per_frame)
    return np.concatenate([index, np.full(n - index.size, T - 1, dtype=np.intp)])


def frame_of_each_event_by_time(times, T):
    """Frame index of each event of one sample framed by time (see the module docstring)."""
    t = np.asarray(times, dtype=np.int64)
    dt = (t[-1] - t[0]) // T if t.size else 0
    if dt <= 0:
        return np.full(t.size, T - 1, dtype=np.intp)
    return np.clip((t - t[0]) // dt, 0, T - 1).astype(np.intp)


def bin_codes(codes, T, shape=NMNIST_SHAPE, times=None):
    """Count one sample's pixel codes into a (T, *shape) int64 array: by event count, or
    by time given each event's timestamp (`times`)."""
    pixels = int(np.prod(shape))
    frame = frame_of_each_event(len(codes), T) if times is None else \
        frame_of_each_event_by_time(times, T)
    flat = frame * pixels
    flat += codes
    return np.bincount(flat, minlength=T * pixels).reshape(T, *shape)


def frame_shape(sensor, size=None):
    """(P, h, w) of the frames of a sensor (W, H, P) at frame size `size` (None: the
    sensor's; an int: size x size; or [height, width])."""
    width, height, polarities = sensor
    if size is None:
        return polarities, height, width
    h, w = (size, size) if isinstance(size, int) else size
    if h > height or w > width:
        raise SnnflowError(f"config key dataset.size: {size} is larger than the sensor's "
                           f"{height} x {width} (height x width); events are summed into a "
                           "coarser grid, never spread over a finer one - set it to at most "
                           f"[{height}, {width}], or null for the sensor's own")
    return polarities, h, w


def coarse_codes(sensor, shape):
    """The pixel code in frames of `shape` of each pixel code of `sensor`, or None where
    they are the same grid."""
    width, height, polarities = sensor
    _, h, w = shape
    if (h, w) == (height, width):
        return None
    p, y, x = np.indices((polarities, height, width)).reshape(3, -1)
    return ((p * h + y * h // height) * w + x * w // width).astype(np.int64)


_workspace = threading.local()


def _buffer(name, shape, dtype):
    """A buffer of this thread reused from chunk to chunk (a fresh large buffer costs
    a page fault per 4 KiB)."""
    buffer = getattr(_workspace, name, None)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = np.empty(shape, dtype)
        setattr(_workspace, name, buffer)
    return buffer


def deflate(array):
    """A zlib stream of the array's bytes, as HDF5's gzip filter reads it. The C kernel
    skips zero runs eight bytes at a time; zlib's fallback uses its run-length
    strategy, which beat level-1 deflate and LZF on frames (docs/data.md)."""
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    lib = prep.library()
    if lib is None:
        compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
        return compressor.compress(data) + compressor.flush()
    out = _buffer("deflated", (lib.zlib_sparse_bound(data.size),), np.uint8)
    tokens = _buffer("tokens", (max(data.size, 1),), np.uint16)
    size = lib.zlib_sparse(data.ctypes.data, data.size, out.ctypes.data, tokens.ctypes.data)
    return out[:size].tobytes()


def _bin_chunk(codes, offsets, start, T, dtype, store_path, shape, times=None):
    """Frames of the SAMPLES_PER_CHUNK samples from `start` (zero samples past the
    end), in this thread's buffer; None when a count does not fit `dtype`. `codes` are
    already in the frames' grid; `times`: framed by time (numpy), else by count."""
    count = min(SAMPLES_PER_CHUNK, len(offsets) - 1 - start)
    frames = _buffer("frames", (SAMPLES_PER_CHUNK, T, *shape), dtype)
    lib = (prep.library() if shape == NMNIST_SHAPE and codes.dtype == np.uint16
           and (times is None or times.dtype == np.uint32) else None)
    if lib is not None and dtype in (np.uint8, np.uint16):
        if times is None:
            status = lib.bin_frames(codes.ctypes.data, offsets.ctypes.data, start, count, T,
                                    frames.itemsize, frames.ctypes.data, SAMPLES_PER_CHUNK)
        else:
            status = lib.bin_frames_by_time(codes.ctypes.data, times.ctypes.data,
                                            offsets.ctypes.data, start, count, T,
                                            frames.itemsize, frames.ctypes.data,
                                            SAMPLES_PER_CHUNK)
        if status == -2:
            raise SnnflowError(f"{store_path}: holds a pixel code outside the sensor - "
                               "delete it and rerun the workflow to rebuild it")
        return None if status == -1 else frames
    frames[count:] = 0
    limit = np.iinfo(dtype).max
    for i in range(count):
        first, stop = offsets[start + i], offsets[start + i + 1]
        n = int(stop - first)
        counts = bin_codes(codes[first:stop], T, shape,
                           None if times is None else times[first:stop])
        # by count, the largest frame holds n // T + n % T events
        if (times is not None or n // T + n % T > limit) and counts.max(initial=0) > limit:
            return None
        frames[i] = counts
    return frames


def _write_split(h5, store, split, T, dtype, workers, shape, remap, framing):
    """Bin one split into `h5` in frames of `shape` (codes mapped through `remap` when
    not None); returns the first sample of a chunk holding a count that does not fit
    `dtype`, else None."""
    from snnflow.data.caches import read_dataset

    codes, offsets = read_dataset(store, f"{split}/codes"), read_dataset(store, f"{split}/offsets")
    times = read_dataset(store, f"{split}/times") if framing == "time" else None
    sensor_pixels = len(remap) if remap is not None else int(np.prod(shape))
    if codes.size and int(codes.max()) >= sensor_pixels:
        raise SnnflowError(f"{store.filename}: holds a pixel code outside the sensor - "
                           "delete it and rerun the workflow to rebuild it")
    if remap is not None:
        codes = remap[codes]
    n = len(offsets) - 1
    frames = h5.create_dataset(f"{split}/frames", shape=(n, T, *shape), dtype=dtype,
                               chunks=(SAMPLES_PER_CHUNK, T, *shape),
                               maxshape=(None, T, *shape),  # a chunk may exceed n
                               compression="gzip", compression_opts=DEFLATE_LEVEL)

    def compressed_chunk(start):
        chunk = _bin_chunk(codes, offsets, start, T, dtype, store.filename, shape, times)
        return None if chunk is None else deflate(chunk)

    starts = range(0, n, SAMPLES_PER_CHUNK)
    for start, chunk in zip(starts, ordered_map(compressed_chunk, starts, workers)):
        if chunk is None:
            return start
        frames.id.write_direct_chunk((start, 0, 0, 0, 0), chunk)
    h5[f"{split}/labels"] = store[f"{split}/labels"][...]
    h5[f"{split}/names"] = store[f"{split}/names"][...]
    if times is not None:  # for the job's log (after_the_windows), from the times in memory
        after, short = _tally_after_windows(times, offsets, T)
        frames.attrs.update(events=len(times), events_after_windows=after,
                            samples_shorter_than_T=short)
    return None


def build_frame_cache(store_path, T, out_path, threads=1, code="", size=None, framing="count"):
    """Write `out_path` with train/test frames (N, T, P, H, W), labels and names; its
    `identity` is derived from the store's, T, the frame size, the framing and `code` (the
    job's code fingerprint). `size`: the frames' grid (frame_shape), None for the sensor's;
    `framing`: "count" or "time" (the module docstring; time needs a store with times).

    Counts are stored as uint8, or wider when any count needs it (never clipped): uint16
    for N-MNIST, whose recordings hold a few thousand events, so that a count beyond it
    is refused by name; up to uint32 for the other datasets.
    """
    import h5py

    with open_event_store(store_path) as store:
        sensor, classes = sensor_and_classes(store)
        if framing == "time" and not has_times(store):
            raise SnnflowError(f"{store_path}: holds no timestamps, which framing by time "
                               "needs - delete it and rerun the workflow to rebuild it")
        shape = frame_shape(sensor, size)
        _refuse_a_cache_no_training_could_hold(store, T, shape)
        remap = coarse_codes(sensor, shape)
        widths = ((np.uint8, np.uint16) if store.attrs.get("dataset") == "nmnist"
                  else (np.uint8, np.uint16, np.uint32))
        for dtype in widths:
            try:
                with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
                    h5.attrs.update(T=T, split_by=SPLIT_BY[framing],
                                    layout="frames[n, t, p, y, x]",
                                    sensor_size=sensor, frame_size=shape[1:],
                                    classes=json.dumps(classes),
                                    dataset=store.attrs.get("dataset", "nmnist"),
                                    source=store.attrs["source"],
                                    identity=derived(store.attrs["identity"], f"T={T}",
                                                     *([f"size={shape[1:]}"] if remap is not None
                                                       else []),
                                                     *([f"framing={framing}"]
                                                       if framing != "count" else []), code))
                    for split in SPLITS:
                        start = _write_split(h5, store, split, T, dtype, threads, shape, remap,
                                             framing)
                        if start is not None:
                            raise _CountOverflow(split, start)
                return np.dtype(dtype)
            except _CountOverflow as overflow:
                split, start = overflow.args
        raise _too_many_events(store, split, start, T, remap, shape, dtype, framing)


def _tally_after_windows(times, offsets, T):
    """(events after the T windows, samples shorter than T microseconds) of one split
    framed by time: what the last frame takes beyond its window (see the module
    docstring)."""
    first = times[offsets[:-1]].astype(np.int64)
    last = times[offsets[1:] - 1].astype(np.int64)
    tail_start = first + T * ((last - first) // T)
    after = 0
    for i in range(0, len(first), 4096):  # a block of samples: bounded memory
        block = slice(i, min(i + 4096, len(first)))
        starts = np.repeat(tail_start[block], np.diff(offsets[i:block.stop + 1]))
        after += int((times[offsets[i]:offsets[block.stop]] >= starts).sum())
    return after, int((last - first < T).sum())


def after_the_windows(cache_path):
    """{split: (events after the T windows, events, samples shorter than T microseconds,
    samples)} of a frame cache framed by time, as build_frame_cache recorded them."""
    from snnflow.data.caches import open_checked

    with open_checked(cache_path, [f"{split}/frames" for split in SPLITS]) as h5:
        return {split: tuple(int(h5[f"{split}/frames"].attrs[key]) for key in
                             ("events_after_windows", "events"))
                + (int(h5[f"{split}/frames"].attrs["samples_shorter_than_T"]),
                   len(h5[f"{split}/frames"]))
                for split in SPLITS}


def fewer_events_than(store_path, T):
    """{split: (samples with fewer events than T, samples)} of an event store: all their
    frames but the last are empty (each frame holds n // T of a sample's n events, the
    last the remainder)."""
    from snnflow.data.caches import read_dataset

    with open_event_store(store_path) as store:
        counts = {split: np.diff(read_dataset(store, f"{split}/offsets")) for split in SPLITS}
    return {split: (int((n < T).sum()), len(n)) for split, n in counts.items()}


def _refuse_a_cache_no_training_could_hold(store, T, shape):
    """A training job holds its whole frame cache in memory, at least one byte a count:
    refuse a T whose cache is larger than this machine's memory before writing any of it."""
    n = sum(len(store[f"{split}/offsets"]) - 1 for split in SPLITS)
    frame = int(np.prod(shape))
    needed = n * T * frame
    total, _ = memory_bytes()
    if total is not None and needed > total:
        smaller = "" if store.attrs.get("dataset") == "nmnist" else " or a smaller dataset.size"
        raise SnnflowError(f"config key snn.T: {T} makes a frame cache of {size_text(needed)} "
                           f"({n} recordings x {T} frames x {frame} bytes), "
                           f"which the training job holds in memory, and this machine has "
                           f"{size_text(total)} - lower T{smaller}")


def _too_many_events(store, split, start, T, remap, shape, dtype, framing):
    """The error naming the recording of the chunk from `start` whose count overflows."""
    limit = np.iinfo(dtype).max
    codes, offsets = store[f"{split}/codes"], store[f"{split}/offsets"][...]
    nmnist = store.attrs.get("dataset") == "nmnist"
    for i in range(start, min(start + SAMPLES_PER_CHUNK, len(offsets) - 1)):
        sample = codes[offsets[i]:offsets[i + 1]]
        times = store[f"{split}/times"][offsets[i]:offsets[i + 1]] if framing == "time" else None
        count = int(bin_codes(sample if remap is None else remap[sample], T, shape,
                              times).max(initial=0))
        if count > limit:
            name = store[f"{split}/names"][i]
            name = name.decode() if isinstance(name, bytes) else name
            path = Path(store.attrs["source"]) / (SPLITS[split] if nmnist else "") / name
            why = ("a real N-MNIST recording has a few thousand events in all - remove the file "
                   "or replace it with a good copy" if nmnist else "- raise T or remove the file")
            return SnnflowError(f"{path}: {count} events in one pixel of one frame at T={T}, "
                                f"more than the {limit} a frame cache holds; {why}")
    return SnnflowError(f"{store.filename}: a count does not fit {np.dtype(dtype).name} - "
                        "delete it and rerun")


class _CountOverflow(Exception):
    """A count of (split, chunk start) exceeded the dtype being written; the cache is
    rebuilt wider."""
