"""The study report: tables (CSV), figures (PNG) and one self-contained HTML page.

Reads only what the training jobs wrote: `metrics.csv` and `run.json` per run.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np

from . import METRICS_COLUMNS, SnnflowError
from .atomic import atomic_path

# The reference study's numbers (docs/method.md), shown beside ours.
REFERENCE_DEVICE = "one NVIDIA RTX 3090"
REFERENCE_RESULTS = {  # last epoch of 100
    "cnn": dict(train_loss=0.0000, test_loss=0.0329, train_acc=1.0000, test_acc=0.9934),
    "snn_T16": dict(train_loss=0.0006, test_loss=0.0011, train_acc=0.9986, test_acc=0.9960),
}
REFERENCE_SECONDS = {  # per epoch: (training, inference)
    "cnn": (1.98, 1.13), "snn_T4": (23.76, 5.64), "snn_T8": (25.12, 5.30),
    "snn_T16": (23.24, 4.00), "snn_T32": (61.19, 6.23),
}


def label(model):
    return "CNN" if model == "cnn" else f"SNN-{model.split('_T')[1]}"


def _t_of(model):
    return int(model.split("_T")[1])


def load_runs(run_dirs):
    """{model: (metrics DataFrame, run info dict)}, checked."""
    import pandas as pd

    runs = {}
    for model, folder in run_dirs.items():
        metrics_path, info_path = Path(folder) / "metrics.csv", Path(folder) / "run.json"
        try:
            metrics = pd.read_csv(metrics_path)
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as err:
            raise SnnflowError(f"{folder}: cannot read the run ({err}) - rerun its training "
                               "job") from None
        missing = [c for c in METRICS_COLUMNS if c not in metrics.columns]
        if missing or metrics.empty:
            raise SnnflowError(f"{metrics_path}: {'no epochs' if not missing else 'missing columns ' + ', '.join(missing)}"
                               " - rerun its training job")
        runs[model] = (metrics, info)
    return runs


def comparison_table(runs, main_T):
    """CNN vs the main SNN: losses and accuracies at the last and the best epoch
    (best = highest test accuracy), and the reference study's last epoch."""
    import pandas as pd

    rows = []
    for model in ("cnn", f"snn_T{main_T}"):
        metrics, _ = runs[model]
        last = metrics.iloc[-1]
        best = metrics.loc[metrics["test_acc"].idxmax()]
        for which, row in (("last", last), ("best", best)):
            rows.append({"model": label(model), "source": "ours", "epoch_kind": which,
                         "epoch": int(row["epoch"]),
                         **{k: float(row[k]) for k in ("train_loss", "test_loss",
                                                       "train_acc", "test_acc")}})
    for model, values in REFERENCE_RESULTS.items():
        rows.append({"model": label(model), "source": "reference study", "epoch_kind": "last",
                     "epoch": 100, **values})
    return pd.DataFrame(rows)


def timing_table(runs):
    """Mean training, inference and total seconds per epoch of each run, with the
    reference study's figures beside them."""
    import pandas as pd

    rows = []
    for model, (metrics, info) in runs.items():
        train_s, test_s = metrics["train_seconds"].mean(), metrics["test_seconds"].mean()
        ref = REFERENCE_SECONDS.get(model, (np.nan, np.nan))
        rows.append({"model": label(model), "device": info.get("device_name", ""),
                     "epochs": len(metrics), "n_train": info.get("n_train"),
                     "train_seconds": train_s, "inference_seconds": test_s,
                     "total_seconds": train_s + test_s,
                     "reference_train_seconds": ref[0], "reference_inference_seconds": ref[1],
                     "reference_total_seconds": ref[0] + ref[1]})
    return pd.DataFrame(rows)


def accuracy_by_T(runs):
    import pandas as pd

    rows = []
    for model, (metrics, _) in runs.items():
        if model == "cnn":
            continue
        rows.append({"T": _t_of(model), "last_test_acc": float(metrics["test_acc"].iloc[-1]),
                     "best_test_acc": float(metrics["test_acc"].max())})
    return pd.DataFrame(rows).sort_values("T")


def run_table(runs):
    import pandas as pd

    rows = []
    for model, (_, info) in runs.items():
        settings = {k: v for k, v in info.get("settings", {}).items() if k not in ("model",)}
        rows.append({"model": label(model), "device": info.get("device_name", ""),
                     "placement": info.get("placement", "-"),
                     "backend": info.get("backend", "-"),
                     **{f"{k}": v for k, v in info.get("versions", {}).items()},
                     "code": info.get("code_fingerprint", ""),
                     "settings": json.dumps(settings, sort_keys=True)})
    return pd.DataFrame(rows)


def _long_metrics(runs, metric):
    import pandas as pd

    frames = []
    for model, (metrics, _) in runs.items():
        for split in ("train", "test"):
            frames.append(pd.DataFrame({"epoch": metrics["epoch"], "value": metrics[f"{split}_{metric}"],
                                        "model": label(model), "split": split}))
    return pd.concat(frames, ignore_index=True)


def make_figures(runs, tables, folder):
    """Write the figures as PNG files; returns {name: path}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    sns.set_theme(style="whitegrid", context="notebook")
    order = [label(m) for m in runs]
    paths = {}

    def save(fig, name):
        path = Path(folder) / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths[name] = path

    for metric, title in (("loss", "Loss (SNN: MSE of firing rates, CNN: cross-entropy)"),
                          ("acc", "Accuracy")):
        data = _long_metrics(runs, metric)
        grid = sns.relplot(data=data, x="epoch", y="value", hue="model", hue_order=order,
                           col="split", kind="line", marker="o", height=3.6, aspect=1.3)
        grid.set_titles("{col_name}")
        grid.set_ylabels(metric)
        for ax in grid.axes.flat:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric == "loss" and (data["value"] > 0).all():
            grid.set(yscale="log")
        grid.figure.suptitle(title, y=1.03)
        save(grid.figure, f"{metric}_curves")

    timing = tables["timing"].melt(id_vars="model", value_vars=["train_seconds", "inference_seconds"],
                                   var_name="phase", value_name="seconds")
    timing["phase"] = timing["phase"].str.replace("_seconds", "")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=timing, x="model", y="seconds", hue="phase", ax=ax)
    ax.set_title("Seconds per epoch (ours)")
    save(fig, "time_per_epoch")

    by_T = tables["accuracy_by_T"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(by_T["T"], by_T["last_test_acc"], "o-", label="SNN, last epoch")
    ax.plot(by_T["T"], by_T["best_test_acc"], "s--", label="SNN, best epoch")
    if "cnn" in runs:
        ax.axhline(runs["cnn"][0]["test_acc"].iloc[-1], color="grey", ls=":", label="CNN, last epoch")
    ax.plot([16], [REFERENCE_RESULTS["snn_T16"]["test_acc"]], "r*", ms=12,
            label="reference study, SNN-16")
    ax.set_xscale("log", base=2)
    ax.set_xticks(by_T["T"], [str(t) for t in by_T["T"]])
    ax.set_xlabel("T (time steps)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.set_title("Test accuracy against T")
    save(fig, "accuracy_vs_T")
    return paths


def _html_table(df):
    return df.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-", border=0,
                      classes="table")


def _img(path, alt):
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>snnflow report</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table.table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
table.table th, table.table td {{ padding: 4px 8px; border-bottom: 1px solid #ccc; text-align: right; }}
img {{ max-width: 100%; margin: 1em 0; }}
.note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>CSNN on N-MNIST vs CNN on MNIST</h1>
<p class="note">Runs: {runs}. Main SNN: T={main_T}. Reference study figures are labelled
"reference study" (100 epochs, seconds measured on {ref_device}).</p>
<h2>Learning curves</h2>
{loss_fig}
{acc_fig}
<h2>CNN vs SNN-{main_T}</h2>
<p class="note">Last epoch and best epoch (highest test accuracy) of our runs; the reference
study's last epoch.</p>
{comparison}
<h2>Time per epoch</h2>
<p class="note">Mean seconds per epoch over all epochs of each run (wall time; CUDA
synchronised before reading the clock); the devices are listed with the runs below.
Reference: {ref_device}.</p>
{timing}
{time_fig}
<h2>Test accuracy against T</h2>
{by_T}
{acc_T_fig}
<h2>Runs: configuration, package versions, device</h2>
{run_table}
</body></html>
"""


def build_report(run_dirs, main_T, html_path, tables_dir, figures_dir):
    runs = load_runs(run_dirs)
    if f"snn_T{main_T}" not in runs or "cnn" not in runs:
        raise SnnflowError(f"config key snn.main_T: no run for T={main_T} and the CNN - "
                           "add it to snn.T")
    tables = {"comparison": comparison_table(runs, main_T), "timing": timing_table(runs),
              "accuracy_by_T": accuracy_by_T(runs), "runs": run_table(runs)}
    with atomic_path(tables_dir) as tmp_tables, atomic_path(figures_dir) as tmp_figures:
        tmp_tables.mkdir()
        tmp_figures.mkdir()
        for name, df in tables.items():
            df.to_csv(tmp_tables / f"{name}.csv", index=False)
        figures = make_figures(runs, tables, tmp_figures)
        page = PAGE.format(
            runs=", ".join(label(m) for m in runs), main_T=main_T, ref_device=REFERENCE_DEVICE,
            loss_fig=_img(figures["loss_curves"], "loss curves"),
            acc_fig=_img(figures["acc_curves"], "accuracy curves"),
            comparison=_html_table(tables["comparison"]),
            timing=_html_table(tables["timing"].drop(columns=["device", "epochs", "n_train"])),
            time_fig=_img(figures["time_per_epoch"], "seconds per epoch"),
            by_T=_html_table(tables["accuracy_by_T"]),
            acc_T_fig=_img(figures["accuracy_vs_T"], "test accuracy against T"),
            run_table=_html_table(tables["runs"]))
        with atomic_path(html_path) as tmp_html:
            Path(tmp_html).write_text(page)
