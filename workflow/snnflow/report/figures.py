"""The report's figures, drawn from the tables of snnflow.report.tables (and the example
frames of the data summary). Each public function takes the Study (its tables already
computed) and returns a matplotlib figure; each has an entry in snnflow.report.registry.

With several seeds a curve is the mean over seeds with a band from the lowest to the
highest seed, and a bar or point has an error bar of one standard deviation; each
figure says which.
"""

import numpy as np

from snnflow.report.tables import REFERENCE_RESULTS, REFERENCE_SAMPLES, data_scope
from snnflow.runs import model_label

ON, OFF = np.array([0.84, 0.15, 0.16]), np.array([0.12, 0.35, 0.85])  # red and blue


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    # vector figures keep their text as text (TrueType in PDF, text in SVG): searchable,
    # editable, and set in the paper's own fonts by whoever redraws them
    matplotlib.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42,
                                "svg.fonttype": "none"})
    return plt, sns


def literal(name):
    """A name from the data or a sweep file as matplotlib draws it as written: a `$` in it
    starts no formula (mathtext would refuse "$x^$")."""
    return str(name).replace("$", r"\$")


COLUMN_INCHES = 6.3  # a thesis's text column (16 cm): no figure is drawn wider
SMALLEST_POINTS = 7  # and no text in one smaller: readable where the column holds it
ANNOTATED_CLASSES = 12  # confusion matrices of more classes have no numbers in their cells


def percent_axes_within_0_100(fig):
    """Every axis of `fig` labelled in % of accuracy shows no value below 0 or above 100
    (error bars and margins would take it to -20 or 120)."""
    for ax in fig.axes:
        if "accuracy (%)" in ax.get_ylabel():
            low, high = ax.get_ylim()
            ax.set_ylim(max(0.0, low), min(100.0, high))


def _spread_note(n_seeds):
    return (f"mean over {n_seeds} seeds, band: lowest to highest seed" if n_seeds > 1
            else "one seed")


def _integer_epochs(axes):
    from matplotlib.ticker import MaxNLocator

    for ax in np.ravel(axes):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def loss_curves(study):
    return _learning_curves(study.tables["epochs"], "loss", study.order, study.n_seeds)


def acc_curves(study):
    return _learning_curves(study.tables["epochs"], "acc", study.order, study.n_seeds)


def _learning_curves(epochs, metric, order, n_seeds):
    """Train and test `metric` ("loss" or "acc") against the epoch, one line per model."""
    plt, sns = _plt()
    data = epochs.melt(id_vars=["model", "seed", "epoch"],
                       value_vars=[f"train_{metric}", f"test_{metric}"],
                       var_name="split", value_name="value")
    data["split"] = data["split"].str.split("_").str[0]
    if metric == "acc":
        data["value"] *= 100
    grid = sns.relplot(data=data, x="epoch", y="value", hue="model", hue_order=order,
                       col="split", kind="line", marker="o", height=2.8, aspect=1.05,
                       errorbar=("pi", 100) if n_seeds > 1 else None)
    _legend_below(grid, len(order))
    grid.set_titles("{col_name}")
    grid.set_ylabels("accuracy (%)" if metric == "acc" else "loss")
    _integer_epochs(grid.axes)
    if metric == "loss" and (data["value"] > 0).all():
        grid.set(yscale="log")
    title = ("Loss (SNN: MSE of firing rates, CNN: cross-entropy)" if metric == "loss"
             else "Accuracy")
    grid.figure.suptitle(f"{title}\n{_spread_note(n_seeds)}", y=1.08, fontsize=10)
    return grid.figure


def _legend_below(grid, entries):
    """A FacetGrid's legend under its panels, in rows of up to 5, so the figure stays a
    column wide."""
    import seaborn as sns

    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(5, entries),
                    title=None, frameon=False)


def time_per_epoch(study):
    """Training and inference seconds per epoch of each model."""
    epochs, order, n_seeds = study.tables["epochs"], study.order, study.n_seeds
    plt, sns = _plt()
    per_run = epochs.groupby(["model", "seed"])[["train_seconds", "test_seconds"]].mean()
    data = per_run.reset_index().melt(id_vars=["model", "seed"], var_name="phase",
                                      value_name="seconds")
    data["phase"] = data["phase"].map({"train_seconds": "training",
                                       "test_seconds": "inference"})
    timing = study.tables["timing"]
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 3.6))
    sns.barplot(data=data, x="model", y="seconds", hue="phase", order=order, ax=ax,
                errorbar="sd" if n_seeds > 1 else None)
    ran_on = "; ".join(sorted(set(timing["device"])))
    samples = ", ".join(sorted({f"{a} + {b}" for a, b in zip(timing["n_train"],
                                                             timing["n_test"])}))
    ax.set_title("Seconds per epoch (ours)" + ("; error bars: 1 std over seeds"
                                              if n_seeds > 1 else "")
                 + f"\n{samples} samples per epoch on {ran_on}", fontsize=9)
    return fig


def accuracy_vs_T(study):
    """Final test accuracy of each SNN-T (error bars: 1 std over seeds), the CNN and the
    reference study's SNN-16."""
    by_T, n_seeds = study.tables["accuracy_by_T"], study.n_seeds
    comparison = study.tables["comparison"]
    cnn_final = comparison[(comparison["model"] == model_label("cnn"))
                           & (comparison["source"] == "ours")
                           & (comparison["epoch_kind"] == "last")]["test_acc"].iloc[0]
    plt, _ = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    std = by_T["last_test_acc_std"].fillna(0) * 100 if n_seeds > 1 else None
    ax.errorbar(by_T["T"], by_T["last_test_acc"] * 100, yerr=std, fmt="o-", capsize=4,
                label="SNN, final epoch" + (" (mean, 1 std)" if n_seeds > 1 else ""))
    mean = " (mean)" if n_seeds > 1 else ""  # one seed: its own value
    ax.plot(by_T["T"], by_T["chosen_test_acc"] * 100, "s--",
            label=f"SNN, epoch {by_T['chosen_on'].iloc[0]}{mean}")
    if cnn_final is not None:
        ax.axhline(cnn_final * 100, color="grey", ls=":", label=f"CNN, final epoch{mean}")
    kind, _, ours = data_scope(study)
    ticks = sorted(int(T) for T in by_T["T"])
    if kind != "other":  # the reference study ran N-MNIST only
        ax.plot([16], [REFERENCE_RESULTS[("snn", 16)]["test_acc"] * 100], "r*", ms=12,
                clip_on=False,  # whole even on the axis' 100 % edge
                label="reference study, SNN-16" + ("" if kind == "full" else
                                                  f" (not comparable: {kind} data here)"))
        ticks = sorted({*ticks, 16})  # the star's T has its tick, inside the axis
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlim(min(ticks) / 1.3, max(ticks) * 1.3)
    ax.set_xlabel("T (time steps)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    reference = ("" if kind == "other" else f"; reference: N-MNIST ({REFERENCE_SAMPLES[0]} + "
                 f"{REFERENCE_SAMPLES[1]}), 100 epochs")
    ax.set_title(f"Test accuracy against T\nours: {ours}{reference}", fontsize=9)
    return fig


def pareto(study):
    """Final test accuracy against estimated energy per inference of every model and sweep
    variant (mean over seeds, error bars 1 std), the Pareto front joined."""
    table = study.tables["pareto"]
    plt, _ = _plt()
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 4.2))
    several = table["n"].max() > 1
    for source, rows in table.groupby("source", sort=False):
        ax.errorbar(rows["energy_uj"], rows["final_test_acc"] * 100,
                    xerr=rows["energy_uj_std"].fillna(0) if several else None,
                    yerr=rows["final_test_acc_std"].fillna(0) * 100 if several else None,
                    fmt="o", capsize=3, label="the study's models" if source == "study"
                    else f"sweep {source}")
    front = table[table["on_front"]].sort_values("energy_uj")
    ax.plot(front["energy_uj"], front["final_test_acc"] * 100, "k--", lw=1, zorder=0,
            label="Pareto front")
    ax.scatter(front["energy_uj"], front["final_test_acc"] * 100, s=140, facecolors="none",
               edgecolors="black", zorder=3)
    for row in table.itertuples():
        ax.annotate(row.run.split(": ")[-1], (row.energy_uj, row.final_test_acc * 100),
                    fontsize=SMALLEST_POINTS, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("estimated energy per inference (µJ, log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("Accuracy against estimated energy" + (" (mean, 1 std over seeds)"
                                                         if several else ""), fontsize=10)
    return fig


def sweep_accuracy(study):
    """Per sweep (a row of panels) and swept setting (a panel): final test accuracy against
    the setting's value, one line per combination of the other swept settings (error bars:
    1 std over seeds)."""
    table = study.tables["sweeps"]
    sweeps = list(dict.fromkeys(table["sweep"]))
    columns = {sweep: study.sweep_columns(sweep) for sweep in sweeps}
    width = max(len(c) for c in columns.values())
    plt, _ = _plt()
    fig, axes = plt.subplots(len(sweeps), width,
                             figsize=(min(COLUMN_INCHES, 3.2 * width), 3.2 * len(sweeps)),
                             squeeze=False)
    for i, sweep in enumerate(sweeps):
        rows = table[table["sweep"] == sweep]
        for j, column in enumerate(columns[sweep]):
            ax = axes[i, j]
            others = [c for c in columns[sweep] if c != column]
            lines = rows.groupby(others, sort=False) if others else [((), rows)]
            for key, line in lines:
                key = key if isinstance(key, tuple) else (key,)
                line = line.sort_values(column)
                label = literal(", ".join(f"{c}={v}" for c, v in zip(others, key))) or None
                ax.errorbar(line[column], line["final_test_acc"] * 100,
                            yerr=line["final_test_acc_std"].fillna(0) * 100, fmt="o-",
                            capsize=3, label=label)
            ax.set_xlabel(literal(column))
            ax.set_ylabel("final test accuracy (%)")
            ax.set_title(f"{sweep} (T={int(rows['T'].iloc[0])})", fontsize=10)
            if others:
                ax.legend(fontsize=SMALLEST_POINTS)
        for j in range(len(columns[sweep]), width):
            axes[i, j].set_visible(False)
    n_seeds = int(table["n"].max())
    spread = f"mean over {n_seeds} seeds, error bars: 1 std" if n_seeds > 1 else "one seed"
    fig.suptitle(f"Sweeps: final test accuracy against each swept setting\n{spread}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def firing_rate_by_epoch(study):
    """Firing rate of every spiking layer against the epoch, one panel per T."""
    layer_epochs, n_seeds = study.tables["layers_by_epoch"], study.n_seeds
    plt, sns = _plt()
    data = layer_epochs[layer_epochs["T"].notna()].astype({"T": int})
    grid = sns.relplot(data=data, x="epoch", y="firing_rate", hue="layer", col="T",
                       col_wrap=min(2, data["T"].nunique()), kind="line", marker="o",
                       height=2.4, aspect=1.2, errorbar=("pi", 100) if n_seeds > 1 else None)
    _legend_below(grid, data["layer"].nunique())
    grid.set_titles("SNN-{col_name}")
    grid.set_ylabels("")  # one label for the rows of panels
    grid.figure.supylabel("spikes per neuron per step", fontsize=10)
    _integer_epochs(grid.axes)
    grid.figure.suptitle(f"Firing rate on the test set\n{_spread_note(n_seeds)}", y=1.06,
                         fontsize=10)
    return grid.figure


def firing_rate_vs_T(study):
    """Final-epoch firing rate of every spiking layer against T (error bars: 1 std)."""
    layers = study.tables["layers"]
    plt, _ = _plt()
    data = layers[layers["T"].notna()].astype({"T": int})
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for layer, rows in data.groupby("layer", sort=False):
        rows = rows.sort_values("T")
        ax.errorbar(rows["T"], rows["firing_rate"], yerr=rows["firing_rate_std"].fillna(0),
                    fmt="o-", capsize=3, label=layer)
    ax.set_xscale("log", base=2)
    Ts = sorted(data["T"].unique())
    ax.set_xticks(Ts, [str(t) for t in Ts])
    ax.set_xlabel("T (time steps)")
    ax.set_ylabel("spikes per neuron per step")
    ax.legend(fontsize=8, title="layer")
    ax.set_title("Firing rate at the final epoch (error bars: 1 std over seeds)"
                 if layers["n"].max() > 1 else "Firing rate at the final epoch")
    return fig


def energy(study):
    """Estimated energy per inference: spike accumulates and multiply-accumulates."""
    energy_table = study.tables["energy"]
    plt, _ = _plt()
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 3.6))
    x = np.arange(len(energy_table))
    ax.bar(x, energy_table["macs_energy_uj"], label="multiply-accumulates x E_MAC",
           color="#8c8c8c")
    ax.bar(x, energy_table["sops_energy_uj"], bottom=energy_table["macs_energy_uj"],
           label="synaptic operations x E_AC", color="#4c72b0")
    for i, total in enumerate(energy_table["energy_uj"]):
        ax.annotate(f"{total:.3g}", (i, total), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, energy_table["model"])
    ax.set_ylabel("µJ per inference")
    ax.set_title("Estimated energy per inference (mean over seeds; an estimate, not a "
                 "measurement)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def confusion_main(study):
    """The main SNN's and the CNN's confusion matrices."""
    return _confusion_matrices(study.tables["confusion"], [study.main_label, model_label("cnn")],
                               study.classes)


def confusion_other(study):
    """The other SNNs' confusion matrices."""
    return _confusion_matrices(study.tables["confusion"], [
        m for m in study.order if m not in (study.main_label, model_label("cnn"))], study.classes)


def _confusion_matrices(confusion, models, classes):
    """Row-normalised confusion matrices (% of each true class), side by side, classes in
    label order (numbers in the cells up to ANNOTATED_CLASSES classes)."""
    plt, sns = _plt()
    short = all(len(name) <= 3 for name in classes)  # digits: two matrices fill a column
    columns = min(2 if short else 1, len(models))  # more go in rows of two, or one by one
    rows_of = -(-len(models) // columns)
    height = 3.3 if short else min(9.0, max(4.5, 0.3 * len(classes) + 2.5))
    fig, axes = plt.subplots(rows_of, columns, figsize=(COLUMN_INCHES, height * rows_of),
                             squeeze=False)
    for ax, model in zip(axes.ravel(), models):
        rows = confusion[confusion["model"] == model]
        matrix = rows.pivot(index="true", columns="predicted", values="fraction").reindex(
            index=classes, columns=classes) * 100
        matrix.index = matrix.columns = [literal(name) for name in classes]
        sns.heatmap(matrix, ax=ax, vmin=0, vmax=100, cmap="Blues",
                    annot=len(classes) <= ANNOTATED_CLASSES, fmt=".0f",
                    annot_kws={"fontsize": SMALLEST_POINTS}, cbar=False, square=True)
        ax.set_title(f"{model} (% of the true class)", fontsize=9)
    for ax in axes.ravel()[len(models):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def per_class_accuracy(study):
    """Test accuracy per class of each model (error bars: 1 std over seeds)."""
    table, order, n_seeds = study.tables["per_class_accuracy"], study.order, study.n_seeds
    plt, sns = _plt()
    data = table.assign(accuracy=table["accuracy"] * 100,
                        **{"class": table["class"].map(literal)})
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 3.4))
    sns.barplot(data=data, x="class", y="accuracy", hue="model", hue_order=order, ax=ax,
                order=[literal(name) for name in study.classes], errorbar=None)
    rotated = len(study.classes) > ANNOTATED_CLASSES or any(len(c) > 3 for c in study.classes)
    if rotated:  # names: upright they would overlap
        ax.tick_params(axis="x", labelrotation=90, labelsize=SMALLEST_POINTS)
    if n_seeds > 1:
        for container, model in zip(ax.containers, order):
            rows = data[data["model"] == model]  # in class order
            centers = [bar.get_x() + bar.get_width() / 2 for bar in container]
            ax.errorbar(centers, rows["accuracy"], yerr=rows["accuracy_std"].fillna(0) * 100,
                        fmt="none", ecolor="black", capsize=2, lw=0.8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy per class, final epoch" + (" (mean, 1 std over seeds)"
                                                           if n_seeds > 1 else ""), fontsize=10)
    ax.legend(fontsize=8, ncol=min(5, len(order)), loc="upper center",
              bbox_to_anchor=(0.5, -0.5 if rotated else -0.2), frameon=False)
    return fig


def _colour(frame, scale):
    """A (2, H, W) frame of event counts as an image: ON red, OFF blue, on white."""
    on, off = (np.minimum(frame[p] / scale, 1.0)[..., None] for p in (1, 0))
    return np.clip(1.0 - on * (1 - ON) - off * (1 - OFF), 0.0, 1.0)


FRAMES_PER_ROW = 8  # a T's frames in rows of this many: every T fits one column


def _short(name, width=14):
    """A class name short enough for a row label, drawn as written."""
    return literal(name if len(name) <= width else name[:width - 1] + "…")


def _tiled(frames, scale):
    """A sample's frames (T, 2, H, W) as one image, in time order, FRAMES_PER_ROW to a
    row, a light line between frames."""
    T, _, H, W = frames.shape
    columns = min(T, FRAMES_PER_ROW)
    rows = -(-T // columns)
    image = np.ones((rows * (H + 1) - 1, columns * (W + 1) - 1, 3)) * 0.75
    for k, frame in enumerate(frames):
        r, c = divmod(k, columns)
        image[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W] = _colour(frame, scale)
    return image


def examples(study):
    """For one test sample of each class (the first MAX_EXAMPLE_CLASSES): the MNIST digit
    where the CNN has that twin, then the sample's frames at every T (ON events red, OFF
    blue; in time order, FRAMES_PER_ROW to a row)."""
    data = study.examples
    plt, _ = _plt()
    Ts = sorted(int(k.split("T")[1]) for k in data if k.startswith("frames_T"))
    twin = study.has_twin
    shown = len(data["names"])
    short_names = all(len(name) <= 3 for name in study.classes)  # digits: upright
    widths = [1.0] * twin + [float(min(T, FRAMES_PER_ROW)) for T in Ts]
    tallest = max(-(-T // FRAMES_PER_ROW) for T in Ts)
    frame_inches = (COLUMN_INCHES - 0.6) / (sum(widths) + 0.3 * len(widths))
    fig, axes = plt.subplots(shown, twin + len(Ts),
                             figsize=(COLUMN_INCHES,
                                      shown * (tallest * frame_inches + 0.12) + 0.8),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for c in range(shown):
        if twin:
            axes[c, 0].imshow(data["digits"][c], cmap="gray_r")
        axes[c, 0].set_ylabel(_short(study.classes[c]), rotation=0 if short_names else 90,
                              labelpad=10 if short_names else 4, fontsize=9)
        for ax, T in zip(axes[c, twin:], Ts):
            frames = data[f"frames_T{T}"][c].astype(float)
            scale = max(1.0, np.percentile(frames[frames > 0], 99) if (frames > 0).any() else 1)
            ax.imshow(_tiled(frames, scale))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    if twin:
        axes[0, 0].set_title("MNIST", fontsize=9)
    for ax, T in zip(axes[0, twin:], Ts):
        ax.set_title(f"T = {T}", fontsize=9)
    which = ("one test sample per class" if shown == len(study.classes) else
             f"one test sample of each of the first {shown} of {len(study.classes)} classes")
    what = ("the MNIST digit and the N-MNIST frames" if twin else
            f"the {study.dataset_name} frames")
    fig.suptitle(f"What the networks see: {which},\n{what} at every T\n(ON events red, OFF "
                 f"blue; in time order, {FRAMES_PER_ROW} to a row)", fontsize=10)
    fig.tight_layout()
    return fig
