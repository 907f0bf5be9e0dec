"""The run contract, in one place: what determines a training run, what a model is
called, and which files a run writes with which columns. The rules, the trainer and the
report all take it from here; the report reads a run's identity from its run.json and
never parses a folder name. Importable without torch (the Snakefile imports it).
"""

import collections
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

# What a training run writes to its folder (run_folder), by output name: the rule's
# declared outputs and the trainer's RunOutputs have these names.
RUN_FILES = {
    "metrics": "metrics.csv",          # one row per epoch (METRICS_COLUMNS)
    "layers": "layers.csv",            # one row per epoch and layer, on the test set
    "predictions": "predictions.csv",  # the final model's test-set predictions
    "model": "model.pt",               # weights and settings (not read by the report)
    "run": "run.json",                 # identity, settings, versions, device, placement
}
# train_joules, test_joules: the GPU's energy measured over the epoch's training and its
# evaluation (snnflow.train.energy), empty where it cannot be measured
METRICS_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
                   "train_seconds", "test_seconds", "train_joules", "test_joules"]
# layers.csv: spikes per neuron per time step, synaptic operations and multiply-
# accumulates per sample, of both networks' layers with synapses
LAYER_COLUMNS = ["epoch", "layer", "neurons", "firing_rate", "synaptic_ops", "macs"]
LAYERS = ("conv1", "conv2", "conv3", "fc1", "fc2")
PREDICTION_COLUMNS = ["index", "label", "prediction"]
CSV_COLUMNS = {"metrics": METRICS_COLUMNS, "layers": LAYER_COLUMNS,
               "predictions": PREDICTION_COLUMNS}
REPORTED_FILES = (*CSV_COLUMNS, "run")  # what the report reads

RunOutputs = collections.namedtuple("RunOutputs", RUN_FILES)


def model_name(model, T=None):
    """The name of a model in paths and tables' keys: "snn_T16", "cnn"."""
    return "cnn" if model == "cnn" else f"snn_T{T}"


def model_label(model, T=None):
    """The name of a model on the page: "SNN-16", "CNN"."""
    return "CNN" if model == "cnn" else f"SNN-{T}"


def run_folder(name, seed):
    return f"results/runs/{name}/seed{seed}"


def run_outputs(name, seed):
    """{output name: path} of the files the run of model `name` and `seed` writes (the
    values may hold wildcards: run_outputs(model_name("snn", "{T}"), "{seed}"))."""
    folder = run_folder(name, seed)
    return {key: f"{folder}/{file}" for key, file in RUN_FILES.items()}


def outputs_in(folder):
    """The RunOutputs of a run written to `folder` (outside a rule: tests, benchmarks)."""
    return RunOutputs(**{key: Path(folder) / file for key, file in RUN_FILES.items()})


def checkpoint_path(name, seed):
    """Where a run keeps its resumable state: outside its declared outputs, which
    Snakemake deletes before the job starts."""
    return f"results/checkpoints/{name}_seed{seed}.pt"


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
    kernels: str = "auto"           # off, auto, require (snnflow.kernels.loader)
    cuda_graphs: bool = False       # CUDA: the whole training step as one CUDA graph
    fused_cuda_block: bool = False  # CUDA: BatchNorm + LIF + pool as one Triton op

    @property
    def name(self):
        return model_name(self.model, self.T)

    @property
    def label(self):
        return model_label(self.model, self.T)

    def as_config(self):
        """The settings that apply to this model (the CNN has no T or neuron)."""
        values = asdict(self)
        if self.model == "cnn":
            for name in SNN_ONLY:
                del values[name]
        return values


SNN_ONLY = ("T", "tau", "v_threshold", "v_reset", "surrogate_alpha", "engine")


def described(settings: RunSettings):
    """What run.json says a run is; the report groups and labels runs by it."""
    return {"model": settings.model, "name": settings.name, "label": settings.label,
            "T": settings.T, "seed": settings.seed}


@dataclass(frozen=True)
class ModelKind:
    """What differs between the SNN and the CNN runs (snnflow.model.snn.KIND,
    snnflow.model.cnn.KIND), so that the training loop is shared and neither network's
    code is a job's dependency unless the job trains it."""
    name: str               # "snn" or "cnn": RunSettings.model and the config section
    load: Callable          # (cache, split) -> (inputs, labels)
    time_major: bool        # inputs (N, T, ...) are batched as (T, N, ...)
    scale: float            # applied to the float inputs
    choose_backend: Callable  # (settings, device) -> (backend, description or None)
    build: Callable         # (settings, backend) -> nn.Module
    loss: Callable          # (model output, labels) -> (loss, class scores)
    new_record: Callable    # (model) -> a record of its layers' activity in evaluation:
                            # .forward(x) runs the model, .rows() gives LAYER_COLUMNS
    compiled_paths: Callable  # (kind, settings, backend, x, generator) -> ([(path, check,
                              # fallback)], why none): what snnflow.train.kernel_check runs
