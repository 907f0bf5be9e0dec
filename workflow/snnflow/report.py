"""The study report: tables (CSV), figures (PNG) and one self-contained HTML page.

Reads only what the earlier jobs wrote: per run (model and seed) metrics.csv,
layers.csv, predictions.csv and run.json; the data summary's dataset.csv and
examples.npz. Nothing is typed in by hand but the reference study's published numbers
(snnflow.report_tables).

The names below are also the rule's declared outputs (wrapped in Snakemake's
`report()`, with a caption each in workflow/report/tables/ and figures/), by stage.
"""

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from . import LAYER_COLUMNS, METRICS_COLUMNS, PREDICTION_COLUMNS, SnnflowError
from .atomic import atomic_path

TABLES = {
    "dataset": "Data", "epochs": "Training", "timing": "Training",
    "comparison": "Comparison", "accuracy_by_T": "Comparison", "significance": "Comparison",
    "layers": "Spikes and energy", "layers_by_epoch": "Spikes and energy",
    "energy": "Spikes and energy", "per_class_accuracy": "Errors", "confusion": "Errors",
    "runs": "Runs",
}
FIGURES = {
    "examples": "Data", "loss_curves": "Training", "acc_curves": "Training",
    "time_per_epoch": "Training", "accuracy_vs_T": "Comparison",
    "firing_rate_by_epoch": "Spikes and energy", "firing_rate_vs_T": "Spikes and energy",
    "energy": "Spikes and energy", "confusion_main": "Errors",
    "confusion_other": "Errors", "per_class_accuracy": "Errors",
}


def figure_names(t_values, main_T):
    """The figures a study with these T draws (no second confusion figure without an
    SNN besides the main one)."""
    return [name for name in FIGURES
            if name != "confusion_other" or any(T != main_T for T in t_values)]


def load_runs(run_dirs):
    """[Run] from {model: {seed: folder}}, every file checked."""
    import pandas as pd

    from .report_tables import Run

    runs = []
    for model, seeds in run_dirs.items():
        for seed, folder in seeds.items():
            folder = Path(folder)
            try:
                tables = {name: pd.read_csv(folder / f"{name}.csv")
                          for name in ("metrics", "layers", "predictions")}
                info = json.loads((folder / "run.json").read_text())
            except (OSError, ValueError) as err:
                raise SnnflowError(f"{folder}: cannot read the run ({err}) - rerun its "
                                   "training job") from None
            for name, columns in (("metrics", METRICS_COLUMNS), ("layers", LAYER_COLUMNS),
                                  ("predictions", PREDICTION_COLUMNS)):
                missing = [c for c in columns if c not in tables[name].columns]
                if missing or tables[name].empty:
                    what = "no rows" if not missing else "missing columns " + ", ".join(missing)
                    raise SnnflowError(f"{folder / (name + '.csv')}: {what} - rerun its "
                                       "training job")
            runs.append(Run(model, int(seed), tables["metrics"], tables["layers"],
                            tables["predictions"], info))
    return runs


def build_tables(runs, main_T, dataset, energy):
    """{name: DataFrame} of every table in TABLES."""
    from . import report_tables as t

    return {"dataset": dataset, "epochs": t.epochs_table(runs),
            "timing": t.timing_table(runs), "comparison": t.comparison_table(runs, main_T),
            "accuracy_by_T": t.accuracy_by_T_table(runs),
            "significance": t.significance_table(runs, main_T),
            "layers": t.layers_table(runs), "layers_by_epoch": t.layers_by_epoch_table(runs),
            "energy": t.energy_table(runs, energy["e_ac_pj"], energy["e_mac_pj"]),
            "per_class_accuracy": t.per_class_accuracy_table(runs),
            "confusion": t.confusion_table(runs), "runs": t.runs_table(runs)}


def draw_figures(tables, examples, main_T, names):
    """{name: matplotlib figure} of the figures in `names`."""
    from . import report_figures as f

    order = list(tables["timing"]["model"])
    n_seeds = int(tables["timing"]["n"].max())
    main, cnn = f"SNN-{main_T}", "CNN"
    cnn_rows = tables["comparison"].query("model == 'CNN' and source == 'ours' and "
                                          "epoch_kind == 'last'")
    drawers = {
        "examples": lambda: f.examples(examples),
        "loss_curves": lambda: f.learning_curves(tables["epochs"], "loss", order, n_seeds),
        "acc_curves": lambda: f.learning_curves(tables["epochs"], "acc", order, n_seeds),
        "time_per_epoch": lambda: f.time_per_epoch(tables["epochs"], order, n_seeds),
        "accuracy_vs_T": lambda: f.accuracy_vs_T(tables["accuracy_by_T"],
                                                 cnn_rows["test_acc"].iloc[0], n_seeds),
        "firing_rate_by_epoch": lambda: f.firing_rate_by_epoch(tables["layers_by_epoch"],
                                                               n_seeds),
        "firing_rate_vs_T": lambda: f.firing_rate_vs_T(tables["layers"]),
        "energy": lambda: f.energy(tables["energy"]),
        "confusion_main": lambda: f.confusion_matrices(tables["confusion"], [main, cnn]),
        "confusion_other": lambda: f.confusion_matrices(
            tables["confusion"], [m for m in order if m not in (main, cnn)]),
        "per_class_accuracy": lambda: f.per_class_accuracy(tables["per_class_accuracy"],
                                                           order, n_seeds),
    }
    return {name: drawers[name]() for name in names}


def build_report(run_dirs, main_T, data_dir, energy, html_path, tables_dir, figures_dir):
    """Write every table to `tables_dir`/<name>.csv, every figure to
    `figures_dir`/<name>.png and the page to `html_path`."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from .report_tables import t_of

    runs = load_runs(run_dirs)
    models = {r.model for r in runs}
    if f"snn_T{main_T}" not in models or "cnn" not in models:
        raise SnnflowError(f"config key snn.main_T: no run for T={main_T} and the CNN - "
                           "add it to snn.T")
    data_dir = Path(data_dir)
    dataset = pd.read_csv(data_dir / "dataset.csv")
    with np.load(data_dir / "examples.npz", allow_pickle=False) as npz:
        examples = dict(npz)
    tables = build_tables(runs, main_T, dataset, energy)
    t_values = sorted(t_of(m) for m in models if m != "cnn")
    figures = draw_figures(tables, examples, main_T, figure_names(t_values, main_T))
    for name, df in tables.items():
        with atomic_path(Path(tables_dir) / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
    pngs = {}  # name -> PNG bytes, written to figures_dir and embedded in the page
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=100, bbox_inches="tight", format="png")
        plt.close(fig)
        pngs[name] = buffer.getvalue()
        with atomic_path(Path(figures_dir) / f"{name}.png") as tmp:
            tmp.write_bytes(pngs[name])
    page = render_page(tables, pngs, main_T, energy)
    with atomic_path(html_path) as tmp:
        Path(tmp).write_text(page)


# ---- the page --------------------------------------------------------------------------


def _missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value))


def _percent(mean, std):
    if _missing(mean):
        return "-"
    return f"{100 * mean:.2f} %" if _missing(std) else f"{100 * mean:.2f} ± {100 * std:.2f} %"


def _number(mean, std, digits):
    if _missing(mean):
        return "-"
    text = f"{mean:.{digits}f}" if abs(mean) < 1e6 else f"{mean:.4g}"
    return text if _missing(std) else f"{text} ± {std:.{digits}f}"


def _display(df, percent=(), digits=None, drop=()):
    """A table for the page: `<c>` and `<c>_std` merged into one "mean ± std" column,
    accuracies as percentages with two decimals, other numbers rounded."""
    import pandas as pd

    digits = digits or {}
    out = {}
    for column in df.columns:
        if column.endswith("_std") or column in drop:
            continue
        values = df[column]
        stds = df[f"{column}_std"] if f"{column}_std" in df.columns else [np.nan] * len(df)
        if column in percent:
            out[column] = [_percent(m, s) for m, s in zip(values, stds)]
        elif pd.api.types.is_float_dtype(values):
            out[column] = [_number(m, s, digits.get(column, 4)) for m, s in zip(values, stds)]
        else:
            out[column] = values
    return pd.DataFrame(out)


def _html_table(df):
    table = df.to_html(index=False, na_rep="-", border=0, classes="table", escape=True)
    return f'<div class="scroll">{table}</div>'


def _dataset_html(dataset):
    """The data table with short class columns, and each dataset's source below it."""
    shown = _display(dataset.drop(columns="source"), digits={
        "events_mean": 1, "events_min": 0, "events_max": 0})
    shown = shown.rename(columns={f"class_{c}": str(c) for c in range(10)})
    sources = dataset.drop_duplicates("dataset").set_index("dataset")["source"]
    items = "".join(f"<li>{html.escape(name)}: {html.escape(str(source))}</li>"
                    for name, source in sources.items())
    return (f'{_html_table(shown)}<p class="note">Samples per class in the columns 0-9. '
            f'Where the data came from:</p><ul class="note">{items}</ul>')


def _img(png, alt):
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>snnflow report</title>
<style>
body {{ font-family: sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }}
table.table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
table.table th, table.table td {{ padding: 4px 8px; border-bottom: 1px solid #ccc; text-align: right; }}
img {{ max-width: 100%; margin: 1em 0; }}
.note {{ color: #555; font-size: 0.9em; }}
details {{ margin: 1em 0; }}
div.scroll {{ overflow-x: auto; }}
</style></head><body>
<h1>CSNN on N-MNIST vs CNN on MNIST</h1>
<p class="note">Runs: {runs}, {seeds}. Main SNN: T={main_T}. Accuracies in %; with several
seeds a value is the mean ± the standard deviation over seeds (n = seeds), curves show the
mean with a band from the lowest to the highest seed. Every number here is in a CSV under
results/tables/ (named below each table). The reference study is the course report
"Exploring Convolutional Spiking Neural Networks for Image Classification" (100 epochs;
seconds measured on {ref_device}).</p>

<h2>Data</h2>
<p class="note">The data the runs used (tables/dataset.csv): samples per class, events per
N-MNIST sample, and where the data came from.</p>
{dataset}
{examples_fig}

<h2>Learning curves</h2>
<p class="note">tables/epochs.csv</p>
{loss_fig}
{acc_fig}

<h2>CNN vs SNN-{main_T}</h2>
<p class="note">Last epoch and best epoch (highest test accuracy, per seed) of our runs; the
reference study's last epoch (tables/comparison.csv).</p>
{comparison}

<h2>Time per epoch</h2>
<p class="note">Mean seconds per epoch of each run (wall time; CUDA synchronised before
reading the clock), then mean ± std over seeds; the devices are listed with the runs
below. Reference: {ref_device} (tables/timing.csv).</p>
{timing}
{time_fig}

<h2>Test accuracy against T</h2>
<p class="note">tables/accuracy_by_T.csv</p>
{by_T}
{acc_T_fig}
<p class="note">Is SNN-{main_T} better than the other T? A paired t-test (two-sided) of the
final test accuracy over the seeds both runs share (tables/significance.csv); with fewer
than 3 seeds no test is possible.</p>
{significance}

<h2>Spikes and energy</h2>
<p class="note">Recorded on the test set after every epoch. Firing rate: spikes per neuron
per time step of each spiking layer (conv layers: the LIF neurons after the convolution,
those whose spikes reach the next layer; fc2: the output neurons). Synaptic operations
(SOPs) per sample: each spike arriving at a layer times the fan-out of its synapses into
it, from the recorded spikes. The first convolution is fed event counts, not spikes: its
multiply-accumulates (MACs) per sample are counted the same way from the recorded input,
each nonzero count times its fan-out over the T steps. The CNN's MACs follow from its
shapes (tables/layers.csv, tables/layers_by_epoch.csv).</p>
{firing_epoch_fig}
{firing_T_fig}
{layers}
<p class="note">Energy per inference (one test sample), SNN-T: SOPs x E_AC + first-layer
MACs x E_MAC; CNN: MACs x E_MAC; with E_AC = {e_ac} pJ and E_MAC = {e_mac} pJ (32-bit
float, 45 nm; Horowitz, ISSCC 2014; config key energy). This is the common estimate used
in the SNN literature, not a measurement: it leaves out memory traffic, and neither
network ran on hardware that would spend these energies (tables/energy.csv).</p>
{energy}
{energy_fig}

<h2>Errors per class</h2>
<p class="note">Confusion matrices of the final test predictions, summed over seeds
(tables/confusion.csv), and test accuracy per class (tables/per_class_accuracy.csv).</p>
{confusion_main_fig}
{per_class_fig}
{confusion_other}

<h2>Runs: configuration, package versions, device</h2>
<p class="note">tables/runs.csv</p>
{run_table}
</body></html>
"""


def render_page(tables, pngs, main_T, energy):
    from .report_tables import REFERENCE_DEVICE

    comparison = tables["comparison"]
    n_seeds = int(tables["timing"]["n"].max())
    acc = ("train_acc", "test_acc")
    other = pngs.get("confusion_other")
    confusion_other = (f"<details><summary>Confusion matrices of the other SNNs</summary>"
                       f"{_img(other, 'confusion matrices of the other SNNs')}</details>"
                       if other else "")
    layers = tables["layers"][tables["layers"]["model"] != "CNN"]
    return PAGE.format(
        runs=", ".join(tables["timing"]["model"]),
        seeds=f"{n_seeds} seed{'s' if n_seeds > 1 else ''} each", main_T=main_T,
        ref_device=REFERENCE_DEVICE, e_ac=energy["e_ac_pj"], e_mac=energy["e_mac_pj"],
        dataset=_dataset_html(tables["dataset"]),
        examples_fig=_img(pngs["examples"], "one test sample per class at every T"),
        loss_fig=_img(pngs["loss_curves"], "loss curves"),
        acc_fig=_img(pngs["acc_curves"], "accuracy curves"),
        comparison=_html_table(_display(comparison, percent=acc)),
        timing=_html_table(_display(tables["timing"], digits=dict.fromkeys(
            tables["timing"].columns, 2), drop=("device", "n_train"))),
        time_fig=_img(pngs["time_per_epoch"], "seconds per epoch"),
        by_T=_html_table(_display(tables["accuracy_by_T"], percent=(
            "last_test_acc", "best_test_acc", "last_test_acc_min", "last_test_acc_max"))),
        acc_T_fig=_img(pngs["accuracy_vs_T"], "test accuracy against T"),
        significance=_html_table(_display(tables["significance"], percent=("mean_difference",),
                                          digits={"t": 3, "p_value": 4})),
        firing_epoch_fig=_img(pngs["firing_rate_by_epoch"], "firing rate against the epoch"),
        firing_T_fig=_img(pngs["firing_rate_vs_T"], "firing rate against T"),
        layers=_html_table(_display(layers, digits={"firing_rate": 4, "synaptic_ops": 0,
                                                    "macs": 0})),
        energy=_html_table(_display(tables["energy"], digits={
            "synaptic_ops": 0, "macs": 0, "e_ac_pj": 1, "e_mac_pj": 1, "sops_energy_uj": 3,
            "macs_energy_uj": 3, "energy_uj": 3})),
        energy_fig=_img(pngs["energy"], "estimated energy per inference"),
        confusion_main_fig=_img(pngs["confusion_main"],
                                f"confusion matrices of SNN-{main_T} and the CNN"),
        per_class_fig=_img(pngs["per_class_accuracy"], "test accuracy per class"),
        confusion_other=confusion_other,
        run_table=_html_table(tables["runs"]))
