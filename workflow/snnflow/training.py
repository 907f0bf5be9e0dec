"""The training loop shared by the SNN and the CNN, with per-epoch CSV rows and
resumable checkpoints.

The whole cache stays resident as uint8 (on the GPU when training there); each
batch is drawn by index and converted to float on the device, so an epoch does no
per-sample Python work and there is never a float copy of the dataset.

A checkpoint is written after every epoch to a path that is not a Snakemake
output (Snakemake deletes declared outputs before a job starts). It carries the
key of the settings and code that made it; a job with the same key resumes from
it, a job with another key starts fresh.
"""

import contextlib
import csv
import ctypes
import hashlib
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import METRICS_COLUMNS, SnnflowError, __version__, first_line, sparse_conv
from .atomic import atomic_path, reporting_full_disk
from .frames import load_frames
from .mnist import load_images
from .models import CNN, CSNN, firing_rate
from .neuron import LIFParams, kernel_backend

PROGRESS_EVERY_SECONDS = 30.0


@dataclass
class RunSettings:
    """Everything that determines a training run (all of it arrives via `params:`)."""
    model: str                      # "snn" or "cnn"
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str = "auto"
    channels: list = field(default_factory=lambda: [32, 64, 128])
    hidden: int = 256
    T: int | None = None
    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    surrogate_alpha: float = 4.0
    engine: str = "fused"
    channels_last: bool = True
    cudnn_benchmark: bool = True
    autocast: str = "none"          # CUDA only: none, bf16, fp16
    compile: bool = False
    deterministic: bool = False

    def as_config(self):
        """The settings that apply to this model (the CNN has no T or neuron)."""
        values = asdict(self)
        if self.model == "cnn":
            for name in SNN_ONLY:
                del values[name]
        return values

    def key(self, code_fingerprint):
        """Identity of the run for resuming: settings + the code that runs them."""
        text = json.dumps(asdict(self), sort_keys=True) + code_fingerprint
        return hashlib.sha256(text.encode()).hexdigest()[:16]


SNN_ONLY = ("T", "tau", "v_threshold", "v_reset", "surrogate_alpha", "engine")


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SnnflowError(f"config key device: '{name}' asked for, but this machine has no "
                           "CUDA device - set device: auto or cpu")
    return torch.device(name)


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


class Dataset:
    """One split resident in memory as integers; batches come out as float on `device`.

    On CUDA the integers live in GPU memory when they fit in half of what is free,
    else in pinned host memory, gathered into a pinned buffer and copied per batch.
    """

    def __init__(self, inputs, labels, device, time_major):
        self.device = device
        self.time_major = time_major
        self.scale = 1.0 if time_major else 1.0 / 255.0
        self.inputs = torch.from_numpy(inputs)
        self.labels = torch.from_numpy(labels).to(device)
        self.staging = None
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if self.inputs.nbytes < free // 2:
                self.inputs = self.inputs.to(device)
            else:
                self.inputs = self.inputs.pin_memory()

    @property
    def resident_on(self):
        return "pinned host memory" if self.inputs.is_pinned() else str(self.inputs.device)

    def __len__(self):
        return len(self.labels)

    def _gather(self, idx, batch_size):
        if self.inputs.device == self.device:
            return self.inputs[idx]
        if self.staging is None:  # pinned host memory -> GPU
            self.staging = torch.empty((batch_size, *self.inputs.shape[1:]),
                                       dtype=self.inputs.dtype).pin_memory()
        out = self.staging[:len(idx)]
        torch.index_select(self.inputs, 0, idx.cpu(), out=out)
        return out.to(self.device, non_blocking=True)

    def batches(self, batch_size, generator=None):
        n = len(self)
        order = (torch.randperm(n, generator=generator) if generator is not None
                 else torch.arange(n))
        order = order.to(self.labels.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = self._gather(idx, batch_size).float()
            if self.time_major:  # (N, T, ...) -> (T, N, ...)
                x = x.transpose(0, 1).contiguous()
            else:
                x.mul_(self.scale)
            yield x, self.labels[idx]


def build_model(s: RunSettings):
    if s.model == "snn":
        neuron = LIFParams(s.tau, s.v_threshold, s.v_reset, s.surrogate_alpha)
        return CSNN(s.channels, s.hidden, neuron=neuron, engine=s.engine)
    return CNN(s.channels, s.hidden)


def loss_and_scores(model, model_kind, x, y):
    """(loss, class scores): SNN = MSE of firing rates against one-hot labels,
    CNN = cross-entropy of logits. The loss is computed in float32."""
    out = model(x).float()
    if model_kind == "snn":
        rates = firing_rate(out)
        return F.mse_loss(rates, F.one_hot(y, 10).to(rates.dtype)), rates
    return F.cross_entropy(out, y), out


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def configure_backend(s: RunSettings, device):
    """Apply the performance switches; returns the autocast context factory."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = s.cudnn_benchmark and not s.deterministic
        if s.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
        if s.autocast != "none":
            dtype = AUTOCAST_DTYPES[s.autocast]
            return lambda: torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_epoch(model, kind, data, optimizer, batch_size, generator, epoch, log,
                autocast=contextlib.nullcontext, scaler=None):
    model.train()
    total_loss = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    last_report = time.perf_counter()
    n_batches = math.ceil(len(data) / batch_size)
    for b, (x, y) in enumerate(data.batches(batch_size, generator), start=1):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss, scores = loss_and_scores(model, kind, x, y)
        if not torch.isfinite(loss):
            raise SnnflowError(f"epoch {epoch} batch {b}: loss is {loss.item()} - lower lr; "
                               "the last good checkpoint is kept")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.detach() * len(y)
        correct += (scores.argmax(1) == y).sum()
        if time.perf_counter() - last_report > PROGRESS_EVERY_SECONDS:
            log(f"epoch {epoch}: batch {b}/{n_batches}")
            last_report = time.perf_counter()
    return total_loss.item() / len(data), correct.item() / len(data)


@torch.inference_mode()
def evaluate(model, kind, data, batch_size, autocast=contextlib.nullcontext):
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    for x, y in data.batches(batch_size):
        with autocast():
            loss, scores = loss_and_scores(model, kind, x, y)
        total_loss += loss * len(y)
        correct += (scores.argmax(1) == y).sum()
    return total_loss.item() / len(data), correct.item() / len(data)


def load_data(s: RunSettings, cache, device):
    load = load_frames if s.model == "snn" else load_images
    splits = {}
    for split in ("train", "test"):
        inputs, labels = load(cache, split)
        if s.model == "snn" and inputs.shape[1] != s.T:
            raise SnnflowError(f"{cache}: frames have T={inputs.shape[1]}, the run asks for "
                               f"T={s.T} - delete the cache and rerun")
        splits[split] = Dataset(inputs, labels, device, time_major=s.model == "snn")
    if s.batch_size > len(splits["train"]):
        raise SnnflowError(f"config key {s.model}.batch_size: {s.batch_size} is larger than the "
                           f"{len(splits['train'])} training samples in {cache} - lower it")
    return splits["train"], splits["test"]


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
        name = _cpu_name() + f" ({threads} threads)"
    return {"device": str(device), "device_name": name, "versions": versions,
            "hostname": platform.node()}


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def _write_csv(path, rows, mode):
    with reporting_full_disk(path), open(path, mode, newline="") as f:
        writer = csv.writer(f)
        if mode == "w":
            writer.writerow(METRICS_COLUMNS)
        for row in rows:
            writer.writerow([row[c] for c in METRICS_COLUMNS])
        f.flush()
        os.fsync(f.fileno())


def save_state(path, state):
    """torch.save `state` to `path` atomically. Serialised in memory first: torch's own
    file writer reports a full disk as 'iostream error', Python's file names it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def _load_checkpoint(path, device, log):
    """The saved state, or None when there is none or it cannot be read (then the run
    starts fresh: a damaged checkpoint must not stop a study). Only tensors and plain
    data are loaded (weights_only): a results folder from elsewhere must never run
    code."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated, foreign, crafted or from an incompatible version
        log(f"{path} is unreadable ({type(err).__name__}: {first_line(err)}); starting fresh")
        return None


def _rng_states(generator):
    states = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states, generator):
    torch.set_rng_state(states["torch"])
    generator.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def run(s: RunSettings, cache, metrics_csv, model_path, run_json, checkpoint, code_fingerprint,
        threads=1, log=print):
    """Train `s` on `cache`, writing one CSV row per epoch, the final model and run.json."""
    keep_freed_memory()
    torch.set_num_threads(max(1, threads))
    device = resolve_device(s.device)
    if s.epochs < 1:
        raise SnnflowError(f"config key {s.model}.epochs: {s.epochs} - must be at least 1")
    train, test = load_data(s, cache, device)
    log(f"{s.model}{'' if s.T is None else f'-T{s.T}'}: {len(train)} train / {len(test)} test "
        f"samples on {device}, cache in {train.resident_on}")

    autocast = configure_backend(s, device)
    lif_kernels = None
    if s.model == "snn" and s.engine == "fused":
        lif_kernels = kernel_backend(device)
        if device.type == "cpu" and sparse_conv.load() is not None:  # built before epoch 1, too
            lif_kernels += "; sparse convolutions of spikes (C++)"
        log(f"fused LIF kernels: {lif_kernels}")
    torch.manual_seed(s.seed)
    model = build_model(s).to(device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and s.autocast == "fp16" else None
    forward_model = torch.compile(model) if s.compile else model
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs)
    generator = torch.Generator().manual_seed(s.seed)
    key = s.key(code_fingerprint)
    history, first_epoch = [], 1

    checkpoint = Path(checkpoint)
    state = _load_checkpoint(checkpoint, device, log)
    if state is not None:
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            _restore_rng(state["rng"], generator)
            history = state["history"]
            first_epoch = len(history) + 1
            log(f"resuming from {checkpoint} after epoch {len(history)}")
        else:
            log(f"{checkpoint} belongs to other settings or code; starting fresh")
    _write_csv(metrics_csv, history, "w")

    for epoch in range(first_epoch, s.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        _sync(device)
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(forward_model, s.model, train, optimizer,
                                            s.batch_size, generator, epoch, log, autocast, scaler)
        _sync(device)
        t1 = time.perf_counter()
        test_loss, test_acc = evaluate(forward_model, s.model, test, s.batch_size, autocast)
        _sync(device)
        t2 = time.perf_counter()
        scheduler.step()
        row = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc,
                   test_loss=test_loss, test_acc=test_acc,
                   train_seconds=t1 - t0, test_seconds=t2 - t1)
        history.append(row)
        _write_csv(metrics_csv, [row], "a")
        save_state(checkpoint, {
            "key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": _rng_states(generator),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "history": history})
        log(f"epoch {epoch}/{s.epochs}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
            f"test loss {test_loss:.4f} acc {test_acc:.4f} | {t1 - t0:.1f}s + {t2 - t1:.1f}s")

    save_state(model_path, {"settings": s.as_config(), "state_dict": model.state_dict(),
                            "code_fingerprint": code_fingerprint})
    info = {"model": s.model, "settings": s.as_config(), "code_fingerprint": code_fingerprint,
            "lif_kernels": lif_kernels,
            "n_train": len(train), "n_test": len(test), **environment(device, threads)}
    with atomic_path(run_json) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return history
