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
# val_loss, val_acc: on the validation split (snnflow.data.validation), empty without one
METRICS_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                   "test_loss", "test_acc", "train_seconds", "test_seconds", "train_joules",
                   "test_joules"]
# layers.csv: spikes per neuron per time step, synaptic operations and multiply-
# accumulates per sample, of both networks' layers with synapses
LAYER_COLUMNS = ["epoch", "layer", "neurons", "firing_rate", "synaptic_ops", "macs"]
PREDICTION_COLUMNS = ["index", "label", "prediction"]
CSV_COLUMNS = {"metrics": METRICS_COLUMNS, "layers": LAYER_COLUMNS,
               "predictions": PREDICTION_COLUMNS}
REPORTED_FILES = (*CSV_COLUMNS, "run")  # what the report reads
# A run's NIR check (nir_check_path; snnflow.deploy.nir_check): one row per importer
NIR_COLUMNS = ["importer", "version", "model", "T", "seed", "samples", "spike_mismatches",
               "tie_mismatches", "other_mismatches", "samples_differing",
               "prediction_agreement", "accuracy_ours", "accuracy_importer",
               "layer_spikes", "note"]

RunOutputs = collections.namedtuple("RunOutputs", RUN_FILES)

# How the epoch a run's result is read at, besides its last, was chosen (chosen_epoch).
CHOSEN_ON_VALIDATION = "chosen on validation"
CHOSEN_ON_TEST = "chosen on test (optimistic)"


def layer_names(convs):
    """The layers with synapses of a network of `convs` conv blocks: conv1..convK, fc1, fc2
    (layers.csv's `layer`)."""
    return (*(f"conv{k}" for k in range(1, convs + 1)), "fc1", "fc2")


def is_number(value):
    """Whether a value of a run's rows is a number: not "", None or NaN."""
    return isinstance(value, (int, float)) and value == value


def chosen_epoch(rows):
    """(row, how) of the epoch chosen among a run's metrics rows (dicts of METRICS_COLUMNS):
    the highest validation accuracy, ties to the lower validation loss, then the earlier
    epoch; without a validation split the highest test accuracy (earlier on ties), which
    flatters the result since the test set chose it."""
    rows = list(rows)
    if all(is_number(row["val_acc"]) for row in rows):
        best = min(rows, key=lambda row: (-row["val_acc"], row["val_loss"], row["epoch"]))
        return best, CHOSEN_ON_VALIDATION
    return min(rows, key=lambda row: (-row["test_acc"], row["epoch"])), CHOSEN_ON_TEST


def failure_signs(output_rate, predictions, labels, n_classes):
    """What says that a trained network does not work, in evaluation: an output layer that
    never spiked (`output_rate` 0; None for the CNN, which has no spikes), predictions of
    a single class, an accuracy within two standard errors of chance (1 / n_classes on
    len(labels) samples). A list of short phrases, empty for a network that works."""
    import math

    signs = []
    if output_rate is not None and is_number(output_rate) and output_rate == 0:
        signs.append("its output layer never spiked")
    predicted = {int(p) for p in predictions}
    if len(predicted) == 1 and n_classes > 1:
        signs.append(f"every prediction is class {predicted.pop()}")
    n = len(labels)
    if n and n_classes > 1:
        accuracy = sum(int(p) == int(y) for p, y in zip(predictions, labels)) / n
        chance = 1 / n_classes
        if accuracy <= chance + 2 * math.sqrt(chance * (1 - chance) / n):
            signs.append(f"its test accuracy {100 * accuracy:.1f} % is at chance "
                         f"({100 * chance:.1f} %)")
    return signs


FAILURE_ADVICE = ("likely causes: too few optimizer steps (batch size and epochs against the "
                  "training samples), a learning rate too high or low, a threshold no input "
                  "reaches - train more steps (a smaller batch_size or more epochs) or check "
                  "lr and v_threshold")


def model_name(model, T=None):
    """The name of a model in paths and tables' keys: "snn_T16", "cnn"."""
    return "cnn" if model == "cnn" else f"snn_T{T}"


def model_label(model, T=None):
    """The name of a model on the page: "SNN-16", "CNN"."""
    return "CNN" if model == "cnn" else f"SNN-{T}"


def run_folder(root, name, seed):
    """The folder of a run in the study folder `root` (config key results_dir)."""
    return f"{root}/runs/{name}/seed{seed}"


def sweep_run_folder(root, sweep, variant, seed):
    """The folder of a sweep's run: `variant` is the row's Paramspace pattern
    (tau~1.5/surrogate_alpha~2.0)."""
    return f"{root}/sweeps/{sweep}/{variant}/seed{seed}"


def run_outputs(folder):
    """{output name: path} of the files a run writes to `folder` (which may hold
    wildcards: run_outputs(run_folder(root, model_name("snn", "{T}"), "{seed}")))."""
    return {key: f"{folder}/{file}" for key, file in RUN_FILES.items()}


def outputs_in(folder):
    """The RunOutputs of a run written to `folder` (outside a rule: tests, benchmarks)."""
    return RunOutputs(**{key: Path(folder) / file for key, file in RUN_FILES.items()})


def checkpoint_path(root, name, seed):
    """Where a run keeps its resumable state: outside its declared outputs, which
    Snakemake deletes before the job starts."""
    return f"{root}/checkpoints/{name}_seed{seed}.pt"


def attempts_log_path(checkpoint):
    """The log of every attempt of a run, kept beside its checkpoint: a job's declared
    log is deleted when the job starts again (snnflow.jobs.run.run_job appends to this one)."""
    return str(Path(checkpoint).with_suffix(".log"))


def undeclared_file_patterns(root):
    """Regular expressions of the files a run writes that no rule declares (the patterns
    above, below `root`, itself a regular expression): its checkpoint, lock and every
    attempt's log, its live curves."""
    return [rf"{root}/checkpoints/[^/]+_seed[0-9]+\.(pt|pt\.lock|log)",
            rf"{root}/checkpoints/sweeps/.+/seed[0-9]+\.(pt|pt\.lock|log)",
            rf"{root}/tensorboard/.+/events\.out\.tfevents\.[^/]+"]


def tensorboard_folder(root, name, seed):
    """A run's live curves (snnflow.train.curves): named as its run folder, under
    `root`/tensorboard."""
    return run_folder(f"{root}/tensorboard", name, seed)


def sweep_tensorboard_folder(root, sweep, variant, seed):
    return sweep_run_folder(f"{root}/tensorboard", sweep, variant, seed)


def nir_check_path(root, name, seed):
    """The NIR check's rows of a run (snnflow.deploy.nir_check.NIR_COLUMNS)."""
    return f"{root}/nir/{name}_seed{seed}.csv"


def sweep_checkpoint_path(root, sweep, variant, seed):
    return f"{root}/checkpoints/sweeps/{sweep}/{variant}/seed{seed}.pt"


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
    surrogate: str = "sigmoid"      # the spike's surrogate gradient: sigmoid or atan
    neuron: str = "lif"             # lif, if or plif (snnflow.model.neuron.NEURONS)
    loss: str = "mse_rate"          # of the output spikes: mse_rate or ce_rate (snnflow.model.snn)
    dropout: float = 0.0            # before each fully connected layer, one mask per sample
    engine: str = "fused"
    channels_last: bool = True
    cudnn_benchmark: bool = True
    autocast: str = "none"          # CUDA only: none, bf16, fp16
    tf32: bool = False              # CUDA: TF32 convolutions, matrix products (snnflow.device.precision)
    compile: bool = False
    deterministic: bool = False
    kernels: str = "auto"           # off, auto, require (snnflow.kernels.loader)
    cuda_graphs: bool = False       # CUDA: the whole training step as one CUDA graph
    fused_cuda_block: bool = False  # CUDA: BatchNorm + LIF + pool as one Triton op
    validation_fraction: float = 0.0  # of the training split held out (snnflow.data.validation)
    validation_seed: int | None = None  # which samples; None without a split
    # The data's shape, read from the cache by the trainer (snnflow.train.loop.shaped_by):
    # a sample's [channels, height, width] and the number of classes; None before that
    # (the networks' defaults: N-MNIST frames, MNIST images, ten classes).
    input_shape: list | None = None
    classes: int | None = None

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


SNN_ONLY = ("T", "tau", "v_threshold", "v_reset", "surrogate_alpha", "surrogate", "neuron",
            "loss", "dropout", "engine")


def described(settings: RunSettings, sweep=None):
    """What run.json says a run is; the report groups and labels runs by it. A sweep's
    run (`sweep`: {"name", "variant", "values"}, see sweep_variant) is labelled by its
    sweep and values."""
    label = settings.label if sweep is None else variant_label(sweep["name"], sweep["values"])
    return {"model": settings.model, "name": settings.name, "label": label,
            "T": settings.T, "seed": settings.seed, "sweep": sweep}


def sweep_variant(sweep, variant, values):
    """What run.json records of a sweep's run: the sweep's name, the row's Paramspace
    pattern and its values ({column: number})."""
    return {"name": sweep, "variant": variant, "values": dict(values)}


def variant_label(sweep, values):
    """The name of a sweep's variant on the page: "tau_alpha: tau=1.5, surrogate_alpha=2.0"."""
    return f"{sweep}: " + ", ".join(f"{key}={value}" for key, value in values.items())


@dataclass(frozen=True)
class ModelKind:
    """What differs between the SNN and the CNN runs (snnflow.model.snn.KIND,
    snnflow.model.cnn.KIND), so that the training loop is shared and neither network's
    code is a job's dependency unless the job trains it."""
    name: str               # "snn" or "cnn": RunSettings.model and the config section
    load: Callable          # (cache, split) -> (inputs, labels)
    time_major: bool        # inputs (N, T, ...) are batched as (T, N, ...)
    scale: Callable         # (cache) -> factor applied to the float inputs
    choose_backend: Callable  # (settings, device) -> (backend, description or None)
    build: Callable         # (settings, backend) -> nn.Module
    loss: Callable          # (model output, labels) -> (loss, class scores)
    new_record: Callable    # (model) -> a record of its layers' activity in evaluation:
                            # .forward(x) runs the model, .rows() gives LAYER_COLUMNS
    compiled_paths: Callable  # (kind, settings, backend, x, generator) -> ([(path, check,
                              # fallback)], why none): what snnflow.train.kernel_check runs
    losses: dict = field(default_factory=dict)  # {settings' loss: loss} where there is a choice

    def trained_with(self, settings):
        """This kind with the loss `settings` name (RunSettings.loss, where there is a choice)."""
        from dataclasses import replace

        return replace(self, loss=self.losses[settings.loss]) if self.losses else self
