"""gpu-check's rows: the Triton LIF (and IF and PLIF), the fused block and a training step against their
references, seconds per epoch of every model and switch, NVML's energy, the switches'
accuracy on the demo data (snnflow.gpu_check)."""

import json
import math
import os
import tempfile
import time
from pathlib import Path

SWITCHES = {  # name: (cuda_graphs, fused_cuda_block, autocast, tf32)
    "default": (False, False, "none", False),
    "tf32": (False, False, "none", True),
    "graphs": (True, False, "none", False),
    "graphs+fused": (True, True, "none", False),
    "graphs+fused+bf16": (True, True, "bf16", False),
}


def checked_neurons():
    """{surrogate: LIFParams} of the neurons the kernel rows check: the study's, and the
    same with snn.surrogate: atan at its default slope."""
    from snnflow.model.neuron import LIFParams

    return {"sigmoid": LIFParams(), "atan": LIFParams(alpha=2.0, surrogate="atan")}


def check_lif(report, device, Ts=(1, 4, 16, 32), shape=(64, 32, 17, 17)):
    """Triton LIF against the reference step, by the training jobs' own comparison and
    criterion (snnflow.model.kernel_paths)."""
    import torch

    from snnflow.kernels import lif_triton
    from snnflow.model.kernel_paths import compare_lif, lif_passes

    neurons = checked_neurons()

    def case(T, layout, precision, surrogate="sigmoid"):
        p = neurons[surrogate]
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
        return {"T": T, "layout": layout, "precision": precision, "surrogate": surrogate,
                "spikes_equal": equal,
                "spike_mismatches": mismatches, "max_grad_diff": grad_diff,
                "relative_grad_diff": grad_diff / max(largest, 1e-12),
                "passed": lif_passes(equal, grad_diff, largest)}

    def neuron_case(T, neuron):
        """The Triton IF or PLIF kernels (snn.neuron) by compare_neuron, the PLIF's decay
        that of tau 1.7 (not a power of two)."""
        from snnflow.model.kernel_paths import RELATIVE_TOLERANCE, compare_neuron
        from snnflow.model.neuron import LIFParams

        kernels = lif_triton.load()
        if kernels is None:
            raise RuntimeError("the Triton kernels are not available here (Triton?)")
        p = LIFParams(tau=1.7, neuron=neuron)
        g = torch.Generator(device=device).manual_seed(T)
        x = torch.randn(T * shape[0], *shape[1:], generator=g, device=device) * 1.5 + 0.5
        x = x.contiguous(memory_format=torch.channels_last).unflatten(0, (T, shape[0]))
        decay = (torch.sigmoid(torch.tensor(-math.log(p.tau - 1.0), device=device))
                 if neuron == "plif" else None)
        equal, mismatches, grad_diff, largest, decay_diff = compare_neuron(kernels, x, p, decay, g)
        return {"T": T, "layout": "channels_last", "precision": "float32", "surrogate": "sigmoid",
                "neuron": neuron, "spikes_equal": equal, "spike_mismatches": mismatches,
                "max_grad_diff": grad_diff, "relative_grad_diff": grad_diff / max(largest, 1e-12),
                "decay_grad_diff": decay_diff,
                "passed": (lif_passes(equal, grad_diff, largest)
                           and decay_diff <= RELATIVE_TOLERANCE)}

    for T in Ts:
        for layout in ("contiguous", "channels_last"):
            for precision in ("float32", "bf16"):
                report.run_row("lif", f"T={T} {layout} {precision}",
                               lambda: case(T, layout, precision))
        report.run_row("lif", f"T={T} channels_last float32 atan",
                       lambda: case(T, "channels_last", "float32", "atan"))
        for neuron in ("if", "plif"):
            report.run_row("lif", f"T={T} channels_last float32 {neuron}",
                           lambda: neuron_case(T, neuron))


def check_block(report, device, shapes=((4, 32, 32, 34, 34), (16, 16, 64, 17, 17),
                                        (1, 8, 16, 8, 8), (2, 4, 40, 9, 9))):
    """The fused Triton block against BatchNorm2d, the LIF and MaxPool2d in turn, by the
    training jobs' own comparison and criterion (snnflow.model.kernel_paths)."""
    import torch
    from torch import nn

    from snnflow.kernels import block_triton
    from snnflow.model.kernel_paths import block_passes, compare_block

    neurons = checked_neurons()

    def case(shape, layout, dtype, surrogate="sigmoid"):
        p = neurons[surrogate]
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
                "surrogate": surrogate,
                "tile": list(block_triton.tile(y)), "spike_flips": flips,
                **{f"grad_{k}_rel_error": ours for k, (ours, _) in errors.items()},
                **{f"grad_{k}_torch_float32_rel_error": theirs
                   for k, (_, theirs) in errors.items()},
                "passed": block_passes(flips, errors, dtype)}

    cases = [(shape, layout, dtype, "sigmoid") for shape in shapes
             for layout in ("channels_last", "contiguous")
             for dtype in (torch.float32, torch.bfloat16)]
    cases += [(shape, "channels_last", torch.float32, "atan") for shape in shapes]
    for shape, layout, dtype, surrogate in cases:
        report.run_row("block", f"{shape} {layout} {str(dtype)[6:]}"
                       + (f" {surrogate}" if surrogate != "sigmoid" else ""),
                       lambda: case(shape, layout, dtype, surrogate))


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
    from snnflow.device.path_check import relative_difference

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
    from snnflow.model.step_by_step import forward_step_by_step

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


def run_checks(report, device, smoke):
    from snnflow.device.precision import tf32_off

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
