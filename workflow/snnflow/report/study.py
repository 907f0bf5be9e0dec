"""What the report reads, checked: every run's files (snnflow.runs) and the data summary.

A run's identity (model, name, label, T, seed) comes from its run.json, never from the
folder it lies in.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from snnflow import SnnflowError
from snnflow.runs import CSV_COLUMNS, RUN_FILES, model_label


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


@dataclass
class Study:
    """The runs, the data summary and the report's settings; `tables` fills up as the
    report computes them, in the registry's order."""
    runs: list
    main_T: int
    dataset: pd.DataFrame
    examples: dict
    energy: dict
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
    def main_label(self):
        return model_label("snn", self.main_T)


def load_run(folder):
    """The Run whose files lie in `folder`, every file checked."""
    folder = Path(folder)
    rerun = "rerun its training job"
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
    absent = [key for key in ("model", "name", "label", "T", "seed") if key not in info]
    if absent:
        raise SnnflowError(f"{folder / RUN_FILES['run']}: no {', '.join(absent)} (written by "
                           f"an older snnflow) - {rerun}")
    return Run(info["model"], info["name"], info["label"], info["T"], int(info["seed"]),
               tables["metrics"], tables["layers"], tables["predictions"], info)


def load_study(run_folders, main_T, data_dir, energy):
    """The Study of the runs in `run_folders` and the data summary in `data_dir`."""
    runs = [load_run(folder) for folder in run_folders]
    labels = {r.label for r in runs}
    if model_label("snn", main_T) not in labels or model_label("cnn") not in labels:
        raise SnnflowError(f"config key snn.main_T: no run for T={main_T} and the CNN - "
                           "add it to snn.T")
    data_dir = Path(data_dir)
    dataset = pd.read_csv(data_dir / "dataset.csv")
    with np.load(data_dir / "examples.npz", allow_pickle=False) as npz:
        examples = dict(npz)
    return Study(runs, main_T, dataset, examples, energy)
