"""make gpu-check: the CUDA path proven by one command, in a few minutes on one GPU.

    python3 benchmarks/gpu_check.py [--json results/gpu-check.json]

1. Correctness
   - the Triton LIF against the reference step, T = 1, 4, 16, 32, contiguous and
     channels_last, float32 and under bf16 autocast: spikes bit-identical, gradients
     within 1e-6;
   - the fused CUDA block (Triton BatchNorm + LIF + 2x2 max-pool) against the three
     layers in turn: spikes, the gradients of y, the weight and the bias;
   - 30 training steps of the CUDA engine (Triton LIF, cuDNN) against the reference
     engine (step-by-step LIF, contiguous) on the same batches from the same weights:
     both loss trajectories and their largest difference.
2. Speed: seconds per training and inference epoch at batch 256 of SNN-4/8/16/32 and
   the CNN, on a resident uint8 dataset of the full size (60,000 + 10,000 synthetic
   samples), each from at least 50 timed steps after warm-up, with peak GPU memory; for
   the engine as it runs by default, with CUDA graphs, with CUDA graphs and the fused
   block, and with all of that under bf16 autocast; the reference engine at T=16 beside
   them.
3. Accuracy of the speed switches: 3 epochs of the demo data (SNN-16), final test
   accuracy with autocast none / bf16, CUDA graphs off / on, the fused block off / on.

Writes the figures to --json and a table to the terminal; exits 1 on any mismatch and 2,
with one line, on a machine without CUDA. Needs only torch (with Triton), numpy, h5py and
matplotlib: the Python of a GPU machine that already holds torch, without installing
anything (README "Checking the GPU path").

`--device cpu --smoke` runs every part at toy sizes on the CPU, the Triton kernels in
Triton's interpreter (TRITON_INTERPRET=1): the test suite's check that the command works.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "benchmarks")]

SWITCHES = {  # name: (cuda_graphs, fused_cuda_block, autocast)
    "default": (False, False, "none"),
    "graphs": (True, False, "none"),
    "graphs+fused": (True, True, "none"),
    "graphs+fused+bf16": (True, True, "bf16"),
}


def check_lif(device, Ts=(1, 4, 16, 32), shape=(64, 32, 17, 17)):
    """Triton LIF against the reference step: (rows, all passed). The comparison is the
    training jobs' own (snnflow.train.kernel_check)."""
    import torch

    from snnflow.kernels import lif_triton
    from snnflow.model.neuron import LIFParams
    from snnflow.model.kernel_paths import LIF_GRAD_TOLERANCE, compare_lif

    kernels = lif_triton.load()
    p = LIFParams()  # the study's neuron
    rows, ok = [], kernels is not None
    for T in Ts:
        for layout in ("contiguous", "channels_last"):
            for precision in ("float32", "bf16 autocast"):
                g = torch.Generator(device=device).manual_seed(T)
                x = torch.randn(T * shape[0], *shape[1:], generator=g, device=device) * 1.5 + 0.5
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                x = x.unflatten(0, (T, shape[0]))
                if precision != "float32":  # what the LIF gets under autocast: bf16 values
                    x = x.to(torch.bfloat16)
                x32 = x.float()  # the LIF runs its membrane in float32 either way
                x32[:, 0, 0, 0, :] = 2.0  # exactly on the threshold after a reset
                spikes_equal, _, grad_error, _ = compare_lif(kernels, x32, p, g)
                passed = spikes_equal and grad_error <= LIF_GRAD_TOLERANCE
                ok &= passed
                rows.append({"T": T, "layout": layout, "precision": precision,
                             "spikes_equal": spikes_equal, "max_grad_error": grad_error,
                             "passed": passed})
    return rows, bool(ok)


def check_block(device, shapes=((4, 32, 32, 34, 34), (16, 16, 64, 17, 17), (1, 8, 16, 8, 8))):
    """The fused Triton block against BatchNorm2d, the LIF and MaxPool2d in turn, by the
    training jobs' own comparison and criterion (snnflow.train.kernel_check)."""
    import torch
    from torch import nn

    from snnflow.kernels import block_triton
    from snnflow.model.neuron import LIFParams
    from snnflow.model.kernel_paths import (RELATIVE_TOLERANCE, SPIKE_FLIP_TOLERANCE,
                                            compare_block)

    kernels = block_triton.load()
    p = LIFParams()  # the study's neuron
    rows, ok = [], kernels is not None
    for T, N, C, H, W in shapes:
        g = torch.Generator(device=device).manual_seed(C)
        y = (torch.randn(T * N, C, H, W, generator=g, device=device) * 1.5 + 0.3).contiguous(
            memory_format=torch.channels_last).unflatten(0, (T, N))
        bn = nn.BatchNorm2d(C).to(device)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5, generator=g)
            bn.bias.uniform_(-0.3, 0.3, generator=g)
        flips, errors = compare_block(kernels, y, bn, p, g)
        passed = flips <= SPIKE_FLIP_TOLERANCE and all(
            ours <= max(RELATIVE_TOLERANCE, 2 * theirs) for ours, theirs in errors.values())
        ok &= passed
        rows.append({"shape": [T, N, C, H, W], "spike_flips": flips,
                     **{f"grad_{k}_rel_error": ours for k, (ours, _) in errors.items()},
                     **{f"grad_{k}_torch_float32_rel_error": theirs
                        for k, (_, theirs) in errors.items()}, "passed": passed})
    return rows, bool(ok)


def check_training(device, steps=30, batch=32, T=8):
    """The CUDA engine (with and without the fused block) against the reference engine
    over `steps` Adam steps from the same weights on the same batches."""
    import torch

    from snnflow.model import snn
    from snnflow.model.neuron import LIFParams

    torch.manual_seed(0)
    neuron = LIFParams()
    backend = "triton" if device.type == "cuda" else "torch"
    engines = {"reference": snn.CSNN(neuron=neuron, engine="reference").to(device)}
    for name, fuse in (("cuda_engine", False), ("cuda_engine_fused_block", True)):
        engines[name] = snn.CSNN(neuron=neuron, engine="fused", backend=backend,
                                 fuse_cuda_blocks=fuse).to(device)
        engines[name].load_state_dict(engines["reference"].state_dict())
        engines[name] = engines[name].to(memory_format=torch.channels_last)
    g = torch.Generator(device=device).manual_seed(1)
    batches = [((torch.rand(T, batch, 2, 34, 34, generator=g, device=device) < 0.05).float() * 2,
                torch.randint(0, 10, (batch,), generator=g, device=device))
               for _ in range(steps)]
    losses = {}
    for name, model in engines.items():
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        trajectory = []
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = snn.KIND.loss(model(x).float(), y)[0]
            loss.backward()
            optimizer.step()
            trajectory.append(float(loss.detach()))
        losses[name] = trajectory
    scale = max(abs(v) for v in losses["reference"])
    difference = max(abs(a - b) for name in engines if name != "reference"
                     for a, b in zip(losses[name], losses["reference"]))
    relative = difference / scale
    # spikes that flip on the threshold (cuDNN's sums, BatchNorm as one fma) grow into
    # small loss differences over the steps; a wrong gradient gives large ones
    passed = relative < 0.05
    return {"steps": steps, "batch": batch, "T": T, "losses": losses,
            "max_difference": difference, "max_relative_difference": relative,
            "passed": passed}, passed


def synthetic_split(spec, n, T, device, chunk=5000):
    """A resident uint8 dataset of n synthetic samples for the model of `spec` (a
    ModelKind), made on the device in chunks."""
    import torch

    from snnflow.train.dataset import ResidentDataset

    kind = spec.name
    shape = (T, 2, 34, 34) if kind == "snn" else (1, 28, 28)
    inputs = torch.empty((n, *shape), dtype=torch.uint8, device=device)
    g = torch.Generator(device=device).manual_seed(n)
    for start in range(0, n, chunk):
        part = inputs[start:start + chunk]
        if kind == "snn":  # sparse event counts, about N-MNIST's density
            counts = torch.randint(1, 4, part.shape, generator=g, device=device)
            part.copy_(counts * (torch.rand(part.shape, generator=g, device=device) < 0.04))
        else:
            part.copy_(torch.randint(0, 256, part.shape, generator=g, device=device))
    labels = torch.randint(0, 10, (n,), generator=g, device=device)
    return ResidentDataset(inputs, labels, device, time_major=spec.time_major, scale=spec.scale)


def measure_speed(device, kind, T, switches, n_train, n_test, batch, engine="fused",
                  min_steps=50, max_seconds=60.0):
    """Seconds per training and inference epoch, from at least `min_steps` timed steps
    after a warm-up epoch part, and peak device memory."""
    import torch

    from snnflow.model import cnn, snn
    from snnflow.runs import RunSettings
    from snnflow.train.loop import build_job

    graphs, fused_block, autocast = SWITCHES[switches]
    spec = snn.KIND if kind == "snn" else cnn.KIND
    s = RunSettings(model=kind, epochs=1, batch_size=batch, lr=1e-3, seed=0,
                    device=str(device), T=T if kind == "snn" else None, engine=engine,
                    cuda_graphs=graphs and device.type == "cuda",
                    fused_cuda_block=fused_block, autocast=autocast)
    train = synthetic_split(spec, n_train, T, device)
    test = synthetic_split(spec, n_test, T, device)
    job = build_job(spec, s, train, test, threads=os.cpu_count() or 1, log=lambda m: None)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(run, steps_per_call):
        calls, total, start = 0, 0.0, time.perf_counter()
        while calls * steps_per_call < min_steps or calls == 0:
            sync()
            t0 = time.perf_counter()
            run()
            sync()
            total += time.perf_counter() - t0
            calls += 1
            if time.perf_counter() - start > max_seconds:
                break
        return total / calls, calls * steps_per_call

    train_steps, test_steps = math.ceil(n_train / batch), math.ceil(n_test / batch)
    job.trainer.train_epoch(job.train, job.generator, 1)  # warm-up: kernels, graph capture
    job.trainer.evaluate(job.test)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s, timed_train = timed(lambda: job.trainer.train_epoch(job.train, job.generator, 2),
                                 train_steps)
    test_s, timed_test = timed(lambda: job.trainer.evaluate(job.test), test_steps)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"model": "cnn" if kind == "cnn" else f"snn_T{T}", "switches": switches,
            "engine": engine, "backend": job.backend, "train_epoch_s": train_s,
            "inference_epoch_s": test_s, "timed_train_steps": timed_train,
            "timed_inference_steps": timed_test, "peak_memory_gib": peak}


def measure_reference_speed(device, T, n_train, batch, steps=50):
    """The benchmark's step-by-step reference at T, its training epoch extrapolated
    from `steps` timed steps."""
    import torch

    from snnflow.model import snn
    from step_by_step import forward_step_by_step

    torch.manual_seed(0)
    model = snn.CSNN(engine="reference").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = ((torch.rand(T, batch, 2, 34, 34, device=device) < 0.04).float() * 2)
    y = torch.randint(0, 10, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step():
        optimizer.zero_grad(set_to_none=True)
        snn.KIND.loss(forward_step_by_step(model, x).float(), y)[0].backward()
        optimizer.step()

    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    per_step = (time.perf_counter() - start) / steps
    return {"model": f"snn_T{T}", "switches": "step-by-step reference", "engine": "reference",
            "train_epoch_s": per_step * math.ceil(n_train / batch), "timed_train_steps": steps}


def demo_accuracy(device, folder, per_class, test_per_class, epochs, T=16):
    """Final test accuracy of SNN-T on the demo data for each switch combination."""
    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache
    from snnflow.data.synthetic import write_dataset
    from snnflow.model import snn
    from snnflow.runs import RunSettings, outputs_in
    from snnflow.train.loop import run

    folder = Path(folder)
    write_dataset(folder / "raw", per_class, test_per_class, 0)
    build_event_store(folder / "raw" / "NMNIST", folder / "events.h5", os.cpu_count() or 1)
    build_frame_cache(folder / "events.h5", T, folder / f"nmnist_T{T}.h5", os.cpu_count() or 1)
    results = []
    combos = [(graphs, fused, autocast) for autocast in ("none", "bf16")
              for graphs in (False, True) for fused in (False, True)]
    for graphs, fused, autocast in combos:
        if device.type != "cuda" and (graphs or fused or autocast != "none"):
            continue  # CUDA switches
        name = f"autocast={autocast} graphs={graphs} fused_block={fused}"
        out = folder / name.replace(" ", "_").replace("=", "-")
        out.mkdir()
        s = RunSettings(model="snn", epochs=epochs, batch_size=16, lr=0.003, seed=0,
                        device=str(device), channels=[8, 16, 32], hidden=64, T=T,
                        cuda_graphs=graphs, fused_cuda_block=fused, autocast=autocast)
        history = run(snn.KIND, s, folder / f"nmnist_T{T}.h5", outputs_in(out),
                      out / "checkpoint.pt", code_fingerprint="gpu-check", log=lambda m: None)
        results.append({"switches": name, "final_test_acc": history[-1]["test_acc"],
                        "train_seconds": sum(h["train_seconds"] for h in history)})
    return results


def table(report):
    from snnflow.model.kernel_paths import LIF_GRAD_TOLERANCE

    lines = ["1. correctness"]
    lines.append(f"   Triton LIF vs reference: {sum(r['passed'] for r in report['lif'])}/"
                 f"{len(report['lif'])} cases passed (spikes equal, grads <= {LIF_GRAD_TOLERANCE})")
    worst = max((r["max_grad_error"] for r in report["lif"]), default=float("nan"))
    lines.append(f"     largest gradient error {worst:.2e}")
    for r in report["block"]:
        lines.append(f"   fused block {r['shape']}: spike flips {r['spike_flips']:.1e}, grad "
                     f"rel. errors from float64 y {r['grad_y_rel_error']:.1e} w "
                     f"{r['grad_weight_rel_error']:.1e} b {r['grad_bias_rel_error']:.1e} "
                     f"(PyTorch float32: y {r['grad_y_torch_float32_rel_error']:.1e}) "
                     f"{'ok' if r['passed'] else 'MISMATCH'}")
    t = report["training"]
    lines.append(f"   {t['steps']} training steps, CUDA engine vs reference: largest loss "
                 f"difference {t['max_difference']:.2e} ({t['max_relative_difference']:.2%})")
    lines.append("2. speed: seconds per epoch at batch "
                 f"{report['settings']['batch']} ({report['settings']['n_train']} + "
                 f"{report['settings']['n_test']} samples)")
    lines.append(f"   {'model':8} {'switches':24} {'train s':>8} {'infer s':>8} {'peak GiB':>9}")
    for r in report["speed"]:
        peak = r.get("peak_memory_gib")
        lines.append(f"   {r['model']:8} {r['switches']:24} {r['train_epoch_s']:8.3f} "
                     f"{r.get('inference_epoch_s', float('nan')):8.3f} "
                     f"{peak if peak is not None else float('nan'):9.2f}")
    lines.append("3. accuracy of the switches (demo data, SNN-16)")
    for r in report["accuracy"]:
        lines.append(f"   {r['switches']:45} test acc {100 * r['final_test_acc']:6.2f} %  "
                     f"({r['train_seconds']:.1f} s of training)")
    lines.append("result: " + ("all checks passed" if report["passed"] else "MISMATCH"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="the CUDA path, checked and timed")
    parser.add_argument("--json", type=Path, default=REPO / "results" / "gpu-check.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes (the test suite's run on CPU)")
    args = parser.parse_args(argv)
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine (torch "
              f"{torch.__version__}) - run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    if device.type == "cpu" and not args.smoke:
        print("gpu-check: --device cpu only with --smoke", file=sys.stderr)
        return 2
    smoke = args.smoke
    sizes = dict(n_train=60_000, n_test=10_000, batch=256) if not smoke else \
        dict(n_train=64, n_test=32, batch=16)
    torch.backends.cudnn.benchmark = True
    report = {"settings": {"device": str(device), "torch": torch.__version__, **sizes,
                           "name": torch.cuda.get_device_name(device)
                           if device.type == "cuda" else "cpu"}}
    started = time.perf_counter()
    report["lif"], lif_ok = check_lif(device, **({"Ts": (1, 4), "shape": (2, 3, 5, 5)}
                                                  if smoke else {}))
    report["block"], block_ok = check_block(device, **({"shapes": ((2, 2, 3, 6, 7),)}
                                                        if smoke else {}))
    report["training"], training_ok = check_training(
        device, **({"steps": 3, "batch": 4, "T": 2} if smoke else {}))
    speed = []
    models = [("snn", T) for T in (4, 8, 16, 32)] + [("cnn", 1)]
    for switches in (SWITCHES if device.type == "cuda" else ["default"]):
        for kind, T in (models if not smoke else [("snn", 2), ("cnn", 1)]):
            speed.append(measure_speed(device, kind, T, switches, **sizes,
                                       min_steps=50 if not smoke else 2))
            print(f"  {speed[-1]['model']:8} {switches:20} train {speed[-1]['train_epoch_s']:.3f}"
                  f" s/epoch, inference {speed[-1]['inference_epoch_s']:.3f} s/epoch",
                  flush=True)
    speed.append(measure_reference_speed(device, 16 if not smoke else 2, sizes["n_train"],
                                         sizes["batch"], steps=50 if not smoke else 2))
    report["speed"] = speed
    with tempfile.TemporaryDirectory() as folder:
        report["accuracy"] = demo_accuracy(device, folder, *((50, 20, 3) if not smoke
                                                              else (2, 1, 1)))
    report["passed"] = bool(lif_ok and block_ok and training_ok)
    report["seconds"] = time.perf_counter() - started
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json} in {report['seconds']:.0f} s")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
