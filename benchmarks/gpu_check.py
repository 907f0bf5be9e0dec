"""make gpu-check: the CUDA path proven by one command, in a few minutes on one GPU.

    python3 benchmarks/gpu_check.py [--out results/gpu-check] [--budget-minutes 7]
                                    [--device cuda:N]

1. Correctness, with TF32 off (it compares kernels, not TF32's rounding)
   - the Triton LIF against the reference step, T = 1, 4, 16, 32, contiguous and
     channels_last, float32 and bf16 inputs: spikes bit-identical, gradients within
     LIF_GRAD_TOLERANCE of the largest (the training jobs' criterion);
   - the fused CUDA block against the three layers in turn, channels_last and
     contiguous, float32 and bf16: spikes, the gradients of y, the weight and the bias;
   - one training step of the CUDA engine (with and without the fused block): every
     parameter's gradient against the float64 reference engine's, beside PyTorch's
     float32 reference engine's own distance; then 30 steps of the loss, for
     information only (spikes that flip on the threshold grow into loss differences).
2. Speed: seconds per training and inference epoch at batch 256 of SNN-4/8/16/32 and
   the CNN, on a resident uint8 dataset of the full size (60,000 + 10,000 synthetic
   samples), each from at least 50 timed steps after a warm-up epoch, with the row's
   own peak reserved GPU memory (a CUDA graph's private pool included; every row's
   memory is freed, reference cycles collected, before the next); for the engine as it
   runs by default, with TF32, with CUDA graphs, with graphs and the fused block, and
   with all of that under bf16 autocast; the reference engine at T=16 beside them.
   Each row names the backend that really ran, what the job's kernel check found and
   any fallback.
3. Energy: NVML's energy counter over a fixed GPU load (float32 matrix products for a
   few seconds) and over one training epoch of SNN-16, the reading the training jobs'
   measured-energy columns rely on; "not measured" with the reason where NVML or the
   counter is absent, never 0.
4. Accuracy of the speed switches: 3 epochs of the demo data (SNN-16), final test
   accuracy with autocast none / bf16, CUDA graphs off / on, the fused block off / on.

Everything goes into the --out folder: gpu-check.json and gpu-check.md (the tables)
rewritten after every row, gpu-check.log (all it prints, line by line) and
environment.json (GPU, driver, torch, CUDA, Triton, numpy; nvidia-smi's report in
nvidia-smi.txt where there is one), so a killed or timed-out run leaves what it
measured. Every row is guarded (an error, out-of-memory included, becomes that row's
reason). Past the time budget the rows left are listed as skipped; the default leaves
a minute of margin under a 10-minute limit for the last row started.

Exit status, and the outcome as the last line printed: 0 all checks passed; 1 a
correctness row failed (MISMATCH), or the run is incomplete (skipped at the budget,
stopped by a signal); 2 the check cannot run here (no CUDA device, a device torch
does not know, Triton's interpreter unusable for --smoke), with one line saying why.
Needs only torch (with Triton), numpy, h5py and matplotlib: the Python of a GPU
machine that already holds torch, without installing anything (docs/gpu.md,
"Checking the GPU path").

`--device cpu --smoke` runs every part at toy sizes on the CPU, the Triton kernels in
Triton's interpreter (TRITON_INTERPRET=1): the test suite's check that the command works.
"""

import argparse
import gc
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "benchmarks")]

SWITCHES = {  # name: (cuda_graphs, fused_cuda_block, autocast, tf32)
    "default": (False, False, "none", False),
    "tf32": (False, False, "none", True),
    "graphs": (True, False, "none", False),
    "graphs+fused": (True, True, "none", False),
    "graphs+fused+bf16": (True, True, "bf16", False),
}
CORRECTNESS = ("lif", "block", "training")
SECTIONS = (*CORRECTNESS, "speed", "energy", "accuracy")
DEFAULT_BUDGET_MINUTES = 7.0  # + the longest row (about a minute) + a minute's margin < 10
EXIT_CODES = {"passed": 0, "failed": 1, "cannot run": 2}


class CannotRun(Exception):
    """The check cannot run on this machine (exit 2, one line)."""


class Report:
    """The figures so far, written into `folder` after every row (gpu-check.json and a
    Markdown table, gpu-check.md), with a time budget: a row asked for past it is listed
    as skipped instead of run."""

    def __init__(self, folder, settings, budget_seconds):
        self.json_path = Path(folder) / "gpu-check.json"
        self.md_path = self.json_path.with_suffix(".md")
        self.budget, self.started = budget_seconds, time.perf_counter()
        self.data = {"settings": settings, **{section: [] for section in SECTIONS},
                     "skipped": [], "passed": None, "seconds": 0.0, "finished": False,
                     "stopped_by": None}

    def run_row(self, section, name, measure):
        """Append measure()'s row (a dict) to `section`; an exception becomes the row's
        reason (and a failed correctness row); past the budget the row is skipped."""
        if time.perf_counter() - self.started > self.budget:
            self.data["skipped"].append(f"{section}: {name}")
            self.write()
            return None
        try:
            row = {"name": name, **measure()}
        except Exception as err:  # noqa: BLE001 - a row that cannot run says why
            row = {"name": name, "passed": False if section in CORRECTNESS else None,
                   "error": f"{type(err).__name__}: {one_line(err)}"}
        finally:
            free_device_memory()
        self.data[section].append(row)
        print(f"  {section:8} {name:44} {row_summary(section, row)}", flush=True)
        self.write()
        return row

    def finish(self):
        """True when every correctness row passed, False when one failed, None when none
        failed but some were skipped at the time budget."""
        rows = [row for section in CORRECTNESS for row in self.data[section]]
        skipped = any(name.split(":")[0] in CORRECTNESS for name in self.data["skipped"])
        if not all(row.get("passed") for row in rows):
            self.data["passed"] = False
        else:
            self.data["passed"] = None if skipped or not rows else True
        self.data["finished"] = True
        self.write()
        return self.data["passed"]

    def write(self):
        self.data["seconds"] = round(time.perf_counter() - self.started, 1)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        for path, text in ((self.json_path, json.dumps(self.data, indent=2)),
                           (self.md_path, markdown(self.data))):
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text)
            os.replace(partial, path)


def one_line(err, limit=300):
    """The whole message on one line (snnflow.first_line keeps only the first, and an
    out-of-memory error says which GPU and how much on its second)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def free_device_memory():
    """Free everything a row left: reference cycles first (a cycle that holds a CUDA
    graph keeps its private memory pool reserved until collected), then the allocator's
    cache, so that the next row's peak is its own."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def check_lif(report, device, Ts=(1, 4, 16, 32), shape=(64, 32, 17, 17)):
    """Triton LIF against the reference step, by the training jobs' own comparison and
    criterion (snnflow.model.kernel_paths)."""
    import torch

    from snnflow.kernels import lif_triton
    from snnflow.model.kernel_paths import compare_lif, lif_passes
    from snnflow.model.neuron import LIFParams

    p = LIFParams()  # the study's neuron

    def case(T, layout, precision):
        kernels = lif_triton.load()
        if kernels is None:
            raise RuntimeError("the Triton LIF kernels are not available here (Triton?)")
        g = torch.Generator(device=device).manual_seed(T)
        x = torch.randn(T * shape[0], *shape[1:], generator=g, device=device) * 1.5 + 0.5
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.unflatten(0, (T, shape[0]))
        if precision == "bf16":  # what the LIF gets under autocast: bf16 values
            x = x.to(torch.bfloat16)
        x32 = x.float()  # the LIF runs its membrane in float32 either way
        x32[:, 0, 0, 0, :] = 2.0  # exactly on the threshold after a reset
        equal, mismatches, grad_diff, largest = compare_lif(kernels, x32, p, g)
        return {"T": T, "layout": layout, "precision": precision, "spikes_equal": equal,
                "spike_mismatches": mismatches, "max_grad_diff": grad_diff,
                "relative_grad_diff": grad_diff / max(largest, 1e-12),
                "passed": lif_passes(equal, grad_diff, largest)}

    for T in Ts:
        for layout in ("contiguous", "channels_last"):
            for precision in ("float32", "bf16"):
                report.run_row("lif", f"T={T} {layout} {precision}",
                               lambda: case(T, layout, precision))


def check_block(report, device, shapes=((4, 32, 32, 34, 34), (16, 16, 64, 17, 17),
                                        (1, 8, 16, 8, 8), (2, 4, 40, 9, 9))):
    """The fused Triton block against BatchNorm2d, the LIF and MaxPool2d in turn, by the
    training jobs' own comparison and criterion (snnflow.model.kernel_paths)."""
    import torch
    from torch import nn

    from snnflow.kernels import block_triton
    from snnflow.model.kernel_paths import block_passes, compare_block
    from snnflow.model.neuron import LIFParams

    p = LIFParams()  # the study's neuron

    def case(shape, layout, dtype):
        kernels = block_triton.load()
        if kernels is None:
            raise RuntimeError("the Triton block kernels are not available here (Triton?)")
        T, N, C, H, W = shape
        g = torch.Generator(device=device).manual_seed(C)
        y = torch.randn(T * N, C, H, W, generator=g, device=device) * 1.5 + 0.3
        if layout == "channels_last":
            y = y.contiguous(memory_format=torch.channels_last)
        y = y.to(dtype).unflatten(0, (T, N))
        bn = nn.BatchNorm2d(C).to(device)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5, generator=g)
            bn.bias.uniform_(-0.3, 0.3, generator=g)
        flips, errors = compare_block(kernels, y, bn, p, g)
        return {"shape": list(shape), "layout": layout, "precision": str(dtype)[6:],
                "tile": list(block_triton.tile(y)), "spike_flips": flips,
                **{f"grad_{k}_rel_error": ours for k, (ours, _) in errors.items()},
                **{f"grad_{k}_torch_float32_rel_error": theirs
                   for k, (_, theirs) in errors.items()},
                "passed": block_passes(flips, errors, dtype)}

    cases = [(shape, layout, dtype) for shape in shapes
             for layout in ("channels_last", "contiguous")
             for dtype in (torch.float32, torch.bfloat16)]
    for shape, layout, dtype in cases:
        report.run_row("block", f"{shape} {layout} {str(dtype)[6:]}",
                       lambda: case(shape, layout, dtype))


def gradients_of_one_step(model, x, y):
    """{parameter name: gradient} of the study's loss on one batch."""
    from snnflow.model import snn

    model.zero_grad(set_to_none=True)
    snn.KIND.loss(model(x).float(), y)[0].backward()
    return {name: p.grad.detach().double() for name, p in model.named_parameters()}


def check_training(report, device, batch=4, T=4, steps=30, attempts=5):
    """One training step of the CUDA engine against the float64 reference engine, with
    PyTorch's float32 reference engine run in the same layout (channels_last) beside it:
    its forward is the CUDA engine's bit for bit (the same convolutions, the LIF's exact
    forward), so it takes the same branch of every spike. A membrane within float32
    rounding of the threshold flips a spike against float64, which moves the gradients a
    lot in both float32 engines alike; so a batch passes when every parameter's gradient
    is within RELATIVE_TOLERANCE (of the largest) of float64's, or of the float32
    reference's. The fused block rounds BatchNorm as one fma and may flip a spike of its
    own: the row passes when most of `attempts` batches do. A wrong gradient (a surrogate
    slope 1 % off) fails every batch. Then the loss over `steps` Adam steps, for
    information."""
    import torch

    from snnflow.model import snn
    from snnflow.model.kernel_paths import RELATIVE_TOLERANCE
    from snnflow.model.neuron import LIFParams
    from snnflow.path_check import relative_difference

    backend = "triton" if device.type == "cuda" else "torch"

    def engines():
        torch.manual_seed(0)
        models = {"float64 reference": snn.CSNN(neuron=LIFParams(), engine="reference"),
                  "float32 reference": snn.CSNN(neuron=LIFParams(), engine="reference"),
                  "cuda engine": snn.CSNN(neuron=LIFParams(), engine="fused", backend=backend),
                  "cuda engine, fused block": snn.CSNN(neuron=LIFParams(), engine="fused",
                                                       backend=backend,
                                                       fuse_cuda_blocks=True)}
        for name, model in models.items():
            model.load_state_dict(models["float64 reference"].state_dict())
            model.to(device).train()
            if name != "float64 reference":
                model.to(memory_format=torch.channels_last)
        models["float64 reference"].double()
        return models

    def batch_of(seed):
        g = torch.Generator(device=device).manual_seed(seed)
        x = (torch.rand(T, batch, 2, 34, 34, generator=g, device=device) < 0.05).float() * 2
        return x, torch.randint(0, 10, (batch,), generator=g, device=device)

    models, references = {}, {}  # shared by both engines' rows: no step changes weights

    def reference(seed):
        """(batch, labels, float64 and float32 reference gradients) of batch `seed`."""
        if seed not in references:
            x, y = batch_of(seed)
            references[seed] = (x, y, gradients_of_one_step(models["float64 reference"],
                                                             x.double(), y),
                                gradients_of_one_step(models["float32 reference"], x, y))
        return references[seed]

    def first_step(engine):
        if not models:
            models.update(engines())
        tries = []
        for seed in range(1, attempts + 1):
            x, y, exact, float32 = reference(seed)
            ours = gradients_of_one_step(models[engine], x, y)

            def distance(grads, reference):
                return max(relative_difference(grads[k], reference[k]) for k in reference)
            to_float64, to_float32 = distance(ours, exact), distance(ours, float32)
            tries.append({"batch_seed": seed, "grad_rel_error": to_float64,
                          "grad_rel_error_to_float32": to_float32,
                          "torch_float32_grad_rel_error": distance(float32, exact),
                          "passed": min(to_float64, to_float32) <= RELATIVE_TOLERANCE})
        passing = [t for t in tries if t["passed"]]
        worst = max(tries, key=lambda t: min(t["grad_rel_error"],
                                             t["grad_rel_error_to_float32"]))
        return {"batch": batch, "T": T, "tries": tries, "batches_passed": len(passing),
                "passed": 2 * len(passing) > len(tries),
                **{key: worst[key] for key in ("grad_rel_error", "grad_rel_error_to_float32",
                                               "torch_float32_grad_rel_error")}}

    def trajectory():
        models = engines()
        del models["float64 reference"]
        batches = [batch_of(100 + step) for step in range(steps)]
        losses = {}
        for name, model in models.items():
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            losses[name] = []
            for x, y in batches:
                optimizer.zero_grad(set_to_none=True)
                loss = snn.KIND.loss(model(x).float(), y)[0]
                loss.backward()
                optimizer.step()
                losses[name].append(float(loss.detach()))
        scale = max(abs(v) for v in losses["float32 reference"])
        difference = max(abs(a - b) for name in losses if name != "float32 reference"
                         for a, b in zip(losses[name], losses["float32 reference"]))
        return {"steps": steps, "losses": losses, "max_relative_difference": difference / scale,
                "passed": True, "information_only": True}

    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # the same convolution algorithms for all
    try:
        for engine in ("cuda engine", "cuda engine, fused block"):
            report.run_row("training", f"first-step gradients, {engine}",
                           lambda: first_step(engine))
        report.run_row("training", f"{steps} steps' loss against the float32 reference",
                       trajectory)
    finally:
        torch.backends.cudnn.benchmark = benchmark


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
    scale = 1.0 if kind == "snn" else 1.0 / 255.0  # frames as counts, MNIST images to [0, 1]
    return ResidentDataset(inputs, labels, device, time_major=spec.time_major, scale=scale)


def training_job(device, kind, T, switches, n_train, n_test, batch, engine="fused"):
    """(a training job as the workflow builds it, on resident synthetic data of the given
    sizes, with the `switches` of SWITCHES; a function that waits for the device)."""
    import torch

    from snnflow.model import cnn, snn
    from snnflow.runs import RunSettings
    from snnflow.train.loop import build_job

    graphs, fused_block, autocast, tf32 = SWITCHES[switches]
    spec = snn.KIND if kind == "snn" else cnn.KIND
    s = RunSettings(model=kind, epochs=1, batch_size=batch, lr=1e-3, seed=0,
                    device=str(device), T=T if kind == "snn" else None, engine=engine,
                    cuda_graphs=graphs and device.type == "cuda",
                    fused_cuda_block=fused_block, autocast=autocast, tf32=tf32)
    train = synthetic_split(spec, n_train, T, device)
    test = synthetic_split(spec, n_test, T, device)
    job = build_job(spec, s, train, test, threads=os.cpu_count() or 1, log=lambda m: None)
    return job, (torch.cuda.synchronize if device.type == "cuda" else (lambda: None))


def measure_speed(device, kind, T, switches, n_train, n_test, batch, engine="fused",
                  min_steps=50, max_seconds=30.0):
    """Seconds per training and inference epoch, from at least `min_steps` timed steps
    after a warm-up epoch (at most `max_seconds` of timed calls each), the row's peak
    reserved device memory, and what really ran: the backend, the job's kernel check
    and any fallback."""
    import torch

    graphs, fused_block, autocast, tf32 = SWITCHES[switches]
    job, sync = training_job(device, kind, T, switches, n_train, n_test, batch, engine)

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

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_steps, test_steps = math.ceil(n_train / batch), math.ceil(n_test / batch)
    job.trainer.train_epoch(job.train, job.generator, 1)  # warm-up: kernels, graph capture
    job.trainer.evaluate(job.test)
    train_s, timed_train = timed(lambda: job.trainer.train_epoch(job.train, job.generator, 2),
                                 train_steps)
    test_s, timed_test = timed(lambda: job.trainer.evaluate(job.test), test_steps)
    peak = torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None
    ran = [job.backend]
    if job.trainer.graphs is not None:
        ran.append("graphs")
    if getattr(job.model, "fuse_cuda_blocks", False):
        ran.append("fused block")
    if autocast != "none":
        ran.append(autocast)
    if tf32 and device.type == "cuda":
        ran.append("tf32")
    check = job.kernel_check
    del job  # run_row frees its memory before the next row
    return {"model": "cnn" if kind == "cnn" else f"snn_T{T}", "switches": switches,
            "engine": engine, "ran": " + ".join(ran), "train_epoch_s": train_s,
            "inference_epoch_s": test_s, "timed_train_steps": timed_train,
            "timed_inference_steps": timed_test, "peak_reserved_gib": peak,
            "kernel_check": check["summary"], "fell_back": check["fell_back"], "passed": None}


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
            "ran": "torch (step by step)", "train_epoch_s": per_step * math.ceil(n_train / batch),
            "timed_train_steps": steps, "passed": None}


def check_energy(report, device, n_train, n_test, batch, load_seconds=5.0, T=16,
                 open_meter=None):
    """NVML's energy counter, read as the training jobs read it (snnflow.train.energy),
    over a fixed load (float32 matrix products for `load_seconds`) and over one training
    epoch of SNN-T on the default engine; one row saying why where nothing can be read."""
    import torch

    from snnflow.train import energy

    meter, note = (open_meter or energy.open_meter)(device)
    if meter is None:
        report.run_row("energy", "NVML energy counter",
                       lambda: {"measured": False, "note": note, "passed": None})
        return
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def measured(work):
        sync()
        joules, start = meter.joules(), time.perf_counter()
        work()
        sync()
        joules, seconds = meter.joules() - joules, time.perf_counter() - start
        if joules <= 0:
            return {"measured": False, "seconds": seconds, "passed": None,
                    "note": f"not measured: the counter of {meter.device_name} did not "
                            f"advance in {seconds:.1f} s of work"}
        return {"measured": True, "joules": joules, "seconds": seconds,
                "watts": joules / seconds, "note": note, "passed": None}

    def fixed_load():
        n = 4096 if device.type == "cuda" else 64
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        c = torch.empty(n, n, device=device)
        products = [0]

        def work():
            start = time.perf_counter()
            while time.perf_counter() - start < load_seconds:
                for _ in range(20):
                    torch.mm(a, b, out=c)
                    products[0] += 1
                sync()
        row = measured(work)
        return {**row, "load": f"{products[0]} float32 {n}x{n} matrix products"}

    def training_epoch():
        job, _ = training_job(device, "snn", T, "default", n_train, n_test, batch)
        job.trainer.train_epoch(job.train, job.generator, 1)  # warm-up: kernels, caches
        row = measured(lambda: job.trainer.train_epoch(job.train, job.generator, 2))
        return {**row, "load": f"one SNN-{T} training epoch of {n_train} samples at batch "
                               f"{batch}, default engine"}

    report.run_row("energy", f"fixed load ({load_seconds:g} s)", fixed_load)
    report.run_row("energy", f"SNN-{T} training epoch", training_epoch)


def demo_accuracy(report, device, folder, per_class, test_per_class, epochs, T=16):
    """Final test accuracy of SNN-T on the demo data for each switch combination."""
    from snnflow.data.events import build_event_store
    from snnflow.data.frames import build_frame_cache
    from snnflow.data.synthetic import write_dataset
    from snnflow.model import snn
    from snnflow.runs import RunSettings, outputs_in
    from snnflow.train.loop import run

    folder = Path(folder)

    def data():
        write_dataset(folder / "raw", per_class, test_per_class, 0)
        build_event_store(folder / "raw" / "NMNIST", folder / "events.h5", os.cpu_count() or 1)
        build_frame_cache(folder / "events.h5", T, folder / f"nmnist_T{T}.h5",
                          os.cpu_count() or 1)

    def train(graphs, fused, autocast, name):
        out = folder / name.replace(" ", "_").replace("=", "-")
        out.mkdir()
        s = RunSettings(model="snn", epochs=epochs, batch_size=16, lr=0.003, seed=0,
                        device=str(device), channels=[8, 16, 32], hidden=64, T=T,
                        cuda_graphs=graphs, fused_cuda_block=fused, autocast=autocast)
        lines = []
        history = run(snn.KIND, s, folder / f"nmnist_T{T}.h5", outputs_in(out),
                      out / "checkpoint.pt", code_fingerprint="gpu-check", log=lines.append)
        info = json.loads((out / "run.json").read_text())
        return {"switches": name, "final_test_acc": history[-1]["test_acc"],
                "train_seconds": sum(h["train_seconds"] for h in history),
                "ran": info["backend"], "kernel_check": info["kernel_check"]["summary"],
                "passed": None}

    made = report.run_row("accuracy", "demo data", lambda: (data(), {"passed": None})[1])
    if made is None or "error" in made:
        return
    combos = [(graphs, fused, autocast) for autocast in ("none", "bf16")
              for graphs in (False, True) for fused in (False, True)]
    for graphs, fused, autocast in combos:
        if device.type != "cuda" and (graphs or fused or autocast != "none"):
            continue  # CUDA switches
        name = f"autocast={autocast} graphs={graphs} fused_block={fused}"
        report.run_row("accuracy", name, lambda: train(graphs, fused, autocast, name))


def row_summary(section, row):
    if "error" in row:
        return f"{'MISMATCH' if row.get('passed') is False else 'error'}: {row['error']}"
    verdict = {True: "ok", False: "MISMATCH", None: ""}[row.get("passed")]
    if section == "lif":
        return (f"spikes {'equal' if row['spikes_equal'] else 'DIFFER'}, grad diff "
                f"{row['relative_grad_diff']:.1e} of the largest {verdict}")
    if section == "block":
        return (f"flips {row['spike_flips']:.1e}, grad y {row['grad_y_rel_error']:.1e} w "
                f"{row['grad_weight_rel_error']:.1e} b {row['grad_bias_rel_error']:.1e} "
                f"(float32 PyTorch: y {row['grad_y_torch_float32_rel_error']:.1e}) {verdict}")
    if section == "training" and "tries" in row:
        return (f"{row['batches_passed']} of {len(row['tries'])} batches passed; worst grad "
                f"{row['grad_rel_error']:.1e} from float64, "
                f"{row['grad_rel_error_to_float32']:.1e} from float32 PyTorch (which is "
                f"{row['torch_float32_grad_rel_error']:.1e} from float64) {verdict}")
    if section == "training":
        return f"largest loss difference {row['max_relative_difference']:.2%} (information)"
    if section == "speed":
        peak = row.get("peak_reserved_gib")
        return (f"train {row['train_epoch_s']:.3f} s, inference "
                f"{row.get('inference_epoch_s', float('nan')):.3f} s per epoch, peak "
                f"{'-' if peak is None else f'{peak:.2f} GiB'}; ran {row['ran']}")
    if section == "energy":
        if not row["measured"]:
            return row["note"]
        return (f"{row['joules']:.1f} J in {row['seconds']:.1f} s ({row['watts']:.0f} W "
                f"mean) over {row['load']}")
    if section == "accuracy" and row["name"] == "demo data":
        return "made"
    if section == "accuracy" and "final_test_acc" in row:
        return (f"test acc {100 * row['final_test_acc']:.2f} % ({row['train_seconds']:.1f} s); "
                f"ran {row['ran']}")
    return verdict


def result_line(data):
    """The outcome in a few words (the last line gpu-check prints, and the table's head)."""
    if data["stopped_by"]:
        return f"incomplete: stopped by {data['stopped_by']}"
    if data["passed"] is None:
        return ("incomplete: correctness rows skipped at the time budget" if data["finished"]
                else "not finished")
    return "all checks passed" if data["passed"] else "MISMATCH"


def energy_line(data):
    """Whether the NVML energy counter was read: measured, or why not."""
    rows = [row for row in data["energy"] if "error" not in row]
    if any(row["measured"] for row in rows):
        return "energy measured by NVML"
    errors = [row for row in data["energy"] if "error" in row]
    if rows:
        return f"energy {rows[0]['note']}"
    return f"energy not measured: {errors[0]['error']}" if errors else "energy not measured"


def speed_table(rows):
    lines = ["| model | switches | ran | train s | inference s | peak GiB | kernel check |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | | error | | | | {row['error']} |")
            continue
        peak = row.get("peak_reserved_gib")
        inference = row.get("inference_epoch_s")
        lines.append(f"| {row['model']} | {row['switches']} | {row['ran']} | "
                     f"{row['train_epoch_s']:.3f} | "
                     f"{'-' if inference is None else f'{inference:.3f}'} | "
                     f"{'-' if peak is None else f'{peak:.2f}'} | "
                     f"{row.get('kernel_check', '-')} |")
    return lines


def markdown(data):
    """The report as Markdown tables, for docs/gpu.md."""
    settings = data["settings"]
    lines = [f"# make gpu-check on {settings['name']}", "",
             f"torch {settings['torch']}, device {settings['device']}, "
             f"{data['seconds']:.0f} s{'' if data['finished'] else ' (unfinished)'}; result: "
             + result_line(data) + f"; {energy_line(data)}", ""]
    titles = {"lif": "Triton LIF against the reference step",
              "block": "Fused CUDA block against the three layers in turn",
              "training": "Training against the float64 reference",
              "energy": "Energy read from NVML (as the training jobs read it)",
              "speed": f"Seconds per epoch at batch {settings['batch']} "
                       f"({settings['n_train']} + {settings['n_test']} samples)",
              "accuracy": "Accuracy of the switches (demo data, SNN-16)"}
    for section in SECTIONS:
        if not data[section]:
            continue
        lines += [f"## {titles[section]}", ""]
        lines += speed_table(data[section]) if section == "speed" else [
            "| row | result |", "| --- | --- |",
            *[f"| {row['name']} | {row_summary(section, row).replace('|', '/')} |"
              for row in data[section]]]
        lines.append("")
    if data["skipped"]:
        lines += ["## Skipped (time budget)", "", *[f"- {name}" for name in data["skipped"]], ""]
    return "\n".join(lines)


class Tee:
    """A stream that also writes every line into the run's log file, flushed at once (a
    kill loses nothing printed)."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        self.log.flush()
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()


def environment(device):
    """What the check ran on: GPU, driver, torch, CUDA, Triton and numpy (and nvidia-smi's
    own report, returned apart for its file; None where there is no nvidia-smi)."""
    import numpy
    import torch

    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "triton": triton_version, "numpy": numpy.__version__, "device": str(device),
           "gpu": None, "driver": None, "nvidia_smi": "not present"}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        env["gpu"] = {"name": properties.name,
                      "capability": f"{properties.major}.{properties.minor}",
                      "memory_gib": round(properties.total_memory / 2**30, 1),
                      "multiprocessors": properties.multi_processor_count}
    smi_report = None
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            smi_report = subprocess.run([smi], capture_output=True, text=True,
                                        timeout=30).stdout
            env["driver"] = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.split("\n")[0].strip()
            env["nvidia_smi"] = "nvidia-smi.txt"
        except (OSError, subprocess.SubprocessError) as err:
            env["nvidia_smi"] = f"failed: {one_line(err)}"
    return env, smi_report


def interpreter_problem():
    """None where Triton's interpreter runs a kernel that loops over a run-time count, as
    the LIF kernels do; else one line saying why not. Triton 3.6's interpreter turns
    that count into a Python int through a one-element numpy array, which numpy 2.4 and
    later refuse."""
    import numpy
    import torch

    try:
        import triton
        import triton.language as tl
    except ImportError:
        return "Triton is not installed in this Python - install the test extras (make test)"

    @triton.jit
    def count_kernel(out_ptr, n):
        total = 0.0
        for _ in range(n):
            total += 1.0
        tl.store(out_ptr, total)

    out = torch.zeros(1)
    try:
        count_kernel[(1,)](out, 3)
    except Exception as err:  # noqa: BLE001 - InterpreterError wraps what numpy raised
        return (f"Triton {triton.__version__}'s interpreter cannot run the LIF kernels with "
                f"numpy {numpy.__version__} ({one_line(err, 120)}) - Triton's interpreter "
                "before 3.7 needs numpy < 2.4; the tests use Triton 3.9")
    return None if out.item() == 3.0 else "Triton's interpreter miscounts a loop"


def open_out_folder(folder):
    """The folder every file of the check goes into, made if needed; a file in its place
    or a folder that cannot be written is refused in one line."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CannotRun(f"--out {folder}: a file, not a folder - name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".gpu-check-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CannotRun(f"--out {folder}: cannot write there ({err.strerror}) - name a "
                        "folder you can write") from None
    return folder


def parse_device(name, smoke):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise CannotRun(f"--device {name!r} is not a device torch knows - use cuda, cuda:N "
                        "or (with --smoke) cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CannotRun(f"no CUDA device on this machine (torch {torch.__version__}) - run "
                        "it on a machine with an NVIDIA GPU")
    if device.type not in ("cuda", "cpu"):
        raise CannotRun(f"--device {name!r}: gpu-check checks NVIDIA GPUs (cuda, cuda:N)")
    if device.type == "cpu" and not smoke:
        raise CannotRun("--device cpu only with --smoke")
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        problem = interpreter_problem()
        if problem:
            raise CannotRun(problem)
    return device


def stop_on_signal(signum, frame):
    """Stop the check at the first SIGTERM or SIGINT; later ones (make passing a timeout's
    signal on) are ignored while the tables are written."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


class Stopped(BaseException):
    """A signal (a timeout's SIGTERM, Ctrl-C) stopped the check: not an Exception, so no
    row's guard takes it for that row's error."""


def run_checks(report, device, smoke):
    from snnflow.precision import tf32_off

    sizes = {key: report.data["settings"][key] for key in ("n_train", "n_test", "batch")}
    with tf32_off():
        check_lif(report, device, **({"Ts": (1, 4), "shape": (2, 3, 5, 5)} if smoke else {}))
        check_block(report, device, **({"shapes": ((2, 2, 3, 6, 7), (1, 2, 34, 4, 4))}
                                       if smoke else {}))
        check_training(report, device, **({"steps": 3, "batch": 2, "T": 2} if smoke else {}))
    models = [("snn", 16), ("cnn", 1), ("snn", 4), ("snn", 8), ("snn", 32)]
    for switches in (SWITCHES if device.type == "cuda" else ["default"]):
        for kind, T in (models if not smoke else [("snn", 2), ("cnn", 1)]):
            name = f"{'cnn' if kind == 'cnn' else f'snn_T{T}'} {switches}"
            report.run_row("speed", name, lambda: measure_speed(
                device, kind, T, switches, **sizes, min_steps=50 if not smoke else 2))
    T_reference = 16 if not smoke else 2
    report.run_row("speed", f"snn_T{T_reference} step-by-step reference",
                   lambda: measure_reference_speed(device, T_reference, sizes["n_train"],
                                                   sizes["batch"],
                                                   steps=50 if not smoke else 2))
    check_energy(report, device, **sizes, **({"load_seconds": 0.2, "T": 2} if smoke else {}))
    with tempfile.TemporaryDirectory() as folder:
        demo_accuracy(report, device, folder, *((50, 20, 3) if not smoke else (2, 1, 1)))


def main(argv=None):
    parser = argparse.ArgumentParser(description="the CUDA path, checked and timed")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu-check",
                        help="the folder for every file the check writes (default "
                             "results/gpu-check)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES,
                        help="stop starting rows after this long and write what is there "
                             f"(default {DEFAULT_BUDGET_MINUTES:g}: with the last row, "
                             "within 9 minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes (the test suite's run on CPU)")
    args = parser.parse_args(argv)
    import torch

    try:
        device = parse_device(args.device, args.smoke)
        out = open_out_folder(args.out)
    except CannotRun as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return EXIT_CODES["cannot run"]
    with open(out / "gpu-check.log", "w") as log:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(stdout, log), Tee(stderr, log)
        handlers = {s: signal.signal(s, stop_on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return checked(args, device, out)
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)
            sys.stdout, sys.stderr = stdout, stderr


def checked(args, device, out):
    import torch

    from snnflow.train import loop

    if device.type == "cuda":
        device = loop.resolve_device(str(device))  # made current: Triton launches there
    env, smi_report = environment(device)
    (out / "environment.json").write_text(json.dumps(env, indent=2))
    if smi_report is not None:
        (out / "nvidia-smi.txt").write_text(smi_report)
    print(f"gpu-check on {env['gpu']['name'] if env['gpu'] else 'the CPU (smoke)'}: torch "
          f"{env['torch']}, CUDA {env['cuda']}, Triton {env['triton']}, numpy {env['numpy']}, "
          f"driver {env['driver']}; writing into {out}", flush=True)
    sizes = dict(n_train=60_000, n_test=10_000, batch=256) if not args.smoke else \
        dict(n_train=64, n_test=32, batch=16)
    torch.backends.cudnn.benchmark = True
    report = Report(out, {"device": str(device), "torch": torch.__version__, **sizes,
                          "name": env["gpu"]["name"] if env["gpu"] else "cpu"},
                    args.budget_minutes * 60)
    try:
        run_checks(report, device, args.smoke)
    except Stopped as stop:
        report.data["stopped_by"] = str(stop)
        report.write()
        print(f"gpu-check: stopped by {stop}; the rows done so far are in {out}")
    else:
        report.finish()
        print(markdown(report.data))
    passed = report.data["passed"] and not report.data["stopped_by"]
    print(f"wrote gpu-check.json, gpu-check.md, gpu-check.log and environment.json into {out} "
          f"in {report.data['seconds']:.0f} s")
    status = EXIT_CODES["passed" if passed else "failed"]
    print(f"result: {result_line(report.data)}; {energy_line(report.data)} (exit {status})",
          flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
