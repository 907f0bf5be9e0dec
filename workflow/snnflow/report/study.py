"""What the report reads, checked: every run's files (snnflow.runs) and the data summary.

A run's identity (model, name, label, T, seed) comes from its run.json, never from the
folder it lies in.
"""

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from snnflow import SnnflowError
from snnflow.report import MAX_EXAMPLE_CLASSES
from snnflow.runs import CSV_COLUMNS, NIR_COLUMNS, RUN_FILES, failure_signs, model_label
from snnflow.scoring import NEUROBENCH_COLUMNS, NEUROBENCH_METRICS, neurobench_path


@dataclass
class Run:
    """One training run: its identity and what its job wrote."""
    model: str               # "snn" or "cnn"
    name: str                # "snn_T16", "cnn"
    label: str               # "SNN-16", "CNN"
    T: int | None
    seed: int
    metrics: pd.DataFrame
    layers: pd.DataFrame
    predictions: pd.DataFrame
    info: dict               # run.json
    sweep: dict | None = None  # a sweep's run: {"name", "variant", "values"} (snnflow.runs)
    neurobench: pd.DataFrame | None = None  # its NeuroBench rows (snnflow.scoring), if scored

    @functools.cached_property
    def output_rate(self):
        """The output layer's firing rate at the last epoch; None for the CNN."""
        last = self.layers[self.layers["epoch"] == self.layers["epoch"].max()]
        return float(last["firing_rate"].iloc[-1]) if self.model == "snn" and len(last) else None

    @functools.cached_property
    def failure_signs(self):
        """What says the final network does not work in evaluation (snnflow.runs.failure_signs),
        worked out once: every table beside whose numbers it stands asks."""
        classes = self.info.get("settings", {}).get("classes") or 10
        return failure_signs(self.output_rate, self.predictions["prediction"],
                             self.predictions["label"], classes)

    @property
    def output_silent(self):
        return self.output_rate == 0


@dataclass
class Study:
    """The runs, the data summary and the report's settings; `tables` fills up as the
    report computes them, in the registry's order. `runs` are the study's models (one per
    model and seed), `sweep_runs` the sweeps' (snnflow.plan.sweeps), in the order of the
    sweeps' tables."""
    runs: list
    main_T: int
    dataset: pd.DataFrame
    examples: dict
    energy: dict
    sweep_runs: list = field(default_factory=list)
    nir: pd.DataFrame | None = None  # the NIR checks' rows (snnflow.deploy.nir_check)
    tables: dict = field(default_factory=dict)

    @property
    def order(self):
        """Model labels in the order of the study: SNNs by T, then the CNN."""
        ordered = sorted(self.runs, key=lambda r: (r.model == "cnn", r.T or 0))
        return list(dict.fromkeys(r.label for r in ordered))

    @property
    def n_seeds(self):
        return max(sum(r.name == name for r in self.runs) for name in {r.name for r in self.runs})

    @property
    def classes(self):
        """The class names, in label order (the data summary's)."""
        return [str(c) for c in self.examples["classes"]]

    @property
    def dataset_name(self):
        """The name of the dataset the SNNs ran on: N-MNIST, or tonic's class name."""
        return str(self.dataset["dataset"].iloc[0])

    @property
    def has_twin(self):
        """Whether the CNN trained on a static twin (MNIST), else on event images."""
        return "digits" in self.examples

    @property
    def cnn_data(self):
        """What the CNN trained on, for the page."""
        if self.has_twin:
            return "MNIST, the static twin of N-MNIST"
        return (f"event images of {self.dataset_name}: the same samples, each one's events "
                "summed over its whole duration")

    @property
    def main_label(self):
        return model_label("snn", self.main_T)

    def failing_runs(self):
        """[(run, its failure signs)] of the runs whose final network does not work."""
        return [(r, signs) for r in self.runs + self.sweep_runs
                if (signs := r.failure_signs)]

    def sweep_columns(self, sweep):
        """The settings the sweep called `sweep` varies, in its table's order."""
        runs = [r for r in self.sweep_runs if r.sweep["name"] == sweep]
        return list(dict.fromkeys(key for r in runs for key in r.sweep["values"]))


MAX_RUN_JSON_BYTES = 1 << 20   # run.json: a few kB
MAX_RUN_CSV_BYTES = 256 << 20  # predictions.csv of a large test split: a few MB
MAX_TEXT = 2000                # characters of any text in run.json the page may show


def load_run(folder):
    """The Run whose files lie in `folder`, every file checked: bounded in size, the
    columns and types the trainer writes, each epoch once (1, 2, ...: two jobs writing
    one run would repeat them), as many as run.json's settings say, one prediction per
    test sample, and no text in run.json longer than MAX_TEXT."""
    folder = Path(folder)
    rerun = "rerun its training job"
    for name in (*CSV_COLUMNS, "run"):
        path = folder / RUN_FILES[name]
        limit = MAX_RUN_JSON_BYTES if name == "run" else MAX_RUN_CSV_BYTES
        if path.is_file() and path.stat().st_size > limit:
            raise SnnflowError(f"{path}: {path.stat().st_size} bytes, more than the {limit} a "
                               f"run's {RUN_FILES[name]} can be - {rerun}")
    try:
        tables = {name: pd.read_csv(folder / RUN_FILES[name]) for name in CSV_COLUMNS}
        info = json.loads((folder / RUN_FILES["run"]).read_text())
    except (OSError, ValueError) as err:
        raise SnnflowError(f"{folder}: cannot read the run ({err}) - {rerun}") from None
    for name, columns in CSV_COLUMNS.items():
        missing = [c for c in columns if c not in tables[name].columns]
        if missing or tables[name].empty:
            what = "no rows" if not missing else "missing columns " + ", ".join(missing)
            raise SnnflowError(f"{folder / RUN_FILES[name]}: {what} - {rerun}")
    run_json = folder / RUN_FILES["run"]
    if not isinstance(info, dict):
        raise SnnflowError(f"{run_json}: holds a {type(info).__name__}, not a run's record - "
                           f"{rerun}")
    absent = [key for key in ("model", "name", "label", "T", "seed", "sweep") if key not in info]
    if absent:
        raise SnnflowError(f"{run_json}: no {', '.join(absent)} (written by an older snnflow) "
                           f"- {rerun}")
    _check_types(run_json, info, rerun)
    _check_text(run_json, info, rerun)
    for name, table in tables.items():
        textual = [c for c in CSV_COLUMNS[name] if c != "layer"
                   and not pd.api.types.is_numeric_dtype(table[c])]
        if textual:
            raise SnnflowError(f"{folder / RUN_FILES[name]}: column {textual[0]} holds values "
                               f"that are not numbers - {rerun}")
    _check_agreement(folder, tables, info, rerun)
    return Run(info["model"], info["name"], info["label"], info["T"], int(info["seed"]),
               tables["metrics"], tables["layers"], tables["predictions"], info, info["sweep"])


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


RUN_FIELD_TYPES = {  # run.json's identity fields: what the report groups and labels by
    "model": (lambda v: v in ("snn", "cnn"), "snn or cnn"),
    "name": (lambda v: isinstance(v, str), "text"),
    "label": (lambda v: isinstance(v, str), "text"),
    "T": (lambda v: v is None or (_is_int(v) and v > 0), "a positive integer or null"),
    "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "sweep": (lambda v: v is None or _is_variant(v), "null or a sweep's name, variant and values"),
}


def _is_variant(value):
    return (isinstance(value, dict) and isinstance(value.get("name"), str)
            and isinstance(value.get("variant"), str) and isinstance(value.get("values"), dict)
            and all(isinstance(k, str) and isinstance(v, (int, float, str))
                    and not isinstance(v, bool) for k, v in value["values"].items()))


def _check_types(run_json, info, rerun):
    for key, (valid, what) in RUN_FIELD_TYPES.items():
        if not valid(info[key]):
            raise SnnflowError(f"{run_json}: {key} is {info[key]!r}, not {what} - {rerun}")


def _check_text(run_json, info, rerun, key=""):
    """No text anywhere in run.json longer than MAX_TEXT characters."""
    if isinstance(info, str) and len(info) > MAX_TEXT:
        raise SnnflowError(f"{run_json}: {key or 'the record'} is {len(info)} characters of "
                           f"text, more than {MAX_TEXT} - {rerun}")
    items = (info.items() if isinstance(info, dict)
             else enumerate(info) if isinstance(info, list) else ())
    for name, value in items:
        _check_text(run_json, value, rerun, f"{key}.{name}" if key else str(name))


def _check_agreement(folder, tables, info, rerun):
    """A run's files agree with each other: the epochs 1..n once each in metrics.csv, n
    as run.json's settings say, each epoch's layers once, a prediction per test sample."""
    metrics, layers, predictions = tables["metrics"], tables["layers"], tables["predictions"]
    epochs = list(metrics["epoch"])
    if epochs != list(range(1, len(epochs) + 1)):
        repeated = sorted({e for e in epochs if epochs.count(e) > 1})
        what = (f"epoch {repeated[0]:g} more than once (two jobs wrote this run?)" if repeated
                else "epochs that are not 1, 2, 3, ... in order")
        raise SnnflowError(f"{folder / RUN_FILES['metrics']}: {what} - {rerun}")
    settings = info.get("settings")
    wanted = settings.get("epochs") if isinstance(settings, dict) else None
    if _is_int(wanted) and wanted != len(epochs):
        raise SnnflowError(f"{folder / RUN_FILES['metrics']}: {len(epochs)} epochs, but "
                           f"{RUN_FILES['run']} says the run trained {wanted} - {rerun}")
    if layers.duplicated(["epoch", "layer"]).any() or set(layers["epoch"]) != set(epochs):
        raise SnnflowError(f"{folder / RUN_FILES['layers']}: not each epoch's layers once, for "
                           f"the epochs of {RUN_FILES['metrics']} - {rerun}")
    n_test = info.get("n_test")
    if _is_int(n_test) and n_test != len(predictions):
        raise SnnflowError(f"{folder / RUN_FILES['predictions']}: {len(predictions)} rows, but "
                           f"{RUN_FILES['run']} says the test split has {n_test} samples - "
                           f"{rerun}")


def load_examples(path):
    """The data summary's examples (snnflow.report.data_summary), checked: the class names;
    for each shown class a name, frames (T, P, H, W) per T and, with a static twin, a
    28x28 digit."""
    redo = "delete it and rerun the workflow (the data_summary job writes it)"
    try:
        with np.load(path, allow_pickle=False) as npz:
            examples = dict(npz)
    except (OSError, ValueError, EOFError) as err:  # not an npz; object arrays (pickles)
        raise SnnflowError(f"{path}: cannot be read as the data summary's examples "
                           f"({str(err).splitlines()[0][:120]}) - {redo}") from None
    classes = examples.get("classes")
    if classes is None or classes.dtype.kind != "U" or classes.ndim != 1 or not classes.size:
        raise SnnflowError(f"{path}: holds no class names - {redo}")
    shown = min(len(classes), MAX_EXAMPLE_CLASSES)
    for key, array in examples.items():
        if key == "classes":
            valid = True
        elif key == "names":
            valid = array.dtype.kind == "U" and array.shape == (shown,)
        elif key == "digits":
            valid = array.dtype.kind in "uif" and array.shape == (shown, 28, 28)
        elif key.startswith("frames_T"):
            valid = array.dtype.kind in "uif" and array.ndim == 5 and array.shape[0] == shown
        else:
            valid = False
        if not valid:
            raise SnnflowError(f"{path}: {key} is a {array.dtype} array of shape "
                               f"{array.shape}, not what the data summary writes - {redo}")
    return examples


def load_nir_checks(paths):
    """The NIR checks' rows of the files `paths`, in order, checked."""
    tables = []
    for path in paths:
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError) as err:
            raise SnnflowError(f"{path}: cannot read the NIR check ({err}) - rerun its "
                               "verify_nir job") from None
        if list(table.columns) != NIR_COLUMNS or table.empty:
            raise SnnflowError(f"{path}: not the NIR check's columns or no rows - rerun its "
                               "verify_nir job")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def load_neurobench(folder, run):
    """The NeuroBench rows of the run in `folder` (Run `run`), checked: the scoring job's
    columns, one row per metric, numbers where numbers belong, and the run's identity."""
    path = Path(neurobench_path(folder))
    rerun = "rerun its neurobench job"
    if path.is_file() and path.stat().st_size > MAX_RUN_CSV_BYTES:
        raise SnnflowError(f"{path}: {path.stat().st_size} bytes, more than NeuroBench's rows "
                           f"can be - {rerun}")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise SnnflowError(f"{path}: cannot read NeuroBench's scores ({err}) - {rerun}") from None
    if (list(table.columns) != NEUROBENCH_COLUMNS
            or list(table["metric"]) != list(NEUROBENCH_METRICS)):
        raise SnnflowError(f"{path}: not the neurobench job's columns and metrics - {rerun}")
    numbers = ("samples", "neurobench", "project", "difference", "tolerance")
    if not all(pd.api.types.is_numeric_dtype(table[c]) for c in numbers) \
            or table["neurobench"].isna().any():
        raise SnnflowError(f"{path}: holds values that are not numbers - {rerun}")
    if set(table["model"]) != {run.label} or set(table["seed"]) != {run.seed}:
        raise SnnflowError(f"{path}: scores another run than {run.label} seed {run.seed} - "
                           f"{rerun}")
    return table


def load_study(run_folders, main_T, data_dir, energy, sweep_folders=(), nir_checks=None,
               neurobench=False):
    """The Study of the runs in `run_folders`, the sweeps' runs in `sweep_folders`, the
    NIR checks in the files `nir_checks` (None: none), with `neurobench` every run's
    NeuroBench scores, and the data summary in `data_dir`."""
    runs = [load_run(folder) for folder in run_folders]
    sweep_runs = [load_run(folder) for folder in sweep_folders]
    if neurobench:
        for folder, run in [*zip(run_folders, runs), *zip(sweep_folders, sweep_runs)]:
            run.neurobench = load_neurobench(folder, run)
    for folder, run in [*zip(run_folders, runs), *zip(sweep_folders, sweep_runs)]:
        if (run.sweep is None) != (folder in run_folders):
            kind = "a sweep's run" if run.sweep is not None else "a run of the study's models"
            raise SnnflowError(f"{Path(folder) / RUN_FILES['run']}: records {kind}, found where "
                               "the other kind belongs - rerun its training job")
    labels = {r.label for r in runs}
    if model_label("snn", main_T) not in labels or model_label("cnn") not in labels:
        raise SnnflowError(f"config key snn.main_T: no run for T={main_T} and the CNN - "
                           "add it to snn.T")
    data_dir = Path(data_dir)
    dataset = pd.read_csv(data_dir / "dataset.csv")
    examples = load_examples(data_dir / "examples.npz")
    nir = load_nir_checks(nir_checks) if nir_checks is not None else None
    return Study(runs, main_T, dataset, examples, energy, sweep_runs, nir)
