"""Why an SNN trained with few optimizer steps was silent in evaluation: BatchNorm's
running statistics against the batch statistics and against statistics recomputed over
the training split, after each epoch (docs/method.md, "BatchNorm's statistics after few
steps").

    python benchmarks/batchnorm_statistics.py FOLDER [--per-class 100] [--T 8]
        [--batch 256] [--epochs 6]

Trains the study's SNN (channels 32-64-128, 256 hidden, lr 1e-3) on synthetic N-MNIST
(per-class training recordings, 20 test recordings per class, made in FOLDER once) with
the job's own trainer, and prints per epoch the test accuracy and output firing rate in
evaluation with each of the three statistics.
"""

import argparse
import copy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))


def evaluated(model, train, data, batch, statistics):
    """(accuracy, output firing rate) of a copy of `model` on `data` with `statistics`:
    "running" (as trained), "batch" (each test batch's own) or "recomputed" (averaged
    over the training split with these weights)."""
    import torch

    model = copy.deepcopy(model)
    if statistics == "recomputed":
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        model.train()
        with torch.no_grad():
            for x, _ in train.batches(batch):
                model(x)
    model.train() if statistics == "batch" else model.eval()
    correct = spikes = n = 0
    with torch.no_grad():
        for x, y in data.batches(batch):
            out = model(x)
            correct += (out.mean(0).argmax(1) == y).sum().item()
            spikes += out.sum().item()
            n += len(y)
    return correct / n, spikes / (n * out.shape[0] * out.shape[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    import torch

    from snnflow.data.caches import load_frames
    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache
    from snnflow.data.synthetic import write_dataset
    from snnflow.model import snn
    from snnflow.runs import RunSettings
    from snnflow.train.dataset import ResidentDataset
    from snnflow.train.loop import build_job

    cache = args.folder / f"frames_T{args.T}.h5"
    if not cache.exists():
        write_dataset(args.folder / "raw", args.per_class, 20, 0)
        build_event_store(args.folder / "raw" / "NMNIST", args.folder / "events.h5", 2)
        build_frame_cache(args.folder / "events.h5", args.T, cache, 2)
    train, test = (ResidentDataset(*load_frames(cache, split), torch.device("cpu"),
                                   time_major=True) for split in ("train", "test"))
    s = RunSettings(model="snn", epochs=args.epochs, batch_size=args.batch, lr=1e-3, seed=0,
                    device="cpu", T=args.T, channels=[32, 64, 128], hidden=256)
    job = build_job(snn.KIND, s, train, test, threads=2, log=lambda line: None)
    steps = 0
    for epoch in range(1, args.epochs + 1):
        _, train_acc = job.trainer.train_epoch(job.train, job.generator, epoch)
        job.scheduler.step()
        steps += -(-len(train) // args.batch)
        cells = [f"{name}: {100 * acc:.1f} % (output rate {rate:.4f})"
                 for name in ("running", "batch", "recomputed")
                 for acc, rate in [evaluated(job.model, train, test, args.batch, name)]]
        print(f"epoch {epoch}, {steps} steps, train acc {100 * train_acc:.1f} % | "
              + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
