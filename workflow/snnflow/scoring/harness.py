"""A run's network scored by NeuroBench on its test split, beside the project's counts.

NeuroBench's `Benchmark` runs the network (snnflow.scoring.networks) on the test
samples with its static metrics (Footprint, ParameterCount, ConnectionSparsity) and
workload metrics (ClassificationAccuracy, ActivationSparsity, SynapticOperations). The
project's own counts of the same samples come from its evaluation code (the SNN's
SpikeRecord, the CNN's OpsRecord: what writes layers.csv), its accuracy from the run's
predictions.csv, its parameter count from run.json; snnflow.scoring.agreement compares.
"""

import contextlib
import csv
import io
import json
import re
from importlib import metadata

import torch

from snnflow import SnnflowError
from snnflow.runs import PREDICTION_COLUMNS
from snnflow.scoring import NEUROBENCH_COLUMNS
from snnflow.scoring import agreement
from snnflow.scoring.networks import ACTIVATION_CLASSES, SpikingView, trained_network

SNN_BATCH_STEPS = 1024  # samples x T per batch: NeuroBench's hooks keep a batch's activity


def batches(samples, settings):
    """A loader of Samples in order, NeuroBench's and the project's counts alike: batches
    of SNN_BATCH_STEPS samples x T for the SNN, 256 for the CNN."""
    size = 256 if settings.T is None else max(1, SNN_BATCH_STEPS // settings.T)
    return torch.utils.data.DataLoader(samples, batch_size=size, collate_fn=lambda batch: batch)


class Samples(torch.utils.data.Dataset):
    """The test samples (integers) as NeuroBench's loader takes them: float (N, ...) and
    labels, fetched a batch at a time."""

    def __init__(self, inputs, labels, scale):
        self.inputs, self.labels, self.scale = inputs, labels, scale

    def __len__(self):
        return len(self.labels)

    def __getitems__(self, indices):
        x = torch.as_tensor(self.inputs[indices[0]:indices[-1] + 1]).float()
        if self.scale != 1.0:
            x.mul_(self.scale)
        return x, torch.as_tensor(self.labels[indices[0]:indices[-1] + 1]).long()


def neurobench_scores(network, settings, samples):
    """{metric: value} of NeuroBench's metrics (agreement.METRICS) for `network` on the
    Samples `samples`. NeuroBench prints a workload metric that raised and scores it 0:
    such a line is an error here."""
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
        from neurobench.metrics.workload import (ActivationSparsity, ClassificationAccuracy,
                                                 SynapticOperations)
        from neurobench.models import TorchModel
        from neurobench.processors.postprocessors import ChooseMaxCount
    except ImportError as err:  # snnTorch, which it imports, missing
        raise SnnflowError(f"neurobench {neurobench_version()} cannot be imported ({err}) - "
                           "install what envs/neurobench.txt says, or set "
                           "neurobench.enabled: false") from None

    spiking = settings.model == "snn"
    model = TorchModel(SpikingView(network) if spiking else network)
    for activation in ACTIVATION_CLASSES:
        model.add_activation_module(activation)
    loader = batches(samples, settings)
    postprocessors = [ChooseMaxCount()] if spiking else [lambda logits: logits.argmax(1)]
    benchmark = Benchmark(model, loader, [], postprocessors,
                          [[Footprint, ParameterCount, ConnectionSparsity],
                           [ClassificationAccuracy, ActivationSparsity, SynapticOperations]])
    printed = io.StringIO()  # its progress bar and messages
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                torch.no_grad():
            results = benchmark.run()
    finally:
        benchmark.workload_metric_manager.cleanup_hooks(model)
    failed = re.search(r"Error running workload metric [^\r\n]*", printed.getvalue())
    if failed:  # on a line of its own or after the progress bar's carriage return
        raise SnnflowError(f"NeuroBench {neurobench_version()}: {failed.group(0).strip()} - "
                           "the network cannot be scored as it is; set neurobench.enabled: "
                           "false to go on without NeuroBench")
    return {**{name: results[name] for name in agreement.STATIC},
            "ClassificationAccuracy": results["ClassificationAccuracy"],
            "ActivationSparsity": results["ActivationSparsity"],
            **results["SynapticOperations"]}


def project_counts(network, settings, samples, n_classes=None):
    """{metric: value} of the project's own counts on `samples`, by NeuroBench's
    definitions (agreement.compare says how each is formed); the accuracy and parameter
    count come from the run's files (harness `score`)."""
    from snnflow.model.architecture import layer_macs

    if settings.model == "cnn":
        from snnflow.model.cnn import OpsRecord

        rows = OpsRecord(network).rows()
        return {"Effective_ACs": sum(row["synaptic_ops"] for row in rows),
                "Dense": float(sum(row["macs"] for row in rows))}
    from snnflow.model.snn import SpikeRecord

    # NeuroBench calls a layer's input spikes when it holds only 0 and +-1: a batch of
    # frames like that makes the first convolution's operations accumulates
    records = {"counts": SpikeRecord(network), "binary": SpikeRecord(network)}
    with torch.no_grad():
        for x, _ in batches(samples, settings):
            binary = bool(((x == 0) | (x == 1) | (x == -1)).all())
            records["binary" if binary else "counts"].forward(x.transpose(0, 1))
    n, T = len(samples), settings.T
    neurons = network.layer_neurons()
    spikes = sum(float(r.spikes[layer]) for r in records.values() for layer in network.layers)
    sops = sum(float(r.synaptic_ops[layer]) for r in records.values()
               for layer in network.layers)
    first = network.layers[0]
    dense = sum(layer_macs(network.convs[0][0].in_channels,
                           [conv[0].out_channels for conv in network.convs], network.size,
                           network.fc1.out_features, network.fc2.out_features).values())
    return {"ActivationSparsity": 1.0 - spikes / (sum(neurons.values()) * T * n),
            "Effective_ACs": (sops + float(records["binary"].macs[first])) / n,
            "Effective_MACs": float(records["counts"].macs[first]) / n,
            "Dense": float(T * dense)}


def predictions_accuracy(predictions_csv, labels):
    """The accuracy of the run's predictions.csv on the first len(labels) test samples,
    checked against the cache's labels."""
    redo = "delete it and rerun its training job"
    try:
        with open(predictions_csv, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != PREDICTION_COLUMNS:
                raise ValueError("not the columns index, label, prediction")
            rows = [row for _, row in zip(range(len(labels)), reader)]
        indices = [int(row["index"]) for row in rows]
        truth = [int(row["label"]) for row in rows]
        predicted = [int(row["prediction"]) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SnnflowError(f"{predictions_csv}: cannot be read ({err}) - {redo}") from None
    if indices != list(range(len(labels))) or truth != [int(y) for y in labels]:
        raise SnnflowError(f"{predictions_csv}: not the predictions of this test split's "
                           f"{len(labels)} samples (another split or dataset) - {redo}")
    return sum(p == y for p, y in zip(predicted, truth)) / len(labels)


def neurobench_version():
    try:
        return metadata.version("neurobench")
    except metadata.PackageNotFoundError:
        return None


def score(model_pt, run_json, predictions_csv, cache, samples, out_csv, log=print):
    """Score the run whose files are `model_pt`, `run_json` and `predictions_csv` on the
    first `samples` test samples of `cache` (None: all) with NeuroBench and the project's
    counts, and write the rows (NEUROBENCH_COLUMNS) to `out_csv`; returns them."""
    import pandas as pd

    from snnflow.jobs.atomic import atomic_path
    from snnflow.model import cnn, snn

    version = neurobench_version()
    if version is None:
        raise SnnflowError("neurobench is not installed: pip install --no-deps -r "
                           "envs/neurobench.txt, or set neurobench.enabled: false")
    network, settings = trained_network(model_pt)
    try:
        info = json.loads(open(run_json).read())
        identity = {"model": info["label"], "T": info["T"], "seed": info["seed"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SnnflowError(f"{run_json}: cannot be read ({type(err).__name__}) - delete it "
                           "and rerun its training job") from None
    kind = {"snn": snn.KIND, "cnn": cnn.KIND}[settings.model]
    inputs, labels = kind.load(cache, "test")
    if samples is not None:
        inputs, labels = inputs[:samples], labels[:samples]
    test = Samples(inputs, labels, kind.scale(cache))
    log(f"NeuroBench {version}: {identity['model']} seed {identity['seed']} on "
        f"{len(test)} test samples")
    theirs = neurobench_scores(network, settings, test)
    ours = project_counts(network, settings, test)
    ours["ClassificationAccuracy"] = predictions_accuracy(predictions_csv, labels)
    if isinstance(info.get("parameters"), int):
        ours["ParameterCount"] = float(info["parameters"])
    rows = [{**identity, "samples": len(test), "neurobench_version": version, **row}
            for row in agreement.compare(settings.model, theirs, ours, len(test))]
    for row in rows:
        if row["project"] is None:
            log(f"  {row['metric']} {row['neurobench']:.6g} ({row['compared_with']})")
        else:
            log(f"  {row['metric']} {row['neurobench']:.6g}, the project's {row['project']:.6g}: "
                f"{'agrees' if row['agrees'] == 'yes' else 'DISAGREES'} (tolerance "
                f"{row['tolerance']:.3g})")
    for row in agreement.disagreements(rows):
        log(f"warning: NeuroBench's {row['metric']} {row['neurobench']:.6g} differs from the "
            f"project's {row['project']:.6g} ({row['compared_with']}) by more than "
            f"{row['tolerance']:.3g}: a finding, shown in the report")
    with atomic_path(out_csv) as tmp:
        pd.DataFrame(rows, columns=NEUROBENCH_COLUMNS).to_csv(tmp, index=False)
    return rows
