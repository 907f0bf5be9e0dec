"""NeuroBench's numbers against the project's own, metric by metric, by NeuroBench's
definitions (docs/neurobench.md has a sentence per metric).

Where the project has its own count of what a metric measures, the row holds it, the
difference and the tolerance it must stay within; where it has none, the row says so
and why. A difference beyond the tolerance is a finding: the row says NO and the
report shows it.
"""

from snnflow.scoring import NEUROBENCH_METRICS as METRICS

STATIC = METRICS[:3]  # NeuroBench's static metrics; the others are its workload metrics

# What each metric counts, as NeuroBench 2.3 computes it (its source, neurobench/metrics)
MEANINGS = {
    "Footprint": "bytes of every parameter and buffer of the network (BatchNorm's running "
                 "statistics included)",
    "ParameterCount": "number of parameters",
    "ConnectionSparsity": "fraction of the convolutions' and fully connected layers' weights "
                          "that are exactly zero",
    "ClassificationAccuracy": "fraction of the test samples whose predicted class (the most "
                              "output spikes over T; the CNN's highest logit) is the label",
    "ActivationSparsity": "fraction of zeros among the outputs of every activation layer "
                          "(spiking neurons, ReLU) over all time steps and samples",
    "Effective_ACs": "accumulates per sample: each nonzero input of a layer whose input holds "
                     "only 0 and 1 (spikes), times its nonzero weights, over all time steps",
    "Effective_MACs": "multiply-accumulates per sample: the same for a layer whose input holds "
                      "other values (event counts, pixels, ReLU outputs)",
    "Dense": "operations per sample with every input and weight counted, zeros included "
             "(the zero padding of a convolution not)",
}

COUNT_TOLERANCE = 1e-6  # relative: the project sums its counts in float32 and float64
SPARSITY_TOLERANCE = 1e-6  # absolute, of a fraction


def accuracy_tolerance(samples):
    """Samples the accuracy may differ by, as a fraction: the run's predictions come from
    its own engine and device, where a membrane potential within float rounding of the
    threshold can fire differently; one sample in a thousand, at least one."""
    return max(1, samples // 1000) / samples


def _row(metric, neurobench, project, tolerance, relative, compared_with):
    if project is None:
        return {"metric": metric, "neurobench": neurobench, "project": None, "difference": None,
                "tolerance": None, "agrees": "not compared", "compared_with": compared_with}
    difference = neurobench - project
    allowed = tolerance * max(abs(project), 1.0) if relative else tolerance
    return {"metric": metric, "neurobench": neurobench, "project": project,
            "difference": difference, "tolerance": allowed,
            "agrees": "yes" if abs(difference) <= allowed + 1e-12 else "NO",
            "compared_with": compared_with}


def compare(model, neurobench, project, samples):
    """One row per metric of METRICS: NeuroBench's value (`neurobench`: {metric: value}),
    the project's (`project`: {metric: value}, a metric without one missing), for a
    network of `model` ("snn" or "cnn") scored on `samples` test samples."""
    spiking = model == "snn"
    notes = {
        "Footprint": "not compared: the project keeps no footprint of its own",
        "ParameterCount": "run.json's parameters (the trainer's count)",
        "ConnectionSparsity": "not compared: the project counts no zero weights",
        "ClassificationAccuracy": "predictions.csv on the same samples (the run's own "
                                  "evaluation, on its engine and device)",
        "ActivationSparsity": (
            "1 minus the project's spikes per neuron and time step over all spiking layers "
            "(layers.csv's firing_rate weighted by its neurons: the neurons inside the "
            "pooling windows)" if spiking else
            "not compared: the project counts no activations of the CNN"),
        "Effective_ACs": (
            "the project's synaptic operations per sample (every layer fed spikes), plus "
            "the first convolution's multiply-accumulates of the batches whose frames hold "
            "only 0 and 1, which NeuroBench counts as spikes" if spiking else
            "0: the project counts no synaptic operations for the CNN (no layer is fed spikes)"),
        "Effective_MACs": (
            "the project's multiply-accumulates per sample of the first convolution (fed "
            "event counts), but those of batches whose frames hold only 0 and 1" if spiking
            else "not compared: the project counts the CNN's multiply-accumulates densely "
                 "(layers.csv's macs, zero inputs included); NeuroBench skips zero inputs"),
        "Dense": (
            "T times the project's operations per time step with every input counted, from "
            "the shapes (the weights that meet an input pixel)" if spiking else
            "the project's multiply-accumulates per sample (layers.csv's macs: every weight "
            "that meets an input pixel)"),
    }
    tolerances = {"ParameterCount": (0.0, False),
                  "ClassificationAccuracy": (accuracy_tolerance(samples), False),
                  "ActivationSparsity": (SPARSITY_TOLERANCE, False),
                  "Effective_ACs": (COUNT_TOLERANCE, True),
                  "Effective_MACs": (COUNT_TOLERANCE, True),
                  "Dense": (COUNT_TOLERANCE, True)}
    return [_row(metric, float(neurobench[metric]), project.get(metric),
                 *tolerances.get(metric, (None, False)), notes[metric]) for metric in METRICS]


def disagreements(rows):
    """The rows whose values differ beyond their tolerance."""
    return [row for row in rows if row["agrees"] == "NO"]
