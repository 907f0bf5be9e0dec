"""One training run of the SNN or the CNN: prepare, resume, fit, write.

    run(settings, cache, ...)
      prepare  device, data resident, model built on the chosen backend, optimiser
      resume   the checkpoint of the same settings and code, if any
      fit      per epoch: train, evaluate, one CSV row, a checkpoint, the live curves
      write    the final model and run.json

What differs between the SNN and the CNN (data, backend, network, loss) is one
`ModelKind` each (snnflow.runs; snnflow.model.snn.KIND, snnflow.model.cnn.KIND); the
loop is shared.
"""

import contextlib
import csv
import ctypes
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from snnflow import SnnflowError, __version__
from snnflow.jobs.atomic import atomic_path
from snnflow.device.cuda_check import refuse_accidental_cpu
from snnflow.data.caches import cache_framing, cache_identity, input_shape
from snnflow.data.validation import held_out, split_identity
from snnflow.jobs.run import report_position_with
from snnflow.kernels import loader
from snnflow.device.machine import cpu_name
from snnflow.device.precision import AUTOCAST_DTYPES, set_tf32
from snnflow.runs import (FAILURE_ADVICE, LAYER_COLUMNS, METRICS_COLUMNS, PREDICTION_COLUMNS,
                          RunOutputs, RunSettings, described, failure_signs, is_number)
from snnflow.plan.settings import config_key
from snnflow.train import energy, kernel_check
from snnflow.train.checkpoint import (holding_run, load_state, restore_rng, rng_states,
                                      save_state)
from snnflow.train.curves import Curves, attempt_folder
from snnflow.train.dataset import ResidentDataset
from snnflow.train.memory import refuse_what_cannot_fit
from snnflow.train.gpu_slots import claim_gpu, count_gpus, slot_count
from snnflow.train.progress import Progress
from snnflow.train.steps import BATCHNORM_SETTLED_STEPS, Trainer, sync

def resolve_device(name):
    """The torch.device of the config's `device`, with its index, made the current CUDA
    device: Triton launches its kernels, and streams and graph captures run, on the
    current device, not on the tensors' (so `cuda:1` would otherwise run them on GPU 0).
    `auto` on a machine with NVIDIA GPUs that this torch cannot use is refused
    (snnflow.device.cuda_check), never the CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            refuse_accidental_cpu(name, count_gpus())
            return torch.device("cpu")
        name = "cuda"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SnnflowError(f"config key device: '{name}' asked for, but this machine has no "
                           "CUDA device - set device: auto or cpu")
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        raise SnnflowError(f"config key device: '{name}', but this job sees "
                           f"{torch.cuda.device_count()} CUDA device(s) (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}) - use cuda:0 "
                           "to cuda:N-1, or device: auto")
    torch.cuda.set_device(device)
    return device


def keep_freed_memory():
    """Stop glibc from returning large blocks to the OS after every step; re-mapping
    them each step made multi-step training 13-46% slower and timings unstable."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, -1)  # -1: never trim


def configure_backend(s: RunSettings, device):
    """Apply the performance switches; returns the autocast context factory."""
    if device.type == "cuda":
        set_tf32(s.tf32)
        torch.backends.cudnn.benchmark = s.cudnn_benchmark and not s.deterministic
        if s.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
        if s.autocast != "none":
            dtype = AUTOCAST_DTYPES[s.autocast]
            # a CUDA graph replays the casts it captured: no cache of cast weights
            return lambda: torch.autocast("cuda", dtype=dtype, cache_enabled=not s.cuda_graphs)
    return contextlib.nullcontext


@dataclass
class Job:
    """A prepared run: everything `fit` and `write` need."""
    settings: RunSettings
    device: torch.device
    train: ResidentDataset
    validation: ResidentDataset | None  # held out of the training split, or None
    test: ResidentDataset
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    trainer: Trainer
    generator: torch.Generator
    backend: str
    threads: int
    data_identity: str      # the cache's (snnflow.data.identity)
    kernel_check: dict      # what the paths' check found (snnflow.train.kernel_check)
    energy_meter: object    # an EnergyMeter of the GPU, or None (snnflow.train.energy)
    energy_note: str        # how the energy columns were measured, or why they were not
    split: dict             # the validation split's record for run.json
    predictions: torch.Tensor | None = None  # of the last evaluation in this process

    def computed_from(self, code_fingerprint):
        """What the run computes from, for resuming: the settings and the code, the data,
        and on the CPU the thread count (PyTorch's CPU BatchNorm, small matrix products,
        loss reductions and, from 8 threads, convolutions' weight gradients sum in an
        order that depends on it; docs/performance.md)."""
        return {"settings": asdict(self.settings), "code": code_fingerprint,
                "data": self.data_identity,
                "cpu_threads": self.threads if self.device.type == "cpu" else None}


def load_data(kind, s: RunSettings, cache, device):
    """The (train, validation or None, test) ResidentDatasets of `cache`, and the
    validation split's record: the validation samples are taken out of the training
    split (snnflow.data.validation), the rest keep their order."""
    arrays = {}
    for split in ("train", "test"):
        inputs, labels = kind.load(cache, split)
        if kind.time_major and inputs.shape[1] != s.T:
            raise SnnflowError(f"{cache}: frames have T={inputs.shape[1]}, the run asks for "
                               f"T={s.T} - delete the cache and rerun")
        arrays[split] = (inputs, labels)
    inputs, labels = arrays["train"]
    held = held_out(labels, s.validation_fraction, s.validation_seed)
    split = {"fraction": s.validation_fraction, "seed": s.validation_seed,
             "n_validation": int(held.sum()), "identity": split_identity(held)}
    if s.validation_fraction > 0:
        if not held.any():
            raise SnnflowError(f"config key validation.fraction: {s.validation_fraction} of the "
                               f"{len(labels)} training samples in {cache} holds out none - "
                               "raise it or set it to 0")
        arrays["validation"] = (inputs[held], labels[held])
        arrays["train"] = (inputs[~held], labels[~held])
    scale = kind.scale(cache)
    data = {name: ResidentDataset(*pair, device, kind.time_major, scale)
            for name, pair in arrays.items()}
    if s.batch_size > len(data["train"]):
        raise SnnflowError(f"config key {s.model}.batch_size: {s.batch_size} is larger than the "
                           f"{len(data['train'])} training samples in {cache} - lower it")
    return data["train"], data.get("validation"), data["test"], split


def prepare(kind, s: RunSettings, cache, threads, log):
    """Device, data (and what it was made from), the model on its backend, optimiser,
    scheduler: a Job."""
    keep_freed_memory()
    torch.set_num_threads(max(1, threads))
    loader.set_mode(s.kernels)
    device = resolve_device(s.device)
    if s.epochs < 1:
        raise SnnflowError(f"config key {s.model}.epochs: {s.epochs} - must be at least 1")
    refuse_what_cannot_fit(kind, s, cache, device)
    train, validation, test, split = load_data(kind, s, cache, device)
    data_identity = cache_identity(cache)
    held = (f" / {len(validation)} validation (split {split['identity'][:8]})"
            if validation is not None else "")
    log(f"{s.label}: {len(train)} train{held} / {len(test)} test samples on {device}, cache "
        f"in {train.resident_on} (data {data_identity[:12]})")
    return build_job(kind, s, train, test, threads, log, data_identity, validation, split)


def build_job(kind, s: RunSettings, train, test, threads, log, data_identity="",
              validation=None, split=None):
    """The Job of `s` on resident data: the model on its backend, its compiled paths
    checked (snnflow.train.kernel_check), optimiser, scheduler."""
    device = train.device
    autocast = configure_backend(s, device)
    kind = kind.trained_with(s)  # the SNN's loss (snn.loss)
    backend, description = kind.choose_backend(s, device)  # and built, before epoch 1
    if description:
        log(f"backend {description}")
    checked = kernel_check.verify(kind, s, backend, train, autocast, log)
    backend = checked.backend
    torch.manual_seed(s.seed)
    model = kind.build(replace(s, fused_cuda_block=checked.fused_cuda_block), backend).to(device)
    if s.channels_last and s.engine == "reference":
        log("the reference engine runs contiguous: PyTorch's CPU BatchNorm is far less "
            "precise in channels_last, and the reference must be a faithful float one")
    elif s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    graphs = checked.cuda_graphs
    if graphs:  # the step, learning rate included, lives on the device
        optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(s.lr, device=device),
                                     capturable=True)
        log("CUDA graphs: each full training batch replays one captured step")
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    scaler = (torch.amp.GradScaler("cuda") if device.type == "cuda" and s.autocast == "fp16"
              else None)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs)
    forward_model = torch.compile(model) if s.compile else model
    trainer = Trainer(forward_model, model, kind, optimizer, s.batch_size, autocast, scaler, log,
                      cuda_graphs=graphs)
    return Job(s, device, train, validation, test, model, optimizer, scheduler, scaler, trainer,
               torch.Generator().manual_seed(s.seed), backend, threads, data_identity,
               checked.as_record(), *_energy_meter(device, log), split or {})


def _energy_meter(device, log):
    meter, note = energy.open_meter(device)
    log(f"GPU energy: {note}")
    return meter, note


def resume(job: Job, checkpoint, origin, log):
    """The epoch history of the checkpoint made from the same `origin` (Job.computed_from;
    model, optimiser, scheduler and random states restored), or [] to start fresh, saying
    why."""
    state = load_state(checkpoint, job.device, log)
    if state is None:
        return []
    if (state.get("settings"), state.get("code")) != (origin["settings"], origin["code"]):
        log(f"{checkpoint} was made with {_changes(state, origin)}; starting fresh")
        return []
    if state.get("data") != origin["data"]:
        log(f"{checkpoint} was made on other data (data {str(state.get('data'))[:12]}, now "
            f"{origin['data'][:12]}); starting fresh")
        return []
    if state.get("cpu_threads") != origin["cpu_threads"]:
        log(f"{checkpoint} was made with {state.get('cpu_threads')} CPU threads, this job has "
            f"{origin['cpu_threads']}, and CPU results depend on the thread count; "
            "starting fresh")
        return []
    job.model.load_state_dict(state["model"])
    restore_optimizer(job.optimizer, job.scheduler, state)
    if job.scaler is not None and state.get("scaler"):
        job.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], job.generator)
    log(f"resuming from {checkpoint} after epoch {len(state['history'])}")
    return state["history"]


def restore_optimizer(optimizer, scheduler, state):
    """The optimiser's and scheduler's saved state, kept in the form this process runs
    them: whether Adam is `capturable` and whether its learning rate is a device tensor
    (CUDA graphs) depend on this job's graph check, not on the run that saved the state;
    a checkpoint of the other form would otherwise put Adam's steps on the wrong device
    or capture a non-capturable Adam. Only the values are taken from the state."""
    ours = [(group["capturable"], group["lr"]) for group in optimizer.param_groups]
    saved = state["optimizer"]
    optimizer.load_state_dict({**saved, "param_groups": [
        {**group, "capturable": capturable}
        for group, (capturable, _) in zip(saved["param_groups"], ours)]})
    for group, (_, lr) in zip(optimizer.param_groups, ours):
        value = float(group["lr"])
        if torch.is_tensor(lr):
            lr.fill_(value)  # the tensor a captured graph reads
        group["lr"] = lr if torch.is_tensor(lr) else value
        group["initial_lr"] = float(group["initial_lr"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.base_lrs = [float(lr) for lr in scheduler.base_lrs]
    scheduler._last_lr = [float(lr) for lr in scheduler._last_lr]


def _changes(state, origin):
    """What differs between a checkpoint's settings and code and this run's, in config
    keys: "other settings (snn.tau: 2.0 -> 3.0)", "other code (fingerprint a -> b)"."""
    old, new = state.get("settings"), origin["settings"]
    if not isinstance(old, dict):
        return "other settings or code (it predates the record of them)"
    changed = [f"{config_key(new['model'], k)}: {old.get(k)!r} -> {v!r}"
               for k, v in new.items() if old.get(k) != v]
    if changed:
        return f"other settings ({', '.join(changed)})"
    return f"other code (fingerprint {state.get('code')} -> {origin['code']})"


def fit(job: Job, history, outputs, checkpoint, origin, log, curves_folder=None, sweep=None):
    """Train the remaining epochs: CSV rows and a checkpoint after each, progress lines
    in the log, the curves in `curves_folder` (snnflow.train.curves) if given. `history`
    holds one dict per finished epoch: the metrics row, its "layers" rows, the
    running-loss points of its curves ("running") and when it ended ("wall_time")."""
    s = job.settings
    _write_history(outputs, history)
    progress = Progress(len(history) + 1, s.epochs, math.ceil(len(job.train) / s.batch_size),
                        s.batch_size, log)
    report_position_with(progress.where)
    curves = (Curves.open(attempt_folder(Path(curves_folder), origin), s, sweep,
                          len(job.train), history, log)
              if curves_folder is not None else None)
    try:
        _fit_epochs(job, history, outputs, checkpoint, origin, log, progress, curves)
        if curves is not None:
            curves.finish(history)
    finally:
        if curves is not None:
            curves.close()
    log(progress.summary(history))
    report_position_with(lambda: "the end, writing the run's files")
    return history


def _fit_epochs(job: Job, history, outputs, checkpoint, origin, log, progress, curves):
    s, device = job.settings, job.device
    meter = job.energy_meter

    def on_batch(epoch, b, sums):
        progress.batch(epoch, b)
        if curves is not None:
            curves.batch(epoch, b, sums)

    first_epoch = len(history) + 1
    for epoch in range(first_epoch, s.epochs + 1):
        lr = float(job.optimizer.param_groups[0]["lr"])
        sync(device)
        progress.start_epoch(epoch)
        if curves is not None:
            curves.start_epoch()
        e0, t0 = meter.joules() if meter else None, time.perf_counter()
        train_loss, train_acc = job.trainer.train_epoch(job.train, job.generator, epoch,
                                                        on_batch)
        steps = epoch * math.ceil(len(job.train) / s.batch_size)
        if (steps < BATCHNORM_SETTLED_STEPS
                and job.trainer.recompute_batchnorm_statistics(job.train)
                and epoch == first_epoch):
            log(f"BatchNorm: {steps} optimizer steps by epoch {epoch}, fewer than "
                f"{BATCHNORM_SETTLED_STEPS}: its running statistics are recomputed over the "
                "training split before each evaluation until then (they would not yet "
                "describe the trained network)")
        sync(device)
        e1, t1 = meter.joules() if meter else None, time.perf_counter()
        test_loss, test_acc, layers, job.predictions = job.trainer.evaluate(job.test)
        sync(device)
        e2, t2 = meter.joules() if meter else None, time.perf_counter()
        val_loss, val_acc = ("", "") if job.validation is None else \
            job.trainer.evaluate(job.validation, recorded=False)[:2]
        job.scheduler.step()
        row = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc,
                   val_loss=val_loss, val_acc=val_acc, test_loss=test_loss, test_acc=test_acc,
                   train_seconds=t1 - t0, test_seconds=t2 - t1,
                   train_joules=e1 - e0 if meter else "", test_joules=e2 - e1 if meter else "",
                   layers=[{"epoch": epoch, **layer} for layer in layers],
                   running=list(curves.points) if curves is not None else [],
                   wall_time=time.time())
        history.append(row)
        _write_history(outputs, history)
        save_state(checkpoint, {
            **origin, "model": job.model.state_dict(), "optimizer": job.optimizer.state_dict(),
            "scheduler": job.scheduler.state_dict(), "rng": rng_states(job.generator),
            "scaler": job.scaler.state_dict() if job.scaler is not None else None,
            "history": history})
        signs = failure_signs(output_rate(layers), job.predictions, job.test.labels.tolist(),
                              job.settings.classes or 10)
        if signs:
            log(f"warning: epoch {epoch}: the network does not work in evaluation: "
                f"{', '.join(signs)} - {FAILURE_ADVICE}")
        timing = progress.end_epoch(epoch, t2 - t1)
        validated = ("" if job.validation is None
                     else f"val loss {val_loss:.4f} acc {val_acc:.4f} | ")
        log(f"epoch {epoch}/{s.epochs}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
            f"{validated}test loss {test_loss:.4f} acc {test_acc:.4f} | {t1 - t0:.1f}s + "
            f"{t2 - t1:.1f}s | {timing}")
        if curves is not None:
            curves.epoch(row)


def output_rate(layers):
    """The output layer's firing rate in an epoch's layer rows; None for a network without
    spikes (the CNN's rows hold no rate)."""
    rate = layers[-1]["firing_rate"] if layers else None
    return rate if is_number(rate) else None


def write(job: Job, outputs, code_fingerprint, placement, sweep=None, framing=None):
    """The final model (weights + settings), its test-set predictions and run.json
    (settings, versions, device, backend, placement, the validation split, the frames'
    `framing` and, for a sweep's run, its variant: snnflow.runs.sweep_variant)."""
    s = job.settings
    save_state(outputs.model, {"settings": s.as_config(), "state_dict": job.model.state_dict(),
                               "code_fingerprint": code_fingerprint})
    if job.predictions is None:  # resumed after the last epoch: evaluate the final model
        job.predictions = job.trainer.evaluate(job.test)[3]
    labels = job.test.labels.cpu()
    with atomic_path(outputs.predictions) as tmp:
        _write_rows(tmp, PREDICTION_COLUMNS, [
            {"index": i, "label": int(label), "prediction": int(predicted)}
            for i, (label, predicted) in enumerate(zip(labels, job.predictions))])
    info = {**described(s, sweep), "settings": s.as_config(),
            "code_fingerprint": code_fingerprint,
            "data_identity": job.data_identity, "framing": framing,
            "backend": job.backend, "kernels": loader.status(),
            "kernel_check": job.kernel_check, "energy_measurement": job.energy_note,
            "n_train": len(job.train), "n_test": len(job.test), "validation": job.split,
            "parameters": sum(p.numel() for p in job.model.parameters()),
            # a PLIF network's learned tau per layer (snnflow.model.snn.CSNN.learned_taus)
            "learned_tau": getattr(job.model, "learned_taus", lambda: None)(),
            **environment(job.device, job.threads), **placement}
    with atomic_path(outputs.run) as tmp:
        tmp.write_text(json.dumps(info, indent=2))


def run(kind, s: RunSettings, cache, outputs: RunOutputs, checkpoint, code_fingerprint,
        threads=1, log=print, placement=None, sweep=None, curves_folder=None):
    """Train `s` (a model of `kind`) on `cache`, writing `outputs` (with `placement`:
    where the job ran, and `sweep`: the variant of a sweep's run, into run.json) and
    its live curves to `curves_folder` if given (snnflow.train.curves)."""
    if kind.name != s.model:
        raise ValueError(f"settings of a {s.model} run given to the {kind.name} loop")
    started = time.time()
    refuse_unwritable_folder(Path(checkpoint).parent)
    with holding_run(checkpoint):
        job = prepare(kind, shaped_by(cache, s), cache, threads, log)
        origin = job.computed_from(code_fingerprint)
        history = resume(job, Path(checkpoint), origin, log)
        history = fit(job, history, outputs, Path(checkpoint), origin, log, curves_folder,
                      sweep)
        write(job, outputs, code_fingerprint,
              {**(placement or {}), "started": started, "finished": time.time()}, sweep,
              cache_framing(cache))
    return history


def shaped_by(cache, s: RunSettings):
    """`s` with the shape of the data in `cache`: the networks take their input channels,
    size and classes from it."""
    channels, height, width, classes = input_shape(cache)
    return replace(s, input_shape=[channels, height, width], classes=classes)


def refuse_unwritable_folder(folder):
    """Before the first epoch, not after it: the checkpoints' folder must take a file."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise SnnflowError(f"{folder}: cannot be written ({err.strerror}) - make it writable: "
                           "each epoch's checkpoint goes there") from None


def run_rule(kind, snakemake, log):
    """`run` with what a training rule passes (settings and checkpoint as params), on a
    GPU slot of its own (claimed before anything initialises CUDA). The number of slots
    is read from the config, not passed as a param: it says where a run goes, not what
    it computes, so changing it must not rerun anything."""
    settings = RunSettings(**snakemake.params.settings)
    claim = claim_gpu(slot_count(snakemake.config["gpus"]), settings.device, log)
    out = snakemake.output
    run(kind, settings, snakemake.input[0],
        RunOutputs(**{name: Path(getattr(out, name)) for name in RunOutputs._fields}),
        checkpoint=snakemake.params.checkpoint,
        code_fingerprint=snakemake.params.code, threads=snakemake.threads, log=log,
        placement={"gpu_slot": claim.slot, "cuda_visible_devices": claim.visible_devices,
                   "placement": claim.note},
        sweep=getattr(snakemake.params, "sweep", None),  # a sweep's rule passes its variant
        curves_folder=snakemake.params.curves)


def environment(device, threads):
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "snnflow": __version__}
    try:
        import h5py
        versions["h5py"] = h5py.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name() + f" ({threads} thread{'s' if threads != 1 else ''})"
    return {"device": str(device), "device_name": name, "versions": versions,
            "hostname": platform.node()}


def _write_history(outputs, history):
    """metrics.csv and layers.csv of every finished epoch, each file written whole
    (atomically) after each epoch: a killed job leaves every finished epoch's rows, and
    a file deleted under a running job (by a second Snakemake started after --unlock,
    before its job stops: snnflow.train.checkpoint.holding_run) is whole again."""
    layers = [r for h in history for r in h["layers"]]
    for path, columns, rows in ((outputs.metrics, METRICS_COLUMNS, history),
                                (outputs.layers, LAYER_COLUMNS, layers)):
        with atomic_path(path) as tmp:
            _write_rows(tmp, columns, rows)


def _write_rows(path, columns, rows):
    """Write rows of `columns` to a CSV file with its header, flushed to disk (inside an
    atomic_path, which names the file a full disk stopped)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])
        f.flush()
        os.fsync(f.fileno())
