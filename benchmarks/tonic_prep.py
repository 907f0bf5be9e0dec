"""Benchmark: preparing a tonic dataset's data (snnflow.data.tonic_datasets), as the
tonic_events and frames jobs do, on a synthetic DVS Gesture copy of realistic size.

    python benchmarks/tonic_prep.py [--users 10] [--events 300000] [--T 16] [--size 32]
                                    [--threads 2] [--json out.json]

Writes a DVS Gesture copy in tonic's layout (tests/tonic_copies.py's class-dependent
blobs; 11 gestures per user, --events events each, an (n, 4) int64 .npy per gesture as
the real preprocessed files hold), then times tonic reading it into the event store and
the frame cache of one T at the frame size, and reports seconds per sample and the bytes
each file takes per sample: what the study's data preparation costs per recording.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "tests")]

from snnflow.data.events import build_tonic_event_store  # noqa: E402
from snnflow.data.frames import build_frame_cache  # noqa: E402
from tonic_copies import DVSGESTURE_CLASSES, blob  # noqa: E402


def write_copy(save_to, users, events, rng):
    """Like tonic_copies.write_dvsgesture, with `events` events per gesture."""
    root = Path(save_to) / "DVSGesture"
    for folder, first, count in (("ibmGestureTrain", 1, users - users // 4),
                                 ("ibmGestureTest", users - users // 4 + 1, users // 4)):
        for user in range(first, first + count):
            sample_dir = root / folder / f"user{user:02d}_led"
            sample_dir.mkdir(parents=True)
            for label in range(DVSGESTURE_CLASSES):
                x, y, p, t = blob(rng, label, DVSGESTURE_CLASSES, 128, 128, events)
                np.save(sample_dir / f"{label}.npy", np.stack([x, y, p, t // 1000], axis=1))
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy = write_copy(tmp / "copy", args.users, args.events, np.random.default_rng(0))
        samples = args.users * DVSGESTURE_CLASSES
        raw = sum(f.stat().st_size for f in copy.rglob("*.npy"))
        started = time.perf_counter()
        build_tonic_event_store("DVSGesture", tmp / "copy", tmp / "events.h5",
                                log=lambda line: None)
        read = time.perf_counter() - started
        started = time.perf_counter()
        build_frame_cache(tmp / "events.h5", args.T, tmp / "frames.h5", args.threads,
                          size=args.size)
        binned = time.perf_counter() - started
        result = {"samples": samples, "events_per_sample": args.events, "T": args.T,
                  "size": args.size,
                  "read_seconds_per_sample": read / samples,
                  "frames_seconds_per_sample": binned / samples,
                  "raw_bytes_per_sample": raw / samples,
                  "store_bytes_per_sample": (tmp / "events.h5").stat().st_size / samples,
                  "frames_bytes_per_sample": (tmp / "frames.h5").stat().st_size / samples}
    for key, value in result.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
