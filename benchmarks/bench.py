"""Benchmark: the optimised engine and data preparation against their references.

    python benchmarks/bench.py [--device cpu] [--batch 64] [--T 4 8 16 32]
                              [--prep-samples 7000] [--memory-cache nmnist_T32.h5]
                              [--json results.json]

Training and inference samples/s of the SNN at each T and of the CNN, on synthetic
batches, for
- reference: the SNN run one time step at a time through every layer with the
  step-by-step LIF (autograd through each step), contiguous NCHW and glibc's
  default allocator settings, as single-step frameworks run it; the CNN in NCHW;
- optimised: multi-step execution (stateless layers once on the merged T*N batch),
  the fused LIF kernel, channels_last, the training jobs' allocator settings
  (snnflow.train.loop.keep_freed_memory) and cuDNN autotuning on CUDA.
Data preparation on N synthetic recordings in N-MNIST's format: per-sample tonic
read_mnist_file + ToFrame against the pipeline's parse-once event store and
frame caches, for all four T. With --memory-cache, the peak memory of SNN training
with a whole frame cache resident, against the working set on 512 samples.

With --peers, SNN training samples/s of the optimised engine against SpikingJelly's
multi-step network of the same layers (layer.Conv2d, BatchNorm2d, MaxPool2d, Linear and
neuron.LIFNode or ParametricLIFNode, its own PyTorch backend: the one it has on a CPU),
for the LIF with each surrogate of snn.surrogate (surrogate.Sigmoid, surrogate.ATan) and
for the PLIF (snn.neuron: plif), on the same batch and loss.

Every measurement runs in a fresh process (its peak memory is its own), reports the
median of repeated runs after warm-up, and never runs as part of the tests.
"""

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow"))  # snnflow

PREP_T = (4, 8, 16, 32)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(connection, func, args):
    try:
        connection.send((True, func(*args)))
    except BaseException as err:  # report it in the parent
        connection.send((False, repr(err)))


def _isolated(func, *args):
    """Run func(*args) in a fresh process (which may start workers of its own)."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(sender, func, args))
    process.start()
    ok, value = receiver.recv()
    process.join()
    if not ok:
        raise RuntimeError(f"{func.__name__} failed: {value}")
    return value


def _median_seconds(step, repeats, warmup, sync):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_model(kind, impl, T, batch, device_name, channels, hidden, threads, repeats, warmup):
    """Training and inference samples/s and peak memory of one model/implementation."""
    import torch

    from snnflow.kernels import backends
    from snnflow.model import cnn, snn
    from snnflow.train.loop import keep_freed_memory
    from snnflow.train.steps import loss_and_scores
    from snnflow.model.step_by_step import forward_step_by_step

    optimised = impl == "optimised"
    if optimised:  # the reference runs with glibc's defaults, as the frameworks do
        keep_freed_memory()
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = optimised
    torch.manual_seed(0)
    spec = snn.KIND if kind == "snn" else cnn.KIND
    if kind == "snn":
        backend = backends.select(device)[0] if optimised else "torch"
        model = snn.CSNN(channels, hidden, engine="fused" if optimised else "reference",
                         backend=backend)
        x = (torch.rand(T, batch, 2, 34, 34, device=device) < 0.05).float()
        forward = model if optimised else lambda x: forward_step_by_step(model, x)
    else:
        model = cnn.CNN(channels, hidden)
        x = torch.rand(batch, 1, 28, 28, device=device)
        forward = model
    model = model.to(device)
    if optimised:
        model = model.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss_and_scores(forward, spec, x, y)[0].backward()
        optimizer.step()

    def infer_step():
        with torch.inference_mode():
            forward(x)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    train_s = _median_seconds(train_step, repeats, warmup, sync)
    model.eval()
    infer_s = _median_seconds(infer_step, repeats, warmup, sync)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else _peak_rss_mb())
    return {"model": kind if kind == "cnn" else f"snn_T{T}", "impl": impl,
            "train_samples_per_s": batch / train_s, "inference_samples_per_s": batch / infer_s,
            "peak_memory_mb": peak}


def measure_peer(framework, neuron, surrogate, T, batch, channels, hidden, threads, repeats,
                 warmup):
    """Training samples/s of the SNN of `neuron` and `surrogate` (snn.neuron, snn.surrogate)
    on the CPU: the optimised engine ("snnflow") or SpikingJelly's network of the same
    layers."""
    import torch
    import torch.nn.functional as F

    from snnflow.kernels import backends
    from snnflow.model import snn
    from snnflow.model.architecture import flat_size
    from snnflow.model.neuron import LIFParams
    from snnflow.train.loop import keep_freed_memory

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    alpha = 4.0 if surrogate == "sigmoid" else 2.0  # each surrogate's SpikingJelly default
    x = (torch.rand(T, batch, 2, 34, 34) < 0.05).float()
    y = torch.randint(0, 10, (batch,))
    target = F.one_hot(y, 10).float()
    if framework == "snnflow":
        keep_freed_memory()
        params = LIFParams(alpha=alpha, surrogate=surrogate, neuron=neuron)
        model = snn.CSNN(channels, hidden, neuron=params,
                         backend=backends.select(torch.device("cpu"))[0])
        model = model.to(memory_format=torch.channels_last)
        forward, reset = model, lambda: None
    else:
        from spikingjelly.activation_based import functional, layer
        from spikingjelly.activation_based import neuron as sj_neuron
        from spikingjelly.activation_based import surrogate as sj_surrogate

        function = {"sigmoid": sj_surrogate.Sigmoid, "atan": sj_surrogate.ATan}[surrogate]

        def lif():
            common = dict(v_threshold=1.0, v_reset=0.0, detach_reset=False,
                          surrogate_function=function(alpha=alpha))
            if neuron == "plif":
                return sj_neuron.ParametricLIFNode(init_tau=2.0, **common)
            if neuron == "if":
                return sj_neuron.IFNode(**common)
            return sj_neuron.LIFNode(tau=2.0, **common)
        layers, c_in = [], 2
        for c_out in channels:
            layers += [layer.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                       layer.BatchNorm2d(c_out), lif(), layer.MaxPool2d(2)]
            c_in = c_out
        layers += [layer.Flatten(), layer.Linear(flat_size(channels, 34), hidden, bias=False),
                   lif(), layer.Linear(hidden, 10, bias=False), lif()]
        model = torch.nn.Sequential(*layers)
        functional.set_step_mode(model, "m")
        forward, reset = model, lambda: functional.reset_net(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(forward(x).mean(0), target).backward()
        optimizer.step()
        reset()

    model.train()
    seconds = _median_seconds(train_step, repeats, warmup, lambda: None)
    return {"framework": framework, "neuron": neuron, "surrogate": surrogate, "model": f"snn_T{T}",
            "train_samples_per_s": batch / seconds}


def run_peers(args):
    """snnflow against SpikingJelly per neuron and surrogate and T (None where SpikingJelly
    is not installed)."""
    import importlib.util

    if importlib.util.find_spec("spikingjelly") is None:
        print("  peers: SpikingJelly is not installed (pip install --no-deps -r "
              "envs/nir-importers.txt)", flush=True)
        return None
    rows = []
    for T in args.T:
        for neuron, surrogate in (("lif", "sigmoid"), ("lif", "atan"), ("plif", "sigmoid"),
                                  ("plif", "atan"), ("if", "sigmoid")):
            for framework in ("snnflow", "spikingjelly"):
                rows.append(_isolated(measure_peer, framework, neuron, surrogate, T, args.batch,
                                      args.channels, args.hidden, args.threads, args.repeats,
                                      args.warmup))
                print(f"  snn_T{T:<3} {neuron:4} {surrogate:8} {framework:12} train "
                      f"{rows[-1]['train_samples_per_s']:8.1f}/s", flush=True)
    return rows


def make_recordings(root, n, seed=0):
    """n synthetic recordings under root/{Train,Test}/<label>/ (1 in 7 in Test): a pool of
    realistic ones from snnflow.data.synthetic, repeated, so n can be large quickly."""
    from snnflow.data.synthetic import write_dataset

    pool_dir = Path(root) / "pool"
    per_class = max(1, min(n, 300) // 10)
    write_dataset(pool_dir, per_class, 1, seed)
    pool = [p.read_bytes() for p in sorted((pool_dir / "NMNIST" / "Train").glob("*/*.bin"))]
    data = Path(root) / "NMNIST"
    n_test = max(1, n // 7)
    for i in range(n):
        folder = "Test" if i < n_test else "Train"
        target = data / folder / str(i % 10) / f"{i:05d}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(pool[i % len(pool)])
    return data


def measure_tonic_prep(data, limit, framing="count"):
    """Per-sample tonic read_mnist_file + ToFrame(n_event_bins=T), or by time
    ToFrame(n_time_bins=T), for each T."""
    import tonic

    files = sorted(Path(data).glob("*/*/*.bin"))[:limit]
    dtype = tonic.datasets.NMNIST.dtype
    results = {}
    for T in PREP_T:
        bins = {"n_event_bins" if framing == "count" else "n_time_bins": T}
        to_frame = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), **bins)
        start = time.perf_counter()
        events = 0
        for f in files:
            ev = tonic.io.read_mnist_file(str(f), dtype=dtype)
            to_frame(ev)
            events += len(ev)
        seconds = time.perf_counter() - start
        results[T] = {"samples_per_s": len(files) / seconds, "events_per_s": events / seconds}
    results["peak_memory_mb"] = _peak_rss_mb()
    results["samples"] = len(files)
    return results


def measure_pipeline_prep(data, out, threads, repeats, framing="count"):
    """The pipeline's data stage: parse once into the event store (with timestamps when
    framing by time), then one frame cache per T, each with `threads` threads. The C kernels are built first (a one-time
    cost, reported apart); then the median of `repeats` runs from an empty folder."""
    import shutil

    import h5py

    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache
    from snnflow.kernels import prep

    start = time.perf_counter()
    kernels = prep.library() is not None
    results = {"c_kernels": kernels, "kernel_build_seconds": time.perf_counter() - start}
    runs = []
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        timings = {}
        start = time.perf_counter()
        build_event_store(data, Path(out) / "events.h5", threads,
                          with_times=framing == "time")
        timings["events_seconds"] = time.perf_counter() - start
        for T in PREP_T:
            t0 = time.perf_counter()
            build_frame_cache(Path(out) / "events.h5", T, Path(out) / f"nmnist_T{T}.h5", threads,
                              framing=framing)
            timings[f"frames_T{T}_seconds"] = time.perf_counter() - t0
        timings["total_seconds"] = time.perf_counter() - start
        runs.append(timings)
    results.update({key: statistics.median(r[key] for r in runs) for key in runs[0]})
    results["total_seconds_each_run"] = [r["total_seconds"] for r in runs]
    with h5py.File(Path(out) / "events.h5") as h5:
        results["events"] = int(sum(len(h5[f"{s}/codes"]) for s in ("train", "test")))
        results["samples"] = int(sum(len(h5[f"{s}/labels"]) for s in ("train", "test")))
    results["store_megabytes"] = (Path(out) / "events.h5").stat().st_size / 2**20
    results["cache_megabytes"] = {T: (Path(out) / f"nmnist_T{T}.h5").stat().st_size / 2**20
                                  for T in PREP_T}
    results["peak_memory_mb"] = _peak_rss_mb()
    return results


def run_training(args):
    rows = []
    models = [("snn", T) for T in args.T] + [("cnn", None)]
    for kind, T in models:
        for impl in ("reference", "optimised"):
            rows.append(_isolated(measure_model, kind, impl, T, args.batch, args.device,
                                  args.channels, args.hidden, args.threads, args.repeats,
                                  args.warmup))
            r = rows[-1]
            print(f"  {r['model']:8} {impl:9}  train {r['train_samples_per_s']:9.1f}/s  "
                  f"inference {r['inference_samples_per_s']:9.1f}/s  "
                  f"peak {r['peak_memory_mb']:8.0f} MB", flush=True)
    return rows


def measure_training_memory(cache, samples, batch, threads, steps=3):
    """Peak RSS of an SNN training process on a frame cache (the pipeline's loading and
    resident dataset), `samples` per split (0: all), after `steps` training and
    evaluation batches."""
    import h5py
    import torch

    from snnflow.kernels import backends
    from snnflow.model import snn
    from snnflow.train.dataset import ResidentDataset
    from snnflow.train.loop import keep_freed_memory
    from snnflow.train.steps import loss_and_scores

    keep_freed_memory()
    torch.set_num_threads(threads)
    data = {}
    with h5py.File(cache) as h5:
        for split in ("train", "test"):
            frames = h5[f"{split}/frames"]
            frames = frames[:samples] if samples else frames[...]
            labels = h5[f"{split}/labels"][:len(frames)].astype("int64")
            data[split] = ResidentDataset(frames, labels, torch.device("cpu"), time_major=True)
    model = snn.CSNN(backend=backends.select(torch.device("cpu"))[0])
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _, (x, y) in zip(range(steps), data["train"].batches(batch)):
        optimizer.zero_grad(set_to_none=True)
        loss_and_scores(model, snn.KIND, x, y)[0].backward()
        optimizer.step()
    with torch.inference_mode():
        for _, (x, y) in zip(range(steps), data["test"].batches(batch)):
            model(x)
    return {"cache_gib": sum(d.inputs.nbytes for d in data.values()) / 2**30,
            "peak_rss_gib": _peak_rss_mb() / 1024, "T": int(data["train"].inputs.shape[1]),
            "batch": batch}


def run_memory(args):
    """The memory target: peak RSS with the whole cache resident, against the working set
    measured on 512 samples per split."""
    full = _isolated(measure_training_memory, str(args.memory_cache), 0, args.memory_batch,
                     args.threads)
    small = _isolated(measure_training_memory, str(args.memory_cache), 512, args.memory_batch,
                      args.threads)
    extra = ((full["peak_rss_gib"] - small["peak_rss_gib"])
             / (full["cache_gib"] - small["cache_gib"]))
    return {"full": full, "working_set": small, "extra_per_cache_byte": extra}


def run_prep(args):
    with tempfile.TemporaryDirectory() as tmp:
        data = make_recordings(tmp, args.prep_samples)
        pipeline = _isolated(measure_pipeline_prep, str(data), str(Path(tmp) / "out"),
                             args.threads, args.prep_repeats, args.framing)
        tonic_prep = _isolated(measure_tonic_prep, str(data), args.tonic_samples, args.framing)
    per_T = [tonic_prep[T]["samples_per_s"] for T in PREP_T]
    tonic_seconds = sum(pipeline["samples"] / s for s in per_T)
    return {"pipeline": pipeline, "tonic": tonic_prep,
            "tonic_seconds_all_T_extrapolated": tonic_seconds,
            "speedup_all_T": tonic_seconds / pipeline["total_seconds"],
            "pipeline_events_per_s": pipeline["events"] * len(PREP_T) / pipeline["total_seconds"]}


def summary_table(training, prep, memory=None, peers=None):
    lines = []
    if training:
        lines.append(f"{'model':9} {'train ref/s':>12} {'train opt/s':>12} {'ratio':>6} "
                     f"{'infer ref/s':>12} {'infer opt/s':>12} {'ratio':>6} "
                     f"{'peak ref MB':>11} {'peak opt MB':>11}")
        by_model = {}
        for r in training:
            by_model.setdefault(r["model"], {})[r["impl"]] = r
        for model, impls in by_model.items():
            ref, opt = impls["reference"], impls["optimised"]
            lines.append(
                f"{model:9} {ref['train_samples_per_s']:12.1f} {opt['train_samples_per_s']:12.1f} "
                f"{opt['train_samples_per_s'] / ref['train_samples_per_s']:6.2f} "
                f"{ref['inference_samples_per_s']:12.1f} {opt['inference_samples_per_s']:12.1f} "
                f"{opt['inference_samples_per_s'] / ref['inference_samples_per_s']:6.2f} "
                f"{ref['peak_memory_mb']:11.0f} {opt['peak_memory_mb']:11.0f}")
    if peers:
        lines += ["", "SNN training against SpikingJelly (samples/s, the same batch and loss):",
                  f"{'model':9} {'neuron':6} {'surrogate':9} {'snnflow':>9} "
                  f"{'SpikingJelly':>13} {'ratio':>6}"]
        by_case = {}
        for r in peers:
            by_case.setdefault((r["model"], r["neuron"], r["surrogate"]), {})[r["framework"]] = r
        for (model, neuron, surrogate), frameworks in by_case.items():
            ours = frameworks["snnflow"]["train_samples_per_s"]
            theirs = frameworks["spikingjelly"]["train_samples_per_s"]
            lines.append(f"{model:9} {neuron:6} {surrogate:9} {ours:9.1f} {theirs:13.1f} "
                         f"{ours / theirs:6.2f}")
    if memory:
        full, small = memory["full"], memory["working_set"]
        lines += ["", f"training memory, SNN-{full['T']}, batch {full['batch']}:",
                  f"  whole cache ({full['cache_gib']:.2f} GiB uint8) resident: peak RSS "
                  f"{full['peak_rss_gib']:.2f} GiB; with 512 samples per split: "
                  f"{small['peak_rss_gib']:.2f} GiB",
                  f"  peak = working set + {memory['extra_per_cache_byte']:.2f} x the cache"]
    if prep:
        p, t = prep["pipeline"], prep["tonic"]
        lines.append("")
        lines.append(f"data prep, {p['samples']} samples, {p['events']} events, T in {PREP_T}, "
                     f"store {p['store_megabytes']:.0f} MB:")
        lines.append(f"  pipeline  {p['total_seconds']:7.2f} s  (events {p['events_seconds']:.2f} s; "
                     + ", ".join(f"T{T} {p[f'frames_T{T}_seconds']:.2f} s" for T in PREP_T)
                     + f")  {prep['pipeline_events_per_s'] / 1e6:.1f} M events/s, "
                     f"peak {p['peak_memory_mb']:.0f} MB")
        lines.append(f"            median of {len(p['total_seconds_each_run'])} runs ("
                     + ", ".join(f"{s:.2f}" for s in p["total_seconds_each_run"])
                     + f" s); C kernels: {'yes' if p['c_kernels'] else 'no, numpy fallback'}"
                     f" (built in {p['kernel_build_seconds']:.2f} s)")
        lines.append(f"  tonic     {prep['tonic_seconds_all_T_extrapolated']:7.2f} s  (per T: "
                     + ", ".join(f"T{T} {t[T]['samples_per_s']:.0f}/s" for T in PREP_T)
                     + f", over {t['samples']} samples)  peak {t['peak_memory_mb']:.0f} MB")
        lines.append(f"  speed-up  {prep['speedup_all_T']:.1f}x")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="snnflow benchmark (see module docstring)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--channels", type=int, nargs=3, default=[32, 64, 128])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads / prep workers")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--prep-samples", type=int, default=7000,
                        help="synthetic recordings for the data-prep benchmark (0: skip)")
    parser.add_argument("--framing", choices=("count", "time"), default="count",
                        help="the data-prep benchmark's framing (config dataset.framing)")
    parser.add_argument("--prep-repeats", type=int, default=3,
                        help="runs of the pipeline's data prep (the median is reported)")
    parser.add_argument("--tonic-samples", type=int, default=1000,
                        help="recordings the slower tonic reference converts per T")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--peers", action="store_true",
                        help="also SNN training against SpikingJelly, per surrogate")
    parser.add_argument("--memory-cache", type=Path,
                        help="a frame cache (e.g. results/frames/nmnist_T32.h5): also measure "
                             "peak training memory with it resident")
    parser.add_argument("--memory-batch", type=int, default=256)
    parser.add_argument("--json", type=Path, help="also write all figures as JSON here")
    args = parser.parse_args(argv)

    print(f"device {args.device}, batch {args.batch}, widths {args.channels}/{args.hidden}, "
          f"threads {args.threads}, median of {args.repeats} after {args.warmup} warm-up")
    training = [] if args.skip_training else run_training(args)
    prep = run_prep(args) if args.prep_samples > 0 else None
    memory = run_memory(args) if args.memory_cache else None
    peers = run_peers(args) if args.peers else None
    print(summary_table(training, prep, memory, peers))
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)},
                                         "training": training, "prep": prep, "memory": memory,
                                         "peers": peers}, indent=2, default=str))


if __name__ == "__main__":
    main()
