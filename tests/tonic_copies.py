"""Small synthetic copies of tonic's event-camera datasets, each in the dataset's own layout
and file format as tonic 1.7 reads them (its dataset classes' source), for tests: no real
recording of these datasets can be downloaded here.

Each sample is a blob of events around a point that depends on its class (and moves a
little from sample to sample), so that a network can learn the classes. Event counts are
multiples of 16 where `divisible` says so: there tonic's ToFrame(n_event_bins=T) and the
study's frames agree for T dividing 16.

- DVSGesture: <save_to>/DVSGesture/ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy,
  an (n, 4) array of x, y, p, t in milliseconds; 128x128 sensor, 11 classes.
- NCALTECH101: <save_to>/NCALTECH101/Caltech101/<class>/image_<NNNN>.bin in the 40-bit
  N-MNIST event format; every recording its own size (tonic shifts x and y to start at 0).
- CIFAR10DVS: <save_to>/CIFAR10DVS/<class>/cifar10_<class>_<N>.aedat4: AEDAT 4.0 files made
  from a real one (../shared/fixtures/tonic-samples/sample.aedat4, a DVXplorer recording,
  320x240) with each event moved into the 128x128 sensor, class by class: its LZ4-compressed
  packets are decompressed, the events' x and y rewritten, and recompressed.
- POKERDVS: <save_to>/POKERDVS/pips_{train,test}/<cl|he|di|sp>/<N>.npy, an (n, 4) array of
  t, x, y, p; 35x35 sensor.
"""

import struct
from pathlib import Path

import numpy as np

from snnflow.data.nmnist import EVENT_DTYPE, write_events

AEDAT4_SAMPLE = (Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
                 / "tonic-samples" / "sample.aedat4")
DVSGESTURE_CLASSES = 11
# 14 of N-Caltech101's 101 folders: more classes than the report's figures show one by one
NCALTECH101_CLASSES = ["BACKGROUND_Google", "Faces_easy", "accordion", "airplanes", "anchor",
                       "ant", "barrel", "bass", "beaver", "binocular", "bonsai", "brain",
                       "brontosaurus", "buddha"]
CIFAR10DVS_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                      "ship", "truck"]
POKERDVS_CLASSES = ["cl", "he", "di", "sp"]


def blob(rng, label, n_classes, width, height, n):
    """(x, y, p, t in us) of n events around a point of the class's own direction."""
    angle = 2 * np.pi * label / n_classes + rng.normal(0, 0.05)
    cx = width / 2 + 0.3 * width * np.cos(angle)
    cy = height / 2 + 0.3 * height * np.sin(angle)
    x = np.clip(np.rint(cx + rng.normal(0, width / 16, n)), 0, width - 1).astype(np.int64)
    y = np.clip(np.rint(cy + rng.normal(0, height / 16, n)), 0, height - 1).astype(np.int64)
    p = (rng.random(n) < 0.5).astype(np.int64)
    t = np.sort(rng.integers(0, 500_000, n))
    return x, y, p, t


def _count(rng, divisible):
    n = int(rng.integers(20, 60))
    return 16 * n if divisible else 16 * n + int(rng.integers(1, 16))


def write_dvsgesture(save_to, rng, train_users=12, test_users=4):
    """One sample per class and user, as the real dataset has; every third sample's event
    count is not a multiple of 16."""
    root = Path(save_to) / "DVSGesture"
    for folder, users in (("ibmGestureTrain", range(1, train_users + 1)),
                          ("ibmGestureTest", range(train_users + 1,
                                                   train_users + test_users + 1))):
        for user in users:
            lighting = ("fluorescent", "led", "natural")[user % 3]
            sample_dir = root / folder / f"user{user:02d}_{lighting}"
            sample_dir.mkdir(parents=True)
            for label in range(DVSGESTURE_CLASSES):
                x, y, p, t = blob(rng, label, DVSGESTURE_CLASSES, 128, 128,
                                  _count(rng, (user + label) % 3 != 0))
                np.save(sample_dir / f"{label}.npy", np.stack([x, y, p, t // 1000], axis=1))
    return root


def write_ncaltech101(save_to, rng, per_class=7):
    """Recordings of sizes up to 60x40 pixels (offset by a few pixels, which tonic removes)."""
    root = Path(save_to) / "NCALTECH101" / "Caltech101"
    for label, name in enumerate(NCALTECH101_CLASSES):
        for i in range(per_class):
            x, y, p, t = blob(rng, label, len(NCALTECH101_CLASSES), 60, 40,
                              _count(rng, i % 3 != 0))
            events = np.zeros(len(x), dtype=EVENT_DTYPE)
            events["x"], events["y"], events["p"], events["t"] = x + 3, y + 2, p, t
            write_events(root / name / f"image_{i + 1:04d}.bin", events)
    return root.parent


def write_pokerdvs(save_to, rng, train_per_class=8, test_per_class=3):
    root = Path(save_to) / "POKERDVS"
    for folder, count in (("pips_train", train_per_class), ("pips_test", test_per_class)):
        for label, name in enumerate(POKERDVS_CLASSES):
            (root / folder / name).mkdir(parents=True)
            for i in range(count):
                x, y, p, t = blob(rng, label, len(POKERDVS_CLASSES), 35, 35,
                                  _count(rng, i % 3 != 0))
                np.save(root / folder / name / f"{name}{i}.npy", np.stack([t, x, y, p], axis=1))
    return root


def write_cifar10dvs(save_to, per_class=3, sample=AEDAT4_SAMPLE):
    """The real AEDAT4 recording, squeezed into 128x128 and shifted per class and sample."""
    root = Path(save_to) / "CIFAR10DVS"
    for label, name in enumerate(CIFAR10DVS_CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shift = 11 * label + 3 * i

            def move(x, y, shift=shift):
                return ((x.astype(np.int64) * 96 // 320 + shift) % 128,
                        (y.astype(np.int64) * 96 // 240 + shift // 2) % 128)
            rewrite_aedat4_events(sample, root / name / f"cifar10_{name}_{i}.aedat4", move)
    return root


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
# dv-processing's Event struct in an EventPacket flatbuffer: 16 bytes
AEDAT4_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])


def _event_vector(raw):
    """(offset, count) of the events in a decompressed, size-prefixed EventPacket: the root
    table's first field is the vector of Event structs."""
    root = 4 + struct.unpack_from("<I", raw, 4)[0]
    vtable = root - struct.unpack_from("<i", raw, root)[0]
    field = root + struct.unpack_from("<H", raw, vtable + 4)[0]
    vector = field + struct.unpack_from("<I", raw, field)[0]
    return vector + 4, struct.unpack_from("<I", raw, vector)[0]


def rewrite_aedat4_events(src, dst, move):
    """Copy the AEDAT4 file `src` to `dst` with each event's (x, y) replaced by
    move(x, y): the header, then packets (stream id, size, LZ4 frame) of which the event
    packets ("EVTS") are rewritten, then the data table, whose position the header
    records (updated here; the table's own offsets are left, as the reader ignores them)."""
    import lz4.frame

    data = Path(src).read_bytes()
    if not data.startswith(AEDAT4_MAGIC):
        raise ValueError(f"{src}: not an AEDAT 4.0 file")
    header_end = len(AEDAT4_MAGIC) + 4 + struct.unpack_from("<I", data, len(AEDAT4_MAGIC))[0]
    out = bytearray(data[:header_end])
    pos = header_end
    while pos + 8 <= len(data):
        stream, size = struct.unpack_from("<iI", data, pos)
        body = data[pos + 8:pos + 8 + size]
        if len(body) < size:
            break  # the data table
        raw = bytearray(lz4.frame.decompress(body))
        if raw[8:12] == b"EVTS":
            start, count = _event_vector(raw)
            events = np.frombuffer(raw, AEDAT4_EVENT, count=count, offset=start).copy()
            events["x"], events["y"] = move(events["x"], events["y"])
            raw[start:start + events.nbytes] = events.tobytes()
            body = lz4.frame.compress(bytes(raw), block_size=lz4.frame.BLOCKSIZE_MAX64KB)
        out += struct.pack("<iI", stream, len(body)) + body
        pos += 8 + size
    old, new = struct.pack("<q", pos), struct.pack("<q", len(out))
    if out[:header_end].count(old) != 1:
        raise ValueError(f"{src}: the header's data table position was not found")
    out[:header_end] = out[:header_end].replace(old, new)
    out += data[pos:]
    Path(dst).write_bytes(out)


WRITERS = {"DVSGesture": write_dvsgesture, "NCALTECH101": write_ncaltech101,
           "POKERDVS": write_pokerdvs}


def write_copy(name, save_to, rng, **sizes):
    """A synthetic copy of dataset `name` in `save_to` (`sizes`: its writer's counts); the
    calling test is skipped where CIFAR10DVS's copy cannot be made (its sample recording,
    AEDAT4_SAMPLE, is absent, or lz4, which writes its packets)."""
    if name != "CIFAR10DVS":
        return WRITERS[name](save_to, rng, **sizes)
    import pytest

    if not AEDAT4_SAMPLE.is_file():
        pytest.skip(f"{AEDAT4_SAMPLE} is absent: the CIFAR10DVS copy is made from it")
    pytest.importorskip("lz4")
    return write_cifar10dvs(save_to, **sizes)
