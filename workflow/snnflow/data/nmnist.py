"""The N-MNIST recording format and its folders: the pure core that every data stage and
the synthetic data share (no compiled code, no HDF5).

An N-MNIST `.bin` file is a sequence of 5-byte (40-bit) events:
byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity (1 = ON), and the remaining
23 bits of bytes 2-4 = timestamp in microseconds. A record with y == 240 is a
timestamp-overflow marker, not an event, which adds 2^13 us to the timestamps of the
events after it (the same rules as tonic's reader).
A split is a folder `<label>/*.bin` with label 0-9.
"""

import os
from pathlib import Path

import numpy as np

from snnflow import SnnflowError

WIDTH = HEIGHT = 34
POLARITIES = 2
PIXELS_PER_FRAME = POLARITIES * HEIGHT * WIDTH
OVERFLOW_Y = 240
TIME_OVERFLOW_US = 1 << 13  # what an overflow marker adds to the later timestamps
RECORD_BYTES = 5
SPLITS = {"train": "Train", "test": "Test"}
LABELS = [str(d) for d in range(10)]

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<u4"), ("p", "u1")])


def unreadable(path, err):
    """The one-line error of a recording the system cannot read."""
    return SnnflowError(f"{path}: cannot be read ({err.strerror or err}) - make it readable, "
                        "or remove it if it is not a recording")


def is_recording(entry):
    """Whether a directory entry is a `.bin` file; one that cannot even be examined (a
    link loop, say) is refused by name rather than skipped."""
    if not entry.name.endswith(".bin"):
        return False
    try:
        return entry.is_file()
    except OSError as err:
        raise unreadable(entry.path, err) from None


def _records(path):
    """The event records of one recording (overflow markers left out) and each one's
    timestamp in microseconds: tonic's rule, each overflow marker adding
    TIME_OVERFLOW_US to the timestamps of the events after it."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise unreadable(path, err) from None
    if raw.size == 0:
        raise SnnflowError(f"{path}: empty file; an N-MNIST recording always holds events "
                           "- replace it with a good copy or remove it")
    if raw.size % RECORD_BYTES:
        raise SnnflowError(f"{path}: {raw.size} bytes is not a multiple of {RECORD_BYTES} "
                           "(truncated or not an N-MNIST .bin) - replace it with a good copy")
    records = raw.reshape(-1, RECORD_BYTES)
    rec64 = records.astype(np.int64)
    times = ((rec64[:, 2] & 0x7F) << 16) | (rec64[:, 3] << 8) | rec64[:, 4]
    overflow = records[:, 1] == OVERFLOW_Y
    if overflow.any():
        times += np.cumsum(overflow) * TIME_OVERFLOW_US
        records, times = records[~overflow], times[~overflow]
    return records, times


def _check_sensor(path, x, y):
    if x.size and (x.max() >= WIDTH or y.max() >= HEIGHT):
        bad = int(np.argmax((x >= WIDTH) | (y >= HEIGHT)))
        raise SnnflowError(f"{path}: event {bad} at x={x[bad]}, y={y[bad]} lies outside the "
                           f"{WIDTH}x{HEIGHT} sensor - the file is corrupt or not N-MNIST")


def read_events(path):
    """All events of one recording as a structured array (x, y, t, p)."""
    rec, times = _records(path)
    x, y = rec[:, 0], rec[:, 1]
    _check_sensor(path, x, y)
    events = np.empty(len(rec), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"] = x, y, rec[:, 2] >> 7
    events["t"] = _times32(path, times)
    return events


def read_pixel_codes(path, with_times=False):
    """The events of one recording as pixel codes `(p * 34 + y) * 34 + x`, file order;
    with_times: (codes, each event's timestamp in microseconds as uint32)."""
    rec, times = _records(path)
    x, y = rec[:, 0], rec[:, 1]
    _check_sensor(path, x, y)
    codes = np.right_shift(rec[:, 2], 7, dtype=np.uint16)
    codes *= HEIGHT * WIDTH
    codes += y.astype(np.uint16) * WIDTH
    codes += x
    return (codes, _times32(path, times)) if with_times else codes


def _times32(path, times):
    if times.size and times.max() > np.iinfo(np.uint32).max:
        raise SnnflowError(f"{path}: holds so many timestamp-overflow markers that its "
                           "timestamps pass 32 bits - the file is corrupt or not N-MNIST")
    return times.astype(np.uint32)


def write_events(path, events):
    """Write events (structured array with x, y, t, p) as an N-MNIST .bin file."""
    events = np.asarray(events)
    t = events["t"].astype(np.uint32)
    if t.size and t.max() >= 1 << 23:
        raise ValueError("N-MNIST timestamps have 23 bits")
    rec = np.empty((len(events), RECORD_BYTES), dtype=np.uint8)
    rec[:, 0] = events["x"]
    rec[:, 1] = events["y"]
    rec[:, 2] = (events["p"].astype(np.uint32) << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rec.tofile(path)


def list_recordings(split_dir, allow_missing_classes=False):
    """(relative name, label) of every .bin under `split_dir/<label>/`, sorted by label
    folder then file name, which is the sample order of every cache. A split must hold
    every class unless `allow_missing_classes` (a deliberate subset)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise SnnflowError(f"{split_dir}: folder not found - N-MNIST needs "
                           "Train/<label>/*.bin and Test/<label>/*.bin")
    entries = []
    for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if label_dir.name not in LABELS:
            raise SnnflowError(f"{label_dir}: label folder must be one of 0-9 - move or "
                               "remove it")
        label = int(label_dir.name)
        with os.scandir(label_dir) as files:  # 70,000 names: strings sort fast, Paths do not
            names = sorted(f.name for f in files if is_recording(f))
        for name in names:
            _check_utf8(label_dir, name)
        entries += [(f"{label_dir.name}/{name}", label) for name in names]
    if not entries:
        raise SnnflowError(f"{split_dir}: no <label>/*.bin recordings found - check the "
                           "path (nmnist_dir) or the download")
    missing = sorted(set(range(len(LABELS))) - {label for _, label in entries})
    if missing and not allow_missing_classes:
        raise SnnflowError(f"{split_dir}: no recordings of class {', '.join(map(str, missing))}"
                           " - a split must hold all ten digits; restore the missing "
                           "<label>/ folders, or set allow_missing_classes: true to study a "
                           "subset")
    return entries


def _check_utf8(folder, name):
    """File names are stored as UTF-8 text: refuse one that is not (os.scandir keeps its
    undecodable bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        raise SnnflowError(f"{folder}/{shown}: the file name is not valid UTF-8 - rename "
                           "the file") from None


def recording_statistics(paths):
    """Events per sample, duration (us) and ON fraction over recordings, as
    {name: (mean, min, max)}: how the synthetic data is compared with real data."""
    per_file = {"events": [], "duration_us": [], "on_fraction": []}
    for path in paths:
        events = read_events(path)
        per_file["events"].append(len(events))
        per_file["duration_us"].append(int(events["t"].max()) - int(events["t"].min()))
        per_file["on_fraction"].append(float(events["p"].mean()))
    return {k: (float(np.mean(v)), float(np.min(v)), float(np.max(v))) for k, v in per_file.items()}
