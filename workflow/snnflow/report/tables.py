"""The report's tables, computed from what the training and data jobs wrote.

Every function takes the Study (snnflow.report.study: the loaded runs, one per model
and seed, and the data summary) and returns a DataFrame that the report writes to
results/tables/ and shows: every number on the page comes from one of these CSV files.
Accuracies stay fractions here; the page shows them as percentages. With several seeds
a value is the mean over seeds, `<column>_std` its sample standard deviation and `n`
the number of seeds. Each table has an entry in snnflow.report.registry.
"""

import json

import numpy as np
import pandas as pd

from snnflow.runs import chosen_epoch, model_label, model_name
from snnflow.scoring import NEUROBENCH_METRICS

# The reference study's numbers (docs/method.md), shown beside ours, by (model, T).
REFERENCE_DEVICE = "one NVIDIA RTX 3090"
REFERENCE_SAMPLES = (60_000, 10_000)  # training and test samples per epoch: full N-MNIST
REFERENCE_RESULTS = {  # last epoch of 100
    ("cnn", None): dict(train_loss=0.0000, test_loss=0.0329, train_acc=1.0000, test_acc=0.9934),
    ("snn", 16): dict(train_loss=0.0006, test_loss=0.0011, train_acc=0.9986, test_acc=0.9960),
}
# The reference study's networks and training (docs/method.md): both models alike.
REFERENCE_NETWORK = dict(channels=[32, 64, 128], hidden=256, batch_size=256, lr=0.001,
                         epochs=100)
REFERENCE_SECONDS = {  # per epoch: (training, inference)
    ("cnn", None): (1.98, 1.13), ("snn", 4): (23.76, 5.64), ("snn", 8): (25.12, 5.30),
    ("snn", 16): (23.24, 4.00), ("snn", 32): (61.19, 6.23),
}
METRICS = ("train_loss", "test_loss", "train_acc", "test_acc")


def by_model(runs):
    """{model name: its runs} in the order of the study: SNNs by T, then the CNN."""
    groups = {}
    for r in sorted(runs, key=lambda r: (r.model == "cnn", r.T or 0, r.seed)):
        groups.setdefault(r.name, []).append(r)
    return groups


def spread(values, name):
    """{name: mean, name_std: sample std (NaN for one value)} of `values`."""
    values = np.asarray(list(values), dtype=float)
    return {name: values.mean(), f"{name}_std": values.std(ddof=1) if len(values) > 1 else np.nan}


def chosen_row(run):
    """(metrics row, how it was chosen) of the run's chosen epoch (snnflow.runs.chosen_epoch)."""
    row, how = chosen_epoch(run.metrics.to_dict("records"))
    return pd.Series(row), how


def chosen_on(group):
    """How the runs of `group` chose their epoch, in words."""
    return "; ".join(sorted({chosen_row(r)[1] for r in group}))


def epochs_table(study):
    """Every epoch of every run (the curves' data)."""
    return pd.concat([r.metrics.assign(model=r.label, seed=r.seed) for r in study.runs],
                     ignore_index=True)


def data_scope(study):
    """What the study's event data are, from the data summary: (kind, sentence, short
    label), kind "full" (the 60,000 + 10,000 N-MNIST recordings the reference study used),
    "subset", "synthetic", or "other" (another dataset, which the reference study did not
    run: no reference figures at all); the reference's figures compare with ours only
    when full."""
    name = study.dataset_name
    rows = study.dataset[study.dataset["dataset"] == name]
    samples = dict(zip(rows["split"], rows["samples"]))
    n_train, n_test = int(samples.get("train", 0)), int(samples.get("test", 0))
    sizes = f"{n_train} + {n_test}"
    if name != "N-MNIST":
        return "other", f"{name} ({sizes} samples)", f"{name} ({sizes})"
    if any(str(source).startswith("synthetic") for source in rows["source"]):
        return ("synthetic", f"synthetic data ({sizes} recordings made by "
                             "snnflow.data.synthetic), not N-MNIST", f"synthetic ({sizes})")
    if (n_train, n_test) != REFERENCE_SAMPLES:
        return ("subset", f"a subset of N-MNIST ({sizes} of its {REFERENCE_SAMPLES[0]} + "
                          f"{REFERENCE_SAMPLES[1]} recordings)", f"N-MNIST subset ({sizes})")
    return "full", f"N-MNIST ({sizes} recordings)", f"N-MNIST ({sizes})"


def works(group, reasons=True):
    """"yes", or which seeds' final networks do not work in evaluation and why (the
    column beside every number of a model: snnflow.runs.failure_signs); without
    `reasons`, for a wide table, which seeds only and where the reasons are."""
    failing = [(r.seed, r.failure_signs) for r in group]
    failing = [(seed, signs) for seed, signs in failing if signs]
    if not failing:
        return "yes"
    if not reasons:
        seeds = ", ".join(str(seed) for seed, _ in failing)
        return f"NO - seed{'s' if len(failing) > 1 else ''} {seeds} (why: the pareto table)"
    return "NO - " + "; ".join(f"seed {seed}: {', '.join(signs)}" for seed, signs in failing)


def model_data(study, group):
    """What a model trained and was tested on, with its sample counts: the SNN on the
    event data, the CNN on MNIST (its own counts) or on event images of the same samples."""
    run = group[0]
    if run.model == "snn":
        return data_scope(study)[2]
    if study.has_twin:
        rows = study.dataset[study.dataset["dataset"] == "MNIST"]
        samples = dict(zip(rows["split"], rows["samples"]))
        n_train = samples.get("train", run.info.get("n_train"))
        n_test = samples.get("test", run.info.get("n_test"))
        return "MNIST" + (f" ({int(n_train)} + {int(n_test)})" if n_train and n_test else "")
    return f"{study.dataset_name} event images ({data_scope(study)[2].split('(')[-1]}"


def network_text(settings):
    """A model's network in a few words: its conv channels and hidden units."""
    channels = settings.get("channels")
    if not channels:
        return "-"
    return f"conv {'-'.join(str(c) for c in channels)}, {settings.get('hidden')} hidden"


def network_against_reference(settings):
    """Whether a run's network is the reference study's, and if not what it is."""
    same = all(settings.get(key) == REFERENCE_NETWORK[key] for key in ("channels", "hidden"))
    return ("the reference's" if same else
            f"NOT the reference's: {network_text(settings)} (reference: "
            f"{network_text(REFERENCE_NETWORK)})")


# config dataset.framing (run.json's framing; by count where run.json predates it)
FRAMINGS = {"count": "by event count", "time": "by time", None: "by event count"}
SNN_LOSSES = {"mse_rate": "MSE of output firing rates",
              "ce_rate": "cross-entropy of each step's output spikes (ce_rate)"}


def snn_loss_text(settings):
    """An SNN run's loss (snn.loss; MSE where run.json predates the choice) and dropout."""
    text = SNN_LOSSES[settings.get("loss", "mse_rate")]
    return text + (f", dropout {settings['dropout']}" if settings.get("dropout") else "")


def snn_neuron_text(group):
    """An SNN model's neuron (snn.neuron; LIF where run.json predates the choice), its
    tau (a PLIF's learned tau per layer, the mean over the group's runs), threshold and
    surrogate."""
    s = group[0].info.get("settings", {})
    neuron = s.get("neuron", "lif")
    if neuron == "plif":
        learned = [r.info.get("learned_tau") or {} for r in group]
        layers = list(learned[0])
        taus = ", ".join(f"{layer} {np.mean([taus.get(layer, np.nan) for taus in learned]):.3g}"
                         for layer in layers)
        decay = f"PLIF, tau learned from {s.get('tau')} ({taus})"
    elif neuron == "if":
        decay = "IF (no leak)"
    else:
        decay = f"LIF, tau {s.get('tau')}"
    return (f"{decay}, threshold {s.get('v_threshold')}, {s.get('surrogate', 'sigmoid')} "
            f"surrogate alpha {s.get('surrogate_alpha')}")


def models_table(study):
    """What each model is: its data, network (conv channels, hidden units, parameters),
    T, neuron and training settings, from its runs' run.json; and the reference study's,
    so that a time or accuracy beside the reference's is never read as the same
    network's."""
    rows = []
    for group in by_model(study.runs).values():
        run, s = group[0], group[0].info.get("settings", {})
        spiking = run.model == "snn"
        rows.append({"model": run.label, "source": "ours", "data": model_data(study, group),
                     "T": run.T, "framing": FRAMINGS.get(run.info.get("framing"), "-")
                     if spiking else "-", "channels": "-".join(str(c) for c in s.get("channels", [])),
                     "hidden": s.get("hidden"), "parameters": run.info.get("parameters"),
                     "neuron": snn_neuron_text(group) if spiking else "ReLU",
                     "loss": snn_loss_text(s) if spiking else "cross-entropy",
                     "batch_size": s.get("batch_size"), "lr": s.get("lr"),
                     "epochs": s.get("epochs"), "optimizer": "Adam, cosine annealing",
                     "seeds": len(group)})
    if data_scope(study)[0] != "other":
        reference = REFERENCE_NETWORK
        for model, T in (("snn", 16), ("cnn", None)):
            rows.append({"model": model_label(model, T), "source": "reference study",
                         "data": "N-MNIST (60000 + 10000)" if model == "snn"
                         else "MNIST (60000 + 10000)", "T": T,
                         "framing": FRAMINGS["count"] if model == "snn" else "-",
                         "channels": "-".join(str(c) for c in reference["channels"]),
                         "hidden": reference["hidden"], "parameters": None,
                         "neuron": ("LIF, tau 2.0, threshold 1.0, sigmoid surrogate alpha 4.0"
                                    if model == "snn" else "ReLU"),
                         "loss": "MSE of output firing rates" if model == "snn"
                         else "cross-entropy",
                         "batch_size": reference["batch_size"], "lr": reference["lr"],
                         "epochs": reference["epochs"], "optimizer": "Adam, cosine annealing",
                         "seeds": 1})
    return pd.DataFrame(rows).astype({"T": "Int64", "parameters": "Int64"})


def comparison_table(study):
    """The CNN and the main SNN at the last epoch and at the chosen one (per seed: the
    highest validation accuracy, or without a validation split the highest test
    accuracy), and the reference study's last epoch."""
    rows = []
    groups = by_model(study.runs)
    scope = data_scope(study)[0]
    for model in (model_name("cnn"), model_name("snn", study.main_T)):
        group = groups[model]
        for kind in ("last", "chosen"):
            picked = [r.metrics.iloc[-1] if kind == "last" else chosen_row(r)[0] for r in group]
            kind = kind if kind == "last" else chosen_on(group)
            row = {"model": group[0].label, "source": "ours",
                   "data": model_data(study, group), "works": works(group),
                   "epoch_kind": kind, "n": len(picked),
                   "epoch": ", ".join(str(int(p["epoch"])) for p in picked)}
            for metric in METRICS:
                row.update(spread((p[metric] for p in picked), metric))
            rows.append(row)
    if scope == "other":  # the reference study ran N-MNIST only
        return pd.DataFrame(rows)
    reference = f"N-MNIST ({REFERENCE_SAMPLES[0]} + {REFERENCE_SAMPLES[1]})"
    source = ("reference study" if scope == "full"  # else why it is not comparable
              else f"reference study (not comparable: {scope} data here)")
    for (model, T), values in REFERENCE_RESULTS.items():
        rows.append({"model": model_label(model, T), "source": source,
                     "data": reference if model == "snn" else reference.replace("N-", ""),
                     "works": "yes", "epoch_kind": "last", "n": 1, "epoch": "100", **values})
    return pd.DataFrame(rows)


def timing_table(study):
    """Mean seconds per epoch (training, inference, total) of each model and the spread
    over seeds, with what they ran on (device, samples per epoch) and the same seconds
    per the reference study's epoch (60,000 training, 10,000 test samples), beside the
    reference study's figures and what it ran on: rates compared, not epochs of
    different sizes."""
    rows = []
    other = data_scope(study)[0] == "other"  # the reference study ran N-MNIST only
    for group in by_model(study.runs).values():
        ref = REFERENCE_SECONDS.get((group[0].model, group[0].T), (np.nan, np.nan))
        devices = sorted({r.info.get("device_name", "") for r in group})
        n_train, n_test = group[0].info.get("n_train"), group[0].info.get("n_test")
        row = {"model": group[0].label, "data": model_data(study, group), "n": len(group),
               "network": network_against_reference(group[0].info.get("settings", {})),
               "device": "; ".join(devices), "epochs": len(group[0].metrics),
               "n_train": n_train, "n_test": n_test}
        for column, name in (("train_seconds", "train_seconds"),
                             ("test_seconds", "inference_seconds")):
            row.update(spread((r.metrics[column].mean() for r in group), name))
        row.update(spread((r.metrics[["train_seconds", "test_seconds"]].sum(axis=1).mean()
                           for r in group), "total_seconds"))
        if other:  # no reference: its epoch sizes and seconds mean nothing here
            rows.append(row)
            continue
        row.update(spread((r.metrics["train_seconds"].mean() * REFERENCE_SAMPLES[0]
                           / r.info.get("n_train", np.nan) for r in group),
                          "train_seconds_per_60000"))
        row.update(spread((r.metrics["test_seconds"].mean() * REFERENCE_SAMPLES[1]
                           / r.info.get("n_test", np.nan) for r in group),
                          "inference_seconds_per_10000"))
        row.update(reference_device=REFERENCE_DEVICE if not np.isnan(ref[0]) else "",
                   reference_train_seconds=ref[0], reference_inference_seconds=ref[1])
        rows.append(row)
    return pd.DataFrame(rows).astype({"n_train": "Int64", "n_test": "Int64"})


def accuracy_table(study):
    """Per model: the final epoch's test accuracy (the reference study's protocol) and the
    test accuracy at the chosen epoch (snnflow.runs.chosen_epoch: on the validation split,
    or on the test set where there is none, which flatters it), over seeds."""
    rows = []
    for group in by_model(study.runs).values():
        chosen = [chosen_row(r)[0] for r in group]
        rows.append({"model": group[0].label, "data": model_data(study, group),
                     "works": works(group), "n": len(group),
                     **spread((r.metrics["test_acc"].iloc[-1] for r in group), "final_test_acc"),
                     **spread((c["test_acc"] for c in chosen), "chosen_test_acc"),
                     "chosen_on": chosen_on(group),
                     "chosen_epoch": ", ".join(str(int(c["epoch"])) for c in chosen),
                     **spread((c["val_acc"] for c in chosen), "chosen_val_acc"),
                     "n_validation": group[0].info.get("validation", {}).get("n_validation", 0)})
    return pd.DataFrame(rows)


def accuracy_by_T_table(study):
    """Final and chosen-epoch test accuracy of each SNN-T over its seeds."""
    rows = []
    for group in by_model(study.runs).values():
        if group[0].T is None:
            continue
        last = [r.metrics["test_acc"].iloc[-1] for r in group]
        row = {"T": group[0].T, "n": len(group), **spread(last, "last_test_acc"),
               "last_test_acc_min": min(last), "last_test_acc_max": max(last),
               **spread((chosen_row(r)[0]["test_acc"] for r in group), "chosen_test_acc"),
               "chosen_on": chosen_on(group)}
        rows.append(row)
    return pd.DataFrame(rows).sort_values("T")


def significance_table(study):
    """A paired t-test (two-sided, over the seeds both runs have) of the main SNN's final
    test accuracy against each other T's."""
    from scipy import stats

    groups, main_name = by_model(study.runs), model_name("snn", study.main_T)
    main = {r.seed: r.metrics["test_acc"].iloc[-1] for r in groups[main_name]}
    rows = []
    for model, group in groups.items():
        if group[0].T is None or model == main_name:
            continue
        other = {r.seed: r.metrics["test_acc"].iloc[-1] for r in group}
        seeds = sorted(set(main) & set(other))
        a, b = [main[s] for s in seeds], [other[s] for s in seeds]
        row = {"comparison": f"{model_label('snn', study.main_T)} vs {group[0].label}",
               "test": "paired t-test, two-sided, final test accuracy", "n": len(seeds),
               "mean_difference": float(np.mean(np.subtract(a, b))) if seeds else np.nan}
        if len(seeds) >= 3 and np.ptp(np.subtract(a, b)) > 0:
            result = stats.ttest_rel(a, b)
            row.update(t=float(result.statistic), p_value=float(result.pvalue), note="")
        else:
            row.update(t=np.nan, p_value=np.nan,
                       note="fewer than 3 paired seeds: no test is possible" if len(seeds) < 3
                       else "identical differences in every seed: the test is undefined")
        rows.append(row)
    return pd.DataFrame(rows, columns=["comparison", "test", "n", "mean_difference", "t",
                                       "p_value", "note"])


def layers_by_epoch_table(study):
    """Every epoch's layer activity of every run (firing rates, SOPs, MACs per sample)."""
    return pd.concat([r.layers.assign(model=r.label, T=pd.array([r.T] * len(r.layers), "Int64"),
                                      seed=r.seed) for r in study.runs], ignore_index=True)


def layers_table(study):
    """Per model and layer at the final epoch: firing rate (spikes per neuron per time
    step) and synaptic operations per sample, over seeds; MACs per sample."""
    rows = []
    for group in by_model(study.runs).values():
        finals = [r.layers[r.layers["epoch"] == r.layers["epoch"].max()].set_index("layer")
                  for r in group]
        for layer in finals[0].index:  # the network's layers in order (conv1.., fc1, fc2)
            rows.append({"model": group[0].label, "T": group[0].T, "layer": layer, "n": len(finals),
                         "neurons": int(finals[0].loc[layer, "neurons"]),
                         **spread((f.loc[layer, "firing_rate"] for f in finals), "firing_rate"),
                         **spread((f.loc[layer, "synaptic_ops"] for f in finals),
                                  "synaptic_ops"),
                         "macs": float(finals[0].loc[layer, "macs"])})
    return pd.DataFrame(rows).astype({"T": "Int64"})


def final_layers(run):
    """The run's layers.csv rows of its final epoch."""
    return run.layers[run.layers["epoch"] == run.layers["epoch"].max()]


def operations(group, energy):
    """(SOPs, MACs, estimated microjoules) per inference at the final epoch, an array of
    each over the runs of `group`: SOPs x E_AC plus MACs x E_MAC."""
    sops, macs = np.array([(final_layers(r)["synaptic_ops"].sum(), final_layers(r)["macs"].sum())
                           for r in group], dtype=float).T
    return sops, macs, (sops * energy["e_ac_pj"] + macs * energy["e_mac_pj"]) / 1e6


def network_firing_rate(run):
    """The final epoch's spikes per neuron per time step of all spiking layers together."""
    final = final_layers(run)
    return float((final["firing_rate"] * final["neurons"]).sum() / final["neurons"].sum())


def energy_table(study):
    """Energy per inference (one test sample) at the final epoch: SOPs x E_AC plus MACs x
    E_MAC, in microjoules."""
    e_ac_pj, e_mac_pj = study.energy["e_ac_pj"], study.energy["e_mac_pj"]
    rows = []
    for group in by_model(study.runs).values():
        sops, macs, energy = operations(group, study.energy)
        rows.append({"model": group[0].label, "n": len(group), **spread(sops, "synaptic_ops"),
                     "macs": macs.mean(), "e_ac_pj": e_ac_pj, "e_mac_pj": e_mac_pj,
                     "sops_energy_uj": (sops * e_ac_pj).mean() / 1e6,
                     "macs_energy_uj": (macs * e_mac_pj).mean() / 1e6,
                     **spread(energy, "energy_uj"), **measured_energy(group)})
    return pd.DataFrame(rows)


def measured_energy(group):
    """The GPU energy the runs' jobs measured (snnflow.train.energy): joules per training
    epoch and microjoules per test inference (an evaluation epoch's joules over its
    samples: the whole GPU's draw, batched), mean over epochs and seeds, and where they
    were measured; NaN and the reason where they were not."""
    measured = [r for r in group if r.metrics["train_joules"].notna().any()]
    if not measured:
        notes = sorted({r.info.get("energy_measurement", "not measured") for r in group})
        return {"measured_train_j_per_epoch": np.nan, "measured_uj_per_inference": np.nan,
                "measured_on": "; ".join(notes)}
    per_epoch = [r.metrics["train_joules"].mean() for r in measured]
    per_inference = [r.metrics["test_joules"].mean() / r.info["n_test"] * 1e6 for r in measured]
    devices = sorted({r.info.get("device_name", "") for r in measured})
    return {"measured_train_j_per_epoch": float(np.mean(per_epoch)),
            "measured_uj_per_inference": float(np.mean(per_inference)),
            "measured_on": f"measured by NVML on {'; '.join(devices)} ({len(measured)} of "
                           f"{len(group)} runs)"}


def per_class_accuracy_table(study):
    """Test accuracy per class of each model's final predictions, over seeds."""
    rows = []
    for group in by_model(study.runs).values():
        for c, name in enumerate(study.classes):
            accuracies = []
            for r in group:
                mine = r.predictions[r.predictions["label"] == c]
                accuracies.append((mine["prediction"] == c).mean() if len(mine) else np.nan)
            n_test = int((group[0].predictions["label"] == c).sum())
            rows.append({"model": group[0].label, "class": name, "n_test": n_test, "n": len(group),
                         **spread(accuracies, "accuracy")})
    return pd.DataFrame(rows)


def confusion_table(study):
    """Counts of (true, predicted) class over the final predictions of all seeds, and the
    fraction of the true class's samples."""
    rows = []
    classes = study.classes
    for group in by_model(study.runs).values():
        predictions = pd.concat([r.predictions for r in group])
        counts = pd.crosstab(predictions["label"], predictions["prediction"]).reindex(
            index=range(len(classes)), columns=range(len(classes)), fill_value=0)
        totals = counts.sum(axis=1).replace(0, np.nan)
        for true in range(len(classes)):
            for predicted in range(len(classes)):
                rows.append({"model": group[0].label, "true": classes[true],
                             "predicted": classes[predicted],
                             "count": int(counts.loc[true, predicted]),
                             "fraction": counts.loc[true, predicted] / totals[true]})
    return pd.DataFrame(rows)


def by_variant(runs):
    """{(sweep name, variant): its runs} in the order the runs come (the sweeps' tables'),
    seeds in order."""
    groups = {}
    for r in runs:
        groups.setdefault((r.sweep["name"], r.sweep["variant"]), []).append(r)
    return {key: sorted(group, key=lambda r: r.seed) for key, group in groups.items()}


def sweeps_table(study):
    """Each sweep's variants: the swept values, final and chosen-epoch test accuracy,
    firing rate, SOPs and estimated energy per inference at the final epoch, seconds per
    epoch, over seeds."""
    rows = []
    for (sweep, variant), group in by_variant(study.sweep_runs).items():
        chosen = [chosen_row(r)[0] for r in group]
        sops, _, energy = operations(group, study.energy)
        rows.append({"sweep": sweep, "variant": group[0].label, "T": group[0].T,
                     **group[0].sweep["values"], "n": len(group),
                     **spread((r.metrics["test_acc"].iloc[-1] for r in group), "final_test_acc"),
                     **spread((c["test_acc"] for c in chosen), "chosen_test_acc"),
                     "chosen_on": chosen_on(group),
                     **spread((network_firing_rate(r) for r in group), "firing_rate"),
                     **spread(sops, "synaptic_ops"), **spread(energy, "energy_uj"),
                     **spread((r.metrics["train_seconds"].mean() for r in group),
                              "train_seconds"),
                     **spread((r.metrics["test_seconds"].mean() for r in group),
                              "inference_seconds"),
                     "path": variant})
    return pd.DataFrame(rows)


def pareto_front(accuracy, energy):
    """A boolean per point: no other point has at least its accuracy at no more energy,
    better in one of them."""
    accuracy, energy = np.asarray(accuracy, float), np.asarray(energy, float)
    dominated = [((accuracy >= a) & (energy <= e) & ((accuracy > a) | (energy < e))).any()
                 for a, e in zip(accuracy, energy)]
    return ~np.array(dominated, dtype=bool)


def pareto_table(study):
    """Every model and sweep variant of the study: final test accuracy against estimated
    energy per inference (mean over seeds), and whether it is on the Pareto front."""
    groups = [("study", group) for group in by_model(study.runs).values()]
    groups += [(sweep, group) for (sweep, _), group in by_variant(study.sweep_runs).items()]
    rows = []
    for source, group in groups:
        rows.append({"run": group[0].label, "source": source, "T": group[0].T, "n": len(group),
                     "works": works(group),
                     **spread((r.metrics["test_acc"].iloc[-1] for r in group), "final_test_acc"),
                     **spread(operations(group, study.energy)[2], "energy_uj")})
    table = pd.DataFrame(rows).astype({"T": "Int64"})
    table["on_front"] = pareto_front(table["final_test_acc"], table["energy_uj"])
    return table


def nir_table(study):
    """Per importer and SNN run: what the NIR check compared and found
    (snnflow.deploy.nir_check), as its jobs wrote it; an agreement on the output of a
    network whose output never spiked is marked as no evidence (every output equal to
    zero agrees whatever the export computes)."""
    if study.nir is None:
        return None
    table = study.nir.copy()
    silent = {(r.label, r.seed) for r in study.runs if r.model == "snn" and r.output_silent}
    marks = [(model, int(seed)) in silent for model, seed in zip(table["model"], table["seed"])]
    table["evidence"] = ["NO - the run's output never spiked: equal outputs prove nothing"
                         if mark else "yes" for mark in marks]
    return table


def groups_of_runs(study):
    """The runs of each model (by_model), then of each sweep variant (by_variant)."""
    return [*by_model(study.runs).values(), *by_variant(study.sweep_runs).values()]


def neurobench_table(study):
    """Per model and sweep variant: NeuroBench's metrics (snnflow.scoring), mean and
    standard deviation over seeds (a value all seeds share alone), in NeuroBench's names;
    whether each seed's network works, and whether NeuroBench agreed with the project's
    own counts (the neurobench_agreement table has every comparison)."""
    rows = []
    for group in groups_of_runs(study):
        scored = [r for r in group if r.neurobench is not None]
        if not scored:
            continue
        values = [r.neurobench.set_index("metric")["neurobench"] for r in scored]
        samples = sorted({int(r.neurobench["samples"].iloc[0]) for r in scored})
        differing = [f"seed {r.seed}: {row.metric} {row.neurobench:.6g} against "
                     f"{row.project:.6g}" for r in scored
                     for row in r.neurobench.itertuples() if row.agrees == "NO"]
        compared = int((scored[0].neurobench["agrees"] != "not compared").sum())
        rows.append({"model": group[0].label, "n": len(scored),
                     "samples": samples[0] if len(samples) == 1 else
                     f"{samples[0]}-{samples[-1]}",
                     "works": works(scored, reasons=False),
                     **{key: value for metric in NEUROBENCH_METRICS
                        for key, value in _seeds_spread([v[metric] for v in values],
                                                        metric).items()},
                     "agreement": ("NO - " + "; ".join(differing)) if differing else
                     f"yes ({compared} of {len(NEUROBENCH_METRICS)} metrics compared)"})
    return pd.DataFrame(rows)


def _seeds_spread(values, name):
    """spread(), but a value every seed shares (a network's size, its dense operations)
    as that value alone: its standard deviation is NaN, shown as no "± 0"."""
    if len(set(values)) == 1:
        return {name: float(values[0]), f"{name}_std": np.nan}
    return spread(values, name)


def neurobench_agreement_table(study):
    """Every run's NeuroBench rows as its job wrote them: each metric, NeuroBench's value,
    the project's own count by NeuroBench's definition where it has one, the difference,
    the tolerance, whether they agree and what was compared."""
    runs = [r for group in groups_of_runs(study) for r in group if r.neurobench is not None]
    return pd.concat([r.neurobench for r in runs], ignore_index=True)


def runs_table(study):
    """Each run's device, placement, backend, kernel check, package versions (one cell),
    code, data and the settings that differ from those its kind of run shares in this
    study (the study's config: the full settings are in the run's run.json), the
    sweeps' runs after the study's models'."""
    rows = []
    ordered = [r for group in by_model(study.runs).values() for r in group]
    sweeps = [r for group in by_variant(study.sweep_runs).values() for r in group]
    shared = shared_settings(ordered)
    for r in ordered + sweeps:
        common = shared.get(r.model, {})
        differing = {k: v for k, v in _run_settings(r).items()
                     if common.get(k, object()) != v}
        rows.append({"model": r.label, "seed": r.seed,
                     "device": r.info.get("device_name", ""),
                     "placement": r.info.get("placement", "-"),
                     "backend": r.info.get("backend", "-"),
                     "kernel_check": r.info.get("kernel_check", {}).get("summary", "-"),
                     "versions": ", ".join(f"{k} {v}"
                                           for k, v in r.info.get("versions", {}).items()),
                     "code": r.info.get("code_fingerprint", "")[:12],
                     "data": r.info.get("data_identity", "")[:12],
                     "settings_differing": ", ".join(f"{k}={v}" for k, v in differing.items())
                                           or "-",
                     "settings": json.dumps(r.info.get("settings", {}), sort_keys=True)})
    return pd.DataFrame(rows)


def _run_settings(run):
    """A run's settings but those that name it (model, T, seed: its row says them)."""
    return {k: v for k, v in run.info.get("settings", {}).items()
            if k not in ("model", "T", "seed")}


def shared_settings(runs):
    """{model kind: the settings all its runs share} (_run_settings)."""
    shared = {}
    for r in runs:
        settings = _run_settings(r)
        if r.model not in shared:
            shared[r.model] = settings
        else:
            shared[r.model] = {k: v for k, v in shared[r.model].items()
                               if settings.get(k, object()) == v}
    return shared


def dataset_table(study):
    """The data summary's table (results/data/dataset.csv), as the data_summary job wrote it;
    the page names the per-class columns (class_<label>) by the classes' names."""
    return study.dataset
