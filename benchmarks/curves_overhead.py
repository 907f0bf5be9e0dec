"""Benchmark: what the live TensorBoard curves (snnflow.train.curves) cost a training run.

    python benchmarks/curves_overhead.py [--samples 1500] [--T 16] [--epochs 4]
                                         [--repeats 3] [--threads 2] [--json out.json]

SNN-T training with the study's network and batch size (snnflow.train.loop.run, as a
training job runs it) on a frame cache of synthetic recordings in N-MNIST's format,
with and without curves, alternating, each run in a fresh process. Reported per mode:
the median epoch time (from one epoch's end to the next's, so the CSV rows, the
checkpoint and the curves' own writes are in it; the first epoch, a warm-up, is left
out), and with curves the time spent inside the curves' calls per epoch, measured
directly. With few batches an epoch the running loss is written after almost every
batch, more often than in the study (about every 11th of 235 batches).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "benchmarks")]

from bench import _isolated, make_recordings  # noqa: E402


def train_once(cache, T, epochs, threads, with_curves, out):
    """Epoch times (s, epochs 2..) and, with curves, the seconds spent in their calls."""
    from snnflow.model import snn
    from snnflow.runs import RunSettings, outputs_in
    from snnflow.train import curves as curves_module
    from snnflow.train.loop import run

    spent = [0.0]

    def timed(method):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        return wrapper

    for name in ("batch", "epoch", "start_epoch", "finish", "close"):
        setattr(curves_module.Curves, name, timed(getattr(curves_module.Curves, name)))
    curves_module.Curves.open = classmethod(timed(curves_module.Curves.open.__func__))
    settings = RunSettings(model="snn", T=T, epochs=epochs, batch_size=256, lr=1e-3, seed=0,
                           device="cpu")
    out = Path(out)
    out.mkdir(parents=True)
    history = run(snn.KIND, settings, cache, outputs_in(out), out / "checkpoint.pt",
                  code_fingerprint="bench", threads=threads, log=lambda line: None,
                  curves_folder=out / "tensorboard" if with_curves else None)
    ends = [row["wall_time"] for row in history]
    return {"epoch_seconds": [b - a for a, b in zip(ends, ends[1:])],
            "curves_seconds": spent[0], "epochs": epochs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_recordings(tmp / "raw", args.samples)
        build_event_store(data, tmp / "events.h5")
        cache = tmp / f"nmnist_T{args.T}.h5"
        build_frame_cache(tmp / "events.h5", args.T, cache)
        results = {"off": [], "on": []}
        for repeat in range(args.repeats):
            order = ("off", "on") if repeat % 2 == 0 else ("on", "off")
            for mode in order:
                result = _isolated(train_once, cache, args.T, args.epochs, args.threads,
                                   mode == "on", tmp / f"run-{repeat}-{mode}")
                results[mode].append(result)
                print(f"  repeat {repeat + 1} curves {mode:3}: epochs "
                      + " ".join(f"{s:.2f}" for s in result["epoch_seconds"]) + " s"
                      + (f", in the curves' calls {result['curves_seconds']:.3f} s"
                         if mode == "on" else ""), flush=True)

    def median_epoch(mode):
        return statistics.median(s for r in results[mode] for s in r["epoch_seconds"])

    off, on = median_epoch("off"), median_epoch("on")
    per_epoch = statistics.median(r["curves_seconds"] / r["epochs"] for r in results["on"])
    summary = {"T": args.T, "samples": args.samples, "threads": args.threads,
               "epoch_seconds_without": off, "epoch_seconds_with": on,
               "difference_percent": 100 * (on - off) / off,
               "curves_seconds_per_epoch": per_epoch,
               "curves_percent_of_epoch": 100 * per_epoch / on, "runs": results}
    print(f"SNN-{args.T}, {args.samples} recordings, batch 256, {args.threads} threads: "
          f"median epoch {off:.2f} s without curves, {on:.2f} s with "
          f"({summary['difference_percent']:+.2f} %); the curves' own calls "
          f"{per_epoch * 1000:.1f} ms per epoch ({summary['curves_percent_of_epoch']:.2f} % "
          "of an epoch)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
